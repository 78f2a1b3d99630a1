"""Crafted TCP conversations for the tracker tests: truth known by construction.

`Conversation` writes the packets of one connection with scapy (an independent TCP/IP
implementation), keeping each side's next sequence number so a test states only what
happens ("client sends 100 bytes", "server retransmits that segment with other bytes").
`analyze(path)` runs the product's own reader, decoder and tracker over the written file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from analyzer.decode.packet import PROTO_TCP
from analyzer.pipeline import iter_packets
from analyzer.report.tcp_json import stream_object
from analyzer.tcp import TcpStreamResult, TcpTracker

MOD = 1 << 32


@dataclass
class Conversation:
    """Packets of TCP connections between two endpoints, in capture order."""

    client: tuple[str, int] = ("10.0.0.1", 40000)
    server: tuple[str, int] = ("10.0.0.2", 80)
    client_isn: int = 1000
    server_isn: int = 5000
    start: float = 1_700_000_000.0
    step: float = 0.001
    packets: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next = {True: self.client_isn, False: self.server_isn}
        self.acked = {True: 0, False: 0}  # what each side acknowledges
        self.time = self.start

    def send(self, from_client: bool, flags: str, data: bytes = b"", *, seq: int | None = None,
             ack: int | None = None, advance: bool = True, window: int = 65535,
             options: list | None = None, dt: float | None = None) -> Conversation:
        """One segment; seq/ack default to the sender's next byte and the peer's next byte."""
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seq_value = self.next[from_client] if seq is None else seq
        if ack is None:
            ack_value = self.next[not from_client] if "A" in flags else 0
        else:
            ack_value = ack
        ip_layer = IPv6(src=src[0], dst=dst[0]) if ":" in src[0] else IP(src=src[0], dst=dst[0])
        tcp = TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq_value % MOD,
                  ack=ack_value % MOD, window=window, options=options or [])
        frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip_layer / tcp
        if data:
            frame = frame / data
        self.time += self.step if dt is None else dt
        frame.time = self.time
        self.packets.append(frame)
        if advance and seq is None:
            self.next[from_client] = seq_value + len(data) + ("S" in flags) + ("F" in flags)
        return self

    def handshake(self, options: bool = False) -> Conversation:
        opts = [("MSS", 1460), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 0))] \
            if options else None
        self.send(True, "S", options=opts)
        self.send(False, "SA", options=opts)
        self.send(True, "A")
        return self

    def close(self, three_way: bool = False) -> Conversation:
        """Client closes first: FIN, ACK, FIN, ACK (or FIN, FIN+ACK, ACK)."""
        self.send(True, "FA")
        if not three_way:
            self.send(False, "A")
        self.send(False, "FA")
        self.send(True, "A")
        return self

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.packets)
        return path


def analyze(path: Path | str, **options) -> list[TcpStreamResult]:
    """The product's reading of a capture: every stream, kept in full."""
    tracker = TcpTracker(keep_all=True, **options)
    for pkt in iter_packets(path):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    tracker.finish()
    return tracker.results()


def analyze_one(path: Path | str, **options) -> TcpStreamResult:
    results = analyze(path, **options)
    assert len(results) == 1, [stream_object(r) for r in results]
    return results[0]
