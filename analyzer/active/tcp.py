"""TCP drivers: a client that connects, sends, prints what comes back and closes the way
asked (`tcp connect`), and a server that accepts, replies or echoes, and closes the way
asked (`tcp serve`).

The close modes are what a student wants to see on the wire:

- `fin`: the normal close. The client reads until the server closes or goes quiet for
  `wait` seconds, then closes; the server sends its reply, then closes its side first
  (shutdown: FIN) and reads until the client's FIN, so no unread data turns its close
  into a reset.
- `half` (client): shutdown(SHUT_WR) right after sending: our FIN goes out, and we read
  on until the server closes (a half-close).
- `rst`: an abortive close: SO_LINGER with a zero timeout, then close(): a RST, no FIN.
- `wait` (server): do not close first; wait for the client's FIN, then close.
"""

from __future__ import annotations

import hashlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from analyzer.active.sockets import bind_error, local_endpoint, resolve
from analyzer.errors import InputError
from analyzer.run.session import Endpoint

POLL_SECONDS = 0.1
READ_SIZE = 1 << 16
CLOSE_MODES = ("fin", "half", "rst")
SERVE_CLOSE_MODES = ("fin", "rst", "wait")
# Connections a server handles at once; more wait in the listen backlog.
MAX_HANDLERS = 64
LISTEN_BACKLOG = 128


class TcpExchange:
    """One connection made or accepted: the SPEC `tcp_exchange` facts."""

    def __init__(self, local: tuple[str, int], remote: tuple[str, int], close: str) -> None:
        self.local = local
        self.remote = remote
        self.close = close  # the mode asked for; "rst" when the peer reset us
        self.sent_bytes = 0
        self.received_bytes = 0
        self._sent_hash = hashlib.sha256()
        self._received_hash = hashlib.sha256()
        self.closed_by: str | None = None  # "local" or "remote": who closed (FIN/RST) first
        self.outcome = "ok"  # ok, refused, reset, timeout
        self.error: str | None = None
        self.started = time.time()
        self.ended: float | None = None

    def sent(self, data: bytes) -> None:
        self.sent_bytes += len(data)
        self._sent_hash.update(data)

    def received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        self._received_hash.update(data)

    @property
    def sent_sha256(self) -> str:
        return self._sent_hash.hexdigest()

    @property
    def received_sha256(self) -> str:
        return self._received_hash.hexdigest()


class TcpEvent(NamedTuple):
    """Something a view shows as it happens: `kind` is connected, data (from the peer),
    closed, or error."""

    kind: str
    exchange: TcpExchange
    data: bytes = b""


EventSink = Callable[[TcpEvent], object]


