"""The socket driver of `tftp get` and `tftp put`: sockets, clock and files around the
sans-IO `TftpClient` machine.

`TftpClientDriver(...)` checks its input (the host resolves, the local file can be read or
the target directory written) and raises `InputError` otherwise; `bind()` opens and binds
the UDP socket(s) and returns their local endpoints (a session builds its capture filter
from them before any packet is sent); `run(cancel)` makes the transfer and returns the
machine's `ClientOutcome`. A receive blocks in the kernel for at most 0.1 s at a time
(SO_RCVTIMEO: one system call per datagram, as in C clients), so `cancel` is seen promptly.

Once the server's transfer endpoint is known (its first answer), the socket is connected
to it: a connected UDP socket sends and receives without the address work, ~1 µs less
per block. Datagrams from anyone else then go to a second socket on the same port
(SO_REUSEPORT; the kernel gives a connected socket only its own 4-tuple's traffic), read
every CANCEL_CHECK seconds, on every timeout and at the end, so each stray still gets
its ERROR 5.

The bulk of a plain download (octet, in order, nothing odd pending: the machine's
`bulk_state` says when) is then received and ACKed in C (`_tftp_bulk.c`, built with the
mypyc modules; without it, `receive_next_block` does the same one block at a time in
Python), up to 256 blocks a call, and written to the file from there, right after an
ACK, while the server prepares the next blocks. Anything else a call meets goes to the
machine's `receive`, as every datagram does in the Python loop.

A download is written to a temporary file beside the target and renamed over it only
when the transfer is complete; on any failure the temporary file is removed, so nothing
appears under the target name and a file already there is left untouched. `-` writes to
stdout. An upload reads the local file in pieces as the machine asks for them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import IO, NamedTuple

from analyzer.active.sockets import parse_host_port, parse_port, resolve, source_address_for
from analyzer.errors import InputError
from analyzer.tftp import codec
from analyzer.tftp.client import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Action,
    CancelTimer,
    ClientConfig,
    ClientError,
    ClientOutcome,
    Endpoint,
    Finished,
    Misbehaviour,
    NeedData,
    Progress,
    Send,
    SetTimer,
    TftpClient,
    Write,
)
from analyzer.tftp.netascii import netascii_size

MAX_DATAGRAM = 65536 + 4
POLL_SECONDS = 0.1  # the longest wait for a datagram before looking at `cancel` again
CANCEL_CHECK = 0.05  # while datagrams keep coming, look at `cancel` this often
SOCKET_BUFFER = 4 << 20  # room for a whole window of large blocks
READ_CHUNK = 1 << 20
PROGRESS_BLOCKS = 63  # the progress callback every 64 blocks of a download's bulk
# The C bulk path (_tftp_bulk.c) returns to Python after this many blocks or bytes at
# most, to hash them (when asked), look at `cancel` and strays, and report progress.
BULK_BLOCKS = 256
BULK_BYTES = 256 << 10
STDOUT = "-"

ProgressCallback = Callable[[int, "int | None"], None]
# _tftp_bulk.receive_blocks: (fd, file_fd, out, spare, blksize, expected, acked, window,
# room, max_blocks) -> (taken, acked, status, datagram or errno)
BulkReceive = Callable[[int, int, bytearray, bytearray, int, int, int, int, int, int],
                       "tuple[int, int, int, bytes | int | None]"]
# its statuses (0: a full batch; 3: call again)
BULK_TIMED_OUT, BULK_DATAGRAM, BULK_WRITE_FAILED = 1, 2, 4


def _bulk_receive() -> BulkReceive | None:
    """The C bulk path, when it is built (not with ANALYZER_PURE=1: analyzer/native.py)."""
    try:
        from analyzer.active import _tftp_bulk
    except ImportError:
        return None
    return _tftp_bulk.receive_blocks


class TransferSpec(NamedTuple):
    """What the user asked for: `server` is HOST[:PORT] as typed, `local` a path or '-'."""

    server: str
    remote: str
    local: str
    put: bool = False
    port: int | None = None
    mode: str = "octet"
    blksize: int | None = None
    windowsize: int | None = None
    timeout: float | None = None
    tsize: bool = False
    retries: int = DEFAULT_RETRIES
    use_options: bool = True
    misbehaviour: Misbehaviour = Misbehaviour()
    # A download's SHA-256 in the outcome: ~1.3 ms of CPU a MiB (a seventh of a fast
    # transfer's time), so the command line asks for it only where it is shown (--json).
    digest: bool = True


def parse_server(text: str, port: int | None = None) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address -> (host, port); `port`, when
    given, wins (--port); 69 otherwise."""
    host, number = parse_host_port(text, codec.TFTP_PORT, "server")
    if port is None:
        return host, number
    return host, parse_port(port)


