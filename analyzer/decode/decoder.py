"""The frame decoder: link layer, IP, transport, in one pass over the frame's bytes.

The common path (Ethernet or loopback, IPv4/IPv6, TCP/UDP, no fragments) is one
function with precompiled structs; the rarer link types go through `_link_offset`.
"""

from __future__ import annotations

import struct
from collections import Counter, defaultdict
from typing import Any, Final, Literal

from analyzer.capture import linktypes as lt
from analyzer.capture.frame import Frame
from analyzer.decode.fragments import FragmentReassembler
from analyzer.decode.packet import (
    PROTO_ICMP,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    SYN,
    Packet,
)

ETH_IPV4: Final = 0x0800
ETH_IPV6: Final = 0x86DD
ETH_ARP: Final = 0x0806
ETH_VLAN_TAGS: Final = (0x8100, 0x88A8, 0x9100)

# BSD NULL / LOOP address families that mean IPv6 (differs per BSD flavour).
AF_INET: Final = 2
AF_INET6_VALUES: Final = (10, 24, 28, 30)

NFULA_PAYLOAD: Final = 9

IPV6_EXT_HEADERS: Final = {
    0: "hop-by-hop", 43: "routing", 60: "destination", 51: "ah", 135: "mobility",
}
IPV6_FRAGMENT: Final = 44
IPV6_NO_NEXT: Final = 59
# By next-header value: 1 for an extension header or fragment header, else 0. Indexing
# bytes is one native load where a dict lookup hashed a boxed int on each header (a chain
# of 100 headers made such packets cost twice as much).
_IPV6_EXTENSION: Final = bytes(
    1 if value in IPV6_EXT_HEADERS or value == IPV6_FRAGMENT else 0 for value in range(256))

ETHERTYPE_NAMES: Final = {
    0x0806: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x8863: "pppoe-discovery",
    0x8864: "pppoe", 0x8847: "mpls", 0x888E: "eapol", 0x88F7: "ptp", 0x22F0: "avtp",
}
IP_PROTO_NAMES: Final = {
    1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah",
    58: "icmpv6", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}

_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")
_TCP: Final = struct.Struct("!HHIIBBH")
_UDP: Final = struct.Struct("!HHH")
ETHERNET: Final = lt.ETHERNET
_U16: Final = struct.Struct("!H")

MAX_WARNINGS: Final = 20


class DecodeStats:
    def __init__(
        self,
        packets: int = 0,
        bytes: int = 0,
        wire_bytes: int = 0,
        linktypes: Counter[int] | None = None,
        protocols: Counter[str] | None = None,
        skipped_linktypes: Counter[int] | None = None,
        malformed: int = 0,
        truncated: int = 0,
        warnings: list[str] | None = None,
    ) -> None:
        self.packets = packets
        self.bytes = bytes  # captured bytes
        self.wire_bytes = wire_bytes
        self.linktypes = Counter() if linktypes is None else linktypes
        self.protocols = Counter() if protocols is None else protocols
        self.skipped_linktypes = Counter() if skipped_linktypes is None else skipped_linktypes
        self.malformed = malformed
        self.truncated = truncated  # packets cut by the snaplen
        self.warnings = [] if warnings is None else warnings

    def warn(self, text: str) -> None:
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)
        elif len(self.warnings) == MAX_WARNINGS:
            self.warnings.append("further decode warnings suppressed")


