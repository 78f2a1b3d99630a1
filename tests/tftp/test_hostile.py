"""Hostile TFTP input: a request flood (a port-69 scan) costs little and expires.

Expected values come from construction: the generator knows how many requests it wrote
and from which endpoints; RFC 1350 says what an unanswered request is (a transfer nobody
answered). Memory is the child process's own peak RSS (wait4), time is wall time against
the benchmark's ordinary capture of the same packet count, asserted loosely (the machine
is shared) while the benchmark records the numbers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer.tftp.tracker import TftpTracker
from benchmarks import hostile_tftp
from benchmarks.generate import generate
from tests.tftp import craft
from tests.tftp.craft import Capture, raw_packets

ANALYZER = [sys.executable, "-m", "analyzer"]
FLOOD = 100_000
MAX_PEAK_MIB = 100


def run_measured(*args: str, out: Path) -> tuple[int, float, float]:
    """(exit status, wall seconds, peak RSS in MiB) of `analyzer ARGS`, stdout to `out`."""
    start = time.perf_counter()
    with out.open("wb") as stdout:
        proc = subprocess.Popen([*ANALYZER, *args], stdout=stdout, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the max
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.stderr is not None
    proc.stderr.close()
    return proc.returncode, elapsed, usage.ru_maxrss / 1024


@pytest.fixture(scope="module")
def flood_captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("flood")
    flood = folder / "flood.pcap"
    hostile_tftp.write(flood, hostile_tftp.flood(FLOOD), FLOOD, seconds=10.0)
    ordinary = folder / "ordinary.pcap"
    generate(ordinary, FLOOD, seed=1)
    return flood, ordinary


@pytest.mark.slow
def test_request_flood_costs_little_in_read_json(flood_captures, tmp_path) -> None:
    flood, ordinary = flood_captures
    status, base_time, _ = run_measured("read", str(ordinary), "--json",
                                        out=tmp_path / "ordinary.json")
    assert status == 0
    status, elapsed, peak = run_measured("read", str(flood), "--json",
                                         out=tmp_path / "flood.json")
    assert status == 0
    assert peak <= MAX_PEAK_MIB, f"peak {peak:.0f} MiB"
    assert elapsed <= 3 * base_time + 2, f"{elapsed:.1f} s against {base_time:.1f} s"
    # Every request is still reported, as the unanswered transfer it is.
    lines = [json.loads(line) for line in (tmp_path / "flood.json").read_text().splitlines()]
    transfers = [line for line in lines if line["type"] == "tftp_transfer"]
    assert len(transfers) == FLOOD
    expected = [hostile_tftp.client_endpoint(i) for i in (0, FLOOD // 2, FLOOD - 1)]
    for index, (address, port) in zip((0, FLOOD // 2, FLOOD - 1), expected, strict=True):
        transfer = transfers[index]
        assert transfer["client"] == f"{socket.inet_ntoa(address)}:{port}"
        assert transfer["server"] == "10.0.0.1:69"
        assert (transfer["filename"], transfer["status"], transfer["bytes"]) == \
            ("pxelinux.0", "incomplete", 0)


@pytest.mark.slow
def test_request_flood_table_shows_a_bounded_choice(flood_captures, tmp_path) -> None:
    flood, ordinary = flood_captures
    status, base_time, _ = run_measured("read", str(ordinary), "--json",
                                        out=tmp_path / "ordinary.json")
    status, elapsed, peak = run_measured("read", str(flood), out=tmp_path / "flood.txt")
    assert status == 0
    assert peak <= MAX_PEAK_MIB, f"peak {peak:.0f} MiB"
    # (the old table of every transfer took minutes: any bound far below that will do)
    assert elapsed <= 4 * base_time + 3, f"{elapsed:.1f} s against {base_time:.1f} s"
    text = (tmp_path / "flood.txt").read_text()
    assert f"TFTP transfers ({FLOOD})" in text
    assert f"showing 300 of {FLOOD:,} TFTP transfers" in text


def test_unanswered_requests_expire_while_the_capture_goes_on() -> None:
    """100 requests a second for 200 s: only the last half minute's are held."""
    rate, seconds = 100, 200
    settled = []
    tracker = TftpTracker(on_result=settled.append)
    most = 0
    requests = ((hostile_tftp.client_endpoint(i), ("10.0.0.1", 69),
                 hostile_tftp.rrq(b"scan")) for i in range(rate * seconds))
    exchange = (((socket.inet_ntoa(a), p), dst, payload) for (a, p), dst, payload in requests)
    for pkt in raw_packets(exchange, step=1 / rate):
        tracker.on_packet(pkt)
        most = max(most, tracker.live())
    # request_timeout (30 s) plus the sweep interval (10 s), and a second's slack
    assert most <= rate * (30 + 10 + 1), most
    assert len(settled) >= rate * (seconds - 41)
    tracker.finish()
    assert sorted(t.number for t in settled) == list(range(1, rate * seconds + 1))
    assert all(t.status == "incomplete" and t.server_port is None for t in settled)


