"""Sans-IO TFTP transfer tracker: captured packets in, transfers, files and findings out.

Theory of operation
-------------------
The tracker is the dispatcher between four parts:

- `matching.TidMatcher` decides which transfer a packet belongs to. A transfer starts
  with an RRQ or WRQ sent to a TFTP port (69 plus any `extra_ports`) and is keyed by
  (client address, client port, server TID port) once the server answers; packets from
  any other endpoint are strays. Non-TFTP UDP is rejected by two set lookups on ports.
- `transfer.TftpTransfer` is one transfer: it takes the messages of its flow (DATA,
  ACK, ERROR, OACK), numbers blocks past 65535, rebuilds and hashes the file, holds
  blocks ahead of a gap, and counts what it saw.
- `verdicts` judges an OACK when it arrives, and turns what a transfer counted into
  findings when it is settled; `findings` is the table of every finding code.
- the file sink (`analyzer.tftp.extract.Extractor`) writes the rebuilt files; the
  tracker never touches files itself, and keeps no file in memory.

Per packet, `on_packet` looks the flow up in both directions (the hot path: a dict
lookup or two, then the transfer's `on_data`/`on_ack`); everything else goes to the
matcher's `unmatched`, which calls back `_on_request`, `_from_client` or `_from_server`.

Held requests. A request is held by the matcher as one bytes record of its packet
(`TidMatcher.hold`, ~100 bytes, not a ~2 KB transfer), with its resent copies and the
ICMP errors quoting it (a closed port 69 answers a scan so), until another packet
concerns it; then `_take_held` makes it the transfer it would have been, those packets
replayed. A request nobody answered (held or not) is settled `request_timeout` capture
seconds after its last copy (clients give up well within that: tftp-hpa after 25 s), so
a port-69 scan of any length holds only its last half minute's requests, ~250 bytes each.
One that was sent once and is settled still held goes to `on_unanswered` as it is, when
the tracker is given one (`UnansweredRequest`: its transfer would say no more), so a
scan's requests are never made transfers at all.

Lifecycle. A transfer is settled (status, gaps, findings, file closed) at the end of the
capture, or earlier once it is over: its last packet is `linger` seconds of capture time
old and it had ended (final block acknowledged, or an ERROR; a sender dallying over a
lost last ACK, RFC 1350 section 6, resends within seconds), or `idle_timeout` seconds old
if it never ended (`request_timeout` if it was never answered). A packet that late no
longer counts in it. Its matching state is then freed and it goes to `on_result` when one
is given, so a capture of any length holds only the transfers still under way. Old
transfers are looked at when a new request comes (new transfers are what adds memory), at
most every SWEEP_EVERY seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Final

from analyzer.decode.icmp import icmp_error_name
from analyzer.decode.packet import PROTO_UDP, Packet
from analyzer.tftp.codec import (
    ACK,
    DATA,
    RRQ,
    TFTP_PORT,
    WRQ,
    Error,
    MalformedPacket,
    OAck,
    Request,
    decode,
    format_options,
)
from analyzer.tftp.findings import MALFORMED, UNEXPECTED_PACKET
from analyzer.tftp.matching import (
    Held,
    Key,
    TidMatcher,
    held_number,
    held_packet,
    held_request,
    held_ts,
    request_unreachable,
)
from analyzer.tftp.transfer import CLIENT, SERVER, FileSink, TftpTransfer, UnansweredRequest
from analyzer.tftp.verdicts import judge, oack_findings

__all__ = ["CLIENT", "SERVER", "SWEEP_EVERY", "FileSink", "TftpTracker", "TftpTransfer",
           "UnansweredRequest"]

# Capture seconds between two looks for transfers that are over (on a new request).
SWEEP_EVERY: Final = 10.0


class TftpTracker:
    """Turns UDP and ICMP packets into `TftpTransfer`s (see the module docstring).

    `sink` receives the rebuilt files; `timeline` records every packet of the listed
    transfer numbers (or of all, when True) for `tftp show`. `linger` and `idle_timeout`:
    when a transfer is over; `request_timeout`: when an unanswered request is (see the
    module docstring). `on_result`: each settled
    transfer goes to it, in the order they settle, instead of being kept for `results()`.
    `on_unanswered`: a request sent once that nobody answered goes to it as it is (an
    `UnansweredRequest`), not made a transfer first (a port-69 scan's fast path).
    """

    def __init__(self, extra_ports: Iterable[int] = (), sink: FileSink | None = None,
                 timeline: bool | Iterable[int] = False, linger: float = 60.0,
                 idle_timeout: float = 300.0, request_timeout: float = 30.0,
                 on_result: Callable[[TftpTransfer], object] | None = None,
                 on_unanswered: Callable[[UnansweredRequest], object] | None = None
                 ) -> None:
        self.matcher = TidMatcher({TFTP_PORT, *extra_ports}, self._on_request,
                                  self._from_client, self._from_server, self._take_held)
        self.listen_ports = self.matcher.listen_ports
        self.sink = sink
        self._timeline_all = timeline is True
        self._timeline_for = frozenset() if isinstance(timeline, bool) else frozenset(timeline)
        self.linger = linger
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.on_result = on_result
        self.on_unanswered = on_unanswered
        # every one (no on_result), in request order but for held requests, which join
        # when they are made transfers (`results` sorts)
        self.transfers: list[TftpTransfer] = []
        self._count = 0  # transfers so far: the next one's number - 1
        self._live: dict[int, TftpTransfer] = {}  # not settled yet, by number
        self._swept_at = 0.0  # capture time of the last sweep
        # The matcher's tables, looked up here on the per-packet path.
        self._ports = self.matcher.ports
        self._flows = self.matcher.flows
        self._finished = False

    # -- input ---------------------------------------------------------------------------

    def on_packet(self, pkt: Packet) -> None:
        if pkt.proto != PROTO_UDP:
            self.matcher.on_icmp(pkt)
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
            if transfer.ended and self.matcher.newer_request(transfer, (pkt.dst, dport)):
                # The client port and the server TID were both reused: a newer request
                # from this endpoint that is still unanswered owns the packet.
                self.matcher.unmatched(pkt)
                return
            self._from_server(transfer, pkt)
            return
        self.matcher.unmatched(pkt)

    def finish(self) -> None:
        """End of capture: settle every transfer (status, gaps, findings, files)."""
        if self._finished:
            return
        self._finished = True
        # In request order, as they were made; a held request is made a transfer only
        # now, one at a time.
        live = sorted(self._live.values(), key=_number)
        held = self.matcher.held
        at = 0
        for key in list(held):  # (not its items: a tuple each, 6 MB for a 100k scan)
            records = held[key]
            number = held_number(records)
            while at < len(live) and live[at].number < number:
                self._retire(live[at])
                at += 1
            self._settle_held(key, records)
        for transfer in live[at:]:
            self._retire(transfer)

    def results(self) -> list[TftpTransfer]:
        """Transfers in request order (none when they went to `on_result`)."""
        return sorted(self.transfers, key=_number)

    def under_way(self, limit: int) -> list[TftpTransfer]:
        """The newest `limit` transfers not settled yet (requests still held excepted)."""
        return list(self._live.values())[-limit:]

    def live(self) -> int:
        """How many transfers are not settled yet (held requests included)."""
        return len(self._live) + len(self.matcher.held)

    # -- lifecycle -----------------------------------------------------------------------

    def _on_request(self, pkt: Packet) -> None:
        request = request_of(bytes(pkt.payload))
        if request is None:
            return  # not TFTP after all: something else talking to port 69
        key = (pkt.src, pkt.sport, pkt.dport)
        held = self.matcher.held.get(key)
        if held is not None:
            if pkt.ts - held_ts(held[-1]) <= self.request_timeout \
                    and request_of(held_packet(held[0]).payload) == request:
                again = self.matcher.hold_again(key, pkt)
                if again is not None:
                    again.on_request_again(pkt)
                return
            self._take_held(key)  # an older request from this endpoint
        transfer = self.matcher.requests.get(key)
        if transfer is not None and transfer.request == request and not transfer.ended \
                and not self._over(transfer, pkt.ts):
            transfer.on_request_again(pkt)
            return
        if pkt.ts - self._swept_at > SWEEP_EVERY:
            # New transfers are what adds memory, so this is where old ones are settled.
            self._sweep(pkt.ts)
        self._count += 1
        if self._timeline_all or self._count in self._timeline_for:
            self._new_transfer(self._count, request, pkt)
        else:
            self.matcher.hold(key, self._count, pkt)

    def _new_transfer(self, number: int, request: Request, pkt: Packet,
                      match: bool = True) -> TftpTransfer:
        transfer = TftpTransfer(number, request, pkt, self.sink)
        if self._timeline_all or number in self._timeline_for:
            transfer.events = []
            transfer.event(pkt, CLIENT, request.name,
                           note=f"{request.filename!r} {request.mode} "
                                f"{format_options(request.options)}".rstrip())
        self._live[number] = transfer
        if self.on_result is None:
            self.transfers.append(transfer)
        if match:
            self.matcher.add_request(transfer)
        return transfer

    def _take_held(self, key: Key, match: bool = True) -> TftpTransfer:
        """Make a held request the transfer it stands for, its resent copies replayed
        (`match` False: to settle it at once, so the matcher need not know it)."""
        held = self.matcher.held.pop(key)
        first = held_packet(held[0])
        request = request_of(first.payload)
        assert request is not None
        transfer = self._new_transfer(held_number(held), request, first, match)
        for record in held[1:]:
            pkt = held_packet(record)
            if pkt.proto == PROTO_UDP:
                transfer.on_request_again(pkt)
            else:
                request_unreachable(transfer, pkt, icmp_error_name(pkt))
        return transfer

    def _settle_held(self, key: Key, records: Held) -> None:
        """Settle the held request nobody answered at `key` (its `records`): handed to
        `on_unanswered` as it is when it was sent once (nothing else to say of it: see
        `UnansweredRequest`), else made the transfer it is, its copies replayed."""
        if self.on_unanswered is None or len(records) > 1:
            self._retire(self._take_held(key, match=False))
            return
        del self.matcher.held[key]
        number, frame, ts, client, port, address, listen, payload = held_request(records[0])
        request = request_of(payload)
        assert request is not None  # (it was held as one)
        self.on_unanswered(UnansweredRequest(number, frame, ts, client, port, address,
                                             listen, request))

    def _over(self, transfer: TftpTransfer, now: float) -> bool:
        """Whether a transfer is over at capture time `now` (see the module docstring);
        one that is gets settled here, so a packet that late is not counted in it."""
        if transfer.ended:
            limit = self.linger
        elif transfer.server_port is None:  # nobody answered it (see `_take_held`)
            limit = self.request_timeout
        else:
            limit = self.idle_timeout
        if now - transfer.end <= limit:
            return False
        self._retire(transfer)
        return True

    def _sweep(self, now: float) -> None:
        """Settle the transfers that are over, and the held requests nobody answered."""
        self._swept_at = now
        expired = []
        for key, held in self.matcher.held.items():  # oldest first
            if now - held_ts(held[0]) <= self.request_timeout:
                break
            if now - held_ts(held[-1]) > self.request_timeout:
                expired.append((key, held))
        for key, records in expired:
            self._settle_held(key, records)
        for transfer in sorted(self._live.values(), key=_number):
            self._over(transfer, now)

    def _retire(self, transfer: TftpTransfer) -> None:
        """Settle a transfer, forget every key that leads to it, hand it on."""
        del self._live[transfer.number]
        transfer.settle()
        judge(transfer)
        transfer.close_output()
        self.matcher.forget(transfer)
        transfer.release()
        if self.on_result is not None:
            self.on_result(transfer)

    # -- the two directions --------------------------------------------------------------

    def _from_client(self, transfer: TftpTransfer, pkt: Packet) -> None:
        payload = pkt.payload
        if len(payload) >= 2 and payload[1] in (RRQ, WRQ) and payload[0] == 0:
            self._on_request(pkt)  # a server answering from port 69 shares the flow key
            return
        transfer.client_answered = True
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
                    transfer.on_data(pkt, block, payload[4:])
                    return
                transfer.count(UNEXPECTED_PACKET, pkt.frame, what=f"DATA from the {sender}")
                transfer.event(pkt, sender, "DATA", block, len(payload) - 4,
                               "unexpected direction")
                return
            if sender != transfer.data_sender:
                transfer.on_ack(pkt, block)
                return
            transfer.count(UNEXPECTED_PACKET, pkt.frame, what=f"ACK from the {sender}")
            transfer.event(pkt, sender, "ACK", block, note="unexpected direction")
            return
        try:
            message = decode(payload)
        except MalformedPacket as exc:
            transfer.count(MALFORMED, pkt.frame, reason=str(exc))
            transfer.event(pkt, sender, "MALFORMED", note=str(exc))
            return
        if isinstance(message, Error):
            transfer.on_error(pkt, message, sender)
        elif isinstance(message, OAck):
            if sender != SERVER:
                transfer.count(UNEXPECTED_PACKET, pkt.frame, what="OACK from the client")
                transfer.event(pkt, sender, "OACK", note="unexpected direction")
                return
            if transfer.on_oack(pkt, message):
                transfer.findings.extend(oack_findings(transfer.request, message.options,
                                                       pkt.frame))
        else:  # a request on an established flow: only a server on port 69 gets here
            transfer.count(UNEXPECTED_PACKET, pkt.frame,
                           what=f"{message.name} from the {sender}")


def _number(transfer: TftpTransfer) -> int:
    return transfer.number


@lru_cache(maxsize=1024)
def request_of(payload: bytes) -> Request | None:
    """The request a payload sent to a TFTP port holds (None: not one). Cached: a scan
    sends the same request thousands of times, and a held one is decoded again."""
    try:
        request = decode(payload)
    except MalformedPacket:
        return None
    return request if isinstance(request, Request) else None
