"""JSON Lines output (SPEC "Contract: JSON Lines"): one object per line, each with "type"."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    from analyzer.parallel import SplitAnalysis
    from analyzer.tcp.result import TcpStreamResult


class TcpLines:
    """Finished streams kept as JSON text (~0.7 KB each, not the ~2.5 KB result), to be
    printed in stream order at the end. A stream's number is its rank by first frame,
    which is how Wireshark numbers them, so streams from two processes merge too."""

    PLACEHOLDER = '"stream": -1'

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, result: TcpStreamResult) -> None:
        result.stream = -1
        self.lines.append((result.first_frame, json.dumps(result.to_json(), allow_nan=False)))

    def ordered(self) -> list[str]:
        self.lines.sort(key=lambda item: item[0])
        return [line.replace(self.PLACEHOLDER, f'"stream": {number}', 1)
                for number, (_first, line) in enumerate(self.lines)]


def write_objects(objects: Iterable[dict[str, Any]], out: TextIO) -> None:
    for obj in objects:
        out.write(json.dumps(obj, allow_nan=False))
        out.write("\n")


def write_analysis(analysis: Analysis, out: TextIO, tcp_lines: TcpLines | None = None) -> None:
    """tcp_stream objects by stream number (from `tcp_lines` when the tracker handed its
    results there; none of those already printed as they finished), tftp_transfer
    objects, then the capture."""
    if tcp_lines is not None:
        for line in tcp_lines.ordered():
            out.write(line)
            out.write("\n")
    write_objects((r.to_json() for r in analysis.tcp.results()), out)
    write_objects((r.to_json() for r in analysis.tftp.results()), out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()


def write_split_analysis(analysis: SplitAnalysis, out: TextIO) -> None:
    """The same objects from a two-process analysis, whose TCP lines are already text."""
    for line in analysis.tcp_lines:
        out.write(line)
        out.write("\n")
    write_objects((r.to_json() for r in analysis.tftp.results()), out)
    write_objects([analysis.capture.to_json()], out)
    out.flush()
