"""Records that a sans-IO tracker sets aside, kept in a temporary file instead of memory.

`TcpTracker` parks each open TCP stream that goes quiet as one record of bytes (its frozen
state, or a scan probe's one packet) in a store it is given (`put` -> handle, `get`,
`free`) and keeps only an index: ~150 bytes a parked stream in memory instead of ~350 more
for the record. Connections that go quiet and never close pile up for the whole idle
timeout (an hour), and a port scan parks every probe, so this is what keeps `read`'s
memory from growing with such captures. `SpillFile` is the store `read` gives it; the
tracker's default (`tcp.parking.MemoryStore`) keeps the records in memory, for live views
and tests.

The file is append-only: freed records' space comes back when none is left (the file is
then emptied). It stays small: 1.2 MB for the 2,356 streams parked in a 5M-packet capture
of 63k connections, 9.6 MB for the 208k probes of a 1M-packet SYN scan
(benchmarks/generate.py).

The one stream `tcp follow` or `tcp ladder` shows goes to such a file too, written once
and read back in order: its Follow chunks (`ChunkSpool`) or its per-packet ladder records
(`RecordSpool`), so neither holds the stream in memory.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from typing import Any, Final

from analyzer.tcp.lifecycle import ALL_STATES
from analyzer.tcp.result import Chunk, Conflict, PacketRecord
from analyzer.tcp.vocabulary import RECORDED_CODES

# Records are written in blocks of about this size: a park costs no system call.
WRITE_BLOCK: Final = 1 << 16
_LENGTH_BITS: Final = 32
_LENGTH_MASK: Final = (1 << _LENGTH_BITS) - 1
# Bytes read at a time when spooled chunks or records are read back in order.
READ_AHEAD: Final = 1 << 20


class SpillFile:
    """An append-only store of byte records in an unlinked temporary file.

    A handle is the record's offset and length in one int; a record still in the write
    buffer is read from there. Nothing is left on disk whatever happens: the file has no
    name from the moment it is made."""

    def __init__(self, prefix: str = "analyzer-spill-", block: int = WRITE_BLOCK) -> None:
        """`block`: bytes buffered before a write (tests make it tiny)."""
        descriptor, path = tempfile.mkstemp(prefix=prefix)
        os.unlink(path)
        self._fd = descriptor
        self._block = block
        self._buffer = bytearray()
        self._flushed = 0  # bytes in the file; the buffer comes after them
        self._live = 0  # records put and not freed

    def put(self, record: bytes) -> int:
        """Store a record; the handle `get` and `free` take. (Handles are the records'
        places, so two empty records would share one; a parked stream's is never empty.)"""
        buffer = self._buffer
        handle = (self._flushed + len(buffer)) << _LENGTH_BITS | len(record)
        buffer += record
        if len(buffer) >= self._block:
            self._flush()
        self._live += 1
        return handle

    def get(self, handle: int) -> bytes:
        """The record of a handle that was not freed."""
        return self.read(handle >> _LENGTH_BITS, handle & _LENGTH_MASK)

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` of what was put (records are stored one after
        another, so a reader that knows their layout can walk them in order)."""
        start = offset - self._flushed
        if start >= 0:
            return bytes(self._buffer[start:start + length])
        in_file = min(length, -start)
        data = os.pread(self._fd, in_file, offset)
        if len(data) != in_file:
            raise OSError(f"spill file: {len(data)} of {in_file} bytes read at {offset}")
        if in_file < length:  # the rest is still in the write buffer
            data += self._buffer[:length - in_file]
        return data

    def free(self, handle: int) -> None:
        """The record is not needed any more (its space is reused once none is left)."""
        self._live -= 1
        if not self._live:
            self._buffer.clear()
            if self._flushed:
                os.ftruncate(self._fd, 0)
                self._flushed = 0

    @property
    def size(self) -> int:
        """Bytes written, freed records included (what the file takes on disk, and the
        buffer)."""
        return self._flushed + len(self._buffer)

    def _flush(self) -> None:
        buffer = self._buffer
        written = 0
        while written < len(buffer):
            written += os.pwrite(self._fd, buffer[written:], self._flushed + written)
        self._flushed += len(buffer)
        buffer.clear()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        # A spool let go with its result (a program keeping every stream's records in
        # files) gives its descriptor back too.
        if getattr(self, "_fd", -1) >= 0:
            self.close()


def _walk(spill: SpillFile, head: struct.Struct) -> Iterator[tuple[tuple[Any, ...], bytes]]:
    """Records put one after another, each a `head` whose last field is the length of
    the bytes after it: (the head's fields, those bytes), in order, read ahead a block
    at a time."""
    end = spill.size
    offset = 0
    block, block_start = b"", 0  # what was read ahead, and where it starts
    need = head.size
    while offset < end:
        if offset + need > block_start + len(block):
            block_start = offset
            block = spill.read(offset, min(max(READ_AHEAD, need), end - offset))
        fields = head.unpack_from(block, offset - block_start)
        offset += need
        length = fields[-1]
        if offset + length > block_start + len(block):
            block_start = offset
            block = spill.read(offset, min(max(READ_AHEAD, length), end - offset))
        start = offset - block_start
        yield fields, block[start:start + length]
        offset += length


class ChunkSpool:
    """A kept stream's Follow chunks in a `SpillFile` (a `tcp.result.ChunkLog`): `tcp
    follow` of a stream of any size holds one chunk in memory, not the stream."""

    _HEAD: Final = struct.Struct("<?Qdi")  # from_client, frame, ts, length of the data

    def __init__(self, spill: SpillFile | None = None, flip: bool = False) -> None:
        self._spill = spill if spill is not None else SpillFile(prefix="analyzer-follow-")
        self._flip = flip

    def append(self, chunk: Chunk) -> None:
        self._spill.put(self._HEAD.pack(chunk.from_client, chunk.frame, chunk.ts,
                                        len(chunk.data)) + chunk.data)

    def flipped(self) -> ChunkSpool:
        return ChunkSpool(self._spill, not self._flip)

    def __iter__(self) -> Iterator[Chunk]:
        flip = self._flip
        for (from_client, frame, ts, _), data in _walk(self._spill, self._HEAD):
            yield Chunk(from_client != flip, frame, ts, data)

    def close(self) -> None:
        self._spill.close()


# An event code's byte in a spooled record.
_EVENT_INDEX: Final = {code: index for index, code in enumerate(RECORDED_CODES)}
_STATE_INDEX: Final = {state: index for index, state in enumerate(ALL_STATES)}


class RecordSpool:
    """A kept stream's ladder records in a `SpillFile` (a `tcp.result.RecordLog`): `tcp
    ladder` of a stream of any size holds a batch of records in memory, not one per
    packet (~1.3 KB each as objects, 40 bytes here plus a byte per event, a SYN's
    options, and a conflict's two versions).

    Records are stored as the stream took them, directions numbered by who sent first;
    `settle` (at the stream's end) is kept and applied to each record as it is read."""

    # frame, ts, seq, ack, payload length, window, flags, sent by the first sender, the
    # two endpoints' states (indexes in lifecycle.ALL_STATES), number of events, length
    # of a SYN's options, then the length of what follows: one byte per event (an index
    # in vocabulary.RECORDED_CODES), a SYN's raw TCP options, and a conflict if there is
    # one (_CONFLICT, then both versions' bytes).
    _HEAD: Final = struct.Struct("<QdIIIHB?BBBBI")
    _CONFLICT: Final = struct.Struct("<QI")  # its offset, the length of the first copy

    def __init__(self, spill: SpillFile | None = None) -> None:
        self._spill = spill if spill is not None else SpillFile(prefix="analyzer-ladder-")
        self._count = 0
        self._max_frame = 0
        self._settled: tuple[bool, int, int] | None = None

    def append(self, record: PacketRecord) -> None:
        events = bytes([_EVENT_INDEX[event] for event in record.events])
        options = record.tcp_options
        tail = events + options
        conflict = record.conflict
        if conflict is not None:
            tail += self._CONFLICT.pack(conflict.offset, len(conflict.first)) + \
                conflict.first + conflict.retransmitted
        self._spill.put(self._HEAD.pack(
            record.frame, record.ts, record.seq, record.ack, record.length, record.window,
            record.flags, record.from_client, _STATE_INDEX[record.client_state],
            _STATE_INDEX[record.server_state], len(events), len(options), len(tail),
        ) + tail)
        self._count += 1
        self._max_frame = max(self._max_frame, record.frame)

    def settle(self, first_is_client: bool, client_isn: int, server_isn: int) -> None:
        self._settled = (first_is_client, client_isn, server_isn)

    def max_frame(self) -> int:
        return self._max_frame

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[PacketRecord]:
        settled = self._settled
        for fields, tail in _walk(self._spill, self._HEAD):
            (frame, ts, seq, ack, length, window, flags, from_first, client_state,
             server_state, events, options, _) = fields
            conflict = None
            rest = events + options
            if len(tail) > rest:
                offset, first = self._CONFLICT.unpack_from(tail, rest)
                rest += self._CONFLICT.size
                conflict = Conflict(from_first, frame, offset, tail[rest:rest + first],
                                    tail[rest + first:])
            record = PacketRecord(
                frame, ts, from_first, flags, seq, ack, length, window,
                client_state=ALL_STATES[client_state], server_state=ALL_STATES[server_state],
                events=[RECORDED_CODES[code] for code in tail[:events]],
                tcp_options=tail[events:events + options], conflict=conflict)
            if settled is not None:
                record.settle(*settled)
            yield record

    def close(self) -> None:
        self._spill.close()