def _fast_tcp(data: bytes, number: int, ts: float, interface: int, version: int, tcp: int,
              hlen: int, end: int, claimed: int) -> Packet:
    """The Packet of a TCP segment at `tcp` in an Ethernet frame, behind an IPv4 header
    without options (tcp = 34) or an IPv6 header without extensions (tcp = 54): the
    addresses end where the TCP header starts, so the flow key (addresses then ports) is
    one slice. `claimed`: the IP payload length as believed (see the callers)."""
    alen = 4 if version == 4 else 16
    flags = data[tcp + 13]
    return Packet(
        number, ts, interface, version, data[tcp - 2 * alen:tcp - alen],
        data[tcp - alen:tcp], PROTO_TCP,
        data[tcp] << 8 | data[tcp + 1], data[tcp + 2] << 8 | data[tcp + 3],
        data[tcp + hlen:end], claimed - hlen,
        data[tcp + 4] << 24 | data[tcp + 5] << 16 | data[tcp + 6] << 8 | data[tcp + 7],
        data[tcp + 8] << 24 | data[tcp + 9] << 16 | data[tcp + 10] << 8 | data[tcp + 11],
        flags, data[tcp + 14] << 8 | data[tcp + 15],
        # options are read from SYNs only (packet.parse_tcp_options)
        data[tcp + 20:tcp + hlen] if flags & SYN else b"", data[tcp - 2 * alen:tcp + 4])


