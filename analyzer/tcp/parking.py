"""Parking: a quiet open stream frozen into one record of bytes, and thawed back.

Theory of operation
-------------------
An open stream quiet for the tracker's `park_timeout` is parked: `freeze` turns it into one
record (~0.3-0.6 KB: every attribute listed in the *_STATE tuples below, marshalled and
compressed, its digests' running states included where digest.py can save them; else the
hashers come back beside the record, as objects), which the tracker puts in a
`ParkingStore` (`read` uses an `analyzer.run.spill.SpillFile`, a temporary file; the default is
a `MemoryStore`). The tracker's index keeps, per parked stream, ~150 bytes: the store's
handle and the stream's last packet time in one int (`parked_entry`). The stream's next
packet thaws it (`thaw`), exactly as it was but for its conflict tails, which parking drops
as any stream this quiet drops them. A stream that has seen nothing but one packet without
data (a scan's SYN) is parked as that packet (~60 bytes) and thawed by replaying it.
"""

from __future__ import annotations

import marshal
import struct
import zlib
from typing import TYPE_CHECKING, Final, Protocol

from analyzer.decode.packet import PROTO_TCP, Packet, format_endpoint, split_flow_key
from analyzer.tcp.digest import SAVABLE, Sha256, resume, save
from analyzer.tcp.flow import MASK32
from analyzer.tcp.result import SideInfo, TcpStreamResult
from analyzer.tcp.stream import Stream
from analyzer.tcp.vocabulary import LABEL_PORT_REUSE, SYN

if TYPE_CHECKING:
    from analyzer.tcp.tracker import TcpTracker

# A parked stream's record (see `freeze`) starts with its number and whether it is
# a lone packet; then, if so, that packet without what its key says (frame, ts,
# interface, seq, ack, flags, window, whether it reused a finished stream's ports) and its
# TCP options; else the compressed state.
PARKED: Final = struct.Struct("<q?")
_LONE: Final = struct.Struct("<QdIIIHH?")
# where some of its fields are, from the record's start
_LONE_AT_TS: Final = 9 + 8
_LONE_AT_INTERFACE: Final = 9 + 16
_LONE_AT_SEQ: Final = 9 + 20
_LONE_AT_FLAGS: Final = 9 + 28
_LONE_TS: Final = struct.Struct("<d")
_LONE_FRAME_TS: Final = struct.Struct("<Qd")
_LONE_SEQ: Final = struct.Struct("<I")
_LONE_FLAGS: Final = struct.Struct("<H")
# The tracker's index of parked streams holds, per stream, the store's handle and the
# stream's last packet time (the float's bits, exact) as one int (see `parked_entry`).
_END: Final = struct.Struct("<d")
_END_BITS: Final = 64
_END_MASK: Final = (1 << 64) - 1


# What a parked stream keeps (see `freeze`): every attribute of these classes but
# the ones thawing makes anew (references, the hashers, kept records, the conflict tail,
# which parking drops as any stream this quiet drops it). tests/tcp/test_parking.py
# checks these lists against the classes' attributes, so none can be forgotten here.
STREAM_STATE: Final = (
    "start", "completeness", "states", "watch", "first_flags", "labels",
    "analysis", "established", "rtt", "first_fin_side", "closed", "syn_side", "first_frame",
)
STREAM_REMADE: Final = (  # (the number is the record's own, the keys its index's)
    "number", "keys", "tracker", "flows", "history", "zeek_states", "records", "chunks",
    "conflict_now", "lone",
)
FLOW_STATE: Final = (
    "steady", "next_raw", "high", "next_off", "last_ack", "last_win", "completeness",
    "high_ts", "keepalive", "need_d", "need_a", "dup_acks", "packets", "last_seen",
    "pending", "side", "addr", "port", "seen", "isn", "syn", "bare_syn", "syn_acked",
    "acked_off", "pending_keys", "pending_bytes", "gaps", "fin_off", "fin_frame",
    "rst_frame", "rst_cause", "syn_options", "syn_ts",
)
FLOW_REMADE: Final = ("stream", "peer", "hasher", "tail", "tail_len", "tail_holes")
HISTORY_STATE: Final = ("letters", "marks", "last", "counts")


def parked_entry(handle: int, end: float) -> int:
    """A parked stream's index value: its store handle and its end time, exactly."""
    return handle << _END_BITS | int.from_bytes(_END.pack(end), "little")


