"""`tcp follow` and `tcp ladder` hold what they show, not the capture: a large stream's
Follow chunks and ladder records go through a temporary file, and the other streams'
results are dropped as they finish. Peak memory is asserted loosely here (the benchmarks
measure it); the bytes are checked against the data the capture was written from."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import hostile
from tests.conftest import REPO_DIR
from tests.support.peak import run_with_peak

SERVER = hostile.SERVER4
CLIENT = hostile.CLIENT4
SEGMENT = 1400


def _stream_frames(data: bytes, extra_streams: int, segment: int = SEGMENT
                   ) -> Iterator[bytes]:
    """`extra_streams` unanswered SYNs (each from its own address), then one connection
    carrying `data` from client to server in `segment`-byte segments (the server ACKs
    every other one)."""
    tcp4, syn, ack, psh, fin = hostile.tcp4, hostile.SYN, hostile.ACK, hostile.PSH, hostile.FIN
    for i in range(extra_streams):
        yield tcp4(1024 + i % 60000, 80, i, 0, syn, src=bytes([10, 1, i >> 8 & 255, i & 255]))
    yield from hostile.handshake(40000, 80, 1000, 5000)
    seq = 1001
    for index, start in enumerate(range(0, len(data), segment)):
        piece = data[start:start + segment]
        yield tcp4(40000, 80, seq, 5001, ack | psh, piece)
        seq += len(piece)
        if index % 2:
            yield tcp4(80, 40000, 5001, seq, ack, src=SERVER, dst=CLIENT)
    yield tcp4(40000, 80, seq, 5001, fin | ack)
    yield tcp4(80, 40000, 5001, seq + 1, fin | ack, src=SERVER, dst=CLIENT)
    yield tcp4(40000, 80, seq + 1, 5002, ack)


def _write_stream(path: Path, data: bytes, extra_streams: int, segment: int = SEGMENT) -> None:
    hostile.write_frames(path, _stream_frames(data, extra_streams, segment))


def _run(*args: str, stdout: Path, **env: str) -> tuple[int, float]:
    """(exit status, peak RSS in MiB) of one CLI run, its stdout into a file."""
    with stdout.open("wb") as out:
        done, peak, _ = run_with_peak([sys.executable, "-m", "analyzer", *args],
                                      stdout.with_suffix(".peak"), stdout=out,
                                      stderr=subprocess.DEVNULL, cwd=REPO_DIR,
                                      env={**os.environ, **env})
    return done.returncode, peak


def test_follow_of_a_large_stream_holds_little_memory(tmp_path: Path) -> None:
    data = random.Random(5).randbytes(64 << 20)
    capture = tmp_path / "big.pcap"
    _write_stream(capture, data, extra_streams=0)
    out = tmp_path / "follow.txt"
    status, peak = _run("tcp", "follow", str(capture), "0", "--format", "raw", stdout=out)
    assert status == 0
    lines = out.read_bytes().split(b"\n")
    client = b"".join(bytes.fromhex(line.decode()) for line in lines[6:-2] if line)
    assert client == data
    assert peak < 100, f"{peak} MiB for a 64 MiB stream"  # held whole: > 200 MiB


def test_one_stream_of_many_holds_what_read_holds(tmp_path: Path) -> None:
    """A port scan's 150k one-packet streams before the wanted one: their results are not
    kept (they were, every one: 1.5 GB for 1M), so the ladder needs about what `read`
    needs for the same capture (which is the tracker's: open streams until they park)."""
    capture = tmp_path / "scan.pcap"
    _write_stream(capture, b"x" * 3000, extra_streams=150_000)
    status, ladder_peak = _run("tcp", "ladder", str(capture), "150000",
                               stdout=tmp_path / "ladder.txt")
    assert status == 0
    text = (tmp_path / "ladder.txt").read_text()
    assert f"{'.'.join(map(str, CLIENT))}:40000" in text and "3000 bytes sent" in text
    status, read_peak = _run("read", str(capture), "--json", stdout=tmp_path / "read.jsonl",
                             ANALYZER_WORKERS="1")
    assert status == 0
    assert ladder_peak < read_peak * 1.2 + 20, (ladder_peak, read_peak)


@pytest.mark.slow
def test_ladder_of_a_long_stream_holds_little_memory(tmp_path: Path) -> None:
    """The ladder's per-packet records go to a temporary file (run/spill.py RecordSpool)
    and are drawn 1000 rows at a time: its peak is about what `read` needs for the same
    capture. (Kept as objects, these 100k records held 52 MiB more: 86 MiB at peak.)"""
    capture = tmp_path / "long.pcap"
    _write_stream(capture, bytes(range(100)) * 66_666, extra_streams=0, segment=100)
    status, ladder_peak = _run("tcp", "ladder", str(capture), "0",
                               stdout=tmp_path / "ladder.txt")
    assert status == 0
    rows = [line for line in (tmp_path / "ladder.txt").read_text().splitlines()
            if "▶" in line or "◀" in line]
    assert len(rows) == 3 + 66_666 + 66_666 // 2 + 3  # handshake, data, ACKs, close
    status, read_peak = _run("read", str(capture), "--json", stdout=tmp_path / "read.jsonl",
                             ANALYZER_WORKERS="1")
    assert status == 0
    assert ladder_peak < read_peak * 1.2 + 20, (ladder_peak, read_peak)
