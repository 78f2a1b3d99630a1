"""Probes (TcpTracker's `probes`): a stream of one packet without data is kept as that
packet, and its result made from the result of an earlier probe of the same shape
(parking.lone_result). Every such result must equal the one the full path gives (a
`Stream` opened, finished), field by field, for every flag combination, IPv4 and IPv6,
and whatever the sequence and acknowledgement numbers; and a flood with port reuse must
give the same results as a tracker that opens every stream whole."""

from __future__ import annotations

import io
import json
import random
from typing import Any

import pytest

from analyzer.decode.packet import PROTO_TCP, Packet
from analyzer.report.tcp_json import stream_line, stream_tail
from analyzer.run.results import TcpLines
from analyzer.tcp import TcpTracker, parking
from analyzer.tcp.result import TcpStreamResult
from tests.conftest import REPO_DIR
from tests.tcp.test_parking import _slots

RESULT_PY = REPO_DIR / "analyzer" / "tcp" / "result.py"
V4 = (b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02")
V6 = (bytes.fromhex("20010db8" + "00" * 11 + "01"), bytes.fromhex("20010db8" + "00" * 11 + "02"))
OPTIONS = bytes.fromhex("020405b40402080a0000abcd0000000001030307")
# sequence / acknowledgement numbers at the edges of their space, and a few others
NUMBERS = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 12345, 0xDEADBEEF)


# the attributes of a result and of its sides, as written in the source
RESULT_SLOTS = sorted(_slots(RESULT_PY, "TcpStreamResult") - {"template"})
SIDE_SLOTS = sorted(_slots(RESULT_PY, "SideInfo"))


def _fields(result: TcpStreamResult) -> dict[str, Any]:
    """Every attribute of a result, its sides' too."""
    fields = {name: getattr(result, name) for name in RESULT_SLOTS}
    for side in ("client", "server"):
        info = fields.pop(side)
        fields.update({f"{side}.{name}": getattr(info, name) for name in SIDE_SLOTS})
    return fields


def _packet(version: int, flags: int, seq: int, ack: int, window: int, frame: int,
            ts: float, port: int, options: bytes = b"") -> Packet:
    src, dst = V4 if version == 4 else V6
    return Packet(frame, ts, 0, version, src, dst, PROTO_TCP, port, 80, b"", 0, seq=seq,
                  ack=ack, flags=flags, window=window, tcp_options=options)


TRACKER = TcpTracker(probes=False)  # what the streams below belong to (they never see it)


def _full_path(pkt: Packet, number: int, reused: bool, evicted: bool) -> TcpStreamResult:
    """The result of a stream of this one packet as the full path makes it."""
    record = parking.lone_record(number, pkt, reused)
    return parking.thaw(TRACKER, pkt.key, record, None).finish(evicted)


@pytest.mark.parametrize("version", [4, 6])
def test_a_probe_result_equals_the_full_path_for_every_flag_combination(
        version: int) -> None:
    rng = random.Random(version)
    compared = 0
    for flags in range(1 << 9):  # FIN ... CWR, and NS
        for window, options in ((0, b""), (1024, b""), (64240, OPTIONS)):
            for reused in (False, True):
                first = _packet(version, flags, rng.getrandbits(32), rng.getrandbits(32),
                                window, 7, 100.5, 40000, options)
                template = _full_path(first, 3, reused, evicted=False)
                seq, ack = rng.choice(NUMBERS), rng.choice(NUMBERS)
                evicted = bool(rng.getrandbits(1))
                pkt = _packet(version, flags, seq, ack, window, 90210,
                              1700000000.25 + rng.random(), rng.randrange(1024, 65536),
                              options)
                record = parking.lone_record(11, pkt, reused)
                assert parking.lone_shape(pkt.key, record) == parking.lone_shape(
                    first.key, parking.lone_record(3, first, reused))
                made = parking.lone_result(template, pkt.key, record, evicted)
                full = _full_path(pkt, 11, reused, evicted)
                assert _fields(made) == _fields(full), (flags, window, reused, seq, ack)
                assert stream_line(made) == stream_line(full)
                assert made.template is template and stream_tail(template) == stream_tail(full)
                replayed = parking.thaw(TRACKER, pkt.key, record, None)
                assert parking.lone_isn(record) == replayed.flows[0].isn
                compared += 1
    assert compared == (1 << 9) * 3 * 2