def parked_end(entry: int) -> float:
    end: float = _END.unpack((entry & _END_MASK).to_bytes(8, "little"))[0]
    return end


def parked_handle(entry: int) -> int:
    """A parked stream's store handle, from its index value."""
    return entry >> _END_BITS


def freeze(stream: Stream) -> tuple[bytes, tuple[Sha256 | None, Sha256 | None] | None]:
    """The stream's state as one record of bytes (see `TcpTracker._park`), the
    hashers' states in it where they can be saved (digest.py); else they come back
    beside it, as objects. The conflict tails are dropped first. A stream that has
    seen nothing but its `lone` first packet is parked as that packet: a third of the
    memory and of the time (a SYN scan parks every stream)."""
    first, second = stream.flows
    lone = stream.lone
    if lone is not None and first.packets == 1 and not second.packets:
        return lone_record(stream.number, lone, LABEL_PORT_REUSE in stream.labels), None
    stream.forget_tails()
    history = stream.history
    hashers: tuple[Sha256 | None, Sha256 | None] | None = None
    saved: tuple[bytes | None, bytes | None] = (None, None)
    if SAVABLE:
        saved = (save(first.hasher) if first.hasher is not None else None,
                 save(second.hasher) if second.hasher is not None else None)
    elif first.hasher is not None or second.hasher is not None:
        hashers = (first.hasher, second.hasher)
    state = (
        tuple([getattr(stream, name) for name in STREAM_STATE]),
        tuple([getattr(first, name) for name in FLOW_STATE]),
        tuple([getattr(second, name) for name in FLOW_STATE]),
        tuple([getattr(history, name) for name in HISTORY_STATE]),
        tuple(stream.zeek_states.states),
        saved,
    )
    return (PARKED.pack(stream.number, False) +
            zlib.compress(marshal.dumps(state), 1)), hashers

def lone_record(number: int, pkt: Packet, reused: bool) -> bytes:
    """The record of stream `number` while it is its first packet `pkt` alone, without
    data (`reused`: it reused a finished stream's ports); `thaw` replays it."""
    return (PARKED.pack(number, True) +
            _LONE.pack(pkt.frame, pkt.ts, pkt.interface, pkt.seq, pkt.ack, pkt.flags,
                       pkt.window, reused) + pkt.tcp_options)


def lone_isn(record: bytes) -> int:
    """The ISN the first direction of a `lone_record`'s stream has (as `Flow.start` sets
    it): a SYN's sequence number, else the one before."""
    seq: int = _LONE_SEQ.unpack_from(record, _LONE_AT_SEQ)[0]
    flags: int = _LONE_FLAGS.unpack_from(record, _LONE_AT_FLAGS)[0]
    return seq if flags & SYN else (seq - 1) & MASK32


def lone_end(record: bytes) -> float:
    """The time of a `lone_record`'s packet."""
    ts: float = _LONE_TS.unpack_from(record, _LONE_AT_TS)[0]
    return ts


def lone_shape(key: bytes, record: bytes) -> bytes:
    """Everything in a `lone_record` (and its key) that can make its stream's result
    differ from another's but for what `lone_result` puts in: the stream number, frame,
    time, addresses and ports, and the sequence and acknowledgement numbers (a lone
    packet's analysis is relative to its own ISN, and no peer was seen). Also its
    interface, its flags, window and TCP options, and whether it reused ports."""
    return (bytes((len(key),)) + record[_LONE_AT_INTERFACE:_LONE_AT_SEQ] +
            record[_LONE_AT_FLAGS:])


def lone_result(template: TcpStreamResult, key: bytes, record: bytes,
                evicted: bool) -> TcpStreamResult:
    """The result of the stream of a `lone_record` (its key: `key`), made from `template`,
    the result `thaw(...).finish()` gave for a record of the same `lone_shape`: what
    differs between the two is put in (tests/tcp/test_probes.py checks it against the
    full path for every flag combination). The template's labels, gaps and analysis
    counts are shared, not copied (a million probes, three containers each): nothing
    changes a result once it is made."""
    number, frame, start, end, client, server = lone_fields(template, key, record)
    seq: int = _LONE_SEQ.unpack_from(record, _LONE_AT_SEQ)[0]
    return TcpStreamResult(
        stream=number,
        client=_lone_side(template.client, client, frame, seq),
        server=_lone_side(template.server, server, frame, seq),
        direction_guessed=template.direction_guessed, packets=template.packets,
        start=start, end=end,
        handshake=template.handshake, close=template.close, labels=template.labels,
        completeness=template.completeness, history=template.history,
        conn_state=template.conn_state, gaps=template.gaps,
        analysis=template.analysis, initial_rtt=template.initial_rtt,
        active_closer=template.active_closer, evicted=evicted, records=None, chunks=None,
        first_frame=frame, template=template)


