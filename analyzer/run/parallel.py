"""Analyzing one large capture file on two cores, for `read --json`.

Both processes read the whole file (the record walk is about a quarter of the cost). Each
TCP connection belongs to one of them, by a hash of its addresses and ports that is the
same in both directions, so each process decodes and tracks only its own connections.
On the common paths (Ethernet, then IPv4 without options or fragments or IPv6 without
extension headers, then TCP) the owner is read straight from the frame bytes; any other
frame is decoded by both, and the owner taken
from the decoded packet with the same hash (analyzer/decode/partition.py), so a
connection never splits between them.

The parent (worker 0) is the ordinary pipeline with `first_half` set; it also keeps
everything that is not TCP: the TFTP tracker, the frame summary, fragment reassembly.
Frame counts are added up so that each frame is counted by exactly one decoder.
Stream numbers, which Wireshark gives in order of each connection's first packet, are
given at the end from the streams' first frame numbers.

A pipe (`read -`) cannot be read twice: the parent copies every byte it reads from
standard input into a pipe that is worker 1's standard input (capture/files.py `_Tee`),
so both still read the whole capture, at the cost of one extra write per chunk.

The result is the same JSON Lines as the one-process pipeline; the tests compare them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable

from analyzer.capture.files import STDIN, plain_stdin_path
from analyzer.decode import DecodeStats
from analyzer.pipeline import CaptureSummary, analyze_file, track_second_half
from analyzer.run.results import TcpLines, TftpLines
from analyzer.run.spill import SpillFile
from analyzer.tcp.tracker import TcpTracker

# Below this size a second process gains a few milliseconds at most (a fork costs ~2 ms;
# measured in one session, one against two processes: 27 KB 1 vs 3 ms, 0.2 MB 32 vs
# 24 ms, 0.9 MB 61 vs 39 ms, 17 MB 141 vs 116 ms).
MIN_FILE_SIZE = 1 << 20

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
TEE_PIPE_SIZE = 1 << 20  # the default limit for an unprivileged user (pipe-max-size)


class WorkerReport:
    def __init__(
        self,
        lines_path: str,
        lines_index_path: str,
        stats: DecodeStats,
        warnings: list[str],
        evictions: int,
    ) -> None:
        self.lines_path = lines_path  # worker 1's spill file of finished streams (see TcpLines)
        self.lines_index_path = lines_index_path  # and where each line is in it
        self.stats = stats
        self.warnings = warnings
        self.evictions = evictions


class SplitAnalysis:
    """What `read --json` prints: TCP lines in stream order, TFTP results, the summary."""

    def __init__(
        self,
        capture: CaptureSummary,
        tcp_lines: list[TcpLines],
        tftp_lines: TftpLines,
    ) -> None:
        self.capture = capture
        self.tcp_lines = tcp_lines  # one spill file per process
        self.tftp_lines = tftp_lines  # worker 0 tracks TFTP


def can_split(path: object) -> bool:
    """Worth two processes: one large file or standard input (not several files), two
    cores, fork; ANALYZER_WORKERS=1 says no."""
    if os.environ.get("ANALYZER_WORKERS") == "1" or not isinstance(path, str | os.PathLike):
        return False
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "fork"):
        return False
    plain = plain_stdin_path() if os.fspath(path) == STDIN else None
    if plain is not None:
        path = plain  # judged by its size, as a file is
    elif os.fspath(path) == STDIN:
        # No size to judge by; a pipe is worth it from a few MB on, and costs ~2 ms less.
        return sys.stdin is not None and not sys.stdin.isatty()
    if os.path.isdir(path):
        return False
    try:
        return os.path.getsize(path) >= MIN_FILE_SIZE
    except OSError:
        return False  # let the one-process path report the problem


def _worker_one(path: str, bpf: str | None, report_fd: int) -> None:
    """Worker 1: decode and track the connections whose owner is 1; report at the end
    (a pickled WorkerReport written to `report_fd`; nothing when it failed)."""
    lines = TcpLines(named=True)  # (detached for the parent)
    try:
        tracker = TcpTracker(on_result=lines.add, on_probe=lines.add_probe,
                             parking=SpillFile(prefix="analyzer-parked-"))
        stats = track_second_half(path, bpf, tracker)
        report = WorkerReport(*lines.detach(), stats, tracker.warnings, tracker.evictions)
        with open(report_fd, "wb") as out:
            out.write(pickle.dumps(report, pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the parent reports input errors; ours go quiet
        lines.close()


def _fork_worker_one(path: str, bpf: str | None, workdir: str
                     ) -> tuple[int, int, int | None]:
    """Start worker 1, its temporary files in `workdir`; returns its pid, the pipe its
    report comes through, and for standard input the pipe to copy the input into.

    A bare fork, not multiprocessing: its imports cost ~10 ms at every start, a tenth of
    the time `read` takes on a 100k-packet file, for nothing this needs."""
    read_fd, write_fd = os.pipe()
    tee_read = tee_write = None
    if path == STDIN and plain_stdin_path() is None:  # (a plain file: each opens its own)
        tee_read, tee_write = os.pipe()
        # Fewer, larger copies: both pipes hold 1 MiB rather than 64 KiB (Linux; a pipe
        # that is not ours, or a lower pipe-max-size, keeps its size).
        for pipe in (tee_write, sys.stdin.fileno()):
            with contextlib.suppress(OSError):
                fcntl.fcntl(pipe, F_SETPIPE_SZ, TEE_PIPE_SIZE)
    sys.stdout.flush()  # what is buffered now must be written once, by the parent
    sys.stderr.flush()
    # Worker 1 says nothing and leaves nothing: the parent reports every error and
    # removes `workdir`. So the parent's SIGTERM (see _stop) ends it at once, without a
    # Python handler, which could raise anywhere, even inside a __del__, where the
    # interpreter prints it ("Exception ignored in ...", seen in 1 of 300 failures);
    # Ctrl-C, which reaches both processes, is the parent's to handle. Both signals
    # are held across the fork, so none lands before that is set.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.close(read_fd)
                if tee_read is not None and tee_write is not None:
                    os.close(tee_write)
                    # Its standard input (as capture/files.py finds it) is the parent's copy.
                    os.dup2(tee_read, sys.stdin.fileno())
                    os.close(tee_read)
                tempfile.tempdir = workdir
                _worker_one(path, bpf, write_fd)
            finally:
                os._exit(0)  # never back into the parent's code (or its atexit handlers)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(write_fd)
    if tee_read is not None:
        os.close(tee_read)
    return pid, read_fd, tee_write


def _stop(pid: int, kill: bool) -> None:
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


def analyze_file_split(path: str | os.PathLike[str], *, tftp_ports: Iterable[int] = (),
                       extract_dir: str | os.PathLike[str] | None = None,
                       bpf: str | None = None,
                       progress: Callable[[int, int], None] | None = None
                       ) -> SplitAnalysis | None:
    """Two-process analysis; None when the second process failed (use one process).

    Worker 1's temporary files (its spill files, a filter's) go in a directory of their
    own, removed here whatever happened: stopped at any point, even halfway through
    making or deleting one, it leaves nothing behind. Its spill files are open by then
    when it succeeded, and stay readable until closed."""
    with tempfile.TemporaryDirectory(prefix="analyzer-worker-",
                                     ignore_cleanup_errors=True) as workdir:
        pid, read_fd, tee_fd = _fork_worker_one(os.fspath(path), bpf, workdir)
        lines, tftp_lines = TcpLines(), TftpLines()
        parking = SpillFile(prefix="analyzer-parked-")
        try:
            with open(read_fd, "rb") as pipe:
                tracker = TcpTracker(on_result=lines.add, on_probe=lines.add_probe,
                                     parking=parking)
                # The capture closes tee_fd when it is done reading: worker 1's end of input.
                analysis = analyze_file(path, tftp_ports=tftp_ports, extract_dir=extract_dir,
                                        bpf=bpf, progress=progress, tcp_tracker=tracker,
                                        first_half=True, tftp_results=tftp_lines.add,
                                        tftp_unanswered=tftp_lines.unanswered,
                                        tee_fd=tee_fd)
                data = pipe.read()  # until worker 1 exits
        except BaseException:
            lines.close()
            tftp_lines.close()
            _stop(pid, kill=True)
            raise
        finally:
            parking.close()
        _stop(pid, kill=False)
        try:
            report: WorkerReport | None = pickle.loads(data) if data else None
        except Exception:  # noqa: BLE001 - cut short (worker 1 killed): as if it had failed
            report = None
        if report is None:
            lines.close()
            tftp_lines.close()
            return None
        theirs = TcpLines(report.lines_path, report.lines_index_path)

    summary = analysis.capture
    _add_stats(summary.stats, report.stats)
    summary.tcp_warnings += report.warnings
    summary.tcp_evictions += report.evictions
    return SplitAnalysis(summary, [lines, theirs], tftp_lines)


def _add_stats(total: DecodeStats, part: DecodeStats) -> None:
    total.packets += part.packets
    total.bytes += part.bytes
    total.wire_bytes += part.wire_bytes
    total.linktypes.update(part.linktypes)
    total.protocols.update(part.protocols)
    total.skipped_linktypes.update(part.skipped_linktypes)
    total.tunnels.update(part.tunnels)
    total.not_decoded.update(part.not_decoded)
    total.malformed += part.malformed
    total.truncated += part.truncated
    for warning in part.warnings:
        total.warn(warning)
