"""Wiring: a frame source through the decoder into the TCP and TFTP trackers.

`Analyzer` is the one place that dispatches packets to trackers; `analyze_file` and the
live sniffer both feed it frames. No views and no protocol logic live here.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from analyzer.capture import CaptureInfo, Frame, open_capture
from analyzer.capture.bpf import FrameFilter
from analyzer.decode import Decoder, DecodeStats, Packet
from analyzer.decode.packet import PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP
from analyzer.decode.partition import fast_owner, owner_of_packet
from analyzer.tcp.tracker import TcpTracker
from analyzer.tftp.tracker import TftpTracker, TftpTransfer, UnansweredRequest

if TYPE_CHECKING:
    from analyzer.tftp.extract import Extractor

PROGRESS_EVERY: Final = 1 << 14  # frames between progress callbacks
# The trackers free finished streams as they go and leave no reference cycles, so the
# cyclic collector's default of a pass every 700 allocations is pure overhead here.
GC_THRESHOLD: Final = 200_000


# glibc's malloc hands memory above its trim threshold back to the kernel and takes it
# again for the next 1 MiB read buffer: a page fault per 4 KiB of capture read (perf:
# 247k faults on 1M packets, 0.9 s of system time). Thresholds this high keep the buffers'
# pages in the heap for reuse (25k faults, 0.3 s): the memory is reused, not added.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 256 << 20
MMAP_THRESHOLD = 32 << 20


def keep_freed_pages() -> None:
    """Set glibc's malloc thresholds as above (no-op where malloc is not glibc's)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


@contextmanager
def tuned_gc() -> Iterator[None]:
    """Collect cycles rarely while a capture is analyzed (measured: ~5-8% of CPU), and
    keep freed read buffers in the heap (`keep_freed_pages`)."""
    keep_freed_pages()
    saved = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, saved[1], saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)


class CaptureSummary:
    """The SPEC `capture` object: what was read, from where, and what went wrong."""

    def __init__(
        self,
        info: CaptureInfo,
        stats: DecodeStats,
        first: float | None,
        last: float | None,
        filtered_out: int = 0,
        tcp_warnings: list[str] | None = None,
        tcp_evictions: int = 0,
    ) -> None:
        self.info = info
        self.stats = stats
        self.first = first
        self.last = last
        self.filtered_out = filtered_out
        self.tcp_warnings = [] if tcp_warnings is None else tcp_warnings
        self.tcp_evictions = tcp_evictions

    @property
    def warnings(self) -> list[str]:
        tracker = list(self.tcp_warnings)
        if self.tcp_evictions:
            tracker.append(
                f"TCP: {self.tcp_evictions} streams were finished while still open, to "
                "bound memory (idle too long, or too many open at once)")
        return (self.info.warnings + self.stats.warnings
                + self.stats.encapsulation_warnings() + tracker)


class Analysis:
    def __init__(self, capture: CaptureSummary, tcp: TcpTracker, tftp: TftpTracker) -> None:
        self.capture = capture
        self.tcp = tcp
        self.tftp = tftp


class Analyzer:
    """Decoder plus trackers: feed it frames, then `finish()`.

    tcp_tracker / tftp_tracker: the trackers to use (default: new ones with default
    settings); track_tcp / track_tftp False: that protocol's packets are decoded and
    counted but not tracked (`tftp show` needs no TCP streams, `tcp follow` no transfers).
    first_half: this is worker 0 of analyzer/run/parallel.py: the TCP connections that
    worker 1 owns are neither tracked nor (on the common path) decoded here.
    tftp_results: the default TFTP tracker's on_result (settled transfers go there);
    tftp_unanswered its on_unanswered (requests sent once that nobody answered).
    """

    def __init__(self, *, tftp_ports: Iterable[int] = (),
                 extract_dir: str | os.PathLike[str] | None = None,
                 frame_filter: FrameFilter | None = None,
                 tcp_tracker: TcpTracker | None = None, first_half: bool = False,
                 tftp_results: Callable[[TftpTransfer], object] | None = None,
                 tftp_unanswered: Callable[[UnansweredRequest], object] | None = None,
                 tftp_tracker: TftpTracker | None = None, track_tcp: bool = True,
                 track_tftp: bool = True) -> None:
        self.decoder = Decoder()
        self.tcp = tcp_tracker if tcp_tracker is not None else TcpTracker()
        self.extractor: Extractor | None = None
        if tftp_tracker is None:
            sink = None
            if extract_dir is not None:
                from analyzer.tftp.extract import Extractor

                sink = self.extractor = Extractor(extract_dir)
            tftp_tracker = TftpTracker(extra_ports=tftp_ports, sink=sink,
                                       on_result=tftp_results,
                                       on_unanswered=tftp_unanswered)
        self.tftp = tftp_tracker
        self.track_tcp = track_tcp
        self.track_tftp = track_tftp
        self.frame_filter = frame_filter
        self.first_half = first_half
        self.frames = 0
        self.filtered_out = 0
        self.first: float | None = None
        self.last: float | None = None

    def feed(self, frame: Frame) -> Packet | None:
        """Decode one frame and hand its packet to the tracker that wants it."""
        self.frames += 1
        if self.frame_filter is not None and not self.frame_filter.matches(frame):
            self.filtered_out += 1
            return None
        ts = frame.ts
        if ts:  # 0.0: a pcapng Simple Packet Block before any timed frame
            if self.first is None or ts < self.first:
                self.first = ts
            if self.last is None or ts > self.last:
                self.last = ts
        owner = -1
        if self.first_half:
            owner = fast_owner(frame.linktype, frame.data)
            if owner == 1:
                return None  # worker 1 decodes, counts and tracks it
        pkt = self.decoder.decode(frame, self.frames)
        if pkt is not None:
            proto = pkt.proto
            if proto == PROTO_TCP:
                if self.track_tcp and (owner == 0 or not self.first_half
                                       or not owner_of_packet(pkt)):
                    self.tcp.on_packet(pkt)
            elif self.track_tftp and (proto == PROTO_UDP or proto == PROTO_ICMP
                                      or proto == PROTO_ICMPV6):
                self.tftp.on_packet(pkt)
        return pkt

    def finish(self, info: CaptureInfo) -> Analysis:
        self.tcp.finish()
        self.tftp.finish()
        stats = self.decoder.stats
        frags = self.decoder.fragments
        if frags.pending or frags.dropped:
            stats.warn(f"IP fragments: {frags.reassembled} datagrams reassembled, "
                       f"{frags.pending + frags.dropped} left incomplete")
        summary = CaptureSummary(info, stats, self.first, self.last, self.filtered_out,
                                 list(self.tcp.warnings), self.tcp.evictions)
        return Analysis(summary, self.tcp, self.tftp)


