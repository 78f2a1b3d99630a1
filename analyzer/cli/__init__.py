"""Command line: argument parsing only. `tcp.py` and `tftp.py` add their subcommands;
each handler calls one function of the application layer (`analyzer.run`) and the views
(`analyzer.report`). Exit codes and the one-line errors are decided here."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from collections.abc import Sequence

from analyzer import __version__
from analyzer.cli.exits import EXIT_FAILURE, EXIT_INPUT, EXIT_OK
from analyzer.errors import InputError
from analyzer.report.text import escape

# Each top-level command and the module of this package that adds it (None: this one).
# A run builds only its own command's parser: argparse spends ~40 µs an option, and all
# of them (with their modules' imports) took ~20 ms, a quarter of a small `tftp get`.
_COMMAND_MODULES: dict[str, str | None] = {
    "read": None, "sniff": None, "interfaces": None, "tcp": "tcp", "tftp": "tftp",
    "udp": "udp", "frame": "wireshark", "verify": "wireshark",
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the arguments it will parse, only for the command they name
    (all commands when they name none: `analyzer -h`, a typo)."""
    import importlib

    command = argv[0] if argv else None  # (`analyzer -h tftp` asks for the top help)
    if command in _COMMAND_MODULES:
        wanted = {command}
    else:
        wanted = set(_COMMAND_MODULES)
    parser = argparse.ArgumentParser(
        prog="analyzer",
        description="Packet capture and protocol analyzer: TCP stream lifecycles and "
                    "TFTP transfers, from pcap/pcapng files or live interfaces.")
    parser.add_argument("--version", action="version", version=f"analyzer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if wanted & {"read", "sniff", "interfaces"}:
        _register_capture_commands(sub)
    for module in sorted({m for name in wanted if (m := _COMMAND_MODULES[name]) is not None}):
        importlib.import_module(f"analyzer.cli.{module}").register(sub)
    return parser


def _register_capture_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    read = sub.add_parser("read", help="full report of a pcap/pcapng file",
                          description="Analyze a pcap/pcapng capture (plain or gzip): summary, "
                                      "TCP streams, TFTP transfers.")
    read.add_argument("capture", metavar="CAPTURE", nargs="+",
                      help="a capture file, - for standard input, or several files or a "
                           "directory of them (a ring buffer) read as one, merged in time "
                           "order")
    add_report_options(read)
    read.add_argument("--no-progress", action="store_true",
                      help="no progress bar, even on a terminal")
    read.set_defaults(handler=run_read)

    sniff = sub.add_parser("sniff", help="live capture with the same report",
                           description="Capture live from an interface (needs root or "
                                       "CAP_NET_RAW) and report as `read` does.")
    sniff.add_argument("-i", "--interface", required=True, metavar="IFACE",
                       help='interface name, or "any" for all of them')
    sniff.add_argument("-c", "--count", type=int, metavar="N", help="stop after N packets")
    sniff.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    sniff.add_argument("-w", "--write", metavar="OUT.pcapng", help="save the capture as pcapng")
    sniff.add_argument("--no-live", action="store_true", help="no live view while capturing")
    add_report_options(sniff)
    sniff.set_defaults(handler=run_sniff)

    interfaces = sub.add_parser("interfaces", help="list interfaces that can be sniffed")
    interfaces.add_argument("--json", action="store_true", help="JSON Lines output")
    interfaces.set_defaults(handler=run_interfaces)


def add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout (see SPEC)")
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF capture filter")
    parser.add_argument("--extract", metavar="DIR", help="write every TFTP file into DIR")
    add_tftp_port_option(parser)


def add_tftp_port_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tftp-port", type=port_number, action="append", default=[],
                        metavar="N",
                        help="also treat requests to UDP port N as TFTP (repeatable)")


