"""Live capture from an interface: scapy opens the packet socket (with the BPF filter
attached in the kernel) and we read frames from it until a count, a duration, Ctrl-C or
SIGTERM stops us. Frames go to the same `Analyzer` as a file's, and optionally to pcapng.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from analyzer.capture.frame import CaptureInfo, Frame, InterfaceInfo
from analyzer.capture.pcapng_writer import PcapngWriter
from analyzer.errors import InputError

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
# ARPHRD (Linux hardware type) -> link type of the frames the packet socket gives us.
ARPHRD_LINKTYPES = {1: 1, 772: 1, 65534: 101, 778: 101, 776: 101, 768: 101, 769: 101,
                    824: 229, 801: 127, 803: 127}
SO_TIMESTAMPNS = 35
TICK = 0.25  # seconds between live-view refreshes


@dataclass
class InterfaceEntry:
    name: str
    index: int
    linktype: int
    up: bool
    addresses: list[str]


def list_interfaces() -> list[InterfaceEntry]:
    """Interfaces of this host, from /sys/class/net and getifaddrs via scapy-free calls."""
    entries = []
    for index, name in socket.if_nameindex():
        base = f"/sys/class/net/{name}"
        try:
            hatype = int(open(f"{base}/type").read())
            flags = int(open(f"{base}/flags").read(), 16)
        except OSError:
            hatype, flags = 0, 0
        entries.append(InterfaceEntry(name, index, ARPHRD_LINKTYPES.get(hatype, 1),
                                      bool(flags & 1), _addresses(name)))
    return entries


def _addresses(name: str) -> list[str]:
    try:
        import fcntl

        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915,  # SIOCGIFADDR
                                 struct.pack("256s", name.encode()[:15]))
            return [socket.inet_ntoa(packed[20:24])]
        finally:
            sock.close()
    except OSError:
        return []


def _timestamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (SO_TIMESTAMPNS) in ns, or now when it gave none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return time.time_ns()


class LiveCapture:
    def __init__(self, interface: str, *, bpf: str | None = None, count: int | None = None,
                 duration: float | None = None, write: str | None = None) -> None:
        try:
            socket.if_nametoindex(interface)
        except OSError:
            raise InputError(f"{interface}: no such interface "
                             "(`analyzer interfaces` lists them)") from None
        if count is not None and count <= 0:
            raise InputError("-c needs a positive packet count")
        if duration is not None and duration <= 0:
            raise InputError("--duration needs a positive number of seconds")
        self.interface = interface
        self.bpf = bpf
        self.count = count
        self.duration = duration
        self.write_path = write
        self.info = CaptureInfo(path=f"live:{interface}", format="live")
        self.frames = 0
        self.dropped = 0
        self.started: float | None = None
        self._socket = self._open()
        hatype = self._socket.ins.getsockname()[3]
        self.linktype = ARPHRD_LINKTYPES.get(hatype, 1)
        self._skip_outgoing = hatype == ARPHRD_LOOPBACK  # lo shows each packet twice
        self.info.interfaces.append(InterfaceInfo(id=0, linktype=self.linktype, name=interface,
                                                  snaplen=262144, tsresol="1e-9"))
        self._writer = PcapngWriter(write, self.linktype, interface) if write else None

    def _open(self):  # type: ignore[no-untyped-def]
        import logging

        # scapy warns on stderr about link types it cannot dissect; we do not dissect.
        logging.getLogger("scapy").setLevel(logging.ERROR)
        try:
            import scapy.arch  # noqa: F401 - selects the platform's L2listen socket
            from scapy.config import conf
            from scapy.error import Scapy_Exception
        except ImportError as exc:  # pragma: no cover - scapy is a dependency
            raise InputError(f"live capture needs scapy ({exc})") from None
        try:
            return conf.L2listen(iface=self.interface, filter=self.bpf)
        except PermissionError:
            raise InputError(f"sniffing on {self.interface} needs root or CAP_NET_RAW "
                             "(try sudo)") from None
        except Scapy_Exception as exc:
            raise InputError(f"cannot capture on {self.interface}: {exc}") from None
        except OSError as exc:
            if exc.errno in (1, 13):
                raise InputError(f"sniffing on {self.interface} needs root or CAP_NET_RAW "
                                 "(try sudo)") from None
            raise InputError(f"cannot capture on {self.interface}: {exc.strerror}") from None

    def run(self, feed: Callable[[Frame], object],
            on_tick: Callable[[], object] | None = None) -> None:
        """Capture until the count or duration is reached, or Ctrl-C / SIGTERM."""
        sock = self._socket.ins
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.started = time.time()
        deadline = self.started + self.duration if self.duration else None
        next_tick = self.started + TICK
        try:
            while self.count is None or self.frames < self.count:
                now = time.time()
                if deadline is not None and now >= deadline:
                    break
                wait = TICK if deadline is None else max(0.0, min(TICK, deadline - now))
                ready, _, _ = select.select([sock], [], [], wait)
                if ready:
                    data, ancillary, _flags, address = sock.recvmsg(262144, 64)
                    if self._skip_outgoing and address[2] == PACKET_OUTGOING:
                        continue
                    ts_ns = _timestamp_ns(ancillary)
                    frame = Frame(ts_ns / 1e9, self.linktype, 0, data, len(data))
                    self.frames += 1
                    if self._writer is not None:
                        self._writer.write(frame, ts_ns)
                    feed(frame)
                if on_tick is not None and time.time() >= next_tick:
                    next_tick = time.time() + TICK
                    on_tick()
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM: stop capturing, keep everything captured so far
        finally:
            self._stop()

    def _stop(self) -> None:
        try:
            received, drops = struct.unpack(
                "II", self._socket.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.dropped += drops
        except OSError:
            pass
        self.info.interfaces[0].packets = self.frames
        self.info.interfaces[0].dropped = self.dropped
        if self.dropped:
            self.info.warnings.append(f"the kernel dropped {self.dropped} packets")
        self._socket.close()
        if self._writer is not None:
            self._writer.close(time.time(), self.dropped)
