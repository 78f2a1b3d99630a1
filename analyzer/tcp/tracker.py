"""The sans-IO TCP tracker: packets in, one `TcpStreamResult` per connection out.

Theory of operation
-------------------
`TcpTracker.on_packet` is the hot path of the whole product. Both directions of every
connection are in one dict keyed by `Packet.key` (addresses, ports), each pointing at
its direction's `_Flow`; a fast path handles the common packet (an ACK, maybe with in-order
data, in a settled connection) with integer arithmetic and one hash update. Everything
else goes to `_Stream.on_packet`, which runs the full analysis.

Streams are numbered exactly as Wireshark numbers `tcp.stream`: in order of the first
packet of each conversation; a SYN (without ACK) whose sequence number differs from the
one already seen in its direction starts a new conversation on the same 4-tuple (port
reuse, Wireshark 4.0's rule).

Each direction (`_Flow`) reassembles what the receiving application reads, the way
Wireshark's Follow TCP Stream does: in-order bytes are hashed straight from the packet's
buffer; bytes already delivered are dropped (a differing retransmission is an
`overlap_conflict`, the first copy stays); segments ahead of the next expected byte wait in
a bounded buffer. A hole becomes a gap (metadata, never spliced text) when the receiver
acknowledges past it, when the buffer would exceed its cap, or at the end of the capture.
32-bit sequence numbers become unbounded stream offsets (0 = first data byte), so
wraparound past 2**32 needs no special case.

Directions are numbered 0 (sender of the stream's first packet) and 1; the result speaks
of client and server (SPEC: the sender of the first SYN without ACK, else direction 0).

Memory: by default no stream data is kept: only the hashes (made with a direction's first
byte), a small tail per direction for conflict checks (freed at close or when the stream
goes quiet), and the bounded out-of-order buffer. Closed streams are finished after
`closed_timeout` capture seconds, idle open ones after `idle_timeout` (or when over
`max_active`); an open stream quiet for `park_timeout` is parked meanwhile (frozen into a
compressed record in a store that `read` keeps on disk, thawed by its next packet; a
stream of one packet without data, a scan's probe, after `lone_park_timeout`, as that
packet); a finished stream leaves a
33-byte tombstone (tombstones.py) for `tombstone_timeout`, so late packets stay in their
stream. Sweeps for all this visit every tracked stream, so they come once a quarter more
streams have opened than are tracked, or every few capture seconds: a SYN scan with 100k
streams open costs the same per stream as a quiet link.
Per-packet records and Follow chunks are kept only for the streams asked for (`keep`).
"""

from __future__ import annotations

import hashlib
import heapq
import marshal
import struct
import zlib
from collections.abc import Callable, Collection
from typing import Final, Protocol

from analyzer.decode.packet import ACK as _ACK
from analyzer.decode.packet import FIN as _FIN
from analyzer.decode.packet import (
    PROTO_TCP,
    Packet,
    flow_key,
    format_endpoint,
    parse_tcp_options,
    split_flow_key,
)
from analyzer.decode.packet import RST as _RST
from analyzer.decode.packet import SYN as _SYN
from analyzer.tcp import completeness as comp
from analyzer.tcp import lifecycle as lc
from analyzer.tcp import zeek
from analyzer.tcp.digest import SAVABLE, Sha256, new_sha256, resume, save
from analyzer.tcp.result import (
    ANALYSIS_KEYS,
    Chunk,
    Conflict,
    Gap,
    PacketRecord,
    SideInfo,
    TcpStreamResult,
)
from analyzer.tcp.tombstones import NONE, Tombstones, isn_of, pack_isns

EMPTY_SHA256: Final = hashlib.sha256().hexdigest()
MASK32: Final = 0xFFFFFFFF
HALF32: Final = 0x80000000
WRAP32: Final = 0x100000000


# Event codes recorded on packets of kept streams (views turn them into words); the
# analysis kinds appear too, spelled with dashes ("dup-ack", "lost-segment", ...).
EVENT_SYN: Final = "syn"  # opening SYN
EVENT_SYN_ACK: Final = "syn-ack"
EVENT_HANDSHAKE_ACK: Final = "handshake-ack"
EVENT_SYN_DATA: Final = "syn-data"
EVENT_SIMULTANEOUS_OPEN: Final = "simultaneous-open"
EVENT_ACTIVE_FIN: Final = "active-fin"  # first FIN of the connection
EVENT_PASSIVE_FIN: Final = "passive-fin"
EVENT_SIMULTANEOUS_CLOSE: Final = "simultaneous-close"
EVENT_FIN_ACKED: Final = "fin-acked"
EVENT_RST: Final = "rst"
EVENT_REFUSED: Final = "refused"
EVENT_PORT_REUSE: Final = "port-reuse"

# Wireshark's default out-of-order threshold when the RTT is unknown (seconds).
OUT_OF_ORDER_THRESHOLD: Final = 0.003
# New streams between sweeps, at least (see TcpTracker._sweep_at_number).
SWEEP_STREAMS: Final = 1024
# A parked stream's record (see _Stream.freeze) starts with its number and whether it is
# a lone packet; then, if so, that packet without what its key says (frame, ts,
# interface, seq, ack, flags, window, whether it reused a finished stream's ports) and its
# TCP options; else the compressed state.
_PARKED: Final = struct.Struct("<q?")
_LONE: Final = struct.Struct("<QdIIIHH?")
# The tracker's index of parked streams holds, per stream, the store's handle and the
# stream's last packet time (the float's bits, exact) as one int (see _parked_entry).
_END: Final = struct.Struct("<d")
_END_BITS: Final = 64
_END_MASK: Final = (1 << 64) - 1

# Completeness bits by (flags & (FIN|SYN|RST|ACK)) + 32 * has_payload.
_COMPLETENESS: Final = [comp.on_packet(i & 0x17, i >> 5) for i in range(64)]


# What a parked stream keeps (see TcpTracker._park): every attribute of these classes but
# the ones thawing makes anew (references, the hashers, kept records, the conflict tail,
# which parking drops as any stream this quiet drops it). tests/tcp/test_parking.py
# checks these lists against the classes' attributes, so none can be forgotten here.
_STREAM_STATE: Final = (
    "start", "completeness", "states", "watch", "first_flags", "labels",
    "analysis", "established", "rtt", "first_fin_side", "closed", "syn_side", "first_frame",
)
_STREAM_REMADE: Final = (  # (the number is the record's own, the keys its index's)
    "number", "keys", "tracker", "flows", "history", "zeek_states", "records", "chunks",
    "conflicts", "lone",
)
_FLOW_STATE: Final = (
    "steady", "next_raw", "high", "next_off", "last_ack", "last_win", "completeness",
    "high_ts", "keepalive", "need_d", "need_a", "dup_acks", "packets", "last_seen",
    "pending", "side", "addr", "port", "seen", "isn", "syn", "bare_syn", "syn_acked",
    "acked_off", "pending_keys", "pending_bytes", "gaps", "fin_off", "fin_frame",
    "rst_frame", "rst_cause", "syn_options", "syn_ts",
)
_FLOW_REMADE: Final = ("stream", "peer", "hasher", "tail", "tail_len", "tail_holes")
_HISTORY_STATE: Final = ("letters", "marks", "last", "counts")


