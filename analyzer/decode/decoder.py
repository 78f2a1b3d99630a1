"""The frame decoder: link layer, IP, transport, in one pass over the frame's bytes.

The common path (Ethernet or loopback, IPv4/IPv6, TCP/UDP, no fragments) is one
function with precompiled structs; the rarer link types go through `_link_offset`.
Tunnels Wireshark decodes by default (GRE with ERSPAN, WCCP and Ethernet bridging, PPTP,
IP in IP, EtherIP, VXLAN and VXLAN-GPE, Geneve, GTP-U, Teredo, L2TPv2, MPLS in Ethernet,
GRE, IP and UDP, PPPoE sessions) are peeled on the slow path: the Packet is the innermost
TCP/UDP/ICMP datagram, keyed by its own addresses and ports only, as Wireshark keys its
conversations (see docs/tcp.md, "Tunnels").
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
ETH_MPLS: Final = 0x8847
ETH_MPLS_MULTICAST: Final = 0x8848
ETH_PPPOE_SESSION: Final = 0x8864
ETH_BRIDGED: Final = 0x6558  # transparent Ethernet bridging (GRE, Geneve)
GRE_ERSPAN: Final = 0x88BE  # type I without a GRE sequence number, type II with one
GRE_ERSPAN_3: Final = 0x22EB
GRE_PPP: Final = 0x880B  # PPTP's enhanced GRE (version 1), and plain GRE
GRE_WCCP: Final = 0x883E
PPP_IPV4: Final = 0x0021
PPP_IPV6: Final = 0x0057
PROTO_IPV4_IN_IP: Final = 4
PROTO_IPV6_IN_IP: Final = 41
PROTO_GRE: Final = 47
PROTO_ETHERIP: Final = 97
PROTO_MPLS_IN_IP: Final = 137
UDP_L2TP: Final = 1701
UDP_GTP_U: Final = 2152
UDP_TEREDO: Final = 3544
UDP_VXLAN: Final = 4789
UDP_VXLAN_GPE: Final = 4790
UDP_GENEVE: Final = 6081
UDP_SFLOW: Final = 6343
UDP_MPLS: Final = 6635
# Encapsulations Wireshark decodes on these ports that we only count (with a warning).
UDP_NOT_DECODED: Final = {4341: "lisp-data", 5247: "capwap-data"}
# UDP ports that take a datagram off the fast path: the tunnels above, encapsulations we
# count but do not decode, and sFlow (counted: its sampled headers are not connections).
UDP_SPECIAL_PORTS: Final = frozenset({UDP_L2TP, UDP_GTP_U, UDP_TEREDO, UDP_VXLAN,
                                      UDP_VXLAN_GPE, UDP_GENEVE, UDP_SFLOW, UDP_MPLS,
                                      *UDP_NOT_DECODED})
IP_NOT_DECODED: Final = {115: "l2tpv3"}
# Tunnels inside tunnels: enough for any real network, few enough for the stack.
MAX_TUNNEL_DEPTH: Final = 8


def _port_table(ports: frozenset[int]) -> bytes:
    """65,536 bytes, 1 at each of `ports`: a port's test is one indexing."""
    table = bytearray(65536)
    for port in ports:
        table[port] = 1
    return bytes(table)


