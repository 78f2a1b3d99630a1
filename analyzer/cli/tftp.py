"""`analyzer tftp extract CAPTURE -o DIR` and `analyzer tftp show CAPTURE N`: wiring only."""

from __future__ import annotations

import argparse
import sys

from analyzer.cli import tftp_client
from analyzer.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tftp = subparsers.add_parser("tftp", help="TFTP transfers: extract files, show one",
                                 description="TFTP transfers of a capture.")
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


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tftp-port", type=int, action="append", default=[], metavar="N",
                        help="also treat requests to UDP port N as TFTP (repeatable)")
    parser.add_argument("-f", "--filter", metavar="BPF", help="BPF filter on the frames")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines (tftp_transfer objects) instead of tables")


def run_extract(args: argparse.Namespace) -> int:
    from analyzer.pipeline import analyze_file
    from analyzer.report.jsonl import write_objects

    analysis = analyze_file(args.capture, tftp_ports=args.tftp_port, extract_dir=args.output,
                            bpf=args.filter)
    results = analysis.tftp.results()
    if args.json:
        write_objects((t.to_json() for t in results), sys.stdout)
        return 0
    from rich.console import Console

    from analyzer.report.tftp_view import extraction_table

    console = Console()
    if results:
        console.print(extraction_table(results))
    else:
        console.print("no TFTP transfers in this capture")
    for warning in analysis.capture.warnings:
        Console(stderr=True).print(f"warning: {warning}", style="yellow", markup=False)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from analyzer.decode.packet import PROTO_TCP
    from analyzer.pipeline import iter_packets
    from analyzer.tftp.tracker import TftpTracker

    if args.transfer < 1:
        raise InputError(f"transfer numbers start at 1, not {args.transfer}")
    tracker = TftpTracker(extra_ports=args.tftp_port, timeline=[args.transfer])
    on_packet = tracker.on_packet
    for pkt in iter_packets(args.capture, bpf=args.filter):
        if pkt.proto != PROTO_TCP:
            on_packet(pkt)
    tracker.finish()
    results = tracker.results()
    if args.transfer > len(results):
        raise InputError(f"no TFTP transfer {args.transfer} in {args.capture} "
                         f"({len(results)} transfer{'s' if len(results) != 1 else ''})")
    transfer = results[args.transfer - 1]
    if args.json:
        from analyzer.report.jsonl import write_objects

        obj = transfer.to_json()
        obj["timeline"] = [e._asdict() for e in transfer.events or []]
        write_objects([obj], sys.stdout)
        return 0
    from rich.console import Console

    from analyzer.report.tftp_view import transfer_details

    Console().print(transfer_details(transfer))
    return 0
