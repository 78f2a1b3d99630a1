"""Fixtures of the active-mode tests: background analyzer commands and independent peers,
all stopped by PID at the end of each test."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.active.cli import background  # noqa: F401 - a fixture for the test modules
from tests.support.procs import start_process, stop_process


@pytest.fixture
def peers() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start an independent peer (socat, nc, http.server...) by argv; stopped by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str | Path], log_path: Path | None = None,
              **popen_kwargs: object) -> subprocess.Popen[bytes]:
        started.append(start_process(argv, log_path, **popen_kwargs))
        return started[-1]

    yield start
    for proc in started:
        stop_process(proc)
