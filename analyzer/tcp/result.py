"""Results of the TCP tracker: one `TcpStreamResult` per connection, plus the per-packet
records (`PacketRecord`) and follow chunks (`Chunk`) kept for streams a view asked for.

Results use "client" and "server" (SPEC); internally the tracker numbers directions by
who sent first, and translates when it builds the result.
"""

from __future__ import annotations

import math
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Final, NamedTuple

from analyzer.decode.packet import format_endpoint, parse_tcp_options
from analyzer.tcp import completeness as completeness_bits

ANALYSIS_KEYS: Final = ("retransmission", "fast_retransmission", "out_of_order", "dup_ack",
                 "zero_window", "keep_alive", "lost_segment", "acked_unseen",
                 "overlap_conflict")


class Chunk(NamedTuple):
    """New in-order bytes one packet added to a direction: what Follow prints as a block."""

    from_client: bool
    frame: int
    ts: float
    data: bytes


class Gap(NamedTuple):
    """Bytes of a direction never seen in the capture (offset in that direction's stream)."""

    from_client: bool
    offset: int
    length: int


class Conflict(NamedTuple):
    """A retransmission whose bytes differ from the first copy (which Follow keeps)."""

    from_client: bool
    frame: int
    offset: int
    first: bytes
    retransmitted: bytes


class PacketRecord:
    """One packet of a kept stream, for the ladder view.

    `events` are codes (see `analyzer.tcp.tracker` EVENT_*), which views turn into words.
    `client_state` / `server_state` are RFC 9293 state names after the packet.
    """

    __slots__ = (
        "frame", "ts", "from_client", "flags", "seq", "ack", "length", "window", "rel_seq",
        "rel_ack", "client_state", "server_state", "events", "options", "payload",
    )

    def __init__(
        self,
        frame: int,
        ts: float,
        from_client: bool,
        flags: int,
        seq: int,
        ack: int,
        length: int,
        window: int,
        rel_seq: int = 0,
        rel_ack: int = 0,
        client_state: str = "",
        server_state: str = "",
        events: list[str] | None = None,
        options: dict[str, Any] | None = None,
        payload: bytes = b"",
    ) -> None:
        self.frame = frame
        self.ts = ts
        self.from_client = from_client
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.length = length
        self.window = window
        self.rel_seq = rel_seq
        self.rel_ack = rel_ack
        self.client_state = client_state
        self.server_state = server_state
        self.events = [] if events is None else events
        self.options = options
        self.payload = payload


