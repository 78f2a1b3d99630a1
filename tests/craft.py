"""Crafted test captures whose truth is known by construction.

Each builder writes a capture file into a folder and returns a `CraftedCapture`: the
path plus, for every frame, the exact timestamp, link type, interface, captured bytes,
original length, and what the decoder must make of it (`Expect`: the 5-tuple and
payload of the TCP/UDP/ICMP packet, or nothing for ARP, unsupported link types and
fragments still held back).

Network-layer datagrams are built with scapy (an independent implementation of IP,
TCP, UDP, ICMP, fragmentation). Link-layer headers and the file formats are written
here with `struct`, because the point is to control every byte the reader meets:
pcap in both byte orders and both timestamp resolutions, pcapng with several
sections (one big-endian), interfaces with different link types and if_tsresol
values, Simple Packet Blocks, unknown blocks, and damage part-way.

    from tests.craft import build_all
    captures = build_all(tmp_path)          # {name: CraftedCapture}
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP

# Link types (LINKTYPE_* numbers from tcpdump.org), spelled out here so the tests do
# not take them from the code under test.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_NFLOG = 239
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINKTYPES = frozenset({
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_NFLOG, LINKTYPE_LINUX_SLL2,
})

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8

AF_INET = 2
AF_INET6_BSD = (24, 28, 30)  # NetBSD/OpenBSD, FreeBSD, macOS/Darwin
AF_INET6_LINUX = 10  # NFLOG carries the Linux family numbers

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_ICMPV6 = 58

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D

# A fixed start time with sub-microsecond digits, so a reader that drops them shows.
BASE_TIME = Fraction(1_700_000_000)


# ---------------------------------------------------------------------------
# Truth records
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Expect:
    """What the decoder must return for a frame (one TCP/UDP/ICMP packet)."""

    version: int
    src: str
    dst: str
    proto: int
    sport: int  # for ICMP/ICMPv6: the type
    dport: int  # for ICMP/ICMPv6: the code
    payload: bytes  # transport payload (ICMP: the body after type/code/checksum)
    payload_len: int | None = None  # when it differs from len(payload): snaplen cut
    tcp_flags: int | None = None
    seq: int | None = None
    ack: int | None = None


@dataclass(frozen=True)
class Datagram:
    """A network-layer datagram and what it counts as."""

    data: bytes
    ethertype: int  # ETHERTYPE_IPV4, ETHERTYPE_IPV6 or ETHERTYPE_ARP
    category: str  # "tcp", "udp", "icmp", "icmpv6", "arp", "fragment"
    expect: Expect | None  # None: the decoder returns None for it

    @property
    def version(self) -> int:
        return {ETHERTYPE_IPV4: 4, ETHERTYPE_IPV6: 6}.get(self.ethertype, 0)


@dataclass(frozen=True)
class CraftedFrame:
    """One frame as the reader must yield it."""

    ts: Fraction | None  # exact time; None for a Simple Packet Block (it has none)
    linktype: int
    interface: int  # pcapng interface id counted across sections; 0 for pcap
    data: bytes  # the captured bytes
    wirelen: int
    category: str  # as Datagram.category, or "unsupported-link"
    expect: Expect | None


@dataclass
class CraftedInterface:
    id: int  # counted across sections
    linktype: int
    tsresol: int | None  # the if_tsresol option byte; None = option absent (10^-6)
    snaplen: int
    name: str | None = None

    @property
    def units_per_second(self) -> int:
        return resolution_units(self.tsresol)


@dataclass
class CraftedCapture:
    name: str
    path: Path
    format: str  # "pcap", "pcap-nsec" or "pcapng"
    compressed: bool
    frames: list[CraftedFrame]
    interfaces: list[CraftedInterface] = field(default_factory=list)
    sections: int = 1
    byte_order: str = "little"  # of the first section / the file
    damaged: bool = False  # the frames listed are those before the damage

    @property
    def linktypes(self) -> set[int]:
        return {frame.linktype for frame in self.frames}

    def expected_packets(self) -> list[tuple[int, Expect]]:
        """(1-based frame number, Expect) for every frame that yields a packet."""
        return [(n, f.expect) for n, f in enumerate(self.frames, 1) if f.expect is not None]


def resolution_units(tsresol: int | None) -> int:
    """Timestamp units per second for a pcapng if_tsresol option byte."""
    if tsresol is None:
        return 10**6
    if tsresol & 0x80:
        return 2 ** (tsresol & 0x7F)
    return 10**tsresol


# ---------------------------------------------------------------------------
# Network-layer datagrams (scapy builds them; truth comes from the arguments)
# ---------------------------------------------------------------------------

TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20}


def tcp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes = b"",
                 flags: str = "PA", seq: int = 1000, ack: int = 2000,
                 ip_options: list | None = None) -> Datagram:
    version = 6 if ":" in src else 4
    transport = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload
    if version == 4:
        packet = IP(src=src, dst=dst, options=ip_options or []) / transport
    else:
        packet = IPv6(src=src, dst=dst) / transport
    bits = sum(TCP_FLAG_BITS[letter] for letter in flags)
    return Datagram(
        bytes(packet), ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6, "tcp",
        Expect(version, src, dst, PROTO_TCP, sport, dport, payload, tcp_flags=bits,
               seq=seq, ack=ack),
    )


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes,
                 ip_options: list | None = None) -> Datagram:
    version = 6 if ":" in src else 4
    if version == 4:
        packet = IP(src=src, dst=dst, options=ip_options or []) / UDP(sport=sport, dport=dport)
    else:
        packet = IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport)
    return Datagram(
        bytes(packet / payload), ETHERTYPE_IPV4 if version == 4 else ETHERTYPE_IPV6, "udp",
        Expect(version, src, dst, PROTO_UDP, sport, dport, payload),
    )


def icmp_echo_datagram(src: str, dst: str, ident: int, payload: bytes) -> Datagram:
    """ICMP / ICMPv6 echo request; the decoder reports type/code as sport/dport and the
    body after the 4-byte type/code/checksum (identifier, sequence, data) as payload."""
    if ":" in src:
        packet = IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=ident, seq=1, data=payload)
        body = struct.pack("!HH", ident, 1) + payload
        return Datagram(bytes(packet), ETHERTYPE_IPV6, "icmpv6",
                        Expect(6, src, dst, PROTO_ICMPV6, 128, 0, body))
    packet = IP(src=src, dst=dst) / ICMP(type=8, code=0, id=ident, seq=1) / payload
    body = struct.pack("!HH", ident, 1) + payload
    return Datagram(bytes(packet), ETHERTYPE_IPV4, "icmp",
                    Expect(4, src, dst, PROTO_ICMP, 8, 0, body))


def arp_datagram(sender_ip: str, target_ip: str) -> Datagram:
    arp = ARP(op=1, hwsrc="02:00:00:00:00:01", psrc=sender_ip, pdst=target_ip)
    return Datagram(bytes(arp), ETHERTYPE_ARP, "arp", None)


def ipv4_fragments(src: str, dst: str, sport: int, dport: int, payload: bytes,
                   fragsize: int, order: Sequence[int] | None = None,
                   ident: int = 0x4242) -> list[Datagram]:
    """A UDP datagram cut into IPv4 fragments, in `order` (indexes; default in order).

    The fragment that arrives last completes the datagram: it carries the Expect, the
    others are held back by the decoder (category "fragment", no Expect).
    """
    whole = IP(src=src, dst=dst, id=ident) / UDP(sport=sport, dport=dport) / payload
    pieces = [bytes(p) for p in fragment(whole, fragsize=fragsize)]
    assert len(pieces) >= 2
    return _fragment_datagrams(pieces, order, ETHERTYPE_IPV4,
                               Expect(4, src, dst, PROTO_UDP, sport, dport, payload))


def ipv6_fragments(src: str, dst: str, sport: int, dport: int, payload: bytes,
                   fragsize: int, order: Sequence[int] | None = None,
                   ident: int = 0x1234567, hop_by_hop: bool = False) -> list[Datagram]:
    """A UDP datagram cut into IPv6 fragments (fragment extension header), optionally
    behind a hop-by-hop header (part of the unfragmentable part, repeated in each)."""
    header = IPv6(src=src, dst=dst)
    if hop_by_hop:
        header = header / IPv6ExtHdrHopByHop()
    whole = header / IPv6ExtHdrFragment(id=ident) / UDP(sport=sport, dport=dport) / payload
    pieces = [bytes(p) for p in fragment6(whole, fragsize)]
    assert len(pieces) >= 2
    return _fragment_datagrams(pieces, order, ETHERTYPE_IPV6,
                               Expect(6, src, dst, PROTO_UDP, sport, dport, payload))


def _fragment_datagrams(pieces: list[bytes], order: Sequence[int] | None, ethertype: int,
                        expect: Expect) -> list[Datagram]:
    order = list(order) if order is not None else list(range(len(pieces)))
    assert sorted(order) == list(range(len(pieces))), "order must list every fragment once"
    result = [Datagram(pieces[i], ethertype, "fragment", None) for i in order]
    result[-1] = replace(result[-1], category="udp", expect=expect)
    return result


def ipv6_extension_datagrams() -> list[Datagram]:
    """UDP and TCP behind IPv6 hop-by-hop, routing and destination options headers."""
    src, dst = "2001:db8::10", "2001:db8::20"
    udp_payload = b"behind hop-by-hop, routing and destination options"
    udp_packet = (IPv6(src=src, dst=dst) / IPv6ExtHdrHopByHop()
                  / IPv6ExtHdrRouting(addresses=["2001:db8::99"], segleft=0)
                  / IPv6ExtHdrDestOpt() / UDP(sport=5353, dport=5354) / udp_payload)
    tcp_payload = b"tcp behind a destination options header"
    tcp_packet = (IPv6(src=dst, dst=src) / IPv6ExtHdrDestOpt()
                  / TCP(sport=8080, dport=40000, flags="PA", seq=77, ack=88) / tcp_payload)
    return [
        Datagram(bytes(udp_packet), ETHERTYPE_IPV6, "udp",
                 Expect(6, src, dst, PROTO_UDP, 5353, 5354, udp_payload)),
        Datagram(bytes(tcp_packet), ETHERTYPE_IPV6, "tcp",
                 Expect(6, dst, src, PROTO_TCP, 8080, 40000, tcp_payload, tcp_flags=0x18,
                        seq=77, ack=88)),
    ]


def ipv4_options_datagrams() -> list[Datagram]:
    """TCP and UDP behind IPv4 options (router alert, NOPs): IHL > 5."""
    options = [IPOption_Router_Alert(), IPOption_NOP(), IPOption_NOP(), IPOption_NOP(),
               IPOption_NOP()]
    return [
        tcp_datagram("192.0.2.1", "192.0.2.2", 33000, 80, b"GET / with IP options\r\n",
                     ip_options=options),
        udp_datagram("192.0.2.2", "192.0.2.1", 53, 33001, b"udp with ip options",
                     ip_options=options),
    ]


def mixed_datagrams(ipv6: bool = True, arp: bool = True) -> list[Datagram]:
    """A small, varied mix: a TCP exchange, UDP both ways, ICMP echo, IPv6, ARP."""
    items = [
        tcp_datagram("10.0.0.1", "10.0.0.2", 40001, 80, flags="S", seq=100, ack=0),
        tcp_datagram("10.0.0.2", "10.0.0.1", 80, 40001, flags="SA", seq=500, ack=101),
        tcp_datagram("10.0.0.1", "10.0.0.2", 40001, 80, b"hello server", seq=101, ack=501),
        tcp_datagram("10.0.0.2", "10.0.0.1", 80, 40001, b"hello client, longer reply",
                     seq=501, ack=113),
        udp_datagram("10.0.0.3", "10.0.0.4", 5000, 69, b"\x00\x01file\x00octet\x00"),
        icmp_echo_datagram("10.0.0.4", "10.0.0.3", 0x77, b"ping!"),
    ]
    if ipv6:
        items += [
            tcp_datagram("2001:db8::1", "2001:db8::2", 50000, 443, b"v6 tcp data",
                         seq=7, ack=9),
            udp_datagram("2001:db8::2", "2001:db8::1", 547, 546, b"v6 udp data"),
            icmp_echo_datagram("2001:db8::1", "2001:db8::2", 0x66, b"ping6"),
        ]
    if arp:
        items.append(arp_datagram("10.0.0.1", "10.0.0.2"))
    return items


# ---------------------------------------------------------------------------
# Link layers
# ---------------------------------------------------------------------------

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


def ethernet(datagram: Datagram, vlans: Sequence[tuple[int, int]] = ()) -> bytes:
    """Ethernet II; `vlans` is a list of (TPID, VLAN id), outermost first."""
    tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
    return MAC_B + MAC_A + tags + struct.pack("!H", datagram.ethertype) + datagram.data


def linux_sll(datagram: Datagram) -> bytes:
    """Linux cooked capture v1: type, ARPHRD, address length, 8 address bytes, protocol."""
    return struct.pack("!HHH8sH", 4, 1, 6, MAC_A, datagram.ethertype) + datagram.data


def linux_sll2(datagram: Datagram) -> bytes:
    """Linux cooked capture v2: protocol, reserved, ifindex, ARPHRD, type, addr len, addr."""
    return struct.pack("!HHIHBB8s", datagram.ethertype, 0, 3, 1, 0, 6, MAC_A) + datagram.data


def bsd_null(datagram: Datagram, byteorder: str, af_inet6: int = 30) -> bytes:
    """BSD loopback (DLT_NULL): the address family in the capturing host's byte order."""
    family = AF_INET if datagram.version == 4 else af_inet6
    return struct.pack(byteorder + "I", family) + datagram.data


