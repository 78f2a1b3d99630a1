"""The TCP tracker against tshark on every real capture (../shared/corpus/ and captures/).

Per capture: every TCP frame lands in the stream tshark numbers it (`tcp.stream`), each
stream's final `tcp.completeness` (two-pass) is tshark's, and each direction's reassembled
bytes are what `tshark -z follow,tcp,raw,N` prints. The ascii, hex and raw follow views are
byte-identical to tshark's. Where tshark is wrong, the test says why and asserts the
right value instead.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from analyzer.report.tcp_view import follow_text
from tests.conftest import REPO_DIR, require_tool
from tests.oracle import real_capture_params
from tests.tcp.craft_tcp import analyze
from tests.tcp.tshark_tcp import parse_follow_raw, tshark_follow, tshark_streams


def _has_tcp(path: Path) -> bool:
    from analyzer.decode.packet import PROTO_TCP
    from analyzer.pipeline import iter_packets

    return any(pkt.proto == PROTO_TCP for pkt in iter_packets(path))


# Every real capture with TCP in it (the TFTP-only ones have nothing to compare).
CAPTURES = [param for param in real_capture_params() if _has_tcp(param.values[0])]


@lru_cache(maxsize=32)
def _analyzed(path: Path) -> tuple:
    return tuple(analyze(path))


def _tcp_results(path: Path):
    return _analyzed(path)


def _reordered_handshake(result) -> bool:
    """tshark 4.0 names Follow's node 0 after the first packet's sender; when the capture
    holds the SYN-ACK before the SYN (zeek's handshake-reorder.pcap), node 0 is the
    server. The SPEC's client is the SYN sender, so our node 0 is the client there."""
    first = next(iter(result.records))
    return not first.from_client


@pytest.mark.parametrize("path", CAPTURES)
def test_stream_numbers_and_completeness_match_tshark(path: Path) -> None:
    require_tool("tshark")
    results = _tcp_results(path)
    oracle = tshark_streams(path)
    ours = {rec.frame: r.stream for r in results for rec in r.records}
    assert ours == oracle.frames
    assert {r.stream: r.completeness for r in results} == oracle.completeness


@pytest.mark.parametrize("path", CAPTURES)
def test_follow_bytes_match_tshark(path: Path) -> None:
    require_tool("tshark")
    for result in _tcp_results(path):
        follow = parse_follow_raw(tshark_follow(path, result.stream, "raw"))
        client, server = result.client_data(), result.server_data()
        if follow.node0 == result.client.endpoint:
            assert (follow.data0, follow.data1) == (client, server), result.stream
        else:
            assert _reordered_handshake(result), (follow.node0, result.client.endpoint)
            assert (follow.data1, follow.data0) == (client, server), result.stream
        assert result.gaps == []  # none of these captures misses a byte
        # Without kept data, only the hashes and counts: the default (flat-memory) mode.
        assert result.client.bytes == len(client)
        assert result.client.sha256 == hashlib.sha256(client).hexdigest()
        assert result.server.sha256 == hashlib.sha256(server).hexdigest()


@pytest.mark.parametrize("mode", ["ascii", "hex", "raw"])
@pytest.mark.parametrize("path", CAPTURES)
def test_follow_views_identical_to_tshark(path: Path, mode: str) -> None:
    require_tool("tshark")
    for result in _tcp_results(path):
        if _reordered_handshake(result):
            continue  # node order differs on purpose (see _reordered_handshake)
        assert follow_text(result, mode) == tshark_follow(path, result.stream, mode)


@pytest.mark.parametrize("path", CAPTURES)
def test_follow_yaml_matches_tshark_but_timestamps(path: Path) -> None:
    """YAML is identical except the sub-microsecond digits of timestamps: packets carry
    float seconds, which cannot hold nanoseconds at today's epoch."""
    require_tool("tshark")
    for result in _tcp_results(path):
        if _reordered_handshake(result):
            continue
        ours = follow_text(result, "yaml").splitlines()
        theirs = tshark_follow(path, result.stream, "yaml").splitlines()
        assert len(ours) == len(theirs)
        for mine, other in zip(ours, theirs, strict=True):
            if other.strip().startswith("timestamp:"):
                assert abs(float(mine.split(":")[1]) - float(other.split(":")[1])) < 1e-6
            else:
                assert mine == other


def test_handshake_reorder_client_is_the_syn_sender(corpus_dir: Path) -> None:
    """tshark calls the SYN-ACK sender node 0 here; the SYN sender is the client."""
    require_tool("tshark")
    path = corpus_dir / "zeek__tcp_handshake-reorder.pcap"
    (result,) = analyze(path)
    follow = parse_follow_raw(tshark_follow(path, 0, "raw"))
    syn_sender = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0",
         "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport"],
        capture_output=True, text=True, check=True).stdout.split()
    assert result.client.endpoint == f"{syn_sender[0]}:{syn_sender[1]}"
    assert follow.node1 == result.client.endpoint  # tshark's node 0 is the server
    assert result.handshake == "complete"
    assert not result.direction_guessed
    assert result.history.startswith("^h")  # Zeek flips the originator: '^'


@pytest.mark.parametrize("mode", ["ascii", "raw", "yaml"])
def test_cli_follow_matches_tshark(corpus_dir: Path, mode: str) -> None:
    require_tool("tshark")
    path = corpus_dir / "nDPI__telnet.pcap"
    done = subprocess.run([sys.executable, "-m", "analyzer", "tcp", "follow", str(path), "0",
                           "--format", mode], capture_output=True, cwd=REPO_DIR, timeout=60)
    assert done.returncode == 0, done.stderr
    stdout = done.stdout.decode("latin-1")
    expected = tshark_follow(path, 0, mode)
    if mode == "yaml":  # timestamps: see test_follow_yaml_matches_tshark_but_timestamps
        strip = [line for line in expected.splitlines() if "timestamp:" not in line]
        assert [line for line in stdout.splitlines() if "timestamp:" not in line] == strip
    else:
        assert stdout == expected


@pytest.mark.parametrize("path", CAPTURES)
def test_spooled_follow_is_the_kept_follow(path: Path) -> None:
    """`tcp follow` spools its chunks to a temporary file and keeps no per-packet records
: the same output, in every mode, as the kept
    stream the tests above check against tshark. The first streams and the largest."""
    from analyzer.run.read import one_tcp_stream

    results = _tcp_results(path)
    largest = max(results, key=lambda r: r.client.bytes + r.server.bytes)
    for kept in {*results[:3], largest}:
        spooled = one_tcp_stream(path, kept.stream, records=False, spool=True)
        assert spooled.records is None
        for mode in ("ascii", "hex", "raw", "yaml"):
            assert follow_text(spooled, mode) == follow_text(kept, mode), (kept.stream, mode)
