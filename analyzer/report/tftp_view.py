"""TFTP views: the transfers table of `read`, the files of `tftp extract`, and the
packet timeline of `tftp show` (runs of in-order DATA/ACK folded into block ranges)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.report.summary import format_bytes
from analyzer.report.text import escape
from analyzer.tftp.codec import error_name, format_options
from analyzer.tftp.transfer import CLIENT, SERVER, TftpTransfer, TimelineEvent

STATUS_STYLES = {"complete": "green", "error": "red", "incomplete": "yellow"}


def printable(text: str) -> Text:
    """Wire text with control characters made visible, never read as rich markup."""
    return Text(escape(text))


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def throughput(transfer: TftpTransfer) -> str:
    if transfer.bytes == 0 or transfer.duration <= 0:
        return "-"
    return f"{format_bytes(transfer.bytes / transfer.duration)}/s"


def status_text(transfer: TftpTransfer) -> Text:
    text = Text(transfer.status, style=STATUS_STYLES.get(transfer.status, ""))
    if transfer.error is not None:
        text.append(f" ({transfer.error.code} {error_name(transfer.error.code)})", style="dim")
    return text


def options_text(transfer: TftpTransfer, compact: bool = False) -> Text:
    """Requested options → what the OACK acknowledged."""
    requested = " ".join(f"{k}={v}" for k, v in transfer.options.items())
    if transfer.oack is None:
        if requested and compact:
            return printable(f"{requested} (no OACK)")
        return printable(requested or "-")
    acked = format_options(transfer.oack)
    if compact and acked == requested:
        return printable(f"{requested} (acked)")
    return printable(f"{requested or '-'} → {acked}")


# Below this width the 13 columns no longer fit: fold them into 7 multi-line ones.
WIDE_LAYOUT = 170


def transfers_table(results: Sequence[TftpTransfer], total: int | None = None
                    ) -> RenderableType:
    """The transfers, one row each, then their findings (layout fitted to the width);
    `total`: how many there were, when `results` shows only some."""
    return _TransfersView(list(results), len(results) if total is None else total)


class _TransfersView:
    def __init__(self, results: list[TftpTransfer], total: int) -> None:
        self.results = results
        self.total = total

    def __rich_console__(self, console: Console,
                         options: ConsoleOptions) -> Iterator[RenderableType]:
        wide = options.max_width >= WIDE_LAYOUT
        yield (_wide_table(self.results, self.total) if wide
               else _compact_table(self.results, self.total))
        notes = findings_text(self.results)
        if notes.plain:
            yield notes


def _blocks_text(t: TftpTransfer, sep: str) -> str:
    parts = [str(t.blocks)]
    if t.retransmissions:
        parts.append(f"+{t.retransmissions} resent")
    if t.gaps:
        parts.append(f"missing {_missing_text(t)}")
    return sep.join(parts)


def _codes(t: TftpTransfer, sep: str) -> str:
    return sep.join(sorted({f.code for f in t.findings})) or "-"


def _wide_table(results: Sequence[TftpTransfer], total: int) -> Table:
    table = Table(title=f"TFTP transfers ({total})", title_justify="left")
    for name, justify in (("#", "right"), ("client", "left"), ("server", "left"),
                          ("req", "left"), ("file", "left"), ("mode", "left"),
                          ("options", "left"), ("size", "right"), ("blocks", "right"),
                          ("duration", "right"), ("throughput", "right"),
                          ("status", "left"), ("findings", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for t in results:
        table.add_row(
            str(t.number), Text(t.client), Text(t.server), t.request.name,
            printable(t.request.filename), printable(t.request.mode), options_text(t),
            f"{t.bytes:,}", _blocks_text(t, ", "), format_duration(t.duration),
            throughput(t), status_text(t), _codes(t, ", "))
    return table


def _compact_table(results: Sequence[TftpTransfer], total: int) -> Table:
    table = Table(title=f"TFTP transfers ({total})", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("transfer", overflow="fold", min_width=20)
    table.add_column("options", overflow="fold", max_width=14)
    table.add_column("size, blocks, time", justify="right", max_width=12)
    table.add_column("status", min_width=10, max_width=16)
    for t in results:
        what = printable(f"{t.request.name} {t.request.filename} ({t.request.mode})")
        what.append(f"\n{t.client} →\n{t.server}", style="dim")
        status = status_text(t)
        if t.findings:
            status.append(f"\n{len(t.findings)} finding{'s' if len(t.findings) > 1 else ''}",
                          style="magenta")
        table.add_row(
            str(t.number), what, options_text(t, compact=True),
            f"{t.bytes:,} B\n{_blocks_text(t, chr(10))}\n{format_duration(t.duration)}"
            f"\n{throughput(t)}", status)
    return table


def findings_text(results: Sequence[TftpTransfer]) -> Text:
    text = Text()
    for t in results:
        for f in t.findings:
            where = f" frame {f.frame}" if f.frame is not None else ""
            text.append(f"  #{t.number} ", style="bold")
            text.append(f.code, style="magenta")
            text.append(f"{where}: {escape(f.message)}\n")  # (names, options off the wire)
    return text


def live_rows(transfers: Sequence[TftpTransfer], limit: int) -> list[tuple[Text, str, str]]:
    """(connection, packets, state) of the newest transfers, for the live sniff view (the
    file name from the wire made printable, never read as markup)."""
    rows = []
    for t in transfers[-limit:]:
        if t.error is not None:
            state = f"error {t.error.code} {error_name(t.error.code)}"
        elif t.ended:
            state = f"done, {t.bytes:,} bytes"
        else:
            state = f"{t.blocks} blocks, {t.bytes:,} bytes"
        rows.append((printable(f"#{t.number} {t.client} → {t.server} {t.request.name} "
                               f"{t.request.filename}"), str(t.packets), state))
    return rows


def extraction_table(results: Sequence[TftpTransfer]) -> RenderableType:
    """What `tftp extract` wrote: one row per transfer."""
    table = Table(title="Extracted TFTP files", title_justify="left")
    for name in ("#", "file", "status", "bytes", "sha256", "written to"):
        table.add_column(name, justify="right" if name in ("#", "bytes") else "left")
    for t in results:
        table.add_row(str(t.number), printable(t.request.filename), status_text(t),
                      f"{t.bytes:,}", t.sha256 or "-",
                      printable(t.extracted) if t.extracted else Text("nothing", style="dim"))
    return table


def _missing_text(t: TftpTransfer) -> str:
    parts = []
    for g in t.gaps:
        if g.last is None:
            parts.append(f"{g.first}–?")
        elif g.first == g.last:
            parts.append(str(g.first))
        else:
            parts.append(f"{g.first}–{g.last}")
    return ", ".join(parts)


# -- tftp show ----------------------------------------------------------------------------


def transfer_details(t: TftpTransfer) -> RenderableType:
    """Key facts of one transfer, then its timeline and findings."""
    facts = Table(show_header=False, box=None, padding=(0, 1),
                  title=f"TFTP transfer #{t.number}", title_justify="left")
    facts.add_column(style="bold cyan", no_wrap=True)
    facts.add_column(overflow="fold")
    facts.add_row("client", Text(t.client))
    facts.add_row("server", Text(t.server))
    facts.add_row("request", printable(f"{t.request.name} {t.request.filename} "
                                       f"({t.request.mode})"))
    facts.add_row("options", options_text(t))
    facts.add_row("in effect", f"blksize {t.blksize}, windowsize {t.windowsize}"
                  + (f", timeout {t.timeout} s" if t.timeout is not None else "")
                  + (f", tsize {t.tsize}" if t.tsize is not None else ""))
    facts.add_row("status", status_text(t))
    if t.error is not None:
        facts.add_row("error", printable(
            f"{t.error.code} {error_name(t.error.code)}: {t.error.message} "
            f"(from the {t.error_by}, frame {t.error_frame})"))
    facts.add_row("file", f"{t.bytes:,} bytes")
    facts.add_row("sha256", t.sha256 or "-")
    facts.add_row("blocks", f"{t.blocks} distinct, {t.retransmissions} repeated"
                  + (f", missing {_missing_text(t)}" if t.gaps else ""))
    facts.add_row("time", f"{format_duration(t.duration)}, {throughput(t)}")
    if t.extracted:
        facts.add_row("extracted", printable(t.extracted))
    parts: list[RenderableType] = [facts]
    if t.events is not None:
        parts.append(timeline_table(t))
    notes = findings_text([t])
    parts.append(notes if notes.plain else Text("  no findings", style="dim"))
    return Group(*parts)


def timeline_table(t: TftpTransfer) -> Table:
    table = Table(title="Timeline", title_justify="left")
    table.add_column("frame", justify="right")
    table.add_column("time", justify="right")
    table.add_column("", no_wrap=True)
    table.add_column("packet")
    table.add_column("note")
    start = t.start
    for row in fold_timeline(t.events or []):
        first, last, count, sender, packet, note = row
        frame = str(first.frame) if count == 1 else f"{first.frame}–{last.frame}"
        when = f"{first.ts - start:.6f}"
        note_text = printable(note)
        if note and note != "final" and first.kind in ("DATA", "ACK"):
            note_text.stylize("yellow")
        table.add_row(frame, when, _arrow(sender), printable(packet), note_text)
    return table


Row = tuple[TimelineEvent, TimelineEvent, int, str, str, str]


def fold_timeline(events: Sequence[TimelineEvent]) -> list[Row]:
    """Fold runs of in-order, unremarkable DATA/ACK into one row: "DATA 1–48 / ACK 1–48"."""
    rows: list[Row] = []
    run: list[TimelineEvent] = []

    def flush() -> None:
        if not run:
            return
        if len(run) <= 2:
            for e in run:
                rows.append((e, e, 1, e.sender, _packet_text(e), e.note))
        else:
            data = [e for e in run if e.kind == "DATA"]
            acks = [e for e in run if e.kind == "ACK"]
            parts = []
            if data:
                size = sum(e.length or 0 for e in data)
                parts.append(f"DATA {_range(data)} ({size:,} bytes)")
            if acks:
                parts.append(f"ACK {_range(acks)}")
            rows.append((run[0], run[-1], len(run), "both", " / ".join(parts),
                         f"{len(run)} packets in order"))
        run.clear()

    expected_data: int | None = None
    for e in events:
        plain = e.kind in ("DATA", "ACK") and e.note == ""
        if plain and e.kind == "DATA":
            plain = expected_data is None or e.block == expected_data
        if plain:
            run.append(e)
            if e.kind == "DATA" and e.block is not None:
                expected_data = e.block + 1
            continue
        flush()
        if e.kind == "DATA" and e.block is not None and e.note in ("", "final"):
            expected_data = e.block + 1
        rows.append((e, e, 1, e.sender, _packet_text(e), e.note))
    flush()
    return rows


def _range(events: list[TimelineEvent]) -> str:
    first, last = events[0].block, events[-1].block
    return str(first) if first == last else f"{first}–{last}"


def _packet_text(e: TimelineEvent) -> str:
    if e.kind == "DATA":
        return f"DATA {e.block} ({e.length} bytes)"
    if e.kind == "ACK":
        return f"ACK {e.block}"
    return e.kind


def _arrow(sender: str) -> Text:
    if sender == CLIENT:
        return Text("C → S")
    if sender == SERVER:
        return Text("C ← S")
    if sender == "both":
        return Text("C ⇄ S")
    return printable(sender)
