"""Results of the TCP tracker: one `TcpStreamResult` per connection, plus the per-packet
records (`PacketRecord`) and follow chunks (`Chunk`) kept for streams a view asked for.

Results use "client" and "server" (SPEC); internally the tracker numbers directions by
who sent first, and translates when it builds the result. Plain data: views encode them
(JSON Lines: analyzer/report/tcp_json.py; tables, Follow, the ladder: report/tcp_view.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple, Protocol

from analyzer.decode.packet import parse_tcp_options
from analyzer.tcp import completeness as completeness_bits
from analyzer.tcp.vocabulary import ACK, SYN

MASK32: Final = 0xFFFFFFFF  # (tcp/flow.py's; flow imports this module)


class Chunk(NamedTuple):
    """New in-order bytes one packet added to a direction: what Follow prints as a block."""

    from_client: bool
    frame: int
    ts: float
    data: bytes


class ChunkLog(Protocol):
    """Where a kept stream's Follow chunks go, in delivery order: `ChunkList` keeps them
    in memory (the tracker's default); `tcp follow` gives the tracker one in a temporary
    file (analyzer/run/spill.py `ChunkSpool`), so a stream of any size costs it one chunk."""

    def append(self, chunk: Chunk) -> None: ...

    def flipped(self) -> ChunkLog:
        """The same chunks with `from_client` the other way round (the tracker learns
        which side is the client only at the end)."""
        ...

    def __iter__(self) -> Iterator[Chunk]: ...


class ChunkList:
    """A `ChunkLog` in memory."""

    __slots__ = ("items",)

    def __init__(self, items: list[Chunk] | None = None) -> None:
        self.items: list[Chunk] = [] if items is None else items

    def append(self, chunk: Chunk) -> None:
        self.items.append(chunk)

    def flipped(self) -> ChunkList:
        return ChunkList([c._replace(from_client=not c.from_client) for c in self.items])

    def __iter__(self) -> Iterator[Chunk]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


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

    `events` are codes of `analyzer.tcp.vocabulary` (EVENT_* and the analysis kinds),
    which views turn into words.
    `client_state` / `server_state` are RFC 9293 state names after the packet.
    `tcp_options`: a SYN's TCP options, raw (`options` parses them); empty on other packets.
    `conflict`: the packet's retransmitted bytes that differ from the first copy, if any
    (kept here, not in a list of the stream's, so that a spooled ladder spools them too).
    """

    __slots__ = (
        "frame", "ts", "from_client", "flags", "seq", "ack", "length", "window", "rel_seq",
        "rel_ack", "client_state", "server_state", "events", "tcp_options", "conflict",
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
        tcp_options: bytes = b"",
        conflict: Conflict | None = None,
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
        self.tcp_options = tcp_options
        self.conflict = conflict

    @property
    def options(self) -> dict[str, Any] | None:
        """A SYN's options (mss, wscale, sack_perm, timestamps, tfo); None on other packets."""
        return parse_tcp_options(self.tcp_options) if self.flags & SYN else None

    def settle(self, first_is_client: bool, client_isn: int, server_isn: int) -> None:
        """What the stream learns only at its end, written into the record taken while
        directions were numbered by who sent first (`Stream`): which of them is the
        client (`first_is_client`: the first packet's sender), and relative seq/ack from
        both sides' ISNs."""
        from_client = self.from_client == first_is_client
        own, other = (client_isn, server_isn) if from_client else (server_isn, client_isn)
        self.rel_seq = (self.seq - own) & MASK32
        self.rel_ack = (self.ack - other) & MASK32 if self.flags & ACK else 0
        if not first_is_client:
            self.client_state, self.server_state = self.server_state, self.client_state
        self.from_client = from_client
        if self.conflict is not None:
            self.conflict = self.conflict._replace(from_client=from_client)


class RecordLog(Protocol):
    """Where a kept stream's ladder records go, in capture order: `RecordList` keeps them
    in memory (the tracker's default: live views, tests); `tcp ladder` gives the tracker
    one in a temporary file (analyzer/run/spill.py `RecordSpool`), so a stream of any
    size costs it one record in memory."""

    def append(self, record: PacketRecord) -> None: ...

    def settle(self, first_is_client: bool, client_isn: int, server_isn: int) -> None:
        """Once, at the stream's end: every record as `PacketRecord.settle` makes it,
        from then on (a log in a file applies it as it reads the records back)."""
        ...

    def max_frame(self) -> int:
        """The highest frame number recorded (0 when none)."""
        ...

    def __iter__(self) -> Iterator[PacketRecord]: ...

    def __len__(self) -> int: ...


class RecordList:
    """A `RecordLog` in memory."""

    __slots__ = ("items",)

    def __init__(self, items: list[PacketRecord] | None = None) -> None:
        self.items: list[PacketRecord] = [] if items is None else items

    def append(self, record: PacketRecord) -> None:
        self.items.append(record)

    def settle(self, first_is_client: bool, client_isn: int, server_isn: int) -> None:
        for record in self.items:
            record.settle(first_is_client, client_isn, server_isn)

    def max_frame(self) -> int:
        return max([record.frame for record in self.items], default=0)

    def __iter__(self) -> Iterator[PacketRecord]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


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
        "analysis", "initial_rtt", "active_closer", "evicted", "records", "chunks",
        "first_frame", "template",
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
        records: RecordLog | None = None,
        chunks: ChunkLog | None = None,
        first_frame: int = 0,
        template: TcpStreamResult | None = None,
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
        self.first_frame = first_frame  # frame number of the stream's first packet
        # A probe's result (tcp/parking.py lone_result): the result it was made from,
        # which it equals from `handshake` on (views may reuse what they made of it).
        self.template = template

    @property
    def conflicts(self) -> list[Conflict]:
        """A kept stream's retransmissions whose bytes differ from the first copy, in
        capture order (from its records; `read` only counts them: overlap_conflict)."""
        return [record.conflict for record in self.records or ()
                if record.conflict is not None]

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