class TftpClientDriver:
    """One `tftp get` or `tftp put` over real sockets."""

    def __init__(self, spec: TransferSpec,
                 on_progress: ProgressCallback | None = None) -> None:
        self.spec = spec
        self.on_progress = on_progress
        host, port = parse_server(spec.server, spec.port)
        self.family, self.server = resolve(host, port, socket.SOCK_DGRAM)
        self.server_text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.sock: socket.socket | None = None
        self.stray: socket.socket | None = None  # the misbehaviour hook's second port
        self._strays: socket.socket | None = None  # see _connect
        self._source: IO[bytes] | None = None
        self.put_size: int | None = None
        if spec.put:
            self._open_source()
        else:
            self.target = self._target_path()

    # ------------------------------------------------------------ input checks

    def _open_source(self) -> None:
        path = self.spec.local
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed at the end of run()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        stat = os.fstat(source.fileno())
        import stat as stat_module

        if stat_module.S_ISDIR(stat.st_mode):
            source.close()
            raise InputError(f"cannot read {path}: it is a directory")
        if stat_module.S_ISREG(stat.st_mode):
            if self.spec.mode.lower() == "netascii":
                self.put_size = _netascii_file_size(source)
            else:
                self.put_size = stat.st_size
        self._source = source

    def _target_path(self) -> str | None:
        """The download's final path (None: stdout); its directory must be writable."""
        local = self.spec.local
        if local == STDOUT:
            return None
        if not local or os.path.isdir(local):
            from analyzer.tftp.extract import safe_name  # (a named target needs none)

            name = safe_name(self.spec.remote, 1)
            local = os.path.join(local, name) if local else name
        directory = os.path.dirname(os.path.abspath(local))
        if not os.path.isdir(directory):
            raise InputError(f"cannot write {local}: no directory {directory}")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise InputError(f"cannot write {local}: {directory} is not writable")
        return local

    # ------------------------------------------------------------ sockets

    def bind(self) -> list[Endpoint]:
        """Open and bind the socket(s); the local endpoints the transfer will use."""
        wildcard = "::" if self.family == socket.AF_INET6 else "0.0.0.0"
        # Bind on the address that routes to the server (loopback stays loopback).
        local_ip = source_address_for(self.server[0]) or wildcard
        endpoints: list[Endpoint] = []
        try:
            self.sock = _udp_socket(self.family, local_ip)
            endpoints.append(_endpoint_of(self.sock))
            if self.spec.misbehaviour.stray_ack is not None:
                self.stray = _udp_socket(self.family, local_ip)
                endpoints.append(_endpoint_of(self.stray))
        except OSError as exc:
            self.close()
            raise InputError(f"cannot open a UDP socket: {exc.strerror or exc}") from None
        return endpoints

    def close(self) -> None:
        for sock in (self.sock, self.stray, self._strays):
            if sock is not None:
                sock.close()
        self.sock = self.stray = self._strays = None
        if self._source is not None:
            self._source.close()
            self._source = None

    # ------------------------------------------------------------ the transfer

    def config(self) -> ClientConfig:
        spec = self.spec
        timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT
        timeout_option = None
        if spec.timeout is not None and float(spec.timeout).is_integer() \
                and 1 <= spec.timeout <= 255:
            timeout_option = int(spec.timeout)
        return ClientConfig(
            server=self.server, filename=spec.remote, put=spec.put, mode=spec.mode,
            blksize=spec.blksize, windowsize=spec.windowsize, timeout_option=timeout_option,
            tsize=spec.tsize, put_size=self.put_size, use_options=spec.use_options,
            timeout=timeout, retries=spec.retries, misbehaviour=spec.misbehaviour,
            hash_get=False)

    def run(self, cancel: threading.Event | None = None) -> ClientOutcome:
        """Make the transfer; the outcome says how it went. Local trouble (a full disk)
        is an outcome too, with ERROR 3 sent to the server; only a failure to create the
        temporary file or to rename it raises OSError."""
        if self.sock is None:
            self.bind()
        cancel = cancel or threading.Event()
        started = time.monotonic()
        sink, temp = self._open_sink()
        outcome: ClientOutcome | None = None
        saved = False  # the download's bytes are all on disk (or on stdout)
        try:
            outcome = self._loop(TftpClient(self.config()), sink, cancel)
            if sink is not None and outcome.ok:
                try:
                    sink.flush()
                    if temp is not None:
                        sink.close()  # no fsync: as fast as the C clients, which have none
                    saved = True
                except OSError as exc:
                    # The server has every block already: too late for an ERROR.
                    outcome = outcome._replace(status="error", error=ClientError(
                        codec.ERR_DISK_FULL, _local_error("write", exc), "client"),
                        reason=_local_error("write", exc))
        finally:
            if temp is not None:
                if saved and self.target is not None:
                    os.replace(temp, self.target)
                else:
                    with contextlib.suppress(OSError):
                        sink.close()  # type: ignore[union-attr]
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
            self.close()
        local = self.spec.local if self.spec.put else (self.target or STDOUT)
        return outcome.with_run(time.monotonic() - started, local)

    def _open_sink(self) -> tuple[IO[bytes] | None, str | None]:
        if self.spec.put:
            return None, None
        if self.target is None:
            return sys.stdout.buffer, None
        directory = os.path.dirname(os.path.abspath(self.target))
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(self.target)}.",
                                    suffix=".part", dir=directory)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as a plain open() would have made it
        return os.fdopen(fd, "wb", buffering=READ_CHUNK), temp

    def _loop(self, machine: TftpClient, sink: IO[bytes] | None,
              cancel: threading.Event) -> ClientOutcome:
        sock = self.sock
        assert sock is not None
        # A blocking socket whose receive times out in the kernel (SO_RCVTIMEO): one
        # system call per datagram, as in C clients (a Python-level timeout adds a poll).
        sock.setblocking(True)
        # recvfrom's bytes of the datagram's size: faster than recvfrom_into and a copy.
        recv = sock.recvfrom
        setsockopt = sock.setsockopt
        send = sock.sendto  # (on a connected socket too: an ERROR 5 goes to a stray)
        receive = machine.receive
        # Connected to the server's transfer endpoint once it is known (module docstring).
        peer: Endpoint | None = None
        recv_peer = sock.recv
        send_peer = sock.send
        strays: socket.socket | None = None
        # Once connected, a plain download's full blocks are taken in C (module docstring).
        bulk = _bulk_receive() if not self.spec.put else None
        bulk_out = bytearray(BULK_BYTES)
        bulk_view = memoryview(bulk_out)
        bulk_spare = bytearray(MAX_DATAGRAM)
        try:
            sink_fd = sink.fileno() if sink is not None else -1
        except (OSError, ValueError):  # (io.UnsupportedOperation is both) no descriptor:
            sink_fd = -1
        if sink_fd < 0:
            bulk = None  # (C writes the blocks it takes to the descriptor)
        fd = sock.fileno()
        next_block = machine.receive_next_block
        block_timer = machine.config.timeout
        blocks = 0  # taken by the shortcut, for the progress callback's pace
        monotonic = time.monotonic
        deadline: float | None = None
        timer: float | None = None  # a SetTimer's seconds, started once the actions are done
        current_wait = -1.0
        next_cancel_check = 0.0
        progress = self.on_progress
        # a get's file, hashed here after the ACK went out (when asked: TransferSpec.digest)
        digest = None
        if self.spec.digest and not self.spec.put:
            import hashlib  # (only then: OpenSSL's start costs a plain transfer ~3 ms)

            digest = hashlib.sha256()
        update: Callable[[bytes | memoryview], None] = \
            digest.update if digest is not None else _no_digest
        actions = machine.start()
        while True:
            if peer is None and machine.peer is not None:
                # Connected before the answer to the server's first datagram goes out: the
                # server sends nothing new (nor do its strays) until it has that answer.
                peer = machine.peer
                strays = self._connect(peer)
                if strays is None:
                    peer = ("", -1)  # stays unconnected: `peer` is never a sender
                else:  # what came before the connect, from anyone, is read as before
                    actions = [*actions, *self._queued(machine)]
            # Carry out the actions. NeedData's answer is appended to this same list, and a
            # for loop over a list also visits what is appended while it runs.
            failure: list[Action] | None = None
            for action in actions:
                # Most frequent first: Send (the ACK), Write, SetTimer for a get's block.
                if isinstance(action, Send):
                    try:
                        if action.stray:
                            self.stray.sendto(action.payload, action.to)  # type: ignore[union-attr]
                        elif action.to is peer and strays is not None:
                            send_peer(action.payload)
                        else:
                            send(action.payload, action.to)
                    except (BlockingIOError, ConnectionRefusedError, InterruptedError):
                        pass  # lost like a dropped datagram: the timer covers it
                elif isinstance(action, Write):
                    try:
                        sink.write(action.data)  # type: ignore[union-attr]
                    except OSError as exc:
                        failure = machine.local_failure(_local_error("write", exc))
                        break
                    update(action.data)
                elif isinstance(action, SetTimer):
                    timer = action.seconds
                elif isinstance(action, Progress):
                    if progress is not None:
                        progress(action.done, action.total)
                elif isinstance(action, NeedData):
                    try:
                        data = self._source.read(action.size)  # type: ignore[union-attr]
                    except OSError as exc:
                        failure = machine.local_failure(_local_error("read", exc),
                                                        codec.ERR_NOT_DEFINED)
                        break
                    actions.extend(machine.provide(data, len(data) < action.size))
                elif isinstance(action, CancelTimer):
                    deadline = timer = None
                elif isinstance(action, Finished):
                    outcome = action.outcome
                    if strays is not None:  # the last strays get their ERROR 5 too
                        self._answer_strays(machine, strays)
                        outcome = outcome._replace(foreign=machine.foreign,
                                               notes=tuple(machine.notes))
                    if progress is not None:
                        progress(outcome.bytes, machine.total)
                    if digest is None:
                        return outcome
                    return outcome._replace(sha256=digest.hexdigest())
            if failure is not None:
                actions = failure
                continue
            now = monotonic()
            # `cancel` and strays are looked at every CANCEL_CHECK seconds and on every
            # timeout.
            if now >= next_cancel_check:
                next_cancel_check = now + CANCEL_CHECK
                if cancel.is_set():
                    actions = machine.abort()
                    continue
                if strays is not None:
                    actions = self._queued(machine, strays)
                    if actions:
                        continue
            if timer is not None:
                deadline = now + timer
                timer = None
            elif deadline is not None and now >= deadline:
                deadline = None
                actions = machine.timer_expired()
                continue
            wait = POLL_SECONDS
            if deadline is not None and deadline - now < POLL_SECONDS:
                wait = deadline - now
            if wait != current_wait:
                setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(wait))
                current_wait = wait
            state = machine.bulk_state() if bulk is not None and strays is not None else None
            if state is not None:
                expected, acked, window, room = state
                blksize = machine.blksize
                try:
                    sink.flush()  # type: ignore[union-attr]  # (C writes to its fd)
                except OSError as exc:
                    actions = machine.local_failure(_local_error("write", exc))
                    continue
                taken, acked, status, received = bulk(  # type: ignore[misc]
                    fd, sink_fd, bulk_out, bulk_spare, blksize, expected, acked, window,
                    room, BULK_BLOCKS)
                actions = []
                if taken:
                    view = bulk_view[:taken * blksize]
                    machine.take_blocks(view, taken, acked)
                    update(view)
                    timer = block_timer
                    if progress is not None:
                        progress(machine.done_bytes, machine.total)
                if status == BULK_DATAGRAM:
                    actions = receive(received, peer)  # type: ignore[arg-type]
                elif status == BULK_WRITE_FAILED:
                    failed = OSError(received, os.strerror(received))  # type: ignore[arg-type]
                    actions = machine.local_failure(_local_error("write", failed))
                elif status == BULK_TIMED_OUT:
                    next_cancel_check = 0.0  # as below
                    if taken:  # the timer runs from the last block, `current_wait` ago
                        deadline = monotonic() - current_wait + block_timer
                        timer = None
                continue
            try:
                if strays is not None:
                    datagram = recv_peer(MAX_DATAGRAM)
                    address: Endpoint = peer  # type: ignore[assignment]
                else:
                    datagram, sender = recv(MAX_DATAGRAM)
                    # (IPv6 gives flow info and scope too: left out)
                    address = sender if len(sender) == 2 else (sender[0], sender[1])
            except (BlockingIOError, TimeoutError):
                next_cancel_check = 0.0  # a quiet moment: look at cancel and strays now
                actions = []
                continue
            except (ConnectionRefusedError, InterruptedError):
                actions = []  # an ICMP error about an earlier datagram; a signal
                continue
            # The bulk of a download: the ACK goes out before anything else is done.
            ack, data = next_block(datagram, address)
            if not data:
                actions = receive(datagram, address)
                continue
            if ack:
                try:
                    if strays is not None:
                        send_peer(ack)
                    else:
                        send(ack, address)
                except (BlockingIOError, ConnectionRefusedError, InterruptedError):
                    pass  # lost like a dropped datagram: the timer covers it
            try:
                sink.write(data)  # type: ignore[union-attr]
            except OSError as exc:
                actions = machine.local_failure(_local_error("write", exc))
                continue
            update(data)
            timer = block_timer
            blocks += 1
            if progress is not None and not blocks & PROGRESS_BLOCKS:
                progress(machine.done_bytes, machine.total)
            actions = []

    def _connect(self, peer: Endpoint) -> socket.socket | None:
        """Connect the socket to the server's transfer endpoint and open the socket that
        catches everyone else's datagrams on the same port (module docstring); None, and
        the socket left as it was, where that cannot be done."""
        sock = self.sock
        assert sock is not None
        strays = None
        try:
            strays = socket.socket(self.family, socket.SOCK_DGRAM)
            strays.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            strays.setblocking(False)
            # Connected first: bound first, the catcher would share the peer's traffic.
            sock.connect(peer)
            strays.bind(sock.getsockname())
        except (OSError, AttributeError):  # (no SO_REUSEPORT on this system)
            if strays is not None:
                strays.close()
            with contextlib.suppress(OSError):  # AF_UNSPEC dissolves the association
                sock.connect((("::" if self.family == socket.AF_INET6 else "0.0.0.0"), 0))
            return None
        self._strays = strays
        return strays

    def _queued(self, machine: TftpClient, sock: socket.socket | None = None
                ) -> list[Action]:
        """The machine's answer to every datagram waiting on `sock` (default: the
        transfer socket), read without blocking, senders as they are."""
        sock = sock if sock is not None else self.sock
        assert sock is not None
        actions: list[Action] = []
        while True:
            try:
                datagram, address = sock.recvfrom(MAX_DATAGRAM, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return actions
            except ConnectionRefusedError:
                continue
            actions.extend(machine.receive(datagram, (address[0], address[1])))

    def _answer_strays(self, machine: TftpClient, strays: socket.socket) -> None:
        """At the end: each stray still waiting gets the machine's answer (ERROR 5)."""
        for action in self._queued(machine, strays):
            if isinstance(action, Send):
                with contextlib.suppress(OSError):
                    strays.sendto(action.payload, action.to)


def _no_digest(data: bytes | memoryview) -> None:
    """`update` when the download is not hashed (TransferSpec.digest)."""


def _local_error(verb: str, exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"cannot {verb} the local file: {where}{exc.strerror or exc}"


def _timeval(seconds: float) -> bytes:
    """A struct timeval for SO_RCVTIMEO; never zero (zero means wait forever)."""
    micro = max(int(seconds * 1_000_000), 1000)
    return struct.pack("@ll", micro // 1_000_000, micro % 1_000_000)


def _netascii_file_size(source: IO[bytes]) -> int:
    size = 0
    while chunk := source.read(READ_CHUNK):
        size += netascii_size(chunk)
    source.seek(0)
    return size


def _udp_socket(family: int, local_ip: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        # (before bind, or no socket can share the port with it later: see _connect)
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((local_ip, 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _endpoint_of(sock: socket.socket) -> Endpoint:
    name = sock.getsockname()
    return str(name[0]), int(name[1])