def bsd_loop(datagram: Datagram, af_inet6: int = 24) -> bytes:
    """OpenBSD loopback (DLT_LOOP): the address family in network byte order."""
    family = AF_INET if datagram.version == 4 else af_inet6
    return struct.pack("!I", family) + datagram.data


def nflog(datagram: Datagram, byteorder: str = "<") -> bytes:
    """Linux NFLOG: a 4-byte header then TLVs (length and type in the capturing host's
    byte order, which is the capture file's); the packet is the NFULA_PAYLOAD (9) TLV."""
    family = AF_INET if datagram.version == 4 else AF_INET6_LINUX
    header = struct.pack("!BBH", family, 0, 7)  # family, version 0, resource id (BE)

    def tlv(tlv_type: int, value: bytes) -> bytes:
        body = struct.pack(byteorder + "HH", 4 + len(value), tlv_type) + value
        return body + b"\x00" * (-len(body) % 4)

    return (header
            + tlv(1, struct.pack("!HBB", datagram.ethertype, 3, 0))  # NFULA_PACKET_HDR
            + tlv(10, b"test-prefix\x00")  # NFULA_PREFIX
            + tlv(9, datagram.data))  # NFULA_PAYLOAD


def raw_ip(datagram: Datagram) -> bytes:
    return datagram.data


