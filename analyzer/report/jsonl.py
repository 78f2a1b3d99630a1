"""JSON Lines output (SPEC "Contract: JSON Lines"): one object per line, each with "type"."""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    from analyzer.parallel import SplitAnalysis
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.tracker import TftpTransfer


# One encoder for every line: json.dumps with a keyword builds a new one per call.
_ENCODER = json.JSONEncoder(allow_nan=False)


@dataclass
class LineIndex:
    """Where a spill file's lines are, by rank (a result's place among its part's
    results in first-frame order: its stream or transfer number): the first frame and
    the line number (-1: none), and by line number, the file offset after it. 24 bytes
    per result, in arrays, so that printing in order sorts nothing."""

    firsts: array[int] = field(default_factory=lambda: array("Q"))
    lines: array[int] = field(default_factory=lambda: array("q"))
    ends: array[int] = field(default_factory=lambda: array("Q"))

    def add(self, rank: int, first_frame: int, size: int) -> None:
        ends, lines = self.ends, self.lines
        missing = rank + 1 - len(lines)
        if missing > 0:  # results come as they finish, so ranks come out of order
            lines.extend(repeat(-1, missing))
            self.firsts.extend(repeat(0, missing))
        lines[rank] = len(ends)
        self.firsts[rank] = first_frame
        ends.append((ends[-1] if ends else 0) + size)

    def in_order(self, part: int) -> Iterator[tuple[int, int, int]]:
        """(first frame, part, line) of each result, by rank: first-frame order."""
        firsts = self.firsts
        for rank, line in enumerate(self.lines):
            if line >= 0:
                yield firsts[rank], part, line


class ResultLines:
    """Finished results' JSON lines, spilled to a temporary file as they come and printed
    in order of first frame at the end: memory holds the LineIndex (24 bytes a result),
    whatever the capture's size. Results of two processes merge the same way."""

    # a field every line carries as -1, given the line's rank when printed (streams are
    # numbered by first frame, as Wireshark numbers them); None: lines stay as they are
    NUMBER_FIELD: bytes | None = None

    def __init__(self, path: str | None = None, index: LineIndex | None = None) -> None:
        """A new spill file, or (`path`, `index`) one another process wrote."""
        if path is None:
            descriptor, path = tempfile.mkstemp(prefix="analyzer-results-", suffix=".jsonl")
            self._file: BinaryIO = os.fdopen(descriptor, "w+b")
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.path = path
        self.index = index if index is not None else LineIndex()

    def spill(self, line: str, rank: int, first_frame: int) -> None:
        data = line.encode()
        self._file.write(data)
        self.index.add(rank, first_frame, len(data))

    def detach(self) -> tuple[str, LineIndex]:
        """Close the file, keep it on disk, and say where it is (for the other process)."""
        self._file.close()
        return self.path, self.index

    def write_ordered(self, out: TextIO, *others: ResultLines) -> None:
        """Print every line of these spill files by first frame, then delete them."""
        parts = (self, *others)
        number_field = self.NUMBER_FIELD
        try:
            for part in parts:
                part._file.flush()
            # each part's results are already in first-frame order: merge, sort nothing
            merged = heapq.merge(*(part.index.in_order(i) for i, part in enumerate(parts)))
            for number, (_, i, line_number) in enumerate(merged):
                part = parts[i]
                ends = part.index.ends
                start = ends[line_number - 1] if line_number else 0
                part._file.seek(start)
                line = part._file.read(ends[line_number] - start)
                if number_field is not None:
                    line = line.replace(number_field + b"-1", number_field + b"%d" % number, 1)
                out.write(line.decode())
                out.write("\n")
        finally:
            for part in parts:
                part.close()

    def close(self) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class TcpLines(ResultLines):
    """`tcp_stream` lines (TcpTracker's on_result), numbered when printed."""

    NUMBER_FIELD = b'"stream": '

    def __call__(self, result: TcpStreamResult) -> None:
        rank = result.stream  # this tracker's number: all processes' are given at the end
        result.stream = -1
        self.spill(result.json_line(), rank, result.first_frame)


class TftpLines(ResultLines):
    """`tftp_transfer` lines (TftpTracker's on_result): first frame order is request
    order, the order of the transfers' numbers."""

    def __call__(self, transfer: TftpTransfer) -> None:
        self.spill(_ENCODER.encode(transfer.to_json()), transfer.number - 1,
                   transfer.first_frame)


def write_objects(objects: Iterable[dict[str, Any]], out: TextIO) -> None:
    for obj in objects:
        out.write(_ENCODER.encode(obj))
        out.write("\n")


def write_analysis(analysis: Analysis, out: TextIO, tcp_lines: TcpLines | None = None,
                   tftp_lines: TftpLines | None = None) -> None:
    """tcp_stream objects by stream number, tftp_transfer objects in request order, then
    the capture. Results the trackers handed to `tcp_lines` / `tftp_lines` come from
    there; the trackers keep (and print here) only those they did not hand on."""
    if tcp_lines is not None:
        tcp_lines.write_ordered(out)
    for result in analysis.tcp.results():
        out.write(result.json_line())
        out.write("\n")
    if tftp_lines is not None:
        tftp_lines.write_ordered(out)
    write_objects((r.to_json() for r in analysis.tftp.results()), out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()


def write_split_analysis(analysis: SplitAnalysis, out: TextIO) -> None:
    """The same objects from a two-process analysis, whose results are spilled text."""
    analysis.tcp_lines[0].write_ordered(out, *analysis.tcp_lines[1:])
    analysis.tftp_lines.write_ordered(out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()
