"""Reading capture files: the full `read` report, and the one-stream / one-transfer looks
(`tcp follow`, `tcp ladder`, `tftp show`, `tftp extract`), all through the pipeline."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, TextIO

from analyzer.capture.files import STDIN
from analyzer.errors import InputError
from analyzer.pipeline import Analysis, analyze_file
from analyzer.tcp.tracker import TcpTracker

if TYPE_CHECKING:
    from analyzer.report.console import FileProgress
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.transfer import TftpTransfer, UnansweredRequest

Path = str | os.PathLike[str]
Source = Path | Sequence[Path]  # a file, "-", several files or a directory (capture.files)


def read_report(path: Source, *, as_json: bool, bpf: str | None = None,
                extract_dir: Path | None = None, tftp_ports: tuple[int, ...] = (),
                progress: bool = False, out: TextIO | None = None) -> None:
    """`analyzer read`: the report of a whole capture on `out` (stdout): JSON Lines, or
    the summary and tables. `progress`: a progress bar on stderr over the file's bytes.

    Finished streams and transfers are kept as JSON text in spill files (`results.py`),
    or for the table only the few hundred streams it shows: never one result object per
    connection. Quiet streams are parked on disk too (`spill.py`)."""
    from analyzer.run.results import (
        TcpLines,
        TftpLines,
        write_spilled_analysis,
        write_split_analysis,
    )
    from analyzer.run.spill import SpillFile

    out = sys.stdout if out is None else out
    # rich (analyzer.report.console) takes ~60 ms to import: only for a progress bar or
    # the table view, never for JSON into a pipe.
    bar: FileProgress | None = None
    if progress and path != STDIN:  # a pipe has no size to show progress over
        from analyzer.report.console import file_progress

        bar = file_progress()
    if as_json:
        from analyzer.run.parallel import analyze_file_split, can_split

        if isinstance(path, str | os.PathLike) and can_split(path):
            with bar or nullcontext():
                split = analyze_file_split(path, tftp_ports=tftp_ports,
                                           extract_dir=extract_dir, bpf=bpf,
                                           progress=bar.update if bar else None)
            if split is not None:
                write_split_analysis(split, out)
                return
            if path == STDIN:  # read once, and gone: no second try in one process
                raise InputError("-: the second process analyzing standard input failed; "
                                 "run with ANALYZER_WORKERS=1 to use one")
            if bar is not None:  # worker 1 failed: once more in one process
                bar = file_progress()
    tcp_lines = TcpLines() if as_json else None
    tftp_lines = TftpLines() if as_json else None
    tftp_results = None if tftp_lines is None else tftp_lines.add
    parking = SpillFile(prefix="analyzer-parked-")
    table = None
    transfers = None
    if tcp_lines is not None:
        tcp_tracker = TcpTracker(on_result=tcp_lines.add, on_probe=tcp_lines.add_probe,
                                 parking=parking)
    else:
        from analyzer.report.console import TableStreams, TableTransfers

        table = TableStreams()
        transfers = TableTransfers()
        tcp_tracker = TcpTracker(on_result=table, parking=parking)
    try:
        with bar or nullcontext():
            analysis = analyze_file(path, tftp_ports=tftp_ports, extract_dir=extract_dir,
                                    bpf=bpf, progress=bar.update if bar else None,
                                    tcp_tracker=tcp_tracker,
                                    tftp_results=tftp_results or transfers,
                                    tftp_unanswered=None if tftp_lines is None
                                    else tftp_lines.unanswered)
    except BaseException:
        for lines in (tcp_lines, tftp_lines):
            if lines is not None:
                lines.close()
        raise
    finally:
        parking.close()
    if tcp_lines is not None:
        write_spilled_analysis(analysis, out, tcp_lines, tftp_lines)
    else:
        from analyzer.report import console

        console.print_analysis(analysis, table=table, transfers=transfers)
        shown = transfers.shown() if transfers is not None else analysis.tftp.results()
        if isinstance(path, str | os.PathLike) and any(
                t.findings for t in shown):  # findings name frames
            from analyzer.report.wireshark_view import frame_hint

            console.stdout_console().print(frame_hint(os.fspath(path)), soft_wrap=True)


def one_tcp_stream(path: Source, stream: int, bpf: str | None = None, *,
                   chunks: bool = True, records: bool = True,
                   spool: bool = False) -> TcpStreamResult:
    """Stream number `stream` of a capture, with what the views need of it kept: its
    Follow `chunks`, its ladder `records`; InputError when there is no such stream.
    Memory does not grow with the other streams (their results are dropped as they
    finish, quiet ones parked in a temporary file), nor with this one with `spool` (what
    is kept goes to a temporary file and is read back from there, in order)."""
    from analyzer.run.spill import ChunkSpool, RecordSpool, SpillFile
    from analyzer.tcp.result import ChunkList, ChunkLog, RecordList, RecordLog

    if stream < 0:
        raise InputError(f"{path}: stream numbers start at 0, not {stream}")
    found: list[TcpStreamResult] = []

    def wanted(result: TcpStreamResult) -> bool:
        if result.stream != stream:
            return False  # dropped: a late packet of it has nothing to update
        found.append(result)
        return True

    parking = SpillFile(prefix="analyzer-parked-")
    chunk_log: Callable[[], ChunkLog] | None = None
    if chunks:
        chunk_log = ChunkSpool if spool else ChunkList
    record_log: Callable[[], RecordLog] | None = None
    if records:
        record_log = RecordSpool if spool else RecordList
    tracker = TcpTracker(keep={stream}, on_result=wanted, parking=parking,
                         chunk_log=chunk_log, record_log=record_log)
    try:
        analyze_file(path, bpf=bpf, tcp_tracker=tracker, track_tftp=False)
    finally:
        parking.close()
    if found:
        return found[0]
    count = tracker.stream_count
    raise InputError(f"{path}: no TCP stream {stream} "
                     f"(the capture has {count} TCP stream{'s' if count != 1 else ''}"
                     f"{f', 0..{count - 1}' if count else ''})")


def one_tftp_transfer(path: Source, number: int, bpf: str | None = None,
                      tftp_ports: tuple[int, ...] = ()) -> TftpTransfer:
    """TFTP transfer `number` (1-based, as `read` numbers them) with its timeline."""
    from analyzer.tftp.tracker import TftpTracker

    if number < 1:
        raise InputError(f"transfer numbers start at 1, not {number}")
    tracker = TftpTracker(extra_ports=tftp_ports, timeline=[number])
    analyze_file(path, bpf=bpf, tftp_tracker=tracker, track_tcp=False)
    results = tracker.results()
    if number > len(results):
        raise InputError(f"no TFTP transfer {number} in {path} "
                         f"({len(results)} transfer{'s' if len(results) != 1 else ''})")
    return results[number - 1]


def extract_files(path: Source, out_dir: Path, bpf: str | None = None,
                  tftp_ports: tuple[int, ...] = (),
                  on_result: Callable[[TftpTransfer], object] | None = None,
                  on_unanswered: Callable[[UnansweredRequest], object] | None = None
                  ) -> Analysis:
    """Every TFTP file of a capture, written into `out_dir` (`tftp extract`); each
    settled transfer goes to `on_result` when given (else the tracker keeps them), each
    request sent once that nobody answered to `on_unanswered` when given."""
    return analyze_file(path, tftp_ports=tftp_ports, extract_dir=out_dir, bpf=bpf,
                        track_tcp=False, tftp_results=on_result,
                        tftp_unanswered=on_unanswered)