def _signed32(value: int) -> int:
    value &= MASK32
    return value - WRAP32 if value & HALF32 else value


def _parked_entry(handle: int, end: float) -> int:
    """A parked stream's index value: its store handle and its end time, exactly."""
    return handle << _END_BITS | int.from_bytes(_END.pack(end), "little")


def _parked_end(entry: int) -> float:
    end: float = _END.unpack((entry & _END_MASK).to_bytes(8, "little"))[0]
    return end


class _Flow:
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

    def __init__(self, stream: _Stream, side: int, addr: bytes, port: int) -> None:
        self.stream = stream
        self.side = side
        self.peer: _Flow = self  # set by the stream once both directions exist
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
        return self.next_off + _signed32(raw - self.next_raw)


class _Stream:
    """One TCP conversation while it is being tracked."""

    __slots__ = (
        "tracker", "number", "keys", "flows", "start", "completeness",
        "states", "watch", "history", "zeek_states", "first_flags", "labels", "analysis",
        "records", "chunks", "conflicts", "established", "rtt", "first_fin_side",
        "closed", "syn_side", "first_frame", "lone",
    )

    def __init__(self, tracker: TcpTracker, number: int, pkt: Packet, keep: bool,
                 reused: bool) -> None:
        self.tracker = tracker
        self.number = number
        self.keys = (pkt.key, flow_key(pkt.dst, pkt.dport, pkt.src, pkt.sport))
        self.flows = (_Flow(self, 0, pkt.src, pkt.sport), _Flow(self, 1, pkt.dst, pkt.dport))
        self.flows[0].peer = self.flows[1]
        self.flows[1].peer = self.flows[0]
        self.start = pkt.ts
        self.first_frame = pkt.frame
        flags = pkt.flags
        self.first_flags = flags
        self.completeness = comp.creation_bits(flags, pkt.payload_len)  # on_packet adds the rest
        self.states = list(lc.initial_states(bool(flags & _SYN), bool(flags & _ACK)))
        self.watch = True
        self.history = zeek.ZeekHistory()
        self.zeek_states = zeek.ZeekEndpoints()
        # a tuple, as most streams have no label: the empty one costs nothing (a set: 216
        # bytes); duplicates are dropped when the result is made
        self.labels: tuple[str, ...] = ("port-reuse",) if reused else ()
        if not flags & _SYN:
            self.labels += ("midstream",)
        # analysis flags that occurred, with their counts; None until the first (most
        # streams have none: even an empty dict is 64 bytes on every open connection)
        self.analysis: dict[str, int] | None = None
        self.records: list[PacketRecord] | None = [] if keep else None
        self.chunks: list[Chunk] | None = [] if keep else None
        self.conflicts: list[Conflict] | None = None  # made on the first
        self.established = False
        self.rtt: float | None = None
        self.first_fin_side: int | None = None
        self.closed = False  # FIN both ways or a RST: evictable sooner
        self.syn_side: int | None = None
        # The first packet while it is the only one, if it carries no data (a scan's
        # SYN): such a stream is parked as that packet and thawed by replaying it.
        self.lone: Packet | None = None if pkt.payload_len or keep else pkt

    # -- one packet, fully analyzed (the tracker's fast path handles the plain ones) ------

    def on_packet(self, pkt: Packet, side: int) -> None:
        """Everything about one packet: lifecycle, analysis, reassembly, Zeek, records."""
        flags = pkt.flags
        flow = self.flows[side]
        peer = self.flows[side ^ 1]
        length = pkt.payload_len
        ts = pkt.ts
        seq = pkt.seq
        flow.packets += 1
        flow.last_seen = ts
        flow.completeness |= _COMPLETENESS[(flags & 0x17) + (32 if length else 0)]
        if self.lone is not None and pkt is not self.lone:
            self.lone = None  # not alone any more: `freeze` needs the whole state
        events: list[str] | None = [] if self.records is not None else None
        syn = flags & _SYN
        if not flow.seen:
            flow.start(seq, bool(syn))
        if flags & 0x07:
            self._control(pkt, side, flow, peer, events)

        d = _signed32((seq + 1 if syn else seq) - flow.next_raw)
        off = flow.next_off + d

        if flags & _ACK:
            ack = pkt.ack
            if peer.seen:
                da = _signed32(ack - peer.next_raw)
                if da > 0:
                    a_off = peer.next_off + da
                    # Acknowledges bytes never captured: beyond all the peer sent, or
                    # across a hole in front of its buffered segments.
                    if (a_off > peer.high or peer.pending) and not flags & _RST:
                        self._flag("acked_unseen")
                        if events is not None:
                            events.append("acked-unseen")
                    if a_off > peer.acked_off:
                        peer.acked_off = a_off
                        if peer.pending:
                            self._skip_to(peer, side ^ 1, self._data_limit(peer, a_off))
                if not self.established:
                    self._check_handshake(pkt, side, flow, peer, events)
            if length == 0 and not flags & 0x07:
                # Wireshark: same ack and window as the previous segment, seq at nextseq,
                # not the ACK of a keep-alive.
                if ack == flow.last_ack and pkt.window == flow.last_win and pkt.window and \
                        off == flow.high and not peer.keepalive:
                    self._flag("dup_ack")
                    flow.dup_acks += 1
                    if events is not None:
                        events.append("dup-ack")
                elif ack != flow.last_ack:
                    flow.dup_acks = 0
            flow.last_ack = ack
            flow.last_win = pkt.window

        if pkt.window == 0 and not flags & 0x07:
            self._flag("zero_window")
            self.history.count(side, "W")
            if events is not None:
                events.append("zero-window")

        if not flags & _RST:
            fin = flags & _FIN
            start = off - 1 if syn else off
            end = off + length + (1 if fin else 0)
            high = flow.high
            keep_alive = length <= 1 and not flags & 0x07 and start == high - 1
            if end > start or keep_alive:
                flow.keepalive = keep_alive
            if keep_alive:
                self._flag("keep_alive")
                if events is not None:
                    events.append("keep-alive")
            elif end > start:
                if start > high:
                    self._flag("lost_segment")
                    if events is not None:
                        events.append("lost-segment")
                elif start < high:
                    self._classify_old_segment(pkt, side, flow, peer, end, high, events)
                if end > high:
                    flow.high = end
                    flow.high_ts = ts
        else:
            keep_alive = False
        # A RST's payload (its "cause") is stream data too: Follow shows it.
        if length and not keep_alive:
            payload = pkt.payload
            if d == 0:
                self._deliver(flow, side, payload, pkt.frame, ts)
                if flow.pending:
                    self._drain(flow, side)
            elif d < 0:
                self._overlap(pkt, flow, side, -d, off)
            elif len(payload):
                self._hold(flow, side, payload, off, pkt.frame, ts)

        history = self.history
        if flags & 0x07 or history.marks[side] & zeek.MARKS_DATA_AND_ACK != \
                zeek.MARKS_DATA_AND_ACK:
            history.on_packet(side, flags, seq, length)
        if flags & 0x07 or not self.zeek_states.idle:
            self.zeek_states.on_packet(side, flags, length)

        if events is not None:
            self._record(pkt, side, flow, peer, events)
        elif self.watch and not flags & 0x07 and flags & _ACK:
            self._lifecycle_ack(pkt, side, flow, peer, None)
        self._refresh_steady()

    @property
    def end(self) -> float:
        return max(self.flows[0].last_seen, self.flows[1].last_seen)

    def _flag(self, kind: str) -> None:
        """Count one analysis flag (a key of result.ANALYSIS_KEYS)."""
        analysis = self.analysis
        if analysis is None:
            analysis = self.analysis = {}
        analysis[kind] = analysis.get(kind, 0) + 1

    def _refresh_steady(self) -> None:
        """Which directions the fast path may handle until the next slow-path packet."""
        first, second = self.flows
        marks = self.history.marks
        steady = self.records is None and not self.watch and self.zeek_states.idle and \
            first.seen and second.seen
        first.steady = second.steady = steady
        for side, flow in enumerate(self.flows):
            flow.need_d = not marks[side] & zeek.MARK_DATA
            flow.need_a = not marks[side] & zeek.MARK_ACK

    def history_fast(self, flow: _Flow, flags: int, seq: int, length: int) -> None:
        """Zeek's D or A mark for a fast-path packet (the first of each kind only)."""
        history = self.history
        history.on_packet(flow.side, flags, seq, length)
        marks = history.marks[flow.side]
        flow.need_d = not marks & zeek.MARK_DATA
        flow.need_a = not marks & zeek.MARK_ACK

    # -- rarer paths --------------------------------------------------------------------

    def _control(self, pkt: Packet, side: int, flow: _Flow, peer: _Flow,
                 events: list[str] | None) -> None:
        """SYN, FIN and RST bookkeeping, and the lifecycle state machine."""
        flags = pkt.flags
        states = self.states
        mine, theirs = states[side], states[side ^ 1]
        if flags & _SYN:
            if not flow.syn:
                flow.syn = True
                flow.syn_ts = pkt.ts
                flow.syn_options = pkt.tcp_options
            if pkt.payload_len:
                self.labels += ("syn-data",)
                if events is not None:
                    events.append(EVENT_SYN_DATA)
            if flags & _ACK:
                mine = lc.step(mine, lc.SEND_SYNACK)
                if events is not None:
                    events.append(EVENT_SYN_ACK)
            else:
                if self.syn_side is None:
                    self.syn_side = side
                if peer.bare_syn and not flow.bare_syn:
                    self.labels += ("simultaneous-open",)
                    if events is not None:
                        events.append(EVENT_SIMULTANEOUS_OPEN)
                flow.bare_syn = True
                mine = lc.step(mine, lc.SEND_SYN)
                if events is not None:
                    events.append(EVENT_SYN)
        if flags & _FIN:
            fin_off = flow.offset_of(pkt.seq + (1 if flags & _SYN else 0)) + pkt.payload_len
            first_fin = flow.fin_off is None
            if first_fin:
                flow.fin_off = fin_off
                flow.fin_frame = pkt.frame
            crossed = None
            if first_fin and peer.fin_off is not None and flags & _ACK and \
                    peer.seen and peer.offset_of(pkt.ack) <= peer.fin_off:
                crossed = lc.closing_crossed_fin(mine)
                self.labels += ("simultaneous-close",)
                if events is not None:
                    events.append(EVENT_SIMULTANEOUS_CLOSE)
            if first_fin and events is not None and crossed is None:
                events.append(EVENT_ACTIVE_FIN if self.first_fin_side is None
                              else EVENT_PASSIVE_FIN)
            if self.first_fin_side is None:
                self.first_fin_side = side
            mine = crossed if crossed else lc.step(mine, lc.SEND_FIN)
            if peer.fin_off is not None:
                self._closed()
        if flags & _RST:
            self._closed()
            if flow.rst_frame is None:
                flow.rst_frame = pkt.frame
                if pkt.payload_len and len(pkt.payload):
                    flow.rst_cause = bytes(pkt.payload[:200]).decode("utf-8", "replace")
            if peer.bare_syn and not flow.syn and not self.established:
                self.labels += ("refused",)
                if events is not None:
                    events.append(EVENT_REFUSED)
            elif events is not None:
                events.append(EVENT_RST)
            mine = lc.step(mine, lc.SEND_RST)
        states[side] = mine
        states[side ^ 1] = theirs
        self._lifecycle_ack(pkt, side, flow, peer, events)
        theirs = states[side ^ 1]
        if flags & _SYN and not flags & _ACK:
            theirs = lc.step(theirs, lc.RCV_SYN)
        if flags & _FIN:
            theirs = lc.step(theirs, lc.RCV_FIN)
        if flags & _RST:
            theirs = lc.step(theirs, lc.RCV_RST)
        states[side ^ 1] = theirs
        self.watch = states[0] in lc.WAITING_FOR_ACK or states[1] in lc.WAITING_FOR_ACK

    def _closed(self) -> None:
        """FIN both ways or a RST: no more data is expected."""
        self.closed = True
        self.forget_tails()

    def forget_tails(self) -> None:
        """Free both directions' conflict tails (see `_Flow.forget_tail`)."""
        for flow in self.flows:
            flow.forget_tail()

    def _lifecycle_ack(self, pkt: Packet, side: int, flow: _Flow, peer: _Flow,
                       events: list[str] | None) -> None:
        """The receiver's transitions driven by the ACK field."""
        flags = pkt.flags
        if not flags & _ACK:
            return
        states = self.states
        theirs = states[side ^ 1]
        ack = pkt.ack
        if theirs in (lc.SYN_SENT, lc.SYN_RECEIVED) and (
                # a SYN-ACK captured before the SYN it answers acknowledges it too
                _signed32(ack - peer.isn - 1) >= 0 if peer.syn else flags & _SYN):
            theirs = lc.step(theirs, lc.RCV_SYNACK if flags & _SYN else lc.RCV_ACK_OF_SYN)
        if peer.fin_off is not None and peer.offset_of(ack) > peer.fin_off and \
                theirs in (lc.FIN_WAIT_1, lc.CLOSING, lc.LAST_ACK):
            theirs = lc.step(theirs, lc.RCV_ACK_OF_FIN)
            if events is not None:
                events.append(EVENT_FIN_ACKED)
        states[side ^ 1] = theirs
        self.watch = states[0] in lc.WAITING_FOR_ACK or states[1] in lc.WAITING_FOR_ACK

    def _check_handshake(self, pkt: Packet, side: int, flow: _Flow, peer: _Flow,
                         events: list[str] | None) -> None:
        """Marks SYNs acknowledged; the handshake completes when both are."""
        if peer.syn and not peer.syn_acked and _signed32(pkt.ack - peer.isn - 1) >= 0:
            peer.syn_acked = True
        if flow.syn and not flow.syn_acked and peer.last_ack >= 0 and \
                _signed32(peer.last_ack - flow.isn - 1) >= 0:
            # The peer's SYN-ACK was captured before our SYN (reordered handshake).
            flow.syn_acked = True
        if flow.syn_acked and peer.syn_acked and not pkt.flags & _SYN:
            self.established = True
            first_syn = self.flows[self.syn_side].syn_ts if self.syn_side is not None else None
            if first_syn is not None:
                self.rtt = pkt.ts - first_syn
            if events is not None:
                events.append(EVENT_HANDSHAKE_ACK)

    def _classify_old_segment(self, pkt: Packet, side: int, flow: _Flow, peer: _Flow,
                              end: int, high: int, events: list[str] | None) -> None:
        """A segment starting below the highest sequence seen: which kind of resend.

        Wireshark's rule: out-of-order when it comes within the initial RTT (3 ms while
        unknown) of the segment that advanced the highest sequence, and does not end
        exactly there; fast retransmission after 2+ duplicate ACKs asking for it."""
        threshold = self.rtt if self.rtt else OUT_OF_ORDER_THRESHOLD
        if peer.dup_acks >= 2 and peer.last_ack == pkt.seq:
            kind = "fast_retransmission"
            self._flag("retransmission")
        elif pkt.ts - flow.high_ts < threshold and end != high:
            kind = "out_of_order"
        else:
            kind = "retransmission"
        self._flag(kind)
        if pkt.payload_len and kind != "out_of_order":
            self.history.count(side, "T")
        if events is not None:
            events.append(kind.replace("_", "-"))

    def _deliver(self, flow: _Flow, side: int, data: bytes, frame: int,
                 ts: float) -> None:
        """Append in-order bytes to a direction."""
        size = len(data)
        hasher = flow.hasher
        if hasher is None:
            hasher = flow.hasher = new_sha256()
        hasher.update(data)
        flow.next_off += size
        flow.next_raw = (flow.next_raw + size) & MASK32
        window = self.tracker.conflict_window
        if window:
            flow.remember(data, window)
        if self.chunks is not None:
            self.chunks.append(Chunk(side == 0, frame, ts, bytes(data)))

    def _overlap(self, pkt: Packet, flow: _Flow, side: int, old: int, off: int) -> None:
        """A segment starting before the next expected byte: compare, then take the new part."""
        payload = pkt.payload
        captured = len(payload)
        seen = min(old, captured)
        tail = b"".join(flow.tail or ())
        tail_start = flow.next_off - flow.tail_len
        low, high = max(off, tail_start), off + seen
        ranges = [(low, high)] if high > low else []
        for hole_start, hole_end in flow.tail_holes or ():  # never seen: nothing to compare
            ranges = [piece for a, b in ranges
                      for piece in ((a, min(b, hole_start)), (max(a, hole_end), b))
                      if piece[1] > piece[0]]
        if any(tail[a - tail_start:b - tail_start] != payload[a - off:b - off]
               for a, b in ranges):
            first = tail[low - tail_start:high - tail_start]
            self._flag("overlap_conflict")
            if self.conflicts is None:
                self.conflicts = []
            self.conflicts.append(Conflict(side == 0, pkt.frame, low, bytes(first),
                                           bytes(payload[low - off:seen])))
        if captured > old:
            self._deliver(flow, side, payload[old:], pkt.frame, pkt.ts)
            if flow.pending:
                self._drain(flow, side)

    def _hold(self, flow: _Flow, side: int, payload: bytes, off: int,
              frame: int, ts: float) -> None:
        """Buffer a segment that arrived ahead of the next expected byte."""
        pending, keys = flow.pending, flow.pending_keys
        if pending is None or keys is None:
            pending = flow.pending = {}
            keys = flow.pending_keys = []
        if off not in pending:
            pending[off] = (payload, frame, ts)
            heapq.heappush(keys, off)
            flow.pending_bytes += len(payload)
        if flow.pending_bytes > self.tracker.out_of_order_limit:
            self.tracker.warn(f"tcp stream {self.number}: out-of-order buffer over "
                              f"{self.tracker.out_of_order_limit} bytes; gap recorded")
            self._skip_to(flow, side, keys[0])
        elif flow.acked_off > flow.next_off:
            self._skip_to(flow, side, self._data_limit(flow, flow.acked_off))

    def _drain(self, flow: _Flow, side: int) -> None:
        """Deliver buffered segments that the frontier has reached."""
        keys = flow.pending_keys
        pending = flow.pending
        if keys is None or pending is None:
            return
        while keys and keys[0] <= flow.next_off:
            key = heapq.heappop(keys)
            data, frame, ts = pending.pop(key)
            flow.pending_bytes -= len(data)
            skip = flow.next_off - key
            if skip < len(data):
                self._deliver(flow, side, data[skip:] if skip else data, frame, ts)

    def _gap(self, flow: _Flow, side: int, length: int) -> None:
        if flow.gaps is None:
            flow.gaps = []
        flow.gaps.append((flow.next_off, length))
        flow.next_off += length
        flow.next_raw = (flow.next_raw + length) & MASK32
        window = self.tracker.conflict_window
        if window and length <= window:
            # Keep the tail contiguous: zeros for the hole, remembered as a hole.
            tail_start = flow.next_off - length - flow.tail_len
            holes = [h for h in flow.tail_holes or () if h[1] > tail_start]
            holes.append((flow.next_off - length, flow.next_off))
            flow.tail_holes = holes
            flow.remember(bytes(length), window)
        else:
            flow.forget_tail()
        self.history.count(side, "G")

    def _skip_to(self, flow: _Flow, side: int, target: int) -> None:
        """The receiver has everything before `target`: holes before it are gaps."""
        keys = flow.pending_keys
        while flow.next_off < target and keys:
            first = keys[0]
            if first > flow.next_off:
                self._gap(flow, side, min(first, target) - flow.next_off)
            self._drain(flow, side)

    @staticmethod
    def _data_limit(flow: _Flow, offset: int) -> int:
        """An acknowledged offset, not counting the FIN's sequence number."""
        if flow.fin_off is not None and offset > flow.fin_off:
            return flow.fin_off
        return offset

    def _record(self, pkt: Packet, side: int, flow: _Flow, peer: _Flow,
                events: list[str]) -> None:
        if self.watch and not pkt.flags & 0x07 and pkt.flags & _ACK:
            self._lifecycle_ack(pkt, side, flow, peer, events)
        assert self.records is not None
        self.records.append(PacketRecord(
            frame=pkt.frame, ts=pkt.ts, from_client=side == 0, flags=pkt.flags,
            seq=pkt.seq, ack=pkt.ack, length=pkt.payload_len, window=pkt.window,
            client_state=self.states[0], server_state=self.states[1], events=events,
            options=parse_tcp_options(pkt.tcp_options) if pkt.flags & _SYN else None,
            payload=bytes(pkt.payload)))

    # -- parked while quiet (see TcpTracker._park) --------------------------------------

    def freeze(self) -> tuple[bytes, tuple[Sha256 | None, Sha256 | None] | None]:
        """This stream's state as one record of bytes (see `TcpTracker._park`), the
        hashers' states in it where they can be saved (digest.py); else they come back
        beside it, as objects. The conflict tails are dropped first. A stream that has
        seen nothing but its `lone` first packet is parked as that packet: a third of the
        memory and of the time (a SYN scan parks every stream)."""
        first, second = self.flows
        lone = self.lone
        if lone is not None and first.packets == 1 and not second.packets:
            return (_PARKED.pack(self.number, True) +
                    _LONE.pack(lone.frame, lone.ts, lone.interface, lone.seq, lone.ack,
                               lone.flags, lone.window, "port-reuse" in self.labels) +
                    lone.tcp_options), None
        self.forget_tails()
        history = self.history
        hashers: tuple[Sha256 | None, Sha256 | None] | None = None
        saved: tuple[bytes | None, bytes | None] = (None, None)
        if SAVABLE:
            saved = (save(first.hasher) if first.hasher is not None else None,
                     save(second.hasher) if second.hasher is not None else None)
        elif first.hasher is not None or second.hasher is not None:
            hashers = (first.hasher, second.hasher)
        state = (
            tuple([getattr(self, name) for name in _STREAM_STATE]),
            tuple([getattr(first, name) for name in _FLOW_STATE]),
            tuple([getattr(second, name) for name in _FLOW_STATE]),
            tuple([getattr(history, name) for name in _HISTORY_STATE]),
            tuple(self.zeek_states.states),
            [tuple(c) for c in self.conflicts] if self.conflicts is not None else None,
            saved,
        )
        return (_PARKED.pack(self.number, False) +
                zlib.compress(marshal.dumps(state), 1)), hashers

    @staticmethod
    def thaw(tracker: TcpTracker, key: bytes, record: bytes,
             hashers: tuple[Sha256 | None, Sha256 | None] | None) -> _Stream:
        """The stream `freeze` made `record` (and `hashers`) from, as it was; `key`: its
        first direction's."""
        number, lone_packet = _PARKED.unpack_from(record)
        body = _PARKED.size
        src, sport, dst, dport = split_flow_key(key)
        version = 4 if len(src) == 4 else 6
        if lone_packet:  # the packet again, and what TcpTracker._open did with it
            frame, ts, interface, seq, ack, flags, window, reused = _LONE.unpack_from(
                record, body)
            lone = Packet(frame, ts, interface, version, src, dst, PROTO_TCP, sport, dport,
                          b"", 0, seq, ack, flags, window, record[body + _LONE.size:], key)
            stream = _Stream(tracker, number, lone, False, reused)
            stream.on_packet(lone, 0)
            return stream
        state = marshal.loads(zlib.decompress(record[body:]))
        # The constructor takes the stream's first packet: one with the same addresses and
        # ports; every attribute is then set from the state.
        template = Packet(0, 0.0, 0, version, src, dst, PROTO_TCP, sport, dport, b"", 0,
                          key=key)
        stream = _Stream(tracker, number, template, False, False)
        stream.lone = None
        for name, value in zip(_STREAM_STATE, state[0], strict=True):
            setattr(stream, name, value)
        objects = hashers if hashers is not None else (None, None)
        for flow, values, hasher, saved in zip(stream.flows, state[1:3], objects, state[6],
                                               strict=True):
            for name, value in zip(_FLOW_STATE, values, strict=True):
                setattr(flow, name, value)
            flow.hasher = resume(saved) if saved is not None else hasher
        for name, value in zip(_HISTORY_STATE, state[3], strict=True):
            setattr(stream.history, name, value)
        stream.zeek_states.states = list(state[4])
        if state[5] is not None:
            stream.conflicts = [Conflict(*c) for c in state[5]]
        return stream

    # -- the end --------------------------------------------------------------------------

    def finish(self, evicted: bool = False) -> TcpStreamResult:
        for side, flow in enumerate(self.flows):
            if not flow.seen:
                continue
            limit = self._data_limit(flow, max(flow.acked_off, flow.fin_off or 0))
            keys = flow.pending_keys
            while keys:
                if keys[0] > flow.next_off:
                    self._gap(flow, side, keys[0] - flow.next_off)
                self._drain(flow, side)
            if limit > flow.next_off:
                self._gap(flow, side, limit - flow.next_off)
        if self.syn_side is not None:
            client_side = self.syn_side
        elif self.flows[0].syn != self.flows[1].syn:
            # Only a SYN-ACK: its receiver is the client (still a guess: no SYN seen).
            client_side = 1 if self.flows[0].syn else 0
        else:
            client_side = 0  # SPEC: the first packet's sender
        return self._result(client_side, evicted)

    def _result(self, client_side: int, evicted: bool) -> TcpStreamResult:
        server_side = client_side ^ 1
        sides = []
        for side in (client_side, server_side):
            flow = self.flows[side]
            hasher = flow.hasher
            sides.append(SideInfo(
                endpoint=format_endpoint(flow.addr, flow.port),
                isn=flow.isn if flow.syn else None, syn_options=flow.syn_options,
                packets=flow.packets, bytes=flow.delivered,
                sha256=hasher.hexdigest() if hasher is not None else EMPTY_SHA256,
                fin_frame=flow.fin_frame, rst_frame=flow.rst_frame,
                rst_cause=flow.rst_cause))
        client, server = sides
        cflow, sflow = self.flows[client_side], self.flows[server_side]
        if self.established and cflow.bare_syn:
            handshake = "complete"
        elif cflow.syn or sflow.syn:
            handshake = "incomplete"
        else:
            handshake = "none"
        if cflow.rst_frame is not None or sflow.rst_frame is not None:
            close = "rst"
        elif cflow.fin_off is not None and sflow.fin_off is not None:
            close = "fin"
        elif cflow.fin_off is not None or sflow.fin_off is not None:
            close = "half"
        else:
            close = "none"
        labels = set(self.labels)
        if "refused" not in labels:
            if cflow.rst_frame is not None:
                labels.add("reset-by-client")
            if sflow.rst_frame is not None:
                labels.add("reset-by-server")
        history = self.history.text(client_side, flipped=client_side != 0)
        zstates = self.zeek_states.states
        conn_state = zeek.conn_state(zstates[client_side], zstates[server_side],
                                     cflow.delivered, sflow.delivered, history)
        gaps = [Gap(side == client_side, off, length)
                for side in (client_side, server_side)
                for off, length in self.flows[side].gaps or ()]
        records = self.records
        chunks = self.chunks
        if records is not None:
            client_isn = cflow.isn
            server_isn = sflow.isn
            for rec in records:
                from_client = rec.from_client == (client_side == 0)
                own, other = (client_isn, server_isn) if from_client else (server_isn, client_isn)
                rec.rel_seq = (rec.seq - own) & MASK32
                rec.rel_ack = (rec.ack - other) & MASK32 if rec.flags & _ACK else 0
                if client_side != 0:
                    rec.client_state, rec.server_state = rec.server_state, rec.client_state
                rec.from_client = from_client
        if chunks is not None and client_side != 0:
            chunks = [c._replace(from_client=not c.from_client) for c in chunks]
        conflicts = [c._replace(from_client=c.from_client == (client_side == 0))
                     for c in self.conflicts or ()]
        counts = self.analysis or {}
        analysis = {key: counts.get(key, 0) for key in ANALYSIS_KEYS}
        active = None
        if self.first_fin_side is not None:
            active = "client" if self.first_fin_side == client_side else "server"
        return TcpStreamResult(
            stream=self.number, client=client, server=server,
            direction_guessed=self.syn_side is None, packets=cflow.packets + sflow.packets,
            start=self.start, end=self.end, handshake=handshake, close=close,
            labels=sorted(labels),
            completeness=self.completeness | cflow.completeness | sflow.completeness,
            history=history,
            conn_state=conn_state, gaps=gaps, analysis=analysis,
            initial_rtt=self.rtt, active_closer=active, evicted=evicted,
            records=records, chunks=chunks, conflicts=conflicts,
            first_frame=self.first_frame)


