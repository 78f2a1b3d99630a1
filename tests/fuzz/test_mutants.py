"""Seeded mutation fuzzing of every subcommand that reads a capture (tests/support/fuzzing.py).

A bounded, fixed-seed share of what `make fuzz` runs for as long as asked: the same cases
every run, so a failure here reproduces with the command it prints. A case fails on a
traceback, an exit status other than 0/1/2, a run over 10 s, or a file written outside
the output directory the command was given.
"""

from __future__ import annotations

import os

import pytest

from tests.support.fuzzing import run_cases, seed_captures

RUN_SEED = 20261207
# ~0.4 s of two analyzer runs a case, two cases at a time: ~40-60 s on two cores.
CASES = int(os.environ.get("FUZZ_TEST_CASES", "200"))
CHUNKS = 4

pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_mutants_never_crash(chunk: int) -> None:
    sources = seed_captures()
    assert sources, "no captures to mutate"
    indices = range(chunk * CASES // CHUNKS, (chunk + 1) * CASES // CHUNKS)
    results = run_cases(RUN_SEED, indices, sources, jobs=2)
    assert sum(result.runs for result in results) == 2 * len(indices)
    failed = [result.describe(RUN_SEED) for result in results if result.failures]
    assert not failed, f"{len(failed)} of {len(results)} mutants failed:\n" + "\n".join(failed)


def test_same_seed_same_mutant() -> None:
    import random

    from tests.support.fuzzing import mutate

    original = seed_captures()[0].read_bytes()
    first = mutate(original, random.Random(5))
    assert first == mutate(original, random.Random(5))
    assert first[0] != original or not first[1]


def test_layout_finds_every_layer(captures_dir) -> None:
    from tests.support.fuzzing import layout_of

    names = {item.name for item in layout_of(
        (captures_dir / "tour.pcapng").read_bytes()).fields}
    for expected in ("pcapng.block_length", "pcapng.epb.caplen", "pcapng.idb.linktype",
                     "ipv4.total_length", "tcp.data_offset", "udp.length", "tftp.opcode"):
        assert expected in names
    pcap_names = {item.name for item in layout_of(
        (captures_dir / "http-fetch.pcap").read_bytes()).fields}
    assert {"pcap.caplen", "pcap.wirelen", "tcp.flags"} <= pcap_names


def test_a_file_outside_the_output_dir_fails_the_case(tmp_path, captures_dir) -> None:
    """The check itself: `read --extract` into a folder other than `out` is caught."""
    from tests.support.fuzzing import analyzer_env, run_command

    capture = captures_dir / "tftp-hpa-download.pcapng"
    assert run_command(["read", str(capture), "--extract", "out"], tmp_path, 60,
                       analyzer_env()) is None
    problem = run_command(["read", str(capture), "--extract", "elsewhere"], tmp_path, 60,
                          analyzer_env())
    assert problem is not None and "outside the output directory" in problem
