"""Hostile TFTP input: a request flood (a port-69 scan) costs little and expires.

Expected values come from construction: the generator knows how many requests it wrote
and from which endpoints; RFC 1350 says what an unanswered request is (a transfer nobody
answered). Memory is the command's own peak RSS (tests/support/peak.py), time is wall time against
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
from tests.cli.test_sniff import Sniffer
from tests.conftest import require_root
from tests.support.peak import run_with_peak
from tests.tftp import craft
from tests.tftp.craft import Capture, raw_packets
from tests.tftp.test_tracker import content_of, lockstep_rrq

ANALYZER = [sys.executable, "-m", "analyzer"]
FLOOD = 100_000
MAX_PEAK_MIB = 100


def run_measured(*args: str, out: Path) -> tuple[int, float, float]:
    """(exit status, wall seconds, peak RSS in MiB) of `analyzer ARGS`, stdout to `out`
    (tests/support/peak.py: not a child of this large test process's pages)."""
    with out.open("wb") as stdout:
        done, peak, seconds = run_with_peak([*ANALYZER, *args], out.with_suffix(".peak"),
                                            stdout=stdout, stderr=subprocess.DEVNULL)
    return done.returncode, seconds, peak


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
    transfers = {}
    count = 0
    with (tmp_path / "flood.json").open() as lines:
        for line in lines:
            if '"tftp_transfer"' in line:
                if count in (0, FLOOD // 2, FLOOD - 1):
                    transfers[count] = json.loads(line)
                count += 1
    assert count == FLOOD
    for index, transfer in transfers.items():
        address, port = hostile_tftp.client_endpoint(index)
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


@pytest.mark.slow
def test_request_flood_tftp_extract_is_bounded(flood_captures, tmp_path) -> None:
    """`tftp extract` kept every transfer and tabled each (91 s, 652 MB): now the table
    shows 300, and --json lists every one from a spill file."""
    flood, ordinary = flood_captures
    status, base_time, _ = run_measured("read", str(ordinary), "--json",
                                        out=tmp_path / "ordinary.json")
    for args, out in ((("-o", str(tmp_path / "a")), "table.txt"),
                      (("-o", str(tmp_path / "b"), "--json"), "lines.json")):
        status, elapsed, peak = run_measured("tftp", "extract", str(flood), *args,
                                             out=tmp_path / out)
        assert status == 0
        assert peak <= MAX_PEAK_MIB, f"peak {peak:.0f} MiB"
        assert elapsed <= 4 * base_time + 3, f"{elapsed:.1f} s against {base_time:.1f} s"
    assert f"showing 300 of {FLOOD:,} transfers" in (tmp_path / "table.txt").read_text()
    with (tmp_path / "lines.json").open() as lines:
        assert sum(1 for line in lines if '"tftp_transfer"' in line) == FLOOD
    assert list((tmp_path / "a").iterdir()) == []  # no DATA, no file


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


# -- holes that would cost gigabytes --------------------------------------------------

MIB = 1 << 20
FILL_LIMIT = 16 * MIB  # docs/tftp.md: holes cost at most 16 MiB of zeros per file
HOST, SERVER_HOST = bytes((10, 0, 0, 2)), bytes((10, 0, 0, 1))


def hostile_transfer(path: Path, exchange: list[tuple[bool, bytes]], snaplen: int = 65535
                     ) -> Path:
    """A pcap of one transfer: (from the client?, TFTP payload) in order; the RRQ goes
    to port 69, everything else between 10.0.0.2:40001 and the server's TID 50001."""
    frames = []
    for index, (from_client, payload) in enumerate(exchange):
        if index == 0:
            frames.append(hostile_tftp.udp_frame(HOST, 40001, SERVER_HOST, 69, payload))
        elif from_client:
            frames.append(hostile_tftp.udp_frame(HOST, 40001, SERVER_HOST, 50001, payload))
        else:
            frames.append(hostile_tftp.udp_frame(SERVER_HOST, 50001, HOST, 40001, payload))
    hostile_tftp.write(path, enumerate(frames), len(frames), seconds=1.0, snaplen=snaplen)
    return path


def run_bounded(*args: str) -> subprocess.CompletedProcess[str]:
    """`analyzer ARGS` unable to write a file past 64 MiB or to take 1 GiB of memory (the
    old code zero-filled gigabytes), within a minute."""
    import resource

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * MIB, 64 * MIB))
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run([*ANALYZER, *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=limits)


def data(block: int, chunk: bytes) -> bytes:
    return craft.raw_data(block, chunk)


def test_block_numbers_that_jump_end_the_file_at_the_hole(tmp_path) -> None:
    """DATA 1, then blocks 30001, 60001, 90001 (each acknowledged): the first hole,
    29,999 blocks of 512 bytes, is within 16 MiB and zero-filled; the second would take
    the file past it, so the file ends where that hole starts."""
    exchange = [(True, hostile_tftp.rrq(b"jumps.bin")), (False, data(1, b"a" * 512)),
                (True, craft.raw_ack(1))]
    for block in (30001, 60001, 90001):
        exchange += [(False, data(block, b"b" * 512)), (True, craft.raw_ack(block))]
    capture = hostile_transfer(tmp_path / "jumps.pcap", exchange)
    out = tmp_path / "out"
    result = run_bounded("tftp", "extract", str(capture), "-o", str(out))
    assert result.returncode == 0, result.stderr
    first_hole = 29_999 * 512
    assert first_hole <= FILL_LIMIT < 2 * first_hole
    size = 512 + first_hole + 512  # block 1, the zeros, block 30001; then the cut
    partial = out / "jumps.bin.partial"
    assert partial.stat().st_size == size
    content = partial.read_bytes()
    assert content == b"a" * 512 + bytes(first_hole) + b"b" * 512
    assert f"ends at byte {size:,}" in result.stderr and "30002-60000" in result.stderr
    gap_map = json.loads((out / "jumps.bin.partial.json").read_text())
    assert [(g["first_block"], g["offset"]) for g in gap_map["missing"]][:2] == \
        [(2, 512), (30002, size)]
    # read --extract and --json: the same file, bytes as written, the cut as a finding
    again = tmp_path / "again"
    result = run_bounded("read", str(capture), "--json", "--extract", str(again))
    assert result.returncode == 0, result.stderr
    (transfer,) = [json.loads(line) for line in result.stdout.splitlines()
                   if '"tftp_transfer"' in line]
    assert transfer["bytes"] == size
    assert (again / "jumps.bin.partial").read_bytes() == content
    assert "file-cut" in {f["code"] for f in transfer["findings"]}


def test_a_huge_oack_blksize_never_allocates_it(tmp_path) -> None:
    """An OACK blksize of 2^32-1 and block 1 missing: the hole would be 4 GiB of zeros."""
    huge = str(2**32 - 1)
    exchange = [(True, hostile_tftp.rrq(b"huge.bin") + b"blksize\0" + huge.encode() + b"\0"),
                (False, b"\0\x06blksize\0" + huge.encode() + b"\0"),
                (True, craft.raw_ack(0)), (False, data(2, b"tail")), (True, craft.raw_ack(2))]
    capture = hostile_transfer(tmp_path / "huge.pcap", exchange)
    out = tmp_path / "out"
    result = run_bounded("tftp", "extract", str(capture), "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    (transfer,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert transfer["blksize"] == 2**32 - 1
    assert transfer["bytes"] == 0  # the file ends where block 1 (missing) starts
    assert (out / "huge.bin.partial").stat().st_size == 0
    assert "file-cut" in {f["code"] for f in transfer["findings"]}


def test_data_claiming_a_terabyte_file(tmp_path) -> None:
    """blksize 65464 and block numbers that run 32,000 ahead at a time, past the 16-bit
    wrap, up to 2^24 blocks (a 1 TiB file), each DATA cut to 120 bytes by the snaplen:
    the file is block 1 (the capture's bytes, then zeros for what the snaplen cut),
    the rest is counted, not written."""
    blksize = 65464
    exchange = [(True, hostile_tftp.rrq(b"tera.bin") + b"blksize\x0065464\x00"),
                (False, b"\0\x06blksize\x0065464\x00"), (True, craft.raw_ack(0))]
    block = 1
    while block < 1 << 24:
        exchange += [(False, data(block, bytes([block % 251]) * blksize)),
                     (True, craft.raw_ack(block))]
        block += 32_000
    capture = hostile_transfer(tmp_path / "tera.pcap", exchange, snaplen=120)
    assert capture.stat().st_size < 200_000
    out = tmp_path / "out"
    started = time.perf_counter()
    result = run_bounded("tftp", "extract", str(capture), "-o", str(out), "--json")
    assert time.perf_counter() - started < 30
    assert result.returncode == 0, result.stderr
    (transfer,) = [json.loads(line) for line in result.stdout.splitlines()]
    kept = 120 - 14 - 20 - 8 - 4  # the snaplen less Ethernet, IPv4, UDP, TFTP headers
    assert transfer["bytes"] == blksize
    assert (out / "tera.bin.partial").read_bytes() == b"\x01" * kept + bytes(blksize - kept)
    assert transfer["missing_blocks"][0] == {"first": 2, "last": 32000}
    assert "file-cut" in {f["code"] for f in transfer["findings"]}


# -- a full disk ------------------------------------------------------------------------

@pytest.mark.root
@pytest.mark.parametrize("command", [("tftp", "extract", "-o"), ("read", "--json", "--extract")])
def test_a_full_disk_during_extract_exits_1_and_leaves_no_temporary_file(
        tmp_path, command: tuple[str, ...]) -> None:
    """A 64 KiB tmpfs as the output directory cannot take a 300 KB file: one line naming
    the directory and the error, exit 1, no `.tftp-extract-*.tmp` left."""
    require_root()
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("small.txt"))
    lockstep_rrq(cap, b"fits on the disk\n")
    other = ("10.0.0.2", 40002)
    cap.udp(other, LISTEN, craft.rrq("big.bin"))
    lockstep_rrq(cap, content_of(300_000), client=other, tid=("10.0.0.1", 50002))
    capture = cap.write(tmp_path / "two.pcap")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                   check=True, capture_output=True)
    try:
        *words, option = command
        done = subprocess.run([*ANALYZER, *words, str(capture), option, str(small)],
                              capture_output=True, text=True, timeout=120)
        left = sorted(path.name for path in small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True, capture_output=True)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "No space left on device" in lines[0] and str(small) in lines[0], lines
    assert "TMPDIR" not in lines[0]  # the full disk is the one named, not the temp dir
    # Both transfers were under way when the disk filled: neither is settled, and no
    # temporary file of either is left.
    assert left == []


