"""Analyzing one large capture file on two cores, for `read --json`.

Both processes read the whole file (the record walk is about a tenth of the cost). Each
TCP connection belongs to one of them, by a hash of its addresses and ports that is the
same in both directions, so each process decodes and tracks only its own connections.
On the common path (Ethernet, IPv4 without options or fragments, TCP) the owner is read
straight from the frame bytes; any other frame is decoded by both, and the owner taken
from the decoded packet with the same hash, so a connection never splits between them.

The parent (worker 0) also keeps everything that is not TCP: the TFTP tracker, the frame
summary, fragment reassembly. Frame counts are added up so that each frame is counted by
exactly one decoder. Stream numbers, which Wireshark gives in order of each connection's
first packet, are given at the end from the streams' first frame numbers.

The result is the same JSON Lines as the one-process pipeline; the tests compare them.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from analyzer.capture import open_capture
from analyzer.capture.bpf import FrameFilter
from analyzer.decode import Decoder, DecodeStats, Packet
from analyzer.decode.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from analyzer.pipeline import PROGRESS_EVERY, CaptureSummary, tuned_gc
from analyzer.report.jsonl import TcpLines
from analyzer.tcp.tracker import TcpTracker
from analyzer.tftp.tracker import TftpTracker

# Below this size one process is as fast: starting the second costs ~0.1 s.
MIN_FILE_SIZE = 32 << 20


def owner_of_packet(pkt: Packet) -> int:
    """0 or 1: which worker tracks this TCP packet's connection (same both ways)."""
    sport, dport = pkt.sport, pkt.dport
    return (pkt.src[-1] + pkt.dst[-1] + (sport >> 8) + (sport & 0xFF) + (dport >> 8)
            + (dport & 0xFF)) & 1


def fast_owner(linktype: int, data: bytes) -> int:
    """The owner of an Ethernet/IPv4/TCP frame without IP options or fragmentation,
    from its bytes (equal to `owner_of_packet` of its packet); -1 for any other frame."""
    if linktype == 1 and len(data) >= 54 and data[12] == 8 and data[13] == 0 \
            and data[14] == 0x45 and data[23] == 6 and not (data[20] & 0x3F or data[21]):
        return (data[29] + data[33] + data[34] + data[35] + data[36] + data[37]) & 1
    return -1


@dataclass
class WorkerReport:
    lines_path: str  # worker 1's spill file of finished streams (see TcpLines)
    lines_index: list[tuple[int, int, int]]
    stats: DecodeStats
    warnings: list[str]
    evictions: int


@dataclass
class SplitAnalysis:
    """What `read --json` prints: TCP lines in stream order, TFTP results, the summary."""

    capture: CaptureSummary
    tcp_lines: list[TcpLines]  # one spill file per process
    tftp: TftpTracker


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
        with tuned_gc(), open_capture(path) as cap:
            frame_filter = FrameFilter(bpf, cap.info.byte_order) if bpf else None
            counted, probe = Decoder(), Decoder()  # probe: frames the parent counts
            tracker = TcpTracker(on_result=lines)
            on_packet = tracker.on_packet
            number = 0
            for frame in cap:
                number += 1
                if frame_filter is not None and not frame_filter.matches(frame):
                    continue
                owner = fast_owner(frame[1], frame[3])
                if owner == 1:
                    pkt = counted.decode(frame, number)
                    if pkt is not None:
                        on_packet(pkt)
                elif owner < 0:
                    pkt = probe.decode(frame, number)
                    if pkt is not None and pkt.proto == PROTO_TCP and owner_of_packet(pkt):
                        on_packet(pkt)
            tracker.finish()
        conn.send(WorkerReport(*lines.detach(), counted.stats, tracker.warnings,
                               tracker.evictions))
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
    lines = TcpLines()
    try:
        with tuned_gc(), open_capture(path) as cap:
            frame_filter = FrameFilter(bpf, cap.info.byte_order) if bpf else None
            decoder = Decoder()
            tcp = TcpTracker(on_result=lines)
            sink = None
            if extract_dir is not None:
                from analyzer.tftp.extract import Extractor

                sink = Extractor(extract_dir)
            tftp = TftpTracker(extra_ports=tftp_ports, sink=sink)
            decode, tcp_packet, tftp_packet = decoder.decode, tcp.on_packet, tftp.on_packet
            number = filtered_out = 0
            first: float | None = None
            last: float | None = None
            countdown = PROGRESS_EVERY
            for frame in cap:
                number += 1
                if progress is not None:
                    countdown -= 1
                    if not countdown:
                        countdown = PROGRESS_EVERY
                        progress(cap.bytes_read, cap.size)
                if frame_filter is not None and not frame_filter.matches(frame):
                    filtered_out += 1
                    continue
                ts = frame[0]
                if ts:
                    if first is None or ts < first:
                        first = ts
                    if last is None or ts > last:
                        last = ts
                owner = fast_owner(frame[1], frame[3])
                if owner == 1:
                    continue  # worker 1 decodes, counts and tracks it
                pkt = decode(frame, number)
                if pkt is None:
                    continue
                proto = pkt.proto
                if proto == PROTO_TCP:
                    if owner == 0 or not owner_of_packet(pkt):
                        tcp_packet(pkt)
                elif proto == PROTO_UDP or proto == PROTO_ICMP or proto == PROTO_ICMPV6:
                    tftp_packet(pkt)
            if progress is not None:
                progress(cap.size, cap.size)
            tcp.finish()
            tftp.finish()
            info = cap.info
        report: WorkerReport | None = receiver.recv() if receiver.poll(None) else None
    except EOFError:
        report = None
    except BaseException:
        lines.close()
        raise
    finally:
        receiver.close()
        child.join(timeout=5)
        if child.is_alive():
            child.terminate()
    if report is None:
        lines.close()
        return None

    stats = decoder.stats
    _add_stats(stats, report.stats)
    frags = decoder.fragments
    if frags.pending or frags.dropped:
        stats.warn(f"IP fragments: {frags.reassembled} datagrams reassembled, "
                   f"{frags.pending + frags.dropped} left incomplete")
    tracker_warnings = tcp.warnings + report.warnings
    evictions = tcp.evictions + report.evictions
    if evictions:
        tracker_warnings.append(
            f"TCP: {evictions} streams were finished while still open, to bound memory "
            "(idle too long, or too many open at once)")
    summary = CaptureSummary(info, stats, first, last, filtered_out, tracker_warnings)
    return SplitAnalysis(summary, [lines, TcpLines(report.lines_path, report.lines_index)],
                         tftp)


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
