"""Spilled JSON lines (analyzer/run/results.py): printed by first frame, whatever the
order results finished in, across the two processes' spill files."""

from __future__ import annotations

import io
import json
import os
import pickle
import random

from analyzer.report.tcp_json import STREAM_START
from analyzer.run import results
from analyzer.run.results import ResultLines, TcpLines


def _unnumbered(**fields: object) -> str:
    """A tcp_stream line as TcpLines spills it: without its start up to the number
    (`STREAM_START`), which printing puts back, numbered."""
    return ", " + json.dumps(fields, ensure_ascii=False)[1:]


def _spill_shuffled(lines: ResultLines, firsts: list[int], rng: random.Random) -> None:
    """Results ranked by first frame, handed over in a random (finishing) order."""
    order = list(enumerate(firsts))
    rng.shuffle(order)
    for rank, first in order:
        lines.spill(_unnumbered(first=first), rank, first)


def test_two_parts_print_in_first_frame_order_and_are_numbered() -> None:
    rng = random.Random(5)
    frames = rng.sample(range(1, 100_000), 2_000)
    mine = sorted(frames[:1_200])
    theirs = sorted(frames[1_200:])
    ours, other = TcpLines(), TcpLines(named=True)  # (other: detached, as worker 1)
    _spill_shuffled(ours, mine, rng)
    _spill_shuffled(other, theirs, rng)
    # The other process hands over its files' paths through a pipe (pickled).
    path, index_path = other.detach()
    received = TcpLines(*pickle.loads(pickle.dumps((path, index_path))))
    out = io.StringIO()
    ours.write_ordered(out, received)
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["first"] for o in objects] == sorted(frames)
    assert [o["stream"] for o in objects] == list(range(len(frames)))
    assert all(line.startswith(STREAM_START) for line in out.getvalue().splitlines())
    assert {o["type"] for o in objects} == {"tcp_stream"}
    assert not any(os.path.exists(p) for p in (ours.path, ours.index_path, path, index_path))


def test_a_rank_without_a_result_is_skipped_not_printed_empty() -> None:
    lines = ResultLines()
    lines.spill('{"first": 9}', 3, 9)  # ranks 0..2 never finished (none came)
    lines.spill('{"first": 2}', 1, 2)
    out = io.StringIO()
    lines.write_ordered(out)
    assert [json.loads(line)["first"] for line in out.getvalue().splitlines()] == [2, 9]


def test_runs_of_consecutive_ranks_and_large_output_in_blocks() -> None:
    """Results finishing in rank order (written as runs, some longer than a run may be),
    backwards, and shuffled, with lines of non-ASCII text, more than one output block in
    all: every line printed once, whole, in first-frame order."""
    rng = random.Random(7)
    count = 12_000
    frames = sorted(rng.sample(range(1, 10 * count), count))
    order = list(range(5_000))  # in order: runs (over the run limit of 4,096)
    order += list(range(6_999, 4_999, -1))  # backwards: no run longer than one
    rest = list(range(7_000, count))
    rng.shuffle(rest)
    order += rest
    assert sorted(order) == list(range(count))
    ours, other = TcpLines(), TcpLines(named=True)  # (other: detached, as worker 1)
    text = "é" * 40  # 80 bytes a line in UTF-8: the blocks split between lines only
    for rank in order:
        part = ours if frames[rank] % 3 else other
        part.spill(_unnumbered(first=frames[rank], text=text), rank, frames[rank])
    out = io.StringIO()
    ours.write_ordered(out, TcpLines(*other.detach()))
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["first"] for o in objects] == frames
    assert [o["stream"] for o in objects] == list(range(count))
    assert all(o["text"] == text for o in objects)
    assert len(out.getvalue().encode()) > 2 * (1 << 18)


def test_a_flood_finishing_far_out_of_order_prints_every_line_once(monkeypatch) -> None:
    """Results finishing each a random while after it started (a SYN flood's probes,
    finished when their port comes again), some very late, in parts of two processes,
    with probe lines ending in a reference to a shared rest: with a window and spans a
    few ranks wide, records go through the window, its moves, the pending ones and
    their spans over records already written."""
    monkeypatch.setattr(results, "_WINDOW", 64)
    monkeypatch.setattr(results, "_PENDING_LIMIT", 50)
    monkeypatch.setattr(results, "_SPAN_GAP", 4)
    monkeypatch.setattr(results, "_SPAN_LIMIT", 32)
    monkeypatch.setattr(results, "_BATCH_BYTES", 2_000)
    monkeypatch.setattr(results, "_BLOCK_BITS", 8)
    monkeypatch.setattr(results, "_BLOCKS", 4)
    rng = random.Random(23)
    count = 6_000
    finish = sorted(range(count), key=lambda rank: rank + rng.expovariate(1 / 40)
                    + (rng.random() < 0.01) * 3_000)
    ours, other = TcpLines(), TcpLines(named=True)  # (other: detached, as worker 1)
    for rank in finish:
        part = ours if rank % 3 else other
        rest = part.reference(rank % 2, lambda: json.dumps({"rest": 0})[1:])
        head = _unnumbered(first=rank * 2)[:-1] + ", "
        if rank % 5:
            part.spill(head, rank, rank * 2, rest)
        else:
            part.spill(head + '"rest": 1}', rank, rank * 2)
    out = io.StringIO()
    ours.write_ordered(out, TcpLines(*other.detach()))
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["first"] for o in objects] == [rank * 2 for rank in range(count)]
    assert [o["stream"] for o in objects] == list(range(count))
    assert [o["rest"] for o in objects] == [int(not rank % 5) for rank in range(count)]


def test_files_not_handed_on_leave_no_name_behind(tmp_path, monkeypatch) -> None:
    """A process killed outright (SIGKILL) cleans nothing up: files no other process
    opens by name have none from the start."""
    monkeypatch.setattr(results.tempfile, "tempdir", str(tmp_path))
    lines = TcpLines()
    lines.spill(_unnumbered(first=1), 0, 1)
    assert list(tmp_path.iterdir()) == []
    out = io.StringIO()
    lines.write_ordered(out)
    assert json.loads(out.getvalue()) == {"type": "tcp_stream", "stream": 0, "first": 1}
    shared = TcpLines(named=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        os.path.basename(p) for p in (shared.path, shared.index_path))
    shared.close()
    assert list(tmp_path.iterdir()) == []

