"""`analyzer frame` and `analyzer verify`: Wireshark's second opinion (analyzer.wireshark)."""

from __future__ import annotations

import argparse
import sys

from analyzer.cli.exits import EXIT_FAILURE, EXIT_OK

TABLE_ROWS = 200  # more rows than this: the table shows only those that differ
PIPE_WIDTH = 1000


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from analyzer.cli import add_tftp_port_option

    frame = subparsers.add_parser(
        "frame", help="Wireshark's full dissection of chosen frames (needs tshark)",
        description="Show frames N of CAPTURE as Wireshark's packet-details pane does: every "
                    "layer and field, nested (tshark's PDML). Frames are numbered as in "
                    "Wireshark. A frame the capture does not have, or no tshark: exit 2.")
    frame.add_argument("capture", metavar="CAPTURE")
    frame.add_argument("frames", metavar="N", type=int, nargs="+", help="frame number")
    frame.add_argument("--json", action="store_true",
                       help="one JSON object per frame (type \"frame\"), fields nested")
    frame.set_defaults(handler=run_frame)

    verify = subparsers.add_parser(
        "verify", help="compare our streams and TFTP files with tshark's (needs tshark)",
        description="Run tshark over CAPTURE and compare, stream by stream and transfer by "
                    "transfer: tcp.stream numbers and endpoints, final tcp.completeness, "
                    "each direction's Follow bytes, and the files of --export-objects tftp. "
                    "Each difference is explained by a known tshark behaviour or reported "
                    "as unexplained. Exit 0: everything agrees or is explained; 1: "
                    "something is unexplained; 2: unusable input or no tshark.")
    verify.add_argument("capture", metavar="CAPTURE")
    verify.add_argument("--json", action="store_true",
                        help="JSON Lines: a verify_item per difference, then verify_summary")
    verify.add_argument("--no-progress", action="store_true",
                        help="no progress bar, even on a terminal")
    # Our results from a file (a saved `read --json`) instead of reading the capture:
    # lets the tests feed a doctored result and see it reported.
    verify.add_argument("--ours", metavar="FILE", help=argparse.SUPPRESS)
    add_tftp_port_option(verify)
    verify.set_defaults(handler=run_verify)


def run_frame(args: argparse.Namespace) -> int:
    from analyzer.wireshark.frame import dissect_frames

    frames = dissect_frames(args.capture, args.frames)
    if args.json:
        from analyzer.report.jsonl import write_objects
        from analyzer.report.wireshark_view import frame_object

        write_objects((frame_object(args.capture, f) for f in frames), sys.stdout)
        return EXIT_OK
    from analyzer.report.console import stdout_console
    from analyzer.report.wireshark_view import frame_tree

    console = stdout_console()
    if not console.is_terminal:
        console.width = PIPE_WIDTH  # into a file or pager: one line per field, unwrapped
    for frame in frames:
        console.print(frame_tree(args.capture, frame))
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from analyzer.report.wireshark_view import (
        estimate_text,
        reasons_text,
        summary_text,
        verify_item_object,
        verify_summary_object,
        verify_table,
    )
    from analyzer.wireshark.verify import (
        AGREE,
        VerifyHooks,
        VerifyItem,
        VerifyRow,
        estimate_seconds,
        verify,
    )

    stderr = Console(stderr=True)
    show_progress = not args.json and not args.no_progress and sys.stderr.isatty()
    rows: list[VerifyRow] = []
    agreeing = 0
    progress = None
    task = None

    def on_start(packets: int) -> None:
        nonlocal progress, task
        if not args.json:
            stderr.print(estimate_text(args.capture, packets, estimate_seconds(packets)),
                         soft_wrap=True)
        if show_progress:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(TextColumn("tshark"), BarColumn(), TimeRemainingColumn(),
                                console=stderr, transient=True)
            task = progress.add_task("tshark", total=None)
            progress.start()

    def on_progress(done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total)

    def on_item(item: VerifyItem) -> None:
        if args.json:
            sys.stdout.write(json.dumps(verify_item_object(item)) + "\n")

    def on_row(row: VerifyRow) -> None:
        nonlocal agreeing
        if row.verdict == AGREE:
            agreeing += 1
            if agreeing > TABLE_ROWS:
                return
        rows.append(row)

    hooks = VerifyHooks(on_start=on_start, progress=on_progress, on_item=on_item,
                        on_row=on_row)
    try:
        summary = verify(args.capture, ours=args.ours, tftp_ports=tuple(args.tftp_port),
                         hooks=hooks)
    finally:
        if progress is not None:
            progress.stop()
    if args.json:
        sys.stdout.write(json.dumps(verify_summary_object(summary)) + "\n")
    else:
        from analyzer.report.console import stdout_console

        console = stdout_console()
        if len(rows) > TABLE_ROWS:  # too many to read: the ones that differ
            shown = [row for row in rows if row.verdict != AGREE]
        else:
            shown = rows
        console.print(verify_table(shown, summary.counts[AGREE] - sum(
            1 for row in shown if row.verdict == AGREE)))
        console.print(summary_text(summary))
        reasons = reasons_text(summary)
        if reasons is not None:
            console.print(reasons)
        if summary.tshark_warning:
            stderr.print(f"warning: tshark: {summary.tshark_warning}", style="yellow",
                         markup=False, soft_wrap=True)
    return EXIT_OK if summary.ok else EXIT_FAILURE
