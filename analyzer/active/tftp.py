"""The socket driver of `tftp get` and `tftp put`: sockets, clock and files around the
sans-IO `TftpClient` machine.

`TftpClientDriver(...)` checks its input (the host resolves, the local file can be read or
the target directory written) and raises `InputError` otherwise; `bind()` opens and binds
the UDP socket(s) and returns their local endpoints (a session builds its capture filter
from them before any packet is sent); `run(cancel)` makes the transfer and returns the
machine's `ClientOutcome`. It waits with poll (at most 0.1 s at a time, so `cancel` is
seen promptly) and reads every datagram already queued before waiting again.

A download is written to a temporary file beside the target and renamed over it only
when the transfer is complete; on any failure the temporary file is removed, so nothing
appears under the target name and a file already there is left untouched. `-` writes to
stdout. An upload reads the local file in pieces as the machine asks for them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO

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
from analyzer.tftp.extract import safe_name
from analyzer.tftp.netascii import netascii_size

MAX_DATAGRAM = 65536 + 4
POLL_SECONDS = 0.1  # the longest wait for a datagram before looking at `cancel` again
CANCEL_CHECK = 0.05  # while datagrams keep coming, look at `cancel` this often
SOCKET_BUFFER = 4 << 20  # room for a whole window of large blocks
READ_CHUNK = 1 << 20
PROGRESS_BLOCKS = 63  # the progress callback every 64 blocks of a download's bulk
STDOUT = "-"

ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class TransferSpec:
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
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)


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
        self.stray: socket.socket | None = None
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
        if not local:
            local = safe_name(self.spec.remote, 1)
        elif os.path.isdir(local):
            local = os.path.join(local, safe_name(self.spec.remote, 1))
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
        for sock in (self.sock, self.stray):
            if sock is not None:
                sock.close()
        self.sock = self.stray = None
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
                    outcome = replace(outcome, status="error", error=ClientError(
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
        send = sock.sendto
        receive = machine.receive
        next_block = machine.receive_next_block
        block_timer = machine.config.timeout
        blocks = 0  # taken by the shortcut, for the progress callback's pace
        monotonic = time.monotonic
        deadline: float | None = None
        timer: float | None = None  # a SetTimer's seconds, started once the actions are done
        current_wait = -1.0
        next_cancel_check = 0.0
        progress = self.on_progress
        digest = hashlib.sha256()  # of a get's file: hashed here, after the ACK went out
        update = digest.update
        actions = machine.start()
        while True:
            # Carry out the actions. NeedData's answer is appended to this same list, and a
            # for loop over a list also visits what is appended while it runs.
            failure: list[Action] | None = None
            for action in actions:
                # Most frequent first: Send (the ACK), Write, SetTimer for a get's block.
                if isinstance(action, Send):
                    try:
                        if action.stray:
                            self.stray.sendto(action.payload, action.to)  # type: ignore[union-attr]
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
                    if progress is not None:
                        progress(action.outcome.bytes, machine.total)
                    if self.spec.put:
                        return action.outcome
                    return replace(action.outcome, sha256=digest.hexdigest())
            if failure is not None:
                actions = failure
                continue
            now = monotonic()
            # `cancel` is looked at every CANCEL_CHECK seconds and on every timeout.
            if now >= next_cancel_check:
                next_cancel_check = now + CANCEL_CHECK
                if cancel.is_set():
                    actions = machine.abort()
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
            try:
                datagram, address = recv(MAX_DATAGRAM)
            except (BlockingIOError, TimeoutError):
                actions = machine.abort() if cancel.is_set() else []
                continue
            except (ConnectionRefusedError, InterruptedError):
                actions = []  # an ICMP error about an earlier datagram; a signal
                continue
            if len(address) != 2:
                address = (address[0], address[1])  # IPv6: drop flow info and scope
            # The bulk of a download: the ACK goes out before anything else is done.
            ack, data = next_block(datagram, address)
            if not data:
                actions = receive(datagram, address)
                continue
            if ack:
                try:
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
