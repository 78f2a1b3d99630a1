"""The two-process `read --json` (analyzer/run/parallel.py) must print exactly what the
one-process pipeline prints: same streams, same numbers (Wireshark's tcp.stream, which
the one-process path is checked against tshark for), same hashes, same summary."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analyzer.decode.partition import fast_owner, owner_of_packet
from analyzer.errors import InputError
from analyzer.pipeline import analyze_file, iter_packets
from analyzer.report.jsonl import write_analysis
from analyzer.run import parallel
from analyzer.run.parallel import analyze_file_split
from analyzer.run.results import write_split_analysis
from analyzer.tcp.tracker import TcpTracker
from tests.conftest import CAPTURES_DIR, CORPUS_DIR, synthetic_capture


def one_process_lines(path: Path, **options: object) -> list[str]:
    out = io.StringIO()
    write_analysis(analyze_file(path, tcp_tracker=TcpTracker(), **options), out)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def two_process_lines(path: Path, **options: object) -> list[str]:
    split = analyze_file_split(path, **options)  # type: ignore[arg-type]
    assert split is not None, "the second process failed"
    out = io.StringIO()
    write_split_analysis(split, out)
    return out.getvalue().splitlines()


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_capture(tmp_path_factory.mktemp("synthetic"), 30000, 11, 400)


def test_busy_capture_same_output(busy_capture: Path) -> None:
    single = one_process_lines(busy_capture)
    assert sum('"type": "tcp_stream"' in line for line in single) > 500
    assert two_process_lines(busy_capture) == single


@pytest.mark.parametrize("compress", [False, True], ids=["pcap", "gzip"])
@pytest.mark.parametrize("redirected", [False, True], ids=["pipe", "redirected-file"])
def test_standard_input_in_two_processes_same_output(busy_capture: Path, compress: bool,
                                                      redirected: bool, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`tcpdump -w - | analyzer read -`: the parent copies the pipe to worker 1, which
    reports (a None here would mean it failed), and the lines are the file's. `analyzer
    read - < capture.pcap`: a plain file, which both processes read on their own."""
    command = ["gzip", "-c", str(busy_capture)] if compress else ["cat", str(busy_capture)]
    source = subprocess.Popen(command, stdout=subprocess.PIPE)
    stdin = source.stdout
    if redirected:
        copy = tmp_path / "input"
        copy.write_bytes(source.communicate(timeout=60)[0])
        stdin = copy.open("rb")
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        piped = [json.loads(line) for line in two_process_lines("-")]  # type: ignore[arg-type]
    finally:
        stdin.close()  # type: ignore[union-attr]
        source.wait(10)
    single = [json.loads(line) for line in one_process_lines(busy_capture)]
    assert piped[-1].pop("file") == "-" and piped[-1].pop("compressed") is compress
    single[-1].pop("file")
    single[-1].pop("compressed")
    assert piped == single
    assert _no_child_left()


def test_filter_same_output(busy_capture: Path) -> None:
    options = {"bpf": "tcp or udp port 69 or ip6"}
    assert two_process_lines(busy_capture, **options) == \
        one_process_lines(busy_capture, **options)


def real_captures() -> list[Path]:
    paths = sorted(CAPTURES_DIR.glob("*.pcap*"))
    if CORPUS_DIR.is_dir():
        paths += sorted(p for p in CORPUS_DIR.iterdir() if ".pcap" in p.name)
    return paths


@pytest.mark.parametrize("path", real_captures(), ids=lambda p: p.name)
def test_real_captures_same_output(path: Path) -> None:
    assert two_process_lines(path) == one_process_lines(path)


def test_both_workers_get_connections_and_the_hash_is_symmetric(busy_capture: Path) -> None:
    owners = {0: 0, 1: 0}
    for pkt in iter_packets(busy_capture):
        if pkt.proto != 6:
            continue
        owner = owner_of_packet(pkt)
        owners[owner] += 1
        mirrored = type(pkt)(pkt.frame, pkt.ts, 0, pkt.version, pkt.dst, pkt.src, 6,
                             pkt.dport, pkt.sport, b"", 0)
        assert owner_of_packet(mirrored) == owner
    assert min(owners.values()) > 0.3 * sum(owners.values())


def test_fast_owner_reads_the_same_hash_from_bytes(busy_capture: Path) -> None:
    from analyzer.capture import open_capture
    from analyzer.decode import Decoder

    checked = ipv6 = 0
    for path in [busy_capture, *real_captures()]:
        decoder = Decoder()
        with open_capture(path) as cap:
            for number, frame in enumerate(cap, 1):
                owner = fast_owner(frame.linktype, frame.data)
                pkt = decoder.decode(frame, number)
                if owner >= 0:
                    assert pkt is not None and pkt.proto == 6
                    assert owner == owner_of_packet(pkt)
                    checked += 1
                    ipv6 += pkt.version == 6
    assert checked > 10_000 and ipv6 > 1_000


