"""Finding tshark (pyshark's search: its config file, then PATH) and running it.

pyshark itself reads tshark's PDML or JSON into flat per-layer field dictionaries, one
packet object at a time, through asyncio: the nesting of the packet-details pane is lost
and it is far too slow for a whole capture. So pyshark finds the program and its version,
and we read tshark's own output formats (PDML for a frame, `-T fields` for verify) as
streams, one packet or one line at a time.
"""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache

from analyzer.errors import InputError

INSTALL_HINT = "tshark is not installed (Wireshark's command-line tool): apt-get install tshark"


@lru_cache(maxsize=1)
def tshark_path() -> str:
    """The tshark executable; InputError (exit 2, one line) saying how to install it."""
    from pyshark.tshark.tshark import (  # type: ignore[import-untyped]  # no stubs
        TSharkNotFoundException,
        get_process_path,
    )

    try:
        path = str(get_process_path())
    except TSharkNotFoundException:
        raise InputError(INSTALL_HINT) from None
    if not os.access(path, os.X_OK):
        raise InputError(INSTALL_HINT)
    return path


@lru_cache(maxsize=1)
def tshark_version() -> str:
    """tshark's version, e.g. "4.0.17" (pyshark parses `tshark -v`)."""
    from pyshark.tshark.tshark import get_tshark_version  # type: ignore[import-untyped]

    path = tshark_path()
    try:
        return str(get_tshark_version(path))
    except Exception:  # pyshark's TSharkVersionException, or `tshark -v` failing
        return "unknown"  # the comparison does not depend on it


def tshark_env() -> dict[str, str]:
    """tshark's environment: the C locale (numbers and field text as tshark's defaults)."""
    return {**os.environ, "LC_ALL": "C"}


def tshark_command(*args: str) -> list[str]:
    """A tshark command line: no name resolution, quiet about running as root."""
    return [tshark_path(), "-n", *args]


def first_error_line(stderr: bytes) -> str:
    """tshark's first real complaint (its "running as root" notice is not one)."""
    from analyzer.report.text import escape

    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip() and "Running as user" not in line:
            return escape(line.strip().removeprefix("tshark: "))
    return ""


def check_readable(path: str) -> None:
    """One-line InputError for a capture path that cannot be opened (before tshark
    says so in its own words)."""
    if path == "-":
        raise InputError("-: frame and verify read a capture file, not standard input "
                         "(save it first: tshark reads the file more than once)")
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a capture file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")


def run_tshark(args: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(tshark_command(*args), capture_output=True, env=tshark_env(),
                          timeout=timeout, check=False)
