"""`tcp follow` and `tcp ladder` hold what they show, not the capture: a large stream's
Follow goes through a temporary file, and the other streams' results are dropped as they
finish. Peak memory is asserted loosely here (the benchmarks measure it); the bytes are
checked against the data the capture was written from."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_DIR
from tests.support.peak import run_with_peak

CLIENT, SERVER = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SEGMENT = 1400


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
           payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0x4000, 64, 6, 0,
                     src, dst)
    return b"\x00\x01\x02\x03\x04\x05\x00\x01\x02\x03\x04\x06\x08\x00" + ip + tcp + payload


def _write_stream(path: Path, data: bytes, extra_streams: int) -> None:
    """A pcap: `extra_streams` unanswered SYNs, then one connection carrying `data` from
    client to server in SEGMENT-byte segments (the server ACKs every other one)."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        clock = [1_000_000_000.0]

        def record(frame: bytes) -> None:
            clock[0] += 1e-5
            seconds = int(clock[0])
            out.write(struct.pack("<IIII", seconds, int((clock[0] - seconds) * 1e6),
                                  len(frame), len(frame)))
            out.write(frame)

        for i in range(extra_streams):
            record(_frame(bytes([10, 1, i >> 8 & 255, i & 255]), SERVER, 1024 + i % 60000,
                          80, i, 0, 0x02))
        record(_frame(CLIENT, SERVER, 40000, 80, 1000, 0, 0x02))
        record(_frame(SERVER, CLIENT, 80, 40000, 5000, 1001, 0x12))
        record(_frame(CLIENT, SERVER, 40000, 80, 1001, 5001, 0x10))
        seq = 1001
        for index, start in enumerate(range(0, len(data), SEGMENT)):
            piece = data[start:start + SEGMENT]
            record(_frame(CLIENT, SERVER, 40000, 80, seq, 5001, 0x18, piece))
            seq += len(piece)
            if index % 2:
                record(_frame(SERVER, CLIENT, 80, 40000, 5001, seq, 0x10))
        record(_frame(CLIENT, SERVER, 40000, 80, seq, 5001, 0x11))
        record(_frame(SERVER, CLIENT, 80, 40000, 5001, seq + 1, 0x11))
        record(_frame(CLIENT, SERVER, 40000, 80, seq + 1, 5002, 0x10))


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
    assert "10.0.0.1:40000" in text and "3000 bytes sent" in text
    status, read_peak = _run("read", str(capture), "--json", stdout=tmp_path / "read.jsonl",
                             ANALYZER_WORKERS="1")
    assert status == 0
    assert ladder_peak < read_peak * 1.2 + 20, (ladder_peak, read_peak)
