"""`analyzer tftp get` against a scripted hostile server (tests/support/tftp_hostile.py):
every misbehaviour ends with exit 1, one `analyzer:` line saying why, the right ERROR
sent to the server, and nothing under the target name (a file already there is kept)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.analyzer_cli import run_analyzer
from tests.support.tftp_hostile import HostileServer

OLD = b"the previous version of the target\n"

# scenario: (extra CLI options, words the reason must contain, ERROR codes the server gets)
CASES = {
    "wrong-tid": ([], ["timed out"], {("other", 5)}),
    "big-data": ([], ["600 bytes", "blksize 512"], {("transfer", 4)}),
    "past-tsize": (["--tsize"], ["1000"], {("transfer", 4)}),
    "error-mid": ([], ["error 3", "Disk full"], set()),
    "unasked-option": (["--blksize", "1024"], ["did not ask"], {("transfer", 8)}),
    "jump-ahead": ([], ["jumped ahead"], {("transfer", 4)}),
}


@pytest.fixture
def hostile(request: pytest.FixtureRequest):
    server = HostileServer(request.param)
    yield server
    server.close()


def target_in(tmp_path: Path) -> Path:
    target = tmp_path / "firmware.bin"
    target.write_bytes(OLD)
    return target


@pytest.mark.parametrize("hostile", list(CASES), indirect=True)
def test_hostile_server_fails_cleanly(hostile: HostileServer, tmp_path: Path) -> None:
    options, words, errors = CASES[hostile.scenario]
    target = target_in(tmp_path)
    done = run_analyzer("tftp", "get", f"{hostile.ip}:{hostile.port}", "firmware.bin",
                        "-o", target, "--timeout", "0.2", "--retries", "2", *options,
                        timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("analyzer: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert target.read_bytes() == OLD, "the existing target must be untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware.bin"], "no leftovers"
    hostile.close()
    assert errors <= set(hostile.errors_received()), hostile.errors_received()
    if not errors:
        assert hostile.errors_received() == []


@pytest.mark.parametrize("hostile", ["unasked-option"], indirect=True)
def test_hostile_outcome_as_json(hostile: HostileServer, tmp_path: Path) -> None:
    local = tmp_path / "x.bin"
    done = run_analyzer("tftp", "get", f"{hostile.ip}:{hostile.port}", "x.bin", "-o", local,
                        "--blksize", "1024", "--json", timeout=60)
    assert done.returncode == 1
    obj = json.loads(done.stdout)
    assert obj["status"] == "error"
    assert obj["error"]["code"] == 8 and obj["error"]["from"] == "client"
    assert obj["oack"] == {"blksize": "4096", "windowsize": "8"}
    assert obj["peer"].startswith(f"{hostile.ip}:") and obj["peer"] != obj["server"]
    assert not local.exists()


@pytest.mark.parametrize("hostile", ["stray-at-end"], indirect=True)
def test_a_stray_at_the_very_end_gets_error_5(hostile: HostileServer,
                                              tmp_path: Path) -> None:
    """RFC 1350: a datagram from another TID gets ERROR 5 and does not disturb the
    transfer, even when it comes last (the client's socket is connected to the server's
    port by then, and strays are read from a second socket on the same port)."""
    local = tmp_path / "x.bin"
    done = run_analyzer("tftp", "get", f"{hostile.ip}:{hostile.port}", "x.bin", "-o", local,
                        "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    assert local.read_bytes() == b"s" * 512 + b"end"
    obj = json.loads(done.stdout)
    assert obj["status"] == "complete"
    hostile.close()
    assert any("ERROR 5" in note for note in obj["notes"]), obj["notes"]
    assert ("other", 5) in hostile.errors_received(), hostile.received
    # The ERROR 5 left from the transfer's own port, as the ACKs did.
    ports = {(name, data[:2]): sender[1] for (name, data), sender
             in zip(hostile.received, hostile.senders, strict=True)}
    assert ports[("other", b"\x00\x05")] == ports[("transfer", b"\x00\x04")]


@pytest.mark.parametrize("hostile", ["stall"], indirect=True)
def test_ctrl_c_sends_error_0_and_leaves_nothing(hostile: HostileServer,
                                                 tmp_path: Path) -> None:
    target = target_in(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "analyzer", "tftp", "get", f"{hostile.ip}:{hostile.port}",
         "firmware.bin", "-o", str(target), "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait for the DATA 1 exchange (our ACK 1 reaches the server), then Ctrl-C.
        deadline = time.monotonic() + 20
        while not any(name == "transfer" for name, _ in hostile.received):
            assert time.monotonic() < deadline, "the client never answered"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert err.strip().startswith("analyzer: ") and "cancelled" in err
    assert len(err.strip().splitlines()) == 1
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware.bin"]
    hostile.close()
    assert ("transfer", 0) in hostile.errors_received()
