"""UDP drivers: send one datagram and collect the replies (`udp send`, `udp broadcast`),
listen and answer (`udp listen`), and a two-way chat (`udp chat`).

Each is a session driver (`analyzer.run.session.Driver`): `bind()` opens the socket and
names its endpoint, `run(cancel)` does the exchange. Every datagram sent or received goes
to `on_datagram` as it happens (the command prints it there); the outcome holds counts
and a bounded sample, so a flood of datagrams costs no memory per datagram.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from analyzer.active.sockets import bind_error, local_endpoint, resolve, source_address_for
from analyzer.errors import InputError
from analyzer.run.session import Endpoint

MAX_DATAGRAM = 65535
POLL_SECONDS = 0.1  # how often a waiting driver looks at `cancel`
# Replies listed one by one; beyond this only counted (a broadcast storm, a flood).
KEEP_DATAGRAMS = 1000
LIMITED_BROADCAST = "255.255.255.255"
SIOCGIFADDR = 0x8915
SIOCGIFBRDADDR = 0x8919
SO_BINDTODEVICE = 25
IP_PKTINFO = 8
IP_RECVERR = 11
IPV6_RECVERR = 25


class Datagram(NamedTuple):
    """One datagram this command sent (`out`) or received (`in`)."""

    time: float  # epoch seconds
    direction: str
    source: tuple[str, int]
    destination: tuple[str, int]
    broadcast: bool
    payload: bytes


class UdpOutcome:
    """What a UDP command did: datagrams sent and received (the first KEEP_DATAGRAMS of
    them kept), counts by sender, and why it ended."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.received_bytes = 0
        self.replies: list[Datagram] = []  # received, first KEEP_DATAGRAMS
        self.outgoing: list[Datagram] = []  # sent, first KEEP_DATAGRAMS
        self.senders: Counter[tuple[str, int]] = Counter()
        self.first_sent: float | None = None
        self.ended = "done"  # done, count, duration, cancelled, eof
        self.error: str | None = None  # a send that failed (e.g. ICMP unreachable)

    def record(self, datagram: Datagram) -> None:
        if datagram.direction == "out":
            self.sent += 1
            if self.first_sent is None:
                self.first_sent = datagram.time
            if len(self.outgoing) < KEEP_DATAGRAMS:
                self.outgoing.append(datagram)
            return
        self.received += 1
        self.received_bytes += len(datagram.payload)
        if len(self.senders) < KEEP_DATAGRAMS or datagram.source in self.senders:
            self.senders[datagram.source] += 1
        if len(self.replies) < KEEP_DATAGRAMS:
            self.replies.append(datagram)


DatagramSink = Callable[[Datagram], object]


class _UdpDriver:
    """The socket and the bookkeeping the UDP drivers share."""

    def __init__(self, on_datagram: DatagramSink | None) -> None:
        self.on_datagram = on_datagram
        self.outcome = UdpOutcome()
        self.sock: socket.socket | None = None
        self.shown_address: str | None = None
        self._broadcasts: dict[int, str] = {}  # interface index -> its broadcast address
        self._lock = threading.Lock()  # chat sends and receives from two threads

    def _open(self, family: int, address: tuple[str, int], what: str) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise bind_error(exc, "udp", address, what) from None
        self.sock = sock
        self._ask_packet_info(sock)
        return sock

    def _local(self) -> tuple[str, int]:
        """Our endpoint as the peer sees it: a wildcard-bound socket's address is the one
        the kernel sends from (`shown_address`, set by the driver that knows its peer)."""
        assert self.sock is not None
        host, port = local_endpoint(self.sock)
        return (self.shown_address or host, port)

    def _note(self, datagram: Datagram) -> None:
        with self._lock:
            self.outcome.record(datagram)
            if self.on_datagram is not None:
                self.on_datagram(datagram)

    def _send(self, payload: bytes, destination: tuple[str, int], broadcast: bool,
              source: tuple[str, int] | None = None) -> None:
        """Send one datagram; `source`: our endpoint as shown (default `_local()`)."""
        assert self.sock is not None
        self.sock.sendto(payload, destination)
        self._note(Datagram(time.time(), "out", source or self._local(), destination[:2],
                            broadcast, payload))

    def _receive(self, timeout: float) -> Datagram | None:
        """One datagram within `timeout` seconds, or None."""
        assert self.sock is not None
        if not select.select([self.sock], [], [], timeout)[0]:
            return None
        try:
            payload, ancillary, _flags, source = self.sock.recvmsg(MAX_DATAGRAM, 256)
        except ConnectionRefusedError:
            # an ICMP port unreachable for an earlier datagram (IP_RECVERR reports it)
            self.outcome.error = "the destination port is closed (ICMP port unreachable)"
            self._drain_errors()
            return None
        except (BlockingIOError, InterruptedError):
            return None
        local = self._local()
        destination, interface = _packet_info(ancillary)
        broadcast = False
        if destination is not None:
            broadcast = self._is_broadcast(destination, interface)
            local = (destination, local[1])
        datagram = Datagram(time.time(), "in", _plain(source), local, broadcast, payload)
        self._note(datagram)
        return datagram

    def _is_broadcast(self, destination: str, interface: int) -> bool:
        if destination == LIMITED_BROADCAST:
            return True
        if ":" in destination or not destination.endswith(".255") and interface == 0:
            return False
        known = self._broadcasts.get(interface)
        if known is None:
            try:
                known = broadcast_address(socket.if_indextoname(interface))
            except (InputError, OSError):
                known = ""
            self._broadcasts[interface] = known
        return destination == known

    def _ask_packet_info(self, sock: socket.socket) -> None:
        """Have the kernel tell each datagram's destination address (was it a broadcast?)
        and the ICMP errors our datagrams met (an unconnected socket hears of them only
        with IP_RECVERR)."""
        with contextlib.suppress(OSError):
            if sock.family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)

    def _drain_errors(self) -> None:
        """Empty the socket's error queue (else it stays readable for ever)."""
        assert self.sock is not None
        while True:
            try:
                self.sock.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:
                return

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


