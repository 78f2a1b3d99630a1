"""Start helper processes and stop them by PID; wait for a UDP socket to be bound.

Processes are always stopped through the `Popen` handle we started (never by name), first
with SIGTERM, then SIGKILL if they do not exit in time.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def start_process(
    argv: Sequence[str | Path], log_path: Path | None = None, **popen_kwargs: object
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdin closed and stdout+stderr going to `log_path` (or discarded)."""
    out = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [str(arg) for arg in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            **popen_kwargs,  # type: ignore[arg-type]
        )
    finally:
        if log_path is not None:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], grace_seconds: float = 3.0) -> int | None:
    """Stop the process we started: SIGTERM by its PID, wait, then SIGKILL. Returns its code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=grace_seconds)


def _proc_address(hex_ip: str) -> str:
    """/proc/net/udp{,6} addresses are 32-bit words in host (little-endian) byte order."""
    raw = bytes.fromhex(hex_ip)
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(packed))


def _bound_udp_sockets() -> set[tuple[str, int]]:
    """(ip, port) of every UDP socket on the host, IPv4 and IPv6, from /proc/net."""
    bound = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            hex_ip, hex_port = line.split()[1].split(":")
            bound.add((_proc_address(hex_ip), int(hex_port, 16)))
    return bound


def udp_port_bound(ip: str, port: int) -> bool:
    """True when some socket is bound to ip:port (or to the wildcard on that port)."""
    bound = _bound_udp_sockets()
    wildcard = "::" if ipaddress.ip_address(ip).version == 6 else "0.0.0.0"
    return (str(ipaddress.ip_address(ip)), port) in bound or (wildcard, port) in bound


def wait_udp_port_free(ip: str, port: int, timeout: float) -> None:
    """Wait until nothing is bound to ip:port (e.g. another test run still holds it)."""
    deadline = time.monotonic() + timeout
    while udp_port_bound(ip, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"UDP {ip}:{port} is still in use after {timeout} s")
        time.sleep(0.2)


def wait_udp_port(
    ip: str, port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 5.0
) -> None:
    """Wait until ip:port is bound, without sending it anything; raise if `proc` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if udp_port_bound(ip, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before binding")
        time.sleep(0.02)
    raise TimeoutError(f"nothing bound UDP {ip}:{port} within {timeout} s")
