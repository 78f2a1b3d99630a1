"""Real TFTP servers on loopback, each in its own root folder, started and stopped by PID.

| server    | binary                        | address   | writes | notes                   |
|-----------|-------------------------------|-----------|--------|-------------------------|
| tftpd-hpa | in.tftpd                      | 127.0.0.2 | yes    | `-c` allows new files   |
| atftpd    | .deps/atftpd/usr/sbin/atftpd  | 127.0.0.3 | yes    | windowsize, SAS bug     |
| dnsmasq   | dnsmasq (TFTP only, DNS off)  | 127.0.0.4 | no     | ERROR 5 to stray TIDs   |
| tftpy     | python -c (PyPI tftpy)        | 127.0.0.5 | yes    | answers from 127.0.0.1  |

atftpd's Debian package conflicts with tftpd-hpa, so scripts/install-test-deps.sh unpacks it
into `.deps/atftpd/` with `dpkg-deb -x` instead of installing it.

Servers run as root (port 69) and drop to `nobody`, so their roots are world-writable
folders of their own under /tmp (pytest's tmp_path is private to root and not traversable
by `nobody`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.procs import (
    start_process,
    stop_process,
    wait_udp_port,
    wait_udp_port_free,
)

REPO_DIR = Path(__file__).resolve().parents[2]
# Another test run (a second pytest on this machine) may hold the same addresses.
BUSY_TIMEOUT_SECONDS = 180.0
ATFTPD_PATH = REPO_DIR / ".deps" / "atftpd" / "usr" / "sbin" / "atftpd"
TFTP_PORT = 69

TFTPY_SERVER_CODE = """
import logging, sys
import tftpy
logging.basicConfig(level=logging.WARNING)
tftpy.TftpServer(sys.argv[1]).listen(sys.argv[2], int(sys.argv[3]))
"""


@dataclass
class RunningServer:
    """A started server: where it listens, its root folder, its process and log."""

    name: str
    ip: str
    port: int
    root: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    writable: bool
    reply_ip: str  # the source address of its replies (tftpy: not the one it listens on)

    def bpf(self, *client_ips: str) -> str:
        """A tcpdump filter for this server's exchanges (and ICMP about them)."""
        hosts = [self.ip, *client_ips]
        return " or ".join(f"host {host}" for host in dict.fromkeys(hosts))

    def add_file(self, name: str, data: bytes) -> Path:
        """Put a file the server may serve (world-readable, as dnsmasq and `nobody` need)."""
        path = self.root / name
        path.write_bytes(data)
        path.chmod(0o644)
        return path

    def stop(self) -> None:
        """Stop the server by its PID and delete its root folder and log."""
        stop_process(self.proc)
        shutil.rmtree(self.root, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


def make_root(name: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"analyzer-{name}-"))
    root.chmod(0o777)
    return root


def server_argv(name: str, ip: str, port: int, root: Path) -> list[str]:
    """The command line that runs `name` in the foreground, bound to ip:port, serving root."""
    if name == "tftpd-hpa":
        # -L foreground, -s chroot to root, -c allow creating files on WRQ.
        address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        return ["in.tftpd", "-L", "-s", str(root), "-c", "-a", address]
    if name == "atftpd":
        return [
            str(ATFTPD_PATH), "--daemon", "--no-fork", "--logfile", "-", "--verbose=5",
            "--bind-address", ip, "--port", str(port), str(root),
        ]
    if name == "dnsmasq":
        return [
            "dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp",
            f"--tftp-root={root}", f"--listen-address={ip}", "--bind-interfaces",
            "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--pid-file=",
            "--log-facility=-", "--user=root", "--group=root",
        ]
    if name == "tftpy":
        return [sys.executable, "-c", TFTPY_SERVER_CODE, str(root), ip, str(port)]
    raise ValueError(f"unknown server {name}")


def server_available(name: str) -> str | None:
    """None when `name` can run here, else the reason it cannot."""
    if name == "atftpd":
        if ATFTPD_PATH.exists():
            return None
        return f"{ATFTPD_PATH} is missing (run scripts/install-test-deps.sh)"
    if name == "tftpy":
        try:
            import tftpy  # noqa: F401
        except ImportError:
            return "tftpy is not installed (pip install -e .[test])"
        return None
    binary = {"tftpd-hpa": "in.tftpd", "dnsmasq": "dnsmasq"}[name]
    if shutil.which(binary) is None:
        return f"{binary} is not installed (run scripts/install-test-deps.sh)"
    return None


def start_server(
    name: str, ip: str, port: int = TFTP_PORT, busy_timeout: float = BUSY_TIMEOUT_SECONDS
) -> RunningServer:
    """Start `name` on ip:port in a fresh root folder and wait until it is bound.

    If the address is taken (another test run's server), wait up to `busy_timeout` for it
    to be released rather than sniff someone else's traffic.
    """
    wait_udp_port_free(ip, port, busy_timeout)
    root = make_root(name)
    log_path = Path(tempfile.mkstemp(prefix=f"analyzer-{name}-", suffix=".log")[1])
    proc = start_process(server_argv(name, ip, port, root), log_path)
    try:
        wait_udp_port(ip, port, proc)
        time.sleep(0.05)
        if proc.poll() is not None:  # bound by someone else in the meantime, and we died
            raise RuntimeError(f"exited with {proc.returncode}")
    except Exception:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)
        log = log_path.read_text(errors="replace")
        log_path.unlink(missing_ok=True)
        raise RuntimeError(f"{name} did not start on {ip}:{port}: {log!r}") from None
    writable = name != "dnsmasq"
    reply_ip = "127.0.0.1" if name == "tftpy" else ip
    return RunningServer(name, ip, port, root, proc, log_path, writable, reply_ip)


def server_log(server: RunningServer) -> str:
    return server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
