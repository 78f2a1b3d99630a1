"""`analyzer tftp get` and `analyzer tftp put`: argument parsing and wiring only.

The protocol is `analyzer.tftp.client.TftpClient`; the sockets and files are
`analyzer.active.tftp.TftpClientDriver`; the output is `analyzer.report.active`.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from analyzer.cli.active import add_active_options, watched
from analyzer.cli.exits import EXIT_FAILURE, EXIT_OK
from analyzer.errors import InputError
from analyzer.tftp import codec
from analyzer.tftp.codec import DEFAULT_RETRIES, DEFAULT_TIMEOUT

if TYPE_CHECKING:
    from analyzer.active.endpoint import Endpoint
    from analyzer.active.tftp import TftpClientDriver
    from analyzer.tftp.client import ClientOutcome



def register(tftp_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    get = tftp_subparsers.add_parser(
        "get", help="download a file from a TFTP server",
        description="Download REMOTE from a TFTP server. The file is written under a "
                    "temporary name and renamed to LOCAL only when complete: a failed "
                    "transfer leaves nothing behind and never touches an existing LOCAL.")
    get.add_argument("server", metavar="HOST[:PORT]",
                     help="server: name, IPv4, [IPv6] with optional :PORT (default 69)")
    get.add_argument("remote", metavar="REMOTE", help="file name on the server")
    get.add_argument("-o", "--output", metavar="LOCAL|-",
                     help="where to write (default: REMOTE's last name in the current "
                          "directory; a directory: inside it; -: stdout)")
    _client_options(get)
    get.set_defaults(handler=run_get)

    put = tftp_subparsers.add_parser(
        "put", help="upload a file to a TFTP server",
        description="Upload LOCAL to a TFTP server (streamed, never loaded whole).")
    put.add_argument("server", metavar="HOST[:PORT]",
                     help="server: name, IPv4, [IPv6] with optional :PORT (default 69)")
    put.add_argument("local", metavar="LOCAL", help="the file to send")
    put.add_argument("--as", dest="remote", metavar="REMOTE",
                     help="name on the server (default: LOCAL's file name)")
    _client_options(put)
    put.set_defaults(handler=run_put)


def _client_options(parser: argparse.ArgumentParser) -> None:
    # Numbers are checked by _number (one `analyzer: ...` line), not by argparse.
    parser.add_argument("--port", metavar="N", help="server port (overrides HOST:PORT)")
    parser.add_argument("--mode", default="octet", choices=["octet", "netascii"],
                        help="transfer mode (default octet)")
    parser.add_argument("--blksize", metavar="N", help="ask for this block size (8-65464)")
    parser.add_argument("--tsize", action="store_true",
                        help="ask for the transfer size (get: sends 0; put: the file's size)")
    parser.add_argument("--timeout", metavar="S",
                        help=f"retransmit after S seconds (default {DEFAULT_TIMEOUT:g}); a "
                             "whole S of 1-255 is also sent as the timeout option")
    parser.add_argument("--windowsize", metavar="N", help="ask for this window (1-65535)")
    parser.add_argument("--retries", metavar="N",
                        help=f"retransmissions in a row before giving up "
                             f"(default {DEFAULT_RETRIES})")
    parser.add_argument("--no-options", action="store_true",
                        help="send a plain RFC 1350 request (no options at all)")
    add_active_options(parser, encoding=False)


def _number(value: str | None, option: str, low: float, high: float | None,
            integer: bool = True) -> Any:
    if value is None:
        return None
    try:
        number: float = int(value) if integer else float(value)
    except ValueError:
        raise InputError(f"{option} {value!r}: not a{'n integer' if integer else ' number'}"
                         ) from None
    if number != number or number < low or (high is not None and number > high):
        limits = f"{low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise InputError(f"{option} {value}: must be {limits}")
    return number


def _spec(args: argparse.Namespace, put: bool) -> Any:
    from analyzer.active.tftp import TransferSpec

    blksize_range = codec.OPTION_RANGES["blksize"]
    window_range = codec.OPTION_RANGES["windowsize"]
    if put:
        import os

        remote = args.remote or os.path.basename(args.local)
        local = args.local
    else:
        remote, local = args.remote, args.output or ""
        if local == "-" and args.json:
            raise InputError("--json and -o - would both write to stdout; choose one")
    if not remote:
        raise InputError("no remote file name")
    return TransferSpec(
        server=args.server, remote=remote, local=local, put=put,
        port=_number(args.port, "--port", 1, 65535),
        mode=args.mode,
        blksize=_number(args.blksize, "--blksize", *blksize_range),
        windowsize=_number(args.windowsize, "--windowsize", *window_range),
        timeout=_number(args.timeout, "--timeout", 0.01, 3600, integer=False),
        tsize=args.tsize,
        retries=_number(args.retries, "--retries", 0, 1000)
        if args.retries is not None else DEFAULT_RETRIES,
        use_options=not args.no_options,
        digest=args.json,  # the file's SHA-256 is shown only there (TransferSpec.digest)
    )


def run_get(args: argparse.Namespace) -> int:
    return _run(args, put=False)


def run_put(args: argparse.Namespace) -> int:
    return _run(args, put=True)


def _run(args: argparse.Namespace, put: bool) -> int:
    from analyzer.active.tftp import TftpClientDriver

    spec = _spec(args, put)
    show_bar = not args.json and sys.stderr.isatty()
    to_stdout = not put and spec.local == "-"  # the file itself goes to stdout
    with _progress_bar(show_bar, spec.remote if not put else spec.local) as on_progress:
        driver = TftpClientDriver(spec, on_progress=on_progress)
        # the session binds the driver, watches it when asked, and turns Ctrl-C and
        # SIGTERM into a clean cancel (ERROR 0 to the server)
        result = watched(_SessionDriver(driver), args)
    outcome: ClientOutcome = result.outcome
    _report(outcome, driver.server_text, args, to_stderr=to_stdout)
    if result.analysis is not None:
        from analyzer.report.net_view import print_watch

        print_watch(result, as_json=args.json, out=sys.stdout, to_stderr=to_stdout,
                    evidence=args.write)
    from analyzer.cli import written

    # the file is renamed into place (or removed), the sockets closed: no teardown
    return written(EXIT_OK if outcome.ok else EXIT_FAILURE)


class _SessionDriver:
    """The TFTP driver as a session runs it: its local (address, port)s as UDP endpoints."""

    def __init__(self, driver: TftpClientDriver) -> None:
        self.driver = driver

    def bind(self) -> list[Endpoint]:
        from analyzer.active.endpoint import Endpoint

        return [Endpoint("udp", local, self.driver.server) for local in self.driver.bind()]

    def run(self, cancel: threading.Event) -> ClientOutcome:
        return self.driver.run(cancel)


@contextmanager
def _progress_bar(enabled: bool, name: str) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn(), transient=True)
    task = bar.add_task(_printable(name), total=None)

    def update(done: int, total: int | None) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield update


def _report(outcome: ClientOutcome, server_text: str, args: argparse.Namespace,
            to_stderr: bool) -> None:
    from analyzer.report.active import summary_line, tftp_client_json

    if args.json:
        import json  # (here: a plain transfer's start does without it)

        print(json.dumps(tftp_client_json(outcome, server_text)), flush=True)
        return
    line = _printable(summary_line(outcome))
    if not outcome.ok:
        print(f"analyzer: {line}", file=sys.stderr)
        return
    print(line, file=sys.stderr if to_stderr else sys.stdout)
    for note in outcome.notes:
        print(f"note: {_printable(note)}", file=sys.stderr)


def _printable(text: str) -> str:
    from analyzer.report.text import escape

    return escape(text)
