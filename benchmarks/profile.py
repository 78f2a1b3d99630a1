"""Profile `analyzer read F --json` with py-spy and summarize where the time goes.

py-spy samples the running command from outside (no instrumentation overhead, so the
shares are those of a normal run), worker processes included: shares are of all samples
of all processes. The summary lists the functions with the largest
self and total shares and the hottest source lines, as markdown:

    .venv/bin/python benchmarks/profile.py                  # the cached 1M capture
    .venv/bin/python benchmarks/profile.py --size 100k --rate 500
    .venv/bin/python benchmarks/profile.py --capture F.pcap --top 30
    .venv/bin/python benchmarks/profile.py --raw prof.txt   # summarize an earlier record

Needs py-spy (`pip install py-spy`; root or ptrace permission). The raw samples are kept
in benchmarks/data/profile-<size>.txt (collapsed stacks: feed them to flamegraph.pl or
speedscope for a picture).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(REPO_DIR))

from benchmarks.generate import format_count, parse_count  # noqa: E402
from benchmarks.run import DEFAULT_DATA_DIR, ensure_capture, venv_executable  # noqa: E402


def frame_name(frame: str, with_line: bool) -> str:
    """'func (path/file.py:123)' -> 'func (file path relative to the repo[:line])'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, line = where.rpartition(":")
    if not path:
        path, line = where, ""
    path = path.replace(str(REPO_DIR) + "/", "")
    return f"{name} ({path}:{line})" if with_line and line else f"{name} ({path})"


def summarize(raw: Path, top: int) -> str:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    lines: Counter[str] = Counter()
    samples = 0
    for record in raw.read_text().splitlines():
        stack, _, count_text = record.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [frame for frame in stack.split(";") if frame]
        if not frames:
            continue
        self_time[frame_name(frames[-1], False)] += count
        lines[frame_name(frames[-1], True)] += count
        for name in {frame_name(frame, False) for frame in frames}:
            total_time[name] += count
    if not samples:
        return "no samples\n"

    def table(title: str, counter: Counter[str]) -> list[str]:
        rows = [f"| {title} | share |", "|---|---:|"]
        rows += [f"| `{name}` | {100 * count / samples:.1f}% |"
                 for name, count in counter.most_common(top)]
        return rows + [""]

    out = [f"{samples} samples", ""]
    out += table("self time: function", self_time)
    out += table("total time (self + callees): function", total_time)
    out += table("self time: line", lines)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="py-spy profile of `analyzer read --json`")
    parser.add_argument("--size", type=parse_count, default=parse_count("1M"),
                        help="synthetic capture size (default 1M; generated when missing)")
    parser.add_argument("--capture", type=Path, help="profile this capture instead")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--raw", type=Path, help="only summarize this py-spy raw file")
    parser.add_argument("--analyzer", default=venv_executable("analyzer"))
    args = parser.parse_args(argv)

    if args.raw:
        print(summarize(args.raw, args.top))
        return 0
    py_spy = venv_executable("py-spy")
    if py_spy is None or not shutil.which(py_spy):
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    if args.capture:
        capture, label = args.capture, args.capture.stem
    else:
        capture, _ = ensure_capture(DEFAULT_DATA_DIR, args.size, seed=1)
        label = format_count(args.size)
    raw = DEFAULT_DATA_DIR / f"profile-{label}.txt"
    command = [py_spy, "record", "--subprocesses", "--rate", str(args.rate), "--format", "raw",
               "--output", str(raw), "--", args.analyzer or "analyzer", "read", str(capture),
               "--json"]
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    if result.returncode != 0 or not raw.exists():
        print(f"py-spy failed: {result.stderr.strip()[-300:]}", file=sys.stderr)
        return 1
    print(f"`analyzer read {capture.name} --json`, py-spy at {args.rate} Hz\n")
    print(summarize(raw, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
