"""The TCP package's tables against their sources: RFC 9293's state diagram, Zeek's
conn_state documentation, Wireshark's completeness rule; and the tracker's memory bounds."""

from __future__ import annotations

import tracemalloc

import pytest

from analyzer.decode.packet import Packet
from analyzer.report.tcp_view import live_rows
from analyzer.tcp import TcpTracker, zeek
from analyzer.tcp import completeness as comp
from analyzer.tcp import lifecycle as lc

# RFC 9293 section 3.3.2 (Figure 5), arcs as "state + event -> state".
RFC_ARCS = [
    (lc.CLOSED, lc.SEND_SYN, lc.SYN_SENT),
    (lc.SYN_SENT, lc.RCV_SYN, lc.SYN_RECEIVED),
    (lc.SYN_SENT, lc.RCV_SYNACK, lc.ESTABLISHED),
    (lc.SYN_RECEIVED, lc.RCV_ACK_OF_SYN, lc.ESTABLISHED),
    (lc.SYN_RECEIVED, lc.SEND_FIN, lc.FIN_WAIT_1),
    (lc.ESTABLISHED, lc.SEND_FIN, lc.FIN_WAIT_1),
    (lc.ESTABLISHED, lc.RCV_FIN, lc.CLOSE_WAIT),
    (lc.FIN_WAIT_1, lc.RCV_ACK_OF_FIN, lc.FIN_WAIT_2),
    (lc.FIN_WAIT_1, lc.RCV_FIN, lc.CLOSING),
    (lc.FIN_WAIT_2, lc.RCV_FIN, lc.TIME_WAIT),
    (lc.CLOSING, lc.RCV_ACK_OF_FIN, lc.TIME_WAIT),
    (lc.CLOSE_WAIT, lc.SEND_FIN, lc.LAST_ACK),
    (lc.LAST_ACK, lc.RCV_ACK_OF_FIN, lc.CLOSED),
]


@pytest.mark.parametrize("state, event, after", RFC_ARCS)
def test_rfc9293_arcs(state: str, event: str, after: str) -> None:
    assert lc.step(state, event) == after


def test_unlisted_events_keep_the_state() -> None:
    assert lc.step(lc.ESTABLISHED, lc.SEND_SYN) == lc.ESTABLISHED
    assert lc.step(lc.TIME_WAIT, lc.RCV_FIN) == lc.TIME_WAIT  # a retransmitted FIN
    assert all(lc.step(s, lc.RCV_RST) == lc.CLOSED for s in lc.ALL_STATES
               if s not in (lc.CLOSED, lc.LISTEN))


# Zeek's documented conn_state meanings, with endpoint states that produce each.
ZEEK_CASES = [
    ("S0", zeek.SYN_SENT, zeek.INACTIVE, "S"),
    ("S1", zeek.ESTABLISHED, zeek.ESTABLISHED, "ShA"),
    ("SF", zeek.CLOSED, zeek.CLOSED, "ShADadFf"),
    ("REJ", zeek.SYN_SENT, zeek.RESET, "Sr"),
    ("S2", zeek.CLOSED, zeek.ESTABLISHED, "ShAF"),
    ("S3", zeek.ESTABLISHED, zeek.CLOSED, "ShAf"),
    ("RSTO", zeek.RESET, zeek.ESTABLISHED, "ShADR"),
    ("RSTR", zeek.ESTABLISHED, zeek.RESET, "ShADr"),
    ("RSTOS0", zeek.RESET, zeek.INACTIVE, "SR"),
    ("RSTRH", zeek.INACTIVE, zeek.RESET, "^hr"),
    ("SH", zeek.CLOSED, zeek.INACTIVE, "SF"),
    ("SHR", zeek.INACTIVE, zeek.CLOSED, "^hf"),
    ("OTH", zeek.PARTIAL, zeek.PARTIAL, "Dd"),
]


@pytest.mark.parametrize("expected, orig, resp, history", ZEEK_CASES)
def test_zeek_conn_state(expected: str, orig: str, resp: str, history: str) -> None:
    assert zeek.conn_state(orig, resp, 10, 10, history) == expected
    assert expected in zeek.CONN_STATES


def test_zeek_history_repeats_logarithmically() -> None:
    history = zeek.ZeekHistory()
    for _ in range(120):
        history.count(0, "T")
    assert history.text(originator=0, flipped=False) == "TTT"  # 1st, 10th, 100th


def test_zeek_history_letters_once_and_on_new_sequence() -> None:
    history = zeek.ZeekHistory()
    history.on_packet(0, 0x02, 100, 0)  # SYN
    history.on_packet(0, 0x02, 100, 0)  # same SYN again: not repeated
    history.on_packet(1, 0x12, 7, 0)  # SYN-ACK
    history.on_packet(0, 0x10, 101, 0)  # ACK
    history.on_packet(0, 0x18, 101, 5)  # data
    history.on_packet(0, 0x18, 106, 5)  # more data: D only once
    history.on_packet(0, 0x02, 999, 0)  # SYN with another sequence number: again
    history.on_packet(1, 0x16, 8, 0)  # SYN+RST: multi-flag
    assert history.text(originator=0, flipped=False) == "ShADSq"


