"""`analyzer tcp follow CAPTURE STREAM` and `analyzer tcp ladder CAPTURE STREAM`: arguments."""

from __future__ import annotations

import argparse
import sys

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


def run_follow(args: argparse.Namespace) -> int:
    from analyzer.report.tcp_view import follow_text, gap_lines
    from analyzer.run.read import one_tcp_stream

    result = one_tcp_stream(args.capture, args.stream, args.filter)
    sys.stdout.write(follow_text(result, args.format))
    sys.stdout.flush()
    for line in gap_lines(result):
        print(f"analyzer: {line}", file=sys.stderr)
    return 0


def run_ladder(args: argparse.Namespace) -> int:
    from analyzer.report.console import stdout_console
    from analyzer.report.tcp_view import LADDER_WIDTH, ladder
    from analyzer.run.read import one_tcp_stream

    result = one_tcp_stream(args.capture, args.stream, args.filter)
    console = stdout_console()
    if not console.is_terminal:
        console.width = LADDER_WIDTH  # piped to a file or pager: do not wrap at 80
    console.print(ladder(result))
    return 0
