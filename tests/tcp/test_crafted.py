"""Crafted conversations (scapy) with truth known by construction, one per label and per
reassembly case; tshark double-checks stream numbers, completeness and Follow bytes.

Expected endpoint states follow RFC 9293's figures: 6 (three-way handshake), 7
(simultaneous open), 12 (normal close), 13 (simultaneous close). Expected Zeek history and
conn_state apply Zeek's documented rules (see analyzer/tcp/zeek.py) to the packets sent.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analyzer.report.tcp_json import stream_object
from tests.conftest import require_tool
from tests.tcp.craft_tcp import Conversation, analyze, analyze_one
from tests.tcp.tshark_tcp import (
    missing_marker,
    parse_follow_raw,
    tshark_analysis,
    tshark_follow,
    tshark_streams,
)

REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def _exchange(conv: Conversation) -> Conversation:
    conv.send(True, "PA", REQUEST)
    conv.send(False, "A")
    conv.send(False, "PA", RESPONSE)
    conv.send(True, "A")
    return conv


def _states(result) -> list[tuple[str, str]]:
    return [(r.client_state, r.server_state) for r in result.records]


def _agrees_with_tshark(path: Path, results) -> None:
    """Stream of every frame, final completeness and Follow bytes, as tshark says."""
    require_tool("tshark")
    oracle = tshark_streams(path)
    assert {rec.frame: r.stream for r in results for rec in r.records} == oracle.frames
    assert {r.stream: r.completeness for r in results} == oracle.completeness
    for result in results:
        if result.gaps:
            continue
        follow = parse_follow_raw(tshark_follow(path, result.stream, "raw"))
        if follow.node0 == result.client.endpoint:
            assert (follow.data0, follow.data1) == (result.client_data(), result.server_data())
        else:
            assert (follow.data1, follow.data0) == (result.client_data(), result.server_data())


def test_normal_connection_four_way_close(tmp_path: Path) -> None:
    conv = _exchange(Conversation().handshake(options=True)).close()
    path = conv.write(tmp_path / "normal.pcap")
    result = analyze_one(path)
    assert (result.client.endpoint, result.server.endpoint) == ("10.0.0.1:40000", "10.0.0.2:80")
    assert not result.direction_guessed
    assert (result.handshake, result.close, result.labels) == ("complete", "fin", [])
    assert result.active_closer == "client"
    assert result.completeness == 1 | 2 | 4 | 8 | 16
    assert result.completeness_label == "Complete, WITH_DATA"
    assert result.history == "ShADadFf"
    assert result.conn_state == "SF"
    assert result.client.bytes == len(REQUEST)
    assert result.server.sha256 == hashlib.sha256(RESPONSE).hexdigest()
    assert result.client.isn == 1000 and result.server.isn == 5000
    assert result.client.options == {"mss": 1460, "wscale": 7, "sack_perm": True,
                                     "timestamps": (1, 0)}
    assert result.initial_rtt == pytest.approx(0.002, abs=1e-6)  # SYN at t+1ms, final ACK at t+3ms
    assert _states(result) == [
        ("SYN-SENT", "LISTEN"), ("ESTABLISHED", "SYN-RECEIVED"), ("ESTABLISHED", "ESTABLISHED"),
        *[("ESTABLISHED", "ESTABLISHED")] * 4,
        ("FIN-WAIT-1", "CLOSE-WAIT"), ("FIN-WAIT-2", "CLOSE-WAIT"),
        ("TIME-WAIT", "LAST-ACK"), ("TIME-WAIT", "CLOSED")]
    rel = [(r.rel_seq, r.rel_ack) for r in result.records]
    assert rel[:4] == [(0, 0), (0, 1), (1, 1), (1, 1)]
    assert rel[-1] == (len(REQUEST) + 2, len(RESPONSE) + 2)
    assert result.analysis == dict.fromkeys(result.analysis, 0)
    assert stream_object(result)["type"] == "tcp_stream"
    _agrees_with_tshark(path, [result])


def test_three_packet_close(tmp_path: Path) -> None:
    conv = _exchange(Conversation().handshake()).close(three_way=True)
    result = analyze_one(conv.write(tmp_path / "close3.pcap"))
    assert result.close == "fin" and result.active_closer == "client"
    assert _states(result)[-3:] == [("FIN-WAIT-1", "CLOSE-WAIT"), ("TIME-WAIT", "LAST-ACK"),
                                    ("TIME-WAIT", "CLOSED")]
    assert result.conn_state == "SF"


def test_sequence_wraparound(tmp_path: Path) -> None:
    conv = Conversation(client_isn=(1 << 32) - 60).handshake()
    pieces = [bytes([65 + i]) * 40 for i in range(4)]  # crosses 2**32 in the 2nd piece
    for piece in pieces:
        conv.send(True, "PA", piece)
    conv.send(False, "A").close()
    path = conv.write(tmp_path / "wrap.pcap")
    result = analyze_one(path)
    assert result.client_data() == b"".join(pieces)
    assert result.client.bytes == 160 and result.gaps == []
    assert result.analysis["retransmission"] == 0 and result.analysis["lost_segment"] == 0
    assert result.close == "fin" and list(result.records)[-1].client_state == "TIME-WAIT"
    _agrees_with_tshark(path, [result])


def test_out_of_order_segments(tmp_path: Path) -> None:
    conv = Conversation().handshake()
    first, second = b"a" * 100, b"b" * 100
    base = conv.next[True]
    conv.send(True, "PA", second, seq=base + 100)  # arrives first
    conv.send(True, "PA", first, seq=base)
    conv.next[True] = base + 200
    conv.send(False, "A").close()
    path = conv.write(tmp_path / "ooo.pcap")
    result = analyze_one(path)
    assert result.client_data() == first + second
    assert result.gaps == []
    assert result.analysis["out_of_order"] == 1
    assert result.analysis["lost_segment"] == 1  # the early segment leaves a hole first
    assert _analysis_subset(result) == _analysis_subset_tshark(path)
    _agrees_with_tshark(path, [result])


def test_conflicting_retransmission_keeps_first_copy(tmp_path: Path) -> None:
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"A" * 50)
    conv.send(True, "PA", b"B" * 50, seq=base, dt=0.5)  # same bytes, other content
    conv.send(True, "PA", b"C" * 10)
    conv.send(False, "A").close()
    path = conv.write(tmp_path / "conflict.pcap")
    result = analyze_one(path)
    assert result.client_data() == b"A" * 50 + b"C" * 10
    assert result.analysis["overlap_conflict"] == 1
    assert result.analysis["retransmission"] == 1
    (conflict,) = result.conflicts
    assert (conflict.offset, conflict.first, conflict.retransmitted) == (0, b"A" * 50, b"B" * 50)
    assert result.history.count("T") == 1
    _agrees_with_tshark(path, [result])  # tshark's Follow also keeps the first copy


def test_partial_overlap_takes_only_new_bytes(tmp_path: Path) -> None:
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"0123456789")
    conv.send(True, "PA", b"56789abcdef", seq=base + 5)
    conv.next[True] = base + 16
    conv.send(False, "A").close()
    path = conv.write(tmp_path / "overlap.pcap")
    result = analyze_one(path)
    assert result.client_data() == b"0123456789abcdef"
    assert result.analysis["overlap_conflict"] == 0
    _agrees_with_tshark(path, [result])


def test_lost_segment_is_a_gap_not_text(tmp_path: Path) -> None:
    require_tool("tshark")
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"1" * 100)
    conv.send(True, "PA", b"3" * 100, seq=base + 200)  # bytes 100..199 never captured
    conv.next[True] = base + 300
    conv.send(False, "A")  # the server got everything: acks 300
    conv.close()
    path = conv.write(tmp_path / "lost.pcap")
    result = analyze_one(path)
    assert result.client_data() == b"1" * 100 + b"3" * 100
    assert [(g.from_client, g.offset, g.length) for g in result.gaps] == [(True, 100, 100)]
    assert stream_object(result)["gaps"] == [{"direction": "client", "offset": 100, "length": 100}]
    assert result.client.bytes == 200
    assert result.analysis["lost_segment"] == 1
    assert "G" in result.history
    # tshark splices a text marker into the data itself: the corruption we avoid.
    follow = parse_follow_raw(tshark_follow(path, 0, "raw"))
    assert follow.data0 == b"1" * 100 + missing_marker(100) + b"3" * 100
    assert _analysis_subset(result) == _analysis_subset_tshark(path)


def test_gap_at_the_end_of_capture(tmp_path: Path) -> None:
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"x" * 10)
    conv.send(True, "PA", b"z" * 10, seq=base + 20)  # never acknowledged, capture ends
    result = analyze_one(conv.write(tmp_path / "tailgap.pcap"))
    assert result.client_data() == b"x" * 10 + b"z" * 10
    assert [(g.offset, g.length) for g in result.gaps] == [(10, 10)]


def test_out_of_order_buffer_is_bounded(tmp_path: Path) -> None:
    conv = Conversation().handshake()
    base = conv.next[True]
    for i in range(1, 6):  # bytes 0..99 missing, five segments of 100 bytes after them
        conv.send(True, "PA", bytes([48 + i]) * 100, seq=base + 100 * i)
    path = conv.write(tmp_path / "bounded.pcap")
    from analyzer.decode.packet import PROTO_TCP
    from analyzer.pipeline import iter_packets
    from analyzer.tcp import TcpTracker

    tracker = TcpTracker(keep_all=True, out_of_order_limit=250)
    for pkt in iter_packets(path):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    tracker.finish()
    (result,) = tracker.results()
    assert [(g.offset, g.length) for g in result.gaps] == [(0, 100)]
    assert result.client.bytes == 500
    assert tracker.warnings and "out-of-order buffer" in tracker.warnings[0]


def test_port_reuse_starts_a_new_stream(tmp_path: Path) -> None:
    first = _exchange(Conversation().handshake()).close()
    second = Conversation(client_isn=900_000, server_isn=700_000, start=first.time + 1)
    _exchange(second.handshake()).close()
    conv = Conversation()
    conv.packets = first.packets + second.packets
    path = conv.write(tmp_path / "reuse.pcap")
    results = analyze(path)
    assert [r.stream for r in results] == [0, 1]
    assert results[0].labels == [] and results[1].labels == ["port-reuse"]
    assert list(results[1].records)[0].events[0] == "port-reuse"
    assert all(r.handshake == "complete" and r.close == "fin" for r in results)
    _agrees_with_tshark(path, results)


def test_syn_with_data(tmp_path: Path) -> None:
    conv = Conversation()
    conv.send(True, "S", b"early request")
    conv.send(False, "SA")
    conv.send(True, "A")
    conv.send(False, "PA", b"reply")
    conv.send(True, "A").close()
    path = conv.write(tmp_path / "syndata.pcap")
    result = analyze_one(path)
    assert result.labels == ["syn-data"]
    assert result.client_data() == b"early request"
    assert result.handshake == "complete"
    assert result.completeness & 8  # DATA, set by the creating SYN
    _agrees_with_tshark(path, [result])


def test_simultaneous_open(tmp_path: Path) -> None:
    conv = Conversation()
    conv.send(True, "S")
    conv.send(False, "S")
    conv.send(True, "SA", seq=conv.client_isn)
    conv.send(False, "SA", seq=conv.server_isn)
    _exchange(conv).close()
    path = conv.write(tmp_path / "simopen.pcap")
    result = analyze_one(path)
    assert "simultaneous-open" in result.labels
    assert result.client.endpoint == "10.0.0.1:40000"  # the first SYN's sender
    assert _states(result)[:4] == [
        ("SYN-SENT", "LISTEN"), ("SYN-RECEIVED", "SYN-RECEIVED"),
        ("SYN-RECEIVED", "ESTABLISHED"), ("ESTABLISHED", "ESTABLISHED")]
    assert result.handshake == "complete"
    _agrees_with_tshark(path, [result])


def test_simultaneous_close(tmp_path: Path) -> None:
    conv = _exchange(Conversation().handshake())
    client_fin = conv.next[True]
    conv.send(True, "FA")
    conv.send(False, "FA", ack=client_fin)  # sent before the client's FIN arrived
    conv.send(True, "A")
    conv.send(False, "A")
    path = conv.write(tmp_path / "simclose.pcap")
    result = analyze_one(path)
    assert "simultaneous-close" in result.labels
    assert result.close == "fin"
    assert _states(result)[-4:] == [("FIN-WAIT-1", "CLOSE-WAIT"), ("CLOSING", "CLOSING"),
                                    ("CLOSING", "TIME-WAIT"), ("TIME-WAIT", "TIME-WAIT")]
    _agrees_with_tshark(path, [result])


def test_half_close(tmp_path: Path) -> None:
    conv = _exchange(Conversation().handshake())
    conv.send(True, "FA")
    conv.send(False, "A")
    conv.send(False, "PA", b"more data after the client's FIN")
    conv.send(True, "A")
    path = conv.write(tmp_path / "half.pcap")
    result = analyze_one(path)
    assert result.close == "half" and result.active_closer == "client"
    assert result.server_data() == RESPONSE + b"more data after the client's FIN"
    assert _states(result)[-1] == ("FIN-WAIT-2", "CLOSE-WAIT")
    assert result.conn_state == "S2"  # originator closed, responder did not reply with FIN
    _agrees_with_tshark(path, [result])


def test_refused(tmp_path: Path) -> None:
    conv = Conversation()
    conv.send(True, "S")
    conv.send(False, "RA", seq=0)
    path = conv.write(tmp_path / "refused.pcap")
    result = analyze_one(path)
    assert result.labels == ["refused"]
    assert (result.handshake, result.close) == ("incomplete", "rst")
    assert result.conn_state == "REJ"
    assert result.history == "Sr"
    assert _states(result) == [("SYN-SENT", "LISTEN"), ("CLOSED", "CLOSED")]
    assert "refused" in list(result.records)[1].events
    _agrees_with_tshark(path, [result])


@pytest.mark.parametrize("by_client", [True, False])
def test_reset_by_either_side(tmp_path: Path, by_client: bool) -> None:
    conv = _exchange(Conversation().handshake())
    conv.send(by_client, "RA", b"shutting down")
    path = conv.write(tmp_path / "reset.pcap")
    result = analyze_one(path)
    who = "client" if by_client else "server"
    assert result.labels == [f"reset-by-{who}"]
    assert result.close == "rst"
    assert result.conn_state == ("RSTO" if by_client else "RSTR")
    side = result.client if by_client else result.server
    assert side.rst_cause == "shutting down"
    # Follow shows a RST's payload as stream data (tshark does too)
    sent = (REQUEST + b"shutting down", RESPONSE) if by_client else (
        REQUEST, RESPONSE + b"shutting down")
    assert (result.client_data(), result.server_data()) == sent
    assert _states(result)[-1] == ("CLOSED", "CLOSED")
    assert result.completeness & 32
    _agrees_with_tshark(path, [result])


def test_midstream_pickup(tmp_path: Path) -> None:
    conv = Conversation()
    _exchange(conv)
    path = conv.write(tmp_path / "midstream.pcap")
    result = analyze_one(path)
    assert result.labels == ["midstream"]
    assert result.direction_guessed
    assert result.handshake == "none" and result.close == "none"
    assert result.conn_state == "OTH"
    assert result.client_data() == REQUEST and result.server_data() == RESPONSE
    assert list(result.records)[0].rel_seq == 1  # as Wireshark: relative to first seq - 1
    assert _states(result)[0] == ("ESTABLISHED", "ESTABLISHED")
    _agrees_with_tshark(path, [result])


def test_ipv6(tmp_path: Path) -> None:
    conv = _exchange(Conversation(client=("fd00::1", 40000), server=("fd00::2", 443))
                     .handshake()).close()
    path = conv.write(tmp_path / "v6.pcap")
    result = analyze_one(path)
    assert result.client.endpoint == "[fd00::1]:40000"
    assert result.server.endpoint == "[fd00::2]:443"
    assert result.handshake == "complete" and result.close == "fin"
    _agrees_with_tshark(path, [result])


def test_expert_analysis_matches_tshark(tmp_path: Path) -> None:
    """Duplicate ACKs, fast retransmission, zero window and keep-alive, as Wireshark
    flags them."""
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"a" * 100)
    conv.send(True, "PA", b"b" * 100, seq=base + 200)  # 100..199 lost
    conv.next[True] = base + 300
    for _ in range(3):  # the server keeps asking for byte 100
        conv.send(False, "A", ack=base + 100)
    conv.send(True, "PA", b"L" * 100, seq=base + 100, dt=0.0005)  # fast retransmission
    conv.send(False, "A", ack=base + 300, window=0)  # and the receiver is full
    conv.send(True, "A", seq=base + 299, dt=5)  # keep-alive
    conv.send(False, "A", ack=base + 300, window=8192, dt=0.5)
    path = conv.write(tmp_path / "expert.pcap")
    result = analyze_one(path)
    tshark = _analysis_subset_tshark(path)
    assert _analysis_subset(result) == tshark
    assert result.analysis["fast_retransmission"] == 1
    assert result.analysis["dup_ack"] == 2  # the 2nd and 3rd identical ACKs
    assert result.analysis["zero_window"] == 1 and result.analysis["keep_alive"] == 1
    assert result.client_data() == b"a" * 100 + b"L" * 100 + b"b" * 100


def _analysis_subset(result) -> dict[str, int]:
    return {k: v for k, v in result.analysis.items() if k != "overlap_conflict"}


def _analysis_subset_tshark(path: Path) -> dict[str, int]:
    require_tool("tshark")
    return tshark_analysis(path)


def test_syn_ack_without_syn_makes_its_receiver_the_client(tmp_path: Path) -> None:
    conv = Conversation()
    conv.next[True] += 1  # the SYN (never captured) took sequence number 1000
    conv.send(False, "SA")
    conv.send(True, "A")
    _exchange(conv)
    result = analyze_one(conv.write(tmp_path / "synack-first.pcap"))
    assert result.client.endpoint == "10.0.0.1:40000" and result.direction_guessed
    assert result.handshake == "incomplete" and "midstream" not in result.labels
    assert result.history.startswith("^h")
    assert [(r.client_state, r.server_state) for r in list(result.records)[:2]] == [
        ("ESTABLISHED", "SYN-RECEIVED"), ("ESTABLISHED", "ESTABLISHED")]