class TcpConnectDriver:
    """`tcp connect`: connect to (host, port), send `payload` (chunks), print what comes
    back, close by `close` (module docstring). `timeout` bounds the connect."""

    def __init__(self, host: str, port: int, payload: Iterable[bytes], *, close: str = "fin",
                 wait: float = 1.0, timeout: float = 10.0,
                 on_event: EventSink | None = None) -> None:
        if close not in CLOSE_MODES:
            raise InputError(f"--close must be one of {', '.join(CLOSE_MODES)}")
        self.family, self.address = resolve(host, port, socket.SOCK_STREAM)
        self.payload = payload
        self.close = close
        self.wait = wait
        self.timeout = timeout
        self.on_event = on_event
        self.sock: socket.socket | None = None
        self.exchange: TcpExchange | None = None

    def bind(self) -> Sequence[Endpoint]:
        # bound before connecting, so the session knows our port before the SYN
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        wildcard = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        try:
            sock.bind((wildcard, 0))
        except OSError as exc:
            sock.close()
            raise bind_error(exc, "tcp", (wildcard, 0), "connect from") from None
        self.sock = sock
        return [Endpoint("tcp", local_endpoint(sock), (str(self.address[0]), self.address[1]))]

    def run(self, cancel: threading.Event) -> TcpExchange:
        sock = self.sock
        assert sock is not None
        exchange = TcpExchange(local_endpoint(sock), (str(self.address[0]), self.address[1]),
                               self.close)
        self.exchange = exchange
        try:
            if not self._connect(sock, exchange, cancel):
                return exchange
            exchange.local = local_endpoint(sock)
            self._emit("connected", exchange)
            peer_closed = False
            try:
                peer_closed = _send_all(sock, self.payload, exchange, cancel)
                if self.close == "half" and not peer_closed:
                    sock.shutdown(socket.SHUT_WR)
                    exchange.closed_by = "local"
                if not peer_closed:
                    # half: read until the peer's FIN, however long it is quiet
                    idle = None if self.close == "half" else self.wait
                    peer_closed = self._read(sock, exchange, cancel, idle)
            except ConnectionResetError:
                exchange.outcome = "reset"
                exchange.close = "rst"
                exchange.closed_by = exchange.closed_by or "remote"
                exchange.error = "the peer reset the connection"
                self._emit("error", exchange)
                return exchange
            if peer_closed and exchange.closed_by is None:
                exchange.closed_by = "remote"
            if exchange.closed_by is None:
                exchange.closed_by = "local"
            if self.close == "rst":
                _abort(sock)
            return exchange
        finally:
            sock.close()
            exchange.ended = time.time()
            self._emit("closed", exchange)

    def _connect(self, sock: socket.socket, exchange: TcpExchange,
                 cancel: threading.Event) -> bool:
        sock.setblocking(False)
        error = sock.connect_ex(self.address)
        deadline = time.monotonic() + self.timeout
        while error in (115, 11):  # EINPROGRESS, EAGAIN
            if cancel.is_set():
                exchange.outcome, exchange.error = "timeout", "cancelled while connecting"
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                exchange.outcome = "timeout"
                exchange.error = f"no answer to the SYN within {self.timeout:g} s"
                return False
            if select.select([], [sock], [], min(POLL_SECONDS, left))[1]:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                break
        sock.setblocking(True)
        if error == 111:  # ECONNREFUSED: the peer answered the SYN with a RST
            exchange.outcome, exchange.closed_by, exchange.close = "refused", "remote", "rst"
            exchange.error = "connection refused (the port is closed: SYN answered by RST)"
            return False
        if error:
            exchange.outcome = "timeout" if error == 110 else "refused"
            exchange.error = f"cannot connect: {_strerror(error)}"
            return False
        return True

    def _read(self, sock: socket.socket, exchange: TcpExchange, cancel: threading.Event,
              idle: float | None) -> bool:
        return _read_until_closed(sock, exchange, cancel, idle, self._emit, echo=False)

    def _emit(self, kind: str, exchange: TcpExchange, data: bytes = b"") -> None:
        if self.on_event is not None:
            self.on_event(TcpEvent(kind, exchange, data))


class TcpServeOutcome:
    def __init__(self) -> None:
        self.exchanges: list[TcpExchange] = []
        self.accepted = 0
        self.ended = "count"  # count, cancelled


