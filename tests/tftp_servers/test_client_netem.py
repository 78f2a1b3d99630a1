"""Real packet loss: tftpd-hpa in one network namespace, our client in another, joined by
a link that loses 10%, reorders 5%, duplicates 2% and delays 1 ms of the packets in each
direction (tests/support/lossy.py: netem's impairments done by a TUN relay, as this
kernel has no sch_netem).

Every file must arrive intact (SHA-256 against the server's disk), uploads included, and
the capture (taken on the client's interface) must show no Sorcerer's Apprentice: a DATA
block we send again is always a resend after our timeout, never a quick answer to a
duplicate ACK. The namespaces are private to the test (10.x addresses exist only inside
them) and are deleted afterwards, even on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR, require_root, require_tool
from tests.support.lossy_link import LossyLink
from tests.support.procs import start_process, stop_process
from tests.support.sniff import Tcpdump
from tests.support.tftp_servers import make_root
from tests.tftp_servers.checks import random_bytes, text_bytes

pytestmark = pytest.mark.root

TIMEOUT = 0.1  # our retransmit timeout in these tests
RETRIES = 12


class LossyTftp:
    """The link, tftpd-hpa serving `root` in the server namespace, our CLI in the other."""

    def __init__(self, link: LossyLink, root: Path) -> None:
        self.link = link
        self.root = root
        self.server_ip = link.server_ip
        self.client_ip = link.client_ip

    def client(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", str(REPO_DIR))}
        return subprocess.run(
            self.link.netns_argv("client", [sys.executable, "-m", "analyzer", *args]),
            capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def lossy() -> Iterator[LossyTftp]:
    require_root()
    require_tool("ip")
    require_tool("in.tftpd")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun")
    root = make_root("lossy")
    server = None
    try:
        with LossyLink(loss=0.10, reorder=0.05, duplicate=0.02, delay=0.001) as link:
            server = start_process(link.netns_argv("server", [
                "in.tftpd", "-L", "-s", str(root), "-c", "-a", f"{link.server_ip}:69"]))
            deadline = time.monotonic() + 10
            while f"{link.server_ip}:69".encode() not in subprocess.run(
                    link.netns_argv("server", ["ss", "-uln"]), capture_output=True,
                    check=False).stdout:
                assert server.poll() is None and time.monotonic() < deadline, "no tftpd"
                time.sleep(0.05)
            yield LossyTftp(link, root)
            assert link.counts["dropped"] > 0 and link.counts["reordered"] > 0
    finally:
        if server is not None:
            stop_process(server)
        shutil.rmtree(root, ignore_errors=True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def add_file(link: LossyTftp, name: str, data: bytes) -> None:
    path = link.root / name
    path.write_bytes(data)
    path.chmod(0o644)


def data_sends(capture: Path, source: str) -> dict[int, list[float]]:
    """tshark's view of the capture: when `source` sent each DATA block (absolute)."""
    done = subprocess.run(
        [require_tool("tshark"), "-r", str(capture), "-Y", f"tftp.opcode == 3 && "
         f"ip.src == {source}", "-T", "fields", "-e", "frame.time_relative",
         "-e", "tftp.block"], capture_output=True, text=True, timeout=120, check=True)
    sends: dict[int, list[float]] = {}
    for line in done.stdout.splitlines():
        when, block = line.split("\t")
        sends.setdefault(int(block), []).append(float(when))
    return sends


def check_no_sorcerers_apprentice(sends: dict[int, list[float]]) -> int:
    """Every repeated DATA is a resend after our timeout (the capture is taken before the
    link duplicates anything); the number of resends."""
    resends = 0
    for block, times in sends.items():
        times.sort()
        for earlier, later in zip(times, times[1:], strict=False):
            gap = later - earlier
            assert gap >= TIMEOUT * 0.9, (
                f"DATA {block} sent again {gap * 1000:.1f} ms after the previous copy: "
                "faster than our timeout, i.e. an answer to a duplicate ACK")
            resends += 1
    return resends


# Small files: a lost DATA waits for tftpd-hpa's own 1 s timeout.
GETS = [(30_000, "512"), (100_000, "1428"), (1, "512"), (1024, "512")]


def test_gets_arrive_intact_through_loss(lossy: LossyTftp, tmp_path: Path) -> None:
    retransmitted = 0
    for number, (size, blksize) in enumerate(GETS):
        name = f"lossy-{number}.bin"
        content = random_bytes(size, seed=size)
        add_file(lossy, name, content)
        local = tmp_path / name
        done = lossy.client("tftp", "get", lossy.server_ip, name, "-o", str(local),
                                 "--blksize", blksize, "--tsize", "--timeout", str(TIMEOUT),
                                 "--retries", str(RETRIES), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        outcome = json.loads(done.stdout)
        assert sha(local.read_bytes()) == sha(content) == outcome["sha256"]
        retransmitted += outcome["retransmitted"]
    assert retransmitted > 0, "10% loss must have cost some retransmissions"


def test_netascii_get_through_loss(lossy: LossyTftp, tmp_path: Path) -> None:
    text = text_bytes(20_000, seed=9)
    add_file(lossy, "lossy.txt", text)
    local = tmp_path / "lossy.txt"
    done = lossy.client("tftp", "get", lossy.server_ip, "lossy.txt", "-o", str(local),
                             "--mode", "netascii", "--timeout", str(TIMEOUT),
                             "--retries", str(RETRIES))
    assert done.returncode == 0, done.stderr
    assert sha(local.read_bytes()) == sha(text)


def test_put_through_loss_without_sorcerers_apprentice(lossy: LossyTftp,
                                                       tmp_path: Path) -> None:
    require_tool("tcpdump")
    require_tool("tshark")
    content = random_bytes(150_000, seed=400)
    local = tmp_path / "upload.bin"
    local.write_bytes(content)
    capture = tmp_path / "put.pcap"
    sniff = Tcpdump(capture, "udp", interface=lossy.link.client_if)
    sniff.argv = lossy.link.netns_argv("client", sniff.argv)
    with sniff:
        done = lossy.client("tftp", "put", lossy.server_ip, str(local), "--as",
                                 "lossy-up.bin", "--timeout", str(TIMEOUT),
                                 "--retries", str(RETRIES), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    stored = lossy.root / "lossy-up.bin"
    deadline = time.monotonic() + 5
    while sha(stored.read_bytes()) != sha(content) and time.monotonic() < deadline:
        time.sleep(0.05)  # tftpd-hpa may still be writing the last block
    assert sha(stored.read_bytes()) == sha(content)
    sends = data_sends(capture, lossy.client_ip)
    assert len(sends) == len(content) // 512 + 1, "every block was seen"
    resends = check_no_sorcerers_apprentice(sends)
    assert resends > 0, "10% loss must have made us resend some DATA"
    assert json.loads(done.stdout)["retransmitted"] >= resends
