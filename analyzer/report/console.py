"""Putting views on the terminal: the `read`/`sniff` report, JSON Lines, the progress bar
for long reads and the live view while sniffing. Rich renders to stdout for reports and
to stderr for progress, so `--json` output stays clean."""

from __future__ import annotations

import heapq
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from analyzer.report.summary import capture_summary
from analyzer.report.tcp_json import stream_line
from analyzer.report.tcp_view import BROKEN, GOOD, SUSPICIOUS, health, live_rows, streams_table
from analyzer.report.text import escape

if TYPE_CHECKING:
    from analyzer.capture.live import InterfaceEntry, LiveCapture
    from analyzer.pipeline import Analysis, Analyzer
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.transfer import TftpTransfer


R = TypeVar("R")
TABLE_ROWS = 300  # a terminal table of thousands of streams helps nobody
# Reports written to a pipe or file are not squeezed into rich's default 80 columns.
PIPE_WIDTH = 140


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits with status 1; the reader of our output going away (`|
        # head`) is not our failure: the command line's handler ends with 0, as for JSON
        raise BrokenPipeError


def stdout_console() -> Console:
    """The console reports go to: 140 columns into a pipe or file, the terminal's width
    on one; COLUMNS when it is a positive number (rich would take COLUMNS=0 and print
    nothing at all)."""
    columns = os.environ.get("COLUMNS", "")
    width: int | None = None
    if columns and not (columns.isdigit() and int(columns) > 0):
        width = PIPE_WIDTH  # an unusable COLUMNS: as if it were not set
        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns or PIPE_WIDTH
        except (OSError, ValueError):
            pass
    console = _Console(highlight=False, width=width)
    if width is None and not console.is_terminal and not columns:
        console = _Console(highlight=False, width=PIPE_WIDTH)
    return console


def json_writer() -> Callable[[TcpStreamResult], None]:
    """A TcpTracker result sink that prints each stream's JSON line at once (`--json`)."""

    def write(result: TcpStreamResult) -> None:
        sys.stdout.write(stream_line(result))
        sys.stdout.write("\n")

    return write


def print_analysis(analysis: Analysis, *, table: TableStreams | None = None,
                   transfers: TableTransfers | None = None) -> None:
    """The report; `table` / `transfers`: the streams / TFTP transfers to show, when the
    trackers handed their results there as they finished (else they are chosen from
    `analysis.tcp.results()` / `analysis.tftp.results()`)."""
    from analyzer.report.tftp_view import transfers_table

    console = stdout_console()
    console.print(capture_summary(analysis.capture))
    if table is None:
        table = TableStreams()
        for result in analysis.tcp.results():
            table(result)
    if transfers is None:
        transfers = TableTransfers()
    for transfer in analysis.tftp.results():
        transfers(transfer)
    tftp_results = transfers.shown()
    if table.total:
        console.print()
        shown = table.shown()
        console.print(streams_table(shown))
        if len(shown) < table.total:
            console.print(Text(
                f"showing {len(shown):,} of {table.total:,} streams: broken, then "
                "suspicious, then the rest by number; `--json` lists every one, `-f` "
                "narrows the capture", style="dim"))
    if tftp_results:
        console.print()
        console.print(transfers_table(tftp_results, transfers.total))
        if len(tftp_results) < transfers.total:
            console.print(Text(
                f"showing {len(tftp_results):,} of {transfers.total:,} TFTP transfers: "
                "with findings or an error, then incomplete, then the rest by number; "
                "`--json` lists every one, `-f` narrows the capture", style="dim"))
    if not table.total and not tftp_results:
        console.print(Text("\nNo TCP streams or TFTP transfers in this capture.", style="dim"))


class _TableChoice(Generic[R]):
    """The results a table shows, chosen as they come: at most `limit`, the lowest
    `rank` first, then by number; shown in number order. As a tracker's `on_result` it
    keeps a few hundred results, not one per connection or request."""

    def __init__(self, rank: Callable[[R], int], number: Callable[[R], int],
                 limit: int = TABLE_ROWS) -> None:
        self.limit = limit
        self.total = 0
        self._rank = rank
        self._number = number
        # a heap of (-rank, -number, result): its top is the first to give way
        self._kept: list[tuple[int, int, R]] = []

    def __call__(self, result: R) -> bool:
        """Take a result; True if it is (for now) one of those shown."""
        self.total += 1
        entry = (-self._rank(result), -self._number(result), result)
        if len(self._kept) < self.limit:
            heapq.heappush(self._kept, entry)
        elif entry[:2] > self._kept[0][:2]:  # numbers are unique: no ties
            heapq.heapreplace(self._kept, entry)
        else:
            return False
        return True

    def shown(self) -> list[R]:
        return sorted((entry[2] for entry in self._kept), key=self._number)


