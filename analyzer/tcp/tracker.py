"""The sans-IO TCP tracker: packets in, one `TcpStreamResult` per connection out.

Theory of operation
-------------------
`TcpTracker.on_packet` is the hot path of the whole product. Both directions of every
connection are in one dict keyed by `Packet.key` (addresses, ports), each pointing at its
direction's `Flow` (flow.py). The fast path, inlined here, handles the common packet (an
ACK, maybe with in-order data, in a settled connection) with integer arithmetic and one
hash update; everything else goes to `Stream.on_packet` (stream.py), which runs the full
analysis (analysis.py holds Wireshark's rules) and reassembly, and says when the fast path
may take over again (`Flow.steady`).

Streams are numbered exactly as Wireshark numbers `tcp.stream`: in order of the first
packet of each conversation; a SYN (without ACK) whose sequence number differs from the
one already seen in its direction starts a new conversation on the same 4-tuple (port
reuse, Wireshark 4.0's rule).

A stream's life here: opened by its first packet (`_open`; a first packet without data,
not a RST, is kept as itself instead, a probe, until a second packet makes it a stream
or it is finished as it is); parked when open but quiet
for `park_timeout` (parking.py: frozen into a record in a `ParkingStore`, thawed by its
next packet); finished (`_retire`: its result made, its memory freed) `closed_timeout`
capture seconds after FIN both ways or a RST, `idle_timeout` after its last packet, when
over `max_active`, or at the end of the capture; then a 33-byte tombstone
(tombstones.py) for `tombstone_timeout`, so late packets stay in their stream. By default
no stream data is kept: only the hashes, a small tail per direction for conflict checks,
and the bounded out-of-order buffer. Sweeps visit every tracked stream, so they come once
a quarter more streams have opened than are tracked, or every few capture seconds: a SYN
scan with 100k streams open costs the same per stream as a quiet link. Per-packet records
and Follow chunks are kept only for the streams asked for (`keep`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Final

from analyzer.decode.packet import Packet, flow_key
from analyzer.tcp import completeness as comp
from analyzer.tcp import parking
from analyzer.tcp.digest import Sha256, new_sha256
from analyzer.tcp.flow import HALF32, MASK32, Flow
from analyzer.tcp.parking import (
    MemoryStore,
    ParkingStore,
    parked_end,
    parked_entry,
    parked_handle,
    parked_number,
)
from analyzer.tcp.result import ChunkList, ChunkLog, RecordList, RecordLog, TcpStreamResult
from analyzer.tcp.stream import Stream, StreamSnapshot
from analyzer.tcp.tombstones import NONE, Tombstones, isn_of, pack_isns
from analyzer.tcp.vocabulary import (
    ACK,
    CONTROL_AND_ACK,
    RST,
    SYN,
    SYN_AND_ACK,
)

# TcpTracker's on_probe: (template, number, first frame, start, end, client, server),
# see parking.lone_fields.
ProbeSink = Callable[[TcpStreamResult, int, int, float, float, str, str], None]

# New streams between sweeps, at least (see TcpTracker._sweep_at_number).
SWEEP_STREAMS: Final = 1024
# Over this many streams tracked at once, a lone packet (see `lone_park_timeout`) is
# parked after a tenth of that timeout. A SYN flood (50k new streams a capture second)
# held ~36k whole streams, ~60 MB; normal traffic tracks ~2.5k per process at 1M packets,
# and a SYN answered within 0.1 s is not parked.
CROWDED_STREAMS: Final = 8192
# Results of probes (see TcpTracker._probe_template) made through the full path, by shape,
# at most this many (a flood of every flag and window combination makes no more).
PROBE_SHAPES: Final = 4096
# What `_probe_for` did with a packet.
NO_PROBE: Final = 0
PROBE_THAWED: Final = 1  # its probe is a stream again, which takes the packet
PROBE_REPLACED: Final = 2  # port reuse: the probe is finished, the packet opened a new one


class TcpTracker:
    """Tracks every TCP conversation of a capture (or live sniff), sans-IO.

    keep: stream numbers whose packets and data to keep for the follow and ladder views;
    keep_all: keep them for every stream (small captures, active modes).
    chunk_log: makes the `ChunkLog` a kept stream's Follow chunks go to (default: in memory;
    None: not kept, the ladder needs none); record_log: the same for its per-packet
    `RecordLog` of the ladder (None: not kept, Follow needs none).
    out_of_order_limit: bytes held per direction waiting for a hole to fill.
    conflict_window: bytes per direction kept to check retransmissions against (0: off).
    idle_timeout / closed_timeout: capture seconds after which an idle open / closed
    (FIN both ways, or RST) stream is finished and its state freed (bounds memory on SYN
    floods and long captures); max_active: a hard cap on streams tracked at once, and
    another on streams parked. An open stream quiet for `park_timeout` capture seconds is
    parked (`_park`, parking.py): frozen into one record of ~0.3-0.6 KB (its digests' running states
    included, digest.py) put in `parking` (a `ParkingStore`: `read` gives an
    `analyzer.run.spill.SpillFile`, a temporary file; by default a `MemoryStore`), and thawed
    by its next packet; the tracker itself keeps ~150 bytes a parked stream (an index by
    its first direction's key), so connections that go quiet and never close (4% of them
    on a busy link) cost little while they wait for their idle timeout. A stream of one
    packet without data (a scan's SYN, unanswered) is parked after `lone_park_timeout` as
    that packet (~60 bytes), and thawed by replaying it. With `probes` (the default),
    such a packet, unless it is a RST (a closed stream finishes sooner), never becomes a
    `Stream` unless a second packet comes: it is kept as that record from the start (a
    probe), and if it stays alone its result is made from the result of the first probe
    of the same shape (parking.lone_result): a SYN flood's packet costs a dict entry and
    a result, not a stream opened, parked, thawed and finished; probes=False opens every
    stream whole (what the tests compare with). A finished stream leaves a tombstone
    (33 bytes, tombstones.py), so a late packet still counts in its stream (packets, end,
    completeness) and stream numbers stay Wireshark's; a tombstone lasts
    `tombstone_timeout` capture seconds after its stream's last packet (Linux's TIME-WAIT
    is 60 s).
    on_result: when given, each result goes to it as soon as its stream is finished
    instead of being kept for `results()` (flat memory for any number of streams). It
    returns True when it keeps the result object (rather than serializing it), so that a
    late packet still updates it.
    on_probe: with on_result, for a consumer that only serializes results (never keeps
    them): a probe's result is not made; what it would take from its shape's template
    and what is its own (parking.lone_fields) go here instead
    (a SYN flood's million results, three objects each, were a sixth of its time):
    `on_probe(template, number, first_frame, start, end, client, server)`.
    """

    def __init__(self, keep: Collection[int] = (), keep_all: bool = False,
                 out_of_order_limit: int = 4 << 20, conflict_window: int = 4096,
                 idle_timeout: float = 3600.0, closed_timeout: float = 10.0,
                 max_active: int = 200_000, tombstone_timeout: float = 120.0,
                 park_timeout: float = 10.0, lone_park_timeout: float = 1.0,
                 on_result: Callable[[TcpStreamResult], bool | None] | None = None,
                 on_probe: ProbeSink | None = None,
                 parking: ParkingStore | None = None,
                 chunk_log: Callable[[], ChunkLog] | None = ChunkList,
                 record_log: Callable[[], RecordLog] | None = RecordList,
                 probes: bool = True) -> None:
        self.keep = frozenset(keep)
        self.chunk_log = chunk_log  # makes a kept stream's ChunkLog
        self.record_log = record_log  # and its RecordLog
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
        self.on_probe = on_probe if on_result is not None else None
        self.evictions = 0
        self.late_packets = 0  # packets of streams already finished (see tombstones)
        self.warnings: list[str] = []
        self._flows: dict[bytes, Flow] = {}  # by Packet.key
        self._active: dict[int, Stream] = {}
        # Parked streams: their records in `parking`; here, by the key of each one's first
        # direction, its handle there and its end (_parked_entry): ~150 bytes a stream.
        self.parking: ParkingStore = parking if parking is not None else MemoryStore()
        self._parked: dict[bytes, int] = {}
        # hashers that could not be saved in the records (digest.py), by the same keys
        self._parked_hashers: dict[bytes, tuple[Sha256 | None, Sha256 | None]] = {}
        # Probes: streams of one packet without data, kept as their `lone_record` by
        # their key (see the class docstring), and the result of one probe of each shape.
        self.probes = probes
        self._probes: dict[bytes, bytes] = {}
        self._probe_results: dict[bytes, TcpStreamResult] = {}
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
        self._ended: list[Stream] = []  # see finish

    def on_packet(self, pkt: Packet) -> None:
        flow = self._flows.get(pkt.key)
        if flow is None:
            # A parked or finished stream may have been opened from the other side: both
            # look the packet up under its key the other way round too.
            reverse = flow_key(pkt.dst, pkt.dport, pkt.src, pkt.sport)
            if not self._parked or not self._thaw_for(pkt.key, reverse):
                probe = self._probe_for(pkt, reverse) if self._probes else NO_PROBE
                if probe == PROBE_REPLACED:
                    return
                if probe == NO_PROBE:
                    if not len(self._tombstones) or not self._late(pkt, reverse):
                        self._open(pkt, None, False)
                    return
            flow = self._flows[pkt.key]
        flags = pkt.flags
        if flow.steady and flags & CONTROL_AND_ACK == ACK:
            # Fast path: an ACK (maybe with in-order data) in a settled connection, at the
            # reassembly frontier, acknowledging nothing beyond what the peer sent, not a
            # duplicate ACK, not a zero window, not snaplen-cut. Everything else, and any
            # packet of a kept stream, takes `Stream.on_packet`, which does the same
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
        elif flags & SYN_AND_ACK == SYN and flow.seen and pkt.seq != flow.isn:
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
        if pkt.flags & SYN_AND_ACK == SYN and isn >= 0 and pkt.seq != isn:
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
            result.completeness |= comp.BY_PACKET[(pkt.flags & CONTROL_AND_ACK) +
                                                 (32 if pkt.payload_len else 0)]
        return True

    def _open(self, pkt: Packet, reused: Stream | None, port_reuse: bool) -> None:
        number = self._next_number
        self._next_number += 1
        keep = self.keep_all or number in self.keep
        if self.probes and not keep and not pkt.payload_len and not pkt.flags & RST:
            if reused is not None:
                self._retire(reused, evicted=False)
            self._probes[pkt.key] = parking.lone_record(number, pkt, port_reuse)
        else:
            stream = Stream(self, number, pkt, keep, port_reuse)
            if reused is not None:
                self._retire(reused, evicted=False)
            self._track(stream)
            stream.on_packet(pkt, 0)
        # Memory grows only with new streams, so this is where stale ones are swept.
        if len(self._active) > self.max_active or len(self._probes) > self.max_active:
            self._sweep(pkt.ts, force=True)
        elif number >= self._sweep_at_number or pkt.ts - self._swept_at > self._sweep_every:
            self._sweep(pkt.ts)

    def _probe_for(self, pkt: Packet, reverse: bytes) -> int:
        """The probe under a packet's key or its `reverse`, if there is one, given the
        packet: a new SYN from its sender (port reuse, as TcpTracker.on_packet tells it)
        finishes it and opens a new stream; any other packet makes it a stream again."""
        key = pkt.key
        probes = self._probes
        record = probes.get(key)
        if record is None:
            key = reverse
            record = probes.get(key)
            if record is None:
                return NO_PROBE
        elif key != reverse and pkt.flags & SYN_AND_ACK == SYN and \
                pkt.seq != parking.lone_isn(record):
            # (not a connection to itself, both keys one: its stream takes the packet as
            # its other side, which has no ISN yet)
            del probes[key]
            self._retire_probe(key, record, evicted=False, tombstone=False)
            self._open(pkt, None, True)
            return PROBE_REPLACED
        del probes[key]
        self._track(parking.thaw(self, key, record, None))
        return PROBE_THAWED

    def _probe_template(self, key: bytes, record: bytes,
                        evicted: bool) -> tuple[TcpStreamResult, bool]:
        """The result of a probe's shape's first probe, made through the full path (a
        stream made by replaying the packet, and finished), and True; or, when no more
        shapes are kept, this probe's own result made so, and False."""
        shape = parking.lone_shape(key, record)
        template = self._probe_results.get(shape)
        if template is None:
            template = parking.thaw(self, key, record, None).finish(evicted)
            if len(self._probe_results) >= PROBE_SHAPES:
                return template, False
            self._probe_results[shape] = template
        return template, True

    def _retire_probe(self, key: bytes, record: bytes, evicted: bool,
                      tombstone: bool) -> None:
        """`_retire` for a probe: its result is its shape's template with its own
        values (parking.lone_result), or only those values, to `on_probe`."""
        if evicted:
            self.evictions += 1
        template, shared = self._probe_template(key, record, evicted)
        result: TcpStreamResult | None = None
        kept = False
        if shared and self.on_probe is not None:
            number, frame, start, end, client, server = parking.lone_fields(
                template, key, record)
            self.on_probe(template, number, frame, start, end, client, server)
        else:
            result = parking.lone_result(template, key, record, evicted) if shared \
                else template
            end = result.end
            if self.on_result is not None:
                kept = bool(self.on_result(result))
            else:
                self._results.append(result)
                kept = True
        if tombstone:
            self._tombstones.add(key, end, pack_isns(parking.lone_isn(record), -1))
            if kept and result is not None:
                self._tombstone_results[key] = result

    def _track(self, stream: Stream) -> None:
        """Packets of the stream's two keys go to its directions from now on."""
        forward, backward = stream.keys
        self._flows[forward] = stream.flows[0]
        self._flows[backward] = stream.flows[1]
        self._active[stream.number] = stream

    def _untrack(self, stream: Stream) -> bool:
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

    def _retire(self, stream: Stream, evicted: bool, tombstone: bool = False) -> None:
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
        lone_timeout = self.lone_park_timeout
        if len(self._active) > CROWDED_STREAMS:
            lone_timeout /= 10
        for stream in self._active.values():
            idle = now - stream.end
            if idle > (self.closed_timeout if stream.closed else self.idle_timeout):
                stale.append(stream)
            elif not stream.closed and idle > (self.park_timeout if stream.lone is None
                                               else lone_timeout):
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
            if stream.records is None and stream.chunks is None:
                self._park(stream)
            else:  # kept for a view: stays whole, but a resend is unlikely by now, so the
                stream.forget_tails()  # frames its tails hold are freed
        if (self._parked or self._probes) and (
                now - self._parked_checked > self.idle_timeout / 8 or
                len(self._parked) + len(self._probes) > self.max_active):
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

    def _park(self, stream: Stream) -> None:
        """Freeze a quiet open stream until its next packet (see the class docstring)."""
        record, hashers = parking.freeze(stream)
        self._untrack(stream)
        key = stream.keys[0]
        self._parked[key] = parked_entry(self.parking.put(record), stream.end)
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

    def _thaw(self, key: bytes) -> Stream:
        """The stream parked under `key` tracked again, as it was."""
        handle = parked_handle(self._parked.pop(key))
        record = self.parking.get(handle)
        self.parking.free(handle)
        stream = parking.thaw(self, key, record, self._parked_hashers.pop(key, None))
        self._track(stream)
        return stream

    def _sweep_parked(self, now: float) -> None:
        """Finish parked streams idle past the idle timeout, and the oldest tenth of them
        when there are more than max_active."""
        self._parked_checked = now
        ends = [(parked_end(entry), key) for key, entry in self._parked.items()]
        ends += [(parking.lone_end(record), key) for key, record in self._probes.items()]
        stale = [key for end, key in ends if now - end > self.idle_timeout]
        if len(ends) - len(stale) > self.max_active:
            rest = sorted([(end, key) for end, key in ends if now - end <= self.idle_timeout],
                          key=lambda item: item[0])
            stale.extend([key for _, key in rest[:max(1, len(rest) // 10)]])
        for key in stale:
            record = self._probes.pop(key, None)
            if record is not None:
                self._retire_probe(key, record, evicted=True, tombstone=True)
            else:
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
        for key, record in self._probes.items():
            self._retire_probe(key, record, evicted=False, tombstone=False)
        self._probes.clear()
        self._tombstone_results.clear()  # (the tombstones stay, for the same reason)

    def results(self) -> list[TcpStreamResult]:
        """Every stream's result, by stream number (call `finish()` first)."""
        return sorted(self._results, key=lambda r: r.stream)

    @property
    def stream_count(self) -> int:
        return self._next_number

    def open_streams(self, limit: int) -> list[StreamSnapshot]:
        """The newest `limit` open streams as they stand, parked ones too (a quiet session
        is still open): a parked one is read from a thawed copy, left unregistered, so
        looking changes nothing."""
        parked: dict[int, tuple[bytes, bytes]] = {}
        for key, entry in self._parked.items():
            record = self.parking.get(parked_handle(entry))
            parked[parked_number(record)] = key, record
        for key, record in self._probes.items():
            parked[parked_number(record)] = key, record
        snapshots = []
        for number in sorted([*self._active, *parked])[-limit:]:
            stream = self._active.get(number)
            if stream is None:
                key, record = parked[number]
                stream = parking.thaw(self, key, record, self._parked_hashers.get(key))
            snapshots.append(stream.snapshot())
        return snapshots

    def recent_results(self, limit: int) -> list[TcpStreamResult]:
        """The last `limit` results finished and kept (not those given to `on_result`)."""
        return self._results[-limit:]
