"""Hot paths under pytest-benchmark: decoding frames, the TCP tracker (and finishing its
streams, parking them, looking up their tombstones), the TFTP tracker.

The input is a small synthetic capture from benchmarks/generate.py, so every expected
count is known by construction (the generator's summary), not taken from our output.
pyproject's `--benchmark-disable` makes each test run once as a plain test; to time them:

    .venv/bin/pytest tests/bench --benchmark-enable --benchmark-only
    .venv/bin/pytest tests/bench --benchmark-enable --benchmark-autosave  # baseline
    .venv/bin/pytest tests/bench --benchmark-enable --benchmark-compare   # after a change
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.capture import Frame, open_capture
from analyzer.decode import Decoder, Packet
from analyzer.decode.packet import PROTO_TCP, PROTO_UDP
from analyzer.pipeline import analyze_file
from analyzer.report.jsonl import capture_object
from analyzer.report.tcp_json import stream_line, stream_object
from analyzer.report.tftp_json import tftp_transfer_object
from analyzer.tcp.tombstones import NONE, Tombstones, isn_of, pack_isns
from analyzer.tcp.tracker import TcpTracker
from analyzer.tftp.tracker import TftpTracker
from benchmarks.generate import generate, truth_path

PACKETS = 4000


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A 4000-packet capture: ~60 interleaved flows, so many complete in the file."""
    path = tmp_path_factory.mktemp("bench") / "synthetic.pcap"
    summary = generate(path, PACKETS, seed=7, concurrency=60, tftp_share=0.15)
    assert summary["tcp_connections"] > 50 and summary["tftp_transfers"] > 5
    return path, summary


@pytest.fixture(scope="module")
def frames(capture: tuple[Path, dict]) -> list[Frame]:
    with open_capture(capture[0]) as source:
        return list(source)


@pytest.fixture(scope="module")
def packets(frames: list[Frame]) -> list[Packet]:
    decoder = Decoder()
    decoded = [decoder.decode(frame, number) for number, frame in enumerate(frames, 1)]
    return [pkt for pkt in decoded if pkt is not None]


def test_decode_frames(benchmark: Callable, frames: list[Frame],
                       capture: tuple[Path, dict]) -> None:
    def decode_all() -> list[Packet | None]:
        decoder = Decoder()
        return [decoder.decode(frame, number) for number, frame in enumerate(frames, 1)]

    decoded = benchmark(decode_all)
    summary = capture[1]
    assert len(frames) == PACKETS
    assert None not in decoded  # the generator writes only TCP and UDP over IP
    assert sum(p.proto == PROTO_TCP for p in decoded) == summary["tcp_packets"]
    assert sum(p.proto == PROTO_UDP for p in decoded) == summary["udp_packets"]
    assert sum(p.version == 6 for p in decoded) == summary["ipv6_packets"]


def test_tcp_tracker(benchmark: Callable, packets: list[Packet],
                     capture: tuple[Path, dict]) -> None:
    tcp_packets = [pkt for pkt in packets if pkt.proto == PROTO_TCP]

    def track() -> TcpTracker:
        tracker = TcpTracker()
        on_packet = tracker.on_packet
        for pkt in tcp_packets:
            on_packet(pkt)
        tracker.finish()
        return tracker

    streams = [stream_object(result) for result in benchmark(track).results()]
    summary = capture[1]
    assert len(streams) == summary["tcp_connections"]  # no 4-tuple is ever reused
    assert sum(stream["packets"] for stream in streams) == summary["tcp_packets"]


def test_finish_streams(benchmark: Callable, packets: list[Packet],
                        capture: tuple[Path, dict]) -> None:
    """The end of a capture: every stream still open gets its result and JSON line (on
    short captures, most of them; ~15 us each on the machine of docs/performance.md)."""
    tcp_packets = [pkt for pkt in packets if pkt.proto == PROTO_TCP]
    lines: list[str] = []

    def tracked() -> tuple[tuple[TcpTracker], dict]:
        lines.clear()
        tracker = TcpTracker(on_result=lambda result: lines.append(stream_line(result)))
        for pkt in tcp_packets:
            tracker.on_packet(pkt)
        return (tracker,), {}

    benchmark.pedantic(TcpTracker.finish, setup=tracked, rounds=20)
    streams = [json.loads(line) for line in lines]
    assert len(streams) == capture[1]["tcp_connections"]
    assert sum(stream["packets"] for stream in streams) == capture[1]["tcp_packets"]