# -- rollover with the blocks around the wrap missing ------------------------------------

WRAP_BLKSIZE = 8
WRAP_CONTENT = content_of(65539 * WRAP_BLKSIZE + 5, seed=9)  # 65539 full blocks + 5 bytes


def wrap_exchange(wrap_to: int, drop: set[tuple[str, int]], tsize: bool = False
                  ) -> list[tuple[tuple[str, int], tuple[str, int], bytes]]:
    """An RRQ of WRAP_CONTENT in 8-byte blocks whose numbers wrap 65535 -> `wrap_to`
    (RFC 1350 leaves it open; most servers wrap to 0), without the ("DATA"|"ACK",
    absolute block) packets in `drop`; with `tsize`, the OACK announces the size."""
    client, listen, tid = ("10.0.0.2", 40001), ("10.0.0.1", 69), ("10.0.0.1", 50001)
    options = [("blksize", str(WRAP_BLKSIZE))]
    if tsize:
        options.append(("tsize", str(len(WRAP_CONTENT))))
    exchange = [(client, listen, craft.rrq("wrap.bin", options=options)),
                (tid, client, craft.oack(options)), (client, tid, craft.raw_ack(0))]
    for n, chunk in enumerate(craft.chunks(WRAP_CONTENT, WRAP_BLKSIZE), 1):
        wire = n if n < 65536 else (n % 65536 if wrap_to == 0 else (n - 1) % 65535 + 1)
        if ("DATA", n) not in drop:
            exchange.append((tid, client, craft.raw_data(wire, chunk)))
        if ("ACK", n) not in drop:
            exchange.append((client, tid, craft.raw_ack(wire)))
    return exchange