def lone_fields(template: TcpStreamResult, key: bytes,
                record: bytes) -> tuple[int, int, float, float, str, str]:
    """What `lone_result(template, key, record, ...)` has of its own but for its sides'
    ISN and FIN / RST frame: its stream number, first frame, start, end, client and
    server endpoints (all its `tcp_stream` line has that the template's has not)."""
    number: int = PARKED.unpack_from(record)[0]
    frame: int
    ts: float
    frame, ts = _LONE_FRAME_TS.unpack_from(record, PARKED.size)
    src, sport, dst, dport = split_flow_key(key)
    sender = format_endpoint(src, sport)
    receiver = format_endpoint(dst, dport)
    # as Stream.end: the later direction's last packet, the silent one's last_seen 0.0
    end = max(ts, 0.0)
    if template.client.packets == 1:
        return number, frame, ts, end, sender, receiver
    return number, frame, ts, end, receiver, sender


def _lone_side(template: SideInfo, endpoint: str, frame: int, seq: int) -> SideInfo:
    """One side of a `lone_result`: the template's, with the packet's frame (its FIN or
    RST) and sequence number (its SYN's ISN) where the template's packet had its own."""
    return SideInfo(
        endpoint=endpoint, isn=seq if template.isn is not None else None,
        syn_options=template.syn_options, packets=template.packets, bytes=template.bytes,
        sha256=template.sha256,
        fin_frame=frame if template.fin_frame is not None else None,
        rst_frame=frame if template.rst_frame is not None else None,
        rst_cause=template.rst_cause)


def thaw(tracker: TcpTracker, key: bytes, record: bytes,
         hashers: tuple[Sha256 | None, Sha256 | None] | None) -> Stream:
    """The stream `freeze` made `record` (and `hashers`) from, as it was; `key`: its
    first direction's."""
    number, lone_packet = PARKED.unpack_from(record)
    body = PARKED.size
    src, sport, dst, dport = split_flow_key(key)
    version = 4 if len(src) == 4 else 6
    if lone_packet:  # the packet again, and what TcpTracker._open did with it
        frame, ts, interface, seq, ack, flags, window, reused = _LONE.unpack_from(
            record, body)
        lone = Packet(frame, ts, interface, version, src, dst, PROTO_TCP, sport, dport,
                      b"", 0, seq, ack, flags, window, record[body + _LONE.size:], key)
        stream = Stream(tracker, number, lone, False, reused)
        stream.on_packet(lone, 0)
        return stream
    state = marshal.loads(zlib.decompress(record[body:]))
    # The constructor takes the stream's first packet: one with the same addresses and
    # ports; every attribute is then set from the state.
    template = Packet(0, 0.0, 0, version, src, dst, PROTO_TCP, sport, dport, b"", 0,
                      key=key)
    stream = Stream(tracker, number, template, False, False)
    stream.lone = None
    for name, value in zip(STREAM_STATE, state[0], strict=True):
        setattr(stream, name, value)
    objects = hashers if hashers is not None else (None, None)
    for flow, values, hasher, saved in zip(stream.flows, state[1:3], objects, state[5],
                                           strict=True):
        for name, value in zip(FLOW_STATE, values, strict=True):
            setattr(flow, name, value)
        flow.hasher = resume(saved) if saved is not None else hasher
    for name, value in zip(HISTORY_STATE, state[3], strict=True):
        setattr(stream.history, name, value)
    stream.zeek_states.states = list(state[4])
    return stream



class ParkingStore(Protocol):
    """Where `TcpTracker` keeps parked streams' records: `put` one, get a handle; `get`
    it back; `free` it once the stream is thawed. `analyzer.run.spill.SpillFile` keeps them
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



def parked_number(record: bytes) -> int:
    """The stream number a parked record holds."""
    number: int = PARKED.unpack_from(record)[0]
    return number
