"""Fixtures for `analyzer tftp check` tests: a real server of each kind on its own
loopback address (not the ones tests/tftp_servers uses, so both packages may run at
once), and one full checker run per server, shared by the tests that read its report.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing_prerequisite, require_root, require_tool
from tests.support.analyzer_cli import run_analyzer
from tests.support.tftp_servers import RunningServer, server_available, start_server

SERVER_ADDRESSES = {
    "tftpd-hpa": "127.0.0.22",
    "atftpd": "127.0.0.23",
    "dnsmasq": "127.0.0.24",
    "tftpy": "127.0.0.25",
}
FILE_NAME = "check.bin"
# Every byte value, CRs and LFs included (netascii has something to convert); 5000 bytes
# is not a multiple of 512, so final-empty-block must pick a dividing blksize.
CONTENT = bytes((i * 7 + 3) % 256 for i in range(5000))
FULL_RUN_SECONDS = 240


@dataclass
class Card:
    """One checker run: exit code, its tftp_check lines by id, tftp_transfer lines, the
    evidence capture and the server it ran against."""

    server: RunningServer
    returncode: int
    checks: dict[str, dict]
    transfers: list[dict]
    capture: Path
    stderr: str


def run_check(server: RunningServer, capture: Path, *extra: str,
              timeout: float = FULL_RUN_SECONDS) -> Card:
    done = run_analyzer("tftp", "check", server.ip, "--file", FILE_NAME, "-w", capture,
                        "--json", *extra, timeout=timeout)
    objects = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    checks = {o["check"]: o for o in objects if o["type"] == "tftp_check"}
    transfers = [o for o in objects if o["type"] == "tftp_transfer"]
    return Card(server, done.returncode, checks, transfers, capture, done.stderr)


def _server(name: str) -> Iterator[RunningServer]:
    require_root()
    require_tool("tshark")
    reason = server_available(name)
    if reason is not None:
        missing_prerequisite(reason)
    server = start_server(name, SERVER_ADDRESSES[name])
    server.add_file(FILE_NAME, CONTENT)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package", params=list(SERVER_ADDRESSES))
def card(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Card]:
    """The full run (every check) against each real server in turn."""
    for server in _server(request.param):
        capture = tmp_path_factory.mktemp("check") / f"{server.name}.pcapng"
        extra = ("--writable",) if server.writable else ()
        yield run_check(server, capture, *extra)
