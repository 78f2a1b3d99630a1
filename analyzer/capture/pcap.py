"""Lean reader of the classic libpcap format (microsecond and nanosecond, both byte orders).

A plain `struct` walk over the record headers: several times faster than scapy's
RawPcapReader, and it stops with a warning, not an exception, where a file is damaged.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Final

from analyzer.capture.chunks import ChunkReader
from analyzer.capture.frame import CaptureInfo, Frame, InterfaceInfo

# magic as read from the file's first four bytes -> (byte order, fraction scale, format)
MAGICS: Final[dict[bytes, tuple[str, float, str]]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, "pcap"),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, "pcap"),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, "pcap-nsec"),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, "pcap-nsec"),
}
GLOBAL_HEADER_LEN: Final = 24
RECORD_HEADER_LEN: Final = 16
# No link type we read has frames this large; a bigger caplen means a corrupt record.
MAX_CAPLEN: Final = 1 << 20


def read_pcap(reader: ChunkReader, info: CaptureInfo) -> Iterator[Frame]:
    if not reader.ensure(GLOBAL_HEADER_LEN):
        raise ValueError("pcap global header is cut short")
    magic = reader.buf[reader.off:reader.off + 4]
    order, scale, fmt = MAGICS[magic]
    _, major, minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
        order + "4sHHiIII", reader.buf, reader.off
    )
    reader.off += GLOBAL_HEADER_LEN
    linktype = network & 0x0FFFFFFF  # the upper bits may carry FCS information
    info.format = fmt
    info.byte_order = "little" if order == "<" else "big"
    info.sections = 1
    iface = InterfaceInfo(id=0, linktype=linktype, snaplen=snaplen,
                          tsresol="1e-9" if scale == 1e-9 else "1e-6")
    info.interfaces.append(iface)

    record = struct.Struct(order + "IIII")
    unpack_from = record.unpack_from
    count = 0
    while True:
        buf, off = reader.buf, reader.off
        if len(buf) - off < RECORD_HEADER_LEN:
            if not reader.ensure(RECORD_HEADER_LEN):
                if reader.remaining():
                    info.warnings.append(
                        f"truncated record header at byte {reader.position} after "
                        f"{count} packets; analysis stops there")
                break
            buf, off = reader.buf, reader.off
        sec: int
        frac: int
        caplen: int
        wirelen: int
        sec, frac, caplen, wirelen = unpack_from(buf, off)
        if caplen > MAX_CAPLEN:
            info.warnings.append(
                f"impossible record length {caplen} at byte {reader.position} "
                f"(packet {count + 1}); analysis stops there")
            break
        end = off + RECORD_HEADER_LEN + caplen
        if end > len(buf):
            if not reader.ensure(RECORD_HEADER_LEN + caplen):
                info.warnings.append(
                    f"truncated packet {count + 1} at byte {reader.position} "
                    f"({reader.remaining() - RECORD_HEADER_LEN} of {caplen} bytes); "
                    "analysis stops there")
                break
            buf, off = reader.buf, reader.off
            end = off + RECORD_HEADER_LEN + caplen
        reader.off = end
        count += 1
        yield Frame(sec + frac * scale, linktype, 0, buf[off + RECORD_HEADER_LEN:end], wirelen)
    iface.packets = count
