"""A lossy IP link between two private network namespaces, for tests (root only).

The kernel here has no `sch_netem` (`tc qdisc ... netem` answers "Specified qdisc kind
is unknown"), so the impairment is done in user space, netem style: each namespace gets
a TUN interface (point-to-point, 10.x addresses that exist only inside the namespaces),
and a thread in the test process carries every IP packet from one TUN to the other,
dropping, duplicating, delaying and reordering them at random (a seeded generator, so a
run can be replayed). Both kernels see real packet loss: their UDP sockets, the server's
and the client's, never get what was dropped.

    with LossyLink(loss=0.10, reorder=0.05, duplicate=0.02, delay=0.001) as link:
        link.run_in("server", [...])   # argv run with `ip netns exec`
    # namespaces deleted here, even after an exception

Reorder works as netem's: a packet picked for reordering skips the delay and so overtakes
those still waiting.
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import select
import struct
import subprocess
import threading
import time
from types import TracebackType

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET = 65536


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


class LossyLink:
    """Namespaces `server_ns` (address `server_ip`) and `client_ns` (`client_ip`)."""

    def __init__(self, loss: float, reorder: float, duplicate: float, delay: float,
                 seed: int = 1, tag: str | None = None) -> None:
        self.loss, self.reorder, self.duplicate, self.delay = loss, reorder, duplicate, delay
        self.rng = random.Random(seed)
        tag = tag or str(os.getpid() % 100000)
        self.server_ns, self.client_ns = f"an-lossy-s{tag}", f"an-lossy-c{tag}"
        self.server_if, self.client_if = f"anls{tag}", f"anlc{tag}"
        self.server_ip, self.client_ip = "10.231.0.1", "10.231.0.2"
        self.counts = {"forwarded": 0, "dropped": 0, "duplicated": 0, "reordered": 0}
        self._fds: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ set up, tear down

    def __enter__(self) -> LossyLink:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _create(self) -> None:
        _run("ip", "netns", "add", self.server_ns)
        _run("ip", "netns", "add", self.client_ns)
        # Created (and attached) here, then moved: the descriptors keep working.
        server_fd = _open_tun(self.server_if)
        client_fd = _open_tun(self.client_if)
        self._fds = [server_fd, client_fd]
        for ns, iface, ip, peer in ((self.server_ns, self.server_if, self.server_ip,
                                     self.client_ip),
                                    (self.client_ns, self.client_if, self.client_ip,
                                     self.server_ip)):
            _run("ip", "link", "set", iface, "netns", ns)
            _run("ip", "-n", ns, "addr", "add", ip, "peer", peer, "dev", iface)
            _run("ip", "-n", ns, "link", "set", iface, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        self._thread = threading.Thread(target=self._forward, args=(server_fd, client_fd),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        for ns in (self.server_ns, self.client_ns):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, check=False,
                           timeout=30)

    def netns_argv(self, side: str, argv: list[str]) -> list[str]:
        ns = self.server_ns if side == "server" else self.client_ns
        return ["ip", "netns", "exec", ns, *argv]

    # ------------------------------------------------------------------ the impairment

    def _forward(self, server_fd: int, client_fd: int) -> None:
        other = {server_fd: client_fd, client_fd: server_fd}
        queue: list[tuple[float, int, int, bytes]] = []  # (due, order, fd, packet)
        order = 0
        rng = self.rng
        while not self._stop.is_set():
            now = time.monotonic()
            while queue and queue[0][0] <= now:
                _, _, fd, packet = heapq.heappop(queue)
                try:
                    os.write(fd, packet)
                except OSError:
                    pass  # the interface went away at teardown
            wait = 0.05 if not queue else max(0.0, queue[0][0] - now)
            readable, _, _ = select.select([server_fd, client_fd], [], [], min(wait, 0.05))
            for fd in readable:
                while True:
                    try:
                        packet = os.read(fd, MAX_PACKET)
                    except (BlockingIOError, OSError):
                        break
                    if rng.random() < self.loss:
                        self.counts["dropped"] += 1
                        continue
                    copies = 2 if rng.random() < self.duplicate else 1
                    if copies == 2:
                        self.counts["duplicated"] += 1
                    due = time.monotonic() + self.delay
                    if rng.random() < self.reorder:
                        due -= self.delay  # goes ahead of the packets being delayed
                        self.counts["reordered"] += 1
                    for _ in range(copies):
                        order += 1
                        heapq.heappush(queue, (due, order, other[fd], packet))
                    self.counts["forwarded"] += 1
