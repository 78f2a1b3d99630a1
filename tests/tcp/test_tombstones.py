"""The tombstone table (analyzer/tcp/tombstones.py) against a plain dict model of it."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from analyzer.tcp.tombstones import (
    GENERATION_SIZE,
    NONE,
    Tombstones,
    isn_of,
    pack_isns,
)


def _key(i: int) -> bytes:
    """A 12-byte IPv4 flow key, or a 36-byte IPv6 one for every third number."""
    if i % 3 == 0:
        return b"\x20\x01" + i.to_bytes(14, "big") + b"\xfe\x80" + bytes(14) + b"\x00\x50\x1f\x90"
    return b"\x0a\x00" + i.to_bytes(2, "big") + b"\x0a\x01\x00\x01" + \
        (i & 0xFFFF).to_bytes(2, "big") + b"\x00\x50"


def test_isns_round_trip_including_a_silent_direction() -> None:
    for isn0, isn1 in [(0, 0), (0xFFFFFFFF, 7), (-1, 12345), (99, -1), (-1, -1)]:
        packed = pack_isns(isn0, isn1)
        assert (isn_of(packed, 0), isn_of(packed, 1)) == (isn0, isn1)
        table = Tombstones(window=120.0)
        for i in range(GENERATION_SIZE + 1):  # the first entry ends up frozen
            table.add(_key(i), 1000.0, packed if i == 0 else pack_isns(1, 1))
        assert table.find(_key(0), 1000.0) == packed


def test_a_tombstone_lasts_exactly_the_window_after_the_last_packet() -> None:
    for frozen in (False, True):
        table = Tombstones(window=120.0)
        table.add(_key(1), 50.25, pack_isns(10, 20))
        if frozen:
            for i in range(2, GENERATION_SIZE + 1):
                table.add(_key(i), 50.25, pack_isns(1, 1))
        assert table.find(_key(1), 170.25) == pack_isns(10, 20)
        assert table.find(_key(1), 170.250001) == NONE
        assert table.find(_key(999_999), 60.0) == NONE


@pytest.mark.parametrize(("window", "steps"), [(30.0, 60_000), (600.0, 300_000)],
                         ids=["expiring", "many-generations"])
def test_matches_a_dict_model_through_generations_removals_and_reuse(
        window: float, steps: int) -> None:
    """Random adds (a key may come back: a newer stream on the same 4-tuple), removals
    and lookups over many generations, each answer checked against a plain dict that
    keeps every key's newest entry. With the longer window tens of generations are live,
    larger as the table grows (keys repeat across them)."""
    rng = random.Random(5)
    table = Tombstones(window)
    model: dict[bytes, tuple[float, int] | None] = {}  # None: removed
    now = 0.0
    keys = [_key(i) for i in range(20_000)]
    most_frozen = 0
    for step in range(steps):
        now += 0.002
        key = rng.choice(keys)
        action = rng.random()
        if action < 0.5:
            end = now - rng.random() * 5  # retired a little after its last packet
            isns = pack_isns(rng.randrange(-1, 1 << 32), rng.randrange(-1, 1 << 32))
            table.add(key, end, isns)
            model[key] = (end, isns)
        elif action < 0.6:
            if table.find(key, now) != NONE:
                table.remove(key)
                model[key] = None
        else:
            entry = model.get(key)
            expected = NONE if entry is None or now - entry[0] > window else entry[1]
            assert table.find(key, now) == expected, step
        if step % 1000 == 0:
            table.expire(now)
            most_frozen = max(most_frozen, len(table._frozen))
    assert len(table) < 20_000 * window / 30  # whole generations were dropped as they expired
    assert most_frozen < 40


def test_generations_grow_with_the_table() -> None:
    """A scan finishes 100k+ streams within the window: generations of a sixteenth of
    the table keep lookups to tens of Bloom filters, each entry frozen once."""
    table = Tombstones(window=120.0)
    count = 100 * GENERATION_SIZE
    for i in range(count):
        table.add(_key(i % 60_000) + i.to_bytes(4, "big"), 1.0, pack_isns(i, i))
    assert len(table) == count
    assert len(table._frozen) < 60
    assert table.find(_key(5) + (5).to_bytes(4, "big"), 2.0) == pack_isns(5, 5)
    assert table.find(_key(5) + (6).to_bytes(4, "big"), 2.0) == NONE


def test_expire_drops_whole_generations_once_all_of_them_is_past_the_window() -> None:
    table = Tombstones(window=10.0)
    for i in range(3 * GENERATION_SIZE):
        table.add(_key(i), i * 0.001, pack_isns(i, i))
    assert len(table) == 3 * GENERATION_SIZE
    last_of_first = (GENERATION_SIZE - 1) * 0.001
    table.expire(last_of_first + 10.0)
    assert len(table) == 3 * GENERATION_SIZE  # its newest entry is still inside
    table.expire(last_of_first + 10.001)
    assert len(table) == 2 * GENERATION_SIZE
    assert table.find(_key(GENERATION_SIZE), GENERATION_SIZE * 0.001 + 10.0) != NONE


def test_an_entry_costs_under_40_bytes_once_frozen() -> None:
    """The point of the table: a dict of bytes keys to ints costs ~170 bytes an entry
    (frozen: 32 bytes of arrays and 1-2 of Bloom filter)."""
    keys = [_key(i) for i in range(12 * GENERATION_SIZE)]  # made before measuring
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table = Tombstones(window=120.0)
    for i, key in enumerate(keys):
        table.add(key, 1.0 + i * 1e-3, pack_isns(i, 2 * i))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(table) == len(keys)
    assert used / len(keys) < 40