@pytest.mark.parametrize("flags, length, bits", [
    (0x02, 0, 0), (0x12, 0, comp.SYN_ACK), (0x10, 0, comp.ACK), (0x18, 5, comp.DATA),
    (0x11, 0, comp.ACK | comp.FIN), (0x01, 0, 0), (0x04, 0, comp.RST),
    (0x14, 0, comp.ACK | comp.RST),
])
def test_completeness_rule(flags: int, length: int, bits: int) -> None:
    assert comp.on_packet(flags, length) == bits


def test_completeness_labels() -> None:
    assert comp.label(31) == "Complete, WITH_DATA"
    assert comp.label(23) == "Complete, NO_DATA"
    assert comp.label(7) == "Incomplete, ESTABLISHED"
    assert comp.label(1) == "Incomplete, SYN_SENT"
    assert comp.label(12) == "Incomplete"
    assert comp.creation_bits(0x02, 10) == comp.SYN_SENT | comp.DATA
    assert comp.creation_bits(0x12, 0) == 0


def _syn(port: int, ts: float) -> Packet:
    return Packet(port, ts, 0, 4, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 6, port, 80,
                  b"", 0, seq=port * 7, flags=0x02, window=1024)


def test_syn_flood_memory_is_bounded() -> None:
    """20k half-open connections: streams are evicted, memory stays bounded."""
    tracker = TcpTracker(max_active=1000)
    tracemalloc.start()
    for i in range(20_000):
        tracker.on_packet(_syn(1024 + i, 1000.0 + i * 1e-4))
        if i == 5_000:
            at_5k = tracemalloc.get_traced_memory()[0]
    at_20k = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(tracker._active) <= 1000
    assert tracker.evictions >= 18_000
    # Finished streams are small results; the live ones are bounded. Growth from 5k to
    # 20k SYNs is the results only (about 1.5 KiB each), not the tracking state (~20 KiB
    # per live stream with its hashers).
    assert (at_20k - at_5k) / 15_000 < 2500
    tracker.finish()
    results = tracker.results()
    assert [r.stream for r in results] == list(range(20_000))
    assert all(r.conn_state == "S0" and r.handshake == "incomplete" for r in results[:5])
    assert results[0].evicted


def test_idle_streams_are_finished_after_the_timeout() -> None:
    tracker = TcpTracker(idle_timeout=60)
    tracker.on_packet(_syn(2000, 0.0))
    for i in range(4096):  # sweeps run as new streams arrive
        tracker.on_packet(_syn(3000 + i, 100.0 + i * 1e-3))
    assert 0 not in tracker._active
    assert tracker.evictions >= 1


def test_default_keeps_no_stream_data() -> None:
    tracker = TcpTracker()
    tracker.on_packet(_syn(4000, 1.0))
    tracker.finish()
    (result,) = tracker.results()
    assert result.records is None and result.chunks is None


def _pkt(sport: int, dport: int, flags: int, seq: int, ack: int, ts: float,
         data: bytes = b"", forward: bool = True) -> Packet:
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    src, dst = (a, b) if forward else (b, a)
    return Packet(1, ts, 0, 4, src, dst, 6, sport, dport, data, len(data), seq=seq,
                  ack=ack, flags=flags, window=1024)


def test_closed_streams_are_freed_and_late_packets_still_count() -> None:
    """A closed stream is finished after closed_timeout; a late packet on its 4-tuple is
    counted in it (as Wireshark would), a new SYN with a new ISN opens a new stream."""
    results = []
    tracker = TcpTracker(closed_timeout=5, on_result=results.append)
    tracker.on_packet(_pkt(1000, 80, 0x02, 10, 0, 0.0))
    tracker.on_packet(_pkt(80, 1000, 0x12, 50, 11, 0.1, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x10, 11, 51, 0.2))
    tracker.on_packet(_pkt(1000, 80, 0x11, 11, 51, 0.3))
    tracker.on_packet(_pkt(80, 1000, 0x11, 51, 12, 0.4, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x10, 12, 52, 0.5))
    for i in range(1, 1025):  # other streams arriving trigger the sweep
        tracker.on_packet(_pkt(2000 + i, 80, 0x02, i, 0, 10.0 + i * 1e-3))
    assert results and results[0].stream == 0 and not results[0].evicted
    assert 0 not in tracker._active
    tracker.on_packet(_pkt(80, 1000, 0x11, 51, 12, 12.0, forward=False))  # a late FIN resend
    assert tracker.late_packets == 1
    tracker.on_packet(_pkt(1000, 80, 0x02, 999, 0, 13.0))  # the port is reused
    tracker.finish()
    reused = [r for r in results if r.client.endpoint == "10.0.0.1:1000"]
    assert [r.stream for r in reused] == [0, 1025]
    assert reused[1].labels == ["port-reuse"]


