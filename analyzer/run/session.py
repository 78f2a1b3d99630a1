"""Live sessions: a capture and the trackers watching traffic while something runs.

Theory of operation
-------------------
`sniff` is a session with no driver: the capture runs on the main thread until a count,
a duration, Ctrl-C or SIGTERM, and the live view redraws between packets.

An active mode (`tftp get`, `udp send`, `tcp connect`, ...) is a session with a driver:

1. `driver.bind()` opens and binds the driver's sockets and says which endpoints it will
   use (`Endpoint`: transport, local address and port, the peer when known). Nothing has
   been sent yet.
2. From those endpoints the session builds a BPF filter that matches exactly this
   command's traffic (its local ports, and ICMP errors about it) and picks the interface
   it crosses (`lo` for loopback peers, the interface holding the local address, or
   `any`). The capture socket is opened with the filter attached before the driver sends
   its first packet, so the evidence starts with it.
3. The capture feeds the pipeline's `Analyzer` on a background thread while the driver
   runs on the main thread. Ctrl-C and SIGTERM set the driver's `cancel` event (a second
   Ctrl-C interrupts at once); the driver ends its exchange cleanly (a TFTP ERROR 0, a
   close) and returns its outcome.
4. The session lets the last packets reach the capture socket (`SETTLE_SECONDS`), stops
   the capture, finishes the trackers and returns the outcome with the analysis.

Without permission to capture, or when the user did not ask to watch, the driver runs
alone and `SessionResult.no_watch` says why there is no analysis. Protocol logic is not
here: the drivers (`analyzer.active`) drive sans-IO machines, and the trackers analyze.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from analyzer.active.endpoint import Endpoint
from analyzer.errors import InputError

if TYPE_CHECKING:
    from analyzer.capture import Frame
    from analyzer.capture.live import LiveCapture
    from analyzer.decode import Packet
    from analyzer.pipeline import Analysis, Analyzer

__all__ = ["Driver", "Endpoint", "SessionResult", "interface_for", "run_session", "sniff",
           "watch_filter"]
ANY = "any"  # as capture.live.ANY (imported there on use: the command line starts fast)

# Loopback delivery is synchronous, but the capture thread reads the socket on its own
# schedule: this long after the driver's last packet, every packet has been read.
SETTLE_SECONDS = 0.2

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Driver(Protocol[T_co]):
    """What a session runs: `bind` opens the sockets (nothing sent yet) and names their
    endpoints; `run` does the exchange until done or `cancel` is set, and returns its
    outcome."""

    def bind(self) -> Sequence[Endpoint]: ...

    def run(self, cancel: threading.Event) -> T_co: ...


class SessionResult(Generic[T]):
    """The driver's outcome and, when the session watched, the analysis of its traffic."""

    def __init__(self, outcome: T, analysis: Analysis | None, no_watch: str | None,
                 interface: str | None, bpf: str | None) -> None:
        self.outcome = outcome
        self.analysis = analysis
        self.no_watch = no_watch  # why there is no analysis (None when there is one)
        self.interface = interface
        self.bpf = bpf


def run_session(driver: Driver[T], *, watch: bool = False, write: str | None = None,
                tftp_ports: Sequence[int] = (), interface: str | None = None,
                keep_streams: bool = True,
                observers: Sequence[Callable[[Packet], object]] = (),
                bpf: str | None = None) -> SessionResult[T]:
    """Run `driver` while watching its own traffic when `watch` or `write` asks for it
    (see the module docstring). `interface` overrides the one chosen from the endpoints;
    `keep_streams` keeps every TCP stream's packets for the ladder view; `observers` see
    every decoded packet after the trackers (the UDP datagram log); `bpf` replaces the
    filter built from the endpoints (a driver whose ports are not known up front, such as
    the server checker's many transfers, watches by the server's address instead)."""
    endpoints = driver.bind()
    capture: LiveCapture | None = None
    no_watch: str | None = None if watch or write else "not asked to watch"
    bpf = bpf or watch_filter(endpoints)
    chosen = None
    if no_watch is None:
        # (imported only to watch: an exchange not watched starts ~20 ms sooner)
        from analyzer.capture.live import LiveCapture

        chosen = interface or interface_for(endpoints)
        try:
            capture = LiveCapture(chosen, bpf=bpf, write=write)
        except InputError as exc:
            no_watch = str(exc)
    analyzer: Analyzer | None = None
    stop = threading.Event()
    thread = None
    if capture is not None:
        from analyzer.pipeline import Analyzer
        from analyzer.tcp.tracker import TcpTracker
        from analyzer.tftp.tracker import TftpTracker

        # An active session is small: keep every TCP stream's packets (the ladder) and
        # every TFTP transfer's timeline (`tftp show`'s view of our own transfer).
        analyzer = Analyzer(tcp_tracker=TcpTracker(keep_all=keep_streams),
                            tftp_tracker=TftpTracker(extra_ports=tftp_ports, timeline=True))
        feed: Callable[[Frame], object] = analyzer.feed
        if observers:
            watching = analyzer

            def feed(frame: Frame) -> None:
                pkt = watching.feed(frame)
                if pkt is not None:
                    for observer in observers:
                        observer(pkt)

        thread = threading.Thread(target=capture.run, args=(feed, stop),
                                  name="analyzer-watch", daemon=True)
        thread.start()
    cancel = threading.Event()
    try:
        with _cancel_on_signals(cancel):
            outcome = driver.run(cancel)
    finally:
        if capture is not None and thread is not None:
            stop.wait(SETTLE_SECONDS)
            stop.set()
            thread.join()
    analysis = analyzer.finish(capture.info) if capture is not None and analyzer else None
    return SessionResult(outcome, analysis, no_watch, chosen if capture else None, bpf)