def _no_child_left() -> bool:
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_truncated_capture_same_output_up_to_the_damage(busy_capture: Path,
                                                        tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = busy_capture.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3 + 7])  # mid-record
    single = one_process_lines(cut)
    assert "analysis stops there" in json.loads(single[-1])["warnings"][0]
    assert json.loads(single[-1])["packets"] > 15_000
    assert two_process_lines(cut) == single
    assert _no_child_left()


def test_an_error_stops_the_second_process_and_leaves_no_spill_file(
        busy_capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where spill files go
    # The parent fails at once, so its SIGTERM lands anywhere in worker 1's start and
    # failure (on the same bad filter), including while it makes or deletes a temporary
    # file: a spill file or the filter compiler's (a CI run once left two behind).
    for _ in range(20):
        with pytest.raises(InputError):
            analyze_file_split(busy_capture, bpf="tcp port")  # not a filter
        assert _no_child_left()
        assert not list(tmp_path.iterdir())


def test_an_error_after_the_second_process_finished_leaves_no_spill_file(
        busy_capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    started = _remember_worker_pids(monkeypatch)

    def fail_once_worker_one_is_done(*args: object, **kwargs: object) -> None:
        stat = Path(f"/proc/{started[0]}/stat")
        deadline = time.monotonic() + 60
        while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # exited, not reaped
            assert time.monotonic() < deadline, "worker 1 did not finish"
            time.sleep(0.01)
        raise InputError("late failure")

    monkeypatch.setattr(parallel, "analyze_file", fail_once_worker_one_is_done)
    with pytest.raises(InputError, match="late failure"):
        analyze_file_split(busy_capture)
    assert _no_child_left()
    assert not list(tmp_path.iterdir())


# Worker 1 is held inside a __del__ when the parent fails (after a Ctrl-C, which reaches
# both processes, when argv[3] says so). Run as a program of its own, so that its
# stderr is what a user's terminal gets.
_STOPPED_INSIDE_A_DEL = """
import os, signal, sys, time
from pathlib import Path
from analyzer.run import parallel
from analyzer.errors import InputError

capture, inside, first = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
started = []
real_fork = parallel._fork_worker_one

def fork_and_remember(*args):
    pid, read_fd, tee_fd = real_fork(*args)
    started.append(pid)
    return pid, read_fd, tee_fd

class Lingering:
    def __del__(self):
        inside.touch()
        time.sleep(30)

def worker_one_in_a_del(*args):
    Lingering()

def fail_once_worker_one_is_inside(*args, **kwargs):
    while not inside.exists():
        time.sleep(0.01)
    if first:
        os.kill(started[0], first)
        time.sleep(0.2)
    raise InputError("failure")

parallel._fork_worker_one = fork_and_remember
parallel.track_second_half = worker_one_in_a_del
parallel.analyze_file = fail_once_worker_one_is_inside
try:
    parallel.analyze_file_split(capture)
except InputError:
    print("failed as it should", file=sys.stderr)
"""


@pytest.mark.parametrize("first", [0, signal.SIGINT], ids=["error", "ctrl-c-then-error"])
def test_the_second_process_stops_without_a_word_wherever_it_is(
        busy_capture: Path, tmp_path: Path, first: int) -> None:
    # A Python-level handler's exception raised inside a __del__ is printed by the
    # interpreter ("Exception ignored in ..."): a traceback after the one-line error,
    # seen in 1 of 300 failing calls (in subprocess.Popen.__del__).
    inside = tmp_path / "inside-del"
    done = subprocess.run(
        [sys.executable, "-c", _STOPPED_INSIDE_A_DEL, str(busy_capture), str(inside),
         str(int(first))], capture_output=True, text=True, timeout=25)
    assert inside.exists()
    assert done.stderr == "failed as it should\n"
    assert done.returncode == 0


def _remember_worker_pids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    started: list[int] = []
    real_fork = parallel._fork_worker_one

    def fork_and_remember(path: str, bpf: str | None, workdir: str) -> tuple[int, int, int | None]:
        pid, read_fd, tee_fd = real_fork(path, bpf, workdir)
        started.append(pid)
        return pid, read_fd, tee_fd

    monkeypatch.setattr(parallel, "_fork_worker_one", fork_and_remember)
    return started
