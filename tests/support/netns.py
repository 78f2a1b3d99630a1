"""Throwaway network namespaces joined by Linux bridges: a private LAN for broadcast tests.

Nothing touches the host's own interfaces: the bridges live in a dedicated "switch"
namespace, every veth pair is created inside that namespace with its other end moved
straight into a host namespace, and all addresses (10.x) exist only inside namespaces.
Deleting the namespaces deletes their interfaces and kills nothing else, so `close()`
(also run on failure, by the context manager) stops the processes the lab started, by
PID, then deletes every namespace it made. Names carry the PID and a random tag, so
parallel runs never clash.

    with NetLab() as lab:
        lan = lab.add_bridge("lan", "10.50.1.254/24")          # the switch routes too
        sender = lab.add_host("sender", lan, "10.50.1.1/24")
        lab.run(sender, ["ip", "route"])
        proc = lab.start(sender, ["analyzer", ...], log_path)   # stopped by PID on close
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.procs import start_process, stop_process

COMMAND_TIMEOUT = 20.0


@dataclass(frozen=True)
class Host:
    """A namespace with one interface on a bridge: its namespace name, interface, address."""

    namespace: str
    interface: str
    address: str  # without the prefix length
    prefix: int


@dataclass(frozen=True)
class Bridge:
    name: str
    address: str | None


class NetLab:
    """A switch namespace holding bridges, and host namespaces hanging off them."""

    def __init__(self) -> None:
        self.tag = f"an{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.switch = self.add_namespace("switch")
        self._ports = 0

    # -- building --------------------------------------------------------------------

    def add_namespace(self, role: str) -> str:
        """A new namespace with `lo` up; deleted by close()."""
        name = f"{self.tag}-{role}"
        self._ip("netns", "add", name)
        self.namespaces.append(name)
        self._ip("-n", name, "link", "set", "lo", "up")
        return name

    def add_bridge(self, name: str, address: str | None = None) -> Bridge:
        """A bridge in the switch namespace; with `address` the switch is a router on it
        (IP forwarding is on in the switch namespace, which never forwards broadcasts)."""
        self._ip("-n", self.switch, "link", "add", name, "type", "bridge")
        self._ip("-n", self.switch, "link", "set", name, "up")
        if address is not None:
            self._ip("-n", self.switch, "addr", "add", address, "brd", "+", "dev", name)
            self.run(self.switch, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        return Bridge(name, address.split("/")[0] if address else None)

    def add_host(self, role: str, bridge: Bridge, address: str,
                 interface: str = "eth0") -> Host:
        """A namespace with `interface` (a veth whose peer is a port of `bridge`) holding
        `address` ("10.x.y.z/len"), and a default route through the bridge's router when it
        has one, else straight out of `interface` (needed to send the limited broadcast)."""
        namespace = self.add_namespace(role)
        self._ports += 1
        port = f"p{self._ports}"
        self._ip("-n", self.switch, "link", "add", port, "type", "veth",
                 "peer", "name", interface, "netns", namespace)
        self._ip("-n", self.switch, "link", "set", port, "master", bridge.name)
        self._ip("-n", self.switch, "link", "set", port, "up")
        # "brd +": the subnet's broadcast address, as any DHCP or distribution setup gives
        # (without it the kernel accepts no directed broadcast on that subnet).
        self._ip("-n", namespace, "addr", "add", address, "brd", "+", "dev", interface)
        self._ip("-n", namespace, "link", "set", interface, "up")
        if bridge.address is not None:
            self._ip("-n", namespace, "route", "add", "default", "via", bridge.address)
        else:
            self._ip("-n", namespace, "route", "add", "default", "dev", interface)
        ip, prefix = address.split("/")
        return Host(namespace, interface, ip, int(prefix))

    # -- running inside ----------------------------------------------------------------

    @staticmethod
    def exec_argv(namespace: str | Host, argv: Sequence[str | Path]) -> list[str]:
        """`ip netns exec NS ARGV...`: the same process (exec), so its PID is the command's."""
        name = namespace.namespace if isinstance(namespace, Host) else namespace
        return ["ip", "netns", "exec", name, *map(str, argv)]

    def run(self, namespace: str | Host, argv: Sequence[str | Path],
            timeout: float = COMMAND_TIMEOUT, check: bool = True,
            **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `namespace` to completion; its output is kept as text."""
        return subprocess.run(self.exec_argv(namespace, argv), capture_output=True,
                              text=True, timeout=timeout, check=check,
                              **kwargs)  # type: ignore[call-overload]

    def start(self, namespace: str | Host, argv: Sequence[str | Path],
              log_path: Path | None = None, **popen_kwargs: object
              ) -> subprocess.Popen[bytes]:
        """Start `argv` inside `namespace` (tests/support/procs.py); close() stops it by PID."""
        proc = start_process(self.exec_argv(namespace, argv), log_path, **popen_kwargs)
        self.processes.append(proc)
        return proc

    def wait_udp_bound(self, namespace: str | Host, port: int,
                       proc: subprocess.Popen[bytes] | None = None,
                       timeout: float = 20.0) -> None:
        """Wait until a UDP socket in `namespace` is bound to `port` (asks `ss` there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listed = self.run(namespace, ["ss", "-Hlun", f"sport = :{port}"], check=False)
            if listed.stdout.strip():
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before binding")
            time.sleep(0.05)
        raise TimeoutError(f"nothing bound UDP port {port} in {namespace} within {timeout} s")

    # -- tearing down ------------------------------------------------------------------

    def close(self) -> None:
        """Stop our processes by PID, then delete every namespace (and so every link)."""
        for proc in self.processes:
            stop_process(proc)
        self.processes.clear()
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False,
                           timeout=COMMAND_TIMEOUT)
        self.namespaces.clear()

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @staticmethod
    def _ip(*args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def existing_namespaces() -> set[str]:
    """Names of the network namespaces on the host (`ip netns list`)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True, timeout=COMMAND_TIMEOUT)
    return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