def port_number(text: str) -> int:
    """argparse type: a UDP/TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (1-65535)")
    return port


def run_read(args: argparse.Namespace) -> int:
    from analyzer.run.read import read_report

    captures = args.capture[0] if len(args.capture) == 1 else args.capture
    read_report(captures, as_json=args.json, bpf=args.filter, extract_dir=args.extract,
                tftp_ports=tuple(args.tftp_port),
                progress=not args.no_progress and sys.stderr.isatty())
    return written()


def written(code: int = EXIT_OK) -> int:
    """The command has written everything and left nothing to clean up: no teardown
    needed (see `run`); its exit status."""
    global _skip_teardown
    _skip_teardown = True
    return code


def run_sniff(args: argparse.Namespace) -> int:
    from analyzer.pipeline import Analyzer
    from analyzer.report import console
    from analyzer.run.session import sniff
    from analyzer.tcp.tracker import TcpTracker

    # Live, each stream's JSON line goes out as soon as the stream is finished.
    tcp_tracker = TcpTracker(on_result=console.json_writer()) if args.json else None
    # Settled TFTP transfers are spilled (JSON) or chosen for the table as they come:
    # a long capture (a port-69 scan) is not kept in memory.
    from analyzer.run.results import TftpLines

    tftp_lines = TftpLines() if args.json else None
    transfers = None if args.json else console.TableTransfers()
    analyzer = Analyzer(tftp_ports=args.tftp_port, extract_dir=args.extract,
                        tcp_tracker=tcp_tracker,
                        tftp_results=transfers if tftp_lines is None else tftp_lines.add,
                        tftp_unanswered=None if tftp_lines is None else tftp_lines.unanswered)
    live = not args.no_live and not args.json and sys.stderr.isatty()
    try:
        with console.LiveView(analyzer, enabled=live) as view:
            analysis = sniff(args.interface, bpf=args.filter, count=args.count,
                             duration=args.duration, write=args.write, analyzer=analyzer,
                             on_start=view.start)
        if tftp_lines is not None:
            from analyzer.run.results import write_spilled_analysis

            write_spilled_analysis(analysis, sys.stdout, tftp_lines=tftp_lines)
    finally:
        if tftp_lines is not None:
            tftp_lines.close()
    if tftp_lines is None:
        console.print_analysis(analysis, transfers=transfers)
    if analysis.capture.info.ended == "interface lost":
        # the report of what was seen is out; the capture itself did not end as asked
        sys.stdout.flush()
        print(f"analyzer: sniffing on {escape(args.interface)} ended early: the interface "
              "went away (the report above covers what was captured)", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def run_interfaces(args: argparse.Namespace) -> int:
    from analyzer.capture.live import list_interfaces
    from analyzer.report import console

    console.print_interfaces(list_interfaces(), as_json=args.json)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # SIGTERM ends a command the way Ctrl-C does, so sniff can finish its report.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        return args.handler(args)
    except InputError as exc:
        # escaped: the message may quote a name or text from the system or the network
        print(f"analyzer: {escape(str(exc))}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("analyzer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        # Writing our temporary files or extracted ones failed (a full disk, a quota):
        # one line, as for bad input. The temporary files have no name or are removed.
        print(f"analyzer: {escape(_system_error(exc))}", file=sys.stderr)
        return EXIT_FAILURE


def _system_error(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.filename:
        text = f"{exc.filename}: {text}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        import tempfile

        where = tempfile.gettempdir()
        # (not when the full disk is one the user named, say `tftp extract -o DIR`)
        if not exc.filename or os.path.dirname(os.fspath(exc.filename)) == where:
            text += f" (temporary files go to {where}; TMPDIR names another directory)"
    return text


# Set by a command whose work is done and written: the process may end without the
# interpreter's teardown (see `run`).
_skip_teardown = False


def run() -> None:
    """The `analyzer` command (console script, `python -m analyzer`): `main`, then exit.

    After `read`, the process holds every tracker's objects; freeing them one by one at
    interpreter shutdown took ~20 ms of a 0.35 s run (100k packets), for memory the
    kernel takes back at once. So `read`, whose output is written and whose temporary
    files are gone, ends with os._exit after flushing, as do `tftp get` and `tftp put`
    (~12 ms of teardown, a sixth of a small transfer's run); other commands exit
    normally.
    """
    code = main()
    if _skip_teardown:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass  # as in main: a reader that went away is not our error
        os._exit(code)
    sys.exit(code)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
