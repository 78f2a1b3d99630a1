"""Views of `analyzer tftp check`: the report card (a rich table grouped by RFC), the
one-line summary and the `tftp_check` JSON objects (SPEC)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table
from rich.text import Text

from analyzer.report.text import escape
from analyzer.tftpcheck.checks import VERDICTS
from analyzer.tftpcheck.runner import CheckResult

VERDICT_STYLES = {"pass": "green", "warn": "yellow", "fail": "bold red",
                  "unsupported": "cyan", "skipped": "dim"}


def rfc_of(result: CheckResult) -> str:
    """The RFC alone ("RFC 1350"), for grouping and the JSON `rfc` key."""
    return " ".join(result.check.rfc.split()[:2])


def tftp_check_object(result: CheckResult) -> dict[str, Any]:
    return {"type": "tftp_check", "check": result.check.id, "rfc": rfc_of(result),
            "section": result.check.rfc, "verdict": result.verdict.verdict,
            "detail": result.verdict.detail, "frames": list(result.verdict.frames)}


def summary_line(results: list[CheckResult]) -> str:
    """`23 pass, 2 warn, 1 fail, 3 unsupported` (verdicts that occur, in a fixed order)."""
    counts = Counter(r.verdict.verdict for r in results)
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if counts[v]) or "no checks"


def report_table(results: list[CheckResult], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    table.add_column("RFC")
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("detail", overflow="fold")
    table.add_column("frames", overflow="fold")
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(rfc_of(result), []).append(result)
    for rfc in sorted(groups, key=lambda name: int(name.split()[-1])):
        for i, result in enumerate(groups[rfc]):
            verdict = result.verdict
            table.add_row(
                Text(rfc if i == 0 else ""), Text(result.check.id),
                Text(verdict.verdict, style=VERDICT_STYLES[verdict.verdict]),
                Text(escape(verdict.detail)), Text(",".join(map(str, verdict.frames))),
                end_section=i == len(groups[rfc]) - 1)
    return table
