"""Analyzing one large capture file on two cores, for `read --json`.

Both processes read the whole file (the record walk is about a quarter of the cost). Each
TCP connection belongs to one of them, by a hash of its addresses and ports that is the
same in both directions, so each process decodes and tracks only its own connections.
On the common path (Ethernet, IPv4 without options or fragments, TCP) the owner is read
straight from the frame bytes; any other frame is decoded by both, and the owner taken
from the decoded packet with the same hash (analyzer/decode/partition.py), so a
connection never splits between them.

The parent (worker 0) is the ordinary pipeline with `first_half` set; it also keeps
everything that is not TCP: the TFTP tracker, the frame summary, fragment reassembly.
Frame counts are added up so that each frame is counted by exactly one decoder.
Stream numbers, which Wireshark gives in order of each connection's first packet, are
given at the end from the streams' first frame numbers.

The result is the same JSON Lines as the one-process pipeline; the tests compare them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from analyzer.decode import DecodeStats
from analyzer.pipeline import CaptureSummary, analyze_file, track_second_half
from analyzer.report.jsonl import LineIndex, TcpLines, TftpLines
from analyzer.tcp.tracker import TcpTracker

# Below this size one process is as fast: starting the second costs ~0.1 s.
MIN_FILE_SIZE = 32 << 20


@dataclass
class WorkerReport:
    lines_path: str  # worker 1's spill file of finished streams (see TcpLines)
    lines_index: LineIndex
    stats: DecodeStats
    warnings: list[str]
    evictions: int


@dataclass
class SplitAnalysis:
    """What `read --json` prints: TCP lines in stream order, TFTP results, the summary."""

    capture: CaptureSummary
    tcp_lines: list[TcpLines]  # one spill file per process
    tftp_lines: TftpLines  # worker 0 tracks TFTP


def can_split(path: str | os.PathLike[str]) -> bool:
    """Worth two processes: a large file, two cores, fork; ANALYZER_WORKERS=1 says no."""
    if os.environ.get("ANALYZER_WORKERS") == "1":
        return False
    try:
        big = os.path.getsize(path) >= MIN_FILE_SIZE
    except OSError:
        return False  # let the one-process path report the problem
    return big and (os.cpu_count() or 1) >= 2 and \
        "fork" in multiprocessing.get_all_start_methods()


def _worker_one(path: str, bpf: str | None, conn: Connection) -> None:
    """Worker 1: decode and track the connections whose owner is 1; report at the end."""
    lines = TcpLines()
    try:
        tracker = TcpTracker(on_result=lines)
        stats = track_second_half(path, bpf, tracker)
        conn.send(WorkerReport(*lines.detach(), stats, tracker.warnings, tracker.evictions))
    except BaseException:  # noqa: BLE001 - the parent reports input errors; ours go quiet
        lines.close()
    finally:
        conn.close()


def analyze_file_split(path: str | os.PathLike[str], *, tftp_ports: Iterable[int] = (),
                       extract_dir: str | Path | None = None, bpf: str | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> SplitAnalysis | None:
    """Two-process analysis; None when the second process failed (use one process)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_worker_one, args=(os.fspath(path), bpf, sender),
                            daemon=True)
    child.start()
    sender.close()
    lines, tftp_lines = TcpLines(), TftpLines()
    try:
        analysis = analyze_file(path, tftp_ports=tftp_ports, extract_dir=extract_dir, bpf=bpf,
                                progress=progress, tcp_tracker=TcpTracker(on_result=lines),
                                first_half=True, tftp_results=tftp_lines)
        report: WorkerReport | None = receiver.recv() if receiver.poll(None) else None
    except EOFError:
        report = None
    except BaseException:
        lines.close()
        tftp_lines.close()
        raise
    finally:
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
    if report is None:
        lines.close()
        tftp_lines.close()
        return None

    summary = analysis.capture
    _add_stats(summary.stats, report.stats)
    summary.tcp_warnings += report.warnings
    summary.tcp_evictions += report.evictions
    theirs = TcpLines(report.lines_path, report.lines_index)
    return SplitAnalysis(summary, [lines, theirs], tftp_lines)


def _add_stats(total: DecodeStats, part: DecodeStats) -> None:
    total.packets += part.packets
    total.bytes += part.bytes
    total.wire_bytes += part.wire_bytes
    total.linktypes.update(part.linktypes)
    total.protocols.update(part.protocols)
    total.skipped_linktypes.update(part.skipped_linktypes)
    total.malformed += part.malformed
    total.truncated += part.truncated
    for warning in part.warnings:
        total.warn(warning)