def ieee80211_beacon(seq: int) -> bytes:
    """An 802.11 beacon management frame: a link type the analyzer does not decode."""
    header = struct.pack("<HH6s6s6sH", 0x0080, 0, b"\xff" * 6, MAC_A, MAC_A, seq << 4)
    body = struct.pack("<QHH", 0x1000 + seq, 100, 0x0401) + b"\x00\x04test"
    return header + body


def encapsulate(datagram: Datagram, linktype: int, *, null_byteorder: str = "<",
                af_inet6: int = 30, vlans: Sequence[tuple[int, int]] = (),
                file_byteorder: str = "<") -> bytes:
    if linktype == LINKTYPE_ETHERNET:
        return ethernet(datagram, vlans)
    if linktype == LINKTYPE_LINUX_SLL:
        return linux_sll(datagram)
    if linktype == LINKTYPE_LINUX_SLL2:
        return linux_sll2(datagram)
    if linktype == LINKTYPE_NULL:
        return bsd_null(datagram, null_byteorder, af_inet6)
    if linktype == LINKTYPE_LOOP:
        return bsd_loop(datagram, af_inet6)
    if linktype == LINKTYPE_NFLOG:
        return nflog(datagram, file_byteorder)
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        return raw_ip(datagram)
    raise ValueError(f"cannot encapsulate in link type {linktype}")


def frames_for(datagrams: Iterable[Datagram], linktype: int, times: Iterable[Fraction],
               interface: int = 0, snaplen: int | None = None,
               **link_options) -> list[CraftedFrame]:
    """Frames carrying `datagrams` on `linktype`, cut to `snaplen` when given."""
    frames = []
    for datagram, ts in zip(datagrams, times, strict=False):
        data = encapsulate(datagram, linktype, **link_options)
        frames.append(_frame(ts, linktype, interface, data, datagram.category,
                             datagram.expect, snaplen))
    return frames


