"""JSON Lines output (SPEC "Contract: JSON Lines"): one object per line, each with "type"."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from array import array
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    from analyzer.parallel import SplitAnalysis
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.tracker import TftpTransfer


# One encoder for every line: json.dumps with a keyword builds a new one per call.
_ENCODER = json.JSONEncoder(allow_nan=False)


class ResultLines:
    """Finished results' JSON lines, spilled to a temporary file as they come and printed
    in order of first frame at the end: memory holds 16 bytes per result (its first
    frame and where its line ends, in two arrays), whatever the capture's size. Results
    of two processes merge the same way."""

    # a field every line carries as -1, given the line's rank when printed (streams are
    # numbered by first frame, as Wireshark numbers them); None: lines stay as they are
    NUMBER_FIELD: bytes | None = None

    def __init__(self, path: str | None = None, firsts: array[int] | None = None,
                 ends: array[int] | None = None) -> None:
        """A new spill file, or (`path`, `firsts`, `ends`) one another process wrote."""
        if path is None:
            descriptor, path = tempfile.mkstemp(prefix="analyzer-results-", suffix=".jsonl")
            self._file: BinaryIO = os.fdopen(descriptor, "w+b")
        else:
            self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.path = path
        self.firsts = firsts if firsts is not None else array("Q")  # first frame of line i
        self.ends = ends if ends is not None else array("Q")  # file offset after line i

    def spill(self, obj: dict[str, Any], first_frame: int) -> None:
        data = _ENCODER.encode(obj).encode()
        self._file.write(data)
        self.firsts.append(first_frame)
        self.ends.append((self.ends[-1] if self.ends else 0) + len(data))

    def detach(self) -> tuple[str, array[int], array[int]]:
        """Close the file, keep it on disk, and say where it is (for the other process)."""
        self._file.close()
        return self.path, self.firsts, self.ends

    def write_ordered(self, out: TextIO, *others: ResultLines) -> None:
        """Print every line of these spill files by first frame, then delete them."""
        parts = (self, *others)
        field = self.NUMBER_FIELD
        try:
            for part in parts:
                part._file.flush()
            # (first frame, line, part): the two low bits say which part (one per process)
            assert len(parts) <= 4
            merged = sorted([(first << 42) | (line << 2) | i for i, part in enumerate(parts)
                             for line, first in enumerate(part.firsts)])
            for number, key in enumerate(merged):
                part = parts[key & 3]
                line_number = (key >> 2) & ((1 << 40) - 1)
                start = part.ends[line_number - 1] if line_number else 0
                part._file.seek(start)
                line = part._file.read(part.ends[line_number] - start)
                if field is not None:
                    line = line.replace(field + b"-1", field + b"%d" % number, 1)
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
        result.stream = -1
        self.spill(result.to_json(), result.first_frame)


class TftpLines(ResultLines):
    """`tftp_transfer` lines (TftpTracker's on_result): first frame order is request
    order, the order of the transfers' numbers."""

    def __call__(self, transfer: TftpTransfer) -> None:
        self.spill(transfer.to_json(), transfer.first_frame)


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
    write_objects((r.to_json() for r in analysis.tcp.results()), out)
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
