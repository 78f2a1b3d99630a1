"""Views of TCP results: the stream table of `read`/`sniff`, Follow TCP Stream in tshark's
four formats, and the ladder (sequence) diagram of one connection.

Views only: every fact comes from `TcpStreamResult` (and, for follow and ladder, the chunks
and packet records the tracker kept for the chosen stream). Follow output is byte-for-byte
tshark's `-z follow,tcp,MODE,N` layout; bytes never captured are not spliced into it: they
are listed by `gap_lines` for the caller to print apart (stderr), and in YAML as a `gaps:`
section.
"""

from __future__ import annotations

import base64
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from analyzer.decode.packet import flags_text
from analyzer.report.summary import format_bytes
from analyzer.tcp import vocabulary as vocab
from analyzer.tcp.lifecycle import ALL_STATES
from analyzer.tcp.result import PacketRecord, RecordList, RecordLog, TcpStreamResult

if TYPE_CHECKING:
    from analyzer.tcp.tracker import TcpTracker

SEPARATOR = "=" * 67 + "\n"

GOOD, SUSPICIOUS, BROKEN = "green", "yellow", "red"



class Words(NamedTuple):
    """What the views say for one code of analyzer.tcp.vocabulary."""

    note: str  # the ladder's note on a packet: a str.format template (see `_notes`)
    style: str
    short: str = ""  # an analysis kind's name in the stream table's counts


# A SYN-ACK answering a crossing SYN (simultaneous open): a view-only variant of syn-ack.
_SYN_ACK_CROSSING: Final = "syn-ack crossing"

# The words for every event and analysis kind, by code. Templates may use {me} and
# {other} (the packet's sender and receiver: "client" / "server"), {seq}, {rel_seq} and
# {length} (the packet's), and {rtt} (" (initial RTT … ms)" when known).
WORDS: Final = {
    vocab.EVENT_PORT_REUSE: Words("new connection on a reused 4-tuple (port reuse)", "yellow"),
    vocab.EVENT_SYN: Words("{me} opens: SYN, ISN {rel_seq} (raw {seq})", "green"),
    vocab.EVENT_SYN_ACK: Words("{me} accepts: SYN-ACK, ISN 0 (raw {seq})", "green"),
    _SYN_ACK_CROSSING: Words("{me} answers the crossing SYN: SYN-ACK", "green"),
    vocab.EVENT_SIMULTANEOUS_OPEN: Words("simultaneous open: both sides sent a SYN", "yellow"),
    vocab.EVENT_HANDSHAKE_ACK: Words("handshake complete{rtt}", "green"),
    vocab.EVENT_SYN_DATA: Words("SYN carries {length} bytes of data (TCP Fast Open?)", "yellow"),
    vocab.EVENT_ACTIVE_FIN: Words("{me} starts active close: FIN", "blue"),
    vocab.EVENT_PASSIVE_FIN: Words("{me} closes its side too: FIN (passive close)", "blue"),
    vocab.EVENT_SIMULTANEOUS_CLOSE: Words("FINs crossed: simultaneous close", "yellow"),
    vocab.EVENT_FIN_ACKED: Words("{me} ACKs the {other}'s FIN", "blue"),
    vocab.EVENT_RST: Words("{me} resets the connection", "red"),
    vocab.EVENT_REFUSED: Words("{me} refuses the connection: RST (nothing listening?)", "red"),
    vocab.RETRANSMISSION: Words("retransmission", "yellow", "retrans"),
    vocab.FAST_RETRANSMISSION: Words("fast retransmission (after 3 duplicate ACKs)", "yellow",
                               "fast-retrans"),
    vocab.OUT_OF_ORDER: Words("out of order", "yellow", "ooo"),
    vocab.DUP_ACK: Words("duplicate ACK", "yellow", "dup-ack"),
    vocab.ZERO_WINDOW: Words("zero window: {me} cannot take more data", "yellow", "zero-win"),
    vocab.KEEP_ALIVE: Words("keep-alive", "dim", "keep-alive"),
    vocab.LOST_SEGMENT: Words("previous segment not captured", "red", "lost"),
    vocab.ACKED_UNSEEN: Words("{me} ACKs bytes the capture never saw", "red", "acked-unseen"),
    # not an event: the ladder lists each conflict with its bytes (see `_notes`)
    vocab.OVERLAP_CONFLICT: Words("", "bold red", "CONFLICT"),
}
_BROKEN_COUNTS = (vocab.LOST_SEGMENT, vocab.ACKED_UNSEEN, vocab.OVERLAP_CONFLICT)
_SUSPICIOUS_COUNTS = (vocab.RETRANSMISSION, vocab.FAST_RETRANSMISSION, vocab.OUT_OF_ORDER,
                      vocab.DUP_ACK, vocab.ZERO_WINDOW)


