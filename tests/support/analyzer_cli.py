"""The analyzer's command line as a subprocess, the way users and scripts call it.

The end-to-end tests go through the CLI contract (SPEC.md), not internal APIs:
`analyzer read CAPTURE --json` and `analyzer tftp extract CAPTURE -o DIR`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

TIMEOUT_SECONDS = 180


def run_analyzer(
    *args: str | Path, timeout: float = TIMEOUT_SECONDS
) -> subprocess.CompletedProcess[str]:
    """Run `python -m analyzer ARGS`; the result keeps stdout, stderr and the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def read_json(capture: Path, *extra: str | Path) -> list[dict]:
    """`analyzer read CAPTURE --json`: every JSON Lines object; fails on a non-zero exit."""
    done = run_analyzer("read", capture, "--json", *extra)
    if done.returncode != 0:
        raise AssertionError(
            f"analyzer read {capture} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def tftp_transfers(capture: Path, *extra: str | Path) -> list[dict]:
    """The `tftp_transfer` objects of `analyzer read --json`, in output order."""
    return [obj for obj in read_json(capture, *extra) if obj.get("type") == "tftp_transfer"]


def tftp_extract(capture: Path, out_dir: Path, *extra: str | Path) -> dict[str, Path]:
    """`analyzer tftp extract CAPTURE -o DIR`: the files it wrote, by name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    done = run_analyzer("tftp", "extract", capture, "-o", out_dir, *extra)
    if done.returncode != 0:
        raise AssertionError(
            f"analyzer tftp extract exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return {path.name: path for path in sorted(out_dir.iterdir()) if path.is_file()}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    return sha256(path.read_bytes())