def _frame(ts: Fraction | None, linktype: int, interface: int, data: bytes, category: str,
           expect: Expect | None, snaplen: int | None = None) -> CraftedFrame:
    wirelen = len(data)
    if snaplen is not None and len(data) > snaplen:
        cut = len(data) - snaplen
        data = data[:snaplen]
        if expect is not None:
            kept = len(expect.payload) - cut
            assert kept >= 0, "snaplen must keep the headers"
            expect = replace(expect, payload=expect.payload[:kept],
                             payload_len=len(expect.payload))
    return CraftedFrame(ts, linktype, interface, data, wirelen, category, expect)


def times(start: Fraction, step: Fraction, count: int = 1000) -> list[Fraction]:
    return [start + i * step for i in range(count)]


# ---------------------------------------------------------------------------
# pcap writer
# ---------------------------------------------------------------------------

def pcap_bytes(frames: Sequence[CraftedFrame], linktype: int, *, nanos: bool = False,
               byteorder: str = "<", snaplen: int = 262144) -> bytes:
    magic = PCAP_MAGIC_NSEC if nanos else PCAP_MAGIC_USEC
    out = [struct.pack(byteorder + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    units = 10**9 if nanos else 10**6
    for frame in frames:
        assert frame.ts is not None and frame.linktype == linktype
        seconds = int(frame.ts)
        fraction = (frame.ts - seconds) * units
        assert fraction.denominator == 1, f"{frame.ts} is not a whole number of units"
        out.append(struct.pack(byteorder + "IIII", seconds, int(fraction), len(frame.data),
                               frame.wirelen))
        out.append(frame.data)
    return b"".join(out)


# ---------------------------------------------------------------------------
# pcapng writer
# ---------------------------------------------------------------------------

class PcapngWriter:
    """A small pcapng writer: sections in either byte order, interfaces with any link
    type and if_tsresol, EPB/SPB, comments, unknown blocks; records the truth as it goes.
    """

    def __init__(self) -> None:
        self.blocks: list[bytes] = []
        self.frames: list[CraftedFrame] = []
        self.interfaces: list[CraftedInterface] = []
        self.sections = 0
        self.first_byteorder = ""
        self._order = "<"
        self._section_first_interface = 0

    # -- structure ---------------------------------------------------------
    def _block(self, block_type: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        total = 12 + len(body)
        return (struct.pack(self._order + "II", block_type, total) + body
                + struct.pack(self._order + "I", total))

    def _options(self, options: Sequence[tuple[int, bytes]]) -> bytes:
        if not options:
            return b""
        out = b""
        for code, value in options:
            out += struct.pack(self._order + "HH", code, len(value)) + value
            out += b"\x00" * (-len(value) % 4)
        return out + struct.pack(self._order + "HH", 0, 0)

    def section(self, byteorder: str = "<", comment: str | None = None) -> None:
        self._order = byteorder
        if not self.first_byteorder:
            self.first_byteorder = "big" if byteorder == ">" else "little"
        self.sections += 1
        self._section_first_interface = len(self.interfaces)
        options = [(1, comment.encode())] if comment else []
        options.append((4, b"craft.py"))  # shb_userappl
        body = struct.pack(byteorder + "IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1)
        self.blocks.append(self._block(0x0A0D0D0A, body + self._options(options)))

    def interface(self, linktype: int, tsresol: int | None = None, snaplen: int = 262144,
                  name: str | None = None) -> int:
        """Add an Interface Description Block; returns its id counted across sections."""
        options: list[tuple[int, bytes]] = []
        if name:
            options.append((2, name.encode()))
        if tsresol is not None:
            options.append((9, bytes([tsresol])))
        body = struct.pack(self._order + "HHI", linktype, 0, snaplen) + self._options(options)
        self.blocks.append(self._block(1, body))
        interface = CraftedInterface(len(self.interfaces), linktype, tsresol, snaplen, name)
        self.interfaces.append(interface)
        return interface.id

    # -- packets -----------------------------------------------------------
    def epb(self, interface: int, ts: Fraction, datagram: Datagram | None = None, *,
            data: bytes | None = None, category: str = "", comment: str | None = None,
            **link_options) -> None:
        """An Enhanced Packet Block on `interface` (global id) at exact time `ts`."""
        info = self.interfaces[interface]
        if datagram is not None:
            link_options.setdefault("file_byteorder", self._order)
            data = encapsulate(datagram, info.linktype, **link_options)
            category, expect = datagram.category, datagram.expect
        else:
            assert data is not None
            expect = None
        frame = _frame(ts, info.linktype, interface, data, category, expect, info.snaplen)
        units = ts * info.units_per_second
        assert units.denominator == 1, f"{ts} is not whole in {info.units_per_second}/s"
        units_int = int(units)
        local_id = interface - self._section_first_interface
        assert local_id >= 0, "interface belongs to an earlier section"
        options = [(1, comment.encode())] if comment else []
        options.append((2, struct.pack(self._order + "I", 1)))  # epb_flags: inbound
        body = struct.pack(self._order + "IIIII", local_id, units_int >> 32,
                           units_int & 0xFFFFFFFF, len(frame.data), frame.wirelen)
        padded = frame.data + b"\x00" * (-len(frame.data) % 4)
        self.blocks.append(self._block(6, body + padded + self._options(options)))
        self.frames.append(frame)

    def opb(self, interface: int, ts: Fraction, datagram: Datagram) -> None:
        """An obsolete Packet Block (type 2): 16-bit interface id, drop count, timestamp."""
        info = self.interfaces[interface]
        data = encapsulate(datagram, info.linktype, file_byteorder=self._order)
        frame = _frame(ts, info.linktype, interface, data, datagram.category,
                       datagram.expect, info.snaplen)
        units = int(ts * info.units_per_second)
        body = struct.pack(self._order + "HHIIII", interface - self._section_first_interface,
                           0, units >> 32, units & 0xFFFFFFFF, len(frame.data), frame.wirelen)
        self.blocks.append(self._block(2, body + frame.data + b"\x00" * (-len(frame.data) % 4)))
        self.frames.append(frame)

    def spb(self, datagram: Datagram) -> None:
        """A Simple Packet Block: always the section's first interface, no timestamp."""
        interface = self._section_first_interface
        info = self.interfaces[interface]
        data = encapsulate(datagram, info.linktype, file_byteorder=self._order)
        frame = _frame(None, info.linktype, interface, data, datagram.category,
                       datagram.expect, info.snaplen)
        self.blocks.append(self._block(3, struct.pack(self._order + "I", frame.wirelen)
                                       + frame.data))
        self.frames.append(frame)

    # -- blocks a reader must skip -------------------------------------------
    def name_resolution_block(self) -> None:
        name = bytes([10, 0, 0, 1]) + b"host-a\x00\x00"  # an IPv4 record: address, names
        record = struct.pack(self._order + "HH", 1, len(name)) + name
        record += b"\x00" * (-len(record) % 4)
        self.blocks.append(self._block(4, record + struct.pack(self._order + "HH", 0, 0)))

    def interface_statistics_block(self, interface: int, ts: Fraction, dropped: int) -> None:
        info = self.interfaces[interface]
        units = int(ts * info.units_per_second)
        options = self._options([(5, struct.pack(self._order + "Q", dropped))])  # isb_ifdrop
        body = struct.pack(self._order + "III", interface - self._section_first_interface,
                           units >> 32, units & 0xFFFFFFFF) + options
        self.blocks.append(self._block(5, body))

    def unknown_block(self, block_type: int, body: bytes) -> None:
        self.blocks.append(self._block(block_type, body))

    def custom_block(self, body: bytes) -> None:
        """A Custom Block (0x00000BAD) with a Private Enterprise Number."""
        self.blocks.append(self._block(0x00000BAD, struct.pack(self._order + "I", 99999) + body))

    def getvalue(self) -> bytes:
        return b"".join(self.blocks)


# ---------------------------------------------------------------------------
# The captures
# ---------------------------------------------------------------------------

def _write(path: Path, content: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(content, mtime=0) if compress else content)
    return path


def ethernet_frames(start: Fraction, step: Fraction) -> list[CraftedFrame]:
    """The mixed set on Ethernet, plus the same TCP/UDP behind 802.1Q and QinQ tags."""
    datagrams = mixed_datagrams()
    frames = frames_for(datagrams, LINKTYPE_ETHERNET, times(start, step))
    tagged = [
        (udp_datagram("10.1.0.1", "10.1.0.2", 4000, 4001, b"inside one 802.1Q tag"),
         [(ETHERTYPE_VLAN, 100)]),
        (tcp_datagram("10.1.0.2", "10.1.0.1", 4001, 4000, b"inside QinQ 88a8+8100"),
         [(ETHERTYPE_QINQ, 200), (ETHERTYPE_VLAN, 300)]),
        (tcp_datagram("2001:db8::5", "2001:db8::6", 1234, 4321, b"v6 inside 802.1Q"),
         [(ETHERTYPE_VLAN, 5)]),
        (arp_datagram("10.1.0.1", "10.1.0.9"), [(ETHERTYPE_VLAN, 100)]),
    ]
    t0 = start + len(frames) * step
    for i, (datagram, vlans) in enumerate(tagged):
        frames.append(_frame(t0 + i * step, LINKTYPE_ETHERNET, 0, ethernet(datagram, vlans),
                             datagram.category, datagram.expect))
    return frames


def build_pcaps(folder: Path) -> dict[str, CraftedCapture]:
    captures: dict[str, CraftedCapture] = {}
    usec_step = Fraction(250_017, 10**6)
    nsec_step = Fraction(250_017_123, 10**9)

    for byteorder, order_name in (("<", "le"), (">", "be")):
        for nanos in (False, True):
            step = nsec_step if nanos else usec_step
            start = BASE_TIME + (Fraction(123_456_789, 10**9) if nanos
                                 else Fraction(123_456, 10**6))
            frames = ethernet_frames(start, step)
            name = f"pcap-{'nsec' if nanos else 'usec'}-{order_name}.pcap"
            path = _write(folder / name, pcap_bytes(frames, LINKTYPE_ETHERNET, nanos=nanos,
                                                    byteorder=byteorder))
            captures[name] = CraftedCapture(
                name, path, "pcap-nsec" if nanos else "pcap", False, frames,
                [CraftedInterface(0, LINKTYPE_ETHERNET, 9 if nanos else None, 262144)],
                byte_order="big" if byteorder == ">" else "little")

    # snaplen 80: Ethernet 14 + IPv4 20 + TCP 20 leaves 26 payload bytes.
    long_payload = bytes(range(256)) * 2
    snap_datagrams = [
        tcp_datagram("10.0.0.1", "10.0.0.2", 40002, 8000, long_payload, seq=1, ack=1),
        udp_datagram("10.0.0.2", "10.0.0.1", 8000, 40002, long_payload[:300]),
        tcp_datagram("10.0.0.1", "10.0.0.2", 40002, 8000, b"short", seq=513, ack=1),
    ]
    frames = frames_for(snap_datagrams, LINKTYPE_ETHERNET,
                        times(BASE_TIME, Fraction(1, 1000)), snaplen=80)
    name = "pcap-snaplen80.pcap"
    captures[name] = CraftedCapture(
        name, _write(folder / name, pcap_bytes(frames, LINKTYPE_ETHERNET, snaplen=80)),
        "pcap", False, frames, [CraftedInterface(0, LINKTYPE_ETHERNET, None, 80)])

    # One pcap per link type, each with the traffic that link type can carry.
    link_cases: list[tuple[str, int, dict, bool, bool]] = [
        ("linux-sll", LINKTYPE_LINUX_SLL, {}, True, True),
        ("linux-sll2", LINKTYPE_LINUX_SLL2, {}, True, True),
        ("null-le", LINKTYPE_NULL, {"null_byteorder": "<"}, True, False),
        ("null-be", LINKTYPE_NULL, {"null_byteorder": ">"}, True, False),
        ("loop", LINKTYPE_LOOP, {}, True, False),
        ("raw", LINKTYPE_RAW, {}, True, False),
        ("ipv4", LINKTYPE_IPV4, {}, False, False),
        ("nflog", LINKTYPE_NFLOG, {}, True, False),
        ("nflog-be", LINKTYPE_NFLOG, {"file_byteorder": ">"}, True, False),
    ]
    for label, linktype, options, ipv6, arp in link_cases:
        datagrams = mixed_datagrams(ipv6=ipv6, arp=arp)
        if linktype == LINKTYPE_NULL:
            # one IPv6 packet per BSD AF_INET6 value
            datagrams += [udp_datagram("2001:db8::7", "2001:db8::8", 7000 + af, 7100,
                                       f"af {af}".encode()) for af in AF_INET6_BSD]
        frames = []
        for i, datagram in enumerate(datagrams):
            link = dict(options)
            if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP) and datagram.version == 6:
                link["af_inet6"] = AF_INET6_BSD[i % 3]
            frames += frames_for([datagram], linktype,
                                 [BASE_TIME + Fraction(i, 10) + Fraction(1, 10**6)], **link)
        name = f"link-{label}.pcap"
        byteorder = ">" if label.endswith("-be") else "<"
        captures[name] = CraftedCapture(
            name, _write(folder / name, pcap_bytes(frames, linktype, byteorder=byteorder)),
            "pcap", False, frames, [CraftedInterface(0, linktype, None, 262144)],
            byte_order="big" if byteorder == ">" else "little")

    datagrams = [d for d in mixed_datagrams(arp=False) if d.version == 6]
    frames = frames_for(datagrams, LINKTYPE_IPV6, times(BASE_TIME, Fraction(1, 4)))
    name = "link-ipv6.pcap"
    captures[name] = CraftedCapture(
        name, _write(folder / name, pcap_bytes(frames, LINKTYPE_IPV6)), "pcap", False,
        frames, [CraftedInterface(0, LINKTYPE_IPV6, None, 262144)])

    frames = [_frame(BASE_TIME + i, LINKTYPE_IEEE802_11, 0, ieee80211_beacon(i),
                     "unsupported-link", None) for i in range(3)]
    name = "link-ieee80211.pcap"
    captures[name] = CraftedCapture(
        name, _write(folder / name, pcap_bytes(frames, LINKTYPE_IEEE802_11)), "pcap", False,
        frames, [CraftedInterface(0, LINKTYPE_IEEE802_11, None, 262144)])

    # IP features on Ethernet.
    ip_cases = {
        "ipv4-options.pcap": ipv4_options_datagrams(),
        "ipv4-fragments.pcap": (
            ipv4_fragments("10.9.0.1", "10.9.0.2", 6000, 6001, bytes(range(256)) * 12, 400,
                           ident=1)
            + [udp_datagram("10.9.0.3", "10.9.0.4", 1, 2, b"between fragment sets")]
            + ipv4_fragments("10.9.0.2", "10.9.0.1", 6001, 6000, b"out of order!" * 100,
                             296, order=[3, 1, 4, 0, 2], ident=2)
        ),
        "ipv6-ext.pcap": (
            ipv6_extension_datagrams()
            + ipv6_fragments("2001:db8::a", "2001:db8::b", 7000, 7001, b"six" * 700, 600)
            + ipv6_fragments("2001:db8::b", "2001:db8::a", 7001, 7000, b"reordered" * 200,
                             600, order=[2, 0, 3, 1], ident=0x99)
            + ipv6_fragments("2001:db8::c", "2001:db8::a", 7002, 7000, b"hbh+frag" * 100,
                             400, order=[2, 0, 1], ident=0x77, hop_by_hop=True)
        ),
    }
    for name, datagrams in ip_cases.items():
        frames = frames_for(datagrams, LINKTYPE_ETHERNET, times(BASE_TIME, Fraction(1, 100)))
        captures[name] = CraftedCapture(
            name, _write(folder / name, pcap_bytes(frames, LINKTYPE_ETHERNET)), "pcap",
            False, frames, [CraftedInterface(0, LINKTYPE_ETHERNET, None, 262144)])
    return captures


def multi_section_writer() -> PcapngWriter:
    """Two sections: little-endian with three interfaces (Ethernet 10^-6, RAW 10^-9,
    SLL 2^-10) plus blocks to skip; then big-endian with LOOP (SPBs) and IPv6 at 10^-3."""
    writer = PcapngWriter()
    writer.section("<", comment="section one, little-endian")
    eth = writer.interface(LINKTYPE_ETHERNET, None, name="eth-usec")
    raw = writer.interface(LINKTYPE_RAW, 9, name="raw-nsec")
    sll = writer.interface(LINKTYPE_LINUX_SLL, 0x80 | 10, name="sll-2^-10")
    writer.name_resolution_block()
    writer.custom_block(b"a custom block to skip")
    mix = mixed_datagrams()
    writer.epb(eth, BASE_TIME + Fraction(1, 10**6), mix[0], comment="first packet")
    writer.epb(raw, BASE_TIME + Fraction(2_000_000_001, 10**9), mix[1])
    writer.unknown_block(0x7E57B10C, b"an unknown block type")
    writer.epb(sll, BASE_TIME + 3 + Fraction(1, 1024), mix[2])
    writer.epb(eth, BASE_TIME + 4 + Fraction(999_999, 10**6), mix[9])  # ARP
    writer.epb(raw, BASE_TIME + 5 + Fraction(123_456_789, 10**9), mix[6])  # IPv6 TCP
    writer.epb(sll, BASE_TIME + 6 + Fraction(1023, 1024), mix[3])
    writer.interface_statistics_block(eth, BASE_TIME + 7, dropped=3)

    writer.section(">", comment="section two, big-endian")
    loop = writer.interface(LINKTYPE_LOOP, None, snaplen=65535, name="lo0")
    v6 = writer.interface(LINKTYPE_IPV6, 3, name="v6-msec")
    writer.spb(mix[4])
    writer.epb(v6, BASE_TIME + 8 + Fraction(5, 1000), mix[7])
    writer.spb(mix[5])
    writer.epb(loop, BASE_TIME + 9 + Fraction(1, 10**6), mix[8])  # ICMPv6
    writer.epb(v6, BASE_TIME + 10, mix[8])
    return writer


def build_pcapngs(folder: Path) -> dict[str, CraftedCapture]:
    captures: dict[str, CraftedCapture] = {}
    writer = multi_section_writer()
    name = "multi-section.pcapng"
    captures[name] = CraftedCapture(
        name, _write(folder / name, writer.getvalue()), "pcapng", False, writer.frames,
        writer.interfaces, sections=writer.sections, byte_order=writer.first_byteorder)

    # One section, two Ethernet-less interfaces: what scapy's reader handles too.
    writer = PcapngWriter()
    writer.section(">")
    sll2 = writer.interface(LINKTYPE_LINUX_SLL2, 6, name="any")
    nflog_if = writer.interface(LINKTYPE_NFLOG, 9, name="nflog:7")
    for i, datagram in enumerate(mixed_datagrams(arp=False)):
        writer.epb(sll2 if i % 2 else nflog_if,
                   BASE_TIME + Fraction(i * 1_000_001, 10**6), datagram)
    name = "single-section-be.pcapng"
    captures[name] = CraftedCapture(
        name, _write(folder / name, writer.getvalue()), "pcapng", False, writer.frames,
        writer.interfaces, byte_order="big")

    # Snaplen in an IDB: EPBs cut to 64 bytes; SPBs cut to the snaplen by the reader.
    writer = PcapngWriter()
    writer.section("<")
    eth = writer.interface(LINKTYPE_ETHERNET, None, snaplen=64)
    long = tcp_datagram("10.0.0.1", "10.0.0.2", 1111, 2222, bytes(300), seq=5, ack=6)
    writer.epb(eth, BASE_TIME, long)
    writer.spb(udp_datagram("10.0.0.2", "10.0.0.1", 2222, 1111, bytes(100)))
    name = "snaplen64.pcapng"
    captures[name] = CraftedCapture(
        name, _write(folder / name, writer.getvalue()), "pcapng", False, writer.frames,
        writer.interfaces)
    return captures


def build_compressed(folder: Path, plain: dict[str, CraftedCapture]) -> dict[str, CraftedCapture]:
    """gzip variants, named without .gz: detection must go by content."""
    captures = {}
    for source, name in (("pcap-usec-le.pcap", "gzipped-pcap.cap"),
                         ("pcap-nsec-be.pcap", "gzipped-nsec.dump"),
                         ("multi-section.pcapng", "gzipped-pcapng.bin")):
        original = plain[source]
        path = _write(folder / name, original.path.read_bytes(), compress=True)
        captures[name] = replace(original, name=name, path=path, compressed=True)
    return captures


def build_damaged(folder: Path, plain: dict[str, CraftedCapture]) -> dict[str, CraftedCapture]:
    """Captures damaged part-way; `frames` lists what must be read before the damage."""
    captures: dict[str, CraftedCapture] = {}
    base = plain["pcap-usec-le.pcap"]
    content = base.path.read_bytes()
    offsets = pcap_record_offsets(content)

    # The last record's data cut short.
    name = "damaged-truncated-data.pcap"
    cut = content[: len(content) - 5]
    captures[name] = replace(base, name=name, path=_write(folder / name, cut),
                             frames=base.frames[:-1], damaged=True)

    # The file ends inside a record header.
    name = "damaged-truncated-header.pcap"
    cut = content[: offsets[-1] + 7]
    captures[name] = replace(base, name=name, path=_write(folder / name, cut),
                             frames=base.frames[:-1], damaged=True)

    # Record 5 claims a caplen of 1 GiB: larger than any snaplen, the file and reason.
    name = "damaged-caplen.pcap"
    bad = bytearray(content)
    struct.pack_into("<I", bad, offsets[4] + 8, 0x4000_0000)
    captures[name] = replace(base, name=name, path=_write(folder / name, bytes(bad)),
                             frames=base.frames[:4], damaged=True)

    # The same truncated capture, gzip-compressed and the gzip stream itself cut short.
    name = "damaged-gzip-cut.pcap.gz"
    packed = gzip.compress(content, mtime=0)
    cut_at = len(packed) // 2
    kept = _frames_surviving_gzip_cut(content, packed, cut_at, base.frames, offsets)
    captures[name] = replace(base, name=name, path=_write(folder / name, packed[:cut_at]),
                             compressed=True, frames=kept, damaged=True)

    # pcapng: a block's total length corrupt part-way (not a multiple of 4, and the
    # trailing copy disagrees).
    multi = plain["multi-section.pcapng"]
    content = multi.path.read_bytes()
    blocks = pcapng_block_offsets(content)
    packet_blocks = [(offset, kind) for offset, kind, _ in blocks if kind in (3, 6)]
    damage_at, _ = packet_blocks[3]
    name = "damaged-blocklen.pcapng"
    bad = bytearray(content)
    order = "<"  # section one is little-endian
    struct.pack_into(order + "I", bad, damage_at + 4, 0x00FF_FFF3)
    captures[name] = replace(multi, name=name, path=_write(folder / name, bytes(bad)),
                             frames=multi.frames[:3], damaged=True)

    # pcapng cut in the middle of the last block.
    name = "damaged-truncated.pcapng"
    last_offset, _, last_length = blocks[-1]
    cut = content[: last_offset + last_length // 2]
    captures[name] = replace(multi, name=name, path=_write(folder / name, cut),
                             frames=multi.frames[:-1], damaged=True)
    return captures


def _frames_surviving_gzip_cut(content: bytes, packed: bytes, cut: int,
                               frames: list[CraftedFrame],
                               offsets: list[int]) -> list[CraftedFrame]:
    """Which whole records a gzip stream cut at `cut` still delivers."""
    decompressor = zlib.decompressobj(16 + 15)
    available = len(decompressor.decompress(packed[:cut]))
    whole = 0
    for i, offset in enumerate(offsets):
        caplen = struct.unpack_from("<I", content, offset + 8)[0]
        if offset + 16 + caplen <= available:
            whole = i + 1
    return frames[:whole]


def pcap_record_offsets(content: bytes) -> list[int]:
    """Offsets of the record headers of a little-endian pcap."""
    offsets, offset = [], 24
    while offset + 16 <= len(content):
        offsets.append(offset)
        offset += 16 + struct.unpack_from("<I", content, offset + 8)[0]
    return offsets


def pcapng_block_offsets(content: bytes) -> list[tuple[int, int, int]]:
    """(offset, block type, total length) of every block of a well-formed pcapng."""
    blocks, offset, order = [], 0, "<"
    while offset + 12 <= len(content):
        if content[offset:offset + 4] == b"\x0a\x0d\x0d\x0a":
            order = "<" if content[offset + 8:offset + 12] == b"\x4d\x3c\x2b\x1a" else ">"
        block_type, length = struct.unpack_from(order + "II", content, offset)
        blocks.append((offset, block_type, length))
        offset += length
    return blocks


def build_bad_inputs(folder: Path) -> dict[str, Path]:
    """Inputs that are not captures at all: each must give exit 2 and one line."""
    rng = random.Random(1234)
    bad = folder / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "a-directory").mkdir(exist_ok=True)
    paths = {
        "missing": bad / "does-not-exist.pcap",
        "directory": bad / "a-directory",
        "empty": _write(bad / "empty.pcap", b""),
        "text": _write(bad / "notes.pcap", b"This is a text file, not a capture.\n" * 20),
        "random": _write(bad / "random.pcapng", bytes(rng.getrandbits(8) for _ in range(4096))),
        "short-header": _write(bad / "short.pcap", struct.pack("<IHH", PCAP_MAGIC_USEC, 2, 4)),
        "gzip-text": _write(bad / "text.gz", b"just text, compressed\n" * 10, compress=True),
    }
    return paths


# Names of what build_all writes, known before building (for test parametrization).
DAMAGED_NAMES = (
    "damaged-truncated-data.pcap", "damaged-truncated-header.pcap", "damaged-caplen.pcap",
    "damaged-gzip-cut.pcap.gz", "damaged-blocklen.pcapng", "damaged-truncated.pcapng",
)
COMPRESSED_NAMES = ("gzipped-pcap.cap", "gzipped-nsec.dump", "gzipped-pcapng.bin")
PLAIN_NAMES = (
    "pcap-usec-le.pcap", "pcap-nsec-le.pcap", "pcap-usec-be.pcap", "pcap-nsec-be.pcap",
    "pcap-snaplen80.pcap", "link-linux-sll.pcap", "link-linux-sll2.pcap", "link-null-le.pcap",
    "link-null-be.pcap", "link-loop.pcap", "link-raw.pcap", "link-ipv4.pcap",
    "link-nflog.pcap", "link-nflog-be.pcap", "link-ipv6.pcap", "link-ieee80211.pcap",
    "ipv4-options.pcap",
    "ipv4-fragments.pcap", "ipv6-ext.pcap", "multi-section.pcapng",
    "single-section-be.pcapng", "snaplen64.pcapng",
)
READABLE_NAMES = PLAIN_NAMES + COMPRESSED_NAMES
ALL_NAMES = READABLE_NAMES + DAMAGED_NAMES
BAD_INPUT_NAMES = ("missing", "directory", "empty", "text", "random", "short-header",
                   "gzip-text")


def build_all(folder: Path | str) -> dict[str, CraftedCapture]:
    """Every crafted capture (plain, compressed, damaged) written into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    captures = build_pcaps(folder)
    captures.update(build_pcapngs(folder))
    captures.update(build_compressed(folder, captures))
    captures.update(build_damaged(folder, captures))
    return captures


if __name__ == "__main__":  # write them somewhere to look at: python -m tests.craft DIR
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "crafted")
    for crafted in build_all(target).values():
        print(f"{crafted.path}  {len(crafted.frames)} frames  {sorted(crafted.linktypes)}")
    build_bad_inputs(target)
    print(os.fspath(target))
