"""The capture summary view: what was read, link types, interfaces, protocols, warnings."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.pipeline import CaptureSummary
from analyzer.report.jsonl import capture_object
from analyzer.report.text import escape


def format_time(ts: float | None) -> str:
    """A UTC date and time, or raw epoch seconds for a time no calendar date can show (a
    damaged or mutated timestamp: year 13393 and beyond)."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    except (ValueError, OverflowError, OSError):
        return f"{ts:.6f} (epoch seconds)"


def _out_of_calendar(ts: float | None) -> bool:
    return ts is not None and format_time(ts).endswith("(epoch seconds)")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def capture_summary(summary: CaptureSummary) -> RenderableType:
    data = capture_object(summary)
    table = Table(title="Capture", title_justify="left", show_header=False, box=None,
                  padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    fmt = data["format"] + (" (gzip)" if data["compressed"] else "")
    if data["sections"] > 1:
        fmt += f", {data['sections']} sections"
    files = data.get("files", [])
    if files:
        table.add_row("files", f"{len(files)} files merged in time order: "
                               f"{files[0]['file']} … {files[-1]['file']}")
    else:
        table.add_row("file", Text(escape(data["file"])))
    table.add_row("format", fmt)
    table.add_row("packets", f"{data['packets']:,}"
                  + (f" ({data['filtered_out']:,} filtered out)" if data["filtered_out"] else ""))
    table.add_row("bytes", f"{data['bytes']:,} captured, {data['wire_bytes']:,} on the wire")
    table.add_row("first / last", f"{format_time(data['first'])}  →  {format_time(data['last'])}")
    table.add_row("duration", f"{data['duration']:.6f} s")
    table.add_row("link types", ", ".join(f"{k} ({v:,})" for k, v in data["link_types"].items())
                  or "-")
    if data["skipped_link_types"]:
        table.add_row("skipped", Text(", ".join(
            f"{k} ({v:,})" for k, v in data["skipped_link_types"].items()), style="yellow"))
    if len(data["interfaces"]) > 1 or any(i["name"] for i in data["interfaces"]):
        # names come from the capture or the system: escaped, and never read as markup
        table.add_row("interfaces", Text(", ".join(
            f"#{i['id']} {escape(i['name']) if i['name'] else '(unnamed)'} {i['link_type']} "
            f"({i['packets']:,})" + (f" dropped {i['dropped']:,}" if i["dropped"] else "")
            for i in data["interfaces"])))
    if "ended" in data:
        table.add_row("ended", data["ended"])
    table.add_row("protocols", ", ".join(f"{k} {v:,}" for k, v in data["protocols"].items())
                  or "-")
    if data["tunnels"]:
        table.add_row("tunnels", ", ".join(f"{k} {v:,}" for k, v in data["tunnels"].items()))
    if data["tunnels_not_decoded"]:
        table.add_row("not decoded", Text(", ".join(
            f"{k} {v:,}" for k, v in data["tunnels_not_decoded"].items()), style="yellow"))
    if data["malformed"] or data["truncated"]:
        table.add_row("damaged", Text(f"{data['malformed']:,} malformed, "
                                      f"{data['truncated']:,} cut by the snaplen", style="yellow"))
    parts: list[RenderableType] = [table]
    warnings = list(data["warnings"])
    if _out_of_calendar(data["first"]) or _out_of_calendar(data["last"]):
        warnings.append("timestamps beyond what a date can show (a damaged capture?): shown "
                        "as epoch seconds")
    for warning in warnings:
        parts.append(Text(f"warning: {escape(warning)}", style="bold yellow"))
    return Group(*parts)
