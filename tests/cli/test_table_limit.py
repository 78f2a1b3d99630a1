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


def test_streams_chosen_as_they_finish_are_those_a_full_sort_chooses(busy: Path) -> None:
    """TableStreams keeps at most `limit` results whatever order they finish in, and they
    are the ones sorting every result (broken, suspicious, good; then by number) picks."""
    import random

    from analyzer.pipeline import analyze_file
    from analyzer.report.console import TableStreams
    from analyzer.report.tcp_view import BROKEN, GOOD, health

    results = analyze_file(busy).tcp.results()
    rank = {BROKEN: 0, GOOD: 2}
    for limit in (1, 37, TABLE_ROWS, len(results) + 5):
        expected = sorted(sorted(results, key=lambda r: (rank.get(health(r), 1),
                                                         r.stream))[:limit],
                          key=lambda r: r.stream)
        shuffled = list(results)
        random.Random(limit).shuffle(shuffled)
        table = TableStreams(limit)
        for result in shuffled:
            table(result)
        assert table.total == len(results)
        assert [r.stream for r in table.shown()] == [r.stream for r in expected]
    assert {health(r) for r in results} >= {BROKEN, GOOD}  # the ranking is exercised
