"""Mutation-fuzz the analyzer's command line over the sample captures (tests/support/fuzzing.py).

    python scripts/fuzz.py --cases 5000 --seed 7         # cases 0..4999 of run seed 7
    python scripts/fuzz.py --seconds 600                 # as many cases as fit in 10 min
    python scripts/fuzz.py --seed 7 --case 123 --keep /tmp/m   # one case again, every
                                                         # subcommand, the mutant kept

Exits 1 when a case failed (each failure printed with its seeds and mutations), 0 if not.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fuzzing import (  # noqa: E402  (after the path setup above)
    TIME_LIMIT_SECONDS,
    CaseResult,
    run_cases,
    seed_captures,
)

BATCH = 64


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="run seed (default 1)")
    parser.add_argument("--cases", type=int, default=1000, help="cases to run (default 1000)")
    parser.add_argument("--start", type=int, default=0, help="first case index")
    parser.add_argument("--case", type=int, help="run this one case, every subcommand")
    parser.add_argument("--seconds", type=float, help="stop starting cases after this long")
    parser.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    parser.add_argument("--commands", type=int, default=2,
                        help="subcommands per mutant, drawn by its seed (default 2)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_SECONDS)
    parser.add_argument("--keep", type=Path, help="write every mutant into this directory")
    args = parser.parse_args(argv)

    sources = seed_captures()
    if not sources:
        print("fuzz: no captures found in captures/ or ../shared/corpus/", file=sys.stderr)
        return 2
    started = time.monotonic()
    failed: list[CaseResult] = []
    counts = {"cases": 0, "runs": 0}

    def report(result: CaseResult) -> None:
        counts["cases"] += 1
        counts["runs"] += result.runs
        if result.failures:
            failed.append(result)
            print(result.describe(args.seed), flush=True)

    if args.case is not None:
        run_cases(args.seed, [args.case], sources, jobs=1, time_limit=args.time_limit,
                  keep=args.keep, every_command=True, report=report)
    else:
        indices = iter(range(args.start, args.start + args.cases))
        while batch := list(itertools.islice(indices, BATCH)):
            if args.seconds is not None and time.monotonic() - started > args.seconds:
                break
            run_cases(args.seed, batch, sources, jobs=args.jobs,
                      commands_per_case=args.commands, time_limit=args.time_limit,
                      keep=args.keep, report=report)
            print(f"fuzz: {counts['cases']} cases, {counts['runs']} runs, "
                  f"{len(failed)} failed, {time.monotonic() - started:.0f} s", flush=True)
    print(f"fuzz: seed {args.seed}: {counts['cases']} cases ({counts['runs']} analyzer runs) "
          f"over {len(sources)} captures in {time.monotonic() - started:.1f} s; "
          f"{len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
