"""analyzer/run/spill.py: the temporary file that parked TCP streams' records go to."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

from analyzer.run.spill import SpillFile


def test_records_come_back_as_put_from_the_buffer_and_from_the_file() -> None:
    """Random records put, read and freed in random order against a dict; with a
    100-byte write buffer most reads go to the file, some to the buffer."""
    rng = random.Random(7)
    store = SpillFile(block=100)
    model: dict[int, bytes] = {}
    from_file = 0
    for _ in range(5000):
        if model and rng.random() < 0.45:
            handle = rng.choice(list(model))
            from_file += (handle >> 32) < store.size - len(store._buffer)
            assert store.get(handle) == model[handle]
            if rng.random() < 0.7:
                store.free(handle)
                del model[handle]
        else:
            record = rng.randbytes(rng.choice([1, 37, 99, 100, 101, 700]))
            handle = store.put(record)
            assert handle not in model
            model[handle] = record
    for handle, record in model.items():
        assert store.get(handle) == record
    assert from_file > 500
    store.close()


def test_the_file_is_emptied_once_no_record_is_left() -> None:
    store = SpillFile(block=10)
    handles = [store.put(bytes([i]) * 50) for i in range(20)]
    assert os.fstat(store._fd).st_size >= 950
    for handle in handles[:-1]:
        store.free(handle)
    assert store.get(handles[-1]) == bytes([19]) * 50  # the others' space is still there
    store.free(handles[-1])
    assert store.size == 0 and os.fstat(store._fd).st_size == 0
    handle = store.put(b"again")
    assert handle >> 32 == 0 and store.get(handle) == b"again"
    store.close()


def test_nothing_is_left_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file has no name from the start: nothing to remove, even after a crash."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = SpillFile(block=10)
    store.put(b"x" * 100)
    assert list(tmp_path.iterdir()) == []
    store.close()
    store.close()  # twice is harmless