class TableStreams(_TableChoice["TcpStreamResult"]):
    """The streams the table shows: broken ones first, then suspicious, then the rest."""

    def __init__(self, limit: int = TABLE_ROWS) -> None:
        super().__init__(lambda r: _HEALTH_RANK[health(r)], lambda r: r.stream, limit)


_HEALTH_RANK = {BROKEN: 0, SUSPICIOUS: 1, GOOD: 2}


class TableTransfers(_TableChoice["TftpTransfer"]):
    """The TFTP transfers the table shows: those with findings or an error first, then
    incomplete ones (an unanswered request is one), then the rest (a port-69 scan is
    100,000 requests: the table shows 300)."""

    def __init__(self, limit: int = TABLE_ROWS) -> None:
        super().__init__(_transfer_rank, lambda t: t.number, limit)


class ExtractedFiles(_TableChoice["TftpTransfer"]):
    """The transfers `tftp extract`'s table shows: those that wrote a file first."""

    def __init__(self, limit: int = TABLE_ROWS) -> None:
        super().__init__(lambda t: 0 if t.extracted else 1, lambda t: t.number, limit)


def _transfer_rank(transfer: TftpTransfer) -> int:
    if transfer.findings or transfer.status == "error":
        return 0
    return 1 if transfer.status == "incomplete" else 2


class FileProgress:
    """A progress bar on stderr over the bytes of the file being read."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("reading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._task = self._progress.add_task("read", total=None)

    def update(self, done: int, total: int) -> None:
        self._progress.update(self._task, completed=done, total=total)

    def __enter__(self) -> FileProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def file_progress() -> FileProgress:
    return FileProgress()


class LiveView:
    """Counters and the newest streams/transfers, redrawn on stderr while sniffing:
    `start(capture)` when the capture is open (returns the refresh to call between
    packets), stopped when the `with` block ends."""

    def __init__(self, analyzer: Analyzer, enabled: bool) -> None:
        self.analyzer = analyzer
        self.enabled = enabled
        self.capture: LiveCapture | None = None
        self._live: Live | None = None

    def _render(self) -> Group:
        stats = self.analyzer.decoder.stats
        header = Text.assemble(
            ("sniffing ", "bold"),
            (escape(self.capture.interface) if self.capture else "", "bold cyan"),
            f"  {stats.packets:,} packets  {stats.bytes:,} bytes  ",
            ", ".join(f"{k} {v:,}" for k, v in stats.protocols.most_common(6)))
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("kind", "connection", "packets", "state"):
            table.add_column(column)
        for row in live_rows(self.analyzer.tcp, 8):
            table.add_row("tcp", *row)
        from analyzer.report.tftp_view import live_rows as tftp_live_rows

        for tftp_row in tftp_live_rows(self.analyzer.tftp.under_way(4), 4):
            table.add_row("tftp", *tftp_row)
        return Group(header, table) if table.row_count else Group(header)

    def start(self, capture: LiveCapture) -> Callable[[], None] | None:
        self.capture = capture
        if not self.enabled:
            return None
        self._live = Live(self._render(), console=Console(stderr=True), transient=True,
                          auto_refresh=False)
        self._live.start()
        return self.refresh

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render(), refresh=True)

    def __enter__(self) -> LiveView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


def print_interfaces(entries: list[InterfaceEntry], *, as_json: bool) -> None:
    from analyzer.capture.linktypes import linktype_name

    if as_json:
        for e in entries:
            print(json.dumps({"type": "interface", "name": e.name, "index": e.index,
                              "link_type": linktype_name(e.linktype), "up": e.up,
                              "addresses": e.addresses}))
        return
    table = Table(title="Interfaces", title_justify="left")
    for column in ("#", "name", "link type", "state", "addresses"):
        table.add_column(column)
    for e in entries:
        table.add_row(str(e.index), Text(escape(e.name)), linktype_name(e.linktype),
                      Text("up", style="green") if e.up else Text("down", style="red"),
                      ", ".join(e.addresses))
    stdout_console().print(table)
