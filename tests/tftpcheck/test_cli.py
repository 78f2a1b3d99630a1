"""`analyzer tftp check` input handling, and a server that never answers."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.conftest import require_root, require_tool
from tests.support.analyzer_cli import run_analyzer

SILENT_IP = "127.0.0.27"


def test_unknown_check_id_is_one_line_exit_2() -> None:
    done = run_analyzer("tftp", "check", "127.0.0.27", "--only", "rrq-octet,no-such")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no-such" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_port_and_timeout_are_one_line_exit_2() -> None:
    for extra in (["--port", "70000"], ["--timeout", "abc"]):
        done = run_analyzer("tftp", "check", "127.0.0.27", "--file", "x", *extra)
        assert done.returncode == 2, extra
        assert done.stderr.startswith("analyzer: ") and done.stderr.count("\n") == 1


def test_without_root_one_line_exit_2() -> None:
    require_root()  # to become nobody
    setpriv = require_tool("setpriv")
    import subprocess
    import sys

    done = subprocess.run(
        [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
         "-m", "analyzer", "tftp", "check", SILENT_IP, "--file", "x"],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "root" in done.stderr and done.stderr.count("\n") == 1
    assert done.stdout == ""


@pytest.mark.root
def test_a_silent_server_ends_in_bounded_time_with_clear_verdicts() -> None:
    require_root()
    # A bound socket that reads and never answers (no ICMP port unreachable either).
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((SILENT_IP, 69))
    try:
        started = time.monotonic()
        done = run_analyzer("tftp", "check", SILENT_IP, "--file", "f.bin", "--json",
                            "--timeout", "0.2", timeout=120)
        seconds = time.monotonic() - started
        silent.setblocking(False)
        received = 0
        while True:
            try:
                silent.recv(65536)
            except BlockingIOError:
                break
            received += 1
    finally:
        silent.close()
    checks = {o["check"]: o for o in map(json.loads, done.stdout.splitlines())
              if o["type"] == "tftp_check"}
    assert done.returncode == 1
    # The first check waits out its retransmissions (0.2+0.4+0.8+1.6 s) and fails; every
    # other is skipped at once, saying why.
    assert checks["rrq-octet"]["verdict"] == "fail"
    assert "no answer" in checks["rrq-octet"]["detail"]
    others = [c for name, c in checks.items() if name != "rrq-octet"]
    assert all(c["verdict"] == "skipped" for c in others)
    assert all("did not answer rrq-octet" in c["detail"] or "needs" in c["detail"]
               for c in others)
    assert seconds < 15
    assert received == 4  # the request and its 3 retransmissions, nothing more
