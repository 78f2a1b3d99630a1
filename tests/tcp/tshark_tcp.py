"""tshark as the independent oracle for TCP: stream numbers, completeness, Follow output."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

SEPARATOR = "=" * 67


def _run(args: list[str]) -> str:
    done = subprocess.run(["tshark", "-n", *args], capture_output=True, timeout=120,
                          check=True)
    return done.stdout.decode("latin-1")  # no newline translation: Follow keeps CR bytes


class TsharkStreams(NamedTuple):
    frames: dict[int, int]  # frame number -> tcp.stream
    completeness: dict[int, int]  # tcp.stream -> final tcp.completeness (two-pass)


@lru_cache(maxsize=64)
def tshark_streams(path: Path | str) -> TsharkStreams:
    """Per frame, its tcp.stream; per stream, the final completeness (-2: two passes, as
    the single pass lags one packet behind)."""
    out = _run(["-2", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number",
                "-e", "tcp.stream", "-e", "tcp.completeness"])
    frames: dict[int, int] = {}
    completeness: dict[int, int] = {}
    for line in out.splitlines():
        frame, stream, value = line.split("\t")
        frames[int(frame)] = int(stream)
        completeness[int(stream)] = int(value)
    return TsharkStreams(frames, completeness)


@lru_cache(maxsize=512)
def tshark_follow(path: Path | str, stream: int, mode: str) -> str:
    return _run(["-r", str(path), "-q", "-z", f"follow,tcp,{mode},{stream}"])


class FollowRaw(NamedTuple):
    node0: str
    node1: str
    data0: bytes  # everything node 0 sent, chunks joined
    data1: bytes
    chunks: list[tuple[int, bytes]]  # (node, bytes) in output order


def parse_follow_raw(text: str) -> FollowRaw:
    body = text.split(SEPARATOR + "\n")[1]
    lines = body.splitlines()
    node0 = lines[2].removeprefix("Node 0: ")
    node1 = lines[3].removeprefix("Node 1: ")
    chunks = []
    for line in lines[4:]:
        if line.startswith("\t"):
            chunks.append((1, bytes.fromhex(line[1:])))
        elif line:
            chunks.append((0, bytes.fromhex(line)))
    return FollowRaw(node0, node1, b"".join(c for n, c in chunks if n == 0),
                     b"".join(c for n, c in chunks if n == 1), chunks)


def missing_marker(count: int) -> bytes:
    """What tshark 4.0 splices into Follow data for bytes missing in the capture (with a
    trailing NUL): exactly the corruption the product refuses to make."""
    return f"[{count} bytes missing in capture file]".encode() + b"\0"


# Our analysis keys and the tshark fields that flag the same frames.
ANALYSIS_FIELDS = {
    "retransmission": "tcp.analysis.retransmission",
    "fast_retransmission": "tcp.analysis.fast_retransmission",
    "out_of_order": "tcp.analysis.out_of_order",
    "dup_ack": "tcp.analysis.duplicate_ack",
    "zero_window": "tcp.analysis.zero_window",
    "keep_alive": "tcp.analysis.keep_alive",
    "lost_segment": "tcp.analysis.lost_segment",
    "acked_unseen": "tcp.analysis.ack_lost_segment",
}


def tshark_analysis(path: Path | str) -> dict[str, int]:
    """How many frames tshark's expert analysis flags with each of our analysis keys."""
    keys = list(ANALYSIS_FIELDS)
    args = ["-r", str(path), "-Y", "tcp", "-T", "fields"]
    for key in keys:
        args += ["-e", ANALYSIS_FIELDS[key]]
    counts = dict.fromkeys(keys, 0)
    for line in _run(args).splitlines():
        for key, value in zip(keys, line.split("\t"), strict=True):
            if value:
                counts[key] += 1
    return counts
