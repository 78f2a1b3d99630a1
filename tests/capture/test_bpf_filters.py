"""Long BPF filters (`-f`): bounded time and memory, the same packets as libpcap's own
verdicts, and Ctrl-C never ignored.

libpcap's compiler (tcpdump's) needs minutes and gigabytes for `port 1 or ... or port
3000`; `analyzer.capture.bpf` compiles such a flat sequence in pieces and chains them.
The oracles are libpcap itself (tcpdump with an equivalent short filter, and libpcap's
verdict for the whole expression compiled in one go) and tshark's display filters.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from analyzer.capture.bpf import (
    COMPILE_SECONDS,
    Program,
    compile_in_pieces,
    compile_with_libpcap,
    libpcap,
    run_program,
)
from analyzer.errors import InputError
from tests.conftest import CAPTURES_DIR, require_root, require_tool
from tests.oracle import real_capture_params, run_tshark
from tests.support.peak import run_with_peak

ANALYZER = [sys.executable, "-m", "analyzer"]
TOUR = CAPTURES_DIR / "tour.pcapng"
# 3000 `port N` terms: TFTP's 69, then 50001-52999 (tour.pcapng's TCP streams on 50007
# and 50080 fall inside, those on 34036, 36650, 42664, 54352 and 54366 outside).
LONG_PORTS = [69, *range(50001, 53000)]
LONG_FILTER = " or ".join(f"port {port}" for port in LONG_PORTS)
# the same, each number after the first taking `port` from the term before it
LONG_BORROWED = "port " + " or ".join(str(port) for port in LONG_PORTS)
SHORT_EQUIVALENT = "port 69 or portrange 50001-52999"
TSHARK_EQUIVALENT = ("not icmp and not icmpv6 and (tcp.port in {69, 50001..52999} "
                     "or udp.port in {69, 50001..52999})")
# What tcpdump compiles in a few MB; the whole-expression compile held 3.5 GB.
MEMORY_BOUND_MIB = 300
TIME_BOUND_SECONDS = 60.0


def run_measured(argv: list[str], timeout: float, scratch: Path
                 ) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """(result, peak MiB, seconds) of `argv` (tests/support/peak.py)."""
    done, peak, seconds = run_with_peak(argv, scratch / "measures.json", timeout=timeout)
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout.decode(),
                                       done.stderr.decode()), peak, seconds


def tcpdump_count(path: Path, bpf: str) -> int:
    tcpdump = require_tool("tcpdump")
    done = subprocess.run([tcpdump, "-n", "-r", str(path), bpf], capture_output=True,
                          text=True, timeout=60, check=True)
    return len(done.stdout.splitlines())


@pytest.mark.slow
@pytest.mark.parametrize("bpf", [LONG_FILTER, LONG_BORROWED], ids=["named", "borrowed"])
def test_3000_port_filter_gives_libpcaps_packets_in_bounded_time_and_memory(
        tmp_path: Path, bpf: str) -> None:
    expected = tcpdump_count(TOUR, SHORT_EQUIVALENT)
    assert len(run_tshark(TOUR, ["frame.number"], TSHARK_EQUIVALENT).rows) == expected
    assert 0 < expected < tcpdump_count(TOUR, "")  # the filter keeps some, not all
    done, peak_mib, seconds = run_measured(
        [*ANALYZER, "read", str(TOUR), "--json", "-f", bpf],
        timeout=TIME_BOUND_SECONDS + 30, scratch=tmp_path)
    assert done.returncode == 0, done.stderr[-500:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["packets"] == expected
    assert summary["filtered_out"] == tcpdump_count(TOUR, "") - expected
    assert peak_mib < MEMORY_BOUND_MIB
    assert seconds < TIME_BOUND_SECONDS


# Primitives whose verdicts differ across the captures (TCP, UDP, TFTP, ICMP, IPv6).
PRIMITIVES = [
    "tcp", "udp", "icmp", "ip6", "arp", "port 69", "port 80", "src port 80", "dst port 69",
    "tcp port 50007", "udp portrange 1000-60000", "host 127.0.0.1", "net 10.0.0.0/8",
    "less 100", "greater 500", "len > 60", "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0", "ip[8] < 64", "(udp and port 53)",
    "not tcp", "! udp", "not (port 69 or icmp)", "ether broadcast", "ip multicast",
    "ip6 and tcp", "udp[8:2] = 1", "proto 17",
]


def random_expression(rng: random.Random, terms: int) -> str:
    parts = [rng.choice(PRIMITIVES)]
    for _ in range(terms - 1):
        parts += [rng.choice(["or", "and", "||", "&&"]), rng.choice(PRIMITIVES)]
    expression = " ".join(parts)
    if rng.random() < 0.2:
        expression = f"not ({expression})"
    return expression


def verdicts(code: bytes, frames: list) -> list[bool]:
    lib, program = libpcap(), Program(code)
    return [run_program(lib, program, frame) for frame in frames]


def check_chained_against_whole(capture: Path, monkeypatch: pytest.MonkeyPatch,
                                expressions: Callable[[random.Random], str], count: int,
                                seed: str) -> None:
    """`count` expressions made by `expressions` (seeded by `seed` and the capture), split
    into pieces of at most 2 terms so that every one is chained: on every frame of the
    capture, the chained program's verdict is libpcap's for the whole expression."""
    import analyzer.capture.bpf as bpf

    monkeypatch.setattr(bpf, "INLINE_CONNECTIVES", 1)
    monkeypatch.setattr(bpf, "CHUNK_TERMS", 2)
    with open_capture(capture) as cap:
        frames = list(cap)
        byte_order = cap.info.byte_order
    by_linktype: dict[int, list] = {}
    for frame in frames:
        by_linktype.setdefault(frame.linktype, []).append(frame)
    lib = libpcap()
    rng = random.Random(f"{seed}-{capture.name}")
    for _ in range(count):
        expression = expressions(rng)
        for linktype, group in by_linktype.items():
            try:
                whole = compile_with_libpcap(lib, expression, linktype, byte_order)
            except InputError:
                continue  # a primitive this link type has no meaning for
            chained = compile_in_pieces(lib, expression, linktype, byte_order)
            assert chained != whole, "the expression was not split"
            assert verdicts(chained, group) == verdicts(whole, group), expression


@pytest.mark.parametrize("capture", real_capture_params())
def test_chained_pieces_decide_as_the_whole_expression(capture: Path, monkeypatch) -> None:
    """40 random flat expressions of up to 12 terms (and/or/not, mixed)."""
    check_chained_against_whole(
        capture, monkeypatch, lambda rng: random_expression(rng, rng.randint(3, 12)), 40,
        "bpf-chain")


# Qualified primitives, and bare IDs that may follow each (taking its qualifiers).
BORROWING = {
    "port 69": ["53", "80", "50007", "50080"], "src port 80": ["69", "50080"],
    "tcp port 50007": ["50080", "80"], "udp dst port 69": ["53", "5353"],
    "host 127.0.0.1": ["127.0.0.2", "10.0.0.1"], "ip6 host ::1": ["fe80::1"],
    "net 10.0.0.0/8": ["127.0.0.0/8", "192.168.0.0/16"],
    "udp portrange 1000-2000": ["30000-40000", "50000-60000"],
    "ip proto 6": ["17", "1"], "proto 17": ["6"],
}


def borrowing_expression(rng: random.Random, terms: int) -> str:
    qualified = rng.choice(list(BORROWING))
    parts = [qualified]
    for _ in range(terms - 1):
        parts.append(rng.choice(["or", "and", "||", "&&"]))
        if rng.random() < 0.6:
            parts.append(rng.choice(["", "", "not ", "! "]) + rng.choice(BORROWING[qualified]))
        else:
            qualified = rng.choice(list(BORROWING))
            parts.append(qualified)
    return " ".join(parts)


@pytest.mark.parametrize("capture", real_capture_params())
def test_bare_ids_borrowing_qualifiers_decide_as_the_whole_expression(
        capture: Path, monkeypatch) -> None:
    """`port 1 or 2`, `host A or not B`: a bare ID takes the qualifiers of the primitive
    before it (pcap-filter(7)); split, each piece is given them."""
    check_chained_against_whole(
        capture, monkeypatch, lambda rng: borrowing_expression(rng, rng.randint(3, 10)), 30,
        "bpf-borrow")


def test_borrowed_qualifiers_compile_as_libpcap_reads_them() -> None:
    """libpcap itself compiles the expanded terms to the very program of the original."""
    from analyzer.capture.bpf import split_terms

    lib = libpcap()
    for expression in ["port 1 or 2 or 3", "tcp dst port 80 or not 81 and 82",
                       "not host 10.0.0.1 or 10.0.0.2", "ip proto 6 or 17 or udp"]:
        split = split_terms(expression)
        assert split is not None and not split[0], expression
        expanded = " ".join(f"{joiner} {text}" if joiner else text
                            for text, joiner in split[1])
        assert compile_with_libpcap(lib, expanded, 1, "little") == \
            compile_with_libpcap(lib, expression, 1, "little"), expression


def unsplittable(terms: int) -> str:
    """`port 1 or (2) or (3) ...`: each number takes `port` from the term before it, from
    inside parentheses, which the split does not look into: libpcap must compile it
    whole: minutes for 600 terms, gigabytes for 3000."""
    return "port 1 or " + " or ".join(f"({port})" for port in range(2, terms + 1))


@pytest.mark.slow
@pytest.mark.parametrize("terms, limit", [(600, "within 15 s"), (3000, "MiB of memory")])
def test_filter_libpcap_cannot_compile_within_the_limits_is_refused_with_one_line(
        terms: int, limit: str) -> None:
    started = time.monotonic()
    done = subprocess.run([*ANALYZER, "read", str(TOUR), "-f", unsplittable(terms)],
                          capture_output=True, text=True, timeout=COMPILE_SECONDS + 60)
    assert time.monotonic() - started < COMPILE_SECONDS + 30
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-2000:]
    assert "too complex" in lines[0] and limit in lines[0] and len(lines[0]) < 300
    assert done.stdout == ""


def child_pids(pid: int) -> set[int]:
    found: set[int] = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as listing:
                found |= {int(word) for word in listing.read().split()}
        except FileNotFoundError:
            pass
    return found


@pytest.mark.parametrize("command", [["read", str(TOUR)], ["sniff", "-i", "lo", "-c", "1"]],
                         ids=["read", "sniff"])
def test_ctrl_c_stops_a_long_compile_at_once(command: list[str]) -> None:
    if command[0] == "sniff":
        require_root()
    proc = subprocess.Popen([*ANALYZER, *command, "-f", unsplittable(600)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        compiler: set[int] = set()
        deadline = time.monotonic() + 20
        while not compiler and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            compiler = child_pids(proc.pid)
        assert compiler, "no compiler process was started"
        time.sleep(0.5)  # well inside libpcap's compile
        interrupted = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert time.monotonic() - interrupted < 3.0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert stderr.strip().splitlines() == ["analyzer: interrupted"]
    time.sleep(0.2)
    for pid in compiler:  # the compiler ended with us
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.root
def test_sniff_with_a_3000_port_filter_keeps_only_those_ports(tmp_path: Path) -> None:
    """Too long for the kernel (over 4096 instructions once compiled): the socket takes
    everything and each frame meets the filter in userland, as libpcap does then."""
    from tests.cli.test_sniff import UdpSender, free_port, udp_payloads
    from tests.cli.test_sniff_endings import wait_capturing

    require_root()
    require_tool("tshark")
    wanted, unwanted = UdpSender(free_port()), UdpSender(free_port())
    others = [port for port in range(20000, 23100) if port not in (wanted.port, unwanted.port)]
    bpf = " or ".join(f"udp port {port}" for port in [*others[:1500], wanted.port,
                                                       *others[1500:2999]])
    out = tmp_path / "long.pcapng"
    proc = subprocess.Popen([*ANALYZER, "sniff", "-i", "lo", "-f", bpf, "--json", "-c", "4",
                             "-w", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_capturing(proc)  # type: ignore[arg-type]
        for _ in range(4):
            unwanted.send()
            wanted.send()
        stdout, stderr = proc.communicate(timeout=TIME_BOUND_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        wanted.close()
        unwanted.close()
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.splitlines()[-1])
    assert summary["packets"] == 4
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(4)]
    ports = {row["udp.dstport"] for row in run_tshark(out, ["udp.dstport"]).rows}
    assert ports == {str(wanted.port)}


@pytest.mark.parametrize("expression", [
    "tcp or 2",  # `tcp` names no qualifier for `2` to take
    "src or dst port 1 or 2",  # `src or dst` is one qualifier, not two terms
    "port 1 or (2 or 3)",
    "vlan 10 and tcp or udp",  # `vlan` moves the offsets of every later primitive
    "tcp or mpls and udp",
    "tcp OR udp",  # libpcap's own verdict on the spelling
    "tcp or udp",  # two self-contained terms: split (one piece)
], ids=["no-qualifier", "src-or-dst", "inherited-paren", "vlan", "mpls", "uppercase",
        "plain"])
def test_only_self_contained_terms_are_split(expression: str) -> None:
    from analyzer.capture.bpf import split_terms

    split = split_terms(expression)
    if expression == "tcp or udp":
        assert split == (False, [("(tcp) or (udp)", None)])
    else:
        assert split is None


def test_a_piece_that_rejects_everything_still_chains(monkeypatch) -> None:
    """libpcap refuses `tcp and icmp` alone ("expression rejects all packets"); inside
    `(tcp and icmp) or udp` it is a piece whose verdict is always no."""
    import analyzer.capture.bpf as bpf

    monkeypatch.setattr(bpf, "INLINE_CONNECTIVES", 0)
    monkeypatch.setattr(bpf, "CHUNK_TERMS", 1)
    lib = libpcap()
    with open_capture(TOUR) as cap:
        frames = list(cap)
    chained = compile_in_pieces(lib, "(tcp and icmp) or udp", 1, "little")
    whole = compile_with_libpcap(lib, "udp", 1, "little")
    assert verdicts(chained, frames) == verdicts(whole, frames)
    assert any(verdicts(whole, frames)) and not all(verdicts(whole, frames))


def test_a_filter_with_bytes_that_are_not_utf8_is_refused_with_one_line() -> None:
    done = subprocess.run([*(arg.encode() for arg in ANALYZER), b"read", bytes(TOUR), b"-f",
                           b"port \xff"], capture_output=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.decode(errors="replace").strip().splitlines()
    assert len(lines) == 1 and "bad filter" in lines[0], done.stderr