def test_a_negative_time_ends_where_the_full_path_ends_it() -> None:
    """A stream's end is the later of its directions' last packets; the silent one's is
    0.0, so a probe before 1970 ends at 0.0 too."""
    pkt = _packet(4, 0x02, 5, 0, 1024, 1, -3.5, 40000)
    template = _full_path(_packet(4, 0x02, 9, 0, 1024, 2, 10.0, 41000), 0, False, False)
    made = parking.lone_result(template, pkt.key, parking.lone_record(1, pkt, False), False)
    assert _fields(made) == _fields(_full_path(pkt, 1, False, False))
    assert made.end == 0.0 and made.start == -3.5


def _flood(probes: bool, packets: list[Packet]) -> list[dict[str, Any]]:
    results: list[TcpStreamResult] = []
    tracker = TcpTracker(probes=probes, on_result=results.append)
    for pkt in packets:
        tracker.on_packet(pkt)
    tracker.finish()
    assert sorted(r.stream for r in results) == list(range(tracker.stream_count))
    return [_fields(r) for r in sorted(results, key=lambda r: r.stream)]


def test_a_flood_with_port_reuse_gives_the_results_of_whole_streams() -> None:
    """SYNs (and other probes) from a few hundred ports, so that most reuse a port still
    open, parked or finished; some answered (SYN-ACK, RST), some resent with the same
    ISN, some followed by data; over IPv4 and IPv6, long enough for sweeps, parking
    and tombstones to come into it."""
    rng = random.Random(23)
    packets = []
    ts = 1700000000.0
    for frame in range(1, 20_001):
        ts += rng.choice((0.0001, 0.001, 0.01, 0.3))
        version = 4 if rng.random() < 0.7 else 6
        port = rng.randrange(20000, 20400)
        kind = rng.random()
        if kind < 0.6:
            flags, forward = 0x02, True  # a SYN
        elif kind < 0.7:
            flags, forward = rng.choice((0x12, 0x14, 0x04)), False  # an answer
        elif kind < 0.8:
            flags, forward = rng.randrange(1 << 9), rng.random() < 0.5  # anything
        else:
            flags, forward = 0x10, True  # an ACK
        seq = rng.choice((rng.getrandbits(32), 1000, 1000))  # ISNs repeat: resends
        data = b"x" * rng.choice((0, 0, 0, 5))
        src, dst = V4 if version == 4 else V6
        sport, dport = port, 80
        if not forward:
            src, dst, sport, dport = dst, src, dport, sport
        packets.append(Packet(frame, ts, 0, version, src, dst, PROTO_TCP, sport, dport,
                              data, len(data), seq=seq, ack=rng.getrandbits(32),
                              flags=flags, window=rng.choice((0, 512, 1024))))
    whole = _flood(False, packets)
    assert len(whole) > 2500
    assert sum(1 for r in whole if "port-reuse" in r["labels"]) > 500
    assert _flood(True, packets) == whole
    # and `read --json`'s lines, with probes' results made or (on_probe) not made
    lines = _lines(packets, on_probe=False)
    assert _lines(packets, on_probe=True) == lines
    assert [json.loads(line)["stream"] for line in lines[:-1]] == [r["stream"] for r in whole]


def _lines(packets: list[Packet], on_probe: bool) -> list[str]:
    """The tcp_stream lines `read --json` prints for these packets (TcpLines), with the
    tracker's counts at the end."""
    lines = TcpLines()
    tracker = TcpTracker(on_result=lines.add,
                         on_probe=lines.add_probe if on_probe else None)
    for pkt in packets:
        tracker.on_packet(pkt)
    tracker.finish()
    out = io.StringIO()
    lines.write_ordered(out)
    counts = (tracker.stream_count, tracker.evictions, tracker.late_packets)
    return [*out.getvalue().splitlines(), repr(counts)]
