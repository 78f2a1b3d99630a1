"""Views of Wireshark's second opinion: `analyzer frame` (the dissection tree, and its
`frame` JSON object) and `analyzer verify` (the verdict table, `verify_item` and
`verify_summary` JSON objects, the estimate line). Text from the capture is escaped
(`text.escape`): field values carry the capture's bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from analyzer.report.text import escape

if TYPE_CHECKING:
    from analyzer.wireshark.frame import DissectionNode, FrameDissection
    from analyzer.wireshark.verify import VerifyItem, VerifyRow, VerifySummary


def frame_hint(capture: str) -> Text:
    """The footer line of views that show frame numbers: where the full detail is."""
    name = "CAPTURE" if capture == "-" else escape(capture)  # stdin: saved elsewhere, if at all
    return Text(f"analyzer frame {name} N shows frame N in full (Wireshark's dissection)",
                style="dim")


# --- frame ----------------------------------------------------------------------------


def frame_tree(capture: str, frame: FrameDissection) -> Tree:
    tree = Tree(Text(f"{escape(capture)} frame {frame.number}", style="bold"))
    for layer in frame.layers:
        _add_node(tree.add(Text(escape(layer.showname or layer.name), style="bold cyan")),
                  layer.children)
    return tree


def _add_node(branch: Tree, children: Sequence[DissectionNode]) -> None:
    for child in children:
        _add_node(branch.add(Text(escape(child.showname or child.name))), child.children)


def frame_object(capture: str, frame: FrameDissection) -> dict[str, Any]:
    """The `frame` JSON object: `{"type": "frame", "capture", "frame", "layers"}`; each
    layer and field is `{"name", "showname", "show", "value", "fields"}`."""
    return {"type": "frame", "capture": capture, "frame": frame.number,
            "layers": [_node_object(layer) for layer in frame.layers]}


def _node_object(node: DissectionNode) -> dict[str, Any]:
    return {"name": node.name, "showname": node.showname, "show": node.show,
            "value": node.value, "fields": [_node_object(child) for child in node.children]}


# --- verify ---------------------------------------------------------------------------

VERDICT_STYLE = {"agree": "green", "explained": "yellow", "unexplained": "bold red",
                 "unchecked": "dim"}


def estimate_text(capture: str, packets: int, seconds: float) -> Text:
    if seconds < 1:
        when = "under a second"
    elif seconds < 120:
        when = f"about {seconds:.0f} s"
    else:
        when = f"about {seconds / 60:.0f} min"
    return Text(f"verify: {escape(capture)}: {packets:,} packets, {when} (tshark reads it "
                "twice)", style="dim")


def verify_table(rows: Sequence[VerifyRow], hidden: int) -> Table:
    """One row per stream or transfer; `hidden` agreeing rows left out."""
    table = Table(title="tshark's reading against ours", title_justify="left")
    table.add_column("what")
    table.add_column("#", justify="right")
    table.add_column("stream / file")
    table.add_column("verdict")
    table.add_column("differences")
    for row in rows:
        table.add_row("TCP" if row.what == "tcp_stream" else "TFTP",
                      "-" if row.number is None else str(row.number),
                      Text(escape(row.label)),
                      Text(row.verdict, style=VERDICT_STYLE[row.verdict]),
                      Text(escape("\n".join(row.notes))))
    if hidden:
        table.caption = f"{hidden} more agree (all rows: --json)"
    return table


def summary_text(summary: VerifySummary) -> Text:
    counts = summary.counts
    text = Text(f"{summary.tcp_streams} TCP streams, {summary.tftp_transfers} TFTP "
                f"transfers against tshark {summary.tshark_version}: ")
    text.append(f"{counts['agree']} agree", style="green")
    text.append(f", {counts['explained']} explained", style="yellow")
    text.append(f", {counts['unexplained']} unexplained",
                style="bold red" if counts["unexplained"] else "")
    if counts["unchecked"]:
        text.append(f", {counts['unchecked']} not compared", style="dim")
    text.append(f" ({summary.seconds:.1f} s)")
    return text


def reasons_text(summary: VerifySummary) -> Text | None:
    from analyzer.wireshark.verify import REASONS

    if not summary.reasons:
        return None
    lines = []
    for code in sorted(summary.reasons):
        meaning = "; ".join(REASONS.get(part, part) for part in code.split("+"))
        lines.append(f"{code} ({summary.reasons[code]}): {meaning}")
    return Text("explained by tshark's known behaviours (docs/wireshark.md):\n  "
                + "\n  ".join(lines), style="dim")


def verify_item_object(item: VerifyItem) -> dict[str, Any]:
    return {"type": "verify_item", "what": item.what, "number": item.number,
            "check": item.check, "verdict": item.verdict, "reason": item.reason,
            "ours": item.ours, "tshark": item.tshark, "detail": item.detail}


def verify_summary_object(summary: VerifySummary) -> dict[str, Any]:
    return {"type": "verify_summary", "capture": summary.capture,
            "tshark_version": summary.tshark_version, "packets": summary.packets,
            "tcp_streams": summary.tcp_streams, "tftp_transfers": summary.tftp_transfers,
            **summary.counts, "reasons": dict(sorted(summary.reasons.items())),
            "tshark_warning": summary.tshark_warning, "seconds": round(summary.seconds, 3),
            "ok": summary.ok}