class UdpSendDriver(_UdpDriver):
    """`udp send` and `udp broadcast`: one datagram out, then every reply for `wait`
    seconds (or until cancelled). `interface`: send out of it (SO_BINDTODEVICE); for a
    broadcast without `--to`, its subnet's directed broadcast address."""

    def __init__(self, host: str, port: int, payload: bytes, wait: float, *,
                 broadcast: bool = False, interface: str | None = None,
                 on_datagram: DatagramSink | None = None) -> None:
        super().__init__(on_datagram)
        self.port = port
        self.payload = payload
        self.wait = wait
        self.broadcast = broadcast
        self.interface = interface
        family, self.destination = resolve(host, port, socket.SOCK_DGRAM)
        self.family = family

    def bind(self) -> Sequence[Endpoint]:
        wildcard = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        sock = self._open(self.family, (wildcard, 0), "send from")
        if self.broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if self.interface is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, self.interface.encode())
            except OSError as exc:
                self.close()
                raise InputError(f"cannot send out of {self.interface}: "
                                 f"{exc.strerror}") from None
        self.shown_address = source_address_for(self.destination[0])
        return [Endpoint("udp", local_endpoint(sock), self.destination[:2])]

    def run(self, cancel: threading.Event) -> UdpOutcome:
        try:
            try:
                self._send(self.payload, self.destination, self.broadcast)
            except OSError as exc:
                self.outcome.error = _send_error(exc, self.destination)
                self.outcome.ended = "error"
                return self.outcome
            deadline = time.monotonic() + self.wait
            while not cancel.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._receive(min(POLL_SECONDS, left))
            self.outcome.ended = "cancelled" if cancel.is_set() else "done"
            return self.outcome
        finally:
            self.close()


class UdpListenDriver(_UdpDriver):
    """`udp listen`: print every datagram to `port`, answer each with `reply` (or the
    datagram itself, `echo`), until `count` datagrams, `duration` seconds or cancel."""

    def __init__(self, bind_address: str, port: int, *, reply: bytes | None = None,
                 echo: bool = False, count: int | None = None, duration: float | None = None,
                 on_datagram: DatagramSink | None = None) -> None:
        super().__init__(on_datagram)
        if count is not None and count <= 0:
            raise InputError("-c needs a positive number of datagrams")
        if duration is not None and duration <= 0:
            raise InputError("--duration needs a positive number of seconds")
        self.family, self.address = resolve(bind_address, port, socket.SOCK_DGRAM)
        self.reply = reply
        self.echo = echo
        self.count = count
        self.duration = duration

    def bind(self) -> Sequence[Endpoint]:
        sock = self._open(self.family, self.address, "listen on")
        return [Endpoint("udp", local_endpoint(sock))]

    def run(self, cancel: threading.Event) -> UdpOutcome:
        deadline = time.monotonic() + self.duration if self.duration else None
        try:
            while not cancel.is_set():
                if self.count is not None and self.outcome.received >= self.count:
                    self.outcome.ended = "count"
                    break
                wait = POLL_SECONDS
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        self.outcome.ended = "duration"
                        break
                datagram = self._receive(wait)
                if datagram is None:
                    continue
                answer = datagram.payload if self.echo else self.reply
                if answer is not None:
                    # from the address the datagram came to (for a broadcast, the one the
                    # kernel picks to reach its sender)
                    source = datagram.destination
                    if datagram.broadcast or source[0] in ("0.0.0.0", "::"):
                        shown = source_address_for(datagram.source[0])
                        source = (shown or source[0], source[1])
                    try:
                        self._send(answer, datagram.source, False, source)
                    except OSError as exc:
                        self.outcome.error = _send_error(exc, datagram.source)
            else:
                self.outcome.ended = "cancelled"
            return self.outcome
        finally:
            self.close()


