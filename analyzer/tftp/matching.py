"""TFTP matching: which transfer a packet belongs to (sans-IO).

Theory of operation
-------------------
A transfer is keyed by the client endpoint and the server's transfer ID (TID) port,
never by the IP pair, since a wildcard-bound server may answer from another address than
the one the request went to:

    flow key = (client address, client port, server TID port)

Until the server answers, a transfer is known by its request key (client endpoint, port
it was sent to) and by its client endpoint. The first TFTP packet sent to a client
endpoint whose request is still unanswered fixes the server's TID (`lock_tid`); if the
capture missed it, the client's first packet to a new port does. Packets that reach a
transfer's endpoint from any other endpoint are strays (a wrong TID): they join no
transfer, and how the peer answers them is recorded (ERROR 5 as RFC 1350 says, an ICMP
port unreachable, nothing, or worse). When a request went out twice and two server
processes answered, the client's answer tells which TID it follows (`relock`).

A request nobody has answered yet costs little (a port-69 scan is 100,000 of them): it is
held in `held` as one bytes record of its packet (`hold_record`, ~100 bytes), not as a
transfer, and becomes a `TftpTransfer` (the tracker's `take_held`) only when a packet
concerns it: an answer, an ICMP error, the client talking on, or when it expires.
Lookups by request key or client endpoint (`request_at`, `client_request`) see held
requests and transfers alike, newest first, as if every request were a transfer.

`ports` is a pre-filter: every port a transfer or stray uses (it only grows, and holds at
most 65536 numbers). The tracker looks up `flows` itself on the per-packet path and
calls `unmatched` for the rest; a matched packet goes back to it through the
`to_client`/`to_server` callbacks and a request through `on_request`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, Final

from analyzer.decode.icmp import icmp_error_name, is_port_unreachable, quoted_datagram
from analyzer.decode.packet import PROTO_UDP, Packet, format_address, format_endpoint
from analyzer.tftp.codec import (
    ACK,
    DATA,
    ERR_UNKNOWN_TID,
    ERROR,
    OACK,
    RRQ,
    WRQ,
    Error,
    MalformedPacket,
    decode,
    error_name,
)
from analyzer.tftp.findings import ICMP_UNREACHABLE, SAME_PORT_REPLY, SERVER_ADDRESS_CHANGED
from analyzer.tftp.transfer import CLIENT, SERVER, Stray, TftpTransfer

Key = tuple[bytes, int, int]  # (address, port, port)
Endpoint = tuple[bytes, int]
# A held request: the record of each copy of it the client sent, and of each ICMP error
# that quoted one (see `hold_record`).
Held = tuple[bytes, ...]

# A held request's record: its transfer number, frame, capture time, the IP length of
# its payload, the pcapng interface, the IP protocol (UDP for a copy of the request, ICMP
# for an error quoting it), the address size, the ports (ICMP type and code); then the
# packet's addresses and payload.
_HELD: Final = struct.Struct("<qqdIIBBHH")
_HELD_NUMBER: Final = struct.Struct("<q")  # (the first field alone)
_HELD_TS: Final = struct.Struct("<16xd")  # (the capture time alone)
# Packets a held request may hold before it is made a transfer.
HELD_COPIES: Final = 8


class TidMatcher:
    """The flow tables and the rules that fill them (see the module docstring)."""

    def __init__(self, listen_ports: Iterable[int],
                 on_request: Callable[[Packet], None],
                 to_client: Callable[[TftpTransfer, Packet], None],
                 to_server: Callable[[TftpTransfer, Packet], None],
                 take_held: Callable[[Key], TftpTransfer | None]) -> None:
        self.listen_ports = frozenset(listen_ports)
        self.on_request = on_request  # a request to a TFTP port
        self.to_client = to_client  # deliver a packet the client sent
        self.to_server = to_server  # deliver a packet the server sent
        # a held request made a transfer (None: it had expired, and is settled)
        self.take_held = take_held
        # Ports worth a closer look: TFTP ports, clients' ports, servers' TIDs.
        self.ports: set[int] = set(self.listen_ports)
        self.flows: dict[Key, TftpTransfer] = {}
        self.requests: dict[Key, TftpTransfer] = {}
        self.by_client: dict[Endpoint, TftpTransfer] = {}
        self.server_ends: dict[Endpoint, TftpTransfer] = {}
        self.strays: dict[Endpoint, Stray] = {}
        # Unanswered requests not yet made transfers, by request key, oldest first.
        self.held: dict[Key, Held] = {}

    def add_request(self, transfer: TftpTransfer) -> None:
        """A new transfer, known by its request until the server answers."""
        client = (transfer.client_addr, transfer.client_port)
        key = (*client, transfer.listen_port)
        # (a held request made a transfer late may be older than what holds its keys)
        known = self.requests.get(key)
        if known is None or known.number < transfer.number:
            self.requests[key] = transfer
        known = self.by_client.get(client)
        if known is None or known.number < transfer.number:
            self.by_client[client] = transfer
        self.ports.add(transfer.client_port)
        held = self.held.get(key)
        if held is not None and held_number(held) == transfer.number:
            del self.held[key]  # it was this one, held until now

    def hold(self, key: Key, number: int, pkt: Packet) -> None:
        """A new request, held as its packet until something concerns it; as the newest
        request of its client endpoint it hides the transfers before it there."""
        self.held[key] = (hold_record(number, pkt),)
        self.ports.add(pkt.sport)
        _forget_any(self.requests, key)
        _forget_any(self.by_client, (key[0], key[1]))

    def hold_again(self, key: Key, pkt: Packet) -> TftpTransfer | None:
        """The client sent a held request once more, or an ICMP error quoted it: None
        when it is held with the rest, else the transfer it is made now (a request sent
        more than HELD_COPIES times is worth one), for the caller to give `pkt` to."""
        held = self.held[key]
        if len(held) >= HELD_COPIES:
            return self.take_held(key)
        self.held[key] = (*held, hold_record(held_number(held), pkt))
        return None

    def request_at(self, key: Key) -> TftpTransfer | None:
        """The newest transfer whose request has this key (a held one is made one)."""
        transfer = self.requests.get(key)
        held = self.held.get(key)
        if held is not None and (transfer is None or held_number(held) > transfer.number):
            return self.take_held(key)
        return transfer

    def client_request(self, client: Endpoint) -> TftpTransfer | None:
        """The newest transfer requested from the client endpoint `client` (a held
        request is made one)."""
        transfer = self.by_client.get(client)
        if self.held:
            newest = None
            number = -1 if transfer is None else transfer.number
            for port in self.listen_ports:
                held = self.held.get((*client, port))
                if held is not None and held_number(held) > number:
                    newest, number = (*client, port), held_number(held)
            if newest is not None:
                return self.take_held(newest)
        return transfer

    def forget(self, transfer: TftpTransfer) -> None:
        """Remove every key that still leads to a settled transfer."""
        client = (transfer.client_addr, transfer.client_port)
        _forget(self.requests, (*client, transfer.listen_port), transfer)
        _forget(self.by_client, client, transfer)
        port = transfer.server_port
        if port is not None:
            _forget(self.flows, (*client, port), transfer)
            if transfer.server_addr is not None:
                _forget(self.server_ends, (transfer.server_addr, port), transfer)
            _forget(self.server_ends, (transfer.request_addr, port), transfer)
        for stray in transfer.strays:
            if self.strays.get(stray.key) is stray:
                del self.strays[stray.key]
        # (the ports stay in `ports`: a pre-filter of at most 65536 numbers)

    def newer_request(self, transfer: TftpTransfer, client: Endpoint) -> bool:
        """Whether a newer request from the client endpoint of the ended `transfer` is
        still unanswered (the client port and the server TID were both reused)."""
        newer = self.by_client.get(client)
        if newer is not None and newer is not transfer and newer.server_port is None:
            return True
        return any(held_number(held) > transfer.number
                   for held in (self.held.get((*client, port)) for port in self.listen_ports)
                   if held is not None)

    # -- packets on no known flow --------------------------------------------------------

    def unmatched(self, pkt: Packet) -> None:
        """A packet that is on no known flow: a request, a first answer, or a stray."""
        payload = pkt.payload
        if len(payload) < 2:
            return
        opcode = (payload[0] << 8) | payload[1]
        if pkt.dport in self.listen_ports and (opcode == RRQ or opcode == WRQ):
            self.on_request(pkt)
            return
        if not DATA <= opcode <= OACK:  # DATA, ACK, ERROR, OACK
            return
        pending = self.client_request((pkt.dst, pkt.dport))
        if pending is not None and pending.server_port is None:
            self.lock_tid(pending, pkt.src, pkt.sport, pkt.frame)
            self.to_server(pending, pkt)
            return
        sender = self.client_request((pkt.src, pkt.sport))
        if (sender is not None and sender.server_port is None
                and pkt.dport not in self.listen_ports):
            # The capture missed the server's first answer (say the ACK 0 of a WRQ), but
            # the client is already talking to the server's TID.
            self.lock_tid(sender, pkt.dst, pkt.dport, pkt.frame)
            self.to_client(sender, pkt)
            return
        if pending is not None:
            self._stray_in(pending, CLIENT, pkt, opcode)
            return
        target = self.server_ends.get((pkt.dst, pkt.dport))
        if target is not None:
            self._stray_in(target, SERVER, pkt, opcode)
            return
        stray = self.strays.get((pkt.dst, pkt.dport))
        if stray is not None:
            self._stray_answer(stray, pkt, opcode)

    def lock_tid(self, transfer: TftpTransfer, addr: bytes, port: int, frame: int) -> None:
        """The first answer to a request fixes the server's address and TID."""
        transfer.server_addr = addr
        transfer.server_port = port
        transfer.locked_frame = frame
        self.flows[(transfer.client_addr, transfer.client_port, port)] = transfer
        self.server_ends[(addr, port)] = transfer
        self.server_ends[(transfer.request_addr, port)] = transfer
        self.ports.add(port)
        if port == transfer.listen_port:
            transfer.note(SAME_PORT_REPLY, frame, port=port)
        if addr != transfer.request_addr:
            transfer.note(SERVER_ADDRESS_CHANGED, frame,
                          requested=format_address(transfer.request_addr),
                          answered=format_address(addr))

    # -- strays --------------------------------------------------------------------------

    def _stray_in(self, transfer: TftpTransfer, side: str, pkt: Packet, opcode: int) -> None:
        """A packet sent to one side of a transfer from an endpoint that is not its peer."""
        known = self.strays.get((pkt.src, pkt.sport))
        if known is not None and known.transfer is transfer:
            transfer.event(pkt, known.sender, "STRAY", note="again")
            return  # the same stray sender again (e.g. a resend): reported once
        sender = format_endpoint(pkt.src, pkt.sport)
        what = _describe(pkt.payload, opcode)
        stray = Stray(transfer, side, pkt.frame, sender, what, (pkt.src, pkt.sport))
        transfer.strays.append(stray)
        self.strays[(pkt.src, pkt.sport)] = stray
        self.ports.add(pkt.sport)
        transfer.event(pkt, sender, "STRAY", note=f"{what} to the {side} from a wrong TID")

    def _stray_answer(self, stray: Stray, pkt: Packet, opcode: int) -> None:
        transfer = stray.transfer
        if (stray.side == CLIENT and opcode != ERROR and transfer.requests > 1
                and not transfer.client_answered
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
        if stray.frame in transfer.stray_answers:
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
        transfer.stray_answers[stray.frame] = answer
        transfer.event(pkt, stray.side, "STRAY", note=f"answer to the stray: {answer}")

    def _relock(self, transfer: TftpTransfer, stray: Stray, pkt: Packet) -> None:
        """The request went out twice and two server TIDs answered at once. Which one
        the client heard first is not the capture's order (two sender CPUs), but it is
        what the client answers: follow the client. Both answered the same request, so
        what the first one sent stands; it becomes the stray the client refuses."""
        old_addr, old_port = transfer.server_addr, transfer.server_port
        old_frame = transfer.locked_frame
        assert old_addr is not None and old_port is not None
        self.flows.pop((transfer.client_addr, transfer.client_port, old_port), None)
        self.server_ends.pop((old_addr, old_port), None)
        self.server_ends.pop((transfer.request_addr, old_port), None)
        transfer.strays.remove(stray)
        del self.strays[(pkt.dst, pkt.dport)]
        new_addr, new_port = pkt.dst, pkt.dport
        transfer.server_addr = transfer.server_port = None
        self.lock_tid(transfer, new_addr, new_port, stray.frame)
        replaced = Stray(transfer, CLIENT, old_frame, format_endpoint(old_addr, old_port),
                         "the first answer", (old_addr, old_port))
        transfer.strays.append(replaced)
        self.strays[(old_addr, old_port)] = replaced
        transfer.event(pkt, CLIENT, "STRAY",
                       note=f"the client answers {format_endpoint(new_addr, new_port)}: "
                            "that is the server's transfer ID")
        self.to_client(transfer, pkt)

    # -- ICMP ----------------------------------------------------------------------------

    def on_icmp(self, pkt: Packet) -> None:
        """An ICMP error quoting a datagram of a transfer, a stray or a request."""
        quoted = quoted_datagram(pkt)
        if quoted is None or quoted.proto != PROTO_UDP:
            return
        src, sport, dst, dport = quoted.src, quoted.sport, quoted.dst, quoted.dport
        if sport not in self.ports and dport not in self.ports:
            return
        what = icmp_error_name(pkt)
        flows = self.flows
        transfer = flows.get((src, sport, dport))
        if transfer is not None:
            transfer.count(ICMP_UNREACHABLE, pkt.frame, what=what,
                           situation=f"a packet the client sent to the server's transfer ID "
                                     f"{dport}: the server was no longer listening"
                                     + _after_end(transfer))
            transfer.event(pkt, SERVER, "ICMP", note=what)
            return
        transfer = flows.get((dst, dport, sport))
        if transfer is not None:
            transfer.count(ICMP_UNREACHABLE, pkt.frame, what=what,
                           situation="a packet the server sent to the client: the client "
                                     "was no longer listening" + _after_end(transfer))
            transfer.event(pkt, CLIENT, "ICMP", note=what)
            return
        stray = self.strays.get((src, sport))
        if stray is not None and stray.frame not in stray.transfer.stray_answers:
            if is_port_unreachable(pkt):
                answer = f"ICMP {what} in frame {pkt.frame}, not ERROR 5"
            else:
                answer = f"ICMP {what} in frame {pkt.frame}"
            stray.transfer.stray_answers[stray.frame] = answer
            stray.transfer.event(pkt, stray.side, "ICMP", note=f"answer to the stray: {what}")
            return
        key = (src, sport, dport)
        held = self.held.get(key)
        transfer = self.requests.get(key)
        if held is not None and (transfer is None or held_number(held) > transfer.number):
            # A closed port 69 answers a scan so: the request stays held, with its answer.
            transfer = self.hold_again(key, pkt)
            if transfer is None:
                return
        if transfer is not None:
            request_unreachable(transfer, pkt, what)


def request_unreachable(transfer: TftpTransfer, pkt: Packet, what: str) -> None:
    """An ICMP error quoting a transfer's request: no server at the other end."""
    quoted = quoted_datagram(pkt)
    assert quoted is not None
    transfer.count(ICMP_UNREACHABLE, pkt.frame, what=what,
                   situation=f"the request: no TFTP server at "
                             f"{format_endpoint(quoted.dst, quoted.dport)}")
    transfer.event(pkt, SERVER, "ICMP", note=what)


def _forget(table: dict[Any, TftpTransfer], key: Any, transfer: TftpTransfer) -> None:
    """Remove `key` if it still leads to `transfer` (a newer transfer may own it now)."""
    if table.get(key) is transfer:
        del table[key]


def _forget_any(table: dict[Any, TftpTransfer], key: Any) -> None:
    if key in table:
        del table[key]


def hold_record(number: int, pkt: Packet) -> bytes:
    """A held request's packet as one bytes object (`held_packet` makes it a packet)."""
    return b"".join((_HELD.pack(number, pkt.frame, pkt.ts, pkt.payload_len, pkt.interface,
                                pkt.proto, len(pkt.src), pkt.sport, pkt.dport),
                     pkt.src, pkt.dst, pkt.payload))


def held_number(held: Held) -> int:
    """The transfer number of a held request."""
    number: int = _HELD_NUMBER.unpack_from(held[0])[0]
    return number


def held_ts(record: bytes) -> float:
    """The capture time of a held request's copy."""
    ts: float = _HELD_TS.unpack_from(record)[0]
    return ts


def held_packet(record: bytes) -> Packet:
    """The request packet a held record was made from."""
    _number, frame, ts, payload_len, interface, proto, size, sport, dport = \
        _HELD.unpack_from(record)
    start = _HELD.size
    return Packet(frame, ts, interface, 4 if size == 4 else 6, record[start:start + size],
                  record[start + size:start + 2 * size], proto, sport, dport,
                  record[start + 2 * size:], payload_len)


def held_request(record: bytes) -> tuple[int, int, float, bytes, int, bytes, int, bytes]:
    """A held request's transfer number, frame, capture time, client address and port,
    the address and port it was sent to, and payload (what `held_packet` gives, without
    making a packet)."""
    number, frame, ts, _length, _interface, _proto, size, sport, dport = \
        _HELD.unpack_from(record)
    start = _HELD.size
    return (number, frame, ts, record[start:start + size], sport,
            record[start + size:start + 2 * size], dport, record[start + 2 * size:])


def _after_end(transfer: TftpTransfer) -> str:
    return " (after the transfer had ended)" if transfer.ended else ""


def _describe(payload: bytes | memoryview, opcode: int) -> str:
    if opcode in (DATA, ACK) and len(payload) >= 4:
        return f"{'DATA' if opcode == DATA else 'ACK'} {(payload[2] << 8) | payload[3]}"
    if opcode == ERROR and len(payload) >= 4:
        return f"ERROR {(payload[2] << 8) | payload[3]}"
    return {OACK: "OACK", RRQ: "RRQ", WRQ: "WRQ"}.get(opcode, f"opcode {opcode}")
