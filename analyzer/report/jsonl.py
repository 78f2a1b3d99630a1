"""JSON Lines output (SPEC "Contract: JSON Lines"): one object per line, each with "type"."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.pipeline import Analysis

if TYPE_CHECKING:
    from analyzer.parallel import SplitAnalysis


def write_objects(objects: Iterable[dict[str, Any]], out: TextIO) -> None:
    for obj in objects:
        out.write(json.dumps(obj, allow_nan=False))
        out.write("\n")


def write_analysis(analysis: Analysis, out: TextIO) -> None:
    """tcp_stream objects (those not already written as they finished, by stream number),
    tftp_transfer objects, then the capture."""
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
