"""JSON Lines output (SPEC "Contract: JSON Lines"): one object per line, each with "type"."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    from analyzer.parallel import SplitAnalysis
    from analyzer.tcp.result import TcpStreamResult


class TcpLines:
    """Finished streams' JSON lines, spilled to a temporary file as they come and printed
    in stream order at the end: memory holds one small index entry per stream, whatever
    the capture's size. A stream's number is its rank by first frame, which is how
    Wireshark numbers them, so the streams of two processes merge as well.

    An index entry is one int, (first frame << 72) | (offset << 32) | length: about 40
    bytes a stream instead of 160 for a tuple, and sorting the ints sorts by first frame."""

    PLACEHOLDER = b'"stream": -1'

    def __init__(self, path: str | None = None, index: list[int] | None = None) -> None:
        """A new spill file, or (`path`, `index`) one another process wrote."""
        if path is None:
            descriptor, path = tempfile.mkstemp(prefix="analyzer-streams-", suffix=".jsonl")
            self._file: BinaryIO = os.fdopen(descriptor, "w+b")
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.path = path
        self.index = index if index is not None else []
        self._end = 0

    def __call__(self, result: TcpStreamResult) -> None:
        result.stream = -1
        data = json.dumps(result.to_json(), allow_nan=False).encode()
        self._file.write(data)
        self.index.append((result.first_frame << 72) | (self._end << 32) | len(data))
        self._end += len(data)

    def detach(self) -> tuple[str, list[int]]:
        """Close the file, keep it on disk, and say where it is (for the other process)."""
        self._file.close()
        return self.path, self.index

    def write_ordered(self, out: TextIO, *others: TcpLines) -> None:
        """Print every stream of these spill files by stream number, then delete them."""
        parts = (self, *others)
        try:
            for part in parts:
                part._file.flush()
            # the two low bits say which part (one per process: at most two)
            assert len(parts) <= 4
            merged = sorted([(entry << 2) | i for i, part in enumerate(parts)
                             for entry in part.index])
            for number, key in enumerate(merged):
                part = parts[key & 3]
                offset, length = (key >> 34) & ((1 << 40) - 1), (key >> 2) & 0xFFFFFFFF
                part._file.seek(offset)
                line = part._file.read(length).replace(
                    self.PLACEHOLDER, b'"stream": %d' % number, 1)
                out.write(line.decode())
                out.write("\n")
        finally:
            for part in parts:
                part.close()

    def close(self) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


def write_objects(objects: Iterable[dict[str, Any]], out: TextIO) -> None:
    for obj in objects:
        out.write(json.dumps(obj, allow_nan=False))
        out.write("\n")


def write_analysis(analysis: Analysis, out: TextIO, tcp_lines: TcpLines | None = None) -> None:
    """tcp_stream objects by stream number (from `tcp_lines` when the tracker handed its
    results there; none of those already printed as they finished), tftp_transfer
    objects, then the capture."""
    if tcp_lines is not None:
        tcp_lines.write_ordered(out)
    write_objects((r.to_json() for r in analysis.tcp.results()), out)
    write_objects((r.to_json() for r in analysis.tftp.results()), out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()


def write_split_analysis(analysis: SplitAnalysis, out: TextIO) -> None:
    """The same objects from a two-process analysis, whose TCP lines are spilled text."""
    analysis.tcp_lines[0].write_ordered(out, *analysis.tcp_lines[1:])
    write_objects((r.to_json() for r in analysis.tftp.results()), out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()
