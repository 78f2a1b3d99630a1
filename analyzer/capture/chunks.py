"""A forward-only buffered view of a byte stream, shared by the pcap and pcapng readers.

Readers ask for the next N bytes at an offset into a buffer, so a capture is never held
in memory whole and small records cost no system call each. The buffer is a window of
the file mapped into memory (a plain, uncompressed file) or a chunk refilled in large
reads (gzip, pipes, anything that cannot be mapped).
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Callable
from typing import BinaryIO, Final

CHUNK_SIZE: Final = 1 << 20
# A mapped window: the page cache's pages themselves, with no copy into the process
# (read() copying 860 MB was a quarter of the CPU time on 1M packets: perf,
# `_copy_to_iter`). MAP_POPULATE sets up the window's page tables in one call instead of
# a page fault per 64 KiB; the window is unmapped before the next one is mapped, so the
# process holds one window of the file, however large it is (8 MiB windows: 6 MiB more
# peak RSS per process at 1M packets, and no faster). The file's size is read again for
# each window, so a capture still being written is read on; one cut shorter by another
# process while a window of it is mapped would end this one with SIGBUS (read() would
# have seen a short file): a case the speed is worth.
WINDOW_SIZE: Final = 2 << 20
MAP_FLAGS: Final = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

# What readers index: bytes from read(), or an mmap window (slices of either are bytes).
Chunk = bytes | mmap.mmap


class ChunkReader:
    __slots__ = ("stream", "buf", "off", "consumed", "error", "_readinto", "_fileno",
                 "_scratch")

    def __init__(self, stream: BinaryIO, initial: bytes = b"", *, mapped: bool = False
                 ) -> None:
        """initial: bytes already read from the start of the stream. mapped: the stream
        is a plain file at offset 0 of its descriptor, to be read through `mmap`."""
        self.stream = stream
        self.buf: Chunk = initial
        self.off = 0
        self.consumed = 0  # bytes of the stream before buf[0]
        self.error: str | None = None  # why the stream ended early (damaged compression)
        # readinto1 hands over what a gzip stream decompressed so far before it fails on
        # damage further on; readinto() would drop it with the exception.
        self._readinto: Callable[[memoryview], int] = (
            getattr(stream, "readinto1", None) or stream.readinto)  # type: ignore[attr-defined]
        self._fileno = stream.fileno() if mapped else -1
        # Reads land in one reused buffer and are copied out once. read1() allocated a
        # fresh 1 MiB each time and shrank it to what came: reading 900 MB from a pipe
        # with this loop alone took 1.3-2.8 s of system time (page faults), against
        # 0.5-0.9 s now (in `read -` as a whole the allocator happened to reuse memory,
        # and the two measured the same).
        self._scratch = memoryview(b"")

    def ensure(self, n: int) -> bool:
        """Make at least n bytes available at self.off; False if the stream ends first."""
        have = len(self.buf) - self.off
        if have >= n:
            return True
        if self._fileno >= 0:
            return self._map(n)
        if len(self._scratch) < n:
            self._scratch = memoryview(bytearray(max(CHUNK_SIZE, n)))
        scratch = self._scratch
        filled = 0
        while have < n and self.error is None:
            try:
                more = self._readinto(scratch[filled:])
            except (OSError, EOFError, zlib.error) as exc:
                self.error = str(exc)
                break
            if not more:
                break
            filled += more
            have += more
        self.consumed += self.off
        self.buf = b"".join((self.buf[self.off:], scratch[:filled]))
        self.off = 0
        return have >= n

    def _map(self, n: int) -> bool:
        """Map the window that starts at the page holding the next unread byte."""
        position = self.consumed + self.off
        start = position - position % mmap.ALLOCATIONGRANULARITY
        self.buf = b""  # unmaps the old window before the next one is mapped
        try:
            # The size now, not at open: a file still being written is read on to its end.
            size = os.fstat(self._fileno).st_size
            length = min(max(WINDOW_SIZE, position - start + n), size - start)
            if length > position - start:
                self.buf = mmap.mmap(self._fileno, length, flags=MAP_FLAGS,
                                     prot=mmap.PROT_READ, offset=start)
            else:
                start = position
        except (OSError, ValueError):
            # Not mappable after all (some file systems): read it instead.
            self._fileno = -1
            self.consumed, self.off = position, 0
            try:
                self.stream.seek(position)
            except OSError as exc:
                self.error = str(exc)
                return False
            return self.ensure(n)
        self.consumed = start
        self.off = position - start
        return len(self.buf) - self.off >= n

    @property
    def position(self) -> int:
        """Offset in the stream of the next unread byte."""
        return self.consumed + self.off

    def remaining(self) -> int:
        return len(self.buf) - self.off
