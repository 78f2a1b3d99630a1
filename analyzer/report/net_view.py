"""Views of the UDP and TCP active modes: each datagram or piece of data as it happens, the
replies a broadcast collected, the SPEC `udp_datagram` and `tcp_exchange` objects, and the
watched evidence at the end (a ladder per TCP connection, the datagrams on the wire).

Everything from the network goes through `report.text` first: no control character
reaches the terminal raw, and no rich markup in it is interpreted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from analyzer.active.sockets import socket_address_text
from analyzer.decode.packet import format_address, format_endpoint
from analyzer.report.text import escape, payload_text

if TYPE_CHECKING:
    from analyzer.active.tcp import TcpEvent, TcpExchange
    from analyzer.active.udp import Datagram, UdpOutcome
    from analyzer.run.session import SessionResult
    from analyzer.udp.datagrams import DatagramLog

BROADCAST_ADDRESS_SUFFIX = ".255"


def udp_datagram_object(datagram: Datagram, encoding: str) -> dict[str, Any]:
    """The SPEC `udp_datagram` object."""
    return {
        "type": "udp_datagram",
        "time": datagram.time,
        "direction": datagram.direction,
        "source": socket_address_text(datagram.source),
        "destination": socket_address_text(datagram.destination),
        "broadcast": datagram.broadcast,
        "bytes": len(datagram.payload),
        "text": payload_text(datagram.payload, encoding),
        "hex": datagram.payload.hex(),
    }


def tcp_exchange_object(exchange: TcpExchange) -> dict[str, Any]:
    """The SPEC `tcp_exchange` object (plus `error` and the times)."""
    return {
        "type": "tcp_exchange",
        "local": socket_address_text(exchange.local),
        "remote": socket_address_text(exchange.remote),
        "sent_bytes": exchange.sent_bytes,
        "received_bytes": exchange.received_bytes,
        "sent_sha256": exchange.sent_sha256,
        "received_sha256": exchange.received_sha256,
        "closed_by": exchange.closed_by,
        "close": exchange.close,
        "outcome": exchange.outcome,
        "error": exchange.error,
        "start": exchange.started,
        "end": exchange.ended,
    }


def datagram_text(datagram: Datagram, encoding: str, since: float | None = None) -> Text:
    """`[ip:port]: text` for a datagram received (with `+12.3 ms` after `since`, the time
    of what was sent), `→ ip:port: text` for one sent."""
    text = payload_text(datagram.payload, encoding)
    if datagram.direction == "out":
        return Text.assemble(("→ ", "dim"), (socket_address_text(datagram.destination), "cyan"),
                             (f" ({len(datagram.payload)} bytes)", "dim"), ": ", text)
    line = Text.assemble(("[", "dim"), (socket_address_text(datagram.source), "bold cyan"),
                         ("]", "dim"))
    if since is not None:
        line.append(f" +{(datagram.time - since) * 1000:.1f} ms", style="dim")
    line.append(": ")
    line.append(text)
    return line


def replies_table(outcome: UdpOutcome, encoding: str) -> RenderableType:
    """Who answered a datagram sent (a broadcast's roll call): one row per reply, in
    arrival order, with the round-trip time from our send."""
    since = outcome.first_sent
    table = Table(title=f"Replies ({outcome.received} from {len(outcome.senders)} "
                        f"sender{'s' if len(outcome.senders) != 1 else ''})",
                  title_justify="left")
    for column in ("#", "from", "after", "bytes", "text"):
        table.add_column(column, justify="right" if column in ("#", "after", "bytes")
                         else "left")
    for number, reply in enumerate(outcome.replies, 1):
        after = "-" if since is None else f"{(reply.time - since) * 1000:.1f} ms"
        table.add_row(str(number), Text(socket_address_text(reply.source), style="cyan"), after,
                      f"{len(reply.payload):,}", Text(payload_text(reply.payload, encoding)))
    if outcome.received > len(outcome.replies):
        table.caption = f"first {len(outcome.replies):,} of {outcome.received:,} shown"
    return table


def listen_summary(outcome: UdpOutcome) -> Text:
    senders = len(outcome.senders)
    return Text(f"{outcome.received:,} datagram{'s' if outcome.received != 1 else ''} "
                f"({outcome.received_bytes:,} bytes) from {senders:,} sender"
                f"{'s' if senders != 1 else ''}; {outcome.sent:,} sent", style="dim")


def tcp_event_text(event: TcpEvent, encoding: str, server: bool) -> Text | None:
    """A line for what just happened on a connection (None: nothing to show)."""
    exchange = event.exchange
    peer = socket_address_text(exchange.remote)
    if event.kind == "connected":
        verb = "accepted" if server else "connected to"
        return Text(f"{verb} {peer} (from {socket_address_text(exchange.local)})"
                    if not server else f"{verb} {peer}", style="green")
    if event.kind == "data":
        text = payload_text(event.data, encoding, keep_newlines=True)
        if server:
            return Text.assemble(("[", "dim"), (peer, "bold cyan"), ("]: ", "dim"), text)
        return Text(text)
    if event.kind == "error":
        return Text(f"{peer}: {exchange.error}", style="red")
    if event.kind == "closed":
        return Text(exchange_summary(exchange), style="dim")
    return None


def exchange_summary(exchange: TcpExchange) -> str:
    peer = socket_address_text(exchange.remote)
    if exchange.outcome == "refused":
        return f"{peer}: {exchange.error}"
    closed = {"local": "we closed first", "remote": "the peer closed first"}.get(
        exchange.closed_by or "", "not closed")
    return (f"{peer}: sent {exchange.sent_bytes:,} B, received {exchange.received_bytes:,} B;"
            f" close {exchange.close}, {closed}; {exchange.outcome}")


def print_watch(result: SessionResult[Any], *, as_json: bool, out: TextIO,
                datagrams: DatagramLog | None = None, to_stderr: bool = False,
                evidence: str | None = None) -> None:
    """The watched evidence: JSON lines (tcp_stream, tftp_transfer, then the capture), or
    a ladder per TCP connection, the TFTP transfers and the datagrams seen (on stderr
    with `to_stderr`: when stdout carries a downloaded file). `evidence`: the -w file the
    frame numbers refer to."""
    analysis = result.analysis
    if analysis is None:
        return
    if as_json:
        from analyzer.report.jsonl import capture_object, write_objects, write_results

        write_results(out, analysis.tcp.results(), analysis.tftp.results())
        write_objects([capture_object(analysis.capture)], out)
        out.flush()
        return
    from analyzer.report.console import stdout_console
    from analyzer.report.tcp_view import LADDER_WIDTH, ladder

    console = Console(stderr=True, highlight=False) if to_stderr else stdout_console()
    if not console.is_terminal:
        console.width = LADDER_WIDTH
    stats = analysis.capture.stats
    console.print()
    console.print(Text.assemble(
        ("Watched ", "bold"), (result.interface or "", "bold cyan"),
        f" (filter: {result.bpf}): {stats.packets:,} packets", style=""))
    for warning in analysis.capture.warnings:
        console.print(Text(f"warning: {escape(warning)}", style="yellow"))
    for stream in analysis.tcp.results():
        console.print(ladder(stream))
    transfers = analysis.tftp.results()
    if transfers:
        from analyzer.report.tftp_view import transfer_details, transfers_table

        console.print(transfers_table(transfers))
        for transfer in transfers:
            console.print(transfer_details(transfer))
    if datagrams is not None and datagrams.count:
        console.print(seen_datagrams_table(datagrams))
    if evidence:
        from analyzer.report.wireshark_view import frame_hint

        console.print(Text(f"frame numbers are those of {escape(evidence)}; `analyzer read` "
                           "analyzes it again", style="dim"))
        console.print(frame_hint(evidence), soft_wrap=True)
    else:
        console.print(Text("frame numbers count the watched packets (-w OUT.pcapng keeps "
                           "them; `analyzer frame OUT.pcapng N` then shows one in full)",
                           style="dim"))


def seen_datagrams_table(log: DatagramLog) -> RenderableType:
    """The datagrams and ICMP errors on the wire, in frame order."""
    table = Table(title=f"Datagrams on the wire ({log.count:,})", title_justify="left")
    for column in ("frame", "time", "from", "to", "bytes", "note"):
        table.add_column(column, justify="right" if column in ("frame", "bytes") else "left")
    first = log.datagrams[0].ts if log.datagrams else 0.0
    for seen in log.datagrams:
        if seen.icmp is not None:
            table.add_row(str(seen.frame), f"{seen.ts - first:.6f}",
                          format_address(seen.src), format_address(seen.dst), "",
                          Text(seen.icmp, style="yellow"))
            continue
        destination = format_address(seen.dst)
        note = "broadcast" if destination.endswith(BROADCAST_ADDRESS_SUFFIX) else ""
        table.add_row(str(seen.frame), f"{seen.ts - first:.6f}",
                      format_endpoint(seen.src, seen.sport), format_endpoint(seen.dst, seen.dport),
                      f"{seen.length:,}", note)
    if log.count > len(log.datagrams):
        table.caption = f"first {len(log.datagrams):,} of {log.count:,} shown"
    return table


def no_watch_line(result: SessionResult[Any]) -> str | None:
    """Why an asked-for watch did not happen, as one line (None when it did)."""
    if result.analysis is not None or result.no_watch is None:
        return None
    return f"no watch: {result.no_watch}; the exchange ran without it"

