"""`analyzer tcp follow | ladder` (a stream of a capture) and `analyzer tcp connect | serve`
(a TCP client and server that watch themselves): arguments, and the lines they print."""

from __future__ import annotations

import argparse
import sys

from analyzer.errors import InputError

FOLLOW_FORMATS = ("ascii", "hex", "raw", "yaml")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tcp = subparsers.add_parser("tcp", help="one TCP stream: follow its data, draw its ladder",
                                description="Look at one TCP stream of a capture, numbered "
                                            "as Wireshark's tcp.stream (and `analyzer read`).")
    sub = tcp.add_subparsers(dest="tcp_command", required=True, metavar="SUBCOMMAND")

    follow = sub.add_parser(
        "follow", help="Follow TCP Stream, in the formats of tshark -z follow",
        description="Print the reassembled data of STREAM as `tshark -q -z "
                    "follow,tcp,FORMAT,STREAM` does (node 0 is the client). Bytes never "
                    "captured are not spliced into the data: they are listed on stderr "
                    "(and under `gaps:` in yaml).")
    follow.add_argument("capture", metavar="CAPTURE")
    follow.add_argument("stream", metavar="STREAM", type=int, help="tcp.stream number")
    follow.add_argument("--format", choices=FOLLOW_FORMATS, default="ascii",
                        help="output format (default: ascii)")
    follow.add_argument("-f", "--filter", metavar="BPF", help="BPF filter on the frames")
    follow.set_defaults(handler=run_follow)

    ladder = sub.add_parser(
        "ladder", help="packet-by-packet lifecycle as a ladder diagram",
        description="Draw STREAM as a sequence diagram: one arrow per packet with time, "
                    "flags, relative seq/ack, length, both endpoints' TCP states after it, "
                    "and plain-words notes on the packets that matter.")
    ladder.add_argument("capture", metavar="CAPTURE")
    ladder.add_argument("stream", metavar="STREAM", type=int, help="tcp.stream number")
    ladder.add_argument("-f", "--filter", metavar="BPF", help="BPF filter on the frames")
    ladder.set_defaults(handler=run_ladder)

    register_active(sub)


def run_follow(args: argparse.Namespace) -> int:
    from analyzer.report.tcp_view import gap_lines, write_follow
    from analyzer.run.read import one_tcp_stream

    result = one_tcp_stream(args.capture, args.stream, args.filter, records=False,
                            spool=True)
    write_follow(result, args.format, sys.stdout.write, terminal=sys.stdout.isatty())
    sys.stdout.flush()
    for line in gap_lines(result):
        print(f"analyzer: {line}", file=sys.stderr)
    return 0


def run_ladder(args: argparse.Namespace) -> int:
    from analyzer.report.console import stdout_console
    from analyzer.report.tcp_view import LADDER_WIDTH, print_ladder
    from analyzer.report.wireshark_view import frame_hint
    from analyzer.run.read import one_tcp_stream

    result = one_tcp_stream(args.capture, args.stream, args.filter, chunks=False,
                            spool=True)
    console = stdout_console()
    if not console.is_terminal:
        console.width = LADDER_WIDTH  # piped to a file or pager: do not wrap at 80
    print_ladder(console, result)
    console.print(frame_hint(args.capture), soft_wrap=True)
    return 0


