"""Hostile TFTP captures, written fast with `struct`: a port-69 scan (a flood of RRQs
nobody answers) and, for comparison, a capture of as many ordinary packets.

    python benchmarks/hostile_tftp.py OUT.pcap [--requests 100k] [--seconds 10]
    python benchmarks/hostile_tftp.py OUT.pcap --ordinary [--requests 100k]
    python benchmarks/hostile_tftp.py OUT.pcap --measure  # time and peak memory of `read --json`

The flood: `requests` RRQs, each from its own client endpoint (addresses 10.1.x.y, ports
1024-65535) to 10.0.0.1:69, spread evenly over `seconds` of capture time. The ordinary
capture: the same number of packets, as complete 512-byte-block TFTP reads (RRQ, then
DATA/ACK pairs of 8-block files from a server TID), so a tracker that keeps transfers
costs the same per packet. IPv4 header checksums are real; UDP checksums are 0 (none).
"""

from __future__ import annotations

import argparse
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
_RECORD = struct.Struct("<IIII")
_ETHER = bytes.fromhex("020000000002" "020000000001" "0800")
SERVER = bytes((10, 0, 0, 1))
START = 1_700_000_000.0
FIRST_PORT = 1024


def parse_count(text: str) -> int:
    """`100k`, `1M` or a plain number."""
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(text[:-1] if scale > 1 else text) * scale


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack("!10H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
    """An Ethernet/IPv4/UDP frame (no UDP checksum)."""
    length = 20 + 8 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, 0, 0x4000, 64, 17, 0, src, dst)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return _ETHER + header + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def client_endpoint(index: int) -> tuple[bytes, int]:
    """The index-th distinct client endpoint (10.1.x.y, port 1024..65535)."""
    span = 65536 - FIRST_PORT
    host = index // span
    return bytes((10, 1, (host >> 8) & 0xFF, host & 0xFF)), FIRST_PORT + index % span


def rrq(filename: bytes, mode: bytes = b"octet") -> bytes:
    return b"\x00\x01" + filename + b"\x00" + mode + b"\x00"


def flood(requests: int) -> Iterator[tuple[int, bytes]]:
    """(packet index, frame) of the unanswered RRQs."""
    for index in range(requests):
        client, port = client_endpoint(index)
        yield index, udp_frame(client, port, SERVER, 69, rrq(b"pxelinux.0"))


def ordinary(packets: int, blocks: int = 8) -> Iterator[tuple[int, bytes]]:
    """(packet index, frame) of complete TFTP reads: RRQ, then DATA/ACK per block."""
    index = 0
    transfer = 0
    content = bytes(range(256)) * 2
    while index < packets:
        client, port = client_endpoint(transfer)
        tid = 1024 + transfer % 60000
        transfer += 1
        exchange = [(client, port, SERVER, 69, rrq(b"file%d" % transfer))]
        for block in range(1, blocks + 1):
            chunk = content if block < blocks else content[:100]
            exchange.append((SERVER, tid, client, port, struct.pack("!HH", 3, block) + chunk))
            exchange.append((client, port, SERVER, tid, struct.pack("!HH", 4, block)))
        for src, sport, dst, dport, payload in exchange:
            if index == packets:
                return
            yield index, udp_frame(src, sport, dst, dport, payload)
            index += 1


def write(path: Path, frames: Iterator[tuple[int, bytes]], count: int, seconds: float,
          snaplen: int = 65535) -> None:
    """A pcap of `count` frames spread evenly over `seconds` of capture time, each cut to
    `snaplen` bytes as a capture with that snaplen would."""
    step = seconds / max(count, 1)
    with path.open("wb") as out:
        out.write(_PCAP_HEADER)
        for index, frame in frames:
            ts = START + index * step
            sec = int(ts)
            kept = frame[:snaplen]
            out.write(_RECORD.pack(sec, int((ts - sec) * 1e6), len(kept), len(frame)))
            out.write(kept)


def measure(capture: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `analyzer read CAPTURE --json` in a child."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "analyzer", "read", str(capture), "--json"],
                   stdout=subprocess.DEVNULL, check=True)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--requests", type=parse_count, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ordinary", action="store_true",
                        help="ordinary TFTP reads of as many packets instead of the flood")
    parser.add_argument("--measure", action="store_true",
                        help="then time `analyzer read --json` on it (wall s, peak MiB)")
    args = parser.parse_args(argv)
    frames = ordinary(args.requests) if args.ordinary else flood(args.requests)
    write(args.output, frames, args.requests, args.seconds)
    if args.measure:
        elapsed, peak = measure(args.output)
        print(f"{args.output}: {elapsed:.2f} s, peak {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
