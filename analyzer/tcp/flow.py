"""One direction of a TCP connection (`Flow`): its sequence space, the little the
analysis remembers of its last segments, and its reassembly; plus 32-bit sequence
arithmetic.

Its state is read and written by `stream.Stream` (the full analysis of a packet) and by
the tracker's fast path (tracker.py), which is why the attributes the fast path touches
come first. 32-bit sequence numbers become unbounded stream offsets (0 = first data byte)
through `offset_of`, so wraparound past 2**32 needs no special case.

Reassembly is what the receiving application reads, as Wireshark's Follow TCP Stream:
in-order bytes are hashed straight from the packet's buffer (`deliver`); bytes already
delivered are dropped (`overlap`: a differing retransmission is an `overlap_conflict`, the
first copy stays); segments ahead of the next expected byte wait in a bounded buffer
(`hold`, `drain`). A hole becomes a gap (metadata, never spliced text) when the receiver
acknowledges past it (`skip_to`), when the buffer would exceed its cap, or at the end
(`flush`).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Final

from analyzer.tcp.digest import Sha256, new_sha256
from analyzer.tcp.result import Chunk, Conflict

if TYPE_CHECKING:
    from analyzer.tcp.stream import Stream

MASK32: Final = 0xFFFFFFFF
HALF32: Final = 0x80000000
WRAP32: Final = 0x100000000
# Buffers in a conflict tail before they are joined into one (see `Flow.remember`).
TAIL_PIECES: Final = 32
# What holding one out-of-order segment costs beyond its payload (the bytes object's
# header, the dict entry, its tuple, the heap entry): counted against the buffer's limit,
# so that a flood of one-byte segments is bounded in memory, not only in payload bytes.
HELD_SEGMENT_COST: Final = 160


def signed32(value: int) -> int:
    """A difference of 32-bit sequence numbers, as a signed number (RFC 1982)."""
    value &= MASK32
    return value - WRAP32 if value & HALF32 else value


class Flow:
    """One direction of a connection: its sequence space and its reassembly."""

    # The fast path's attributes first: slots are laid out in this order, so they share
    # a few cache lines (memory latency dominates with thousands of live streams).
    __slots__ = (
        "steady", "next_raw", "high", "next_off", "peer", "last_ack", "last_win",
        "completeness", "hasher", "tail", "tail_len", "high_ts", "keepalive", "need_d", "need_a",
        "dup_acks", "packets", "last_seen", "pending",
        "stream", "side", "addr", "port", "seen", "isn", "syn", "bare_syn", "syn_acked",
        "acked_off", "pending_keys", "pending_bytes", "gaps", "tail_holes", "fin_off",
        "fin_frame", "rst_frame", "rst_cause", "syn_options", "syn_ts",
    )

    def __init__(self, stream: Stream, side: int, addr: bytes, port: int) -> None:
        self.stream = stream
        self.side = side
        self.peer: Flow = self  # set by the stream once both directions exist
        self.addr = addr
        self.port = port
        self.completeness = 0  # tcp.completeness bits this direction's packets set
        self.last_seen = 0.0
        self.seen = False
        self.isn = 0  # for a direction without SYN: first seq - 1, as Wireshark
        self.syn = False  # sent a SYN (with or without ACK)
        self.bare_syn = False  # sent a SYN without ACK
        self.syn_acked = False  # its SYN was acknowledged by the peer
        self.next_raw = 0  # raw seq of the next byte the receiver's application gets
        self.next_off = 0  # the same as a stream offset (0 = first data byte)
        self.high = 0  # highest sequence offset sent + 1 (Wireshark's nextseq)
        self.high_ts = 0.0  # when `high` last advanced (Wireshark's nextseqtime)
        self.acked_off = 0  # highest offset the peer acknowledged beyond next_off
        # SHA-256 of the delivered bytes, made with the first of them (digest.py): a hasher
        # is 128-290 bytes, and many directions (refused, reset, SYN floods) never send any.
        self.hasher: Sha256 | None = None
        # Containers most directions never need are made on first use (None until then):
        # thousands of connections are open at once, and each empty one is ~60 bytes.
        # Segments held ahead of a hole, by offset, and those offsets as a heap:
        self.pending: dict[int, tuple[bytes, int, float]] | None = None
        self.pending_keys: list[int] | None = None
        self.pending_bytes = 0
        self.gaps: list[tuple[int, int]] | None = None  # (offset, length) never captured
        # The last delivered buffers (references, not copies), for conflict checks.
        self.tail: list[bytes] | None = None
        self.tail_len = 0
        self.tail_holes: list[tuple[int, int]] | None = None  # gaps inside the tail (zeros)
        self.fin_off: int | None = None
        self.fin_frame: int | None = None
        self.rst_frame: int | None = None
        self.rst_cause: str | None = None
        self.last_ack = -1
        self.last_win = -1
        self.dup_acks = 0
        # The SYN's raw options, parsed only for the result (a parsed dict is ~380 bytes
        # on every open connection, the raw bytes ~60)
        self.syn_options = b""
        self.packets = 0
        self.syn_ts: float | None = None
        self.keepalive = False  # its last segment was a keep-alive
        # True when a plain in-order segment from this side needs no more than the
        # tracker's fast path (see TcpTracker.on_packet); refreshed by the slow path.
        self.steady = False
        # Zeek's D / A history marks still to be set for this side (fast path hands such
        # packets to the history; once set, data and pure ACKs add no letter)
        self.need_d = True
        self.need_a = True

    def start(self, seq: int, syn: bool) -> None:
        self.seen = True
        if syn:
            self.isn = seq
            self.next_raw = (seq + 1) & MASK32
            self.high = -1
        else:
            self.isn = (seq - 1) & MASK32
            self.next_raw = seq
            self.high = 0

    def remember(self, data: bytes, window: int) -> None:
        """Keep at least the last `window` delivered bytes; the buffers are joined only
        when a retransmission overlaps them (rare), so delivery copies nothing. Many small
        buffers (one-byte segments) are joined into one, cut to the window, every
        TAIL_PIECES of them, so that a tail never holds thousands of objects and a
        retransmission never joins thousands."""
        tail = self.tail
        if tail is None:
            tail = self.tail = []
        tail.append(data)
        size = self.tail_len + len(data)
        while size - len(tail[0]) >= window:
            size -= len(tail.pop(0))
        if len(tail) > TAIL_PIECES:
            joined = b"".join(tail)
            if size > window:
                joined = joined[size - window:]
                size = window
            tail[:] = [joined]
            holes = self.tail_holes
            if holes:
                # Holes wholly before the tail's start are compared against nothing.
                tail_start = self.next_off - size
                first = 0
                while first < len(holes) and holes[first][1] <= tail_start:
                    first += 1
                if first:
                    del holes[:first]
        self.tail_len = size

    def forget_tail(self) -> None:
        """Drop the tail (and the frames it references); a retransmission of those bytes
        is then taken without comparing it."""
        self.tail = None
        self.tail_len = 0
        self.tail_holes = None

    @property
    def delivered(self) -> int:
        """Bytes reassembled so far: the stream offset reached, minus the gaps."""
        return self.next_off - (sum(length for _, length in self.gaps) if self.gaps else 0)

    def offset_of(self, raw: int) -> int:
        """Stream offset of a raw sequence number near the reassembly frontier."""
        return self.next_off + signed32(raw - self.next_raw)


    # -- reassembly: what the receiving application reads, as Follow TCP Stream shows it ---

    def deliver(self, data: bytes, frame: int, ts: float) -> None:
        """Append in-order bytes (hashed, kept in the conflict tail, and as a Follow chunk
        when the stream is kept)."""
        size = len(data)
        hasher = self.hasher
        if hasher is None:
            hasher = self.hasher = new_sha256()
        hasher.update(data)
        self.next_off += size
        self.next_raw = (self.next_raw + size) & MASK32
        stream = self.stream
        window = stream.tracker.conflict_window
        if window:
            self.remember(data, window)
        if stream.chunks is not None:
            stream.chunks.append(Chunk(self.side == 0, frame, ts, bytes(data)))

    def overlap(self, payload: bytes, frame: int, ts: float, old: int, off: int) -> None:
        """A segment starting `old` bytes before the next expected byte (at offset `off`):
        compare what the tail still holds of those bytes (a difference is an
        overlap_conflict; the first copy stays), then take the new part."""
        captured = len(payload)
        seen = min(old, captured)
        tail = b"".join(self.tail or ())
        tail_start = self.next_off - self.tail_len
        low, high = max(off, tail_start), off + seen
        ranges = [(low, high)] if high > low else []
        holes = self.tail_holes
        if holes and ranges:
            # Holes are in offset order and disjoint: only those inside [low, high) matter,
            # found by bisection (a stream of one-byte segments can leave thousands).
            index, last = 0, len(holes)
            while index < last:
                middle = (index + last) // 2
                if holes[middle][1] <= low:
                    index = middle + 1
                else:
                    last = middle
            while index < len(holes) and holes[index][0] < high:
                hole_start, hole_end = holes[index]  # never seen: nothing to compare
                ranges = [piece for a, b in ranges
                          for piece in ((a, min(b, hole_start)), (max(a, hole_end), b))
                          if piece[1] > piece[0]]
                index += 1
        if any(tail[a - tail_start:b - tail_start] != payload[a - off:b - off]
               for a, b in ranges):
            first = tail[low - tail_start:high - tail_start]
            self.stream.conflict(Conflict(self.side == 0, frame, low, bytes(first),
                                          bytes(payload[low - off:seen])))
        if captured > old:
            self.deliver(payload[old:], frame, ts)
            if self.pending:
                self.drain()

    def hold(self, payload: bytes, off: int, frame: int, ts: float) -> None:
        """Buffer a segment that arrived ahead of the next expected byte."""
        pending, keys = self.pending, self.pending_keys
        if pending is None or keys is None:
            pending = self.pending = {}
            keys = self.pending_keys = []
        if off not in pending:
            pending[off] = (payload, frame, ts)
            heapq.heappush(keys, off)
            self.pending_bytes += len(payload) + HELD_SEGMENT_COST
        tracker = self.stream.tracker
        if self.pending_bytes > tracker.out_of_order_limit:
            tracker.warn(f"tcp stream {self.stream.number}: out-of-order buffer over "
                         f"{tracker.out_of_order_limit} bytes; gap recorded")
            self.skip_to(keys[0])
        elif self.acked_off > self.next_off:
            self.skip_to(self.data_limit(self.acked_off))

    def drain(self) -> None:
        """Deliver buffered segments that the frontier has reached."""
        keys = self.pending_keys
        pending = self.pending
        if keys is None or pending is None:
            return
        while keys and keys[0] <= self.next_off:
            key = heapq.heappop(keys)
            data, frame, ts = pending.pop(key)
            self.pending_bytes -= len(data) + HELD_SEGMENT_COST
            skip = self.next_off - key
            if skip < len(data):
                self.deliver(data[skip:] if skip else data, frame, ts)

    def gap(self, length: int) -> None:
        """`length` bytes at the frontier that the capture never saw: metadata, not data."""
        if self.gaps is None:
            self.gaps = []
        self.gaps.append((self.next_off, length))
        self.next_off += length
        self.next_raw = (self.next_raw + length) & MASK32
        window = self.stream.tracker.conflict_window
        if window and length <= window:
            # Keep the tail contiguous: zeros for the hole, remembered as a hole.
            # (holes that fall out of the tail are pruned by `remember`)
            holes = self.tail_holes
            if holes is None:
                holes = self.tail_holes = []
            holes.append((self.next_off - length, self.next_off))
            self.remember(bytes(length), window)
        else:
            self.forget_tail()
        self.stream.history.count(self.side, "G")

    def skip_to(self, target: int) -> None:
        """The receiver has everything before `target`: holes before it are gaps."""
        keys = self.pending_keys
        while self.next_off < target and keys:
            first = keys[0]
            if first > self.next_off:
                self.gap(min(first, target) - self.next_off)
            self.drain()

    def data_limit(self, offset: int) -> int:
        """An acknowledged offset, not counting the FIN's sequence number."""
        if self.fin_off is not None and offset > self.fin_off:
            return self.fin_off
        return offset

    def flush(self) -> None:
        """The end: buffered segments delivered across their holes, and what the peer
        acknowledged (or the FIN announced) beyond the last byte seen made a gap."""
        limit = self.data_limit(max(self.acked_off, self.fin_off or 0))
        keys = self.pending_keys
        while keys:
            if keys[0] > self.next_off:
                self.gap(keys[0] - self.next_off)
            self.drain()
        if limit > self.next_off:
            self.gap(limit - self.next_off)
