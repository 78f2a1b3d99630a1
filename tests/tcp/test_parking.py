"""Parked streams (analyzer/tcp/parking.py): a quiet open stream frozen into a compact value and
thawed by its next packet must be tracked exactly as if it had never been parked."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

from analyzer.decode.packet import PROTO_TCP, Packet
from analyzer.pipeline import iter_packets
from analyzer.report.tcp_json import stream_line
from analyzer.run.spill import SpillFile
from analyzer.tcp import TcpTracker, parking
from tests.conftest import CAPTURES_DIR, CORPUS_DIR, REPO_DIR, synthetic_capture


def _slots(path: Path, class_name: str) -> set[str]:
    """A class's __slots__ as written in its source (compiled classes do not show them)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.Assign) and \
                        getattr(item.targets[0], "id", None) == "__slots__":
                    return set(ast.literal_eval(item.value))
    raise AssertionError(f"no __slots__ in {class_name}")


def test_every_attribute_is_either_saved_or_remade() -> None:
    """An attribute added to a stream, a direction or the Zeek history without a word in
    the parking lists would be silently lost by a park and thaw."""
    stream_py = REPO_DIR / "analyzer" / "tcp" / "stream.py"
    flow_py = REPO_DIR / "analyzer" / "tcp" / "flow.py"
    zeek_py = REPO_DIR / "analyzer" / "tcp" / "zeek.py"
    stream_lists = (parking.STREAM_STATE, parking.STREAM_REMADE)
    flow_lists = (parking.FLOW_STATE, parking.FLOW_REMADE)
    for slots, (saved, remade) in ((_slots(stream_py, "Stream"), stream_lists),
                                   (_slots(flow_py, "Flow"), flow_lists)):
        assert not set(saved) & set(remade)
        assert set(saved) | set(remade) == slots
    assert set(parking.HISTORY_STATE) == _slots(zeek_py, "ZeekHistory")
    assert _slots(zeek_py, "ZeekEndpoints") == {"states"}  # saved as the state's tuple


def _json_lines(packets: list[Packet], park: bool, on_disk: bool = False) -> list[str]:
    """Every stream's JSON line, with a sweep a microsecond after every packet: with
    `park`, every open stream is parked each time, and thawed by its next packet;
    without, none ever is, and every stream opens whole (no probes). `on_disk`: parked
    in a SpillFile (as `read` does) whose write buffer is so small that nearly every
    record is read back from the file."""
    lines: list[str] = []
    tracker = TcpTracker(park_timeout=0.0 if park else 1e12,
                         lone_park_timeout=0.0 if park else 1e12,
                         on_result=lambda r: lines.append(stream_line(r)),
                         parking=SpillFile(block=64) if on_disk else None,
                         probes=park)
    parked_at_most = 0
    for pkt in packets:
        tracker.on_packet(pkt)
        tracker._sweep(pkt.ts + 1e-6)
        parked_at_most = max(parked_at_most, len(tracker._parked) + len(tracker._probes))
    tracker.finish()
    assert (parked_at_most > 0) == park
    return sorted(lines)


def _tcp_packets(path: Path) -> list[Packet]:
    return [pkt for pkt in iter_packets(path) if pkt.proto == PROTO_TCP]


