"""Hostile captures (benchmarks/hostile.py) stay bounded in memory and time, loosely.

At a small scale (20k packets) `analyzer read --json` on each hostile capture must exit
0, count every packet the generator wrote, keep the largest process under a generous
memory bound (its peak RSS and its worker's, tests/support/peak.py) and take at
most a few times as long as normal traffic of the same packet count; benchmarks/hostile.py
measures the issue's full sizes (docs/performance.md). Then the bookkeeping itself, on
the tracker: what one-byte out-of-order segments, holes and conflicting retransmissions
may hold.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from analyzer.run.spill import RecordSpool
from benchmarks.generate import generate
from benchmarks.hostile import SCENARIOS, conflicts, one_byte_ooo, write_scenario
from tests.support.peak import run_with_peak

PACKETS = 20_000
MAX_RSS_MIB = 120
# Wall time against normal traffic: the target is 2x at full size; small runs are
# noisy (start-up is a third of them) and the machine is shared, so the bound is loose.
MAX_RATIO = 3.0
# Scenarios allowed more (none now: a SYN flood, one stream and one result line per
# packet, needed 12x until its probes stopped being whole streams; docs/performance.md).
RATIO_EXCEPTIONS: dict[str, float] = {}


def measured_child(argv: list[str], scratch: Path) -> tuple[float, float, bytes, bytes, int]:
    """Wall seconds, peak RSS (MiB, the child and the workers it waited for), output."""
    done, peak, seconds = run_with_peak(argv, scratch / "measures.json")
    return seconds, peak, done.stdout, done.stderr, done.returncode


@pytest.fixture(scope="module")
def normal_wall(tmp_path_factory: pytest.TempPathFactory) -> float:
    path = tmp_path_factory.mktemp("normal") / "normal.pcap"
    generate(path, PACKETS)
    wall, _, _, stderr, code = measured_child(
        [sys.executable, "-m", "analyzer", "read", str(path), "--json"], path.parent)
    assert code == 0, stderr[-2000:]
    return wall


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_hostile_capture_is_bounded(scenario: str, normal_wall: float, tmp_path: Path) -> None:
    capture = write_scenario(tmp_path / f"{scenario}.pcap", scenario, PACKETS)
    wall, rss_mib, stdout, stderr, code = measured_child(
        [sys.executable, "-m", "analyzer", "read", str(capture), "--json"], tmp_path)
    assert code == 0, stderr[-2000:]
    assert b"Traceback" not in stderr
    objects = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    (summary,) = [obj for obj in objects if obj.get("type") == "capture"]
    assert summary["packets"] == PACKETS  # what the generator wrote
    assert rss_mib <= MAX_RSS_MIB, f"{scenario}: peak RSS {rss_mib:.0f} MiB"
    limit = RATIO_EXCEPTIONS.get(scenario, MAX_RATIO)
    assert wall <= limit * normal_wall + 1.0, (
        f"{scenario}: {wall:.2f} s against {normal_wall:.2f} s for normal traffic")


def _tracked(frames: list[bytes], tmp_path: Path, **options: object):
    """The streams of `frames` through the tracker (the sans-IO part), and the tracker."""
    from analyzer.decode.packet import PROTO_TCP
    from analyzer.pipeline import iter_packets
    from analyzer.tcp import TcpTracker
    from benchmarks.generate import PCAP_HEADER, RECORD

    path = tmp_path / "frames.pcap"
    with path.open("wb") as out:
        out.write(PCAP_HEADER)
        for number, frame in enumerate(frames):
            out.write(RECORD.pack(1_700_000_000, number, len(frame), len(frame)) + frame)
    tracker = TcpTracker(**options)  # type: ignore[arg-type]
    for pkt in iter_packets(path):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    return tracker


def test_one_byte_out_of_order_segments_hold_bounded_state(tmp_path: Path) -> None:
    """Shuffled one-byte segments with ACKs past the holes: the conflict tail stays a few
    objects and its hole list shrinks as the window moves, and every byte is accounted
    for as data or gap (20k packets: 19,685 one-byte segments, 312 ACKs, 3 handshake)."""
    from analyzer.tcp.flow import TAIL_PIECES

    frames = list(one_byte_ooo(20_000, random.Random(3)))
    tracker = _tracked(frames, tmp_path, keep_all=False)
    flows = [flow for stream in tracker._active.values() for flow in stream.flows]
    assert flows, "the stream is still open at the end of the capture"
    for flow in flows:
        assert len(flow.tail or ()) <= TAIL_PIECES + 1
        assert len(flow.tail_holes or ()) <= 4096 + TAIL_PIECES
    tracker.finish()
    (result,) = tracker.results()
    # Independently of the tracker: the client's segments as the frames say (Ethernet,
    # IPv4 and TCP without options: seq at byte 38, payload at 54).
    isn = int.from_bytes(frames[0][38:42], "big")
    offsets = {(int.from_bytes(frame[38:42], "big") - isn - 1) & 0xFFFFFFFF
               for frame in frames[3:] if len(frame) > 54}
    gap_bytes = sum(gap.length for gap in result.gaps)
    # every offset up to the highest sent is either delivered or a gap, never both
    assert result.client.bytes + gap_bytes == max(offsets) + 1
    assert result.client.bytes <= len(offsets)


def test_one_byte_segments_count_their_overhead_against_the_buffer(tmp_path: Path) -> None:
    """2,000 one-byte segments after a hole are 2,000 payload bytes but ~300 KB held: a
    100 KB buffer limit must give up the hole (a warning) long before the last."""
    from benchmarks.hostile import handshake, tcp4

    frames = handshake(40000, 80, 1000, 5000)
    frames += [tcp4(40000, 80, 1001 + offset, 5001, 0x18, b"x") for offset in range(1, 2001)]
    tracker = _tracked(frames, tmp_path, keep_all=True, out_of_order_limit=100_000)
    tracker.finish()
    (result,) = tracker.results()
    assert tracker.warnings and "out-of-order buffer" in tracker.warnings[0]
    assert [(gap.offset, gap.length) for gap in result.gaps] == [(0, 1)]
    assert result.client.bytes == 2000


def test_conflicts_are_counted_not_kept_by_read(tmp_path: Path) -> None:
    frames = list(conflicts(2003, random.Random(4)))
    counted = _tracked(frames, tmp_path, keep_all=False)
    counted.finish()
    (plain,) = counted.results()
    kept = _tracked(frames, tmp_path, keep_all=True)
    kept.finish()
    (full,) = kept.results()
    # 1000 retransmissions with other bytes than the first copy (the generator's design)
    assert plain.analysis["overlap_conflict"] == full.analysis["overlap_conflict"] == 1000
    assert plain.conflicts == []
    assert len(full.conflicts) == 1000
    # tcp ladder's spooled records carry the same conflicts: the generator's two payloads
    spooled = _tracked(frames, tmp_path, keep_all=True, record_log=RecordSpool)
    spooled.finish()
    (spool,) = spooled.results()
    assert spool.conflicts == full.conflicts
    payloads = {frame[-100:] for frame in frames[3:5]}
    assert all({c.first, c.retransmitted} == payloads for c in spool.conflicts)
