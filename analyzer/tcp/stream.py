"""One TCP connection while it is tracked (`Stream`): the full analysis of a packet.

`Stream.on_packet` is the tracker's slow path: every packet the fast path (tracker.py)
cannot prove plain comes here, and so does every packet of a kept stream. In order, it
runs the SYN/FIN/RST bookkeeping and each endpoint's RFC 9293 state (lifecycle.py), the
handshake and Wireshark's analysis rules (analysis.py: acked-unseen, dup-ack, zero-window,
keep-alive, lost segment, retransmissions), reassembly, Zeek's history and conn_state
(zeek.py), and the packet record of a kept stream; then it decides whether the fast path
may take this connection's next packets (`_refresh_steady`).

Reassembly is each direction's (flow.py); at the end, `finish` flushes both directions
and makes the `TcpStreamResult`.

Directions are numbered 0 (sender of the stream's first packet) and 1; the result speaks
of client and server (SPEC: the sender of the first SYN without ACK, else direction 0).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Final, NamedTuple

from analyzer.decode.packet import Packet, flow_key, format_endpoint
from analyzer.tcp import analysis, zeek
from analyzer.tcp import completeness as comp
from analyzer.tcp import lifecycle as lc
from analyzer.tcp.flow import Flow, signed32
from analyzer.tcp.result import (
    ChunkLog,
    Conflict,
    Gap,
    PacketRecord,
    RecordLog,
    SideInfo,
    TcpStreamResult,
)
from analyzer.tcp.vocabulary import (
    ACK,
    ACKED_UNSEEN,
    ANALYSIS_KEYS,
    CONTROL,
    CONTROL_AND_ACK,
    DUP_ACK,
    EVENT_ACTIVE_FIN,
    EVENT_FIN_ACKED,
    EVENT_HANDSHAKE_ACK,
    EVENT_PASSIVE_FIN,
    EVENT_PORT_REUSE,
    EVENT_REFUSED,
    EVENT_RST,
    EVENT_SIMULTANEOUS_CLOSE,
    EVENT_SIMULTANEOUS_OPEN,
    EVENT_SYN,
    EVENT_SYN_ACK,
    EVENT_SYN_DATA,
    FAST_RETRANSMISSION,
    FIN,
    KEEP_ALIVE,
    LABEL_MIDSTREAM,
    LABEL_PORT_REUSE,
    LABEL_REFUSED,
    LABEL_RESET_BY_CLIENT,
    LABEL_RESET_BY_SERVER,
    LABEL_SIMULTANEOUS_CLOSE,
    LABEL_SIMULTANEOUS_OPEN,
    LABEL_SYN_DATA,
    LOST_SEGMENT,
    OUT_OF_ORDER,
    OVERLAP_CONFLICT,
    RETRANSMISSION,
    RST,
    SYN,
    ZERO_WINDOW,
)

if TYPE_CHECKING:
    from analyzer.tcp.tracker import TcpTracker

EMPTY_SHA256: Final = hashlib.sha256().hexdigest()


class StreamSnapshot(NamedTuple):
    """An open stream as it stands (for live views): its client and server as the result
    would name them, their RFC 9293 states and the bytes each has delivered so far."""

    number: int
    client: str
    server: str
    packets: int
    client_state: str
    server_state: str
    client_bytes: int
    server_bytes: int


class Stream:
    """One TCP conversation while it is being tracked."""

    __slots__ = (
        "tracker", "number", "keys", "flows", "start", "completeness",
        "states", "watch", "history", "zeek_states", "first_flags", "labels", "analysis",
        "records", "chunks", "conflict_now", "established", "rtt", "first_fin_side",
        "closed", "syn_side", "first_frame", "lone",
    )

    def __init__(self, tracker: TcpTracker, number: int, pkt: Packet, keep: bool,
                 reused: bool) -> None:
        self.tracker = tracker
        self.number = number
        self.keys = (pkt.key, flow_key(pkt.dst, pkt.dport, pkt.src, pkt.sport))
        self.flows = (Flow(self, 0, pkt.src, pkt.sport), Flow(self, 1, pkt.dst, pkt.dport))
        self.flows[0].peer = self.flows[1]
        self.flows[1].peer = self.flows[0]
        self.start = pkt.ts
        self.first_frame = pkt.frame
        flags = pkt.flags
        self.first_flags = flags
        self.completeness = comp.creation_bits(flags, pkt.payload_len)  # on_packet adds the rest
        self.states = list(lc.initial_states(bool(flags & SYN), bool(flags & ACK)))
        self.watch = True
        self.history = zeek.ZeekHistory()
        self.zeek_states = zeek.ZeekEndpoints()
        # a tuple, as most streams have no label: the empty one costs nothing (a set: 216
        # bytes); duplicates are dropped when the result is made
        self.labels: tuple[str, ...] = (LABEL_PORT_REUSE,) if reused else ()
        if not flags & SYN:
            self.labels += (LABEL_MIDSTREAM,)
        # analysis flags that occurred, with their counts; None until the first (most
        # streams have none: even an empty dict is 64 bytes on every open connection)
        self.analysis: dict[str, int] | None = None
        self.records: RecordLog | None = None
        self.chunks: ChunkLog | None = None
        if keep:
            if tracker.record_log is not None:
                self.records = tracker.record_log()
            if tracker.chunk_log is not None:
                self.chunks = tracker.chunk_log()
        self.conflict_now: Conflict | None = None  # this packet's, for its record
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
        flow.completeness |= comp.BY_PACKET[(flags & CONTROL_AND_ACK) + (32 if length else 0)]
        if self.lone is not None and pkt is not self.lone:
            self.lone = None  # not alone any more: `freeze` needs the whole state
        events: list[str] | None = [] if self.records is not None else None
        syn = flags & SYN
        if not flow.seen:
            flow.start(seq, bool(syn))
        if flags & CONTROL:
            self._control(pkt, side, flow, peer, events)

        d = signed32((seq + 1 if syn else seq) - flow.next_raw)
        off = flow.next_off + d

        if flags & ACK:
            ack = pkt.ack
            if peer.seen:
                da = signed32(ack - peer.next_raw)
                if da > 0:
                    a_off = peer.next_off + da
                    if analysis.acks_unseen(peer, a_off, flags):
                        self.flag(ACKED_UNSEEN, events)
                    if a_off > peer.acked_off:
                        peer.acked_off = a_off
                        if peer.pending:
                            peer.skip_to(peer.data_limit(a_off))
                if not self.established:
                    self._check_handshake(pkt, side, flow, peer, events)
            if length == 0 and not flags & CONTROL:
                if analysis.is_dup_ack(flow, peer, ack, pkt.window, off):
                    self.flag(DUP_ACK, events)
                    flow.dup_acks += 1
                elif ack != flow.last_ack:
                    flow.dup_acks = 0
            flow.last_ack = ack
            flow.last_win = pkt.window

        if analysis.is_zero_window(flags, pkt.window):
            self.flag(ZERO_WINDOW, events)
            self.history.count(side, "W")

        if not flags & RST:
            fin = flags & FIN
            start = off - 1 if syn else off
            end = off + length + (1 if fin else 0)
            high = flow.high
            keep_alive = analysis.is_keep_alive(flags, length, start, high)
            if end > start or keep_alive:
                flow.keepalive = keep_alive
            if keep_alive:
                self.flag(KEEP_ALIVE, events)
            elif end > start:
                if start > high:
                    self.flag(LOST_SEGMENT, events)
                elif start < high:
                    kind = analysis.old_segment_kind(flow, peer, seq, ts, end, high, self.rtt)
                    if kind == FAST_RETRANSMISSION:
                        self.flag(RETRANSMISSION, None)  # counted as both, as Wireshark
                    self.flag(kind, events)
                    if length and kind != OUT_OF_ORDER:
                        self.history.count(side, "T")
                if end > high:
                    flow.high = end
                    flow.high_ts = ts
        else:
            keep_alive = False
        # A RST's payload (its "cause") is stream data too: Follow shows it.
        if length and not keep_alive:
            payload = pkt.payload
            if d == 0:
                flow.deliver(payload, pkt.frame, ts)
                if flow.pending:
                    flow.drain()
            elif d < 0:
                flow.overlap(payload, pkt.frame, ts, -d, off)
            elif len(payload):
                flow.hold(payload, off, pkt.frame, ts)

        history = self.history
        if flags & CONTROL or history.marks[side] & zeek.MARKS_DATA_AND_ACK != \
                zeek.MARKS_DATA_AND_ACK:
            history.on_packet(side, flags, seq, length)
        if flags & CONTROL or not self.zeek_states.idle:
            self.zeek_states.on_packet(side, flags, length)

        if events is not None:
            self._record(pkt, side, flow, peer, events)
        elif self.watch and not flags & CONTROL and flags & ACK:
            self._lifecycle_ack(pkt, side, flow, peer, None)
        self._refresh_steady()

    @property
    def end(self) -> float:
        return max(self.flows[0].last_seen, self.flows[1].last_seen)

    def flag(self, kind: str, events: list[str] | None) -> None:
        """Count one analysis kind (vocabulary.ANALYSIS_KEYS), and record it as the
        packet's event when the stream is kept."""
        counts = self.analysis
        if counts is None:
            counts = self.analysis = {}
        counts[kind] = counts.get(kind, 0) + 1
        if events is not None:
            events.append(kind)

    def conflict(self, conflict: Conflict) -> None:
        """A retransmission whose bytes differ from the first copy (see `Flow.overlap`).
        Only a kept stream (`tcp ladder`, which shows them) keeps the conflicting bytes,
        in the packet's record; `read` reports the count (200k conflicts held 600 MB)."""
        self.flag(OVERLAP_CONFLICT, None)
        if self.records is not None:
            self.conflict_now = conflict

    def _refresh_steady(self) -> None:
        """Which directions the fast path may handle until the next slow-path packet."""
        first, second = self.flows
        marks = self.history.marks
        steady = self.records is None and self.chunks is None and not self.watch and \
            self.zeek_states.idle and first.seen and second.seen
        first.steady = second.steady = steady
        for side, flow in enumerate(self.flows):
            flow.need_d = not marks[side] & zeek.MARK_DATA
            flow.need_a = not marks[side] & zeek.MARK_ACK

    def history_fast(self, flow: Flow, flags: int, seq: int, length: int) -> None:
        """Zeek's D or A mark for a fast-path packet (the first of each kind only)."""
        history = self.history
        history.on_packet(flow.side, flags, seq, length)
        marks = history.marks[flow.side]
        flow.need_d = not marks & zeek.MARK_DATA
        flow.need_a = not marks & zeek.MARK_ACK

    # -- rarer paths --------------------------------------------------------------------

    def _control(self, pkt: Packet, side: int, flow: Flow, peer: Flow,
                 events: list[str] | None) -> None:
        """SYN, FIN and RST bookkeeping, and the lifecycle state machine."""
        flags = pkt.flags
        states = self.states
        mine, theirs = states[side], states[side ^ 1]
        if flags & SYN:
            if not flow.syn:
                flow.syn = True
                flow.syn_ts = pkt.ts
                flow.syn_options = pkt.tcp_options
            if pkt.payload_len:
                self.labels += (LABEL_SYN_DATA,)
                if events is not None:
                    events.append(EVENT_SYN_DATA)
            if flags & ACK:
                mine = lc.step(mine, lc.SEND_SYNACK)
                if events is not None:
                    events.append(EVENT_SYN_ACK)
            else:
                if self.syn_side is None:
                    self.syn_side = side
                if peer.bare_syn and not flow.bare_syn:
                    self.labels += (LABEL_SIMULTANEOUS_OPEN,)
                    if events is not None:
                        events.append(EVENT_SIMULTANEOUS_OPEN)
                flow.bare_syn = True
                mine = lc.step(mine, lc.SEND_SYN)
                if events is not None:
                    events.append(EVENT_SYN)
        if flags & FIN:
            fin_off = flow.offset_of(pkt.seq + (1 if flags & SYN else 0)) + pkt.payload_len
            first_fin = flow.fin_off is None
            if first_fin:
                flow.fin_off = fin_off
                flow.fin_frame = pkt.frame
            crossed = None
            if first_fin and peer.fin_off is not None and flags & ACK and \
                    peer.seen and peer.offset_of(pkt.ack) <= peer.fin_off:
                crossed = lc.closing_crossed_fin(mine)
                self.labels += (LABEL_SIMULTANEOUS_CLOSE,)
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
        if flags & RST:
            self._closed()
            if flow.rst_frame is None:
                flow.rst_frame = pkt.frame
                if pkt.payload_len and len(pkt.payload):
                    flow.rst_cause = bytes(pkt.payload[:200]).decode("utf-8", "replace")
            if peer.bare_syn and not flow.syn and not self.established:
                self.labels += (LABEL_REFUSED,)
                if events is not None:
                    events.append(EVENT_REFUSED)
            elif events is not None:
                events.append(EVENT_RST)
            mine = lc.step(mine, lc.SEND_RST)
        states[side] = mine
        states[side ^ 1] = theirs
        self._lifecycle_ack(pkt, side, flow, peer, events)
        theirs = states[side ^ 1]
        if flags & SYN and not flags & ACK:
            theirs = lc.step(theirs, lc.RCV_SYN)
        if flags & FIN:
            theirs = lc.step(theirs, lc.RCV_FIN)
        if flags & RST:
            theirs = lc.step(theirs, lc.RCV_RST)
        states[side ^ 1] = theirs
        self.watch = states[0] in lc.WAITING_FOR_ACK or states[1] in lc.WAITING_FOR_ACK

    def _closed(self) -> None:
        """FIN both ways or a RST: no more data is expected."""
        self.closed = True
        self.forget_tails()

    def forget_tails(self) -> None:
        """Free both directions' conflict tails (see `Flow.forget_tail`)."""
        for flow in self.flows:
            flow.forget_tail()

    def _lifecycle_ack(self, pkt: Packet, side: int, flow: Flow, peer: Flow,
                       events: list[str] | None) -> None:
        """The receiver's transitions driven by the ACK field."""
        flags = pkt.flags
        if not flags & ACK:
            return
        states = self.states
        theirs = states[side ^ 1]
        ack = pkt.ack
        if theirs in (lc.SYN_SENT, lc.SYN_RECEIVED) and (
                # a SYN-ACK captured before the SYN it answers acknowledges it too
                signed32(ack - peer.isn - 1) >= 0 if peer.syn else flags & SYN):
            theirs = lc.step(theirs, lc.RCV_SYNACK if flags & SYN else lc.RCV_ACK_OF_SYN)
        if peer.fin_off is not None and peer.offset_of(ack) > peer.fin_off and \
                theirs in (lc.FIN_WAIT_1, lc.CLOSING, lc.LAST_ACK):
            theirs = lc.step(theirs, lc.RCV_ACK_OF_FIN)
            if events is not None:
                events.append(EVENT_FIN_ACKED)
        states[side ^ 1] = theirs
        self.watch = states[0] in lc.WAITING_FOR_ACK or states[1] in lc.WAITING_FOR_ACK

    def _check_handshake(self, pkt: Packet, side: int, flow: Flow, peer: Flow,
                         events: list[str] | None) -> None:
        """Marks SYNs acknowledged; the handshake completes when both are."""
        if peer.syn and not peer.syn_acked and signed32(pkt.ack - peer.isn - 1) >= 0:
            peer.syn_acked = True
        if flow.syn and not flow.syn_acked and peer.last_ack >= 0 and \
                signed32(peer.last_ack - flow.isn - 1) >= 0:
            # The peer's SYN-ACK was captured before our SYN (reordered handshake).
            flow.syn_acked = True
        if flow.syn_acked and peer.syn_acked and not pkt.flags & SYN:
            self.established = True
            first_syn = self.flows[self.syn_side].syn_ts if self.syn_side is not None else None
            if first_syn is not None:
                self.rtt = pkt.ts - first_syn
            if events is not None:
                events.append(EVENT_HANDSHAKE_ACK)

    def _record(self, pkt: Packet, side: int, flow: Flow, peer: Flow,
                events: list[str]) -> None:
        if self.watch and not pkt.flags & CONTROL and pkt.flags & ACK:
            self._lifecycle_ack(pkt, side, flow, peer, events)
        records = self.records
        assert records is not None
        if LABEL_PORT_REUSE in self.labels and not len(records):
            # the stream's first packet, a SYN on a 4-tuple still in use (TcpTracker._open)
            events.insert(0, EVENT_PORT_REUSE)
        records.append(PacketRecord(
            frame=pkt.frame, ts=pkt.ts, from_client=side == 0, flags=pkt.flags,
            seq=pkt.seq, ack=pkt.ack, length=pkt.payload_len, window=pkt.window,
            client_state=self.states[0], server_state=self.states[1], events=events,
            tcp_options=bytes(pkt.tcp_options) if pkt.flags & SYN else b"",
            conflict=self.conflict_now))
        self.conflict_now = None

    def snapshot(self) -> StreamSnapshot:
        """The stream as it stands, its client guessed as `finish` would while it has
        seen no SYN (the first packet's sender)."""
        client = self.syn_side if self.syn_side is not None else 0
        cflow, sflow = self.flows[client], self.flows[client ^ 1]
        return StreamSnapshot(
            self.number, format_endpoint(cflow.addr, cflow.port),
            format_endpoint(sflow.addr, sflow.port), cflow.packets + sflow.packets,
            self.states[client], self.states[client ^ 1], cflow.delivered, sflow.delivered)

    # -- the end --------------------------------------------------------------------------

    def _completeness(self, cflow: Flow, sflow: Flow) -> int:
        """Wireshark's final `tcp.completeness`. A stream of exactly one packet keeps only
        what its creating packet sets (a pure SYN: SYN, and DATA with a payload): on that
        packet Wireshark adds no ACK, DATA, FIN, RST or SYN-ACK bit, only on later ones."""
        if cflow.packets + sflow.packets == 1:
            return self.completeness
        return self.completeness | cflow.completeness | sflow.completeness

    def finish(self, evicted: bool = False) -> TcpStreamResult:
        for flow in self.flows:
            if flow.seen:
                flow.flush()
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
        if LABEL_REFUSED not in labels:
            if cflow.rst_frame is not None:
                labels.add(LABEL_RESET_BY_CLIENT)
            if sflow.rst_frame is not None:
                labels.add(LABEL_RESET_BY_SERVER)
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
            records.settle(client_side == 0, cflow.isn, sflow.isn)
        if chunks is not None and client_side != 0:
            chunks = chunks.flipped()
        counts = self.analysis or {}
        kinds = {key: counts.get(key, 0) for key in ANALYSIS_KEYS}
        active = None
        if self.first_fin_side is not None:
            active = "client" if self.first_fin_side == client_side else "server"
        return TcpStreamResult(
            stream=self.number, client=client, server=server,
            direction_guessed=self.syn_side is None, packets=cflow.packets + sflow.packets,
            start=self.start, end=self.end, handshake=handshake, close=close,
            labels=sorted(labels),
            completeness=self._completeness(cflow, sflow),
            history=history,
            conn_state=conn_state, gaps=gaps, analysis=kinds,
            initial_rtt=self.rtt, active_closer=active, evicted=evicted,
            records=records, chunks=chunks,
            first_frame=self.first_frame)