def test_a_packet_later_than_the_tombstone_window_opens_a_new_stream() -> None:
    """Past `tombstone_timeout` after its stream's last packet (a late one included), a
    packet on the 4-tuple is a new conversation seen mid-stream; up to then it counts in
    the old one."""
    results = []
    tracker = TcpTracker(closed_timeout=5, tombstone_timeout=30, on_result=results.append)
    tracker.on_packet(_pkt(1000, 80, 0x02, 10, 0, 0.0))
    tracker.on_packet(_pkt(80, 1000, 0x12, 50, 11, 0.1, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x14, 11, 51, 0.2))  # RST
    for i in range(1, 1025):  # other streams arriving trigger the sweep
        tracker.on_packet(_pkt(2000 + i, 80, 0x02, i, 0, 10.0 + i * 1e-3))
    tracker.on_packet(_pkt(80, 1000, 0x10, 51, 12, 30.2, forward=False))  # 30 s late
    tracker.on_packet(_pkt(1000, 80, 0x10, 11, 51, 60.2))  # 30 s after that one
    assert tracker.late_packets == 2
    tracker.on_packet(_pkt(80, 1000, 0x10, 51, 12, 90.3, forward=False))  # 30.1 s
    tracker.finish()
    mine = sorted((r for r in results if "10.0.0.1:1000" in (r.client.endpoint,
                                                             r.server.endpoint)),
                  key=lambda r: r.stream)
    assert [r.stream for r in mine] == [0, 1025]
    assert "midstream" in mine[1].labels and mine[1].packets == 1
    assert tracker.late_packets == 2


@pytest.mark.parametrize("keeps", [True, False])
def test_a_late_packet_updates_a_handed_over_result_only_when_it_is_kept(
        keeps: bool) -> None:
    """`read`'s table keeps some results it is handed (on_result returns True): a late
    packet must still count there; a JSON writer has serialized them: nothing to update."""
    results: list = []

    def take(result: object) -> bool:
        results.append(result)
        return keeps

    tracker = TcpTracker(closed_timeout=5, on_result=take)
    tracker.on_packet(_pkt(1000, 80, 0x02, 10, 0, 0.0))
    tracker.on_packet(_pkt(80, 1000, 0x12, 50, 11, 0.1, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x11, 11, 51, 0.3))
    tracker.on_packet(_pkt(80, 1000, 0x11, 51, 12, 0.4, forward=False))
    for i in range(1, 1025):  # other streams arriving trigger the sweep
        tracker.on_packet(_pkt(2000 + i, 80, 0x02, i, 0, 10.0 + i * 1e-3))
    (first,) = [r for r in results if r.stream == 0]
    assert (first.packets, first.end) == (4, 0.4)
    tracker.on_packet(_pkt(1000, 80, 0x10, 12, 52, 12.0))  # the last ACK, late
    assert tracker.late_packets == 1
    expected = (5, 12.0) if keeps else (4, 0.4)
    assert (first.packets, first.end) == expected


def test_live_rows_show_open_and_finished_streams() -> None:
    tracker = TcpTracker(closed_timeout=1)
    tracker.on_packet(_pkt(1000, 80, 0x02, 10, 0, 0.0))
    tracker.on_packet(_pkt(80, 1000, 0x12, 50, 11, 0.1, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x18, 11, 51, 0.2, data=b"hello"))
    (row,) = live_rows(tracker, 8)
    assert row == ("#0 10.0.0.1:1000 → 10.0.0.2:80", "3",
                   "ESTABLISHED / ESTABLISHED, 5 B → 0 B ←")  # the data ACKs the SYN-ACK
    tracker.on_packet(_pkt(80, 1000, 0x14, 51, 16, 0.3, forward=False))  # RST
    for i in range(1, 1025):  # new streams trigger the sweep that finishes stream 0
        tracker.on_packet(_pkt(3000 + i, 80, 0x02, i, 0, 10.0))
    rows = live_rows(tracker, 2000)
    assert rows[0] == ("#0 10.0.0.1:1000 → 10.0.0.2:80", "4",
                       "done: complete handshake, close rst (reset-by-server), 5 B → 0 B ←")
    assert len(live_rows(tracker, 8)) == 8


def test_live_rows_show_parked_streams_without_thawing_them() -> None:
    tracker = TcpTracker(park_timeout=5)
    tracker.on_packet(_pkt(1000, 80, 0x02, 10, 0, 0.0))
    tracker.on_packet(_pkt(80, 1000, 0x12, 50, 11, 0.1, forward=False))
    tracker.on_packet(_pkt(1000, 80, 0x18, 11, 51, 0.2, data=b"hello"))
    before = live_rows(tracker, 8)
    tracker.on_packet(_pkt(4000, 80, 0x02, 1, 0, 20.0))  # its sweep parks the quiet stream 0
    assert len(tracker._parked) == 1
    rows = live_rows(tracker, 8)
    assert rows[0] == before[0]
    assert len(tracker._parked) == 1 and 0 not in tracker._active  # still parked
