"""Crafted TFTP captures whose truth is known by construction.

Packets are built with scapy's own IP/UDP/ICMP and TFTP layers (an encoder independent of
`analyzer.tftp.codec`) and written with scapy's `wrpcap`; the tests then read them through
the real pipeline. For transfers too long for scapy (rollover past 65535 blocks),
`raw_packets` builds `Packet` records directly from `struct`-packed payloads.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from scapy.layers.l2 import Ether
from scapy.layers.tftp import (
    TFTP,
    TFTP_ACK,
    TFTP_DATA,
    TFTP_ERROR,
    TFTP_OACK,
    TFTP_RRQ,
    TFTP_WRQ,
    TFTP_Option,
    TFTP_Options,
)
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from scapy.utils import wrpcap

from analyzer.decode.packet import Packet, parse_address
from analyzer.pipeline import Analysis, analyze_file

# Explicit MACs: an Ether() without them makes scapy resolve the address (ARP / NDP).
_MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def _options(options: Iterable[tuple[str, str]]) -> TFTP_Options:
    return TFTP_Options(options=[TFTP_Option(oname=n.encode(), value=v.encode())
                                 for n, v in options])


def rrq(filename: str, mode: str = "octet", options: Iterable[tuple[str, str]] = ()) -> bytes:
    pkt = TFTP() / TFTP_RRQ(filename=filename.encode(), mode=mode.encode())
    options = list(options)
    return bytes(pkt / _options(options) if options else pkt)


def wrq(filename: str, mode: str = "octet", options: Iterable[tuple[str, str]] = ()) -> bytes:
    pkt = TFTP() / TFTP_WRQ(filename=filename.encode(), mode=mode.encode())
    options = list(options)
    return bytes(pkt / _options(options) if options else pkt)


def data(block: int, chunk: bytes) -> bytes:
    return bytes(TFTP() / TFTP_DATA(block=block & 0xFFFF) / Raw(chunk))


def ack(block: int) -> bytes:
    return bytes(TFTP() / TFTP_ACK(block=block & 0xFFFF))


def error(code: int, message: str) -> bytes:
    return bytes(TFTP() / TFTP_ERROR(errorcode=code, errormsg=message.encode()))


def oack(options: Iterable[tuple[str, str]]) -> bytes:
    return bytes(TFTP() / TFTP_OACK() / _options(options))


def chunks(content: bytes, blksize: int) -> list[bytes]:
    """RFC 1350 blocks of `content`: full blocks, then one shorter (maybe empty)."""
    blocks = [content[i:i + blksize] for i in range(0, len(content), blksize)]
    if not blocks or len(blocks[-1]) == blksize:
        blocks.append(b"")
    return blocks


def netascii_encode(content: bytes) -> bytes:
    """RFC 764 by the book: CR -> CR NUL first, then LF -> CR LF."""
    return content.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class Capture:
    """Frames in time order; `ts` advances by `step` unless a packet says otherwise."""

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.001) -> None:
        self.frames: list[ScapyPacket] = []
        self.ts = start
        self.step = step

    def _add(self, frame: ScapyPacket, after: float | None) -> int:
        self.ts += self.step if after is None else after
        frame.time = self.ts
        self.frames.append(frame)
        return len(self.frames)

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes,
            after: float | None = None) -> int:
        """One UDP datagram; returns its frame number."""
        if ":" in src[0]:
            ip: ScapyPacket = IPv6(src=src[0], dst=dst[0])
        else:
            ip = IP(src=src[0], dst=dst[0])
        udp = UDP(sport=src[1], dport=dst[1]) / Raw(payload)
        return self._add(Ether(**_MACS) / ip / udp, after)

    def port_unreachable(self, frame: int, after: float | None = None) -> int:
        """The ICMP(v6) port unreachable its receiver would send back for frame `frame`."""
        original = self.frames[frame - 1].payload  # the IP datagram
        if original.version == 6:
            icmp = (IPv6(src=original.dst, dst=original.src) / ICMPv6DestUnreach(code=4)
                    / bytes(original)[:1232])
        else:
            icmp = IP(src=original.dst, dst=original.src) / ICMP(type=3, code=3) / bytes(
                original)[:28]
        return self._add(Ether(**_MACS) / icmp, after)

    def write(self, path: Path) -> Path:
        wrpcap(str(path), self.frames)
        return path

    def analyze(self, tmp_path: Path, name: str = "crafted.pcap", **kwargs: object) -> Analysis:
        return analyze_file(self.write(tmp_path / name), **kwargs)  # type: ignore[arg-type]


def raw_packets(exchange: Iterable[tuple[tuple[str, int], tuple[str, int], bytes]],
                start: float = 1_700_000_000.0, step: float = 0.0001) -> Iterable[Packet]:
    """`Packet` records straight from (src, dst, payload) triples, for huge transfers."""
    for number, (src, dst, payload) in enumerate(exchange, 1):
        yield Packet(number, start + number * step, 0, 4, parse_address(src[0]),
                     parse_address(dst[0]), 17, src[1], dst[1], payload, len(payload))


def raw_data(block: int, chunk: bytes) -> bytes:
    return struct.pack("!HH", 3, block & 0xFFFF) + chunk


def raw_ack(block: int) -> bytes:
    return struct.pack("!HH", 4, block & 0xFFFF)
