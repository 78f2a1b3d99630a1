"""`analyzer tftp extract | show` (transfers of a capture): arguments; `tftp get | put` are
in `tftp_client.py`."""

from __future__ import annotations

import argparse
import sys

from analyzer.cli import tftp_check, tftp_client


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

    analysis = extract_files(args.capture, args.output, args.filter, tuple(args.tftp_port))
    results = analysis.tftp.results()
    if args.json:
        from analyzer.report.jsonl import write_objects
        from analyzer.report.tftp_json import tftp_transfer_object

        write_objects((tftp_transfer_object(t) for t in results), sys.stdout)
        return 0
    from rich.console import Console

    from analyzer.report.console import stdout_console
    from analyzer.report.text import escape
    from analyzer.report.tftp_view import extraction_table

    console = stdout_console()
    if results:
        console.print(extraction_table(results))
    else:
        console.print("no TFTP transfers in this capture")
    warnings = list(analysis.capture.warnings)
    for t in results:
        if t.cut is not None:  # the file ends at a hole (transfer.MAX_FILL_BYTES)
            warnings.append(f"#{t.number} {t.extracted or t.request.filename!r}: ends at "
                            f"byte {t.cut.offset:,}, where blocks {t.cut.first}-{t.cut.last} "
                            f"({t.cut.length:,} bytes) are missing: more zeros than a "
                            "file may get for its holes")
    for warning in warnings:
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

    stdout_console().print(transfer_details(transfer))
    return 0