def register_active(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from analyzer.active.endpoint import CLOSE_MODES, SERVE_CLOSE_MODES
    from analyzer.cli.active import add_active_options

    connect = sub.add_parser(
        "connect", help="TCP client: connect, send, print what comes back, close",
        description="Connect to HOST PORT, send --send (TEXT, @FILE or - for stdin), print "
                    "what comes back until the server closes or --wait seconds of quiet, "
                    "then close: fin (normal close), half (our FIN right after sending, "
                    "reading on), rst (abortive close: SO_LINGER 0). --watch shows the "
                    "ladder: handshake, data, who closed and how.")
    connect.add_argument("host", metavar="HOST")
    connect.add_argument("port", metavar="PORT")
    connect.add_argument("--send", metavar="TEXT|@FILE|-", help="what to send")
    connect.add_argument("--close", choices=CLOSE_MODES, default="fin",
                         help="how to end the connection (default fin)")
    connect.add_argument("--wait", type=float, default=1.0, metavar="S",
                         help="seconds of quiet before we close (default 1)")
    connect.add_argument("--timeout", type=float, default=10.0, metavar="S",
                         help="seconds to wait for the handshake (default 10)")
    add_active_options(connect)
    connect.set_defaults(handler=run_connect)

    serve = sub.add_parser(
        "serve", help="TCP server: accept, reply or echo, close",
        description="Listen on PORT; for each connection send --reply (TEXT or @FILE) or "
                    "--echo what comes, then close: fin (we close first), rst (abortive "
                    "close), wait (the client closes first). -c N connections, or until "
                    "Ctrl-C.")
    serve.add_argument("port", metavar="PORT")
    serve.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                       help="local address (default 0.0.0.0; :: for IPv6)")
    answer = serve.add_mutually_exclusive_group()
    answer.add_argument("--reply", metavar="TEXT|@FILE", help="sent on each connection")
    answer.add_argument("--echo", action="store_true", help="send back what each client sends")
    serve.add_argument("--close", choices=SERVE_CLOSE_MODES, default="fin",
                       help="how to end each connection (default fin)")
    serve.add_argument("-c", "--count", type=int, metavar="N", help="stop after N connections")
    serve.add_argument("--wait", type=float, default=5.0, metavar="S",
                       help="seconds to wait for a client's FIN after ours (default 5)")
    add_active_options(serve)
    serve.set_defaults(handler=run_serve)


def _on_event(args: argparse.Namespace, encoding: str, server: bool):  # type: ignore[no-untyped-def]
    """Print each event as it happens: the data, or a tcp_exchange line per connection."""
    if args.json:
        import json

        from analyzer.report.net_view import tcp_exchange_object

        def write_json(event) -> None:  # type: ignore[no-untyped-def]
            if event.kind == "closed":
                sys.stdout.write(json.dumps(tcp_exchange_object(event.exchange)) + "\n")
                sys.stdout.flush()

        return write_json
    from analyzer.report.console import stdout_console
    from analyzer.report.net_view import tcp_event_text

    console = stdout_console()
    mid_line = False  # the client's data so far did not end with a newline

    def write_text(event) -> None:  # type: ignore[no-untyped-def]
        nonlocal mid_line
        line = tcp_event_text(event, encoding, server)
        if line is None:
            return
        if event.kind == "data" and not server:
            console.print(line, end="")  # the reply as it came, newlines its own
            mid_line = not line.plain.endswith("\n")
            return
        if mid_line:
            console.print()
            mid_line = False
        console.print(line)

    return write_text


def run_connect(args: argparse.Namespace) -> int:
    from analyzer.active.sockets import parse_port
    from analyzer.active.tcp import TcpConnectDriver
    from analyzer.cli.active import check_encoding, payload_chunks, watched
    from analyzer.report.net_view import print_watch

    encoding = check_encoding(args)
    if args.wait < 0 or args.timeout <= 0:
        raise InputError("--wait and --timeout need a positive number of seconds")
    driver = TcpConnectDriver(args.host, parse_port(args.port),
                              payload_chunks(args.send, encoding), close=args.close,
                              wait=args.wait, timeout=args.timeout,
                              on_event=_on_event(args, encoding, server=False))
    result = watched(driver, args)
    print_watch(result, as_json=args.json, out=sys.stdout, evidence=args.write)
    exchange = result.outcome
    if exchange.outcome != "ok":
        print(f"analyzer: {exchange.error}", file=sys.stderr)
        return 1
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from analyzer.active.sockets import parse_port
    from analyzer.active.tcp import TcpServeDriver
    from analyzer.cli.active import check_encoding, read_reply, watched
    from analyzer.report.net_view import print_watch

    encoding = check_encoding(args)
    driver = TcpServeDriver(args.bind, parse_port(args.port, allow_zero=True),
                            reply=read_reply(args.reply, encoding), echo=args.echo,
                            close=args.close, count=args.count, wait=args.wait,
                            on_event=_on_event(args, encoding, server=True))
    result = watched(driver, args)
    print_watch(result, as_json=args.json, out=sys.stdout, evidence=args.write)
    return 0
