"""One direction of a TCP connection (`Flow`): its sequence space, its reassembly state
and the little the analysis remembers of its last segments; plus 32-bit sequence arithmetic.

Plain state, read and written by `stream.Stream` (the full analysis of a packet) and by
the tracker's fast path (tracker.py), which is why the attributes the fast path touches
come first. 32-bit sequence numbers become unbounded stream offsets (0 = first data byte)
through `offset_of`, so wraparound past 2**32 needs no special case.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from analyzer.tcp.digest import Sha256

if TYPE_CHECKING:
    from analyzer.tcp.stream import Stream

MASK32: Final = 0xFFFFFFFF
HALF32: Final = 0x80000000
WRAP32: Final = 0x100000000


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
        when a retransmission overlaps them (rare), so delivery copies nothing."""
        tail = self.tail
        if tail is None:
            tail = self.tail = []
        tail.append(data)
        size = self.tail_len + len(data)
        while size - len(tail[0]) >= window:
            size -= len(tail.pop(0))
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

