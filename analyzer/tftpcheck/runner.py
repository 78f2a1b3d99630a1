"""Run the selected checks against one server in one capture session.

`run_checks(options)` opens one live capture (filter: the server's address, and ours
towards it, since a server may answer from another address, plus ICMP), runs each
check's exchange one after the other on the main thread, then reads the capture: the
session's TFTP tracker gives the transfers, and an observer keeps every captured UDP
datagram of our ports with its frame number (the frame numbers of the -w file). Each
check's verdict function then judges its probes from that evidence.

Never harm the server: one check at a time (only `concurrent` runs 8 transfers at once),
each transfer with a bounded number of retransmissions, each check cancelled after
`check_timeout` seconds (a cancelled transfer sends ERROR 0), every raw exchange that
got DATA or an OACK ends it with an ERROR, uploads only when asked (`writable`).
A server that never answers makes the first check fail and the others `skipped`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from analyzer.active.sockets import resolve, source_address_for
from analyzer.active.tftp import parse_server
from analyzer.decode.packet import PROTO_UDP, Packet
from analyzer.errors import InputError
from analyzer.run.session import Endpoint, interface_for, run_session
from analyzer.tftp import codec
from analyzer.tftp.client import (
    Action,
    CancelTimer,
    ClientConfig,
    ClientOutcome,
    Finished,
    Misbehaviour,
    NeedData,
    Send,
    SetTimer,
    TftpClient,
)
from analyzer.tftp.transfer import TftpTransfer
from analyzer.tftpcheck.checks import (
    BY_ID,
    CHECKS,
    FAIL,
    NEEDS_BIG_FILE,
    NEEDS_FILE,
    NEEDS_WRITABLE,
    SKIPPED,
    Check,
    Evidence,
    Probe,
    Seen,
    Verdict,
)

RETRIES = 3  # retransmissions in a row before a transfer gives up
RAW_LISTEN = 1.0  # seconds a raw probe waits for answers after the last one
RETRANSMIT_WINDOW = 16.0  # how long `retransmit` watches DATA 1 come again
RETRANSMIT_QUIET = 7.0  # ... or until silent this long (atftpd, tftpy resend every 5 s)
POLL_SECONDS = 0.1  # the longest wait between two looks at the stop event
MAX_DATAGRAM = 65536 + 4
SOCKET_BUFFER = 4 << 20
MAX_PORT_TRIES = 1024  # binds before giving up on finding a port new to the session
SEND_INTERVAL = 0.0002  # at most 5,000 datagrams a second from one transfer
MIN_GAP = 0.02  # bounded rate: at least this long between two checks
AFTER_ERROR = 0.3  # a raw probe answered by an ERROR listens this long for more
# Checks whose exchange every live server answers (a silent server may ignore the rest).
EXPECT_ANSWER = frozenset({"rrq-octet", "rrq-netascii", "mode-case", "file-not-found",
                           "blksize", "tsize", "new-tid", "reply-address", "concurrent"})


@dataclass(frozen=True)
class CheckOptions:
    server: str  # HOST[:PORT] as typed
    file: str | None = None
    big_file: str | None = None
    writable: bool = False
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    port: int | None = None
    timeout: float = 1.0  # the client's base retransmit timeout
    check_timeout: float = 30.0  # each check is cancelled after this
    write: str | None = None  # keep the evidence capture here


@dataclass
class CheckResult:
    check: Check
    verdict: Verdict
    seconds: float = 0.0


@dataclass
class CheckReport:
    results: list[CheckResult]
    transfers: list[TftpTransfer]
    evidence_path: str | None
    server: tuple[str, int]
    no_capture: str | None = None


def select_checks(only: Sequence[str], skip: Sequence[str]) -> list[Check]:
    """The checks to run in table order; InputError names an unknown id."""
    for name in (*only, *skip):
        if name not in BY_ID:
            raise InputError(f"unknown check {name!r} (known: {', '.join(BY_ID)})")
    return [c for c in CHECKS if (not only or c.id in only) and c.id not in skip]


class _Transfer:
    """One transfer of the checker: the sans-IO client machine on its own socket (and a
    second one for the stray-ACK hook), downloads thrown away (the tracker rebuilds the
    file from the capture), uploads from memory, sends paced SEND_INTERVAL apart (a
    bounded rate for the server, and a pace the capture keeps up with), ended by `stop`
    with ERROR 0. (The `tftp get` driver is compiled by mypyc and writes files; this
    loop is the few lines the checker needs of it.)"""

    def __init__(self, config: ClientConfig, ports: _LocalPorts, upload: bytes = b"") -> None:
        self.config = config
        self.ports = ports
        self.sock = ports.open()
        self.stray: socket.socket | None = None
        if config.misbehaviour.stray_ack is not None:
            self.stray = ports.open()
        self.upload = upload
        self.offset = 0
        self._next_send = 0.0

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def stray_port(self) -> int | None:
        return int(self.stray.getsockname()[1]) if self.stray is not None else None

    def run(self, stop: threading.Event) -> ClientOutcome:
        machine = TftpClient(self.config)
        actions: list[Action] = machine.start()
        deadline: float | None = None
        try:
            while True:
                i = 0
                while i < len(actions):
                    action = actions[i]
                    i += 1
                    if isinstance(action, Send):
                        self._send(action)
                    elif isinstance(action, SetTimer):
                        deadline = time.monotonic() + action.seconds
                    elif isinstance(action, CancelTimer):
                        deadline = None
                    elif isinstance(action, NeedData):
                        chunk = self.upload[self.offset:self.offset + action.size]
                        self.offset += len(chunk)
                        actions.extend(machine.provide(chunk, len(chunk) < action.size))
                    elif isinstance(action, Finished):
                        return action.outcome
                if stop.is_set():
                    actions = machine.abort()  # ERROR 0 to the server, then Finished
                    continue
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    deadline = None
                    actions = machine.timer_expired()
                    continue
                wait = POLL_SECONDS if deadline is None else min(POLL_SECONDS,
                                                                 deadline - now)
                self.sock.settimeout(max(wait, 0.001))
                try:
                    datagram, sender = self.sock.recvfrom(MAX_DATAGRAM)
                except OSError:  # a timeout, or an ICMP error about an earlier datagram
                    actions = []
                    continue
                self.ports.heard(int(sender[1]))
                actions = machine.receive(datagram, (str(sender[0]), int(sender[1])))
        finally:
            self.close()

    def _send(self, action: Send) -> None:
        now = time.monotonic()
        if now < self._next_send:
            time.sleep(self._next_send - now)
        self._next_send = max(now, self._next_send) + SEND_INTERVAL
        sock = self.stray if action.stray and self.stray is not None else self.sock
        with contextlib.suppress(OSError):  # lost like a dropped datagram: timers cover it
            sock.sendto(action.payload, action.to)

    def close(self) -> None:
        self.ports.retire(self.sock)
        if self.stray is not None:
            self.ports.retire(self.stray)


class PortsExhausted(Exception):
    """Every free local port has been used once this session: the remaining checks are
    skipped with this reason."""


class _LocalPorts:
    """The session's UDP sockets, each on a port no earlier exchange of the session used,
    ours or the server's: the evidence is kept by our port. The kernel picks a free port
    at random (from some 28,000), so in one run of 40 sockets it handed the same one out
    twice about one time in 45, and a later check counted an earlier one's packets as its
    own (seen: DATA 2 of an earlier transfer taken for a Sorcerer's Apprentice duplicate).
    So a socket done with is kept bound until the session ends (`close`), which keeps the
    port from us and from a server on our own address (loopback) alike, and a port the
    server sent from is never taken for ours. Sockets are opened on the driver's thread;
    `heard` may be called from any."""

    def __init__(self, family: int, local_ip: str, log: _PacketLog) -> None:
        self.family = family
        self.local_ip = local_ip
        self.log = log
        self.taken: set[int] = set()
        self.sockets: list[socket.socket] = []  # every one handed out, closed by `close`

    def heard(self, port: int) -> None:
        """A port the server sent to us from."""
        self.taken.add(port)

    def open(self) -> socket.socket:
        """A bound socket on a port new to the session, kept until `close` (`retire` it
        when done); PortsExhausted when none is left."""
        rejected: list[socket.socket] = []  # kept bound meanwhile: the kernel picks others
        try:
            for _ in range(MAX_PORT_TRIES):
                sock = socket.socket(self.family, socket.SOCK_DGRAM)
                try:
                    sock.bind((self.local_ip, 0))
                except OSError:
                    sock.close()
                    break  # every free port of the range is held or in use
                port = int(sock.getsockname()[1])
                if port not in self.taken and port not in self.log.by_port:
                    self.taken.add(port)
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
                    self.sockets.append(sock)
                    return sock
                rejected.append(sock)
        finally:
            for sock in rejected:
                sock.close()
        raise PortsExhausted(f"no local UDP port left that this session has not used "
                             f"({len(self.taken)} used; widen net.ipv4.ip_local_port_range)")

    def retire(self, sock: socket.socket) -> None:
        """Done with `sock`: it stays bound, with the smallest receive buffer (what a
        server still sends it is dropped), until `close`."""
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


class ServerChecker:
    """The session's driver: runs the checks, keeps their probes (the `Exchange`)."""

    def __init__(self, options: CheckOptions, checks: Sequence[Check],
                 on_check: Callable[[Check, str], None] | None = None) -> None:
        self.options = options
        self.checks = list(checks)
        self.on_check = on_check
        host, port = parse_server(options.server, options.port)
        self.family, self.server = resolve(host, port, socket.SOCK_DGRAM)
        self.server_text = options.server
        self.file = options.file
        self.big_file = options.big_file
        self.writable = options.writable
        self.file_size: int | None = None
        self.token = (f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-"
                      f"{secrets.token_hex(3)}")
        self.probes: dict[str, list[Probe]] = {}
        self.skipped: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self._cancel = threading.Event()
        self._deadline = 0.0
        self.local_ip = _source_address(self.family, self.server)
        self.log = _PacketLog(self.local_ip)
        self.ports = _LocalPorts(self.family, self.local_ip, self.log)

    # ------------------------------------------------------------ session driver

    def bind(self) -> Sequence[Endpoint]:
        return [Endpoint("udp", (self.local_ip, 0), self.server)]

    def run(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        dead: str | None = None
        answered = False
        for check in self.checks:
            if cancel.is_set():
                self.skipped[check.id] = "cancelled by the user"
                continue
            reason = self._missing(check)
            if reason is None and dead is not None:
                reason = dead
            if reason is not None:
                self.skipped[check.id] = reason
                continue
            if self.on_check is not None:
                self.on_check(check, "running")
            started = time.monotonic()
            self._deadline = started + (check.budget or self.options.check_timeout)
            try:
                probes = check.drive(self)
            except PortsExhausted as exc:
                dead = self.skipped[check.id] = str(exc)
                continue
            self.probes[check.id] = probes
            self.seconds[check.id] = time.monotonic() - started
            if self.on_check is not None:
                self.on_check(check, "done")
            if any(p.answered for p in probes):
                answered = True
            elif not answered and probes and check.id in EXPECT_ANSWER:
                # Nothing has ever come back: the server is down or filtered; the
                # other checks would only wait out their timeouts.
                dead = f"the server did not answer {check.id}"
            time.sleep(MIN_GAP)

    def _missing(self, check: Check) -> str | None:
        if NEEDS_FILE in check.needs and not self.file:
            return "needs --file"
        if NEEDS_BIG_FILE in check.needs and not self.big_file:
            return "needs --big-file (more than 65,535 blocks of 512 bytes)"
        if NEEDS_WRITABLE in check.needs and not self.writable:
            return "needs --writable"
        return None

    # ------------------------------------------------------------ the Exchange toolbox

    def _transfer(self, filename: str, put: bool, data: bytes, mode: str,
                  options: codec.Options, misbehaviour: Misbehaviour | None,
                  timeout: float | None) -> _Transfer:
        config = ClientConfig(server=self.server, filename=filename, put=put, mode=mode,
                              put_size=len(data) if put else None, raw_options=options,
                              timeout=timeout or self.options.timeout, retries=RETRIES,
                              misbehaviour=misbehaviour or Misbehaviour())
        return _Transfer(config, self.ports, data)

    def _run_bounded(self, transfers: Sequence[_Transfer]) -> list[ClientOutcome | None]:
        """Run the transfers at once, each cancelled (ERROR 0) at the check's deadline."""
        stop = threading.Event()
        outcomes: list[ClientOutcome | None] = [None] * len(transfers)

        def one(i: int) -> None:
            try:
                outcomes[i] = transfers[i].run(stop)
            except OSError:
                outcomes[i] = None

        threads = [threading.Thread(target=one, args=(i,), daemon=True)
                   for i in range(len(transfers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
                if time.monotonic() > self._deadline or self._cancel.is_set():
                    stop.set()
        return outcomes

    def transfer(self, what: str, filename: str, *, put: bool = False, data: bytes = b"",
                 mode: str = "octet", options: codec.Options = (),
                 misbehaviour: Misbehaviour | None = None,
                 timeout: float | None = None) -> Probe:
        transfer = self._transfer(filename, put, data, mode, options, misbehaviour, timeout)
        probe = Probe(what, [transfer.port], stray_port=transfer.stray_port)
        outcome = self._run_bounded([transfer])[0]
        probe.outcome = outcome
        probe.answered = outcome is not None and outcome.peer is not None
        if (outcome is not None and outcome.ok and not put and filename == self.file
                and mode == "octet" and self.file_size is None):
            self.file_size = outcome.bytes
        return probe

    def transfers(self, what: str, count: int, filename: str) -> list[Probe]:
        transfers = [self._transfer(filename, False, b"", "octet", (), None, None)
                     for _ in range(count)]
        ports = [transfer.port for transfer in transfers]
        outcomes = self._run_bounded(transfers)
        probes = []
        for port, outcome in zip(ports, outcomes, strict=True):
            probe = Probe(what, [port], outcome)
            probe.answered = outcome is not None and outcome.peer is not None
            probes.append(probe)
        return probes

    def raw(self, what: str, payload: bytes, *, reply: str = "end",
            listen: float | None = None) -> Probe:
        """Send `payload` from a new socket and listen. `reply`: "end" answers a DATA or
        OACK with ERROR 0 (ends the transfer it started); "refuse-oack" answers an OACK
        with ERROR 8 (else as "end"); "silent" answers nothing until the server has been
        quiet RETRANSMIT_QUIET s or RETRANSMIT_WINDOW s have passed, then ends it."""
        wait = listen if listen is not None else RAW_LISTEN
        sock = self.ports.open()
        port = int(sock.getsockname()[1])
        answered = False
        try:
            sock.sendto(payload, self.server)
            started = last = time.monotonic()
            peer: tuple[str, int] | None = None
            ended = False
            while True:
                now = time.monotonic()
                if reply == "silent" and not ended:
                    limit = min(last + RETRANSMIT_QUIET, started + RETRANSMIT_WINDOW)
                    if answered is False:
                        limit = started + max(wait, 3 * self.options.timeout)
                else:
                    limit = last + wait
                limit = min(limit, self._deadline)
                if now >= limit or self._cancel.is_set():
                    break
                sock.settimeout(max(0.01, min(limit - now, 0.1)))
                try:
                    datagram, sender = sock.recvfrom(65536 + 4)
                except (TimeoutError, BlockingIOError):
                    continue
                except OSError:
                    continue  # an ICMP error about what we sent
                answered = True
                last = time.monotonic()
                sender = (str(sender[0]), int(sender[1]))
                self.ports.heard(sender[1])
                peer = peer or sender
                kind = datagram[1] if len(datagram) >= 2 and datagram[0] == 0 else None
                if kind == codec.ERROR:
                    wait = min(wait, AFTER_ERROR)  # the server ended it; a moment for more
                if reply == "silent" or ended:
                    continue
                if kind == codec.OACK and reply == "refuse-oack":
                    sock.sendto(codec.Error(codec.ERR_OPTION_NEGOTIATION,
                                            "analyzer tftp check: option refused").encode(),
                                sender)
                    ended = True
                elif kind in (codec.DATA, codec.OACK):
                    sock.sendto(codec.Error(codec.ERR_NOT_DEFINED,
                                            "analyzer tftp check: done").encode(), sender)
                    ended = True
            if peer is not None and reply == "silent":
                sock.sendto(codec.Error(codec.ERR_NOT_DEFINED,
                                        "analyzer tftp check: done").encode(), peer)
                time.sleep(0.05)
        finally:
            self.ports.retire(sock)
        probe = Probe(what, [port])
        probe.answered = answered
        return probe


def _source_address(family: int, server: tuple[str, int]) -> str:
    """The checker's local address: for a loopback server its own address (the capture
    filter `host SERVER` then sees every packet of ours and nobody else's on lo), else
    the address the kernel would use towards it."""
    if ipaddress.ip_address(server[0]).is_loopback:
        return server[0]
    return source_address_for(server[0]) or ("::" if family == socket.AF_INET6 else "0.0.0.0")


def _watch_filter(server_ip: str, local_ip: str) -> str:
    # A server may answer from another address of its host (tftpy: from 127.0.0.1), so
    # our own address is watched too; ICMP carries port-unreachable errors.
    hosts = dict.fromkeys([server_ip, local_ip])
    return "(" + " or ".join(f"host {h}" for h in hosts
                             if not ipaddress.ip_address(h).is_unspecified) + \
        ") or icmp or icmp6"


class _PacketLog:
    """The session observer: every UDP datagram to or from our address, kept by our
    port (the checker's sockets are all bound to `local_ip`)."""

    def __init__(self, local_ip: str) -> None:
        self.local = ipaddress.ip_address(local_ip).packed
        self.by_port: dict[int, list[Seen]] = {}

    def __call__(self, pkt: Packet) -> None:
        if pkt.proto != PROTO_UDP:
            return
        ours = {port for addr, port in ((pkt.src, pkt.sport), (pkt.dst, pkt.dport))
                if addr == self.local}
        if not ours:
            return
        seen = Seen(pkt.frame, pkt.ts, (_ip(pkt.src), pkt.sport), (_ip(pkt.dst), pkt.dport),
                    bytes(pkt.payload))
        for port in ours:
            self.by_port.setdefault(port, []).append(seen)


def _ip(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def run_checks(options: CheckOptions,
               on_check: Callable[[Check, str], None] | None = None) -> CheckReport:
    """Run the checks (see the module docstring); InputError for unusable input or when
    the capture cannot be opened (the verdicts need it)."""
    checks = select_checks(options.only, options.skip)
    checker = ServerChecker(options, checks, on_check)
    log = checker.log
    try:
        session = run_session(checker, watch=True, write=options.write,
                              tftp_ports=(checker.server[1],),
                              interface=interface_for(checker.bind()), observers=[log],
                              bpf=_watch_filter(checker.server[0], checker.local_ip))
    finally:
        checker.ports.close()
    if session.analysis is None:
        raise InputError(f"cannot capture the evidence: {session.no_watch}")
    transfers = list(session.analysis.tftp.results())
    by_port: dict[int, list[TftpTransfer]] = {}
    local = ipaddress.ip_address(checker.local_ip).packed
    for transfer in transfers:
        if transfer.client_addr == local:
            by_port.setdefault(transfer.client_port, []).append(transfer)
    results = []
    for check in checks:
        if check.id in checker.skipped:
            results.append(CheckResult(check, Verdict(SKIPPED, checker.skipped[check.id])))
            continue
        evidence = Evidence(checker.probes.get(check.id, []), by_port, log.by_port,
                            checker.server)
        try:
            verdict = check.judge(evidence)
        except (ValueError, IndexError) as exc:  # evidence too thin to judge
            verdict = Verdict(FAIL, f"the capture does not show the exchange ({exc})")
        verdict = verdict._replace(frames=tuple(sorted(set(verdict.frames))))
        results.append(CheckResult(check, verdict, checker.seconds.get(check.id, 0.0)))
    return CheckReport(results, transfers, options.write, checker.server)
