"""Running the active commands as users do, and reading what they print.

Output is kept as bytes where the test must see exactly what reached the terminal
(control characters); JSON Lines are parsed from it.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.oracle import run_tshark

ANALYZER = [sys.executable, "-m", "analyzer"]
RUN_TIMEOUT = 60.0

# What must never reach a terminal from the network: C0 controls other than newline and
# tab, DEL, and the C1 controls (as UTF-8: 0xC2 0x80..0x9F), which include CSI and OSC.
RAW_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]")


def analyzer_argv(*args: str | Path) -> list[str]:
    return [*ANALYZER, *map(str, args)]


def run(*args: str | Path, timeout: float = RUN_TIMEOUT,
        stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """`analyzer ARGS` to completion; stdout and stderr kept as bytes."""
    return subprocess.run(analyzer_argv(*args), capture_output=True, timeout=timeout,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL,
                          check=False)


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