class UdpChatDriver(_UdpDriver):
    """`udp chat`: lines from `lines` (stdin) go to the peer as datagrams, one each,
    while datagrams from anyone are received and shown; ends at the end of input or on
    cancel. Sending runs on a thread of its own, so reading a line never stops receiving."""

    def __init__(self, local_port: int, host: str, port: int, lines: Iterable[bytes], *,
                 on_datagram: DatagramSink | None = None) -> None:
        super().__init__(on_datagram)
        self.family, self.peer = resolve(host, port, socket.SOCK_DGRAM)
        self.local_port = local_port
        self.lines = lines

    def bind(self) -> Sequence[Endpoint]:
        wildcard = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        sock = self._open(self.family, (wildcard, self.local_port), "chat on")
        self.shown_address = source_address_for(self.peer[0])
        return [Endpoint("udp", local_endpoint(sock), self.peer[:2])]

    def run(self, cancel: threading.Event) -> UdpOutcome:
        finished = threading.Event()
        sender = threading.Thread(target=self._send_lines, args=(cancel, finished),
                                  name="udp-chat-send", daemon=True)
        sender.start()
        try:
            while not cancel.is_set() and not finished.is_set():
                self._receive(POLL_SECONDS)
            # what the peer already sent before our input ended is still shown
            while self._receive(0.0) is not None:
                pass
            self.outcome.ended = "cancelled" if cancel.is_set() else "eof"
            return self.outcome
        finally:
            self.close()

    def _send_lines(self, cancel: threading.Event, finished: threading.Event) -> None:
        try:
            for line in self.lines:
                if cancel.is_set():
                    break
                try:
                    self._send(line.rstrip(b"\r\n"), self.peer, False)
                except OSError as exc:
                    self.outcome.error = _send_error(exc, self.peer)
        finally:
            finished.set()


def broadcast_address(interface: str) -> str:
    """The IPv4 directed broadcast address of `interface`'s subnet (InputError if it has
    none: no IPv4 address, or a point-to-point link)."""
    import fcntl
    import struct

    request = struct.pack("256s", interface.encode()[:15])
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            socket.if_nametoindex(interface)
        except OSError:
            raise InputError(f"{interface}: no such interface "
                             "(`analyzer interfaces` lists them)") from None
        try:
            fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
            packed = fcntl.ioctl(probe.fileno(), SIOCGIFBRDADDR, request)
        except OSError:
            raise InputError(f"{interface} has no IPv4 broadcast address") from None
    finally:
        probe.close()
    address = socket.inet_ntoa(packed[20:24])
    if address == "0.0.0.0":
        raise InputError(f"{interface} has no IPv4 broadcast address")
    return address


def _packet_info(ancillary: list[tuple[int, int, bytes]]) -> tuple[str | None, int]:
    """(destination address, interface index) from IP_PKTINFO / IPV6_PKTINFO."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
            # struct in_pktinfo: int ifindex; in_addr spec_dst; in_addr addr (the header's)
            return socket.inet_ntoa(data[8:12]), int.from_bytes(data[:4], "little")
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 20:
            # struct in6_pktinfo: in6_addr addr; unsigned int ifindex
            return (socket.inet_ntop(socket.AF_INET6, data[:16]),
                    int.from_bytes(data[16:20], "little"))
    return None, 0


def _plain(address: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    return (address[0], address[1])


def _send_error(exc: OSError, destination: tuple[str, int] | tuple[str, int, int, int]) -> str:
    where = f"{destination[0]}:{destination[1]}"
    if exc.errno == errno.EACCES:
        return f"sending to {where} needs --broadcast permission (SO_BROADCAST): {exc.strerror}"
    if exc.errno == errno.EMSGSIZE:
        return f"the datagram is too large to send to {where}"
    return f"sending to {where} failed: {exc.strerror or exc}"
