"""A busy capture against tshark: thousands of interleaved connections with handshakes,
data both ways, retransmissions, out-of-order segments, FIN and RST closes, refused
connections (benchmarks/generate.py). Every frame's stream, every stream's completeness,
and the expert-analysis totals must be tshark's; a sample of streams is followed."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from analyzer.decode.packet import PROTO_TCP
from analyzer.pipeline import iter_packets
from analyzer.tcp import TcpTracker
from tests.conftest import require_tool, synthetic_capture
from tests.tcp.tshark_tcp import parse_follow_raw, tshark_analysis, tshark_follow, tshark_streams


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_capture(tmp_path_factory.mktemp("synthetic"), 20000, 7, 300)


def test_busy_capture_matches_tshark(busy_capture: Path) -> None:
    require_tool("tshark")
    tracker = TcpTracker(keep_all=True)
    for pkt in iter_packets(busy_capture):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    tracker.finish()
    results = tracker.results()
    oracle = tshark_streams(busy_capture)
    assert {rec.frame: r.stream for r in results for rec in r.records} == oracle.frames
    assert {r.stream: r.completeness for r in results} == oracle.completeness
    totals: collections.Counter[str] = collections.Counter()
    for result in results:
        totals.update(result.analysis)
    expected = tshark_analysis(busy_capture)
    assert {key: totals[key] for key in expected} == expected
    assert expected["retransmission"] and expected["out_of_order"]  # the case is exercised
    for result in results[::97]:
        if result.gaps:
            continue
        follow = parse_follow_raw(tshark_follow(busy_capture, result.stream, "raw"))
        assert follow.node0 == result.client.endpoint
        assert (follow.data0, follow.data1) == (result.client_data(), result.server_data())