class SideInfo:
    """What one endpoint announced and did."""

    __slots__ = (
        "endpoint", "isn", "syn_options", "packets", "bytes", "sha256", "fin_frame",
        "rst_frame", "rst_cause",
    )

    def __init__(
        self,
        endpoint: str,
        isn: int | None = None,
        syn_options: bytes = b"",
        packets: int = 0,
        bytes: int = 0,
        sha256: str = "",
        fin_frame: int | None = None,
        rst_frame: int | None = None,
        rst_cause: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.isn = isn  # None without a SYN from this side
        self.syn_options = syn_options  # its SYN's TCP options, raw (parsed only when asked for)
        self.packets = packets
        self.bytes = bytes
        self.sha256 = sha256
        self.fin_frame = fin_frame
        self.rst_frame = rst_frame
        self.rst_cause = rst_cause

    @property
    def options(self) -> dict[str, Any]:
        """The options its SYN announced: mss, wscale, sack_perm, timestamps, tfo."""
        return parse_tcp_options(self.syn_options)


class TcpStreamResult:
    """Everything known about one TCP connection at the end of the capture."""

    __slots__ = (
        "stream", "client", "server", "direction_guessed", "packets", "start", "end",
        "handshake", "close", "labels", "completeness", "history", "conn_state", "gaps",
        "analysis", "initial_rtt", "active_closer", "evicted", "records", "chunks", "conflicts",
        "first_frame",
    )

    def __init__(
        self,
        stream: int,
        client: SideInfo,
        server: SideInfo,
        direction_guessed: bool,
        packets: int,
        start: float,
        end: float,
        handshake: str,
        close: str,
        labels: list[str],
        completeness: int,
        history: str,
        conn_state: str,
        gaps: list[Gap],
        analysis: dict[str, int],
        initial_rtt: float | None = None,
        active_closer: str | None = None,
        evicted: bool = False,
        records: list[PacketRecord] | None = None,
        chunks: list[Chunk] | None = None,
        conflicts: list[Conflict] | None = None,
        first_frame: int = 0,
    ) -> None:
        self.stream = stream
        self.client = client
        self.server = server
        self.direction_guessed = direction_guessed
        self.packets = packets
        self.start = start
        self.end = end
        self.handshake = handshake
        self.close = close
        self.labels = labels
        self.completeness = completeness
        self.history = history
        self.conn_state = conn_state
        self.gaps = gaps
        self.analysis = analysis
        self.initial_rtt = initial_rtt
        self.active_closer = active_closer  # "client" / "server" (first FIN)
        self.evicted = evicted
        self.records = records  # kept streams only
        self.chunks = chunks  # kept streams only
        self.conflicts = [] if conflicts is None else conflicts
        self.first_frame = first_frame  # frame number of the stream's first packet

    @property
    def completeness_label(self) -> str:
        return completeness_bits.label(self.completeness)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def client_data(self) -> bytes:
        """Reassembled client-to-server bytes (kept streams only)."""
        return b"".join(c.data for c in self.chunks or () if c.from_client)

    def server_data(self) -> bytes:
        return b"".join(c.data for c in self.chunks or () if not c.from_client)

    def json_line(self) -> str:
        """`to_json()` as JSON text, exactly what the standard library's encoder makes of it
        (ASCII, ", " and ": ", no NaN), written directly: ~3x faster than encoding the
        dict, and `read --json` does it for every connection (tests compare the two)."""
        client, server = self.client, self.server
        gaps = ", ".join([f'{{"direction": "{"client" if g.from_client else "server"}", '
                          f'"offset": {g.offset}, "length": {g.length}}}' for g in self.gaps])
        analysis = ", ".join([f"{_text(key)}: {count}" for key, count in self.analysis.items()])
        labels = ", ".join([_text(label) for label in self.labels])
        return (
            f'{{"type": "tcp_stream", "stream": {self.stream}, '
            f'"client": {_text(client.endpoint)}, "server": {_text(server.endpoint)}, '
            f'"direction_guessed": {"true" if self.direction_guessed else "false"}, '
            f'"packets": {self.packets}, "start": {_number(self.start)}, '
            f'"end": {_number(self.end)}, "handshake": {_text(self.handshake)}, '
            f'"close": {_text(self.close)}, "labels": [{labels}], '
            f'"completeness": {self.completeness}, "history": {_text(self.history)}, '
            f'"conn_state": {_text(self.conn_state)}, "client_bytes": {client.bytes}, '
            f'"server_bytes": {server.bytes}, "client_sha256": {_text(client.sha256)}, '
            f'"server_sha256": {_text(server.sha256)}, "gaps": [{gaps}], '
            f'"analysis": {{{analysis}}}}}')

    def to_json(self) -> dict[str, Any]:
        """The SPEC `tcp_stream` object."""
        return {
            "type": "tcp_stream",
            "stream": self.stream,
            "client": self.client.endpoint,
            "server": self.server.endpoint,
            "direction_guessed": self.direction_guessed,
            "packets": self.packets,
            "start": self.start,
            "end": self.end,
            "handshake": self.handshake,
            "close": self.close,
            "labels": list(self.labels),
            "completeness": self.completeness,
            "history": self.history,
            "conn_state": self.conn_state,
            "client_bytes": self.client.bytes,
            "server_bytes": self.server.bytes,
            "client_sha256": self.client.sha256,
            "server_sha256": self.server.sha256,
            "gaps": [{"direction": "client" if g.from_client else "server",
                      "offset": g.offset, "length": g.length} for g in self.gaps],
            "analysis": dict(self.analysis),
        }


def _text(value: str) -> str:
    """A JSON string as json.dumps writes it (ensure_ascii): its own C function."""
    return encode_basestring_ascii(value)


def _number(value: float) -> str:
    """A JSON number as json.dumps writes it: repr, and no NaN or infinity (allow_nan=False
    in the encoder report/jsonl.py uses)."""
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"out of range float value for JSON: {value!r}")
    return repr(value)


def endpoint_text(addr: bytes, port: int) -> str:
    return format_endpoint(addr, port)