def analyze_file(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                 tftp_ports: Iterable[int] = (),
                 extract_dir: str | os.PathLike[str] | None = None, bpf: str | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 tcp_tracker: TcpTracker | None = None, first_half: bool = False,
                 tftp_results: Callable[[TftpTransfer], object] | None = None,
                 tftp_unanswered: Callable[[UnansweredRequest], object] | None = None,
                 tftp_tracker: TftpTracker | None = None, track_tcp: bool = True,
                 track_tftp: bool = True, tee_fd: int | None = None) -> Analysis:
    """Read a whole capture through the trackers. `progress(done, total)` in file bytes;
    tee_fd: see CaptureFile; the other keywords: see `Analyzer`."""
    with tuned_gc(), open_capture(path, tee_fd) as cap:
        frame_filter = FrameFilter(bpf, cap.info.byte_order) if bpf else None
        analyzer = Analyzer(tftp_ports=tftp_ports, extract_dir=extract_dir,
                            frame_filter=frame_filter, tcp_tracker=tcp_tracker,
                            first_half=first_half, tftp_results=tftp_results,
                            tftp_unanswered=tftp_unanswered,
                            tftp_tracker=tftp_tracker, track_tcp=track_tcp,
                            track_tftp=track_tftp)
        try:
            if progress is None:
                for frame in cap:
                    analyzer.feed(frame)  # compiled: a direct call, unlike a bound method's
            else:
                countdown = PROGRESS_EVERY
                for frame in cap:
                    analyzer.feed(frame)
                    countdown -= 1
                    if not countdown:
                        countdown = PROGRESS_EVERY
                        progress(cap.bytes_read, cap.size)
                progress(cap.size, cap.size)
            return analyzer.finish(cap.info)
        except BaseException:
            if analyzer.extractor is not None:
                analyzer.extractor.discard()  # no temporary file outlives the command
            raise


def track_second_half(path: str | os.PathLike[str], bpf: str | None,
                      tracker: TcpTracker) -> DecodeStats:
    """Worker 1 of analyzer/run/parallel.py: decode and track only the TCP connections whose
    owner is 1 (decode/partition.py); returns the counts of the frames it decoded."""
    with tuned_gc(), open_capture(path) as cap:
        frame_filter = FrameFilter(bpf, cap.info.byte_order) if bpf else None
        counted, probe = Decoder(), Decoder()  # probe: frames worker 0 counts
        number = 0
        for frame in cap:
            number += 1
            if frame_filter is not None and not frame_filter.matches(frame):
                continue
            owner = fast_owner(frame.linktype, frame.data)
            if owner == 1:
                pkt = counted.decode(frame, number)
                if pkt is not None:
                    tracker.on_packet(pkt)
            elif owner < 0:
                pkt = probe.decode(frame, number)
                if pkt is not None and pkt.proto == PROTO_TCP and owner_of_packet(pkt):
                    tracker.on_packet(pkt)
        tracker.finish()
    return counted.stats


def iter_packets(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 bpf: str | None = None) -> Iterator[Packet]:
    """The decoded packets of a file, in order (for commands that look at one stream)."""
    decoder = Decoder()
    with open_capture(path) as cap:
        frame_filter = FrameFilter(bpf, cap.info.byte_order) if bpf else None
        for number, frame in enumerate(cap, 1):
            if frame_filter is not None and not frame_filter.matches(frame):
                continue
            pkt = decoder.decode(frame, number)
            if pkt is not None:
                yield pkt
