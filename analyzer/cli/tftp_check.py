"""`analyzer tftp check HOST[:PORT] --file NAME ...`: argument parsing and output only.

The checks are `analyzer.tftpcheck`; the views `analyzer.report.tftp_check`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from analyzer.cli.exits import EXIT_FAILURE, EXIT_OK
from analyzer.errors import InputError

if TYPE_CHECKING:
    from analyzer.tftpcheck.checks import Check
    from analyzer.tftpcheck.runner import CheckOptions, CheckReport



def register(tftp_subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    check = tftp_subparsers.add_parser(
        "check", help="grade a TFTP server against the RFCs, with the capture as evidence",
        description="Drive a TFTP server through what the RFCs require or recommend, "
                    "capture the exchange, analyze it and print one verdict per check "
                    "(pass, warn, fail, unsupported, skipped) with the evidence frames. "
                    "Needs root (the capture). Exit 1 when a check fails.")
    check.add_argument("server", metavar="HOST[:PORT]",
                       help="server: name, IPv4, [IPv6] with optional :PORT (default 69)")
    check.add_argument("--file", metavar="NAME", help="a readable file on the server")
    check.add_argument("--big-file", metavar="NAME",
                       help="a file of more than 65,535 blocks of 512 bytes (rollover)")
    check.add_argument("--writable", action="store_true",
                       help="allow uploads (unique names starting analyzer-check-)")
    check.add_argument("--only", metavar="IDS", help="run only these checks (comma list)")
    check.add_argument("--skip", metavar="IDS", help="do not run these checks")
    check.add_argument("--port", metavar="N", help="server port (overrides HOST:PORT)")
    check.add_argument("--timeout", metavar="S",
                       help="the client's retransmit timeout in seconds (default 1)")
    check.add_argument("-w", "--write", metavar="OUT.pcapng",
                       help="keep the evidence capture (frame numbers refer to it)")
    check.add_argument("--json", action="store_true",
                       help="one tftp_check JSON line per check, then the tftp_transfer lines")
    check.set_defaults(handler=run_check)


def _ids(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _options(args: argparse.Namespace) -> CheckOptions:
    from analyzer.cli.tftp_client import _number
    from analyzer.tftpcheck.runner import CheckOptions

    timeout = _number(args.timeout, "--timeout", 0.05, 60, integer=False)
    return CheckOptions(
        server=args.server, file=args.file, big_file=args.big_file, writable=args.writable,
        only=_ids(args.only), skip=_ids(args.skip),
        port=_number(args.port, "--port", 1, 65535),
        timeout=timeout if timeout is not None else 1.0, write=args.write)


def run_check(args: argparse.Namespace) -> int:
    from analyzer.tftpcheck.runner import run_checks, select_checks

    options = _options(args)
    if args.write:
        directory = os.path.dirname(os.path.abspath(args.write))
        if not os.path.isdir(directory):
            raise InputError(f"cannot write {args.write}: no directory {directory}")
    if os.geteuid() != 0:
        raise InputError("tftp check needs root: its verdicts come from a capture of the "
                         "exchange (run it with sudo)")
    checks = select_checks(options.only, options.skip)
    if not args.json and sys.stderr.isatty():
        report = _with_progress_row(options, len(checks))
    else:
        report = run_checks(options)
    if args.json:
        from analyzer.report.jsonl import write_objects
        from analyzer.report.tftp_check import tftp_check_object
        from analyzer.report.tftp_json import tftp_transfer_object

        write_objects((tftp_check_object(r) for r in report.results), sys.stdout)
        write_objects((tftp_transfer_object(t) for t in report.transfers), sys.stdout)
    else:
        from analyzer.report.console import stdout_console
        from analyzer.report.tftp_check import report_table, summary_line

        out = stdout_console()
        host, port = report.server
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        out.print(report_table(report.results, f"TFTP server {shown}"))
        out.print(summary_line(report.results), markup=False, highlight=False)
        out.print(f"evidence: {report.evidence_path}" if report.evidence_path else
                  "evidence: not kept (use -w OUT.pcapng)", markup=False, highlight=False)
        if report.evidence_path:
            from analyzer.report.wireshark_view import frame_hint

            out.print(frame_hint(report.evidence_path), soft_wrap=True)
    failed = any(r.verdict.verdict == "fail" for r in report.results)
    return EXIT_FAILURE if failed else EXIT_OK


def _with_progress_row(options: CheckOptions, total: int) -> CheckReport:
    """Run the checks under a live row on stderr: which check runs, how many are done."""
    from rich.console import Console

    from analyzer.tftpcheck.runner import run_checks

    console = Console(stderr=True, highlight=False)
    done = 0
    with console.status("starting the capture", spinner="dots") as status:

        def on_check(check: Check, state: str) -> None:
            nonlocal done
            if state == "running":
                done += 1
                status.update(f"check {done}/{total}: {check.id}")
            else:  # one row per check that ran; the verdicts need the whole capture
                console.print(f"  {check.id:<22} ran", style="dim", markup=False)

        return run_checks(options, on_check=on_check)
