"""sFlow's sampled packet headers are not connections (issue 23; docs/tcp.md).

An sFlow v5 datagram (UDP 6343) carries the first bytes of sampled packets. tshark
dissects a sampled TCP header like any other and gives it a `tcp.stream` number; we do
not: a sample is a report about traffic, not traffic, and one header of a connection
somewhere else is no stream here. So each sampled connection tshark numbers before a
real stream shifts that stream's number by one. This test pins that relationship
against tshark on a crafted capture.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tests.conftest import require_tool
from tests.support.analyzer_cli import read_json
from tests.tcp.craft_tcp import Conversation, analyze

SFLOW_PORT = 6343


def _sflow_datagram(samples: list[bytes], sequence: int) -> bytes:
    """sFlow v5 (sflow.org sflow_version_5.txt): one flow sample per sampled header,
    each with one raw-packet-header record of an Ethernet frame."""
    body = b""
    for index, header in enumerate(samples):
        padded = header + b"\0" * (-len(header) % 4)
        record = struct.pack("!IIII", 1, len(header) + 4, 0, len(header)) + padded
        record = struct.pack("!II", 1, len(record)) + record  # raw packet header (0:1)
        sample = struct.pack("!IIIIIIII", sequence + index, 3, 1000, 1000 * (index + 1), 0,
                             3, 4, 1) + record
        body += struct.pack("!II", 1, len(sample)) + sample  # flow sample (0:1)
    head = struct.pack("!II4sIIII", 5, 1, bytes([192, 0, 2, 99]), 0, sequence, 123456,
                       len(samples))
    return head + body


def _sampled_tcp_header(sport: int, flags: str) -> bytes:
    frame = (Ether(src="02:00:00:00:00:0c", dst="02:00:00:00:00:0d")
             / IP(src="10.7.0.1", dst="10.7.0.2") / TCP(sport=sport, dport=443, flags=flags,
                                                         seq=77))
    return bytes(frame)


def _tshark_streams_per_frame(path: Path) -> dict[int, tuple[list[int], list[int]]]:
    """{frame: (every tcp.stream in it, every tcp.completeness)}, two-pass."""
    done = subprocess.run([require_tool("tshark"), "-n", "-2", "-r", str(path), "-Y", "tcp",
                           "-T", "fields", "-e", "frame.number", "-e", "tcp.stream", "-e",
                           "tcp.completeness"], capture_output=True, text=True, timeout=60,
                          check=True)
    rows = {}
    for line in done.stdout.splitlines():
        frame, streams, completeness = line.split("\t")
        rows[int(frame)] = ([int(s) for s in streams.split(",")],
                            [int(c) for c in completeness.split(",")])
    return rows


def test_sampled_headers_are_not_streams(tmp_path: Path) -> None:
    require_tool("tshark")
    sflow = []
    for index, samples in enumerate([
            [_sampled_tcp_header(50001, "S"), _sampled_tcp_header(50002, "PA")],
            [_sampled_tcp_header(50001, "A")]]):  # the same sampled connection again
        frame = (Ether(src="02:00:00:00:00:0e", dst="02:00:00:00:00:0f")
                 / IP(src="192.0.2.99", dst="192.0.2.100")
                 / UDP(sport=40000, dport=SFLOW_PORT)
                 / _sflow_datagram(samples, 10 + index))
        frame.time = 1_700_000_000.0 + index
        sflow.append(frame)
    real = Conversation(client=("10.1.0.1", 40001), server=("10.1.0.2", 80),
                        start=1_700_000_010.0).handshake()
    real.send(True, "PA", b"real data")
    real.close()
    path = tmp_path / "sflow.pcap"
    wrpcap(str(path), sflow + real.packets)

    oracle = _tshark_streams_per_frame(path)
    # tshark: the first sFlow frame holds two sampled connections (streams 0 and 1), the
    # second samples stream 0 again; the real connection is stream 2
    assert oracle[1] == ([0, 1], [5, 0])
    assert oracle[2] == ([0], [5])
    sampled_streams = 2
    real_frames = range(len(sflow) + 1, len(sflow) + len(real.packets) + 1)
    assert {n: streams for n, (streams, _) in oracle.items() if n in real_frames} == \
        {n: [sampled_streams] for n in real_frames}

    results = analyze(path)
    ours = {rec.frame: r.stream for r in results for rec in r.records}
    # we number only the real connection: each of its frames gets tshark's stream minus
    # the sampled connections tshark numbered before it
    assert ours == {n: oracle[n][0][0] - sampled_streams for n in real_frames}
    assert [r.completeness for r in results] == oracle[real_frames[-1]][1]

    capture = next(obj for obj in read_json(path) if obj["type"] == "capture")
    assert capture["protocols"]["sflow"] == len(sflow)
    assert capture["tunnels"] == {} and capture["tunnels_not_decoded"] == {}
    assert capture["warnings"] == []