class ParkingStore(Protocol):
    """Where `TcpTracker` keeps parked streams' records: `put` one, get a handle; `get`
    it back; `free` it once the stream is thawed. `analyzer.spill.SpillFile` keeps them
    in a temporary file (`read`), `MemoryStore` in memory."""

    def put(self, record: bytes) -> int: ...

    def get(self, handle: int) -> bytes: ...

    def free(self, handle: int) -> None: ...


class MemoryStore:
    """The default `ParkingStore`: records in a dict (live capture, tests)."""

    def __init__(self) -> None:
        self._records: dict[int, bytes] = {}
        self._next = 0

    def put(self, record: bytes) -> int:
        handle = self._next
        self._next += 1
        self._records[handle] = record
        return handle

    def get(self, handle: int) -> bytes:
        return self._records[handle]

    def free(self, handle: int) -> None:
        del self._records[handle]


class TcpTracker:
    """Tracks every TCP conversation of a capture (or live sniff), sans-IO.

    keep: stream numbers whose packets and data to keep for the follow and ladder views;
    keep_all: keep them for every stream (small captures, active modes).
    out_of_order_limit: bytes held per direction waiting for a hole to fill.
    conflict_window: bytes per direction kept to check retransmissions against (0: off).
    idle_timeout / closed_timeout: capture seconds after which an idle open / closed
    (FIN both ways, or RST) stream is finished and its state freed (bounds memory on SYN
    floods and long captures); max_active: a hard cap on streams tracked at once, and
    another on streams parked. An open stream quiet for `park_timeout` capture seconds is
    parked (`_park`): frozen into one record of ~0.3-0.6 KB (its digests' running states
    included, digest.py) put in `parking` (a `ParkingStore`: `read` gives an
    `analyzer.spill.SpillFile`, a temporary file; by default a `MemoryStore`), and thawed
    by its next packet; the tracker itself keeps ~150 bytes a parked stream (an index by
    its first direction's key), so connections that go quiet and never close (4% of them
    on a busy link) cost little while they wait for their idle timeout. A stream of one
    packet without data (a scan's SYN, unanswered) is parked after `lone_park_timeout` as
    that packet (~60 bytes), and thawed by replaying it. A finished stream leaves a tombstone
    (33 bytes, tombstones.py), so a late packet still counts in its stream (packets, end,
    completeness) and stream numbers stay Wireshark's; a tombstone lasts
    `tombstone_timeout` capture seconds after its stream's last packet (Linux's TIME-WAIT
    is 60 s).
    on_result: when given, each result goes to it as soon as its stream is finished
    instead of being kept for `results()` (flat memory for any number of streams). It
    returns True when it keeps the result object (rather than serializing it), so that a
    late packet still updates it.
    """

    def __init__(self, keep: Collection[int] = (), keep_all: bool = False,
                 out_of_order_limit: int = 4 << 20, conflict_window: int = 4096,
                 idle_timeout: float = 3600.0, closed_timeout: float = 10.0,
                 max_active: int = 200_000, tombstone_timeout: float = 120.0,
                 park_timeout: float = 10.0, lone_park_timeout: float = 1.0,
                 on_result: Callable[[TcpStreamResult], bool | None] | None = None,
                 parking: ParkingStore | None = None) -> None:
        self.keep = frozenset(keep)
        self.keep_all = keep_all
        self.out_of_order_limit = out_of_order_limit
        self.conflict_window = conflict_window
        self.idle_timeout = idle_timeout
        self.closed_timeout = closed_timeout
        self.max_active = max_active
        self.tombstone_timeout = tombstone_timeout
        self.park_timeout = park_timeout
        self.lone_park_timeout = lone_park_timeout
        self.on_result = on_result
        self.evictions = 0
        self.late_packets = 0  # packets of streams already finished (see tombstones)
        self.warnings: list[str] = []
        self._flows: dict[bytes, _Flow] = {}  # by Packet.key
        self._active: dict[int, _Stream] = {}
        # Parked streams: their records in `parking`; here, by the key of each one's first
        # direction, its handle there and its end (_parked_entry): ~150 bytes a stream.
        self.parking: ParkingStore = parking if parking is not None else MemoryStore()
        self._parked: dict[bytes, int] = {}
        # hashers that could not be saved in the records (digest.py), by the same keys
        self._parked_hashers: dict[bytes, tuple[Sha256 | None, Sha256 | None]] = {}
        self._parked_checked = 0.0  # capture time parked streams' idle time was last checked
        self._results: list[TcpStreamResult] = []
        # finished streams, for their late packets (see tombstones.py)
        self._tombstones = Tombstones(tombstone_timeout)
        # the same keys -> the stream's result, while someone keeps it (see on_result)
        self._tombstone_results: dict[bytes, TcpStreamResult] = {}
        self._next_number = 0
        self._swept_at = 0.0  # capture time of the last sweep
        # A sweep visits every tracked stream, so the next one waits for a quarter more
        # new streams than are tracked (at least 1024): its cost per new stream stays
        # constant however many are open (a SYN scan holds 100k+). And at least every
        # few capture seconds, for closed streams to finish and quiet ones to park.
        self._sweep_at_number = SWEEP_STREAMS
        self._sweep_every = min(closed_timeout, park_timeout, lone_park_timeout)
        self._finished = False
        self._ended: list[_Stream] = []  # see finish

    def on_packet(self, pkt: Packet) -> None:
        flow = self._flows.get(pkt.key)
        if flow is None:
            # A parked or finished stream may have been opened from the other side: both
            # look the packet up under its key the other way round too.
            reverse = flow_key(pkt.dst, pkt.dport, pkt.src, pkt.sport)
            if not self._parked or not self._thaw_for(pkt.key, reverse):
                if not len(self._tombstones) or not self._late(pkt, reverse):
                    self._open(pkt, None, False)
                return
            flow = self._flows[pkt.key]
        flags = pkt.flags
        if flow.steady and flags & 0x17 == 0x10:
            # Fast path: an ACK (maybe with in-order data) in a settled connection, at the
            # reassembly frontier, acknowledging nothing beyond what the peer sent, not a
            # duplicate ACK, not a zero window, not snaplen-cut. Everything else, and any
            # packet of a kept stream, takes `_Stream.on_packet`, which does the same
            # bookkeeping plus the analysis this case provably cannot trigger.
            seq = pkt.seq
            window = pkt.window
            length = pkt.payload_len
            ack = pkt.ack
            if seq == flow.next_raw and flow.high == flow.next_off and window and \
                    (length or ack != flow.last_ack or window != flow.last_win) and \
                    ((ack - flow.peer.next_raw - HALF32) & MASK32) <= HALF32:
                # (the last test: the ACK is at or behind the peer's reassembly frontier)
                if length:
                    payload = pkt.payload
                    if len(payload) == length:
                        flow.completeness |= 8
                        hasher = flow.hasher
                        if hasher is None:
                            hasher = flow.hasher = new_sha256()
                        hasher.update(payload)
                        offset = flow.next_off + length
                        flow.next_off = offset
                        flow.high = offset
                        flow.high_ts = pkt.ts
                        flow.next_raw = (seq + length) & MASK32
                        if self.conflict_window:
                            flow.remember(payload, self.conflict_window)
                        flow.keepalive = False
                        if flow.need_d:
                            flow.stream.history_fast(flow, flags, seq, length)
                    else:
                        flow.stream.on_packet(pkt, flow.side)
                        return
                else:
                    flow.completeness |= 4
                    if flow.need_a:
                        flow.stream.history_fast(flow, flags, seq, length)
                if ack != flow.last_ack:
                    flow.dup_acks = 0
                    flow.last_ack = ack
                flow.last_win = window
                flow.packets += 1
                flow.last_seen = pkt.ts
                return
        elif flags & 0x12 == 0x02 and flow.seen and pkt.seq != flow.isn:
            self._open(pkt, flow.stream, True)
            return
        flow.stream.on_packet(pkt, flow.side)

    def _late(self, pkt: Packet, reverse: bytes) -> bool:
        """A packet of a finished stream: count it there. False if it opens a new one.
        `reverse`: the packet's key the other way round."""
        key = pkt.key
        tombstones = self._tombstones
        direction = 0  # of the finished stream the packet was sent in
        isns = tombstones.find(key, pkt.ts)
        if isns == NONE:
            key = reverse
            isns = tombstones.find(key, pkt.ts)
            if isns == NONE:
                return False
            direction = 1
        isn = isn_of(isns, direction)
        if pkt.flags & 0x12 == 0x02 and isn >= 0 and pkt.seq != isn:
            tombstones.remove(key)
            self._tombstone_results.pop(key, None)
            self._open(pkt, None, True)  # port reuse after the old stream was finished
            return True
        self.late_packets += 1
        tombstones.add(key, pkt.ts, isns)  # the stream's last packet now: its window restarts
        result = self._tombstone_results.get(key)
        if result is not None:
            result.packets += 1
            result.end = max(result.end, pkt.ts)
            result.completeness |= _COMPLETENESS[(pkt.flags & 0x17) +
                                                 (32 if pkt.payload_len else 0)]
        return True

    def _open(self, pkt: Packet, reused: _Stream | None, port_reuse: bool) -> None:
        number = self._next_number
        self._next_number += 1
        keep = self.keep_all or number in self.keep
        stream = _Stream(self, number, pkt, keep, port_reuse)
        if reused is not None:
            self._retire(reused, evicted=False)
        self._track(stream)
        stream.on_packet(pkt, 0)
        if port_reuse and stream.records:
            stream.records[0].events.insert(0, EVENT_PORT_REUSE)
        # Memory grows only with new streams, so this is where stale ones are swept.
        if len(self._active) > self.max_active:
            self._sweep(pkt.ts, force=True)
        elif number >= self._sweep_at_number or pkt.ts - self._swept_at > self._sweep_every:
            self._sweep(pkt.ts)

    def _track(self, stream: _Stream) -> None:
        """Packets of the stream's two keys go to its directions from now on."""
        forward, backward = stream.keys
        self._flows[forward] = stream.flows[0]
        self._flows[backward] = stream.flows[1]
        self._active[stream.number] = stream

    def _untrack(self, stream: _Stream) -> bool:
        """The reverse of `_track`, and the stream <-> flow cycles broken so that what is
        left of it is freed at once. False if its keys were already another stream's."""
        del self._active[stream.number]
        owned = False
        for key, flow in zip(stream.keys, stream.flows, strict=True):
            if self._flows.get(key) is flow:
                del self._flows[key]
                owned = True
        for flow in stream.flows:
            flow.stream = flow.peer = None  # type: ignore[assignment]
        return owned

    def _retire(self, stream: _Stream, evicted: bool, tombstone: bool = False) -> None:
        """Finish a stream; `evicted`: while still open; `tombstone`: packets may follow."""
        result = stream.finish(evicted)
        owned = self._untrack(stream)
        if self.on_result is not None:
            kept = bool(self.on_result(result))
        else:
            self._results.append(result)
            kept = True
        if tombstone and owned:
            key = stream.keys[0]
            first, second = stream.flows
            self._tombstones.add(key, stream.end, pack_isns(
                first.isn if first.seen else -1, second.isn if second.seen else -1))
            if kept:
                self._tombstone_results[key] = result
        if evicted:
            self.evictions += 1

    def _sweep(self, now: float, force: bool = False) -> None:
        """Finish streams idle too long; with force, also the oldest tenth when over cap."""
        self._swept_at = now
        stale = []
        quiet = []
        fresh = []  # the others, when over the cap
        for stream in self._active.values():
            idle = now - stream.end
            if idle > (self.closed_timeout if stream.closed else self.idle_timeout):
                stale.append(stream)
            elif not stream.closed and idle > (self.park_timeout if stream.lone is None
                                               else self.lone_park_timeout):
                quiet.append(stream)
            elif force:
                fresh.append(stream)
        if force and len(self._active) - len(stale) > self.max_active:
            fresh.extend(quiet)  # the oldest tenth of all those left
            fresh.sort(key=lambda s: s.end)
            stale.extend(fresh[:max(1, len(fresh) // 10)])
        self._sweep_at_number = self._next_number + max(SWEEP_STREAMS, len(self._active) // 4)
        for stream in stale:
            self._retire(stream, evicted=not stream.closed, tombstone=True)
        for stream in quiet:
            if stream.number not in self._active:
                continue  # evicted just above
            if stream.records is None:
                self._park(stream)
            else:  # kept for a view: stays whole, but a resend is unlikely by now, so the
                stream.forget_tails()  # frames its tails hold are freed
        if self._parked and (now - self._parked_checked > self.idle_timeout / 8 or
                             len(self._parked) > self.max_active):
            self._sweep_parked(now)
        # Drop tombstones past the window for late packets, so memory follows the rate of
        # new connections, not the length of the capture; results go in retirement order.
        self._tombstones.expire(now)
        results = self._tombstone_results
        oldest = now - self.tombstone_timeout
        while results:
            key, result = next(iter(results.items()))
            if result.end >= oldest:
                break
            del results[key]

    def _park(self, stream: _Stream) -> None:
        """Freeze a quiet open stream until its next packet (see the class docstring)."""
        record, hashers = stream.freeze()
        self._untrack(stream)
        key = stream.keys[0]
        self._parked[key] = _parked_entry(self.parking.put(record), stream.end)
        if hashers is not None:
            self._parked_hashers[key] = hashers

    def _thaw_for(self, key: bytes, reverse: bytes) -> bool:
        """Thaw the stream parked under a packet's key or its `reverse`, if there is one."""
        if key not in self._parked:
            key = reverse
            if key not in self._parked:
                return False
        self._thaw(key)
        return True

    def _thaw(self, key: bytes) -> _Stream:
        """The stream parked under `key` tracked again, as it was."""
        handle = self._parked.pop(key) >> _END_BITS
        record = self.parking.get(handle)
        self.parking.free(handle)
        stream = _Stream.thaw(self, key, record, self._parked_hashers.pop(key, None))
        self._track(stream)
        return stream

    def _sweep_parked(self, now: float) -> None:
        """Finish parked streams idle past the idle timeout, and the oldest tenth of them
        when there are more than max_active."""
        self._parked_checked = now
        ends = [(_parked_end(entry), key) for key, entry in self._parked.items()]
        stale = [key for end, key in ends if now - end > self.idle_timeout]
        if len(ends) - len(stale) > self.max_active:
            rest = sorted([(end, key) for end, key in ends if now - end <= self.idle_timeout],
                          key=lambda item: item[0])
            stale.extend([key for _, key in rest[:max(1, len(rest) // 10)]])
        for key in stale:
            self._retire(self._thaw(key), evicted=True, tombstone=True)

    def warn(self, message: str) -> None:
        if len(self.warnings) < 100:
            self.warnings.append(message)

    def finish(self) -> None:
        """End of capture: finish every open stream."""
        if self._finished:
            return
        self._finished = True
        # The streams still open are kept here, not freed as each is finished: freeing a
        # stream's ~80 objects cost about as much as making its result (100k packets:
        # 3,705 streams), and at the end of a capture the process usually exits next
        # (cli.run skips that teardown). They go when the tracker goes.
        self._ended = list(self._active.values())
        for stream in self._ended:
            self._retire(stream, evicted=False)
        for key in list(self._parked):  # thawed one at a time, and freed
            self._retire(self._thaw(key), evicted=False)
        self._tombstone_results.clear()  # (the tombstones stay, for the same reason)

    def results(self) -> list[TcpStreamResult]:
        """Every stream's result, by stream number (call `finish()` first)."""
        return sorted(self._results, key=lambda r: r.stream)

    @property
    def stream_count(self) -> int:
        return self._next_number

    def live_rows(self, limit: int) -> list[tuple[str, str, str]]:
        """(connection, packets, state) of the newest streams, for the live sniff view."""
        rows: list[tuple[int, tuple[str, str, str]]] = []
        # open streams, parked ones too (a quiet session is still open): a parked one is
        # read from a thawed copy, left unregistered, so viewing changes nothing
        parked: dict[int, tuple[bytes, bytes]] = {}
        for key, entry in self._parked.items():
            record = self.parking.get(entry >> _END_BITS)
            parked[_PARKED.unpack_from(record)[0]] = key, record
        for number in sorted([*self._active, *parked])[-limit:]:
            stream = self._active.get(number)
            if stream is None:
                key, record = parked[number]
                stream = _Stream.thaw(self, key, record, self._parked_hashers.get(key))
            client = stream.syn_side if stream.syn_side is not None else 0
            cflow, sflow = stream.flows[client], stream.flows[client ^ 1]
            connection = (f"#{number} {format_endpoint(cflow.addr, cflow.port)} → "
                          f"{format_endpoint(sflow.addr, sflow.port)}")
            state = (f"{stream.states[client]} / {stream.states[client ^ 1]}, "
                     f"{cflow.delivered:,} B → {sflow.delivered:,} B ←")
            rows.append((number, (connection, f"{cflow.packets + sflow.packets:,}", state)))
        for result in self._results[-limit:]:
            labels = f" ({', '.join(result.labels)})" if result.labels else ""
            rows.append((result.stream, (
                f"#{result.stream} {result.client.endpoint} → {result.server.endpoint}",
                f"{result.packets:,}",
                f"done: {result.handshake} handshake, close {result.close}{labels}, "
                f"{result.client.bytes:,} B → {result.server.bytes:,} B ←")))
        rows.sort()
        return [row for _, row in rows[-limit:]]
