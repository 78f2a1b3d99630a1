"""A forward-only buffered view of a byte stream, shared by the pcap and pcapng readers.

Readers ask for the next N bytes at an offset into a buffer refilled in large reads, so a
capture is never held in memory whole and small records cost no system call each.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, Final

CHUNK_SIZE: Final = 1 << 20


class ChunkReader:
    __slots__ = ("stream", "buf", "off", "consumed", "error", "_read")

    def __init__(self, stream: BinaryIO, initial: bytes = b"") -> None:
        self.stream = stream
        self.buf = initial
        self.off = 0
        self.consumed = 0  # bytes of the stream before buf[0]
        self.error: str | None = None  # why the stream ended early (damaged compression)
        # read1 hands over what a gzip stream decompressed so far before it fails on
        # damage further on; read() would drop it with the exception.
        self._read = getattr(stream, "read1", stream.read)

    def ensure(self, n: int) -> bool:
        """Make at least n bytes available at self.off; False if the stream ends first."""
        have = len(self.buf) - self.off
        if have >= n:
            return True
        parts = [self.buf[self.off:]]
        while have < n and self.error is None:
            try:
                more = self._read(max(CHUNK_SIZE, n - have))
            except (OSError, EOFError, zlib.error) as exc:
                self.error = str(exc)
                break
            if not more:
                break
            parts.append(more)
            have += len(more)
        self.consumed += self.off
        self.buf = b"".join(parts)
        self.off = 0
        return have >= n

    @property
    def position(self) -> int:
        """Offset in the stream of the next unread byte."""
        return self.consumed + self.off

    def remaining(self) -> int:
        return len(self.buf) - self.off
