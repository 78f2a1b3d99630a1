"""Which of two worker processes owns a TCP connection (see analyzer/run/parallel.py).

A hash of addresses and ports that is the same in both directions, so a connection
never splits; `fast_owner` reads the same hash straight from the bytes of the common
Ethernet/IPv4/TCP frame, before any decoding.
"""

from __future__ import annotations

from analyzer.decode.packet import Packet


def owner_of_packet(pkt: Packet) -> int:
    """0 or 1: which worker tracks this TCP packet's connection (same both ways)."""
    sport, dport = pkt.sport, pkt.dport
    return (pkt.src[-1] + pkt.dst[-1] + (sport >> 8) + (sport & 0xFF) + (dport >> 8)
            + (dport & 0xFF)) & 1


def fast_owner(linktype: int, data: bytes) -> int:
    """The owner of an Ethernet/IPv4/TCP frame without IP options or fragmentation, or
    an Ethernet/IPv6/TCP frame without extension headers, from its bytes (equal to
    `owner_of_packet` of its packet); -1 for any other frame (both workers decode those)."""
    if linktype != 1 or len(data) < 54:
        return -1
    if data[12] == 8 and data[13] == 0:
        if data[14] == 0x45 and data[23] == 6 and not (data[20] & 0x3F or data[21]):
            return (data[29] + data[33] + data[34] + data[35] + data[36] + data[37]) & 1
    elif data[12] == 0x86 and data[13] == 0xDD and len(data) >= 74 and \
            data[14] >> 4 == 6 and data[20] == 6:
        return (data[37] + data[53] + data[54] + data[55] + data[56] + data[57]) & 1
    return -1
