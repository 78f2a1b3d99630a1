"""ICMP/ICMPv6 error messages: which datagram they complain about.

An ICMP error quotes the IP header and the first 8 bytes of the datagram that caused it,
so a tracker can match "port unreachable" to the UDP flow it ends. `Packet.payload` of
an ICMP packet starts after the 4-byte type/code/checksum header.
"""

from __future__ import annotations

from typing import NamedTuple

from analyzer.decode.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, Packet

# Error types that quote the offending datagram.
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # unreachable, quench, redirect, time, param
ICMPV6_ERROR_TYPES = frozenset({1, 2, 3, 4})  # unreachable, too big, time, param

_ICMP_NAMES = {
    (3, 0): "network unreachable", (3, 1): "host unreachable",
    (3, 2): "protocol unreachable", (3, 3): "port unreachable",
    (3, 4): "fragmentation needed", (3, 9): "network prohibited",
    (3, 10): "host prohibited", (3, 13): "communication administratively prohibited",
    (11, 0): "TTL exceeded", (11, 1): "fragment reassembly time exceeded",
}
_ICMPV6_NAMES = {
    (1, 0): "no route", (1, 1): "administratively prohibited", (1, 3): "address unreachable",
    (1, 4): "port unreachable", (2, 0): "packet too big", (3, 0): "hop limit exceeded",
}


class QuotedDatagram(NamedTuple):
    """The addresses and ports of the datagram an ICMP error quotes."""

    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int


def is_port_unreachable(pkt: Packet) -> bool:
    if pkt.proto == PROTO_ICMP:
        return pkt.sport == 3 and pkt.dport == 3
    return pkt.proto == PROTO_ICMPV6 and pkt.sport == 1 and pkt.dport == 4


def icmp_error_name(pkt: Packet) -> str:
    """Human text for an ICMP error's type and code."""
    key = (pkt.sport, pkt.dport)
    if pkt.proto == PROTO_ICMP:
        return _ICMP_NAMES.get(key, f"ICMP type {key[0]} code {key[1]}")
    return _ICMPV6_NAMES.get(key, f"ICMPv6 type {key[0]} code {key[1]}")


def quoted_datagram(pkt: Packet) -> QuotedDatagram | None:
    """The datagram an ICMP/ICMPv6 error quotes, or None (not an error, or cut short).

    Ports are filled for UDP and TCP quotes (the first 4 bytes of their headers);
    IPv6 extension headers in the quote are not followed.
    """
    body = pkt.payload
    if pkt.proto == PROTO_ICMP:
        if pkt.sport not in ICMP_ERROR_TYPES or len(body) < 4 + 20:
            return None
        ip = 4
        if body[ip] >> 4 != 4:
            return None
        ihl = (body[ip] & 0x0F) * 4
        proto = body[ip + 9]
        src, dst = bytes(body[ip + 12:ip + 16]), bytes(body[ip + 16:ip + 20])
        transport = ip + ihl
    elif pkt.proto == PROTO_ICMPV6:
        if pkt.sport not in ICMPV6_ERROR_TYPES or len(body) < 4 + 40:
            return None
        ip = 4
        if body[ip] >> 4 != 6:
            return None
        proto = body[ip + 6]
        src, dst = bytes(body[ip + 8:ip + 24]), bytes(body[ip + 24:ip + 40])
        transport = ip + 40
    else:
        return None
    sport = dport = 0
    if proto in (PROTO_UDP, 6) and len(body) >= transport + 4:
        sport = (body[transport] << 8) | body[transport + 1]
        dport = (body[transport + 2] << 8) | body[transport + 3]
    return QuotedDatagram(src, dst, proto, sport, dport)
