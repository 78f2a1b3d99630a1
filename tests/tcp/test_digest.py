"""The savable SHA-256 (analyzer/tcp/_sha256.c, digest.py) against hashlib, and parked
streams that keep their hashers as saved state rather than as objects."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

import pytest

from analyzer.tcp import digest, parking
from analyzer.tcp import tracker as tracker_module
from tests.conftest import REPO_DIR, missing_prerequisite
from tests.tcp.test_parking import FIRST, _other_streams, _pkt


def _require_savable() -> None:
    if not digest.SAVABLE:
        missing_prerequisite("analyzer/tcp/_sha256.c is not built (`make native`; needs "
                             "gcc, python3-dev and libssl-dev)")


def test_saved_and_resumed_anywhere_it_gives_hashlib_s_digest() -> None:
    """Random data in random pieces (0 bytes, across and on the 64-byte block edge, a
    memoryview), saved and resumed after each piece: hashlib's digest of the whole."""
    _require_savable()
    rng = random.Random(5)
    for _ in range(200):
        data = rng.randbytes(rng.choice([0, 1, 55, 56, 63, 64, 65, 127, 128, 1400, 70_000]))
        hasher = digest.new_sha256()
        at = 0
        while at < len(data):
            size = rng.choice([0, 1, 63, 64, 65, 500, 1460])
            hasher.update(memoryview(data)[at:at + size])
            at += size
            state = digest.save(hasher)
            assert state is not None and len(state) == 112
            hasher = digest.resume(state)
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
        assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()  # asking ends nothing


def test_a_state_of_the_wrong_size_is_refused() -> None:
    _require_savable()
    for bad in (b"\0", b"\0" * 111, b"\0" * 113):
        with pytest.raises(ValueError, match="112 bytes"):
            digest.resume(bad)


def test_a_parked_stream_keeps_its_hashers_as_state_and_resumes_them() -> None:
    """Parked mid-transfer: no hasher object is held (saving ~0.3 KB each), and the data
    after it is hashed on from where it stopped."""
    _require_savable()
    results: list = []
    tracker = tracker_module.TcpTracker(park_timeout=10.0, on_result=results.append)
    tracker.on_packet(_pkt(0x02, 100, 0, 0.0))
    tracker.on_packet(_pkt(0x12, 500, 101, 0.01, forward=False))
    tracker.on_packet(_pkt(0x10, 101, 501, 0.02))
    tracker.on_packet(_pkt(0x18, 101, 501, 0.03, FIRST))
    tracker.on_packet(_pkt(0x18, 501, 101 + len(FIRST), 0.04, b"ok", forward=False))
    _other_streams(tracker, 30.0)
    record = tracker.parking.get(parking.parked_handle(tracker._parked[_pkt(0, 0, 0, 0).key]))
    assert parking.PARKED.unpack_from(record) == (0, False)  # not a lone packet
    assert not tracker._parked_hashers
    tracker.on_packet(_pkt(0x18, 101 + len(FIRST), 503, 40.0, b"more"))
    tracker.finish()
    (result,) = [r for r in results if r.stream == 0]
    assert result.client.sha256 == hashlib.sha256(FIRST + b"more").hexdigest()
    assert result.server.sha256 == hashlib.sha256(b"ok").hexdigest()


def test_without_the_build_hashlib_hashers_are_parked_as_objects() -> None:
    """ANALYZER_PURE=1 (the sources, no C): the fallback, through the same parking test."""
    probe = ("from analyzer.tcp import digest\n"
             "from tests.tcp import test_parking as t\n"
             "assert not digest.SAVABLE\n"
             "t.test_a_stream_quiet_for_minutes_resumes_with_its_data_and_hash_intact()\n"
             "print('ok')\n")
    env = dict(os.environ, ANALYZER_PURE="1")
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO_DIR,
                         capture_output=True, text=True, timeout=120, check=False)
    assert (out.returncode, out.stdout) == (0, "ok\n"), out.stderr