def sniff(interface: str, *, bpf: str | None, count: int | None, duration: float | None,
          write: str | None, analyzer: Analyzer,
          on_start: Callable[[LiveCapture], Callable[[], object] | None] | None = None
          ) -> Analysis:
    """`analyzer sniff`: capture on the main thread until a count, a duration, Ctrl-C,
    SIGTERM or the loss of the interface (`analysis.capture.info.ended` says which),
    feeding `analyzer`; `on_start(capture)` may return a callable run between
    packets about four times a second (the live view's refresh)."""
    from analyzer.capture.live import LiveCapture

    capture = LiveCapture(interface, bpf=bpf, count=count, duration=duration, write=write)
    stop = threading.Event()
    # Ctrl-C and SIGTERM only ask the capture loop to stop, wherever they land, so every
    # frame written to -w has also been analyzed and the report is always printed.
    def on_signal(signum: int, frame: object) -> None:
        capture.stop_reason = f"signal {signal.Signals(signum).name}"
        stop.set()

    with _on_signals(on_signal):
        on_tick = on_start(capture) if on_start is not None else None
        capture.run(analyzer.feed, stop, on_tick=on_tick)
    return analyzer.finish(capture.info)


@contextmanager
def _on_signals(handler: Callable[[int, object], None]) -> Iterator[None]:
    """`handler` for Ctrl-C and SIGTERM while the block runs (main thread only: signals
    reach no other; a caller on another thread stops the session itself)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.signal(signum, handler)
             for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, previous in saved.items():
            signal.signal(signum, previous)


def _cancel_on_signals(cancel: threading.Event) -> AbstractContextManager[None]:
    """The first Ctrl-C or SIGTERM asks the driver to end cleanly; a second interrupts."""

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()

    return _on_signals(handler)


def watch_filter(endpoints: Sequence[Endpoint]) -> str:
    """A BPF filter for exactly these endpoints' traffic: each local port on its
    transport (whoever the peer is: a TFTP server answers from a new port, a wildcard-bound
    one from another address, a broadcast from every host), and ICMP errors, which quote
    our datagrams (port unreachable, say)."""
    ports = [f"{endpoint.transport} port {endpoint.local[1]}" for endpoint in endpoints]
    return " or ".join([*dict.fromkeys(ports), "icmp", "icmp6"])


def interface_for(endpoints: Sequence[Endpoint]) -> str:
    """The interface the endpoints' traffic crosses: `lo` when every peer is on this host,
    the one interface holding the local addresses used, else `any`."""
    names = set()
    for endpoint in endpoints:
        local = endpoint.local[0]
        if _is_unspecified(local):
            if endpoint.remote is None or _is_unspecified(endpoint.remote[0]):
                return ANY  # a listener on every address: traffic may come on any of them
            from analyzer.active.sockets import source_address_for

            source = source_address_for(endpoint.remote[0])
            if source is None:
                return ANY
            local = source
        if _is_loopback(local):
            names.add("lo")
            continue
        name = _interface_holding(local)
        if name is None:
            return ANY
        names.add(name)
    if len(names) == 1:
        return names.pop()
    return ANY


def _is_unspecified(address: str) -> bool:
    return address in ("", "0.0.0.0", "::")


def _is_loopback(address: str) -> bool:
    import ipaddress  # (here: a transfer not watched starts without it)

    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _interface_holding(address: str) -> str | None:
    """The name of the interface that has `address` (IPv4 or IPv6), if any."""
    import ipaddress

    try:
        wanted = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if wanted.version == 6:
        try:
            with open("/proc/net/if_inet6") as table:
                for line in table:
                    fields = line.split()
                    if len(fields) >= 6 and ipaddress.ip_address(
                            ":".join(fields[0][i:i + 4] for i in range(0, 32, 4))) == wanted:
                        return fields[5]
        except OSError:
            return None
        return None
    from analyzer.capture.live import list_interfaces

    for entry in list_interfaces():
        if str(wanted) in entry.addresses:
            return entry.name
    return None
