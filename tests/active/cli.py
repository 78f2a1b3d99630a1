"""Running the active commands as users do, and reading what they print.

Output is kept as bytes where the test must see exactly what reached the terminal
(control characters); JSON Lines are parsed from it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.oracle import run_tshark

ANALYZER = [sys.executable, "-m", "analyzer"]
RUN_TIMEOUT = 60.0

Arg = str | int | Path  # one command-line argument, as the tests write it
WIDE_ENV = {**os.environ, "COLUMNS": "250"}

# What must never reach a terminal from the network: C0 controls other than newline and
# tab, DEL, and the C1 controls (as UTF-8: 0xC2 0x80..0x9F), which include CSI and OSC.
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def analyzer_argv(*args: Arg) -> list[str]:
    return [*ANALYZER, *map(str, args)]


def run(*args: Arg, timeout: float = RUN_TIMEOUT,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`analyzer ARGS` to completion; stdout and stderr kept as bytes. Tables are drawn
    wide (COLUMNS) so that no line the tests look for is wrapped."""
    if stdin is None:
        return subprocess.run(analyzer_argv(*args), capture_output=True, timeout=timeout,
                              env=WIDE_ENV, stdin=subprocess.DEVNULL, check=False)
    return subprocess.run(analyzer_argv(*args), capture_output=True, timeout=timeout,
                          env=WIDE_ENV, input=stdin, check=False)


def wait_tcp_listening(port: int, proc: subprocess.Popen | None = None,
                       timeout: float = 20.0) -> None:
    """Wait until something listens on TCP `port` (asks `ss`: connecting would use up a
    one-shot listener's only connection); raise if `proc` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True,
                                text=True, check=False)
        if listed.stdout.strip():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on TCP port {port} after {timeout} s")


def json_lines(stdout: bytes) -> list[dict]:
    """Every JSON object on stdout (lines that are not JSON fail the test loudly)."""
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def of_type(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj.get("type") == kind]


def describe(done: subprocess.CompletedProcess[bytes]) -> str:
    """The end of a finished command's output, for assertion messages."""
    return (f"exit {done.returncode}\nstdout: {done.stdout[-1500:]!r}\n"
            f"stderr: {done.stderr[-1500:]!r}")


def assert_one_line_error(done: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    """The contract for bad input: exit `code`, exactly one line on stderr, no traceback."""
    assert done.returncode == code, describe(done)
    assert b"Traceback" not in done.stderr + done.stdout, describe(done)
    lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    assert len(lines) == 1, describe(done)
    return lines[0]


def free_port(kind: int, address: str = "127.0.0.1") -> int:
    """A port nothing holds right now on `address` (for UDP or TCP, by `kind`)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def tshark_rows(capture: Path, fields: list[str], display_filter: str) -> list[dict[str, str]]:
    """tshark's fields for the frames matching `display_filter`, in frame order."""
    result = run_tshark(capture, fields, display_filter)
    assert result.returncode == 0, result.stderr
    return result.rows


class Background:
    """`analyzer ARGS` running beside the test (a server, a listener); `finish()` waits
    for it to end on its own (or sends SIGTERM first with `terminate=True`) and returns
    what it printed. A process still running at `close()` is killed by its PID."""

    def __init__(self, *args: Arg, stdin: int | None = subprocess.DEVNULL,
                 stdout: int | IO[bytes] = subprocess.PIPE) -> None:
        self.proc = subprocess.Popen(analyzer_argv(*args), stdin=stdin, stdout=stdout,
                                     stderr=subprocess.PIPE,
                                     env=WIDE_ENV)

    def finish(self, timeout: float = 30.0,
               terminate: bool = False) -> subprocess.CompletedProcess[bytes]:
        if terminate and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"{self.proc.args!r} did not end within {timeout} s") from None
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode,
                                           stdout or b"", stderr or b"")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    """Start `analyzer ARGS` in the background; whatever is left is killed by PID."""
    started: list[Background] = []

    def start(*args: Arg, **kwargs: object) -> Background:
        started.append(Background(*args, **kwargs))  # type: ignore[arg-type]
        return started[-1]

    yield start
    for item in started:
        item.close()
