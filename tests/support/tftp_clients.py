"""The real TFTP clients as subprocesses: tftp-hpa's `tftp` and `atftp`.

tftp-hpa's client speaks plain RFC 1350 (no options); atftp sends options with
`--option "name value"`. Both only ever talk to loopback servers here. Each skips the
test (fails it under CI=true) when its binary is missing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

CLIENT_TIMEOUT_SECONDS = 60


def tftp_hpa(
    host: str, command: str, local: Path, remote: str, mode: str = "binary",
    port: int = 69,
) -> subprocess.CompletedProcess[str]:
    """`tftp -m MODE HOST PORT -c get|put ...`; mode is binary or ascii (netascii)."""
    if command == "get":
        args = ["get", remote, str(local)]
    elif command == "put":
        args = ["put", str(local), remote]
    else:
        raise ValueError(command)
    done = subprocess.run(
        [require_tool("tftp"), "-m", mode, host, str(port), "-c", *args],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT_SECONDS, check=False,
    )
    # tftp-hpa exits 0 even on a server ERROR; it reports it on stdout/stderr.
    if done.returncode != 0 or "Error code" in done.stdout + done.stderr:
        raise AssertionError(f"tftp {command} {remote} failed: {done.stdout}{done.stderr}")
    return done


def atftp(
    host: str, command: str, local: Path, remote: str,
    options: dict[str, str | int] | None = None, mode: str = "octet", port: int = 69,
) -> subprocess.CompletedProcess[str]:
    """`atftp -g|-p -l LOCAL -r REMOTE --option "name value" ... HOST PORT`."""
    flag = {"get": "-g", "put": "-p"}[command]
    argv = [require_tool("atftp"), flag, "-l", str(local), "-r", remote]
    for name, value in (options or {}).items():
        argv += ["--option", f"{name} {value}"]
    if mode != "octet":
        argv += ["--option", f"mode {mode}"]
    done = subprocess.run(
        [*argv, host, str(port)],
        capture_output=True, text=True, timeout=CLIENT_TIMEOUT_SECONDS, check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"atftp {command} {remote} failed: {done.stdout}{done.stderr}")
    return done
