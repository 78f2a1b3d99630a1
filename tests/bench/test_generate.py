"""The benchmark's synthetic captures are valid: tshark agrees with the generator's summary.

tshark is the independent judge here: it validates every IPv4/TCP/UDP checksum, counts
the TCP conversations and exports the TFTP files, and each count must match what the
generator says it wrote.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.generate import generate, parse_count
from tests.conftest import require_tool

CHECKSUMS_ON = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
                "-o", "udp.check_checksum:TRUE"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("generate") / "synthetic.pcap"
    return path, generate(path, 3000, seed=11, concurrency=40, tftp_share=0.2)


def tshark(*args: str) -> str:
    return subprocess.run(["tshark", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def test_checksums_are_valid(capture: tuple[Path, dict]) -> None:
    require_tool("tshark")
    path, summary = capture
    fields = tshark("-r", str(path), *CHECKSUMS_ON, "-T", "fields", "-e", "ip.checksum.status",
                    "-e", "tcp.checksum.status", "-e", "udp.checksum.status")
    statuses = Counter(value for line in fields.splitlines()
                       for value in line.split("\t") if value)
    # Wireshark's checksum status: 0 bad, 1 good, 2 unverified.
    assert set(statuses) == {"1"}
    ipv4 = summary["packets"] - summary["ipv6_packets"]
    assert statuses["1"] == ipv4 + summary["packets"]  # one IP (v4) + one TCP/UDP each


def test_packet_counts_match(capture: tuple[Path, dict]) -> None:
    require_tool("tshark")
    path, summary = capture
    fields = tshark("-r", str(path), "-T", "fields", "-e", "ip.proto", "-e", "ipv6.nxt")
    protocols = Counter(line.replace("\t", "") for line in fields.splitlines())
    assert len(fields.splitlines()) == summary["packets"]
    assert protocols["6"] == summary["tcp_packets"]
    assert protocols["17"] == summary["udp_packets"]
    conversations = tshark("-r", str(path), "-q", "-z", "conv,tcp")
    assert conversations.count("<->") == summary["tcp_connections"]


def test_tftp_files_export(capture: tuple[Path, dict], tmp_path: Path) -> None:
    require_tool("tshark")
    path, summary = capture
    tshark("-r", str(path), "-q", "--export-objects", f"tftp,{tmp_path / 'out'}")
    exported = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    # tshark exports the transfers whose last (short) block is in the capture.
    assert len(exported) == summary["tftp_last_block_sent"] > 0
    assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in exported}) == len(exported)


def test_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a.pcap", tmp_path / "b.pcap"
    generate(first, 500, seed=5)
    generate(second, 500, seed=5)
    assert first.read_bytes() == second.read_bytes()
    generate(second, 500, seed=6)
    assert first.read_bytes() != second.read_bytes()


@pytest.mark.parametrize(("text", "count"), [("100k", 100_000), ("1M", 1_000_000),
                                             ("5m", 5_000_000), ("1234", 1234)])
def test_parse_count(text: str, count: int) -> None:
    assert parse_count(text) == count


def test_a_scan_capture_is_probes_through_the_traffic(tmp_path: Path) -> None:
    """With scan_share, tshark sees one SYN per probe from the scanner (valid checksums),
    a conversation per probe, and the answers the generator says it sent."""
    require_tool("tshark")
    path = tmp_path / "scan.pcap"
    summary = generate(path, 3000, seed=12, concurrency=40, scan_share=0.9)
    assert summary["scan_probes"] > 500
    fields = tshark("-r", str(path), *CHECKSUMS_ON, "-Y", "ip.src == 10.9.0.1",
                    "-T", "fields", "-e", "tcp.flags.str", "-e", "tcp.checksum.status")
    sent = Counter(line.split("\t")[0].strip("·").replace("·", "") for line in
                   fields.splitlines())
    assert sent["S"] == summary["scan_probes"]  # one SYN each, never resent
    assert {line.split("\t")[1] for line in fields.splitlines()} == {"1"}
    answers = tshark("-r", str(path), "-Y", "ip.dst == 10.9.0.1", "-T", "fields",
                     "-e", "tcp.flags.str")
    answered = Counter(line.replace("·", "") for line in answers.splitlines())
    # a third of the probes get a RST-ACK, a sixth a SYN-ACK (which the scanner resets)
    assert answered["AR"] + answered["AS"] < summary["scan_probes"] * 0.7
    assert answered["AS"] == sent["R"] > 0
    conversations = tshark("-r", str(path), "-q", "-z", "conv,tcp")
    assert conversations.count("<->") == summary["tcp_connections"]
