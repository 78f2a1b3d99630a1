"""Spilled JSON lines (analyzer/report/jsonl.py): printed by first frame, whatever the
order results finished in, across the two processes' spill files."""

from __future__ import annotations

import io
import json
import os
import pickle
import random

from analyzer.report.jsonl import ResultLines


class NumberedLines(ResultLines):
    NUMBER_FIELD = b'"stream": '


def _spill_shuffled(lines: ResultLines, firsts: list[int], rng: random.Random) -> None:
    """Results ranked by first frame, handed over in a random (finishing) order."""
    order = list(enumerate(firsts))
    rng.shuffle(order)
    for rank, first in order:
        lines.spill(json.dumps({"type": "x", "stream": -1, "first": first}), rank, first)


def test_two_parts_print_in_first_frame_order_and_are_numbered() -> None:
    rng = random.Random(5)
    frames = rng.sample(range(1, 100_000), 2_000)
    mine = sorted(frames[:1_200])
    theirs = sorted(frames[1_200:])
    ours, other = NumberedLines(), NumberedLines()
    _spill_shuffled(ours, mine, rng)
    _spill_shuffled(other, theirs, rng)
    # The other process hands over its files' paths through a pipe (pickled).
    path, index_path = other.detach()
    received = NumberedLines(*pickle.loads(pickle.dumps((path, index_path))))
    out = io.StringIO()
    ours.write_ordered(out, received)
    objects = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [o["first"] for o in objects] == sorted(frames)
    assert [o["stream"] for o in objects] == list(range(len(frames)))
    assert not any(os.path.exists(p) for p in (ours.path, ours.index_path, path, index_path))


def test_a_rank_without_a_result_is_skipped_not_printed_empty() -> None:
    lines = ResultLines()
    lines.spill('{"first": 9}', 3, 9)  # ranks 0..2 never finished (none came)
    lines.spill('{"first": 2}', 1, 2)
    out = io.StringIO()
    lines.write_ordered(out)
    assert [json.loads(line)["first"] for line in out.getvalue().splitlines()] == [2, 9]
