"""Peak memory of a command a test runs, measured honestly.

A process forked from pytest counts pytest's own pages in its peak RSS until it execs
(the kernel carries the old image's high-water mark over), so `wait4` from the test
process reports pytest's size once that has grown (400 MiB late in a suite run). Here a
small fresh Python starts the command and reads RUSAGE_CHILDREN after it: the peak of
the command and of the workers it forks and waits for (what `read` does with two
processes), with only that small wrapper's pages (~10 MiB) counted at the fork.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# argv[1]: where to write [peak MiB, wall seconds]; the command's stdout and stderr are
# the wrapper's own, so a test redirects them as for the command itself.
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.monotonic()
code = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
open(sys.argv[1], "w").write(json.dumps([peak, time.monotonic() - start]))
sys.exit(code)
"""


def run_with_peak(argv: list[str], measures: Path, *, stdout: int | object = subprocess.PIPE,
                  stderr: int | object = subprocess.PIPE, timeout: float = 600,
                  **options: object) -> tuple[subprocess.CompletedProcess[bytes], float, float]:
    """(result, peak RSS in MiB, wall seconds) of `argv`; `measures` is a scratch file.
    `stdout`/`stderr` as for subprocess.run (a file object, PIPE, DEVNULL)."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, str(measures), *argv],
                          stdout=stdout, stderr=stderr, timeout=timeout, check=False,
                          **options)  # type: ignore[call-overload]
    peak, seconds = json.loads(measures.read_text())
    return done, float(peak), float(seconds)
