"""Sans-IO TFTP transfer tracker: captured packets in, transfers, files and findings out.

Theory of operation
-------------------
A transfer starts with an RRQ or WRQ sent to a TFTP port (69 plus any `extra_ports`).
The server answers from a new port, its transfer ID (TID), and a wildcard-bound server
may answer from another address than the one the request went to; so a transfer is
matched by the client endpoint and the server's port, never by the IP pair:

    flow key = (client address, client port, server TID port)

Every UDP packet is looked up by that key in both directions; the first TFTP packet
sent to a client endpoint whose request is still unanswered fixes the server's TID.
Packets that reach a transfer's endpoint from any other endpoint are strays (a wrong
TID): they belong to no transfer, and the tracker watches how the peer answers them
(ERROR 5 as RFC 1350 says, an ICMP port unreachable, nothing, or worse). Non-TFTP UDP
is rejected by two set lookups on the ports.

The DATA sender is the server for an RRQ and the client for a WRQ. Blocks get absolute
numbers (block numbers wrap 65535 -> 0, or -> 1 on some servers: the first DATA after
the wrap decides, and the policy is reported). The file is rebuilt in block order and
hashed on the fly; only blocks that arrive ahead of a gap are held. A gap becomes
permanent - bytes the capture never saw - once the receiver acknowledges past it (it
got them, so nobody will resend), when too many blocks are held, or at the end; the
gap is zero-filled (full blocks) and reported. The final block is the first shorter
than the blksize in effect (the OACK's value, not clamped), which makes an empty final
block after an exact multiple work without a special case. netascii is decoded as it
streams (`NetasciiDecoder`).

File bytes go to an optional sink (`analyzer.tftp.extract.Extractor`): the tracker
never touches files itself, and keeps no file in memory.

Verdicts are collected as findings, each with the frame that shows it (codes are
documented in docs/tftp.md).

A transfer is settled (status, gaps, findings, file closed) at the end of the capture,
or earlier once it is over: its last packet is `linger` seconds of capture time old and
it had ended (final block acknowledged, or an ERROR; a sender dallying over a lost last
ACK, RFC 1350 section 6, resends within seconds), or `idle_timeout` seconds old if it
never ended. A packet that late no longer counts in it. Its matching state is then freed
and it goes to `on_result` when one is given, so a capture of any length holds only the
transfers still under way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Final, NamedTuple, Protocol

from analyzer.decode.icmp import icmp_error_name, is_port_unreachable, quoted_datagram
from analyzer.decode.packet import PROTO_UDP, Packet, format_address, format_endpoint
from analyzer.tftp.codec import (
    ACK,
    DATA,
    DEFAULT_BLKSIZE,
    DEFAULT_WINDOWSIZE,
    ERR_UNKNOWN_TID,
    ERROR,
    OACK,
    RRQ,
    TFTP_PORT,
    WRQ,
    Error,
    MalformedPacket,
    OAck,
    Options,
    Request,
    decode,
    error_name,
    option_in_range,
    option_int,
    options_dict,
)
from analyzer.tftp.netascii import NetasciiDecoder

CLIENT: Final = "client"
SERVER: Final = "server"

# Bytes held ahead of a gap before the gap is declared lost for good (per transfer): the
# receiver's ACKs usually settle a gap long before (they are missing only when the
# capture saw one direction).
MAX_HELD_BYTES: Final = 8 << 20
# Wrap detection: a block number this far below the expected one is past a rollover.
_HALF: Final = 32768
# Only this close to block 65535 can a small block number mean a wrap.
_WRAP_ZONE: Final = 65536 - 4096
# Capture seconds between two looks for transfers that are over (on a new request).
SWEEP_EVERY: Final = 10.0


class Finding(NamedTuple):
    """One verdict: a short code, a sentence, and the frame that shows it."""

    code: str
    message: str
    frame: int | None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "frame": self.frame}


class Gap(NamedTuple):
    """Blocks (absolute numbers) the capture never saw; offset/length in the rebuilt file.

    `last` and `length` are None for a missing tail of unknown size.
    """

    first: int
    last: int | None
    offset: int
    length: int | None


class TimelineEvent(NamedTuple):
    """One packet of a transfer, for `tftp show` (recorded only when asked)."""

    frame: int
    ts: float
    sender: str  # CLIENT, SERVER, or an endpoint text for strays
    kind: str  # RRQ, WRQ, DATA, ACK, ERROR, OACK, ICMP, MALFORMED
    block: int | None  # absolute block number for DATA/ACK
    length: int | None  # DATA payload bytes
    note: str  # "", "retransmission", "final", "duplicate request", error text, ...


class FileWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self, transfer: TftpTransfer) -> str | None: ...


class FileSink(Protocol):
    """Where rebuilt files go: `open` when a transfer's first byte arrives, then in-order
    `write`s (gaps already zero-filled), then `close` with the finished transfer, which
    returns the path written."""

    def open(self, transfer: TftpTransfer) -> FileWriter: ...


class TftpTransfer:
    """One TFTP request and everything that followed it: the result object."""

    def __init__(self, number: int, request: Request, pkt: Packet) -> None:
        self.number = number
        self.request = request
        self.client_addr = pkt.src
        self.client_port = pkt.sport
        self.request_addr = pkt.dst
        self.listen_port = pkt.dport
        self.server_addr: bytes | None = None
        self.server_port: int | None = None
        self.start = pkt.ts
        self.end = pkt.ts
        self.first_frame = pkt.frame
        self.packets = 1
        self.requests = 1
        self.data_sender = SERVER if request.opcode == RRQ else CLIENT
        mode = request.mode.lower()
        self.netascii = mode == "netascii"
        self.options: dict[str, str] = options_dict(request.options)
        self.oack: Options | None = None
        self.blksize = DEFAULT_BLKSIZE
        self.windowsize = DEFAULT_WINDOWSIZE
        self.timeout: int | None = None
        self.tsize: int | None = None
        self.status = "incomplete"
        self.error: Error | None = None
        self.error_frame: int | None = None
        self.error_by: str | None = None
        self.ended = False  # final block acknowledged, or an ERROR: no more data expected
        self.bytes = 0
        self.wire_bytes = 0
        self.blocks = 0
        self.retransmissions = 0
        self.gaps: list[Gap] = []
        self.extracted: str | None = None
        self.findings: list[Finding] = []
        self.events: list[TimelineEvent] | None = None
        self.rollover: int | None = None  # 0 or 1: what block number followed 65535
        self.rollover_frame: int | None = None
        # Reassembly state.
        self._hash: Any = None
        self._sha256: str | None = None  # the file's digest, once `release`d
        self._next = 1  # next absolute block to append to the file
        self._final: int | None = None  # absolute number of the final block, once seen
        self._held: dict[int, bytes] = {}
        self._held_bytes = 0
        self._acked = 0  # highest block the receiver acknowledged (absolute)
        self._full_size = DEFAULT_BLKSIZE  # size of a non-final block, for zero fill
        self._decoder = NetasciiDecoder() if self.netascii else None
        self._writer: FileWriter | None = None
        # Verdict state.
        self._counted: dict[str, list[Any]] = {}  # code -> [first frame, count, detail]
        # block -> (first sent, size, digest of the data): a digest, not the data, so a
        # finished transfer kept for the report holds a few bytes per recent block
        self._recent: dict[int, tuple[float, int, bytes]] = {}
        self._ack_copies: dict[int, int] = {}  # recent blocks -> ACKs seen
        self._data_copies: dict[int, int] = {}  # recent blocks -> DATA copies seen
        self._ack0_seen = False
        self._data_seen = False
        self._request_ts = pkt.ts
        self._oack_ts: float | None = None
        self._first_resend: tuple[str, float, int] | None = None
        self._strays: list[_Stray] = []
        self._stray_answers: dict[int, str] = {}  # stray frame -> how it was answered
        self._client_answered = False  # the client has sent to the locked server TID
        self._locked_frame = 0

    # -- identity ------------------------------------------------------------------------

    @property
    def client(self) -> str:
        return format_endpoint(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        if self.server_port is None or self.server_addr is None:
            return format_endpoint(self.request_addr, self.listen_port)
        return format_endpoint(self.server_addr, self.server_port)

    @property
    def sha256(self) -> str | None:
        return self._sha256 if self._hash is None else self._hash.hexdigest()

    def release(self) -> None:
        """Settled: drop what only tracking needed (the result keeps a few hundred bytes)."""
        if self._hash is not None:
            self._sha256 = self._hash.hexdigest()
            self._hash = None
        self._held.clear()
        self._counted.clear()
        self._recent.clear()
        self._ack_copies.clear()
        self._data_copies.clear()
        self._strays.clear()
        self._stray_answers.clear()

    @property
    def missing_blocks(self) -> list[dict[str, int | None]]:
        return [{"first": g.first, "last": g.last} for g in self.gaps]

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        """The SPEC `tftp_transfer` object, plus `findings`."""
        return {
            "type": "tftp_transfer",
            "client": self.client,
            "server": self.server,
            "request": self.request.name,
            "filename": self.request.filename,
            "mode": self.request.mode,
            "options": self.options,
            "oack": None if self.oack is None else options_dict(self.oack),
            "blksize": self.blksize,
            "windowsize": self.windowsize,
            "status": self.status,
            "error": None if self.error is None
            else {"code": self.error.code, "message": self.error.message},
            "bytes": self.bytes,
            "sha256": self.sha256,
            "blocks": self.blocks,
            "missing_blocks": self.missing_blocks,
            "retransmissions": self.retransmissions,
            "extracted": self.extracted,
            "findings": [f.to_json() for f in self.findings],
        }

    # -- findings ------------------------------------------------------------------------

    def note(self, code: str, frame: int | None, message: str) -> None:
        self.findings.append(Finding(code, message, frame))

    def count(self, code: str, frame: int, detail: Any = None) -> None:
        """A finding that may repeat: keep the first frame and how often it happened."""
        entry = self._counted.get(code)
        if entry is None:
            self._counted[code] = [frame, 1, detail]
        else:
            entry[1] += 1

    def event(self, pkt: Packet, sender: str, kind: str, block: int | None = None,
              length: int | None = None, note: str = "") -> None:
        if self.events is not None:
            self.events.append(TimelineEvent(pkt.frame, pkt.ts, sender, kind, block, length,
                                             note))


# (after TftpTransfer: a compiled NamedTuple cannot refer to a class defined later)
class _Stray(NamedTuple):
    transfer: TftpTransfer
    side: str  # the side the stray packet was sent to
    frame: int
    sender: str  # endpoint text of the stray sender
    what: str  # what the stray packet was
    key: tuple[bytes, int]  # the stray sender's (address, port)


class TftpTracker:
    """Turns UDP and ICMP packets into `TftpTransfer`s (see the module docstring).

    `sink` receives the rebuilt files; `timeline` records every packet of the listed
    transfer numbers (or of all, when True) for `tftp show`. `linger` and `idle_timeout`:
    when a transfer is over (see the module docstring). `on_result`: each settled
    transfer goes to it, in the order they settle, instead of being kept for `results()`.
    """

    def __init__(self, extra_ports: Iterable[int] = (), sink: FileSink | None = None,
                 timeline: bool | Iterable[int] = False, linger: float = 60.0,
                 idle_timeout: float = 300.0,
                 on_result: Callable[[TftpTransfer], None] | None = None) -> None:
        self.listen_ports = frozenset({TFTP_PORT, *extra_ports})
        self.sink = sink
        self._timeline_all = timeline is True
        self._timeline_for = frozenset() if isinstance(timeline, bool) else frozenset(timeline)
        self.linger = linger
        self.idle_timeout = idle_timeout
        self.on_result = on_result
        self.transfers: list[TftpTransfer] = []  # every one, in request order (no on_result)
        self._count = 0  # transfers so far: the next one's number - 1
        self._live: dict[int, TftpTransfer] = {}  # not settled yet, by number
        self._swept_at = 0.0  # capture time of the last sweep
        # Ports worth a closer look: TFTP ports, clients' ports, servers' TIDs.
        self._ports: set[int] = set(self.listen_ports)
        self._flows: dict[tuple[bytes, int, int], TftpTransfer] = {}
        self._requests: dict[tuple[bytes, int, int], TftpTransfer] = {}
        self._by_client: dict[tuple[bytes, int], TftpTransfer] = {}
        self._server_ends: dict[tuple[bytes, int], TftpTransfer] = {}
        self._strays: dict[tuple[bytes, int], _Stray] = {}
        self._finished = False

    # -- input ---------------------------------------------------------------------------

    def on_packet(self, pkt: Packet) -> None:
        if pkt.proto != PROTO_UDP:
            self._on_icmp(pkt)
            return
        sport, dport = pkt.sport, pkt.dport
        ports = self._ports
        if dport not in ports and sport not in ports:
            return
        flows = self._flows
        transfer = flows.get((pkt.src, sport, dport))
        if transfer is not None and not self._over(transfer, pkt.ts):
            self._from_client(transfer, pkt)
            return
        transfer = flows.get((pkt.dst, dport, sport))
        if transfer is not None and not self._over(transfer, pkt.ts):
            if transfer.ended:
                # The client port and the server TID were both reused: a newer request
                # from this endpoint that is still unanswered owns the packet.
                newer = self._by_client.get((pkt.dst, dport))
                if newer is not None and newer is not transfer and newer.server_port is None:
                    self._unmatched(pkt)
                    return
            self._from_server(transfer, pkt)
            return
        self._unmatched(pkt)

    def finish(self) -> None:
        """End of capture: settle every transfer (status, gaps, findings, files)."""
        if self._finished:
            return
        self._finished = True
        for transfer in list(self._live.values()):
            self._retire(transfer)

    def results(self) -> list[TftpTransfer]:
        """Transfers in request order (none when they went to `on_result`)."""
        return list(self.transfers)

    def _over(self, transfer: TftpTransfer, now: float) -> bool:
        """Whether a transfer is over at capture time `now` (see the module docstring);
        one that is gets settled here, so a packet that late is not counted in it."""
        if now - transfer.end <= (self.linger if transfer.ended else self.idle_timeout):
            return False
        self._retire(transfer)
        return True

    def _sweep(self, now: float) -> None:
        """Settle the transfers that are over."""
        self._swept_at = now
        for transfer in list(self._live.values()):
            self._over(transfer, now)

    def _retire(self, transfer: TftpTransfer) -> None:
        """Settle a transfer, forget every key that leads to it, hand it on."""
        del self._live[transfer.number]
        self._settle(transfer)
        client = (transfer.client_addr, transfer.client_port)
        _forget(self._requests, (*client, transfer.listen_port), transfer)
        _forget(self._by_client, client, transfer)
        port = transfer.server_port
        if port is not None:
            _forget(self._flows, (*client, port), transfer)
            if transfer.server_addr is not None:
                _forget(self._server_ends, (transfer.server_addr, port), transfer)
            _forget(self._server_ends, (transfer.request_addr, port), transfer)
        for stray in transfer._strays:
            if self._strays.get(stray.key) is stray:
                del self._strays[stray.key]
        # (the ports stay in `_ports`: a pre-filter of at most 65536 numbers)
        transfer.release()
        if self.on_result is not None:
            self.on_result(transfer)

    def live_rows(self, limit: int) -> list[tuple[str, str, str]]:
        """(connection, packets, state) of the newest transfers, for the live sniff view."""
        rows = []
        for t in self.transfers[-limit:]:
            if t.error is not None:
                state = f"error {t.error.code} {error_name(t.error.code)}"
            elif t.ended:
                state = f"done, {t.bytes:,} bytes"
            else:
                state = f"{t.blocks} blocks, {t.bytes:,} bytes"
            rows.append((f"#{t.number} {t.client} → {t.server} {t.request.name} "
                         f"{t.request.filename}", str(t.packets), state))
        return rows

    # -- matching ------------------------------------------------------------------------

    def _unmatched(self, pkt: Packet) -> None:
        """A packet that is on no known flow: a request, a first answer, or a stray."""
        payload = pkt.payload
        if len(payload) < 2:
            return
        opcode = (payload[0] << 8) | payload[1]
        if pkt.dport in self.listen_ports and (opcode == RRQ or opcode == WRQ):
            self._on_request(pkt)
            return
        if not DATA <= opcode <= OACK:  # DATA, ACK, ERROR, OACK
            return
        pending = self._by_client.get((pkt.dst, pkt.dport))
        if pending is not None and pending.server_port is None:
            self._lock_tid(pending, pkt.src, pkt.sport, pkt.frame)
            self._from_server(pending, pkt)
            return
        sender = self._by_client.get((pkt.src, pkt.sport))
        if (sender is not None and sender.server_port is None
                and pkt.dport not in self.listen_ports):
            # The capture missed the server's first answer (say the ACK 0 of a WRQ), but
            # the client is already talking to the server's TID.
            self._lock_tid(sender, pkt.dst, pkt.dport, pkt.frame)
            self._from_client(sender, pkt)
            return
        if pending is not None:
            self._stray_in(pending, CLIENT, pkt, opcode)
            return
        target = self._server_ends.get((pkt.dst, pkt.dport))
        if target is not None:
            self._stray_in(target, SERVER, pkt, opcode)
            return
        stray = self._strays.get((pkt.dst, pkt.dport))
        if stray is not None:
            self._stray_answer(stray, pkt, opcode)

    def _on_request(self, pkt: Packet) -> None:
        try:
            request = decode(pkt.payload)
        except MalformedPacket:
            return  # not TFTP after all: something else talking to port 69
        assert isinstance(request, Request)
        key = (pkt.src, pkt.sport, pkt.dport)
        transfer = self._requests.get(key)
        if transfer is not None and transfer.request == request and not transfer.ended \
                and not self._over(transfer, pkt.ts):
            transfer.requests += 1
            transfer.packets += 1
            transfer.end = pkt.ts
            self._resent(transfer, request.name, pkt.ts - transfer._request_ts, pkt.frame)
            transfer.count("duplicate-request", pkt.frame)
            transfer.event(pkt, CLIENT, request.name, note="duplicate request")
            return
        if pkt.ts - self._swept_at > SWEEP_EVERY:
            # New transfers are what adds memory, so this is where old ones are settled.
            self._sweep(pkt.ts)
        self._count += 1
        transfer = TftpTransfer(self._count, request, pkt)
        if self._timeline_all or transfer.number in self._timeline_for:
            transfer.events = []
        transfer.event(pkt, CLIENT, request.name,
                       note=f"{request.filename!r} {request.mode} "
                            f"{_options_text(request.options)}".rstrip())
        self._live[transfer.number] = transfer
        if self.on_result is None:
            self.transfers.append(transfer)
        self._requests[key] = transfer
        self._by_client[(pkt.src, pkt.sport)] = transfer
        self._ports.add(pkt.sport)

    def _lock_tid(self, transfer: TftpTransfer, addr: bytes, port: int, frame: int) -> None:
        """The first answer to a request fixes the server's address and TID."""
        transfer.server_addr = addr
        transfer.server_port = port
        transfer._locked_frame = frame
        self._flows[(transfer.client_addr, transfer.client_port, port)] = transfer
        self._server_ends[(addr, port)] = transfer
        self._server_ends[(transfer.request_addr, port)] = transfer
        self._ports.add(port)
        if port == transfer.listen_port:
            transfer.note("same-port-reply", frame,
                          f"the server answered from its listening port {port} instead "
                          "of a new transfer ID (RFC 1350 section 4)")
        if addr != transfer.request_addr:
            transfer.note("server-address-changed", frame,
                          f"the request went to {format_address(transfer.request_addr)} but "
                          f"the server answered from {format_address(addr)}; the client "
                          "kept that endpoint (a wildcard-bound server)")

    # -- strays --------------------------------------------------------------------------

    def _stray_in(self, transfer: TftpTransfer, side: str, pkt: Packet, opcode: int) -> None:
        """A packet sent to one side of a transfer from an endpoint that is not its peer."""
        known = self._strays.get((pkt.src, pkt.sport))
        if known is not None and known.transfer is transfer:
            transfer.event(pkt, known.sender, "STRAY", note="again")
            return  # the same stray sender again (e.g. a resend): reported once
        sender = format_endpoint(pkt.src, pkt.sport)
        what = _describe(pkt.payload, opcode)
        stray = _Stray(transfer, side, pkt.frame, sender, what, (pkt.src, pkt.sport))
        transfer._strays.append(stray)
        self._strays[(pkt.src, pkt.sport)] = stray
        self._ports.add(pkt.sport)
        transfer.event(pkt, sender, "STRAY", note=f"{what} to the {side} from a wrong TID")

    def _stray_answer(self, stray: _Stray, pkt: Packet, opcode: int) -> None:
        transfer = stray.transfer
        if (stray.side == CLIENT and opcode != ERROR and transfer.requests > 1
                and not transfer._client_answered
                and (pkt.src, pkt.sport) == (transfer.client_addr, transfer.client_port)):
            self._relock(transfer, stray, pkt)
            return
        if stray.side == SERVER:
            own = (transfer.server_addr, transfer.server_port)
            if (pkt.src, pkt.sport) != own and (transfer.request_addr, transfer.server_port) \
                    != (pkt.src, pkt.sport):
                return
        elif (pkt.src, pkt.sport) != (transfer.client_addr, transfer.client_port):
            return
        if stray.frame in transfer._stray_answers:
            return
        if opcode == ERROR:
            try:
                message = decode(pkt.payload)
            except MalformedPacket:
                answer = f"a malformed ERROR (frame {pkt.frame})"
            else:
                assert isinstance(message, Error)
                answer = (f"ERROR {message.code} ({error_name(message.code)}) in frame "
                          f"{pkt.frame}")
                if message.code != ERR_UNKNOWN_TID:
                    answer += ", not ERROR 5 (Unknown transfer ID) as RFC 1350 asks"
        else:
            answer = (f"{_describe(pkt.payload, opcode)} in frame {pkt.frame}, as if it "
                      "were its peer")
        transfer._stray_answers[stray.frame] = answer
        transfer.event(pkt, stray.side, "STRAY", note=f"answer to the stray: {answer}")

    def _relock(self, transfer: TftpTransfer, stray: _Stray, pkt: Packet) -> None:
        """The request went out twice and two server TIDs answered at once. Which one
        the client heard first is not the capture's order (two sender CPUs), but it is
        what the client answers: follow the client. Both answered the same request, so
        what the first one sent stands; it becomes the stray the client refuses."""
        old_addr, old_port = transfer.server_addr, transfer.server_port
        old_frame = transfer._locked_frame
        assert old_addr is not None and old_port is not None
        self._flows.pop((transfer.client_addr, transfer.client_port, old_port), None)
        self._server_ends.pop((old_addr, old_port), None)
        self._server_ends.pop((transfer.request_addr, old_port), None)
        transfer._strays.remove(stray)
        del self._strays[(pkt.dst, pkt.dport)]
        new_addr, new_port = pkt.dst, pkt.dport
        transfer.server_addr = transfer.server_port = None
        self._lock_tid(transfer, new_addr, new_port, stray.frame)
        replaced = _Stray(transfer, CLIENT, old_frame,
                          format_endpoint(old_addr, old_port), "the first answer",
                          (old_addr, old_port))
        transfer._strays.append(replaced)
        self._strays[(old_addr, old_port)] = replaced
        transfer.event(pkt, CLIENT, "STRAY",
                       note=f"the client answers {format_endpoint(new_addr, new_port)}: "
                            "that is the server's transfer ID")
        self._from_client(transfer, pkt)

    # -- ICMP ----------------------------------------------------------------------------

    def _on_icmp(self, pkt: Packet) -> None:
        quoted = quoted_datagram(pkt)
        if quoted is None or quoted.proto != PROTO_UDP:
            return
        src, sport, dst, dport = quoted.src, quoted.sport, quoted.dst, quoted.dport
        if sport not in self._ports and dport not in self._ports:
            return
        what = icmp_error_name(pkt)
        flows = self._flows
        transfer = flows.get((src, sport, dport))
        if transfer is not None:
            transfer.count("icmp-unreachable", pkt.frame,
                           f"ICMP {what} for a packet the client sent to the server's "
                           f"transfer ID {dport}: the server was no longer listening"
                           + _after_end(transfer))
            transfer.event(pkt, SERVER, "ICMP", note=what)
            return
        transfer = flows.get((dst, dport, sport))
        if transfer is not None:
            transfer.count("icmp-unreachable", pkt.frame,
                           f"ICMP {what} for a packet the server sent to the client: the "
                           "client was no longer listening" + _after_end(transfer))
            transfer.event(pkt, CLIENT, "ICMP", note=what)
            return
        stray = self._strays.get((src, sport))
        if stray is not None and stray.frame not in stray.transfer._stray_answers:
            if is_port_unreachable(pkt):
                answer = f"ICMP {what} in frame {pkt.frame}, not ERROR 5"
            else:
                answer = f"ICMP {what} in frame {pkt.frame}"
            stray.transfer._stray_answers[stray.frame] = answer
            stray.transfer.event(pkt, stray.side, "ICMP", note=f"answer to the stray: {what}")
            return
        transfer = self._requests.get((src, sport, dport))
        if transfer is not None:
            transfer.count("icmp-unreachable", pkt.frame,
                           f"ICMP {what} for the request: no TFTP server at "
                           f"{format_endpoint(dst, dport)}")
            transfer.event(pkt, SERVER, "ICMP", note=what)

    # -- the two directions --------------------------------------------------------------

    def _from_client(self, transfer: TftpTransfer, pkt: Packet) -> None:
        payload = pkt.payload
        if len(payload) >= 2 and payload[1] in (RRQ, WRQ) and payload[0] == 0:
            self._on_request(pkt)  # a server answering from port 69 shares the flow key
            return
        transfer._client_answered = True
        self._on_message(transfer, pkt, CLIENT)

    def _from_server(self, transfer: TftpTransfer, pkt: Packet) -> None:
        self._on_message(transfer, pkt, SERVER)

    def _on_message(self, transfer: TftpTransfer, pkt: Packet, sender: str) -> None:
        transfer.packets += 1
        transfer.end = pkt.ts
        payload = pkt.payload
        # DATA and ACK are nearly every packet: read their 4-byte header in place.
        if len(payload) >= 4 and payload[0] == 0 and (payload[1] == DATA or payload[1] == ACK):
            block = (payload[2] << 8) | payload[3]
            if payload[1] == DATA:
                if sender == transfer.data_sender:
                    self._on_data(transfer, pkt, block, payload[4:])
                    return
                transfer.count("unexpected-packet", pkt.frame, f"DATA from the {sender}")
                transfer.event(pkt, sender, "DATA", block, len(payload) - 4,
                               "unexpected direction")
                return
            if sender != transfer.data_sender:
                self._on_ack(transfer, pkt, block)
                return
            transfer.count("unexpected-packet", pkt.frame, f"ACK from the {sender}")
            transfer.event(pkt, sender, "ACK", block, note="unexpected direction")
            return
        try:
            message = decode(payload)
        except MalformedPacket as exc:
            transfer.count("malformed", pkt.frame, str(exc))
            transfer.event(pkt, sender, "MALFORMED", note=str(exc))
            return
        if isinstance(message, Error):
            self._on_error(transfer, pkt, message, sender)
        elif isinstance(message, OAck):
            if sender != SERVER:
                transfer.count("unexpected-packet", pkt.frame, "OACK from the client")
                transfer.event(pkt, sender, "OACK", note="unexpected direction")
                return
            self._on_oack(transfer, pkt, message)
        else:  # a request on an established flow: only a server on port 69 gets here
            transfer.count("unexpected-packet", pkt.frame, f"{message.name} from the {sender}")

    # -- OACK ----------------------------------------------------------------------------

    def _on_oack(self, transfer: TftpTransfer, pkt: Packet, oack: OAck) -> None:
        if transfer.oack is not None:
            transfer.event(pkt, SERVER, "OACK", note="retransmission")
            if transfer._oack_ts is not None:
                self._resent(transfer, "OACK", pkt.ts - transfer._oack_ts, pkt.frame)
            return
        transfer.event(pkt, SERVER, "OACK", note=_options_text(oack.options))
        if transfer._data_seen:
            transfer.note("late-oack", pkt.frame, "an OACK arrived after DATA had started")
            return
        transfer.oack = oack.options
        transfer._oack_ts = pkt.ts
        requested = transfer.options
        acked = options_dict(oack.options)
        frame = pkt.frame
        seen: dict[str, int] = {}
        for name, _ in oack.options:
            seen[name.lower()] = seen.get(name.lower(), 0) + 1
        for name, times in seen.items():
            if times > 1:
                transfer.note("oack-repeated", frame,
                              f"the OACK names {name} {times} times; the last value "
                              f"({acked[name]}) is in effect")
        unrequested = [name for name in acked if name not in requested]
        if unrequested:
            transfer.note("oack-unrequested", frame,
                          "the OACK acknowledges options the client never requested: "
                          + ", ".join(f"{n}={acked[n]}" for n in unrequested)
                          + " (RFC 2347 allows only requested options)")
        for name, value in acked.items():
            if not option_in_range(name, value):
                transfer.note("option-out-of-range", frame,
                              f"the OACK accepts {name}={value!r}, outside the range "
                              "its RFC allows")
        self._check_oack_values(transfer, requested, acked, frame)
        blksize = option_int(acked.get("blksize"))
        if blksize is not None:
            transfer.blksize = blksize
            transfer._full_size = max(blksize, 1)
        windowsize = option_int(acked.get("windowsize"))
        if windowsize is not None:
            transfer.windowsize = windowsize
        transfer.timeout = option_int(acked.get("timeout"))
        transfer.tsize = option_int(acked.get("tsize"))

    @staticmethod
    def _check_oack_values(transfer: TftpTransfer, requested: dict[str, str],
                           acked: dict[str, str], frame: int) -> None:
        """Values a server may lower but not raise, or must echo (RFC 2348/2349/7440)."""
        for name in ("blksize", "windowsize"):
            asked, got = option_int(requested.get(name)), option_int(acked.get(name))
            if asked is not None and got is not None and got > asked:
                transfer.note("option-raised", frame,
                              f"the OACK raises {name} from the requested {asked} to {got}; "
                              "a server may only choose a smaller value")
        asked, got = option_int(requested.get("timeout")), option_int(acked.get("timeout"))
        if asked is not None and got is not None and got != asked:
            transfer.note("option-changed", frame,
                          f"the OACK changes timeout from the requested {asked} to {got}; "
                          "RFC 2349 has the server echo the client's value")
        if transfer.request.opcode == WRQ:
            asked, got = option_int(requested.get("tsize")), option_int(acked.get("tsize"))
            if asked is not None and got is not None and got != asked:
                transfer.note("option-changed", frame,
                              f"the OACK answers a WRQ's tsize={asked} with {got}; RFC 2349 "
                              "has the server echo the client's size")

    # -- DATA / ACK ----------------------------------------------------------------------

    def _on_data(self, transfer: TftpTransfer, pkt: Packet, wire_block: int,
                 payload: bytes | memoryview) -> None:
        length = pkt.payload_len - 4  # what was sent, even if the capture cut it
        if not transfer._data_seen:
            transfer._data_seen = True
            self._first_data_checks(transfer, pkt)
        block = self._absolute(transfer, wire_block, pkt.frame, is_data=True)
        if length > transfer.blksize:
            transfer.count("blksize-exceeded", pkt.frame, (wire_block, length))
            if length > transfer._full_size:
                transfer._full_size = length
        if block < transfer._next or block in transfer._held:
            self._duplicate_data(transfer, pkt, block, payload)
            return
        final = transfer._final
        if final is not None and block > final:
            if transfer.error is not None or block != final + 1:
                transfer.count("data-after-final", pkt.frame, block)
                transfer.event(pkt, transfer.data_sender, "DATA", block, length,
                               "after the final block")
                return
            # The short block was not the end after all: the sender is not using the
            # negotiated block size (say 512-byte blocks after an OACK of 1024).
            size = transfer._recent[final][1] if final in transfer._recent else 0
            transfer.count("short-block", pkt.frame, (final, size))
            if size:
                transfer._full_size = size
            transfer._final = None
            if transfer.ended:
                transfer.ended = False
                if transfer.netascii and transfer._decoder is None:
                    transfer._decoder = NetasciiDecoder()
        if pkt.truncated:
            transfer.count("truncated", pkt.frame, block)
            payload = bytes(payload) + bytes(length - len(payload))
        if len(transfer._recent) > 2 * max(1, transfer.windowsize) + 2:
            transfer._recent.pop(next(iter(transfer._recent)))
        transfer._recent[block] = (pkt.ts, len(payload), _digest(payload))
        final = length < transfer.blksize
        if final:
            transfer._final = block
        transfer.event(pkt, transfer.data_sender, "DATA", block, length,
                       "final" if final else "")
        transfer.blocks += 1
        if block == transfer._next:
            self._append(transfer, payload)
            transfer._next += 1
            if transfer._held:
                self._drain(transfer, force=False)
        else:
            transfer._held[block] = bytes(payload)
            transfer._held_bytes += length
            if transfer._held_bytes > MAX_HELD_BYTES:
                self._drain(transfer, force=True)
            else:
                self._drain(transfer, force=False)

    def _first_data_checks(self, transfer: TftpTransfer, pkt: Packet) -> None:
        request = transfer.request
        if transfer.oack is None and request.options:
            transfer.note("options-ignored", pkt.frame,
                          "the client requested options but the transfer went on without an "
                          "OACK: defaults are in effect (blksize 512, windowsize 1)")
        if request.opcode == RRQ and transfer.oack is not None and not transfer._ack0_seen:
            transfer.note("data-before-ack0", pkt.frame,
                          "the server sent DATA before the client acknowledged its OACK "
                          "with ACK 0 (RFC 2347)")

    def _duplicate_data(self, transfer: TftpTransfer, pkt: Packet, block: int,
                        payload: bytes | memoryview) -> None:
        transfer.retransmissions += 1
        recent = transfer._recent.get(block)
        note = "retransmission"
        if recent is not None:
            first_sent, _size, digest = recent
            self._resent(transfer, f"DATA {block}", pkt.ts - first_sent, pkt.frame)
            if _digest(payload) != digest and not pkt.truncated:
                transfer.count("content-changed", pkt.frame, block)
                note = "retransmission with different content"
        elif block in transfer._held and bytes(payload) != transfer._held[block]:
            transfer.count("content-changed", pkt.frame, block)
        # Sorcerer's Apprentice (RFC 1123 4.2.3.1): every copy of ACK n-1 made the sender
        # send DATA n once more. Windowed transfers legitimately resend on an ACK.
        copies = transfer._data_copies.get(block, 1) + 1
        transfer._data_copies[block] = copies
        if len(transfer._data_copies) > 8:
            transfer._data_copies.pop(next(iter(transfer._data_copies)))
        if transfer.windowsize <= 1 and transfer._ack_copies.get(block - 1, 0) >= copies:
            transfer.count("sorcerers-apprentice", pkt.frame, block)
            note = "sent again for a duplicate ACK"
        transfer.event(pkt, transfer.data_sender, "DATA", block, pkt.payload_len - 4, note)

    def _on_ack(self, transfer: TftpTransfer, pkt: Packet, wire_block: int) -> None:
        block = self._absolute(transfer, wire_block, pkt.frame, is_data=False)
        receiver = CLIENT if transfer.data_sender == SERVER else SERVER
        acks = transfer._ack_copies
        copies = acks.get(block, 0) + 1
        acks[block] = copies
        if len(acks) > 8:
            acks.pop(next(iter(acks)))
        note = "duplicate" if copies > 1 else ""
        if block == 0 and transfer.request.opcode == RRQ:
            transfer._ack0_seen = True
            if transfer.oack is None:
                transfer.count("unexpected-packet", pkt.frame, "ACK 0 without an OACK")
        if block > transfer._acked:
            transfer._acked = block
            if transfer._held:
                self._drain(transfer, force=False)
        final = transfer._final
        if final is not None and block >= final and transfer._next > final:
            note = note or "final"
            transfer.ended = True
            self._close_file(transfer)
        transfer.event(pkt, receiver, "ACK", block, note=note)

    def _on_error(self, transfer: TftpTransfer, pkt: Packet, error: Error,
                  sender: str) -> None:
        transfer.event(pkt, sender, "ERROR",
                       note=f"{error.code} {error_name(error.code)}: {error.message}")
        if transfer.error is not None:
            return
        transfer.error = error
        transfer.error_frame = pkt.frame
        transfer.error_by = sender
        if transfer._final is not None and transfer._next > transfer._final:
            transfer.note("error-after-complete", pkt.frame,
                          f"the {sender} sent ERROR {error.code} ({error_name(error.code)}) "
                          "after the file was complete")
        else:
            transfer.ended = True

    # -- block numbers -------------------------------------------------------------------

    def _absolute(self, transfer: TftpTransfer, wire: int, frame: int, is_data: bool) -> int:
        """Map a 16-bit block number to its absolute number near the expected block."""
        reference = transfer._next
        policy = transfer.rollover
        if policy is None:
            if reference - wire < _HALF or reference < _WRAP_ZONE:
                return wire
            # Past a wrap. The first DATA after it tells the policy: 65535 -> 0 or -> 1.
            if is_data:
                policy = 1 if wire == 1 and reference == 65536 else 0
                transfer.rollover = policy
                transfer.rollover_frame = frame
            else:
                policy = 0
        if policy == 1:
            if wire == 0 or reference < _HALF:
                best = wire
            else:
                cycle = max(1, round((reference - wire) / 65535))
                best = wire
                for k in (cycle - 1, cycle, cycle + 1):
                    if k >= 1:
                        candidate = 65535 * k + wire
                        if abs(candidate - reference) < abs(best - reference):
                            best = candidate
            return best
        cycle = round((reference - wire) / 65536)
        return wire + 65536 * max(0, cycle)

    # -- the rebuilt file ----------------------------------------------------------------

    def _append(self, transfer: TftpTransfer, chunk: bytes | memoryview) -> None:
        """Add the next block's bytes to the file (hash, size, sink)."""
        transfer.wire_bytes += len(chunk)
        if transfer._decoder is not None:
            chunk = transfer._decoder.decode(chunk)
        self._emit(transfer, chunk)

    def _emit(self, transfer: TftpTransfer, chunk: bytes | memoryview) -> None:
        if transfer._hash is None:
            transfer._hash = hashlib.sha256()
            if self.sink is not None:
                transfer._writer = self.sink.open(transfer)
        if not chunk:
            return
        transfer._hash.update(chunk)
        transfer.bytes += len(chunk)
        if transfer._writer is not None:
            transfer._writer.write(bytes(chunk))

    def _drain(self, transfer: TftpTransfer, force: bool) -> None:
        """Append held blocks that are now in order, filling gaps that are permanent."""
        held = transfer._held
        while held:
            block = transfer._next
            if block in held:
                chunk = held.pop(block)
                transfer._held_bytes -= len(chunk)
                self._append(transfer, chunk)
                transfer._next += 1
                continue
            first_held = min(held)
            if force:
                gap_end = first_held - 1
            elif transfer._acked >= block:
                gap_end = min(first_held - 1, transfer._acked)
            else:
                return
            self._fill_gap(transfer, block, gap_end)

    def _fill_gap(self, transfer: TftpTransfer, first: int, last: int) -> None:
        """Blocks the capture never saw but the transfer went past: zeros in the file."""
        if transfer._decoder is not None:
            rest = transfer._decoder.flush()
            if rest:
                self._emit(transfer, rest)
        length = (last - first + 1) * transfer._full_size
        transfer.gaps.append(Gap(first, last, transfer.bytes, length))
        self._emit(transfer, bytes(length))
        transfer.wire_bytes += length
        transfer._next = last + 1

    def _close_file(self, transfer: TftpTransfer) -> None:
        if transfer._decoder is not None:
            rest = transfer._decoder.flush()
            if rest:
                self._emit(transfer, rest)
            transfer._decoder = None

    # -- end of capture ------------------------------------------------------------------

    def _settle(self, transfer: TftpTransfer) -> None:
        if transfer._held:
            self._drain(transfer, force=True)
        self._close_file(transfer)
        final = transfer._final
        complete = final is not None and transfer._next > final
        if not complete and transfer._hash is not None:
            expected = None
            if transfer.tsize is not None and transfer._full_size > 0:
                expected = transfer.tsize // transfer._full_size + 1
            last = expected if expected is not None and expected >= transfer._next else None
            transfer.gaps.append(Gap(transfer._next, last, transfer.bytes, None))
        elif not complete and transfer.tsize and transfer.error is None:
            transfer.gaps.append(Gap(1, transfer.tsize // transfer._full_size + 1, 0, None))
        if transfer.error is not None and not complete:
            transfer.status = "error"
        elif complete and not transfer.gaps:
            transfer.status = "complete"
        else:
            transfer.status = "incomplete"
        self._verdicts(transfer)
        if transfer._writer is not None:
            transfer.extracted = transfer._writer.close(transfer)
            transfer._writer = None

    def _verdicts(self, transfer: TftpTransfer) -> None:
        """Turn what was counted while tracking into findings, in a stable order."""
        counted = transfer._counted
        note = transfer.note
        for code, (frame, times, detail) in counted.items():
            again = "" if times == 1 else f" ({times} times)"
            if code == "icmp-unreachable":
                note(code, frame, f"{detail}{again}")
            elif code == "malformed":
                note(code, frame, f"malformed packet: {detail}{again}")
            elif code == "unexpected-packet":
                note(code, frame, f"unexpected packet: {detail}{again}")
            elif code == "duplicate-request":
                note(code, frame, f"the client sent its request again{again}")
            elif code == "blksize-exceeded":
                block, length = detail
                note(code, frame, f"DATA {block} carries {length} bytes, more than the "
                                   f"blksize {transfer.blksize} in effect{again}")
            elif code == "short-block":
                block, size = detail
                note(code, frame, f"DATA {block} ({size} bytes) was shorter than the blksize "
                                  f"{transfer.blksize} in effect, yet more blocks followed: "
                                  "the sender does not use the negotiated block size")
            elif code == "data-after-final":
                note(code, frame, f"DATA {detail} follows the final block{again}")
            elif code == "truncated":
                note(code, frame, f"the capture cut DATA {detail} short (snaplen); the "
                                  f"missing bytes are zeros{again}")
            elif code == "content-changed":
                note(code, frame, f"a retransmission of DATA {detail} carries different "
                                  f"bytes than the first copy{again}")
            elif code == "sorcerers-apprentice" and times >= 2:
                # Once could be two timers firing together; a pattern is the bug.
                note(code, frame, f"DATA {detail} was sent again in answer to a duplicate "
                                  f"ACK {detail - 1}, and so on{again}: the Sorcerer's "
                                  "Apprentice bug (RFC 1123 4.2.3.1)")
        if transfer.rollover is not None:
            to = transfer.rollover
            note("rollover", transfer.rollover_frame,
                 f"block numbers wrapped from 65535 to {to}"
                 + (" (most implementations wrap to 0)" if to == 1 else ""))
        if transfer.gaps and transfer.gaps[0].length is not None:
            lost = sum(1 for g in transfer.gaps if g.length is not None)
            note("capture-gap", None,
                 f"{lost} range(s) of blocks the capture missed but the transfer went past: "
                 "zero-filled in the file")
        self._tsize_verdict(transfer)
        self._resend_verdict(transfer)
        for stray in transfer._strays:
            answer = transfer._stray_answers.get(stray.frame, "no answer")
            note("stray-tid", stray.frame,
                 f"{stray.what} from {stray.sender} reached the {stray.side}'s transfer ID; "
                 f"answered with {answer}" if answer != "no answer" else
                 f"{stray.what} from {stray.sender} reached the {stray.side}'s transfer ID; "
                 "no answer (RFC 1350 asks for ERROR 5)")

    @staticmethod
    def _tsize_verdict(transfer: TftpTransfer) -> None:
        tsize = transfer.tsize
        if transfer.request.opcode == WRQ:
            tsize = option_int(transfer.options.get("tsize")) if tsize is None else tsize
        if tsize is None or transfer.status != "complete":
            return
        if tsize in (transfer.bytes, transfer.wire_bytes):
            return
        who = "server" if transfer.request.opcode == RRQ else "client"
        transfer.note("tsize-mismatch", None,
                      f"the {who} announced tsize={tsize} but the transfer carried "
                      f"{transfer.wire_bytes} bytes")

    def _resent(self, transfer: TftpTransfer, what: str, spacing: float, frame: int) -> None:
        if transfer._first_resend is None:
            transfer._first_resend = (what, spacing, frame)

    @staticmethod
    def _resend_verdict(transfer: TftpTransfer) -> None:
        timeout = transfer.timeout
        first = transfer._first_resend
        if timeout is None or first is None:
            return
        what, spacing, frame = first
        text = f"the first resend ({what}) came {spacing:.3f} s after the original; " \
               f"negotiated timeout {timeout} s"
        if transfer.windowsize <= 1 and spacing < 0.5 * timeout:
            transfer.note("resend-too-early", frame, text)
        elif spacing > 2 * timeout + 1:
            transfer.note("resend-too-late", frame, text)
        else:
            transfer.note("resend-timing", frame, text + ": consistent")


def _forget(table: dict[Any, TftpTransfer], key: Any, transfer: TftpTransfer) -> None:
    """Remove `key` if it still leads to `transfer` (a newer transfer may own it now)."""
    if table.get(key) is transfer:
        del table[key]


def _digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _after_end(transfer: TftpTransfer) -> str:
    return " (after the transfer had ended)" if transfer.ended else ""


def _options_text(options: Options) -> str:
    return " ".join(f"{name}={value}" for name, value in options)


def _describe(payload: bytes | memoryview, opcode: int) -> str:
    if opcode in (DATA, ACK) and len(payload) >= 4:
        return f"{'DATA' if opcode == DATA else 'ACK'} {(payload[2] << 8) | payload[3]}"
    if opcode == ERROR and len(payload) >= 4:
        return f"ERROR {(payload[2] << 8) | payload[3]}"
    return {OACK: "OACK", RRQ: "RRQ", WRQ: "WRQ"}.get(opcode, f"opcode {opcode}")
