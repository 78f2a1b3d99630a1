"""Writing pcapng as frames arrive: a section header, one interface, then Enhanced Packet
Blocks flushed one by one, so the file is complete whenever the capture is stopped.

Nanosecond resolution (if_tsresol = 9) and a closing Interface Statistics Block with the
kernel's drop count, which scapy's writer does not offer.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from analyzer.capture.frame import Frame
from analyzer.errors import InputError


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


class PcapngWriter:
    """Interfaces are added as they appear (`add_interface`), each with its link type."""

    def __init__(self, path: str) -> None:
        try:
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror})") from None
        self.path = path
        self._start_ns: int | None = None
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, b"analyzer") + \
            _option(0, b"")
        self._file.write(_block(0x0A0D0D0A, shb))
        self._file.flush()
        self.counts: list[int] = []

    def add_interface(self, linktype: int, name: str, snaplen: int = 262144) -> int:
        """Write an Interface Description Block; frames name it by the returned id."""
        idb = struct.pack("<HHI", linktype, 0, snaplen) + \
            _option(2, name.encode()) + _option(9, b"\x09") + _option(0, b"")
        self._file.write(_block(1, idb))
        self.counts.append(0)
        return len(self.counts) - 1

    def write(self, frame: Frame, ts_ns: int | None = None) -> None:
        """Append one frame; `ts_ns` keeps the exact nanoseconds a float would round."""
        ticks = round(frame.ts * 1e9) if ts_ns is None else ts_ns
        body = struct.pack("<IIIII", frame.interface, ticks >> 32, ticks & 0xFFFFFFFF,
                           len(frame.data), frame.wirelen) + frame.data
        self._file.write(_block(6, body))
        self._file.flush()
        self.counts[frame.interface] += 1

    def close(self, end_ts: float | None = None, dropped: int | None = None) -> None:
        if self._file.closed:
            return
        if end_ts is not None:
            # The kernel counts drops per socket; with one interface they are its drops.
            ticks = round(end_ts * 1e9)
            for interface, count in enumerate(self.counts):
                options = b""
                if dropped is not None and len(self.counts) == 1:
                    options += _option(5, struct.pack("<Q", dropped))  # isb_ifdrop
                options += _option(4, struct.pack("<Q", count))  # isb_ifrecv
                self._file.write(_block(5, struct.pack("<III", interface, ticks >> 32,
                                                       ticks & 0xFFFFFFFF)
                                        + options + _option(0, b"")))
        self._file.close()
