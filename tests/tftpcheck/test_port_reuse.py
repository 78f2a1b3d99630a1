"""The checker keeps its evidence by our UDP port, so no two exchanges of one session may
share a port: not two of ours, and not one of ours and one of the server's transfer IDs
(a server on our own address draws them from the same range). Linux picks a free port
at random, and a full run opens about 40 sockets, so with the usual 28,232 ports two of
them shared one about one run in 45; a later check then judged an earlier one's packets
(CI saw `sorcerers-apprentice` fail on DATA 2 of an earlier transfer, and `concurrent`
count an earlier aborted transfer as one of its eight).

Here dnsmasq and the checker run in a network namespace whose range holds 128 ports, so
reuse would be near certain. tshark's reading of the evidence shows every request port
new when its request went out and never a server's, and every verdict is the one the
ordinary run against dnsmasq gave (the `card` fixture, range untouched)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_prerequisite, require_root, require_tool
from tests.support.netns import NetLab
from tests.support.tftp_servers import make_root, server_argv, server_available
from tests.tftpcheck.conftest import CONTENT, FILE_NAME, FULL_RUN_SECONDS, Card

pytestmark = pytest.mark.root

PORT_RANGE = (40000, 40127)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def narrow_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict, Path]]:
    """The full check of dnsmasq inside a namespace with PORT_RANGE: (verdicts by check,
    evidence capture)."""
    require_root()
    require_tool("tshark")
    reason = server_available("dnsmasq")
    if reason is not None:
        missing_prerequisite(reason)
    capture = tmp_path_factory.mktemp("narrow") / "dnsmasq.pcapng"
    root = make_root("narrow-ports")
    (root / FILE_NAME).write_bytes(CONTENT)
    (root / FILE_NAME).chmod(0o644)
    try:
        with NetLab() as lab:
            space = lab.add_namespace("check")
            low, high = PORT_RANGE
            lab.run(space, ["sysctl", "-q", "-w", f"net.ipv4.ip_local_port_range={low} {high}"])
            server = lab.start(space, server_argv("dnsmasq", "127.0.0.1", 69, root))
            lab.wait_udp_bound(space, 69, server)
            done = lab.run(space, [sys.executable, "-m", "analyzer", "tftp", "check",
                                   "127.0.0.1", "--file", FILE_NAME, "-w", capture, "--json"],
                           timeout=FULL_RUN_SECONDS, check=False, cwd=REPO)
    finally:
        for path in root.iterdir():
            path.unlink()
        root.rmdir()
    assert done.stderr == "" and done.returncode in (0, 1), done.stderr
    verdicts = {o["check"]: o["verdict"] for o in map(json.loads, done.stdout.splitlines())
                if o["type"] == "tftp_check"}
    yield verdicts, capture


def udp_datagrams(capture: Path) -> list[tuple[int, int]]:
    """(source port, destination port) of every UDP datagram, per tshark, in order."""
    done = subprocess.run(["tshark", "-n", "-r", str(capture), "-Y", "udp && !icmp",
                           "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport"],
                          capture_output=True, text=True, check=True, timeout=60)
    return [(int(src), int(dst)) for src, dst in
            (line.split("\t") for line in done.stdout.splitlines())]


def test_every_request_port_is_new_and_never_a_servers(narrow_run: tuple[dict, Path]) -> None:
    datagrams = udp_datagrams(narrow_run[1])
    requests = {src for src, dst in datagrams if dst == 69}
    assert len(requests) >= 30  # enough sockets that the narrow range would repeat one
    assert all(PORT_RANGE[0] <= port <= PORT_RANGE[1] for port in requests)
    first: dict[int, tuple[int, int]] = {}
    for src, dst in datagrams:
        for port in (src, dst):
            first.setdefault(port, (src, dst))
    # A port's first datagram is its own request: no earlier exchange used it.
    reused = {port: first[port] for port in requests if first[port] != (port, 69)}
    assert reused == {}
    # Two request ports never talk to each other: no server sent from a port of ours.
    assert [(s, d) for s, d in datagrams if s in requests and d in requests] == []


@pytest.mark.parametrize("card", ["dnsmasq"], indirect=True)
def test_verdicts_are_those_of_the_ordinary_run(narrow_run: tuple[dict, Path],
                                                card: Card) -> None:
    ordinary = {check: obj["verdict"] for check, obj in card.checks.items()}
    assert narrow_run[0] == ordinary
