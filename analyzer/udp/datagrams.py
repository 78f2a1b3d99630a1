"""A sans-IO log of the UDP datagrams (and ICMP errors) a session captured: who sent what
to whom, in frame order, so a broadcast's watch shows which hosts answered and from which
address. Bounded: the first `limit` are kept, the rest only counted."""

from __future__ import annotations

from typing import NamedTuple

from analyzer.decode.icmp import icmp_error_name, quoted_datagram
from analyzer.decode.packet import PROTO_UDP, Packet

DEFAULT_LIMIT = 1000


class SeenDatagram(NamedTuple):
    frame: int
    ts: float
    src: bytes
    sport: int
    dst: bytes
    dport: int
    length: int  # UDP payload bytes, as the header claims
    icmp: str | None  # for an ICMP error: what it says (the datagram it quotes is src/dst)


class DatagramLog:
    """Feed it every packet of a session (`on_packet`); non-UDP, non-ICMP ones are ignored."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.datagrams: list[SeenDatagram] = []
        self.count = 0
        self.icmp_errors = 0

    def on_packet(self, pkt: Packet) -> None:
        if pkt.proto == PROTO_UDP:
            self._keep(SeenDatagram(pkt.frame, pkt.ts, pkt.src, pkt.sport, pkt.dst,
                                    pkt.dport, pkt.payload_len, None))
            return
        quoted = quoted_datagram(pkt)  # None: not an ICMP error (an echo, say)
        if quoted is None:
            return
        self.icmp_errors += 1
        self._keep(SeenDatagram(pkt.frame, pkt.ts, pkt.src, 0, pkt.dst, 0, 0,
                                f"{icmp_error_name(pkt)} (about a datagram to port "
                                f"{quoted.dport})"))

    def _keep(self, seen: SeenDatagram) -> None:
        self.count += 1
        if len(self.datagrams) < self.limit:
            self.datagrams.append(seen)