class Decoder:
    """Turns frames into Packets; counts what it does not hand on."""

    def __init__(self) -> None:
        self._stats = DecodeStats()
        self.fragments = FragmentReassembler()
        # Counted in plain ints/dicts on the hot path, folded into stats by counts().
        # IPv4 TCP, IPv4 UDP, IPv6 TCP packets decoded by the fast paths
        self._fast_counts = [0, 0, 0]
        self._linktype_counts: defaultdict[int, int] = defaultdict(int)

    def decode(self, frame: Frame, number: int) -> Packet | None:
        ts, linktype, interface = frame.ts, frame.linktype, frame.interface
        data, wirelen = frame.data, frame.wirelen
        stats = self._stats
        stats.packets += 1
        stats.bytes += len(data)
        stats.wire_bytes += wirelen
        self._linktype_counts[linktype] += 1
        # Link layer: find the network protocol and where it starts.
        if linktype == ETHERNET:
            if len(data) < 14:
                return self._malformed(number, "Ethernet header cut short")
            ethertype = (data[12] << 8) | data[13]
            off = 14
            if ethertype == ETH_IPV4 and len(data) >= 34 and data[14] == 0x45 and \
                    not (data[20] << 8 | data[21]) & 0x3FFF:
                # Fast path: IPv4 without options or fragments, carrying TCP or UDP. Fields
                # are read byte by byte: compiled, that is native integer work with no
                # tuple or int objects to allocate (struct.unpack_from made ~15).
                total = data[16] << 8 | data[17]
                proto = data[23]
                counts = self._fast_counts
                end = 14 + total
                if end > len(data):  # cut by the snaplen
                    end = len(data)
                # Like Wireshark, believe the IP length only as far as the frame was
                # long on the wire (a bogus length must not invent missing bytes).
                claimed = total - 20 if 14 + total <= wirelen else wirelen - 34
                if total < 20:
                    pass
                elif proto == PROTO_TCP and end >= 54:
                    hlen = (data[46] >> 4) << 2
                    if hlen >= 20 and 34 + hlen <= end:
                        counts[0] += 1
                        if end - 34 < total - 20:
                            stats.truncated += 1
                        return _fast_tcp(data, number, ts, interface, 4, 34, hlen, end,
                                         claimed)
                elif proto == PROTO_UDP and end >= 42:
                    ulen = data[38] << 8 | data[39]
                    if 8 <= ulen <= claimed:
                        counts[1] += 1
                        if end - 34 < ulen:
                            stats.truncated += 1
                        return Packet(number, ts, interface, 4, data[26:30], data[30:34],
                                      PROTO_UDP, data[34] << 8 | data[35],
                                      data[36] << 8 | data[37], data[42:min(end, 34 + ulen)],
                                      ulen - 8, key=data[26:38])
            elif ethertype == ETH_IPV6 and len(data) >= 74 and data[14] >> 4 == 6 and \
                    data[20] == PROTO_TCP:
                # Fast path: IPv6 without extension headers, carrying TCP; what `_ipv6`
                # and `_transport` would make of it (anything else falls through to them).
                plen = data[18] << 8 | data[19]
                end = len(data)
                if plen:
                    if 54 + plen < end:
                        end = 54 + plen
                    claimed = plen
                else:
                    claimed = end - 54  # segmentation offload left the length unset
                if claimed > wirelen - 54:
                    claimed = max(wirelen - 54, 0)
                hlen = (data[66] >> 4) << 2
                if end >= 74 and hlen >= 20 and 54 + hlen <= end:
                    self._fast_counts[2] += 1
                    if end - 54 < claimed:
                        stats.truncated += 1
                    return _fast_tcp(data, number, ts, interface, 6, 54, hlen, end, claimed)
            while ethertype in ETH_VLAN_TAGS:
                if len(data) < off + 4:
                    return self._malformed(number, "VLAN tag cut short")
                stats.protocols["vlan"] += 1
                ethertype = (data[off + 2] << 8) | data[off + 3]
                off += 4
            if ethertype == ETH_IPV4:
                version = 4
            elif ethertype == ETH_IPV6:
                version = 6
            else:
                self._count_ethertype(ethertype)
                return None
        else:
            located = self._link_offset(linktype, data, number)
            if located is None:
                return None
            version, off = located
        if version == 4:
            return self._ipv4(data, off, wirelen - off, number, ts, interface)
        return self._ipv6(data, off, wirelen - off, number, ts, interface)

    @property
    def stats(self) -> DecodeStats:
        """The statistics, with the fast path's counters folded in."""
        stats = self._stats
        tcp, udp, tcp6 = self._fast_counts
        if tcp or udp:
            stats.protocols["ipv4"] += tcp + udp
            if udp:
                stats.protocols["udp"] += udp
        if tcp6:
            stats.protocols["ipv6"] += tcp6
        if tcp or tcp6:
            stats.protocols["tcp"] += tcp + tcp6
        self._fast_counts[:] = [0, 0, 0]
        for linktype, count in self._linktype_counts.items():
            stats.linktypes[linktype] += count
        self._linktype_counts.clear()
        return stats

    # -- link layers other than Ethernet ------------------------------------------------

    def _link_offset(self, linktype: int, data: bytes, number: int) -> tuple[int, int] | None:
        """(IP version, offset of the IP header), or None when it is not IP."""
        n = len(data)
        if linktype in (lt.RAW, lt.IPV4, lt.IPV6, lt.RAW_ALT_12, lt.RAW_ALT_14):
            if not n:
                return self._malformed(number, "empty raw IP packet")
            version = data[0] >> 4
            if version in (4, 6):
                return version, 0
            return self._malformed(number, f"raw IP packet with version {version}")
        if linktype in (lt.NULL, lt.LOOP):
            if n < 4:
                return self._malformed(number, "loopback header cut short")
            if linktype == lt.LOOP:
                family = int.from_bytes(data[:4], "big")
            else:
                # DLT_NULL is in the capturing host's byte order; families are small.
                family = int.from_bytes(data[:4], "little")
                if family > 0xFFFF:
                    family = int.from_bytes(data[:4], "big")
            if family == AF_INET:
                return 4, 4
            if family in AF_INET6_VALUES:
                return 6, 4
            self._stats.protocols[f"af-{family}"] += 1
            return None
        if linktype == lt.LINUX_SLL:
            if n < 16:
                return self._malformed(number, "Linux cooked header cut short")
            return self._ethertype_offset((data[14] << 8) | data[15], 16, data, number)
        if linktype == lt.LINUX_SLL2:
            if n < 20:
                return self._malformed(number, "Linux cooked v2 header cut short")
            return self._ethertype_offset((data[0] << 8) | data[1], 20, data, number)
        if linktype == lt.NFLOG:
            return self._nflog(data, number)
        self._stats.skipped_linktypes[linktype] += 1
        return None

    def _ethertype_offset(self, ethertype: int, off: int, data: bytes,
                          number: int) -> tuple[int, int] | None:
        while ethertype in ETH_VLAN_TAGS:
            if len(data) < off + 4:
                return self._malformed(number, "VLAN tag cut short")
            self._stats.protocols["vlan"] += 1
            ethertype = (data[off + 2] << 8) | data[off + 3]
            off += 4
        if ethertype == ETH_IPV4:
            return 4, off
        if ethertype == ETH_IPV6:
            return 6, off
        self._count_ethertype(ethertype)
        return None

    def _nflog(self, data: bytes, number: int) -> tuple[int, int] | None:
        if len(data) < 8:
            return self._malformed(number, "NFLOG header cut short")
        family = data[0]
        # TLV lengths and types are in the capturing host's byte order, which the frame
        # does not say. Types are small (NFULA_* < 64, flags in the top two bits), so the
        # first TLV's type tells: only in little-endian is its first byte the value.
        order: Literal["little", "big"] = "little" if data[6] & 0x3F else "big"
        off = 4
        while off + 4 <= len(data):
            tlv_len = int.from_bytes(data[off:off + 2], order)
            tlv_type = int.from_bytes(data[off + 2:off + 4], order) & 0x7FFF  # NLA_F_* bits
            if tlv_len < 4:
                return self._malformed(number, "NFLOG TLV with impossible length")
            if tlv_type == NFULA_PAYLOAD:
                if family == AF_INET:
                    return 4, off + 4
                if family == 10:
                    return 6, off + 4
                self._stats.protocols[f"nflog-af-{family}"] += 1
                return None
            off += (tlv_len + 3) & ~3
        self._stats.protocols["nflog-no-payload"] += 1
        return None

    def _count_ethertype(self, ethertype: int) -> None:
        if ethertype <= 1500:
            self._stats.protocols["llc"] += 1
        else:
            name = ETHERTYPE_NAMES.get(ethertype, f"ethertype-{ethertype:#06x}")
            self._stats.protocols[name] += 1

    # -- network layer ------------------------------------------------------------------

    def _ipv4(self, data: bytes, off: int, reported: int, number: int, ts: float,
              interface: int) -> Packet | None:
        """IPv4 at `off`; `reported` is how many bytes from there the frame had on the wire."""
        if len(data) - off < 20:
            return self._malformed(number, "IPv4 header cut short")
        vihl, _tos, total, ident, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, off)
        ihl = (vihl & 0x0F) * 4
        if vihl >> 4 != 4 or ihl < 20:
            return self._malformed(number, "bad IPv4 header")
        self._stats.protocols["ipv4"] += 1
        available = len(data) - off
        if available < ihl:
            return self._malformed(number, "IPv4 options cut short")
        if total == 0:
            total = available  # segmentation offload: the stack left the length unset
        elif total < ihl:
            return self._malformed(number, "IPv4 total length shorter than its header")
        start = off + ihl
        end = off + min(total, available)
        claimed = min(total, max(reported, ihl)) - ihl
        if frag & 0x3FFF:  # more-fragments flag or a non-zero offset
            self._stats.protocols["ipv4-fragment"] += 1
            if end - start < claimed:
                self._stats.truncated += 1
                return None  # a cut fragment cannot be reassembled
            whole = self.fragments.add((4, src, dst, ident, proto), (frag & 0x1FFF) * 8,
                                       bool(frag & 0x2000), data[start:end], ts)
            if whole is None:
                return None
            return self._transport(whole, 0, len(whole), len(whole), 4, src, dst,
                                   proto, number, ts, interface)
        return self._transport(data, start, end, claimed, 4, src, dst, proto, number, ts,
                               interface)

    def _ipv6(self, data: bytes, off: int, reported: int, number: int, ts: float,
              interface: int) -> Packet | None:
        if len(data) - off < 40:
            return self._malformed(number, "IPv6 header cut short")
        vtcfl, plen_field, next_field, _hlim, src, dst = _IPV6.unpack_from(data, off)
        # Typed, so that the compiled extension-header walk below is native integer work
        # (struct's fields are Any: a chain of 100 headers cost 40 µs a packet as such)
        plen: int = plen_field
        nxt: int = next_field
        if vtcfl >> 28 != 6:
            return self._malformed(number, "bad IPv6 header")
        self._stats.protocols["ipv6"] += 1
        start = off + 40
        end = min(len(data), start + plen) if plen else len(data)
        claimed = plen if plen else end - start
        claimed = min(claimed, max(reported - 40, 0))
        claimed_end = start + claimed
        fragment: tuple[int, bool, int] | None = None
        while _IPV6_EXTENSION[nxt]:
            if end - start < 8:
                return self._malformed(number, "IPv6 extension header cut short")
            if nxt == IPV6_FRAGMENT:
                offset_flags = (data[start + 2] << 8) | data[start + 3]
                ident = int.from_bytes(data[start + 4:start + 8], "big")
                fragment = (offset_flags & 0xFFF8, bool(offset_flags & 1), ident)
                nxt = data[start]
                start += 8
                break
            hdr_len = (data[start + 1] + 2) * 4 if nxt == 51 else (data[start + 1] + 1) * 8
            nxt = data[start]
            start += hdr_len
        if start > end:
            return self._malformed(number, "IPv6 extension header cut short")
        claimed = max(claimed_end - start, 0)
        if fragment is not None:
            self._stats.protocols["ipv6-fragment"] += 1
            frag_offset, more, ident = fragment
            if end - start < claimed:
                self._stats.truncated += 1
                return None
            whole = self.fragments.add((6, src, dst, ident, nxt), frag_offset, more,
                                       data[start:end], ts)
            if whole is None:
                return None
            return self._transport(whole, 0, len(whole), len(whole), 6, src, dst,
                                   nxt, number, ts, interface)
        if nxt == IPV6_NO_NEXT:
            self._stats.protocols["ipv6-no-next"] += 1
            return None
        return self._transport(data, start, end, claimed, 6, src, dst, nxt, number, ts, interface)

    # -- transport layer ----------------------------------------------------------------

    def _transport(self, data: bytes, start: int, end: int, claimed: int, version: int,
                   src: bytes, dst: bytes, proto: int, number: int, ts: float,
                   interface: int) -> Packet | None:
        protocols = self._stats.protocols
        have = end - start
        if proto == PROTO_TCP:
            if have < 20:
                return self._malformed(number, "TCP header cut short")
            sport, dport, seq, ack, doff, flags, window = _TCP.unpack_from(data, start)
            hlen = (doff >> 4) * 4
            if hlen < 20 or hlen > have:
                return self._malformed(number, "bad TCP header length")
            protocols["tcp"] += 1
            # every length from the wire is clamped before it is used: a record whose
            # wire length is below its captured length claims less than the header
            pkt = Packet(number, ts, interface, version, src, dst, proto, sport, dport,
                         data[start + hlen:end], max(claimed - hlen, 0), seq, ack, flags,
                         window, data[start + 20:start + hlen])
        elif proto == PROTO_UDP:
            if have < 8:
                return self._malformed(number, "UDP header cut short")
            sport, dport, ulen = _UDP.unpack_from(data, start)
            protocols["udp"] += 1
            # Trust the UDP length when it fits in what IP claims (Ethernet padding).
            plen = ulen - 8 if 8 <= ulen <= claimed else max(claimed - 8, 0)
            pkt = Packet(number, ts, interface, version, src, dst, proto, sport, dport,
                         data[start + 8:min(end, start + 8 + plen)], plen)
        elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
            if have < 4:
                return self._malformed(number, "ICMP header cut short")
            protocols["icmp" if proto == PROTO_ICMP else "icmpv6"] += 1
            pkt = Packet(number, ts, interface, version, src, dst, proto, data[start],
                         data[start + 1], data[start + 4:end], max(claimed - 4, 0))
        else:
            protocols[IP_PROTO_NAMES.get(proto, f"ip-proto-{proto}")] += 1
            return None
        if pkt.truncated:
            self._stats.truncated += 1
        return pkt

    def _malformed(self, number: int, why: str) -> Any:
        """Count a malformed frame; returns None, so callers `return self._malformed(...)`."""
        self._stats.malformed += 1
        self._stats.warn(f"frame {number}: {why}")
        return None
