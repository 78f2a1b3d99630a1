"""A stream of exactly one packet: its `tcp.completeness` as Wireshark gives it (issue 23).

On the packet that creates the conversation only a pure SYN sets bits (SYN, plus DATA
for a SYN with payload); a lone ACK, data segment, FIN, RST or SYN-ACK leaves 0. The
oracle is tshark itself, two-pass, on one crafted capture holding one single-packet
stream per flag combination (each on its own ports)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from tests.conftest import require_tool
from tests.support.analyzer_cli import read_json
from tests.tcp.tshark_tcp import tshark_streams

# (flags, payload) of each lone packet, as a capture picked up mid-stream would show it
LONE_PACKETS = [
    ("S", b""), ("S", b"early data"), ("SA", b""), ("A", b""), ("PA", b"data"),
    ("FA", b""), ("FPA", b"data and fin"), ("R", b""), ("RA", b""), ("RPA", b"data+rst"),
    ("F", b""), ("SF", b""), ("SR", b""), ("U", b""), ("", b""),
]


def _capture(path: Path) -> Path:
    frames = []
    for number, (flags, payload) in enumerate(LONE_PACKETS):
        frame = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="10.1.0.1", dst="10.1.0.2")
                 / TCP(sport=41000 + number, dport=80, flags=flags, seq=1000, ack=5000))
        if payload:
            frame = frame / payload
        frame.time = 1_700_000_000 + number
        frames.append(frame)
    wrpcap(str(path), frames)
    return path


def test_each_lone_packet_gets_wiresharks_completeness(tmp_path: Path) -> None:
    require_tool("tshark")
    path = _capture(tmp_path / "lone.pcap")
    theirs = tshark_streams(path).completeness
    ours = {obj["stream"]: obj["completeness"] for obj in read_json(path)
            if obj["type"] == "tcp_stream"}
    assert len(ours) == len(LONE_PACKETS)
    assert ours == theirs
    # what the issue reports tshark says, as a check on the oracle itself
    assert ours[0] == 1 and ours[1] == 9 and ours[2] == 0 and ours[4] == 0
