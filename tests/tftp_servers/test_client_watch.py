"""`tftp get/put --watch -w OUT.pcapng`: the client's own transfer, sniffed and analyzed by
the tracker while it runs. The watched analysis is checked against the file on the
server's disk and against tshark's reading of the evidence file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.oracle import tshark_fields
from tests.support.analyzer_cli import run_analyzer
from tests.tftp_servers.checks import random_bytes

pytestmark = pytest.mark.root


def _objects(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


@pytest.mark.parametrize("blksize", ["512", "1428"])
def test_get_watch_sees_the_transfer_as_tshark_does(hpa_server, tmp_path: Path,
                                                    blksize: str) -> None:
    require_tool("tshark")
    content = random_bytes(100_000, seed=int(blksize))
    hpa_server.add_file("watched.bin", content)
    evidence = tmp_path / "get.pcapng"
    done = run_analyzer("tftp", "get", hpa_server.ip, "watched.bin", "-o",
                        tmp_path / "watched.bin", "--blksize", blksize, "--tsize", "--watch",
                        "-w", evidence, "--json")
    assert done.returncode == 0, done.stderr
    objects = _objects(done.stdout)
    assert [o["type"] for o in objects] == ["tftp_client", "tftp_transfer", "capture"]
    client, watched, capture = objects
    digest = hashlib.sha256(content).hexdigest()
    assert client["sha256"] == watched["sha256"] == digest
    assert watched["status"] == "complete" and watched["bytes"] == len(content)
    assert watched["blksize"] == int(blksize)
    assert watched["oack"] == {"blksize": blksize, "tsize": str(len(content))}
    assert watched["server"] == client["peer"]
    # tshark on the evidence: the same DATA blocks, the OACK, and every frame accounted for
    rows = tshark_fields(evidence, ["tftp.opcode", "tftp.block"], "tftp")
    data_blocks = {int(r["tftp.block"]) for r in rows if r["tftp.opcode"] == "3"}
    assert len(data_blocks) == watched["blocks"] == len(content) // int(blksize) + 1
    assert any(r["tftp.opcode"] == "6" for r in rows)
    assert capture["packets"] == len(tshark_fields(evidence, ["frame.number"]))


def test_get_watch_table_shows_the_timeline(hpa_server, tmp_path: Path) -> None:
    hpa_server.add_file("timeline.bin", random_bytes(3000, seed=3))
    done = run_analyzer("tftp", "get", hpa_server.ip, "timeline.bin", "-o",
                        tmp_path / "t.bin", "--watch")
    assert done.returncode == 0, done.stderr
    assert "TFTP transfer #1" in done.stdout
    assert "RRQ" in done.stdout and "DATA" in done.stdout and "ACK" in done.stdout


def test_put_watch_sees_the_upload(hpa_server, tmp_path: Path) -> None:
    content = random_bytes(20_000, seed=9)
    local = tmp_path / "up.bin"
    local.write_bytes(content)
    done = run_analyzer("tftp", "put", hpa_server.ip, local, "--as", "watched-up.bin",
                        "--watch", "--json")
    assert done.returncode == 0, done.stderr
    client, watched, _capture = _objects(done.stdout)
    assert watched["request"] == "WRQ" and watched["status"] == "complete"
    assert watched["sha256"] == hashlib.sha256(content).hexdigest()
    assert (hpa_server.root / "watched-up.bin").read_bytes() == content