class TcpServeDriver:
    """`tcp serve`: accept `count` connections (None: until cancel), each on a thread of
    its own (at most MAX_HANDLERS at once): send `reply` on accept, or `echo` what comes,
    then close by `close` (module docstring); `wait` bounds reading a silent client."""

    def __init__(self, bind_address: str, port: int, *, reply: bytes | None = None,
                 echo: bool = False, close: str = "fin", count: int | None = None,
                 wait: float = 5.0, on_event: EventSink | None = None) -> None:
        if close not in SERVE_CLOSE_MODES:
            raise InputError(f"--close must be one of {', '.join(SERVE_CLOSE_MODES)}")
        if count is not None and count <= 0:
            raise InputError("-c needs a positive number of connections")
        self.family, self.address = resolve(bind_address, port, socket.SOCK_STREAM)
        self.reply = reply
        self.echo = echo
        self.close = close
        self.count = count
        self.wait = wait
        self.on_event = on_event
        self.sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_HANDLERS)

    def bind(self) -> Sequence[Endpoint]:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            raise bind_error(exc, "tcp", self.address, "listen on") from None
        self.sock = sock
        return [Endpoint("tcp", local_endpoint(sock))]

    def run(self, cancel: threading.Event) -> TcpServeOutcome:
        sock = self.sock
        assert sock is not None
        # Listening only now, once the session's capture is open: a client that connects
        # the moment the port listens still has its handshake in the evidence.
        try:
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise bind_error(exc, "tcp", self.address, "listen on") from None
        outcome = TcpServeOutcome()
        handlers: list[threading.Thread] = []
        try:
            while not cancel.is_set():
                if self.count is not None and outcome.accepted >= self.count:
                    break
                if not select.select([sock], [], [], POLL_SECONDS)[0]:
                    continue
                if not self._slots.acquire(timeout=POLL_SECONDS):
                    continue
                conn, address = sock.accept()
                outcome.accepted += 1
                # "wait" is how we close, not how the connection ends: both sides FIN.
                exchange = TcpExchange(local_endpoint(conn), (str(address[0]), address[1]),
                                       "fin" if self.close == "wait" else self.close)
                with self._lock:
                    outcome.exchanges.append(exchange)
                handler = threading.Thread(target=self._handle,
                                           args=(conn, exchange, cancel),
                                           name="tcp-serve", daemon=True)
                handler.start()
                handlers = [h for h in handlers if h.is_alive()]
                handlers.append(handler)
            else:
                outcome.ended = "cancelled"
        finally:
            sock.close()  # no new connections; those accepted finish
        for handler in handlers:
            handler.join()
        return outcome

    def _handle(self, conn: socket.socket, exchange: TcpExchange,
                cancel: threading.Event) -> None:
        try:
            self._emit("connected", exchange)
            peer_closed = False
            if self.reply is not None:
                conn.sendall(self.reply)
                exchange.sent(self.reply)
            if self.echo or self.close == "wait":
                peer_closed = self._read(conn, exchange, cancel, echo=self.echo)
                if peer_closed:
                    exchange.closed_by = "remote"
            if self.close == "rst":
                exchange.closed_by = exchange.closed_by or "local"
                _abort(conn)
            elif not peer_closed:
                conn.shutdown(socket.SHUT_WR)  # our FIN first; then the client's
                exchange.closed_by = "local"
                self._read(conn, exchange, cancel, echo=False, idle=self.wait)
        except ConnectionResetError:
            exchange.outcome, exchange.close = "reset", "rst"
            exchange.closed_by = exchange.closed_by or "remote"
            exchange.error = "the peer reset the connection"
            self._emit("error", exchange)
        except OSError as exc:
            exchange.outcome = "reset"
            exchange.error = exc.strerror or str(exc)
            self._emit("error", exchange)
        finally:
            conn.close()
            exchange.ended = time.time()
            self._emit("closed", exchange)
            self._slots.release()

    def _read(self, conn: socket.socket, exchange: TcpExchange, cancel: threading.Event,
              echo: bool, idle: float | None = None) -> bool:
        return _read_until_closed(conn, exchange, cancel, idle, self._emit, echo)

    def _emit(self, kind: str, exchange: TcpExchange, data: bytes = b"") -> None:
        if self.on_event is not None:
            with self._lock:
                self.on_event(TcpEvent(kind, exchange, data))


def _read_until_closed(sock: socket.socket, exchange: TcpExchange, cancel: threading.Event,
                       idle: float | None, emit: Callable[[str, TcpExchange, bytes], None],
                       echo: bool) -> bool:
    """Read (and with `echo` send back) until the peer closes (True), `idle` quiet
    seconds or cancel (False); each piece of data goes to `emit` as it comes."""
    quiet_since = time.monotonic()
    while not cancel.is_set():
        if idle is not None and time.monotonic() - quiet_since >= idle:
            return False
        if not select.select([sock], [], [], POLL_SECONDS)[0]:
            continue
        data = sock.recv(READ_SIZE)
        if not data:
            return True
        quiet_since = time.monotonic()
        exchange.received(data)
        emit("data", exchange, data)
        if echo:
            sock.sendall(data)
            exchange.sent(data)
    return False


def _send_all(sock: socket.socket, payload: Iterable[bytes], exchange: TcpExchange,
              cancel: threading.Event) -> bool:
    """Send every chunk; True when the peer closed meanwhile (nothing more to send)."""
    for chunk in payload:
        if cancel.is_set():
            break
        try:
            sock.sendall(chunk)
        except BrokenPipeError:
            return True
        exchange.sent(chunk)
    return False


def _abort(sock: socket.socket) -> None:
    """Close with a RST: SO_LINGER on with a zero timeout."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _strerror(code: int) -> str:
    import os

    return os.strerror(code)