def with_hole(block: int) -> bytes:
    """WRAP_CONTENT with absolute block `block` zeroed (what a missed block leaves)."""
    start = (block - 1) * WRAP_BLKSIZE
    return WRAP_CONTENT[:start] + bytes(WRAP_BLKSIZE) + WRAP_CONTENT[start + WRAP_BLKSIZE:]


def sha(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def transfer_of(exchange: list) -> dict:  # type: ignore[type-arg]
    from analyzer.report.tftp_json import tftp_transfer_object

    tracker = TftpTracker()
    for pkt in raw_packets(exchange):
        tracker.on_packet(pkt)
    tracker.finish()
    (transfer,) = tracker.results()
    return tftp_transfer_object(transfer)


def codes(transfer: dict) -> set[str]:
    return {f["code"] for f in transfer["findings"]}


@pytest.mark.parametrize("wrap_to", [0, 1])
def test_the_data_after_the_wrap_missing_its_ack_tells(wrap_to: int) -> None:
    """The DATA right after the wrap (absolute block 65536: wire 0 or 1) is missing; the
    receiver's ACK of it is there and tells which way it wrapped: the file has exactly
    that one block of zeros (the old code took a wrap to 1 for one to 0 here: the file
    was a block too long)."""
    t = transfer_of(wrap_exchange(wrap_to, {("DATA", 65536)}))
    assert (t["bytes"], t["sha256"]) == (len(WRAP_CONTENT), sha(with_hole(65536)))
    assert t["missing_blocks"] == [{"first": 65536, "last": 65536}]
    assert any(f["code"] == "rollover" and f"65535 to {wrap_to}" in f["message"]
               for f in t["findings"])


@pytest.mark.parametrize("wrap_to", [0, 1])
def test_the_wrap_told_by_tsize_when_data_and_ack_are_missing(wrap_to: int) -> None:
    """DATA and ACK of the blocks right after the wrap missing (both 65536 and 65537, so
    the first number seen, wire 2 or 1 after a hole, tells nothing): the tsize puts the
    final block, and so the wrap."""
    drop = {("DATA", 65536), ("ACK", 65536), ("DATA", 65537), ("ACK", 65537)}
    t = transfer_of(wrap_exchange(wrap_to, drop, tsize=True))
    assert (t["bytes"], t["sha256"]) == \
        (len(WRAP_CONTENT), sha(with_hole(65536)[:65536 * 8] + bytes(8)
                                + WRAP_CONTENT[65537 * 8:]))
    assert t["missing_blocks"] == [{"first": 65536, "last": 65537}]
    assert "rollover-unknown" not in codes(t)
    assert any(f["code"] == "rollover" and f"65535 to {wrap_to}" in f["message"]
               for f in t["findings"])


def test_an_undecidable_wrap_is_said_to_be_so() -> None:
    """A wrap to 1 whose DATA and ACK 1 the capture missed, no tsize: nothing tells. Taken
    as a wrap to 0 (most servers), the hole is one block too long, and the finding says
    exactly that."""
    t = transfer_of(wrap_exchange(1, {("DATA", 65536), ("ACK", 65536)}))
    assert t["bytes"] == len(WRAP_CONTENT) + WRAP_BLKSIZE
    assert t["missing_blocks"] == [{"first": 65536, "last": 65537}]
    (unknown,) = [f for f in t["findings"] if f["code"] == "rollover-unknown"]
    assert f"hole at byte {65535 * WRAP_BLKSIZE} is one block ({WRAP_BLKSIZE} bytes)" \
        in unknown["message"]
    assert "rollover" not in codes(t)


@pytest.mark.slow
@pytest.mark.parametrize("wrap_to", [0, 1])
def test_complete_rollovers_match_tshark(tmp_path, wrap_to: int) -> None:
    """Every block there: our file is the content we sent and, for a wrap to 0, tshark's
    export (tshark exports nothing for a transfer that wraps to 1)."""
    from tests.support.tshark import export_tftp_objects

    frames = []
    for (src, sport), (dst, dport), payload in wrap_exchange(wrap_to, set()):
        frames.append(hostile_tftp.udp_frame(socket.inet_aton(src), sport,
                                             socket.inet_aton(dst), dport, payload))
    capture = tmp_path / f"wrap{wrap_to}.pcap"
    hostile_tftp.write(capture, enumerate(frames), len(frames), seconds=60.0)
    theirs = export_tftp_objects(capture, tmp_path / "tshark")
    out = tmp_path / "ours"
    result = subprocess.run([*ANALYZER, "tftp", "extract", str(capture), "-o", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ours = (out / "wrap.bin").read_bytes()
    assert ours == WRAP_CONTENT
    if wrap_to == 0:
        assert theirs["wrap.bin"].read_bytes() == ours
    else:
        assert theirs == {}


# -- terminal safety ----------------------------------------------------------------------

ESC_NAME = "[bold]\x1b[2J\x1b]0;owned\x07boot.img"
ESC_OPTION, ESC_VALUE = "\x1b[31mevil", "\x1b[5mon"
ESC_ERROR = "File \x1b[2J not found\x07\r"
ESC_IFACE = "\x1b]0;pwned\x07eth0"


def pcapng(path: Path, frames: list[bytes], if_name: str) -> Path:
    """A pcapng (RFC draft, section 4): SHB, one Ethernet IDB named `if_name`, EPBs."""
    import struct

    def block(kind: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)

    name = if_name.encode()
    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += block(1, struct.pack("<HHI", 1, 0, 65535) + option(2, name) + option(0, b""))
    for index, frame in enumerate(frames):
        ts = (1_700_000_000 + index) * 1_000_000
        out += block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                    len(frame)) + frame)
    path.write_bytes(out)
    return path


def control_characters(text: str) -> list[str]:
    """Every character below 0x20 but the newline, and DEL, in `text`."""
    return sorted({repr(ch) for ch in text if (ord(ch) < 0x20 and ch != "\n") or ch == "\x7f"})


def test_names_options_errors_and_interfaces_reach_the_terminal_escaped(tmp_path) -> None:
    """ESC, OSC and BEL from the wire (a file name, an OACK option the client never asked
    for, an ERROR message) and from the capture (a pcapng interface name): every view
    shows them escaped, and `[bold]` in a name as text, never as rich markup."""
    client, server = bytes((10, 0, 0, 2)), bytes((10, 0, 0, 1))

    def udp(src: bytes, sport: int, dst: bytes, dport: int, payload: bytes) -> bytes:
        return hostile_tftp.udp_frame(src, sport, dst, dport, payload)

    options = b"blksize\x00512\x00"
    frames = [
        udp(client, 40001, server, 69, hostile_tftp.rrq(ESC_NAME.encode()) + options),
        udp(server, 50001, client, 40001, b"\x00\x06" + options + ESC_OPTION.encode()
            + b"\x00" + ESC_VALUE.encode() + b"\x00"),
        udp(client, 40001, server, 50001, craft.raw_ack(0)),
        udp(server, 50001, client, 40001, craft.raw_data(1, b"short file")),
        udp(client, 40001, server, 50001, craft.raw_ack(1)),
        udp(client, 40002, server, 69, hostile_tftp.rrq(b"x\x1b[Hy")),
        udp(server, 50002, client, 40002, b"\x00\x05\x00\x01" + ESC_ERROR.encode() + b"\x00"),
    ]
    capture = pcapng(tmp_path / "escapes.pcapng", frames, ESC_IFACE)
    views = {
        "read wide": (["read", str(capture)], "200"),
        "read compact": (["read", str(capture)], "80"),
        "read --extract": (["read", str(capture), "--extract", str(tmp_path / "a")], "200"),
        "tftp show 1": (["tftp", "show", str(capture), "1"], "120"),
        "tftp show 2": (["tftp", "show", str(capture), "2"], "120"),
        "tftp extract": (["tftp", "extract", str(capture), "-o", str(tmp_path / "b")], "200"),
    }
    for view, (args, columns) in views.items():
        done = subprocess.run([*ANALYZER, *args], capture_output=True, text=True,
                              timeout=60, env={**os.environ, "COLUMNS": columns})
        assert done.returncode == 0, (view, done.stderr)
        assert control_characters(done.stdout + done.stderr) == [], view
        if view != "tftp show 2":
            assert "[bold]" in done.stdout, view  # shown as text, not taken as markup
    read = subprocess.run([*ANALYZER, "read", str(capture)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "\\x1b]0;pwned\\x07eth0" in read  # the interface, escaped
    assert "\\x1b[31mevil=\\x1b[5mon" in read  # the unrequested option, in its finding
    show = subprocess.run([*ANALYZER, "tftp", "show", str(capture), "2"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}).stdout
    assert "File \\x1b[2J not found\\x07\\r" in show


def test_a_check_detail_from_the_server_is_escaped() -> None:
    """`tftp check`'s report card: a detail carrying a server's ERROR message."""
    from io import StringIO

    from rich.console import Console

    from analyzer.report.tftp_check import report_table
    from analyzer.tftpcheck.checks import CHECKS, Verdict
    from analyzer.tftpcheck.runner import CheckResult

    result = CheckResult(CHECKS[0], Verdict("fail", f"ERROR 1: {ESC_ERROR}", (3,)))
    out = StringIO()
    Console(file=out, width=200, color_system=None).print(report_table([result], "card"))
    assert control_characters(out.getvalue()) == []
    assert "\\x1b[2J" in out.getvalue()
