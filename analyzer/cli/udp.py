"""`analyzer udp send | broadcast | listen | chat`: arguments, and the lines they print."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator

from analyzer.cli.active import add_active_options, check_encoding, encode_text, watched
from analyzer.cli.exits import EXIT_FAILURE, EXIT_OK
from analyzer.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    udp = subparsers.add_parser("udp", help="send, broadcast, listen and chat over UDP",
                                description="UDP datagrams from this host, each command able "
                                            "to watch its own traffic (--watch).")
    sub = udp.add_subparsers(dest="udp_command", required=True, metavar="SUBCOMMAND")

    send = sub.add_parser("send", help="send one datagram, print the replies",
                          description="Send MESSAGE to HOST:PORT and print every reply that "
                                      "arrives within --wait seconds.")
    send.add_argument("host", metavar="HOST")
    send.add_argument("port", metavar="PORT")
    send.add_argument("message", metavar="MESSAGE")
    send.add_argument("--wait", type=float, default=1.0, metavar="S",
                      help="seconds to collect replies (default 1)")
    add_active_options(send)
    send.set_defaults(handler=run_send)

    broadcast = sub.add_parser(
        "broadcast", help="broadcast one datagram, list every reply",
        description="Broadcast MESSAGE to PORT (SO_BROADCAST) and list who answered, when "
                    "and what. The destination is 255.255.255.255, or the directed "
                    "broadcast of -i IFACE's subnet (sent out of IFACE), or --to ADDR.")
    broadcast.add_argument("port", metavar="PORT")
    broadcast.add_argument("message", metavar="MESSAGE")
    where = broadcast.add_mutually_exclusive_group()
    where.add_argument("-i", "--interface", metavar="IFACE",
                       help="the directed broadcast of IFACE's IPv4 subnet, out of IFACE")
    where.add_argument("--to", metavar="ADDR", help="this broadcast (or any) address")
    broadcast.add_argument("--wait", type=float, default=2.0, metavar="S",
                           help="seconds to collect replies (default 2; Ctrl-C ends sooner)")
    add_active_options(broadcast)
    broadcast.set_defaults(handler=run_broadcast)

    listen = sub.add_parser("listen", help="print datagrams as they arrive, answer each",
                            description="Bind PORT and print each datagram as "
                                        "'[address:port]: text'; --reply or --echo answers "
                                        "each. Ends on -c, --duration or Ctrl-C.")
    listen.add_argument("port", metavar="PORT")
    listen.add_argument("--bind", default="0.0.0.0", metavar="ADDR",
                        help="local address (default 0.0.0.0; :: for IPv6)")
    answer = listen.add_mutually_exclusive_group()
    answer.add_argument("--reply", metavar="TEXT", help="answer each datagram with TEXT")
    answer.add_argument("--echo", action="store_true", help="send each datagram back")
    listen.add_argument("-c", "--count", type=int, metavar="N", help="stop after N datagrams")
    listen.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    add_active_options(listen)
    listen.set_defaults(handler=run_listen)

    chat = sub.add_parser("chat", help="two-way chat: stdin lines out, datagrams in",
                          description="Bind LOCALPORT; each line typed (or read from stdin) "
                                      "goes to HOST:PORT as one datagram, while datagrams "
                                      "received are printed. End of input or Ctrl-C ends it.")
    chat.add_argument("local_port", metavar="LOCALPORT")
    chat.add_argument("peer", metavar="HOST:PORT")
    add_active_options(chat)
    chat.set_defaults(handler=run_chat)


def _printer(args: argparse.Namespace, encoding: str,
             since: Callable[[], float | None] | None = None):  # type: ignore[no-untyped-def]
    """The on_datagram of a command: a JSON line, or a text line, per datagram."""
    if args.json:
        import json  # (here: every command's start builds this module's parser)

        from analyzer.report.net_view import udp_datagram_object

        def write_json(datagram) -> None:  # type: ignore[no-untyped-def]
            sys.stdout.write(json.dumps(udp_datagram_object(datagram, encoding)) + "\n")
            sys.stdout.flush()

        return write_json
    from analyzer.report.console import stdout_console
    from analyzer.report.net_view import datagram_text

    console = stdout_console()
    if not console.is_terminal:
        # into a pipe or file: the text without rich's rendering, ~1 ms a line less (a
        # flooded `udp listen` keeps up ~8x better)
        def write_plain(datagram) -> None:  # type: ignore[no-untyped-def]
            line = datagram_text(datagram, encoding, since() if since else None)
            sys.stdout.write(line.plain + "\n")
            sys.stdout.flush()

        return write_plain

    def write_text(datagram) -> None:  # type: ignore[no-untyped-def]
        console.print(datagram_text(datagram, encoding, since() if since else None))

    return write_text


def _finish(result, args: argparse.Namespace, datagrams) -> None:  # type: ignore[no-untyped-def]
    from analyzer.report.net_view import print_watch

    print_watch(result, as_json=args.json, out=sys.stdout, datagrams=datagrams,
                evidence=args.write)


def _send(args: argparse.Namespace, host: str, broadcast: bool,
          interface: str | None) -> int:
    from analyzer.active.sockets import parse_port
    from analyzer.active.udp import UdpSendDriver
    from analyzer.udp.datagrams import DatagramLog

    encoding = check_encoding(args)
    if args.wait < 0:
        raise InputError("--wait needs a number of seconds >= 0")
    port = parse_port(args.port)
    holder: list[UdpSendDriver] = []
    driver = UdpSendDriver(host, port, encode_text(args.message, encoding), args.wait,
                           broadcast=broadcast, interface=interface,
                           on_datagram=_printer(args, encoding,
                                                lambda: holder[0].outcome.first_sent))
    holder.append(driver)
    log = DatagramLog()
    result = watched(driver, args, observers=[log.on_packet])
    outcome = result.outcome
    if not args.json:
        from analyzer.report.console import stdout_console
        from analyzer.report.net_view import replies_table

        console = stdout_console()
        if broadcast and outcome.received:
            console.print(replies_table(outcome, encoding))
        elif outcome.sent and not outcome.received and outcome.error is None:
            console.print(f"no reply within {args.wait:g} s", style="dim")
    _finish(result, args, log)
    if outcome.error is not None:
        print(f"analyzer: {outcome.error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run_send(args: argparse.Namespace) -> int:
    return _send(args, args.host, broadcast=False, interface=None)


def run_broadcast(args: argparse.Namespace) -> int:
    from analyzer.active.udp import LIMITED_BROADCAST, broadcast_address

    if args.interface is not None:
        return _send(args, broadcast_address(args.interface), broadcast=True,
                     interface=args.interface)
    return _send(args, args.to or LIMITED_BROADCAST, broadcast=True, interface=None)


def run_listen(args: argparse.Namespace) -> int:
    from analyzer.active.sockets import parse_port
    from analyzer.active.udp import UdpListenDriver
    from analyzer.udp.datagrams import DatagramLog

    encoding = check_encoding(args)
    reply = encode_text(args.reply, encoding) if args.reply is not None else None
    driver = UdpListenDriver(args.bind, parse_port(args.port, allow_zero=True), reply=reply,
                             echo=args.echo, count=args.count, duration=args.duration,
                             on_datagram=_printer(args, encoding))
    log = DatagramLog()
    result = watched(driver, args, observers=[log.on_packet])
    if not args.json:
        from analyzer.report.console import stdout_console
        from analyzer.report.net_view import listen_summary

        stdout_console().print(listen_summary(result.outcome))
    _finish(result, args, log)
    return EXIT_OK


def run_chat(args: argparse.Namespace) -> int:
    from analyzer.active.sockets import parse_host_port, parse_port
    from analyzer.active.udp import UdpChatDriver

    encoding = check_encoding(args)
    host, port = parse_host_port(args.peer, 0)
    if port == 0:
        raise InputError(f"{args.peer}: give the peer as HOST:PORT")
    prompt = _TerminalPrompt(encoding) if sys.stdin.isatty() and not args.json else None
    on_datagram = _printer(args, encoding)
    if prompt is not None:
        printer = on_datagram

        def on_datagram(datagram) -> None:  # type: ignore[no-untyped-def]
            if datagram.direction == "in":
                prompt.above(lambda: printer(datagram))

    lines = prompt.lines() if prompt is not None else _stdin_lines(encoding)
    driver = UdpChatDriver(parse_port(args.local_port, allow_zero=True), host, port, lines,
                           on_datagram=on_datagram)
    result = watched(driver, args)
    _finish(result, args, None)
    if result.outcome.error is not None:
        print(f"analyzer: {result.outcome.error}", file=sys.stderr)
    return EXIT_OK


def _stdin_lines(encoding: str) -> Iterator[bytes]:
    """Lines of stdin as they come (a pipe: not waiting for the end): text in the
    locale's encoding, as a terminal types it, sent in `encoding`. A character `encoding`
    cannot write is sent as "?" and said once on stderr (the sending thread must not die
    on one line)."""
    warned = False
    while line := sys.stdin.readline():
        try:
            yield line.encode(encoding)
        except UnicodeEncodeError as exc:
            if not warned:
                print(f"analyzer: {exc.object[exc.start:exc.end]!r} cannot be written in "
                      f"{encoding}; sent as '?'", file=sys.stderr)
                warned = True
            yield line.encode(encoding, errors="replace")


class _TerminalPrompt:
    """Typing on a terminal while datagrams arrive: each received line is printed above
    the line being typed, which is then drawn again, so neither garbles the other."""

    PROMPT = "> "

    def __init__(self, encoding: str) -> None:
        import readline  # noqa: F401 - line editing for input(), and its buffer

        self.encoding = encoding
        self._lock = threading.Lock()

    def lines(self) -> Iterator[bytes]:
        while True:
            try:
                text = input(self.PROMPT)
            except (EOFError, KeyboardInterrupt):
                return
            yield encode_text(text, self.encoding)

    def above(self, show: Callable[[], object]) -> None:
        import readline

        with self._lock:
            sys.stdout.write("\r\x1b[K")  # our own control sequence: clear the input line
            sys.stdout.flush()
            show()
            sys.stdout.write(self.PROMPT + readline.get_line_buffer())
            sys.stdout.flush()
