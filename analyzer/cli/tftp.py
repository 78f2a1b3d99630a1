"""`analyzer tftp extract | show` (transfers of a capture): arguments; `tftp get | put` are
in `tftp_client.py`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from analyzer.cli import tftp_check, tftp_client

if TYPE_CHECKING:
    from analyzer.tftp.transfer import TftpTransfer


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tftp = subparsers.add_parser(
        "tftp", help="TFTP: transfers of a capture (extract, show); a client (get, put)",
        description="TFTP transfers of a capture, and a TFTP client that watches itself.")
    sub = tftp.add_subparsers(dest="tftp_command", required=True, metavar="SUBCOMMAND")

    extract = sub.add_parser(
        "extract", help="write every transferred file (complete or partial) into DIR",
        description="Rebuild every TFTP file of CAPTURE into DIR: complete files under "
                    "their (sanitized) name, others as NAME.partial with a NAME.partial.json "
                    "gap map. Existing files are never overwritten.")
    extract.add_argument("capture", metavar="CAPTURE")
    extract.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="directory to write into (created if needed)")
    _common(extract)
    extract.set_defaults(handler=run_extract)

    show = sub.add_parser(
        "show", help="one transfer's timeline: requests, OACK, blocks, resends, errors",
        description="Show TFTP transfer N of CAPTURE (numbered as in `analyzer read`) "
                    "packet by packet, in-order DATA/ACK runs folded into block ranges.")
    show.add_argument("capture", metavar="CAPTURE")
    show.add_argument("transfer", metavar="N", type=int, help="transfer number (1-based)")
    _common(show)
    show.set_defaults(handler=run_show)

    tftp_client.register(sub)  # tftp get / tftp put
    tftp_check.register(sub)  # tftp check


def _common(parser: argparse.ArgumentParser) -> None:
    from analyzer.cli import add_tftp_port_option

    add_tftp_port_option(parser)
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF filter on the frames")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines (tftp_transfer objects) instead of tables")


def run_extract(args: argparse.Namespace) -> int:
    from analyzer.run.read import extract_files

    # Settled transfers are spilled (JSON) or chosen for the table as they come: a
    # port-69 scan is 100,000 transfers, none of which wrote a file.
    if args.json:
        from analyzer.run.results import TftpLines

        lines = TftpLines()
        try:
            extract_files(args.capture, args.output, args.filter, tuple(args.tftp_port),
                          on_result=lines.add, on_unanswered=lines.unanswered)
            lines.write_ordered(sys.stdout)
        finally:
            lines.close()
        return 0
    from rich.console import Console
    from rich.text import Text

    from analyzer.report.console import ExtractedFiles, stdout_console
    from analyzer.report.text import escape
    from analyzer.report.tftp_view import extraction_table

    chosen = ExtractedFiles()
    cut: list[str] = []

    def take(t: TftpTransfer) -> None:
        chosen(t)
        if t.cut is not None:  # the file ends at a hole (transfer.MAX_FILL_BYTES)
            cut.append(f"#{t.number} {t.extracted or t.request.filename!r}: ends at "
                       f"byte {t.cut.offset:,}, where blocks {t.cut.first}-{t.cut.last} "
                       f"({t.cut.length:,} bytes) are missing: more zeros than a "
                       "file may get for its holes")

    analysis = extract_files(args.capture, args.output, args.filter, tuple(args.tftp_port),
                             on_result=take)
    console = stdout_console()
    results = chosen.shown()
    if results:
        console.print(extraction_table(results))
        if len(results) < chosen.total:
            console.print(Text(f"showing {len(results):,} of {chosen.total:,} transfers: "
                               "those that wrote a file first; `--json` lists every one",
                               style="dim"))
    else:
        console.print("no TFTP transfers in this capture")
    for warning in [*analysis.capture.warnings, *cut]:
        Console(stderr=True).print(f"warning: {escape(warning)}", style="yellow",
                                   markup=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from analyzer.run.read import one_tftp_transfer

    transfer = one_tftp_transfer(args.capture, args.transfer, args.filter,
                                 tuple(args.tftp_port))
    if args.json:
        from analyzer.report.jsonl import write_objects
        from analyzer.report.tftp_json import tftp_show_object

        write_objects([tftp_show_object(transfer)], sys.stdout)
        return 0
    from analyzer.report.console import stdout_console
    from analyzer.report.tftp_view import transfer_details
    from analyzer.report.wireshark_view import frame_hint

    console = stdout_console()
    console.print(transfer_details(transfer))
    console.print(frame_hint(args.capture), soft_wrap=True)
    return 0