def _tcp_captures() -> list[Path]:
    """Our recorded captures and the corpus (when present) that carry TCP."""
    found = sorted(CAPTURES_DIR.glob("*.pcap*"))
    if CORPUS_DIR.is_dir():
        found += sorted(p for p in CORPUS_DIR.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return [path for path in found if _tcp_packets(path)]


@pytest.mark.parametrize("capture", _tcp_captures(), ids=lambda p: p.name)
def test_parking_after_every_packet_changes_nothing_on_real_captures(capture: Path) -> None:
    packets = _tcp_packets(capture)
    assert _json_lines(packets, park=True, on_disk=True) == _json_lines(packets, park=False)


def test_parking_after_every_packet_changes_nothing_on_a_busy_capture(
        tmp_path: Path) -> None:
    """Thousands of interleaved connections with retransmissions, out-of-order segments
    waiting in a direction's buffer, gaps, FIN and RST closes (benchmarks/generate.py)."""
    packets = _tcp_packets(synthetic_capture(tmp_path, 12_000, 11, 200))
    parked = _json_lines(packets, park=True)
    assert len(parked) > 300
    assert parked == _json_lines(packets, park=False)
    assert parked == _json_lines(packets, park=True, on_disk=True)


def _pkt(flags: int, seq: int, ack: int, ts: float, data: bytes = b"",
         forward: bool = True, port: int = 40000) -> Packet:
    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    src, dst, sport, dport = (a, b, port, 80) if forward else (b, a, 80, port)
    return Packet(1, ts, 0, 4, src, dst, 6, sport, dport, data, len(data), seq=seq,
                  ack=ack, flags=flags, window=1024)


def _other_streams(tracker: TcpTracker, ts: float, count: int = 1024) -> None:
    """New connections: they trigger the tracker's sweep (every 1024 streams)."""
    for i in range(count):
        tracker.on_packet(_pkt(0x02, i, 0, ts + i * 1e-6, port=1024 + i))


def _quiet_then_resumed(park_timeout: float) -> list:
    results: list = []
    tracker = TcpTracker(park_timeout=park_timeout, on_result=results.append)
    tracker.on_packet(_pkt(0x02, 100, 0, 0.0))
    tracker.on_packet(_pkt(0x12, 500, 101, 0.01, forward=False))
    tracker.on_packet(_pkt(0x10, 101, 501, 0.02))
    tracker.on_packet(_pkt(0x18, 101, 501, 0.03, FIRST))
    _other_streams(tracker, 30.0)
    assert (len(tracker._parked) == 1) == (0 not in tracker._active)
    seq = 101 + len(FIRST)
    tracker.on_packet(_pkt(0x18, seq, 501, 600.0, LATER))  # ten minutes on
    assert 0 in tracker._active
    tracker.on_packet(_pkt(0x11, seq + len(LATER), 501, 600.1))
    tracker.on_packet(_pkt(0x11, 501, seq + len(LATER) + 1, 600.2, forward=False))
    tracker.finish()
    return [r for r in results if r.stream == 0]


FIRST, LATER = b"request " * 100, b"and the rest, ten minutes on " * 50


def test_a_stream_quiet_for_minutes_resumes_with_its_data_and_hash_intact() -> None:
    (result,) = _quiet_then_resumed(park_timeout=10.0)
    assert result.client.sha256 == hashlib.sha256(FIRST + LATER).hexdigest()
    assert result.client.bytes == len(FIRST + LATER)
    assert result.server.sha256 == hashlib.sha256(b"").hexdigest()
    assert (result.packets, result.handshake, result.close) == (7, "complete", "fin")
    assert not result.evicted
    (never_parked,) = _quiet_then_resumed(park_timeout=1e12)
    assert stream_line(result) == stream_line(never_parked)


def test_parked_streams_are_finished_after_the_idle_timeout_or_over_the_cap() -> None:
    results = []
    tracker = TcpTracker(idle_timeout=100, max_active=5000, on_result=results.append)
    tracker.on_packet(_pkt(0x02, 100, 0, 0.0))
    tracker.on_packet(_pkt(0x12, 500, 101, 0.01, forward=False))
    _other_streams(tracker, 20.0)  # parks stream 0 (and, later, these)
    assert len(tracker._parked) == 1
    _other_streams(tracker, 200.0, 6000)  # stream 0 is past its idle timeout
    (result,) = [r for r in results if r.stream == 0]
    assert result.evicted and result.packets == 2
    _other_streams(tracker, 400.0, 6000)  # over 5,000 parked: the oldest tenth goes
    assert len(tracker._parked) <= 5000 + 1024
    tracker.finish()
    assert sorted(r.stream for r in results) == list(range(tracker.stream_count))


def test_port_reuse_and_a_self_connection_while_parked_change_nothing() -> None:
    """A new SYN on a parked stream's 4-tuple (port reuse: the parked stream is finished
    and a new one opens), a late packet of the old one after that, and a connection from
    an address and port to themselves (both its keys equal): parking after every packet
    must give the same lines as never parking, and the streams Wireshark would see."""
    me = b"\x7f\x00\x00\x01"
    packets = [
        _pkt(0x02, 100, 0, 0.0),
        _pkt(0x12, 500, 101, 0.01, forward=False),
        _pkt(0x18, 101, 501, 0.02, b"first"),
        _pkt(0x02, 9000, 0, 30.0),  # same 4-tuple, new ISN: stream 1
        _pkt(0x12, 7000, 9001, 30.01, forward=False),
        _pkt(0x10, 9001, 7001, 30.02),
        _pkt(0x18, 101, 501, 30.03, b"first"),  # a resend of stream 0's data, late
        _pkt(0x11, 9001, 7001, 30.04),
        _pkt(0x11, 7001, 9002, 30.05, forward=False),
        _pkt(0x10, 9002, 7002, 30.06),
        # simultaneous open to itself (127.0.0.1:5000 -> 127.0.0.1:5000)
        Packet(1, 40.0, 0, 4, me, me, 6, 5000, 5000, b"", 0, seq=1, ack=0, flags=0x02,
               window=1024),
        Packet(1, 40.1, 0, 4, me, me, 6, 5000, 5000, b"self", 4, seq=2, ack=2,
               flags=0x18, window=1024),
    ]
    parked = _json_lines(packets, park=True)
    assert parked == _json_lines(packets, park=False)
    old, reused, itself = sorted((json.loads(line) for line in parked),
                                 key=lambda s: s["start"])
    assert (old["packets"], reused["packets"], itself["packets"]) == (3, 7, 2)
    assert old["client_sha256"] == hashlib.sha256(b"first").hexdigest()
    assert reused["labels"] == ["port-reuse"] and reused["close"] == "fin"
    assert itself["client_bytes"] + itself["server_bytes"] == len(b"self")


def test_a_lone_packet_is_parked_as_itself_and_replayed_exactly() -> None:
    """A scan's probes: streams of one packet without data (a SYN with options, over
    IPv4 and IPv6, a bare FIN, a RST, a SYN reusing a finished stream's ports) are parked
    as that packet, ~60 bytes, and thawed by replaying it: a SYN resent after a second
    and then answered, and a probe never answered, give the lines of never parking."""
    v6a, v6b = bytes.fromhex("fe80" + "00" * 13 + "01"), bytes.fromhex("fe80" + "00" * 13 + "02")
    options = bytes.fromhex("020405b4 0402 080a 0000abcd 00000000 01 030307".replace(" ", ""))
    packets = [
        _pkt(0x02, 100, 0, 0.0, port=41000),
        Packet(2, 0.1, 0, 6, v6a, v6b, 6, 41001, 443, b"", 0, seq=7, ack=0, flags=0x02,
               window=64800, tcp_options=options),
        _pkt(0x01, 55, 0, 0.2, port=41002),  # a FIN scan's probe
        _pkt(0x04, 66, 0, 0.3, port=41003),
        _pkt(0x02, 100, 0, 1.0, port=41000),  # the first SYN again, a second on
        _pkt(0x12, 500, 101, 1.01, forward=False, port=41000),
        _pkt(0x10, 101, 501, 1.02, port=41000),
        _pkt(0x18, 101, 501, 1.03, b"hello", port=41000),
    ]
    tracker = TcpTracker(park_timeout=0.0, lone_park_timeout=0.0, probes=False)
    tracker.on_packet(packets[1])
    tracker._sweep(0.2)
    (entry,) = tracker._parked.values()
    record = tracker.parking.get(parking.parked_handle(entry))
    assert parking.PARKED.unpack_from(record) == (0, True)  # stream 0, lone
    assert len(record) < 90 and not tracker._parked_hashers
    probing = TcpTracker()  # with probes, the packet is that record from the start
    probing.on_packet(packets[1])
    assert list(probing._probes.values()) == [record] and not probing._active
    parked_lines = _json_lines(packets, park=True)
    assert parked_lines == _json_lines(packets, park=False)
    by_port = {json.loads(line)["client"].rsplit(":", 1)[1]: json.loads(line)
               for line in parked_lines}
    answered = by_port["41000"]
    assert (answered["packets"], answered["handshake"]) == (5, "complete")
    assert answered["client_sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert answered["analysis"]["retransmission"] == 1
    assert by_port["41001"]["history"] == "S" and by_port["41001"]["packets"] == 1
