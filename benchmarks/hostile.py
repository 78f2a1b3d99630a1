"""Hostile captures, and `analyzer read --json` measured on them against normal traffic.

Each scenario is a pcap built to make a tracker hold memory or spend time out of
proportion to its size:

- `syn-flood`: SYNs from random source ports to one server (every packet a new stream).
- `fragments`: first IPv4 fragments whose datagrams never complete.
- `ooo-ahead`: one stream whose segments each land 1 MiB beyond the previous one.
- `seq-jumps`: one stream of in-order data whose sequence number jumps by 2^31 and by
  2^32-1 every 1000 segments.
- `ipv6-ext`: one IPv6 stream whose every packet carries 100 extension headers.
- `one-byte-ooo`: one stream of one-byte segments, shuffled within windows of 4096, the
  receiver acknowledging everything sent so far every 64 segments (holes become gaps).
- `conflicts`: one stream where every segment is retransmitted with different bytes.

`measure` times each against `generate.py`'s normal capture of the same packet count,
with `run.py`'s `run_once` (GNU time plus the summed memory of all processes):

    python benchmarks/hostile.py --packets 1M            # all scenarios, table on stdout
    python benchmarks/hostile.py --packets 50k --only syn-flood,fragments
    python benchmarks/hostile.py --write OUT.pcap --scenario syn-flood --packets 1M
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.generate import PCAP_HEADER, RECORD, format_count, generate, parse_count  # noqa: E402

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MAC_PAIR = bytes.fromhex("020000000002" "020000000001")
CLIENT4, SERVER4 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
CLIENT6 = bytes.fromhex("fd000000000000000000000000000001")
SERVER6 = bytes.fromhex("fd000000000000000000000000000002")
MIB = 1 << 20
MASK32 = 0xFFFFFFFF
START_TIME = 1_700_000_000.0
GAP_SECONDS = 20e-6

Frame = bytes


def tcp_header(sport: int, dport: int, seq: int, ack: int, flags: int,
               window: int = 65535) -> bytes:
    # Checksums are left 0: the analyzer (like tshark by default) does not verify them.
    return struct.pack(">HHIIBBHHH", sport, dport, seq & MASK32, ack & MASK32, 5 << 4,
                       flags, window, 0, 0)


def ipv4_frame(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int = 0,
               frag: int = 0x4000) -> Frame:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, frag,
                         64, proto, 0, src, dst)
    return MAC_PAIR + b"\x08\x00" + header + payload


def ipv6_frame(src: bytes, dst: bytes, next_header: int, payload: bytes) -> Frame:
    header = struct.pack(">IHBB16s16s", 6 << 28, len(payload), next_header, 64, src, dst)
    return MAC_PAIR + b"\x86\xdd" + header + payload


def tcp4(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"",
         src: bytes = CLIENT4, dst: bytes = SERVER4) -> Frame:
    return ipv4_frame(src, dst, 6, tcp_header(sport, dport, seq, ack, flags) + data)


def handshake(sport: int, dport: int, client_isn: int, server_isn: int) -> list[Frame]:
    return [tcp4(sport, dport, client_isn, 0, SYN),
            tcp4(dport, sport, server_isn, client_isn + 1, SYN | ACK, src=SERVER4, dst=CLIENT4),
            tcp4(sport, dport, client_isn + 1, server_isn + 1, ACK)]


# -- the scenarios: each yields exactly `packets` frames ----------------------------------

def syn_flood(packets: int, rng: random.Random) -> Iterator[Frame]:
    for _ in range(packets):
        yield tcp4(rng.randrange(1024, 65536), 80, rng.getrandbits(32), 0, SYN)


def fragments(packets: int, rng: random.Random) -> Iterator[Frame]:
    """First fragments (MF set, offset 0) of distinct datagrams; the rest never comes."""
    body = bytes(range(256)) * 2
    for number in range(packets):
        src = bytes([10, 1, (number >> 24) & 0xFF, (number >> 16) & 0xFF])
        yield ipv4_frame(src, SERVER4, 17, body[:64], ident=number, frag=0x2000)


def ooo_ahead(packets: int, rng: random.Random) -> Iterator[Frame]:
    isn, server_isn = rng.getrandbits(32), rng.getrandbits(32)
    frames = handshake(40000, 80, isn, server_isn)
    yield from frames[:packets]
    data = rng.randbytes(100)
    for number in range(packets - len(frames)):
        yield tcp4(40000, 80, isn + 1 + (number + 1) * MIB, server_isn + 1, ACK | PSH, data)


def seq_jumps(packets: int, rng: random.Random) -> Iterator[Frame]:
    isn, server_isn = rng.getrandbits(32), rng.getrandbits(32)
    frames = handshake(40001, 80, isn, server_isn)
    yield from frames[:packets]
    data = rng.randbytes(100)
    seq = isn + 1
    for number in range(packets - len(frames)):
        if number and number % 1000 == 0:
            seq += (1 << 31) if (number // 1000) % 2 else (1 << 32) - 1
        yield tcp4(40001, 80, seq, server_isn + 1, ACK | PSH, data)
        seq += len(data)


def ipv6_ext(packets: int, rng: random.Random) -> Iterator[Frame]:
    """A handshake, then in-order data and an ACK every tenth packet, every packet behind
    100 destination-options headers (8 bytes each, PadN)."""
    isn, server_isn = rng.getrandbits(32), rng.getrandbits(32)
    pad = b"\x01\x04\x00\x00\x00\x00"  # PadN option filling the header's 6 option bytes
    chain = b"".join(bytes([60, 0]) + pad for _ in range(99)) + bytes([6, 0]) + pad
    data = rng.randbytes(100)
    seq = isn + 1

    def client(segment: bytes) -> Frame:
        return ipv6_frame(CLIENT6, SERVER6, 60, chain + segment)

    def server(segment: bytes) -> Frame:
        return ipv6_frame(SERVER6, CLIENT6, 60, chain + segment)

    opening = [client(tcp_header(40002, 80, isn, 0, SYN)),
               server(tcp_header(80, 40002, server_isn, isn + 1, SYN | ACK)),
               client(tcp_header(40002, 80, isn + 1, server_isn + 1, ACK))]
    yield from opening[:packets]
    for number in range(packets - len(opening)):
        if number % 10 == 9:
            yield server(tcp_header(80, 40002, server_isn + 1, seq, ACK))
        else:
            yield client(tcp_header(40002, 80, seq, server_isn + 1, ACK | PSH) + data)
            seq += len(data)


def one_byte_ooo(packets: int, rng: random.Random) -> Iterator[Frame]:
    isn, server_isn = rng.getrandbits(32), rng.getrandbits(32)
    frames = handshake(40003, 80, isn, server_isn)
    yield from frames[:packets]
    remaining = packets - len(frames)
    window = 4096
    sent = 0
    highest = 0
    base = 0
    while sent < remaining:
        # Each window: its one-byte segments shuffled, and every 64th packet the server's
        # ACK of everything sent so far (so earlier holes are given up as gaps).
        count = min(window, remaining - sent)
        order = list(range(count))
        rng.shuffle(order)
        for position, index in enumerate(order):
            if sent >= remaining:
                break
            if position % 64 == 63:
                yield tcp4(80, 40003, server_isn + 1, isn + 1 + highest, ACK,
                           src=SERVER4, dst=CLIENT4)
            else:
                offset = base + index
                highest = max(highest, offset + 1)
                yield tcp4(40003, 80, isn + 1 + offset, server_isn + 1, ACK | PSH,
                           bytes([offset & 0xFF]))
            sent += 1
        base += count


def conflicts(packets: int, rng: random.Random) -> Iterator[Frame]:
    """Each 100-byte segment, then a retransmission of it with other bytes."""
    isn, server_isn = rng.getrandbits(32), rng.getrandbits(32)
    frames = handshake(40004, 80, isn, server_isn)
    yield from frames[:packets]
    first, second = rng.randbytes(100), rng.randbytes(100)
    seq = isn + 1
    for number in range(packets - len(frames)):
        yield tcp4(40004, 80, seq, server_isn + 1, ACK | PSH, first if number % 2 == 0 else second)
        if number % 2:
            seq += 100


SCENARIOS: dict[str, Callable[[int, random.Random], Iterator[Frame]]] = {
    "syn-flood": syn_flood, "fragments": fragments, "ooo-ahead": ooo_ahead,
    "seq-jumps": seq_jumps, "ipv6-ext": ipv6_ext, "one-byte-ooo": one_byte_ooo,
    "conflicts": conflicts,
}
# The packet counts the issue names; every other scenario runs at --packets.
ISSUE_COUNTS = {"syn-flood": 1_000_000, "fragments": 200_000, "ooo-ahead": 100_000,
                "one-byte-ooo": 1_000_000, "conflicts": 200_000}


def write_scenario(path: Path, scenario: str, packets: int, seed: int = 1) -> Path:
    """Write `packets` frames of `scenario` as a pcap (Ethernet), flushed in chunks."""
    return write_frames(path, SCENARIOS[scenario](packets, random.Random(seed)))


def write_frames(path: Path, frames: Iterable[Frame]) -> Path:
    """Write Ethernet `frames` as a pcap, GAP_SECONDS apart, flushed in chunks."""
    pack = RECORD.pack
    with path.open("wb") as out:
        out.write(PCAP_HEADER)
        chunk: list[bytes] = []
        us = int(START_TIME * 1_000_000)
        for frame in frames:
            us += int(GAP_SECONDS * 1_000_000)
            chunk.append(pack(us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
            chunk.append(frame)
            if len(chunk) >= 8192:
                out.write(b"".join(chunk))
                chunk.clear()
        out.write(b"".join(chunk))
    return path


def measure(scenarios: list[str], packets: int | None, data_dir: Path, timeout: float,
            runs: int = 1) -> list[dict]:
    """Wall time and peak memory of `read --json` on each scenario and on normal traffic
    of the same packet count (the best of `runs` alternated runs each)."""
    from benchmarks.run import Run, run_once  # noqa: PLC0415  (GNU time and the PSS sampler)

    data_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario in scenarios:
        count = packets if packets is not None else ISSUE_COUNTS.get(scenario, 100_000)
        hostile = data_dir / f"hostile-{scenario}-{format_count(count)}.pcap"
        if not hostile.exists():
            write_scenario(hostile, scenario, count)
        normal = data_dir / f"normal-{format_count(count)}.pcap"
        if not normal.exists():
            generate(normal, count)
        row: dict = {"scenario": scenario, "packets": count,
                     "file_mib": hostile.stat().st_size / MIB}
        # The two alternate, run by run, so that load from elsewhere on the machine
        # falls on both alike; each keeps its best run.
        best: dict[str, Run] = {}
        walls: dict[str, list[float]] = {"hostile": [], "normal": []}
        for _ in range(runs):
            for name, capture in (("hostile", hostile), ("normal", normal)):
                outcome = run_once([sys.executable, "-m", "analyzer", "read", str(capture),
                                    "--json"], timeout)
                walls[name].append(outcome.wall)
                if name not in best or outcome.wall < best[name].wall:
                    best[name] = outcome
        for name, outcome in best.items():
            row[f"{name}_wall"] = outcome.wall
            row[f"{name}_mib"] = outcome.peak_total_mib or outcome.peak_rss_mib
            row[f"{name}_error"] = outcome.error
        row["round_ratios"] = [h / n for h, n in zip(walls["hostile"], walls["normal"],
                                                     strict=True) if n]
        print(render([row]).splitlines()[-1], file=sys.stderr, flush=True)
        if runs > 1:
            print("  run by run: " + ", ".join(f"{r:.2f}" for r in row["round_ratios"]),
                  file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def render(rows: list[dict]) -> str:
    lines = ["| scenario | packets | file (MiB) | wall (s) | normal wall (s) | ratio "
             "| peak memory (MiB) | normal peak (MiB) | verdict |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        ratio = row["hostile_wall"] / row["normal_wall"] if row["normal_wall"] else 0.0
        memory = row["hostile_mib"] or 0.0
        ok = memory <= 100 and ratio <= 2 and not row["hostile_error"]
        verdict = "met" if ok else "NOT met" + (f" ({row['hostile_error']})"
                                                 if row["hostile_error"] else "")
        lines.append(f"| {row['scenario']} | {format_count(row['packets'])} | "
                     f"{row['file_mib']:.0f} | {row['hostile_wall']:.2f} | "
                     f"{row['normal_wall']:.2f} | {ratio:.2f} | {memory:.0f} | "
                     f"{row['normal_mib'] or 0:.0f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=parse_count,
                        help="packets per scenario (default: the issue's counts, else 100k)")
    parser.add_argument("--only", help="comma-separated scenarios (default: all)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(__file__).resolve().parent / "data")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--write", type=Path, help="only write this scenario's capture")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="syn-flood")
    args = parser.parse_args(argv)
    if args.write:
        write_scenario(args.write, args.scenario,
                       args.packets or ISSUE_COUNTS.get(args.scenario, 100_000))
        return 0
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    print(render(measure(chosen, args.packets, args.data_dir, args.timeout, args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
