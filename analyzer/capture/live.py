"""Live capture from an interface: a packet socket with a TPACKET_V3 ring (capture.ring)
and the BPF filter attached in the kernel (or, for a program too long for it, run on
each frame); we read frames until a count, a duration, Ctrl-C, SIGTERM or the loss of
the interface stops us. Frames go to the same `Analyzer` as a file's, and optionally
to pcapng.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from analyzer.capture.bpf import ACCEPT_ALL, BPF_MAXINSNS, BPF_RET_K, BpfInstruction, FrameFilter
from analyzer.capture.frame import CaptureInfo, Frame, InterfaceInfo
from analyzer.capture.pcapng_writer import PcapngWriter
from analyzer.errors import InputError

if TYPE_CHECKING:
    from analyzer.capture.ring import PacketRing

SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
# ARPHRD (Linux hardware type) -> link type of the frames the packet socket gives us.
ARPHRD_LINKTYPES = {1: 1, 772: 1, 65534: 101, 778: 101, 776: 101, 768: 101, 769: 101,
                    824: 229, 801: 127, 803: 127}
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 32 << 20
SNAPLEN = 262144
ANY = "any"  # Linux's pseudo-interface: every interface at once
TICK = 0.25  # seconds between live-view refreshes
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
LINKTYPE_RAW = 101  # frames that start at the IP header
# recvmsg's errors when the interface goes down (ENETDOWN) or is deleted (ENODEV, ENXIO)
INTERFACE_LOST = (errno.ENETDOWN, errno.ENODEV, errno.ENXIO)


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
    """A packet socket on one interface (or "any"), read until told to stop.

    Each frame keeps the interface it came from; with "any" every interface seen gets
    its own pcapng interface entry, with its own link type.
    """

    def __init__(self, interface: str, *, bpf: str | None = None, count: int | None = None,
                 duration: float | None = None, write: str | None = None) -> None:
        if interface != ANY:
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
        self.info = CaptureInfo(path=f"live:{interface}", format="live")
        self.frames = 0
        self.stop_reason = "stopped"  # how `stop` was asked (e.g. "signal SIGINT")
        self.lost: str | None = None  # the system's word when the interface went away
        self.dropped: int | None = None
        self.started: float | None = None
        self._interface_ids: dict[tuple[str, int], int] = {}
        # Compiled before the socket opens (a long filter takes a while; see capture.bpf).
        self._filter = FrameFilter(bpf, linktype=self._linktype()) if bpf else None
        self._filter_each_frame = False  # the kernel could not take the program
        self._names: dict[int, str] = {}  # interface index -> name (for the ring's frames)
        self._ring: PacketRing | None = None
        self._socket = self._open()
        self._writer = PcapngWriter(write) if write else None

    def _linktype(self) -> int:
        if self.interface == ANY:
            return LINKTYPE_RAW
        return ARPHRD_LINKTYPES.get(_hardware_type(self.interface), 1)

    def _open(self) -> socket.socket:
        """The packet socket, ready before it receives anything: opened for no protocol
        (so the kernel delivers nothing to it yet), given its ring and its filter, and
        only then bound to the interface for every protocol. No packet from before the
        filter, and none lost while the ring is set up (the kernel stops delivering to a
        socket while it swaps its ring). "any" is a cooked (SOCK_DGRAM) socket bound to
        no interface, as libpcap's: frames start at the IP header whatever the link
        layer, and the filter is compiled for that (LINKTYPE_RAW)."""
        kind = socket.SOCK_DGRAM if self.interface == ANY else socket.SOCK_RAW
        try:
            sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise InputError(f"sniffing on {self.interface} needs root or CAP_NET_RAW "
                             "(try sudo)") from None
        try:
            self._ring = self._open_ring(sock)
            if self._ring is None:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                try:  # a deep buffer rides out bursts while the analysis catches up
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
                except OSError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            if self._filter is not None:
                self._filter_each_frame = not attach_filter(sock, self._filter,
                                                            self._linktype())
            index = 0 if self.interface == ANY else socket.if_nametoindex(self.interface)
            if index:  # as tcpdump: every frame on the link, not only those for us
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                                struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))
            _bind(sock, index)
            _reset_statistics(sock)
        except BaseException as exc:
            if self._ring is not None:
                self._ring.close()
            sock.close()
            if isinstance(exc, OSError):
                raise InputError(f"cannot capture on {self.interface}: "
                                 f"{exc.strerror or exc}") from None
            raise
        return sock

    def _open_ring(self, sock: socket.socket) -> PacketRing | None:
        """A TPACKET_V3 ring (capture.ring) unless ANALYZER_LIVE_RING=0 or the kernel
        refuses it; without one, frames are read with recvmsg."""
        if os.environ.get("ANALYZER_LIVE_RING") == "0":
            return None
        from analyzer.capture.ring import PacketRing

        try:
            return PacketRing(sock)
        except OSError:
            return None

    def _interface_id(self, name: str, hatype: int) -> int:
        key = (name, hatype)
        found = self._interface_ids.get(key)
        if found is None:
            found = self._interface_ids[key] = len(self.info.interfaces)
            # "any" reads every interface without its link header (see _open)
            linktype = LINKTYPE_RAW if self.interface == ANY else ARPHRD_LINKTYPES.get(hatype, 1)
            self.info.interfaces.append(InterfaceInfo(id=found, linktype=linktype, name=name,
                                                      snaplen=SNAPLEN, tsresol="1e-9"))
            if self._writer is not None:
                self._writer.add_interface(linktype, name)
        return found

    def run(self, feed: Callable[[Frame], object], stop: threading.Event,
            on_tick: Callable[[], object] | None = None) -> None:
        """Capture until the count or duration is reached, `stop` is set (the CLI sets it
        on Ctrl-C and SIGTERM, after `stop_reason`) or the interface goes away; then read
        what the kernel already queued, and close. `info.ended` says which."""
        sock = self._socket
        self.started = time.time()
        deadline = self.started + self.duration if self.duration else None
        next_tick = self.started + TICK
        try:
            while not self._done() and not stop.is_set() and self.lost is None:
                now = time.time()
                if deadline is not None and now >= deadline:
                    self.info.ended = "duration"
                    break
                wait = TICK if deadline is None else max(0.0, min(TICK, deadline - now))
                if select.select([sock], [], [], wait)[0]:
                    if self._ring is not None:
                        # a TICK at most: a flood must not keep us from `stop`
                        if not self._read_ring(feed, time.monotonic() + TICK):
                            self._check_interface(sock)
                    else:
                        self._receive(sock, 0, feed)
                if on_tick is not None and time.time() >= next_tick:
                    next_tick = time.time() + TICK
                    on_tick()
            # Packets that reached the socket before we stopped were captured: keep them.
            if self._ring is not None:
                self._drain_ring(feed)
            else:
                while not self._done() and self.lost is None \
                        and self._receive(sock, socket.MSG_DONTWAIT, feed):
                    pass
        finally:
            if self.info.ended is None:
                self.info.ended = "count" if self._done() else self.stop_reason
            self._stop()

    def _done(self) -> bool:
        return self.count is not None and self.frames >= self.count

    def _read_ring(self, feed: Callable[[Frame], object], until: float | None = None,
                   limit: int | None = None) -> bool:
        """Every block the kernel has handed over (until the monotonic time `until`, at
        most `limit` blocks); False when there was none."""
        assert self._ring is not None

        def deliver(index: int, hatype: int, pkttype: int, ts_ns: int, data: bytes,
                    wirelen: int) -> None:
            self._take(self._interface_name(index), pkttype, hatype, ts_ns, data, wirelen,
                       feed)

        def wanted() -> bool:
            return not self._done()

        blocks = 0
        while (limit is None or blocks < limit) and not self._done() \
                and self._ring.read_block(deliver, wanted):
            blocks += 1
            if until is not None and time.monotonic() >= until:
                break
        return blocks > 0

    def _drain_ring(self, feed: Callable[[Frame], object]) -> None:
        """What was captured before the stop: the blocks handed over by then, and the
        one being filled, which the kernel hands over when it retires it (after
        ring.BLOCK_TIMEOUT_MS). Not what comes after, however fast packets keep coming."""
        from analyzer.capture.ring import BLOCK_TIMEOUT_MS

        assert self._ring is not None
        self._read_ring(feed, limit=self._ring.ready_blocks())
        until = time.monotonic() + 3 * BLOCK_TIMEOUT_MS / 1000
        while not self._done() and self.lost is None and time.monotonic() < until:
            if self._read_ring(feed, limit=1):
                break
            time.sleep(BLOCK_TIMEOUT_MS / 1000 / 5)

    def _check_interface(self, sock: socket.socket) -> None:
        """The ring's socket woke us with no block: an error, such as the interface
        going away (the ring reports it as SO_ERROR, recvmsg as its own error)."""
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error in INTERFACE_LOST:
            self._lose(os.strerror(error))

    def _interface_name(self, index: int) -> str:
        name = self._names.get(index)
        if name is None:
            try:
                name = socket.if_indextoname(index)
            except OSError:
                name = f"if{index}"  # gone already: its index is all there is
            self._names[index] = name
        return name

    def _receive(self, sock: socket.socket, flags: int,
                 feed: Callable[[Frame], object]) -> bool:
        try:
            data, ancillary, _flags, address = sock.recvmsg(SNAPLEN, 64, flags)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno not in INTERFACE_LOST:
                raise
            self._lose(exc.strerror or str(exc))
            return False
        name, _proto, pkttype, hatype = address[:4]
        self._take(name, pkttype, hatype, _timestamp_ns(ancillary), data, len(data), feed)
        return True

    def _lose(self, reason: str) -> None:
        """The interface went down or was deleted: the capture ends here, and the report
        of what it saw is still made (libpcap ends the same way)."""
        from analyzer.report.text import escape

        self.lost = reason
        self.info.ended = "interface lost"
        self.info.warnings.append(f"the capture ended early: interface "
                                  f"{escape(self.interface)} went away ({reason})")

    def _take(self, name: str, pkttype: int, hatype: int, ts_ns: int, data: bytes,
              wirelen: int, feed: Callable[[Frame], object]) -> None:
        if pkttype == PACKET_OUTGOING and hatype == ARPHRD_LOOPBACK:
            return  # loopback shows each packet twice; libpcap keeps the incoming one
        interface = self._interface_id(name, hatype)
        frame = Frame(ts_ns / 1e9, self.info.interfaces[interface].linktype, interface, data,
                      wirelen)
        if self._filter_each_frame and self._filter is not None \
                and not self._filter.matches(frame):
            return
        self.frames += 1
        self.info.interfaces[interface].packets += 1
        if self._writer is not None:
            self._writer.write(frame, ts_ns)
        feed(frame)

    def _stop(self) -> None:
        try:
            _received, drops = struct.unpack(
                "II", self._socket.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.dropped = drops
        except OSError:
            pass
        if self.dropped:
            where = " (on loopback this counts both copies of each packet)" \
                if any(i.name == "lo" for i in self.info.interfaces) else ""
            self.info.warnings.append(f"the kernel dropped {self.dropped} packets{where}")
        if len(self.info.interfaces) == 1:
            self.info.interfaces[0].dropped = self.dropped
        if self._ring is not None:
            self._ring.close()
        self._socket.close()
        if self._writer is not None:
            self._writer.close(time.time(), self.dropped)


def attach_filter(sock: socket.socket, frame_filter: FrameFilter, linktype: int) -> bool:
    """Attach the filter (compiled by libpcap for `linktype`) to a packet socket as libpcap
    does: first a filter that rejects everything, then drain what the socket queued
    before, then the real filter; so no packet from before the filter is read. False when
    the kernel cannot take the program (over BPF_MAXINSNS instructions, as a long chained
    filter may be): the socket then takes everything and the caller filters each frame,
    as libpcap does in that case."""
    program = frame_filter.compile(linktype)
    reject_all = (BpfInstruction * 1)(BpfInstruction(BPF_RET_K, 0, 0, 0))
    _set_filter(sock, reject_all, 1)
    while True:
        try:
            sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_TRUNC)
        except (BlockingIOError, InterruptedError):
            break
    if program.length <= BPF_MAXINSNS:
        try:
            _set_filter(sock, program.instructions, program.length)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOMEM):
                raise
    accept_all = (BpfInstruction * 1)(BpfInstruction(BPF_RET_K, 0, 0, ACCEPT_ALL))
    _set_filter(sock, accept_all, 1)
    return False


def _set_filter(sock: socket.socket, instructions: ctypes.Array[BpfInstruction],
                count: int) -> None:
    # struct sock_fprog: unsigned short len; (padding) struct sock_filter *filter
    fprog = struct.pack("HL", count, ctypes.addressof(instructions))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _bind(sock: socket.socket, index: int) -> None:
    """Bind to the interface `index` (0: every interface) for every protocol. Python's
    bind takes an interface name, and no name means every interface: libc's bind does."""
    address = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(ETH_P_ALL), index,
                          0, 0, 0, b"")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sock.fileno(), ctypes.c_char_p(address), len(address)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _reset_statistics(sock: socket.socket) -> None:
    """Reading PACKET_STATISTICS resets them: drops before the capture began (of packets
    the filter was about to reject) are not reported as ours."""
    with contextlib.suppress(OSError):
        sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)


def _hardware_type(interface: str) -> int:
    try:
        with open(f"/sys/class/net/{interface}/type") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 1
