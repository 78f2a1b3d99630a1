"""Finished results' lines, spilled to temporary files as the trackers hand them on and
printed in first-frame order at the end: how `read --json` keeps memory flat however many
connections a capture holds. The lines themselves are written by the views
(`analyzer.report.jsonl`); this is only where they wait.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, ClassVar, TextIO

from analyzer.report.jsonl import (
    capture_object,
    tftp_transfer_line,
    unanswered_line,
    write_objects,
    write_results,
)
from analyzer.report.tcp_json import STREAM_START, probe_head, stream_head, stream_tail

if TYPE_CHECKING:
    from analyzer.pipeline import Analysis
    from analyzer.run.parallel import SplitAnalysis
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.transfer import TftpTransfer, UnansweredRequest


# An index record, at rank * size in the index file: the result's first frame, where its
# line starts in the spill file, and its length (0: no result has that rank).
_RECORD = struct.Struct("<QQI")
_READ_RECORDS = 4096  # records read at a time when printing
# What a line spilled with a `ResultLines.reference` ends with: a NUL, then the offset
# and length of the text it stands for (a line's byte this far from its end is never
# a NUL otherwise: JSON escapes it).
_REFERENCE = struct.Struct("<BQI")
# Index records of the newest ranks are gathered in memory, up to this many ranks of
# them (5 MiB), and written at once (see `_index_record`).
_WINDOW = 1 << 18
# Records of older ranks wait, at most this many, to be written sorted by rank: those
# less than _SPAN_GAP ranks apart as one span of at most _SPAN_LIMIT ranks (the records
# between them read from the file first).
_PENDING_LIMIT = 16384
_SPAN_GAP = 256
_SPAN_LIMIT = 1 << 16
# When printing, the spill file is read a block at a time, and this many blocks are
# kept (see `_SpillReader`).
_BLOCK_BITS = 16
_BLOCKS = 32
# Lines wait in memory until they hold this many bytes, then are written sorted by rank
# (see `_write_batch`).
_BATCH_BYTES = 1 << 20
_BATCH_BITS = 24  # (more lines than a batch can hold: each counts a byte at least)
# Output is written in blocks of about this size: with PYTHONUNBUFFERED set (common in
# containers) a write per line is two system calls per result.
_WRITE_BLOCK = 1 << 18


class ResultLines:
    """Finished results' JSON lines, spilled to a temporary file as they come and printed
    in order of first frame at the end. Where each line is goes to a second temporary
    file, the index, as a fixed-size record at the result's rank (its place among this
    part's results in first-frame order: its stream or transfer number), so that memory
    holds nothing per result, however long the capture, and printing in order sorts
    nothing. Results of two processes merge the same way."""

    # What every line starts with, up to a number it is given when printed (its place
    # among all parts' lines: streams are numbered by first frame, as Wireshark numbers
    # them): lines are spilled without it and their number. None: lines stay as they are.
    NUMBERED_START: ClassVar[bytes | None] = None

    def __init__(self, path: str | None = None, index_path: str | None = None, *,
                 named: bool = False) -> None:
        """New spill files, or (`path`, `index_path`) the ones another process wrote.
        New files keep their names only when `named` (to be `detach`ed for another
        process): else they are unlinked at once, so that nothing is left behind even
        by a process that is killed (`sniff --json` ended by SIGKILL left two)."""
        if path is None or index_path is None:
            descriptor, path = tempfile.mkstemp(prefix="analyzer-results-", suffix=".jsonl")
            self._file: BinaryIO = os.fdopen(descriptor, "w+b")
            self._index, index_path = tempfile.mkstemp(prefix="analyzer-results-",
                                                       suffix=".index")
            if not named:
                for name in (path, index_path):
                    os.unlink(name)
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
            self._index = os.open(index_path, os.O_RDONLY)
        self.path = path
        self.index_path = index_path
        self._size = self._file.seek(0, os.SEEK_END)
        # Index records not yet written. Results finish in rank order but for those
        # that stay open a while, and a SYN flood finishes its probes in random order
        # (each when its port is reused), up to a few hundred thousand ranks back: a
        # write per record cost a quarter of the time. Records of ranks from
        # `_window_start` on go into `_window` (written when a rank past it comes, and
        # at the end), those of older ranks to `_pending`, (rank, record).
        self._window = bytearray()
        self._window_start = 0
        self._pending: list[tuple[int, bytes]] = []
        # lines not yet written: each one's key (its rank, then its place in the
        # batch: _BATCH_BITS bits), first frame and line; and their bytes
        self._batch_keys: list[int] = []
        self._batch_frames: list[int] = []
        self._batch_lines: list[bytes] = []
        self._batch_bytes = 0
        # text written once and referred to by lines (see `reference`), by its key
        self._references: dict[object, bytes] = {}

    def spill(self, line: str, rank: int, first_frame: int, reference: bytes = b"") -> None:
        """A finished result's line, and what `reference` gave for the rest of it."""
        data = line.encode() + reference if reference else line.encode()
        lines = self._batch_lines
        self._batch_keys.append(rank << _BATCH_BITS | len(lines))
        self._batch_frames.append(first_frame)
        lines.append(data)
        self._batch_bytes += len(data) + 1  # (with its newline: never 0, see _BATCH_BITS)
        if self._batch_bytes >= _BATCH_BYTES:
            self._write_batch()

    def _write_batch(self) -> None:
        """The lines waiting, to the spill file sorted by rank: the file is then runs of
        lines in rank order, which printing reads a block at a time (`_SpillReader`),
        however far from their ranks' order results finished (a SYN flood's probes
        finish seconds after they start, when their port comes again: a read per line
        was a third of the time)."""
        keys, frames, lines = self._batch_keys, self._batch_frames, self._batch_lines
        if not keys:
            return
        # by rank: one int each, not (rank, frame, line) tuples (a tuple comparison
        # compares twice)
        keys.sort()
        offset = self._size
        mask = (1 << _BATCH_BITS) - 1
        ordered: list[bytes] = []
        for key in keys:
            place = key & mask
            data = lines[place]
            self._index_record(key >> _BATCH_BITS, frames[place], offset, len(data))
            ordered.append(data)
            offset += len(data)
        self._file.write(b"".join(ordered))
        self._size = offset
        keys.clear()
        frames.clear()
        lines.clear()
        self._batch_bytes = 0

    def _index_record(self, rank: int, first_frame: int, offset: int, length: int) -> None:
        at = rank - self._window_start
        if at < 0:
            self._pending.append((rank, _RECORD.pack(first_frame, offset, length)))
            if len(self._pending) >= _PENDING_LIMIT:
                self._write_pending()
            return
        if at >= _WINDOW:  # the window moves on, half a window behind this rank
            self._write_window()
            self._window_start = max(self._window_start, rank - _WINDOW // 2)
            at = rank - self._window_start
        window = self._window
        start = at * _RECORD.size
        missing = start + _RECORD.size - len(window)
        if missing > 0:  # (grown as needed: most captures have a few results)
            window.extend(bytes(missing))
        _RECORD.pack_into(window, start, first_frame, offset, length)

    def reference(self, key: object, make: Callable[[], str]) -> bytes:
        """What a line may end with instead of the text `make()` gives, the same for
        every line of the same `key` (`spill`'s `reference`): the text is made and
        written into the spill file once, not with each line, and put back when the line
        is printed. (A SYN flood's probes share everything from `handshake` on with
        their shape's first: 3/4 of each line.) A reference is _REFERENCE: a NUL, which
        no JSON line holds, then where the text is."""
        reference = self._references.get(key)
        if reference is None:
            data = make().encode()
            self._file.write(data)
            reference = _REFERENCE.pack(0, self._size, len(data))
            self._size += len(data)
            self._references[key] = reference
        return reference

    def _write_window(self) -> None:
        """The window's records to the file (zeros where no result came: a result
        that comes later for those ranks is pending, written over them); the window
        starts after them."""
        window = self._window
        if window:
            start = self._window_start
            end = start + len(window) // _RECORD.size
            self._write_span([(start, window)], start, end)
            window.clear()
            self._window_start = end

    def _write_pending(self) -> None:
        """Write the pending records, by rank: those close together as one span, the
        records between them read from the file first (what earlier writes put there,
        else zeros: no result)."""
        pending = self._pending
        pending.sort(key=lambda item: item[0])
        size = _RECORD.size
        span: list[tuple[int, bytes | bytearray]] = []
        span_start = span_end = 0  # ranks
        for start, records in pending:
            end = start + len(records) // size
            if span and (start - span_end > _SPAN_GAP or end - span_start > _SPAN_LIMIT):
                self._write_span(span, span_start, span_end)
                span = []
            if not span:
                span_start = start
            span.append((start, records))
            span_end = end
        if span:
            self._write_span(span, span_start, span_end)
        pending.clear()

    def _write_span(self, runs: list[tuple[int, bytes | bytearray]], start: int,
                    end: int) -> None:
        size = _RECORD.size
        if len(runs) == 1:
            data = runs[0][1]
        else:
            length = (end - start) * size
            span = bytearray(os.pread(self._index, length, start * size))
            span += bytes(length - len(span))  # past the end of the file: no results yet
            for first, records in runs:
                at = (first - start) * size
                span[at:at + len(records)] = records
            data = span
        written = 0
        with memoryview(data) as view:  # (the window is not copied)
            while written < len(view):
                written += os.pwrite(self._index, view[written:], start * size + written)

    def detach(self) -> tuple[str, str]:
        """Close the files, keep them on disk, and say where they are (for the other
        process; made `named`)."""
        self._write_all()
        self._file.close()
        self._close_index()
        return self.path, self.index_path

    def _write_all(self) -> None:
        """Every line and index record to the files."""
        self._write_batch()
        self._write_window()
        self._write_pending()

    def _close_index(self) -> None:
        # once: a descriptor closed twice may by then be another file's
        if self._index >= 0:
            os.close(self._index)
            self._index = -1

    def _in_order(self) -> Iterator[tuple[int, int, int]]:
        """(first frame, offset, length) of each line, by rank: first-frame order."""
        os.lseek(self._index, 0, os.SEEK_SET)
        size = _RECORD.size
        while True:
            chunk = os.read(self._index, size * _READ_RECORDS)
            whole = len(chunk) - len(chunk) % size
            for record in _RECORD.iter_unpack(chunk[:whole]):
                if record[2]:
                    yield record
            if whole < size * _READ_RECORDS:
                return  # (a short read is the end: the file is a local temporary one)

    def write_ordered(self, out: TextIO, *others: ResultLines) -> None:
        """Print every line of these spill files by first frame, then delete them."""
        parts = (self, *others)
        start = self.NUMBERED_START
        try:
            for part in parts:
                part._write_all()
                part._file.flush()
            # Each part's results are already in first-frame order: merged by taking the
            # part whose next line comes first (there are one or two; heapq.merge, in
            # Python, was a quarter of this loop on a SYN flood's million lines).
            records = [part._in_order() for part in parts]
            heads = [next(part_records, None) for part_records in records]
            readers = [_SpillReader(part._file.fileno()) for part in parts]
            referred: list[dict[bytes, bytes]] = [{} for _ in parts]  # see `reference`
            # The lines are UTF-8 already: written as bytes to the stream under `out`,
            # not decoded and encoded again (two copies of 700 MB on a 1M SYN flood),
            # each line as its pieces, joined once a block.
            binary: BinaryIO | None = getattr(out, "buffer", None)
            out.flush()
            pieces: list[bytes] = []
            size = number = 0
            while True:
                part_index = -1
                first = 0
                for index, head in enumerate(heads):
                    if head is not None and (part_index < 0 or head[0] < first):
                        part_index, first = index, head[0]
                if part_index < 0:
                    break
                head = heads[part_index]
                assert head is not None
                _, offset, length = head
                heads[part_index] = next(records[part_index], None)
                reader = readers[part_index]
                reader.locate(offset, length)
                block, at = reader.block, reader.at
                end = at + length
                if start is not None:
                    pieces.append(b"%s%d" % (start, number))
                    number += 1
                nul = end - _REFERENCE.size
                if nul < at or block[nul]:
                    pieces.append(block[at:end])
                else:
                    pieces.append(block[at:nul])
                    reference = block[nul:end]
                    text = referred[part_index].get(reference)
                    if text is None:
                        _, text_at, text_length = _REFERENCE.unpack(reference)
                        reader.locate(text_at, text_length)
                        text = reader.block[reader.at:reader.at + text_length]
                        referred[part_index][reference] = text
                    pieces.append(text)
                    length += len(text)  # (about: the reference is counted too)
                pieces.append(b"\n")
                size += length
                if size >= _WRITE_BLOCK:
                    _write_pieces(pieces, out, binary)
                    pieces.clear()
                    size = 0
            if pieces:
                _write_pieces(pieces, out, binary)
            if binary is not None:
                binary.flush()
        finally:
            for part in parts:
                part.close()

    def close(self) -> None:
        """Close and delete both files, whatever happened (on a full disk the last flush
        fails; the file is closed all the same)."""
        with contextlib.suppress(OSError):
            self._file.close()
        self._close_index()
        for path in (self.path, self.index_path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _write_pieces(pieces: list[bytes], out: TextIO, binary: BinaryIO | None) -> None:
    data = b"".join(pieces)
    if binary is not None:
        binary.write(data)
    else:  # (a text stream without bytes under it: whole lines are whole characters)
        out.write(data.decode())


class _SpillReader:
    """Lines of a spill file, by offset and length, for printing them by rank: read in
    blocks, the ones used last kept. The file is runs of lines sorted by rank
    (`ResultLines._write_batch`), so printing by rank reads each run from its start to
    its end, and only the runs of results that finished about the same time at once: a
    block is read whole once, and a line of a block no longer kept read alone."""

    def __init__(self, descriptor: int) -> None:
        self._descriptor = descriptor
        self._blocks: dict[int, bytes] = {}
        self._used: dict[int, int] = {}  # when each block kept was last used
        self._reads = 0
        self._read_before: set[int] = set()
        self.block = b""  # see `locate`
        self.at = 0
        # the block used last (when it is used again, `_used` is not updated: the
        # blocks kept are the ones most recently turned to)
        self._last = b""
        self._last_index = -1

    def locate(self, offset: int, length: int) -> None:
        """Where the `length` bytes at `offset` are: from `at` on in `block` (a kept
        block, or those bytes alone: a line read late, or across two blocks). Not
        returned as a slice: a line's parts are sliced from the block as they are
        printed, without a copy of the line first."""
        index = offset >> _BLOCK_BITS
        at = offset - (index << _BLOCK_BITS)
        block = self._last
        if index == self._last_index and at + length <= len(block):
            self.block, self.at = block, at  # (most lines: the block of the line before)
            return
        self._reads += 1
        found = self._blocks.get(index)
        if found is None and index not in self._read_before:
            found = self._load(index)
        if found is not None and at + length <= len(found):
            self._used[index] = self._reads
            self._last, self._last_index = found, index
            self.block, self.at = found, at
        else:
            self.block, self.at = os.pread(self._descriptor, length, offset), 0

    def _load(self, index: int) -> bytes:
        blocks, used = self._blocks, self._used
        if len(blocks) >= _BLOCKS:
            oldest = min(used, key=used.__getitem__)
            del blocks[oldest], used[oldest]
        block = blocks[index] = os.pread(self._descriptor, 1 << _BLOCK_BITS,
                                         index << _BLOCK_BITS)
        used[index] = self._reads
        self._read_before.add(index)
        return block


class TcpLines(ResultLines):
    """`tcp_stream` lines (TcpTracker's on_result and on_probe), numbered when printed."""

    NUMBERED_START: ClassVar[bytes | None] = STREAM_START.encode()

    def add(self, result: TcpStreamResult) -> None:
        rank = result.stream  # this tracker's number: all processes' are given at the end
        result.stream = -1
        template = result.template
        if template is None:
            self.spill(stream_head(result) + stream_tail(result), rank, result.first_frame)
            return
        self.add_probe(template, rank, result.first_frame, result.start, result.end,
                       result.client.endpoint, result.server.endpoint)

    def add_probe(self, template: TcpStreamResult, rank: int, first_frame: int,
                  start: float, end: float, client: str, server: str) -> None:
        """A probe's line (TcpTracker's on_probe): only its start is its own."""
        reference = self._references.get(template)
        if reference is None:
            reference = self.reference(template, lambda: stream_tail(template))
        self.spill(probe_head(template, client, server, start, end), rank, first_frame,
                   reference)


class TftpLines(ResultLines):
    """`tftp_transfer` lines (TftpTracker's on_result, and `unanswered` its
    on_unanswered): first frame order is request order, the order of the transfers'
    numbers."""

    def add(self, transfer: TftpTransfer) -> None:
        self.spill(tftp_transfer_line(transfer), transfer.number - 1, transfer.first_frame)

    def unanswered(self, request: UnansweredRequest) -> None:
        self.spill(unanswered_line(request), request.number - 1, request.first_frame)


def write_spilled_analysis(analysis: Analysis, out: TextIO, tcp_lines: TcpLines | None = None,
                           tftp_lines: TftpLines | None = None) -> None:
    """tcp_stream objects by stream number, tftp_transfer objects in request order, then
    the capture. Results the trackers handed to `tcp_lines` / `tftp_lines` come from
    there; the trackers keep (and print here) only those they did not hand on."""
    try:
        if tcp_lines is not None:
            tcp_lines.write_ordered(out)
        write_results(out, analysis.tcp.results(), ())
        if tftp_lines is not None:
            tftp_lines.write_ordered(out)
        write_results(out, (), analysis.tftp.results())
        write_objects([capture_object(analysis.capture)], out)
        out.flush()
    finally:  # (a full disk may first show here: lines wait in memory; no file is left)
        for lines in (tcp_lines, tftp_lines):
            if lines is not None:
                lines.close()


def write_split_analysis(analysis: SplitAnalysis, out: TextIO) -> None:
    """The same objects from a two-process analysis, whose results are spilled text."""
    try:
        analysis.tcp_lines[0].write_ordered(out, *analysis.tcp_lines[1:])
        analysis.tftp_lines.write_ordered(out)
        write_objects([capture_object(analysis.capture)], out)
        out.flush()
    finally:
        for lines in (*analysis.tcp_lines, analysis.tftp_lines):
            lines.close()