CLIENT = ("10.0.0.2", 40001)
LISTEN = ("10.0.0.1", 69)
TID = ("10.0.0.1", 50001)


def test_a_request_resent_many_times_counts_every_copy(tmp_path) -> None:
    """More copies than a held request keeps: each still counts (RFC 1350: the client
    resends its request until answered)."""
    cap = Capture()
    for _ in range(12):
        cap.udp(CLIENT, LISTEN, craft.rrq("boot.img"), after=1.0)
    cap.udp(TID, CLIENT, craft.data(1, b"tiny"))
    cap.udp(CLIENT, TID, craft.ack(1))
    (transfer,) = cap.analyze(tmp_path).tftp.results()
    assert transfer.requests == 12
    assert transfer.packets == 14
    assert transfer.status == "complete"
    codes = {f.code: f for f in transfer.findings}
    assert "duplicate-request" in codes, codes
    assert "11" in codes["duplicate-request"].message, codes["duplicate-request"].message


def test_closed_port_answers_are_kept_with_a_held_request(tmp_path) -> None:
    """A scan of a closed port 69: each request gets an ICMP port unreachable."""
    cap = Capture()
    frames = []
    for port in range(41000, 41005):
        frames.append(cap.udp(("10.0.0.2", port), LISTEN, craft.rrq("x")))
        cap.port_unreachable(frames[-1])
    results = cap.analyze(tmp_path).tftp.results()
    assert [t.client_port for t in results] == list(range(41000, 41005))
    for transfer in results:
        (finding,) = [f for f in transfer.findings if f.code == "icmp-unreachable"]
        assert "no TFTP server at 10.0.0.1:69" in finding.message


def test_an_answer_after_the_request_timeout_joins_nothing(tmp_path) -> None:
    """The client gave up long before (tftp-hpa: 25 s): a DATA 40 s after the request,
    once another request has swept the old ones, is no answer to it."""
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("late"))
    cap.udp(("10.0.0.3", 40002), LISTEN, craft.rrq("other"), after=40.0)
    cap.udp(TID, CLIENT, craft.data(1, b"late data"), after=0.1)
    results = cap.analyze(tmp_path).tftp.results()
    assert [(t.request.filename, t.blocks, t.server_port) for t in results] == \
        [("late", 0, None), ("other", 0, None)]


@pytest.mark.root
def test_sniff_reports_every_request_of_a_flood(tmp_path) -> None:
    """`sniff` on lo while 1,000 RRQs from distinct ports go to a closed port 69 on
    127.0.0.77: the JSON report lists each, the table shows at most 300."""
    from tests.cli.test_sniff import Sniffer
    from tests.conftest import require_root

    require_root()
    count = 1000
    reports = {}
    for mode in ("--json", "--no-live"):
        sniffer = Sniffer("-i", "lo", "-f", "udp dst port 69 and dst host 127.0.0.77", mode)
        try:
            sniffer.wait_ready()
            sockets = []  # all open till the end: distinct ports, as a scan's
            try:
                for _ in range(count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sockets.append(sock)
                    sock.bind(("127.0.0.1", 0))
                    sock.sendto(hostile_tftp.rrq(b"scan.bin"), ("127.0.0.77", 69))
                    time.sleep(0.001)  # paced: this is about the tracker, not capture loss
                sent = [sock.getsockname()[1] for sock in sockets]
            finally:
                for sock in sockets:
                    sock.close()
            time.sleep(0.5)
            sniffer.proc.send_signal(signal.SIGINT)
            assert sniffer.communicate() == 0, sniffer.stderr
        finally:
            sniffer.stop()
        reports[mode] = (sniffer.stdout, sent)
    stdout, sent = reports["--json"]
    transfers = [o for o in map(json.loads, stdout.splitlines()) if o["type"] == "tftp_transfer"]
    assert [t["client"] for t in transfers] == [f"127.0.0.1:{port}" for port in sent]
    assert all(t["status"] == "incomplete" and t["filename"] == "scan.bin" for t in transfers)
    text = reports["--no-live"][0]
    assert f"showing 300 of {count:,} TFTP transfers" in text