UDP_SPECIAL: Final = _port_table(UDP_SPECIAL_PORTS)
UDP_SPECIAL_LOW: Final = 1701  # min(UDP_SPECIAL_PORTS); literals compile to immediates
UDP_SPECIAL_HIGH: Final = 6635  # max(UDP_SPECIAL_PORTS)

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
    1: "icmp", 2: "igmp", 4: "ipv4-in-ip", 6: "tcp", 17: "udp", 41: "ipv6-in-ip", 47: "gre",
    50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf", 97: "etherip", 103: "pim", 112: "vrrp",
    115: "l2tpv3", 132: "sctp", 137: "mpls-in-ip",
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
        tunnels: Counter[str] | None = None,
        not_decoded: Counter[str] | None = None,
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
        # frames per tunnel layer decoded ("gre", "vxlan", ...), and per encapsulation
        # seen but not decoded (their inner streams are not analyzed)
        self.tunnels = Counter() if tunnels is None else tunnels
        self.not_decoded = Counter() if not_decoded is None else not_decoded

    def encapsulation_warnings(self) -> list[str]:
        """One warning naming the encapsulations not decoded, if any were seen."""
        if not self.not_decoded:
            return []
        seen = ", ".join(f"{name} ({count})" for name, count in self.not_decoded.most_common())
        return [f"encapsulated traffic not decoded: {seen} frames; TCP streams and TFTP "
                "transfers inside them are not analyzed (Wireshark may number streams "
                "inside some of them, shifting later tcp.stream numbers)"]

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
        self._tunnel_depth = 0  # tunnels being peeled in the current frame

    def decode(self, frame: Frame, number: int) -> Packet | None:
        ts, linktype, interface = frame.ts, frame.linktype, frame.interface
        data, wirelen = frame.data, frame.wirelen
        stats = self._stats
        stats.packets += 1
        stats.bytes += len(data)
        stats.wire_bytes += wirelen
        if wirelen < len(data):
            # A record claiming less on the wire than it holds (broken or mutated): the
            # bytes captured were there, as tshark takes them (a TCP length of -65
            # from a wire length of 1 reached the ladder's records).
            wirelen = len(data)
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
                    sport = data[34] << 8 | data[35]
                    dport = data[36] << 8 | data[37]
                    # Tunnel ports leave the fast path. Range tests first: compiled, they
                    # are register work, where indexing the table misses the cache.
                    if 8 <= ulen <= claimed and not (
                            UDP_SPECIAL_LOW <= sport <= UDP_SPECIAL_HIGH and UDP_SPECIAL[sport]
                            or UDP_SPECIAL_LOW <= dport <= UDP_SPECIAL_HIGH
                            and UDP_SPECIAL[dport]):
                        counts[1] += 1
                        payload_end = 34 + ulen
                        if payload_end > end:  # cut by the snaplen (no min(): a call)
                            payload_end = end
                            stats.truncated += 1
                        return Packet(number, ts, interface, 4, data[26:30], data[30:34],
                                      PROTO_UDP, sport, dport, data[42:payload_end],
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
            else:  # MPLS, PPPoE, or not IP
                located = self._ethertype_offset(ethertype, off, data, number)
                if located is None:
                    return None
                version, off = located
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
        """(IP version, offset of the IP header) behind an EtherType at `off`: through
        VLAN tags, an MPLS label stack and a PPPoE session header; None when not IP."""
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
        if ethertype == ETH_MPLS or ethertype == ETH_MPLS_MULTICAST:
            return self._mpls(data, off, number)
        if ethertype == ETH_PPPOE_SESSION:
            return self._pppoe(data, off, number)
        self._count_ethertype(ethertype)
        return None

    def _mpls(self, data: bytes, off: int, number: int) -> tuple[int, int] | None:
        """Past the label stack to its payload. As Wireshark does without a label
        configured, the payload's first nibble tells IPv4 (4) from IPv6 (6); anything
        else (pseudowires, control words) is counted as not decoded."""
        self._stats.protocols["mpls"] += 1
        while True:
            if len(data) < off + 4:
                return self._malformed(number, "MPLS label stack cut short")
            bottom = data[off + 2] & 1
            off += 4
            if bottom:
                break
        self._stats.tunnels["mpls"] += 1
        if off < len(data):
            version = data[off] >> 4
            if version == 4 or version == 6:
                return version, off
        self._stats.not_decoded["mpls-non-ip"] += 1
        return None

    def _pppoe(self, data: bytes, off: int, number: int) -> tuple[int, int] | None:
        """A PPPoE session header, then PPP's protocol field (RFC 2516)."""
        if len(data) < off + 8:
            return self._malformed(number, "PPPoE session header cut short")
        self._stats.protocols["pppoe"] += 1
        self._stats.tunnels["pppoe"] += 1
        version = self._ppp_ip_version((data[off + 6] << 8) | data[off + 7])
        return (version, off + 8) if version else None

    def _ppp_ip_version(self, ppp: int) -> int:
        """4 or 6 for PPP's IPv4 and IPv6 protocols; 0 (counted) for the others."""
        if ppp == PPP_IPV4:
            return 4
        if ppp == PPP_IPV6:
            return 6
        if ppp < 0x4000:  # a network-layer protocol other than IP (RFC 1661)
            self._stats.not_decoded[f"ppp-{ppp:#06x}"] += 1
        else:  # link and network control (LCP, IPCP, authentication): no traffic inside
            self._stats.protocols[f"ppp-{ppp:#06x}"] += 1
        return 0

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
            payload_end = min(end, start + 8 + plen)
            pkt = Packet(number, ts, interface, version, src, dst, proto, sport, dport,
                         data[start + 8:payload_end], plen)
            if UDP_SPECIAL[sport] or UDP_SPECIAL[dport]:
                inner = self._udp_special(pkt, data, start + 8, payload_end, number)
                if inner is not pkt:
                    return inner
        elif proto == PROTO_ICMP or proto == PROTO_ICMPV6:
            if have < 4:
                return self._malformed(number, "ICMP header cut short")
            protocols["icmp" if proto == PROTO_ICMP else "icmpv6"] += 1
            pkt = Packet(number, ts, interface, version, src, dst, proto, data[start],
                         data[start + 1], data[start + 4:end], max(claimed - 4, 0))
        else:
            protocols[IP_PROTO_NAMES.get(proto, f"ip-proto-{proto}")] += 1
            if proto == PROTO_GRE:
                return self._gre(data, start, end, claimed, number, ts, interface)
            if proto == PROTO_IPV4_IN_IP or proto == PROTO_IPV6_IN_IP:
                carried = 4 if proto == PROTO_IPV4_IN_IP else 6
                self._stats.tunnels[f"ipv{carried}-in-ipv{version}"] += 1
                return self._inner_ip(carried, data, start, end, claimed, number, ts,
                                      interface)
            if proto == PROTO_ETHERIP:  # RFC 3378: a 2-byte header, then Ethernet
                if end - start < 2:
                    return self._malformed(number, "EtherIP header cut short")
                self._stats.tunnels["etherip"] += 1
                return self._inner_ethernet(data, start + 2, end, claimed - 2, number, ts,
                                            interface)
            if proto == PROTO_MPLS_IN_IP:
                return self._inner_mpls(data, start, end, claimed, number, ts, interface)
            if proto in IP_NOT_DECODED:
                self._stats.not_decoded[IP_NOT_DECODED[proto]] += 1
            return None
        if pkt.truncated:
            self._stats.truncated += 1
        return pkt

    # -- tunnels ------------------------------------------------------------------------
    # `start`/`end`: where the tunnel's header starts and its captured bytes end;
    # `claimed`: its length as the outer header claims it (as for `_transport`).

    def _inner_ip(self, version: int, data: bytes, off: int, end: int, claimed: int,
                  number: int, ts: float, interface: int) -> Packet | None:
        """The IP datagram a tunnel carries at `off`, decoded like an outer one."""
        if self._tunnel_depth >= MAX_TUNNEL_DEPTH:
            return self._malformed(number, f"tunnels nested more than {MAX_TUNNEL_DEPTH} deep")
        if end < len(data):
            data = data[:end]  # the outer datagram's bytes only, not its frame's padding
        self._tunnel_depth += 1
        try:
            if version == 4:
                return self._ipv4(data, off, max(claimed, 0), number, ts, interface)
            return self._ipv6(data, off, max(claimed, 0), number, ts, interface)
        finally:
            self._tunnel_depth -= 1

    def _inner_ethernet(self, data: bytes, off: int, end: int, claimed: int, number: int,
                        ts: float, interface: int) -> Packet | None:
        """An Ethernet frame a tunnel carries at `off` (no FCS, as Wireshark assumes)."""
        if end < len(data):
            data = data[:end]
        if end - off < 14:
            return self._malformed(number, "tunnelled Ethernet header cut short")
        located = self._ethertype_offset((data[off + 12] << 8) | data[off + 13], off + 14,
                                         data, number)
        return self._inner_located(located, data, off, end, claimed, number, ts, interface)

    def _inner_mpls(self, data: bytes, off: int, end: int, claimed: int, number: int,
                    ts: float, interface: int) -> Packet | None:
        """An MPLS label stack a tunnel carries at `off` (MPLS in GRE, IP, UDP)."""
        if end < len(data):
            data = data[:end]
        located = self._mpls(data, off, number)
        return self._inner_located(located, data, off, end, claimed, number, ts, interface)

    def _inner_located(self, located: tuple[int, int] | None, data: bytes, off: int,
                       end: int, claimed: int, number: int, ts: float,
                       interface: int) -> Packet | None:
        """The IP datagram found (`located`: version and offset) behind the link-layer
        headers a tunnel carries at `off`."""
        if located is None:
            return None
        version, ip_off = located
        return self._inner_ip(version, data, ip_off, end, claimed - (ip_off - off), number,
                              ts, interface)

    def _inner_ppp(self, data: bytes, off: int, end: int, claimed: int, number: int,
                   ts: float, interface: int) -> Packet | None:
        """A PPP frame a tunnel carries at `off` (PPTP, L2TP): the address and control
        bytes may be left out, and the protocol field compressed to one byte (RFC 1661)."""
        start = off
        if end - off >= 2 and data[off] == 0xFF and data[off + 1] == 0x03:
            off += 2
        if end - off < 1 or (not data[off] & 1 and end - off < 2):
            return self._malformed(number, "PPP header cut short")
        if data[off] & 1:  # an odd first byte: the protocol in one byte
            ppp = data[off]
            off += 1
        else:
            ppp = (data[off] << 8) | data[off + 1]
            off += 2
        version = self._ppp_ip_version(ppp)
        if not version:
            return None
        return self._inner_ip(version, data, off, end, claimed - (off - start), number, ts,
                              interface)

    def _gre(self, data: bytes, start: int, end: int, claimed: int, number: int, ts: float,
             interface: int) -> Packet | None:
        """GRE (RFC 2784/2890), PPTP's enhanced GRE (RFC 2637), and what they carry."""
        if end - start < 4:
            return self._malformed(number, "GRE header cut short")
        flags = data[start]
        gre_version = data[start + 1] & 7
        ptype = (data[start + 2] << 8) | data[start + 3]
        if gre_version > 1:
            self._stats.not_decoded[f"gre-version-{gre_version}"] += 1
            return None
        if flags & 0x40:  # routing present (RFC 1701, deprecated)
            self._stats.not_decoded["gre-routing"] += 1
            return None
        off = start + 4
        if flags & 0x80:  # checksum and reserved
            off += 4
        if flags & 0x20:  # key (PPTP: payload length and call id)
            off += 4
        sequenced = bool(flags & 0x10)
        if sequenced:
            off += 4
        if gre_version == 1 and data[start + 1] & 0x80:  # PPTP's acknowledgment number
            off += 4
        if off > end:
            return self._malformed(number, "GRE header cut short")
        self._stats.tunnels["pptp" if gre_version == 1 else "gre"] += 1
        claimed -= off - start
        if ptype == GRE_PPP:
            if off == end:
                return None  # PPTP: an acknowledgment alone
            return self._inner_ppp(data, off, end, claimed, number, ts, interface)
        if gre_version == 1:
            self._stats.not_decoded[f"pptp-{ptype:#06x}"] += 1
            return None
        if ptype == GRE_WCCP:
            # WCCP 2 puts a 4-byte redirect header before the IPv4 datagram; version 1
            # does not. As Wireshark tells them apart: is the first nibble an IPv4's?
            if off < end and data[off] >> 4 != 4:
                off += 4
                claimed -= 4
            self._stats.tunnels["wccp"] += 1
            return self._inner_ip(4, data, off, end, claimed, number, ts, interface)
        if ptype == ETH_IPV4 or ptype == ETH_IPV6:
            return self._inner_ip(4 if ptype == ETH_IPV4 else 6, data, off, end, claimed,
                                  number, ts, interface)
        if ptype == ETH_BRIDGED:
            return self._inner_ethernet(data, off, end, claimed, number, ts, interface)
        if ptype == GRE_ERSPAN and not sequenced:  # type I: no header of its own
            self._stats.tunnels["erspan"] += 1
            return self._inner_ethernet(data, off, end, claimed, number, ts, interface)
        if ptype == GRE_ERSPAN:  # type II: 8 bytes
            if end - off < 8:
                return self._malformed(number, "ERSPAN header cut short")
            self._stats.tunnels["erspan"] += 1
            return self._inner_ethernet(data, off + 8, end, claimed - 8, number, ts,
                                        interface)
        if ptype == GRE_ERSPAN_3:  # type III: 12 bytes, 8 more with the O flag
            if end - off < 12:
                return self._malformed(number, "ERSPAN header cut short")
            size = 20 if data[off + 11] & 1 else 12
            frame_type = (data[off + 10] >> 2) & 0x1F
            if frame_type != 0:  # 0 is Ethernet
                self._stats.not_decoded[f"erspan-frame-type-{frame_type}"] += 1
                return None
            self._stats.tunnels["erspan"] += 1
            return self._inner_ethernet(data, off + size, end, claimed - size, number, ts,
                                        interface)
        if ptype == ETH_MPLS or ptype == ETH_MPLS_MULTICAST:
            return self._inner_mpls(data, off, end, claimed, number, ts, interface)
        self._stats.not_decoded[f"gre-{ptype:#06x}"] += 1
        return None

    def _udp_special(self, outer: Packet, data: bytes, off: int, end: int,
                     number: int) -> Packet | None:
        """A UDP datagram on a tunnel port (its payload at `off`): the tunnelled packet
        when Wireshark would decode one, else the datagram itself. Wireshark tries the
        lower port first; a well-known lower port (DNS, TFTP, ...) keeps the datagram."""
        sport, dport = outer.sport, outer.dport
        low, high = (sport, dport) if sport <= dport else (dport, sport)
        port = low if low in UDP_SPECIAL_PORTS else (high if low >= 1024 else 0)
        if port == 0:
            return outer
        if port == UDP_SFLOW:
            self._stats.protocols["sflow"] += 1  # samples are not connections (docs/tcp.md)
            return outer
        if port in UDP_NOT_DECODED:
            self._stats.not_decoded[UDP_NOT_DECODED[port]] += 1
            return outer
        claimed = outer.payload_len
        ts, interface = outer.ts, outer.interface
        if port == UDP_GTP_U:
            return self._gtp_u(outer, data, off, end, number)
        if port == UDP_MPLS:
            return self._inner_mpls(data, off, end, claimed, number, ts, interface)
        if port == UDP_TEREDO:
            return self._teredo(outer, data, off, end, number)
        if port == UDP_L2TP:
            return self._l2tp(outer, data, off, end, number)
        if port == UDP_VXLAN_GPE:
            # draft-ietf-nvo3-vxlan-gpe: 8 bytes, the payload's protocol in the 4th
            if end - off < 8:
                return self._malformed(number, "VXLAN-GPE header cut short")
            self._stats.tunnels["vxlan-gpe"] += 1
            following = data[off + 3]
            if following == 1 or following == 2:
                return self._inner_ip(4 if following == 1 else 6, data, off + 8, end,
                                      claimed - 8, number, ts, interface)
            if following == 3:
                return self._inner_ethernet(data, off + 8, end, claimed - 8, number, ts,
                                            interface)
            if following == 5:
                return self._inner_mpls(data, off + 8, end, claimed - 8, number, ts,
                                        interface)
            self._stats.not_decoded[f"vxlan-gpe-{following}"] += 1
            return None
        if port == UDP_VXLAN:
            if end - off < 8:
                return self._malformed(number, "VXLAN header cut short")
            self._stats.tunnels["vxlan"] += 1
            return self._inner_ethernet(data, off + 8, end, claimed - 8, number, ts,
                                        interface)
        if port == UDP_GENEVE:
            if end - off < 8:
                return self._malformed(number, "Geneve header cut short")
            size = 8 + (data[off] & 0x3F) * 4
            ptype = (data[off + 2] << 8) | data[off + 3]
            if end - off < size:
                return self._malformed(number, "Geneve options cut short")
            if ptype == ETH_BRIDGED:
                self._stats.tunnels["geneve"] += 1
                return self._inner_ethernet(data, off + size, end, claimed - size, number,
                                            ts, interface)
            if ptype == ETH_IPV4 or ptype == ETH_IPV6:
                self._stats.tunnels["geneve"] += 1
                return self._inner_ip(4 if ptype == ETH_IPV4 else 6, data, off + size, end,
                                      claimed - size, number, ts, interface)
            self._stats.not_decoded[f"geneve-{ptype:#06x}"] += 1
            return None
        return outer

    def _teredo(self, outer: Packet, data: bytes, off: int, end: int,
                number: int) -> Packet | None:
        """Teredo (RFC 4380): IPv6 in UDP, after an optional authentication indicator
        and an optional origin indication; anything else stays a UDP datagram."""
        inner = off
        if end - inner >= 4 and data[inner] == 0 and data[inner + 1] == 1:
            inner += 4 + data[inner + 2] + data[inner + 3] + 9  # ids, nonce, confirmation
        if end - inner >= 8 and data[inner] == 0 and data[inner + 1] == 0:
            inner += 8
        if end - inner < 40 or data[inner] >> 4 != 6:
            return outer
        self._stats.tunnels["teredo"] += 1
        return self._inner_ip(6, data, inner, end, outer.payload_len - (inner - off), number,
                              outer.ts, outer.interface)

    def _l2tp(self, outer: Packet, data: bytes, off: int, end: int,
              number: int) -> Packet | None:
        """L2TP version 2 (RFC 2661) data messages: the PPP frame they carry. Control
        messages stay UDP datagrams; L2TPv3 over UDP is counted, not decoded."""
        if end - off < 6:
            return outer
        flags = (data[off] << 8) | data[off + 1]
        if flags & 0x0F != 2:
            self._stats.not_decoded[f"l2tp-version-{flags & 0x0F}"] += 1
            return outer
        if flags & 0x8000:  # a control message
            return outer
        claimed = outer.payload_len
        if flags & 0x4000:  # the message's length: what follows it is not the message's
            length = (data[off + 2] << 8) | data[off + 3]
            end = min(end, off + length)
            claimed = min(claimed, length)
        inner = off + 2 + (2 if flags & 0x4000 else 0) + 4  # length; tunnel and session
        if flags & 0x0800:  # Ns and Nr
            inner += 4
        if flags & 0x0200:  # offset size, then that much padding
            if end - inner < 2:
                return self._malformed(number, "L2TP header cut short")
            inner += 2 + ((data[inner] << 8) | data[inner + 1])
        if inner > end:
            return self._malformed(number, "L2TP header cut short")
        self._stats.tunnels["l2tp"] += 1
        return self._inner_ppp(data, inner, end, claimed - (inner - off), number, outer.ts,
                               outer.interface)

    def _gtp_u(self, outer: Packet, data: bytes, off: int, end: int,
               number: int) -> Packet | None:
        """GTP-U (3GPP TS 29.281): a G-PDU's IP packet; signalling (echo, error
        indication, end marker) and GTP' are left as the UDP datagram they are."""
        if end - off < 8 or data[off] >> 4 != 0x3 or data[off + 1] != 0xFF:
            return outer  # not GTPv1 with PT=1, or not a G-PDU
        size = 8
        if data[off] & 0x07:  # E, S or PN: sequence number, N-PDU number, next extension
            size = 12
            if end - off < size:
                return self._malformed(number, "GTP-U header cut short")
            following = data[off + 11] if data[off] & 0x04 else 0
            while following:
                if end - off < size + 1 or not data[off + size]:
                    return self._malformed(number, "GTP-U extension header cut short")
                size += data[off + size] * 4
                if end - off < size:
                    return self._malformed(number, "GTP-U extension header cut short")
                following = data[off + size - 1]
        self._stats.tunnels["gtp-u"] += 1
        if end - off > size:
            version = data[off + size] >> 4
            if version == 4 or version == 6:
                return self._inner_ip(version, data, off + size, end,
                                      outer.payload_len - size, number, outer.ts,
                                      outer.interface)
        self._stats.not_decoded["gtp-u-non-ip"] += 1
        return None

    def _malformed(self, number: int, why: str) -> Any:
        """Count a malformed frame; returns None, so callers `return self._malformed(...)`."""
        self._stats.malformed += 1
        self._stats.warn(f"frame {number}: {why}")
        return None
