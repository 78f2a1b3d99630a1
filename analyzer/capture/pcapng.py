"""Lean reader of pcapng: several sections (either byte order), several interfaces with
their own link types and timestamp resolutions, Enhanced, Simple and obsolete Packet
Blocks, and Interface Statistics (drop counts). Unknown blocks are skipped.

Libpcap-based tools refuse a file whose interfaces have different link types; every
frame here carries its own link type and interface.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from analyzer.capture.chunks import ChunkReader
from analyzer.capture.frame import CaptureInfo, Frame, InterfaceInfo

SHB_TYPE: Final = b"\x0a\x0d\x0d\x0a"
IDB: Final = 1
OPB: Final = 2
SPB: Final = 3
NRB: Final = 4
ISB: Final = 5
EPB: Final = 6
BOM_LE: Final = b"\x4d\x3c\x2b\x1a"
BOM_BE: Final = b"\x1a\x2b\x3c\x4d"
MAX_BLOCK_LEN: Final = 1 << 24  # 16 MiB: anything larger is a corrupt length
# The shortest block of each type that holds its fixed fields (header and trailer
# included); a shorter one is corrupt, and its fields are never read past its end.
MIN_BLOCK_LEN: Final = {EPB: 32, OPB: 32, SPB: 16, IDB: 20, ISB: 24}
_BLOCK_NAMES: Final = {EPB: "packet", OPB: "packet", SPB: "simple packet", IDB: "interface",
                       ISB: "statistics"}

OPT_END: Final = 0
OPT_IF_NAME: Final = 2
OPT_IF_DESCRIPTION: Final = 3
OPT_IF_TSRESOL: Final = 9
OPT_IF_TSOFFSET: Final = 14
OPT_ISB_IFDROP: Final = 5


def _options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    off = start
    while off + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, off)
        if code == OPT_END:
            return
        value = body[off + 4:off + 4 + length]
        yield code, value
        off += 4 + ((length + 3) & ~3)


class _Interface:
    """Per-interface decoding constants."""

    __slots__ = ("global_id", "linktype", "divisor", "offset", "snaplen", "info")

    def __init__(self, global_id: int, linktype: int, divisor: float, offset: int,
                 snaplen: int, info: InterfaceInfo) -> None:
        self.global_id = global_id
        self.linktype = linktype
        self.divisor = divisor
        self.offset = offset
        self.snaplen = snaplen
        self.info = info


def _tsresol(value: int) -> tuple[float, str]:
    if value & 0x80:
        return float(2 ** (value & 0x7F)), f"2^-{value & 0x7F}"
    return float(10 ** value), f"1e-{value}"


def read_pcapng(reader: ChunkReader, info: CaptureInfo) -> Iterator[Frame]:
    info.format = "pcapng"
    order = "<"
    section_ifaces: list[_Interface] = []
    count = 0
    last_ts = 0.0  # Simple Packet Blocks carry no time: they get their predecessor's
    while True:
        if not reader.ensure(12):
            if reader.remaining():
                info.warnings.append(
                    f"truncated block header at byte {reader.position} after {count} "
                    "packets; analysis stops there")
            return
        buf, off = reader.buf, reader.off
        if buf[off:off + 4] == SHB_TYPE:
            bom = buf[off + 8:off + 12]
            if bom == BOM_LE:
                order = "<"
            elif bom == BOM_BE:
                order = ">"
            else:
                info.warnings.append(
                    f"corrupt section header at byte {reader.position}; analysis stops there")
                return
            info.sections += 1
            if info.sections == 1:
                info.byte_order = "little" if order == "<" else "big"
            section_ifaces = []
            btype = 0x0A0D0D0A
            blen = struct.unpack_from(order + "I", buf, off + 4)[0]
        else:
            btype, blen = struct.unpack_from(order + "II", buf, off)
        if blen < 12 or blen % 4 or blen > MAX_BLOCK_LEN:
            info.warnings.append(
                f"corrupt block length {blen} at byte {reader.position} after {count} "
                "packets; analysis stops there")
            return
        if len(buf) - off < blen:
            if not reader.ensure(blen):
                info.warnings.append(
                    f"truncated block at byte {reader.position} ({reader.remaining()} of "
                    f"{blen} bytes) after {count} packets; analysis stops there")
                return
            buf, off = reader.buf, reader.off
        if struct.unpack_from(order + "I", buf, off + blen - 4)[0] != blen:
            info.warnings.append(
                f"corrupt block at byte {reader.position}: trailing length differs; "
                f"analysis stops after {count} packets")
            return
        reader.off = off + blen

        if blen < MIN_BLOCK_LEN.get(btype, 12):
            info.warnings.append(
                f"corrupt {_BLOCK_NAMES[btype]} block at byte {reader.position - blen}: "
                f"{blen} bytes is too short for its fields; skipped")
            continue
        if btype == EPB or btype == OPB:
            # The obsolete Packet Block has a 16-bit interface id then a drop count.
            iface_id, hi, lo, caplen, wirelen = struct.unpack_from(
                order + ("IIIII" if btype == EPB else "H2xIIII"), buf, off + 8)
            if iface_id >= len(section_ifaces) or 28 + caplen > blen - 4:
                info.warnings.append(
                    f"corrupt packet block at byte {reader.position - blen}; skipped")
                continue
            iface = section_ifaces[iface_id]
            iface.info.packets += 1
            count += 1
            last_ts = ((hi << 32) | lo) / iface.divisor + iface.offset
            yield Frame(last_ts, iface.linktype, iface.global_id,
                        buf[off + 28:off + 28 + caplen], wirelen)
        elif btype == SPB:
            if not section_ifaces:
                info.warnings.append(
                    f"simple packet block before any interface at byte "
                    f"{reader.position - blen}; skipped")
                continue
            iface = section_ifaces[0]
            wirelen = struct.unpack_from(order + "I", buf, off + 8)[0]
            caplen = min(wirelen, blen - 16)
            if iface.snaplen:
                caplen = min(caplen, iface.snaplen)
            iface.info.packets += 1
            count += 1
            yield Frame(last_ts, iface.linktype, iface.global_id,
                        buf[off + 12:off + 12 + caplen], wirelen)
        elif btype == IDB:
            linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, off + 8)
            body = buf[off:off + blen - 4]
            divisor, resol_text = 1e6, "1e-6"
            tsoffset = 0
            iface_info = InterfaceInfo(id=len(info.interfaces), linktype=linktype,
                                       snaplen=snaplen, tsresol=resol_text)
            for code, value in _options(body, 16, order):
                if code == OPT_IF_TSRESOL and value:
                    divisor, iface_info.tsresol = _tsresol(value[0])
                elif code == OPT_IF_TSOFFSET and len(value) >= 8:
                    tsoffset = struct.unpack_from(order + "q", value)[0]
                elif code == OPT_IF_NAME:
                    iface_info.name = value.decode("utf-8", "replace").rstrip("\0")
                elif code == OPT_IF_DESCRIPTION:
                    iface_info.description = value.decode("utf-8", "replace").rstrip("\0")
            info.interfaces.append(iface_info)
            section_ifaces.append(_Interface(iface_info.id, linktype, divisor, tsoffset,
                                             snaplen, iface_info))
        elif btype == ISB:
            iface_id = struct.unpack_from(order + "I", buf, off + 8)[0]
            if iface_id < len(section_ifaces):
                body = buf[off:off + blen - 4]
                for code, value in _options(body, 20, order):
                    if code == OPT_ISB_IFDROP and len(value) >= 8:
                        section_ifaces[iface_id].info.dropped = struct.unpack_from(
                            order + "Q", value)[0]
        # Other blocks (name resolution, custom, decryption secrets...) are skipped.