# -- the stream table --------------------------------------------------------------------

def health(result: TcpStreamResult) -> str:
    """GOOD, SUSPICIOUS or BROKEN: the colour of a stream's row."""
    analysis = result.analysis
    if result.gaps or result.close == "rst" or vocab.LABEL_REFUSED in result.labels or any(
            analysis.get(key) for key in _BROKEN_COUNTS):
        return BROKEN
    if result.handshake != "complete" or result.close != "fin" or any(
            analysis.get(key) for key in _SUSPICIOUS_COUNTS) or result.labels:
        return SUSPICIOUS
    return GOOD


def _analysis_text(result: TcpStreamResult) -> str:
    return " ".join(f"{WORDS[key].short}×{result.analysis[key]}" for key in vocab.ANALYSIS_KEYS
                    if result.analysis.get(key))


def streams_table(results: Sequence[TcpStreamResult]) -> RenderableType:
    """One row per TCP stream, coloured good (green) / suspicious (yellow) / broken (red).

    Two-line cells keep it readable in 100 columns: endpoints, bytes each way, the life of
    the connection (handshake, close), Wireshark's completeness over Zeek's conn_state and
    history, then labels and the analysis counts worth a look."""
    table = Table(title=f"TCP streams ({len(results)})", title_justify="left",
                  header_style="bold", expand=False, pad_edge=False, show_lines=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("client → server", no_wrap=True)
    table.add_column("pkts", justify="right", no_wrap=True)
    table.add_column("bytes", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("handshake / close", no_wrap=True)
    table.add_column("wireshark / zeek", no_wrap=True)
    table.add_column("labels, analysis", min_width=12)
    for result in results:
        colour = health(result)
        guessed = " (guessed)" if result.direction_guessed else ""
        close = result.close
        if result.active_closer and close in ("fin", "half"):
            close += f", {result.active_closer} first"
        life = Text()
        life.append(result.handshake,
                    style=GOOD if result.handshake == "complete" else SUSPICIOUS)
        life.append("\n")
        life.append(close, style={"fin": GOOD, "rst": BROKEN}.get(result.close, SUSPICIOUS))
        verdicts = Text()
        verdicts.append(f"{result.completeness_label} ({result.completeness})",
                        style=GOOD if result.completeness_label.startswith("Complete")
                        else SUSPICIOUS)
        verdicts.append(f"\n{result.conn_state} {result.history}")
        notes = list(result.labels)
        flags = _analysis_text(result)
        if flags:
            notes.append(flags)
        if result.gaps:
            missing = sum(g.length for g in result.gaps)
            notes.append(f"gaps×{len(result.gaps)} ({missing} B missing)")
        if result.evicted:
            notes.append("evicted while idle")
        table.add_row(
            Text(str(result.stream), style=f"bold {colour}"),
            f"{result.client.endpoint}{guessed}\n→ {result.server.endpoint}",
            str(result.packets),
            f"→ {format_bytes(result.client.bytes)}\n← {format_bytes(result.server.bytes)}",
            f"{result.duration:.3f}s",
            life, verdicts,
            Text("\n".join(notes), style=colour if notes else ""),
        )
    return table


# -- follow ------------------------------------------------------------------------------

def _node_endpoints(result: TcpStreamResult) -> tuple[str, str]:
    return result.client.endpoint, result.server.endpoint


def follow_text(result: TcpStreamResult, mode: str) -> str:
    """`write_follow`'s output as one string."""
    out = io.StringIO()
    write_follow(result, mode, out.write)
    return out.getvalue()


def write_follow(result: TcpStreamResult, mode: str, write: Callable[[str], object],
                 terminal: bool = False) -> None:
    """`tshark -q -z follow,tcp,MODE,N` output for mode ascii, hex, raw or yaml, written a
    chunk at a time; node 0 is the client. Needs the stream's chunks (track it with
    `TcpTracker(keep={N})`). ascii keeps CR and LF, as tshark does; on a `terminal` a CR
    not followed by LF is shown as '.', since it would send the cursor back over what
    was printed (the only control character ascii mode lets through besides LF)."""
    if mode == "yaml":
        write_follow_yaml(result, write)
        return
    if mode not in ("raw", "ascii", "hex"):
        raise ValueError(f"unknown follow mode {mode!r}")
    node0, node1 = _node_endpoints(result)
    write(f"\n{SEPARATOR}Follow: tcp,{mode}\nFilter: tcp.stream eq {result.stream}\n"
          f"Node 0: {node0}\nNode 1: {node1}\n")
    offsets = [0, 0]
    for chunk in result.chunks or ():
        node = 0 if chunk.from_client else 1
        prefix = "\t" if node else ""
        data = chunk.data
        if mode == "raw":
            write(prefix + data.hex() + "\n")
        elif mode == "ascii":
            text = data.translate(_ASCII).decode("latin-1")
            if terminal:
                text = _LONE_CR.sub(".", text)
            write(f"{prefix}{len(data)}\n{text}\n")
        else:
            write(_hexdump(data, offsets[node], prefix))
        offsets[node] += len(data)
    write(SEPARATOR)


# tshark's ascii mode: printable ASCII and CR/LF as is, everything else as '.'; its hex
# mode's text column: printable ASCII only. (bytes.translate tables)
_ASCII = bytes(b if 0x20 <= b < 0x7F or b in (0x0A, 0x0D) else 0x2E for b in range(256))
_DUMP = bytes(b if 0x20 <= b < 0x7F else 0x2E for b in range(256))
_LONE_CR = re.compile("\r(?!\n)")


def _hexdump(data: bytes, offset: int, prefix: str) -> str:
    """tshark's follow hex lines: offset, 16 bytes in two groups of 8, ASCII column.
    tshark drops a line's last character when it is a space: the separator after 8 bytes,
    or a data byte 0x20. (The whole chunk is converted at once, then cut into lines: a
    200 MB stream is 12.5 million of them.)"""
    hexed = data.hex(" ")
    text = data.translate(_DUMP).decode("latin-1")
    lines = []
    size = len(data)
    full = size - size % 16
    for start in range(0, full, 16):
        h = start * 3
        row = text[start:start + 16]
        if row[15] == " ":
            row = row[:15]
        lines.append(f"{prefix}{offset + start:08X}  {hexed[h:h + 23]}  {hexed[h + 24:h + 47]}"
                     f"  {row[:8]} {row[8:]}\n")
    if full < size:
        h = full * 3
        hex_part = hexed[h:]
        row = text[full:]
        if len(row) > 8:
            hex_part = hex_part[:23] + " " + hex_part[23:]
        if len(row) >= 8:
            row = row[:8] + " " + row[8:]
        if row.endswith(" "):
            row = row[:-1]
        lines.append(f"{prefix}{offset + full:08X}  {hex_part:<50}{row}\n")
    return "".join(lines)


def _timestamp(ts: float) -> str:
    """Nanosecond text as tshark prints it; a float only keeps ~0.1 us at today's epoch,
    so microsecond captures (the common case) are rounded to exact microseconds."""
    micros = round(ts * 1_000_000)
    if abs(ts * 1_000_000 - micros) < 0.05:
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}000"
    return f"{ts:.9f}"


def write_follow_yaml(result: TcpStreamResult, write: Callable[[str], object]) -> None:
    """tshark's `follow,tcp,yaml` document, plus a `gaps:` list when bytes are missing."""
    out = ["peers:\n"]
    for peer, endpoint in enumerate(_node_endpoints(result)):
        host, _, port = endpoint.rpartition(":")
        out.append(f"  - peer: {peer}\n    host: {host.strip('[]')}\n    port: {port}\n")
    out.append("packets:\n")
    write("".join(out))
    for chunk in result.chunks or ():
        encoded = base64.encodebytes(chunk.data).decode("ascii")
        body = "".join(f"      {line}\n" for line in encoded.splitlines())
        write(f"  - packet: {chunk.frame}\n    peer: {0 if chunk.from_client else 1}\n"
              f"    timestamp: {_timestamp(chunk.ts)}\n    data: !!binary |\n{body}")
    if result.gaps:
        out = ["gaps:\n"]
        for gap in result.gaps:
            out.append(f"  - peer: {0 if gap.from_client else 1}\n    offset: {gap.offset}\n"
                       f"    length: {gap.length}\n")
        write("".join(out))


def gap_lines(result: TcpStreamResult) -> list[str]:
    """One line per gap, for stderr: bytes the capture never saw."""
    return [f"stream {result.stream}: {'client' if g.from_client else 'server'} bytes "
            f"{g.offset}..{g.offset + g.length - 1} ({g.length} bytes) were never captured"
            for g in result.gaps]


# -- the ladder --------------------------------------------------------------------------

ARROW_WIDTH = 46
LADDER_WIDTH = 170  # columns the ladder needs to be read without wrapping

_FLAG_STYLE = (
    (vocab.RST, "bold red"),
    (vocab.SYN, "bold green"),
    (vocab.FIN, "bold blue"),
)


def _record_style(record: PacketRecord) -> str:
    for bit, style in _FLAG_STYLE:
        if record.flags & bit:
            return style
    return "white" if record.length else "dim"


def _short_flags(flags: int) -> str:
    return flags_text(flags).replace(", ", ",")


def _options_text(options: dict | None) -> str:
    if not options:
        return ""
    parts = []
    if "mss" in options:
        parts.append(f"MSS={options['mss']}")
    if "wscale" in options:
        parts.append(f"WS={1 << options['wscale']}")
    if options.get("sack_perm"):
        parts.append("SACK_PERM")
    if "timestamps" in options:
        parts.append("TS")
    if options.get("tfo"):
        parts.append("TFO")
    return " ".join(parts)


def _arrow(record: PacketRecord) -> Text:
    label = f" {_short_flags(record.flags)} Seq={record.rel_seq}"
    if record.flags & vocab.ACK:
        label += f" Ack={record.rel_ack}"
    label += f" Len={record.length} "
    room = ARROW_WIDTH - 1 - len(label)
    if room < 2:
        label = label[:ARROW_WIDTH - 3]
        room = 2
    left = room // 2
    right = room - left
    if record.from_client:
        text = "─" * left + label + "─" * right + "▶"
    else:
        text = "◀" + "─" * left + label + "─" * right
    return Text(text, style=_record_style(record))


def _notes(record: PacketRecord, result: TcpStreamResult) -> list[tuple[str, str]]:
    """Plain words for a packet's events: (text, style)."""
    me = "client" if record.from_client else "server"
    fields = {
        "me": me, "other": "server" if record.from_client else "client",
        "seq": record.seq, "rel_seq": record.rel_seq, "length": record.length,
        "rtt": (f" (initial RTT {result.initial_rtt * 1000:.3f} ms)"
                if result.initial_rtt is not None else ""),
    }
    notes: list[tuple[str, str]] = []
    for event in record.events:
        if event == vocab.EVENT_SYN_ACK and vocab.LABEL_SIMULTANEOUS_OPEN in result.labels:
            event = _SYN_ACK_CROSSING
        words = WORDS.get(event)
        if words is not None and words.note:
            notes.append((words.note.format(**fields), words.style))
        if event == vocab.EVENT_RST:
            cause = result.client.rst_cause if record.from_client else result.server.rst_cause
            if cause:
                notes.append((f"RST cause: {cause!r}", "red"))
    conflict = record.conflict
    if conflict is not None:
        notes.append((f"bytes differ from the first copy at offset {conflict.offset}: "
                      f"first {conflict.first[:16]!r}, now {conflict.retransmitted[:16]!r}"
                      " (Follow keeps the first)", "bold red"))
    return notes


# Rows laid out at a time when a ladder is printed (print_ladder): memory stays flat (as
# one rich table, a stream of 225k packets took 277 s and 1.4 GB). The fixed columns are
# the same in every batch, so the batches line up as one; the notes column of each is
# as wide as its longest note.
LADDER_BATCH = 1000


def ladder(result: TcpStreamResult) -> RenderableType:
    """The connection as a sequence diagram: one arrow per packet with time, flags,
    relative seq/ack, length, both endpoints' RFC 9293 states after it, and notes."""
    return Group(*_ladder_parts(result, len(result.records or ()) or 1))


def print_ladder(console: Console, result: TcpStreamResult) -> None:
    """`ladder`, printed a batch of rows at a time (memory and time stay linear)."""
    for part in _ladder_parts(result, LADDER_BATCH):
        console.print(part)


def _ladder_parts(result: TcpStreamResult, batch: int) -> Iterator[RenderableType]:
    """The header, then `batch` rows at a time (the first with the column names)."""
    yield _ladder_header(result)
    records: RecordLog = result.records or RecordList()
    endpoints = f"{result.client.endpoint}  ⇄  {result.server.endpoint}"
    state_width = max(len(state) for state in ALL_STATES)
    names = ("frame", "time (s)", "client", endpoints, "server")
    widths = tuple(max(width, len(name)) for width, name in zip((
        len(str(records.max_frame())),
        len(f"{result.end - result.start:.6f}"),
        state_width, max(ARROW_WIDTH, len(endpoints)), state_width,
    ), names, strict=True))
    # Laid out here, not by a rich Table: rich lays out each cell of a table at about
    # the same cost whatever its size, and a ladder is mostly cells of a known width
    # (six a row took 0.5 ms: a 200k-packet ladder, 113 s). `_LadderRows` draws what
    # the table drew.
    fixed_width = sum(widths) + 2 * (len(widths) - 1)
    previous = ("", "")
    rows = iter(records)  # read once, in order: a spooled log has no random access
    for first in range(0, max(len(records), 1), batch):
        cells: list[tuple[Text, Text]] = []
        for record in itertools.islice(rows, batch):
            states = (record.client_state, record.server_state)
            client_state = Text(states[0], style="bold" if states[0] != previous[0] else "dim")
            server_state = Text(states[1], style="bold" if states[1] != previous[1] else "dim")
            previous = states
            notes = Text()
            for i, (note, style) in enumerate(_notes(record, result)):
                if i:
                    notes.append("; ")
                notes.append(note, style=style)
            extra = _options_text(record.options)
            if extra:
                notes.append(("; " if notes else "") + extra, style="dim")
            cells.append((_fixed_cells([
                Text(str(record.frame), style="dim"), Text(f"{record.ts - result.start:.6f}"),
                client_state, _arrow(record), server_state], widths), notes))
        header = _fixed_cells([Text(name) for name in names], widths) if first == 0 else None
        yield _LadderRows(cells, fixed_width, header)


class _LadderRows:
    """Rows of a ladder, as a table with no borders would show them: the fixed columns,
    two spaces, and the notes, wrapped in a column as wide as the longest (at least 30,
    at most what the console has left); `names`, the column names in bold above."""

    NOTES_MIN: Final = 30

    def __init__(self, rows: list[tuple[Text, Text]], fixed_width: int,
                 names: Text | None) -> None:
        self.rows = rows
        self.fixed_width = fixed_width
        self.names = names

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        longest = max([notes.cell_len for _, notes in self.rows], default=0)
        width = max(self.NOTES_MIN, min(longest, options.max_width - self.fixed_width - 2))
        gap = Segment("  ")
        if self.names is not None:
            header = self.names.copy()
            header.append("  ")
            header.append("notes".ljust(width))
            header.stylize("bold")
            yield from header.render(console)
            yield Segment.line()
        blank = Segment(" " * self.fixed_width)
        for fixed, notes in self.rows:
            lines = notes.wrap(console, width, justify="left", overflow="ellipsis") \
                if notes else [Text(" " * width)]
            for index, line in enumerate(lines):
                if index:
                    yield blank
                else:
                    yield from fixed.render(console)
                yield gap
                yield from line.render(console)
                yield Segment.line()


# How the fixed columns of `_ladder_parts` line up, in order: frame, time, client state,
# arrow, server state.
_FIXED_JUSTIFY: Final = ("right", "right", "right", "center", "left")


def _fixed_cells(cells: Sequence[Text], widths: Sequence[int]) -> Text:
    """`cells` side by side, each justified in its width, two spaces apart (as a table
    with one space of padding each side lays them out); a cell's padding takes its
    style."""
    row = Text()
    for index, (cell, width, justify) in enumerate(
            zip(cells, widths, _FIXED_JUSTIFY, strict=True)):
        if index:
            row.append("  ")
        room = max(0, width - cell.cell_len)
        left = room if justify == "right" else room // 2 if justify == "center" else 0
        style = cell.style
        if left:
            row.append(" " * left, style=style)
        row.append_text(cell)
        if room - left:
            row.append(" " * (room - left), style=style)
    return row


def _ladder_header(result: TcpStreamResult) -> RenderableType:
    lines = Text()
    lines.append(f"TCP stream {result.stream}: ", style="bold")
    lines.append(f"client {result.client.endpoint}"
                 f"{' (guessed: no SYN seen)' if result.direction_guessed else ''}"
                 f" → server {result.server.endpoint}\n")
    lines.append(f"handshake {result.handshake}")
    if result.initial_rtt is not None:
        lines.append(f" (initial RTT {result.initial_rtt * 1000:.3f} ms)")
    lines.append(f" · close {result.close}")
    if result.active_closer:
        lines.append(f" ({result.active_closer} closed first)")
    lines.append(f" · {result.packets} packets in {result.duration:.6f} s\n")
    for name, side in (("client", result.client), ("server", result.server)):
        opts = _options_text(side.options)
        isn = f"ISN {side.isn}" if side.isn is not None else "no SYN seen"
        lines.append(f"{name}: {isn}{', ' + opts if opts else ''}; "
                     f"{side.bytes} bytes sent, sha256 {side.sha256[:16]}…\n")
    lines.append(f"completeness {result.completeness_label} ({result.completeness}) · "
                 f"Zeek {result.conn_state} {result.history}")
    if result.labels:
        lines.append(" · labels: " + ", ".join(result.labels), style="yellow")
    flags = _analysis_text(result)
    if flags:
        lines.append(" · " + flags, style="yellow")
    for gap in result.gaps:
        lines.append(f"\n{'client' if gap.from_client else 'server'} bytes {gap.offset}.."
                     f"{gap.offset + gap.length - 1} never captured ({gap.length} bytes)",
                     style="red")
    return Panel(lines, border_style=health(result), expand=False)


def find(results: Iterable[TcpStreamResult], stream: int) -> TcpStreamResult | None:
    for result in results:
        if result.stream == stream:
            return result
    return None


# -- the live view of sniff --------------------------------------------------------------

def live_rows(tracker: TcpTracker, limit: int) -> list[tuple[str, str, str]]:
    """(connection, packets, state) of the newest streams, open or finished."""
    rows: list[tuple[int, tuple[str, str, str]]] = []
    for stream in tracker.open_streams(limit):
        rows.append((stream.number, (
            f"#{stream.number} {stream.client} → {stream.server}", f"{stream.packets:,}",
            f"{stream.client_state} / {stream.server_state}, "
            f"{stream.client_bytes:,} B → {stream.server_bytes:,} B ←")))
    for result in tracker.recent_results(limit):
        labels = f" ({', '.join(result.labels)})" if result.labels else ""
        rows.append((result.stream, (
            f"#{result.stream} {result.client.endpoint} → {result.server.endpoint}",
            f"{result.packets:,}",
            f"done: {result.handshake} handshake, close {result.close}{labels}, "
            f"{result.client.bytes:,} B → {result.server.bytes:,} B ←")))
    rows.sort()
    return [row for _, row in rows[-limit:]]
