"""Benchmark tooling: a synthetic capture generator (`generate`) and a runner (`run`).

Not part of the installed package; see benchmarks/README.md and docs/performance.md.
"""
