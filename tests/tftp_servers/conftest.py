"""Fixtures for the real-server TFTP tests: one server of each kind for this package's
tests (stopped when they are done, so other tests may use port 69), each on its own
loopback address and root folder, and a `recorder` that captures each exchange on lo.

Servers need root (port 69, sniffing on lo); without root or a server binary the tests
skip, and under CI=true they fail (see tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_prerequisite, require_root, require_tool
from tests.support.sniff import Tcpdump
from tests.support.tftp_servers import (
    TFTP_PORT,
    RunningServer,
    server_available,
    start_server,
)

# One loopback address per server, so their captures never mix.
SERVER_ADDRESSES = {
    "tftpd-hpa": "127.0.0.2",
    "atftpd": "127.0.0.3",
    "dnsmasq": "127.0.0.4",
    "tftpy": "127.0.0.5",
}
# tftpy replies from 127.0.0.1 (its transfer socket is unbound); its raw client binds here
# so the capture filter still catches the replies.
TFTPY_CLIENT_IP = "127.0.0.105"
# A second tftpy bound to the wildcard address. Port 69 is taken on the 127.0.0.x
# addresses above (a wildcard bind would collide), so it listens on a port the analyzer
# must be told about with --tftp-port.
TFTPY_WILDCARD_PORT = 6969


def _server(name: str, ip: str, port: int = TFTP_PORT) -> Iterator[RunningServer]:
    require_root()
    require_tool("tcpdump")
    reason = server_available(name)
    if reason is not None:
        missing_prerequisite(reason)
    server = start_server(name, ip, port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def hpa_server() -> Iterator[RunningServer]:
    yield from _server("tftpd-hpa", SERVER_ADDRESSES["tftpd-hpa"])


@pytest.fixture(scope="package")
def hpa_ipv6_server() -> Iterator[RunningServer]:
    """tftpd-hpa on [::1]:69 (IPv6 loopback; no IPv4 server binds it)."""
    yield from _server("tftpd-hpa", "::1")


@pytest.fixture(scope="package")
def atftpd_server() -> Iterator[RunningServer]:
    yield from _server("atftpd", SERVER_ADDRESSES["atftpd"])


@pytest.fixture(scope="package")
def dnsmasq_server() -> Iterator[RunningServer]:
    yield from _server("dnsmasq", SERVER_ADDRESSES["dnsmasq"])


@pytest.fixture(scope="package")
def tftpy_server() -> Iterator[RunningServer]:
    yield from _server("tftpy", SERVER_ADDRESSES["tftpy"])


@pytest.fixture(scope="package")
def tftpy_wildcard_server() -> Iterator[RunningServer]:
    yield from _server("tftpy", "0.0.0.0", TFTPY_WILDCARD_PORT)


class Recorder:
    """Captures exchanges with one server into files under the test's tmp_path."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.count = 0

    def capture(self, server: RunningServer, *client_ips: str, burst: bool = False) -> Tcpdump:
        """A tcpdump (started on entering `with`) of everything to/from the server and
        `client_ips`; `burst` for transfers of tens of thousands of packets."""
        self.count += 1
        path = self.tmp_path / f"{server.name}-{self.count}.pcap"
        return Tcpdump(path, server.bpf(*client_ips), immediate=not burst)


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path)
