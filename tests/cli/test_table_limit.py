"""A capture with thousands of streams: the table shows the ones worth a look first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.report.console import TABLE_ROWS
from tests.conftest import synthetic_capture


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_capture(tmp_path_factory.mktemp("synthetic"), 30000, 5, 500)


def run(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], check=True,
                          capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"}).stdout


def test_table_keeps_every_reset_stream_and_says_how_many_are_hidden(busy: Path) -> None:
    streams = [json.loads(line) for line in run("read", str(busy), "--json").splitlines()
               if '"tcp_stream"' in line]
    assert len(streams) > TABLE_ROWS
    reset = {s["stream"] for s in streams if s["close"] == "rst"}
    assert 0 < len(reset) < TABLE_ROWS  # the generator closes ~14% with RST
    report = run("read", str(busy))
    note = f"showing {TABLE_ROWS:,} of {len(streams):,} streams"
    assert note in report
    table = report[report.index("TCP streams"):report.index(note)]
    shown = {int(line.split("│")[1]) for line in table.splitlines()
             if line.startswith("│") and line.split("│")[1].strip().isdigit()}
    assert len(shown) == TABLE_ROWS
    assert reset <= shown
