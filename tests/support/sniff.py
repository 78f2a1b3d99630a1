"""tcpdump on `lo` as a context manager: a real capture of a test run, stopped by PID.

    with Tcpdump(path, "host 127.0.0.2"):
        run_the_exchange()
    # path is complete here: tcpdump was started with -U (packet-buffered) and stopped
    # with SIGTERM after a short settle delay, so the last packets are on disk.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.procs import start_process, stop_process

# Loopback delivery is synchronous, but tcpdump reads the kernel ring asynchronously: in
# immediate mode within moments, in buffered mode only when a block fills or after
# libpcap's 1 s timeout.
IMMEDIATE_SETTLE_SECONDS = 0.25
BUFFERED_SETTLE_SECONDS = 1.5
# Kernel buffer in KiB: a lockstep transfer on lo outruns tcpdump's default 2 MiB buffer.
BUFFER_KIB = 131072
# The largest frame on lo (MTU 65536 plus a 14-byte Ethernet header). In immediate mode
# libpcap gives every packet a ring slot of snaplen bytes, so tcpdump's default 262144
# would leave 4x fewer slots for a burst.
LOOPBACK_SNAPLEN = 65550


class Tcpdump:
    """Capture `bpf` on `interface` into `path` (pcap; tcpdump's native format).

    `immediate` (the default) suits short exchanges. For long bursts (tens of thousands of
    packets) use `immediate=False`: libpcap then packs packets into large blocks (TPACKET_V3)
    instead of one fixed-size slot per packet, and keeps up; stopping takes a second longer.
    Either way, leaving the `with` block fails if the kernel dropped packets.
    """

    def __init__(
        self, path: Path, bpf: str, interface: str = "lo", snaplen: int | None = None,
        immediate: bool = True, tcpdump: str = "tcpdump",
    ) -> None:
        if snaplen is None:
            snaplen = LOOPBACK_SNAPLEN if interface == "lo" else 0  # 0: tcpdump's default
        self.path = Path(path)
        self.log_path = self.path.with_suffix(self.path.suffix + ".log")
        self.settle_seconds = IMMEDIATE_SETTLE_SECONDS if immediate else BUFFERED_SETTLE_SECONDS
        self.argv = [
            tcpdump, "-i", interface, "-n", "-U", "-B", str(BUFFER_KIB), "-s", str(snaplen),
            *(["--immediate-mode"] if immediate else []), "-w", str(self.path), bpf,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        """Start tcpdump and wait until it says it is listening (so no packet is missed)."""
        self.proc = start_process(self.argv, self.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b"listening on" in self.log_path.read_bytes():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump failed: {self.log_path.read_text()!r}")
            time.sleep(0.02)
        stop_process(self.proc)
        raise TimeoutError(f"tcpdump did not start: {self.log_path.read_text()!r}")

    def stop(self) -> None:
        """Let the last packets reach tcpdump, then SIGTERM it by PID and wait."""
        if self.proc is None:
            return
        time.sleep(self.settle_seconds)
        stop_process(self.proc, grace_seconds=5.0)
        self.proc = None

    def _final_count(self, suffix: str) -> int:
        for line in self.log_path.read_text().splitlines():
            if line.endswith(suffix):
                return int(line.split()[0])
        raise ValueError(f"no '{suffix}' count in {self.log_path}")

    def packets_captured(self) -> int:
        """The count tcpdump printed when it stopped ("N packets captured")."""
        return self._final_count("packets captured")

    def packets_dropped(self) -> int:
        """Packets the kernel dropped because tcpdump fell behind (0 for a faithful capture)."""
        return self._final_count("packets dropped by kernel")

    def __enter__(self) -> Tcpdump:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if exc_type is None and self.packets_dropped():
            raise AssertionError(
                f"tcpdump missed {self.packets_dropped()} packets: the capture is not the run"
            )