def test_tcp_tracker_parking_every_stream_after_every_packet(
        benchmark: Callable, packets: list[Packet]) -> None:
    """The worst case of parking: every open stream frozen after each packet and thawed by
    its next one; the lines must be those of a tracker that never parks."""
    tcp_packets = [pkt for pkt in packets if pkt.proto == PROTO_TCP]

    def track(park_timeout: float) -> list[str]:
        lines: list[str] = []
        tracker = TcpTracker(park_timeout=park_timeout,
                             on_result=lambda result: lines.append(stream_line(result)))
        for pkt in tcp_packets:
            tracker.on_packet(pkt)
            tracker._sweep(pkt.ts + 1e-6)
        tracker.finish()
        return sorted(lines)

    assert benchmark(track, 0.0) == track(1e12)


def test_tombstone_lookups(benchmark: Callable) -> None:
    """A new connection's first packet looks its key up in both directions: ~20k
    tombstones live at once in the 5M benchmark capture, most lookups miss."""
    keys = [b"%032d" % i for i in range(20_000)]
    table = Tombstones(120.0)
    for i, key in enumerate(keys):
        table.add(key, i * 0.001, pack_isns(i, -1))
    strangers = [b"x%031d" % i for i in range(20_000)]

    def look_up() -> tuple[int, int]:
        found = sum(table.find(key, 20.0) != NONE for key in keys)
        return found, sum(table.find(key, 20.0) != NONE for key in strangers)

    assert benchmark(look_up) == (20_000, 0)
    assert [isn_of(table.find(keys[i], 20.0), 0) for i in (0, 4095, 4096, 19_999)] == \
        [0, 4095, 4096, 19_999]


def test_tftp_tracker(benchmark: Callable, packets: list[Packet],
                      capture: tuple[Path, dict]) -> None:
    udp_packets = [pkt for pkt in packets if pkt.proto == PROTO_UDP]

    def track() -> TftpTracker:
        tracker = TftpTracker()
        on_packet = tracker.on_packet
        for pkt in udp_packets:
            on_packet(pkt)
        tracker.finish()
        return tracker

    transfers = [tftp_transfer_object(result) for result in benchmark(track).results()]
    stages = capture[1]["tftp_stages"]
    assert len(transfers) == capture[1]["tftp_transfers"]
    statuses = [transfer["status"] for transfer in transfers]
    assert statuses.count("error") == stages.get("error", 0)
    # Every block is sent, in order: a transfer whose last block and its ACK are in the
    # file is complete; one cut off before its last block is not.
    assert statuses.count("complete") >= stages.get("last_ack", 0)
    assert statuses.count("incomplete") >= stages.get("data", 0) + stages.get("request", 0)


def test_analyze_file(benchmark: Callable, capture: tuple[Path, dict]) -> None:
    path, summary = capture
    analysis = benchmark(analyze_file, path)
    assert capture_object(analysis.capture)["packets"] == PACKETS
    streams = {(s["client"], s["server"]): s
               for s in (stream_object(result) for result in analysis.tcp.results())}
    transfers = {(t["client"], t["filename"]): t
                 for t in (tftp_transfer_object(result) for result in analysis.tftp.results())}
    assert len(streams) == summary["tcp_connections"]
    assert len(transfers) == summary["tftp_transfers"]
    # Every flow that sent all its packets: the same bytes, hashed, as the generator sent.
    truths = [json.loads(line) for line in truth_path(path).read_text().splitlines()]
    assert sum(t["type"] == "tcp_stream" for t in truths) > 20
    for truth in truths:
        if truth["type"] == "tcp_stream":
            stream = streams[(truth["client"], truth["server"])]
            for key in ("client_bytes", "server_bytes", "client_sha256", "server_sha256"):
                assert stream[key] == truth[key], (stream["stream"], key)
        else:
            transfer = transfers[(truth["client"], truth["filename"])]
            assert transfer["status"] == truth["status"]
            if truth["status"] == "complete":
                assert (transfer["bytes"], transfer["sha256"]) == (truth["bytes"],
                                                                   truth["sha256"])
