"""Netascii (RFC 764 / RFC 1350 mode "netascii"): wire form to file bytes and back.

On the wire a line ends in CR LF and a lone CR is sent as CR NUL. The decoder turns
CR LF into LF and CR NUL into CR, carrying a CR that ends one DATA block over to the
next. It is lenient: a bare CR followed by anything else (dnsmasq) is kept as CR, and a
stream that was never converted (tftpy sends the file as is) passes through unchanged.

The encoder (a sender's side: the TFTP client's put) maps each byte on its own, LF to
CR LF and CR to CR NUL, so it needs no state across chunks.
"""

from __future__ import annotations

from typing import Final

CR: Final = 0x0D


class NetasciiDecoder:
    """Feed wire chunks in order with `decode`; call `flush` at the end of the stream."""

    __slots__ = ("_pending_cr",)

    def __init__(self) -> None:
        self._pending_cr = False

    def decode(self, chunk: bytes | memoryview) -> bytes:
        data = bytes(chunk)
        if self._pending_cr:
            data = b"\r" + data
            self._pending_cr = False
        if not data:
            return b""
        if data[-1] == CR:
            # Whether this CR is CR LF, CR NUL or bare depends on the next block.
            data = data[:-1]
            self._pending_cr = True
        if b"\r" not in data:
            return data
        return data.replace(b"\r\n", b"\n").replace(b"\r\0", b"\r")

    def flush(self) -> bytes:
        """End of stream: a CR still held back was bare; it is kept."""
        if self._pending_cr:
            self._pending_cr = False
            return b"\r"
        return b""


def netascii_encode(data: bytes | memoryview) -> bytes:
    """File bytes to netascii wire bytes: LF -> CR LF, CR -> CR NUL (any chunking)."""
    raw = bytes(data)
    if b"\r" not in raw and b"\n" not in raw:
        return raw
    return raw.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def netascii_size(data: bytes | memoryview) -> int:
    """The netascii wire size of `data`: one more byte per CR and per LF."""
    raw = bytes(data)
    return len(raw) + raw.count(b"\r") + raw.count(b"\n")
