"""`tcp ladder` spools its per-packet records to a temporary file (analyzer/run/spill.py
`RecordSpool`) instead of keeping them in memory (`tcp.result.RecordList`, the tracker's
default): the records read back, and the ladder drawn from them, are the in-memory ones,
on every real capture; and both agree with tshark on every packet's stream, direction and
relative seq/ack, streams whose client is not the first sender included."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.decode.packet import PROTO_TCP, parse_tcp_options
from analyzer.pipeline import iter_packets
from analyzer.report.tcp_view import LADDER_WIDTH, print_ladder
from analyzer.report.wireshark_view import frame_hint
from analyzer.run.read import one_tcp_stream
from analyzer.run.spill import RecordSpool, SpillFile
from analyzer.tcp import TcpStreamResult, TcpTracker
from analyzer.tcp import vocabulary as vocab
from analyzer.tcp.result import Conflict, PacketRecord, RecordList
from tests.conftest import CAPTURES_DIR, REPO_DIR, require_tool
from tests.oracle import real_capture_params
from tests.tcp.craft_tcp import Conversation

CAPTURES = [param for param in real_capture_params()
            if any(pkt.proto == PROTO_TCP for pkt in iter_packets(param.values[0]))]


def _fields(record: PacketRecord) -> tuple:
    return (record.frame, record.ts, record.from_client, record.flags, record.seq,
            record.ack, record.length, record.window, record.rel_seq, record.rel_ack,
            record.client_state, record.server_state, record.events, record.tcp_options,
            record.options, record.conflict)


def _results(path: Path, record_log: type) -> list[TcpStreamResult]:
    tracker = TcpTracker(keep_all=True, record_log=record_log)
    for pkt in iter_packets(path):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    tracker.finish()
    return tracker.results()


def _tshark_packets(path: Path) -> dict[int, tuple]:
    """tshark's view of every TCP frame: (tcp.stream, sender "addr:port", relative seq,
    relative ack or 0 without ACK, tcp.len, window as on the wire, flags)."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", "tcp", "-T", "fields", "-e", "frame.number",
         "-e", "tcp.stream", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
         "-e", "tcp.seq", "-e", "tcp.ack", "-e", "tcp.flags.ack", "-e", "tcp.len",
         "-e", "tcp.window_size_value", "-e", "tcp.flags"],
        capture_output=True, text=True, check=True, timeout=120).stdout
    packets = {}
    for line in out.splitlines():
        frame, stream, ip4, ip6, port, seq, ack, acked, length, window, flags = \
            line.split("\t")
        sender = f"{ip4}:{port}" if ip4 else f"[{ip6}]:{port}"
        packets[int(frame)] = (int(stream), sender, int(seq),
                               int(ack) if acked == "1" else 0, int(length), int(window),
                               int(flags, 16))
    return packets


def _check(path: Path) -> list[TcpStreamResult]:
    """Spooled records == in-memory records, field by field, and both == tshark."""
    kept = _results(path, RecordList)
    spooled = _results(path, RecordSpool)
    oracle = _tshark_packets(path)
    assert [r.stream for r in spooled] == [r.stream for r in kept]
    seen = set()
    for mine, theirs in zip(spooled, kept, strict=True):
        assert mine.records is not None and theirs.records is not None
        assert isinstance(mine.records, RecordSpool)
        records = list(mine.records)
        assert [_fields(r) for r in records] == [_fields(r) for r in theirs.records]
        assert len(mine.records) == len(theirs.records) == \
            sum(1 for packet in oracle.values() if packet[0] == mine.stream)
        assert mine.records.max_frame() == theirs.records.max_frame() == \
            max(r.frame for r in records)
        client = mine.client.endpoint
        for record in records:
            seen.add(record.frame)
            stream, sender, rel_seq, rel_ack, length, window, flags = oracle[record.frame]
            assert (mine.stream, record.from_client, record.rel_seq, record.rel_ack,
                    record.length, record.window, record.flags) == \
                (stream, sender == client, rel_seq, rel_ack, length, window, flags), \
                (path.name, record.frame)
    assert seen == set(oracle)
    return spooled


@pytest.mark.parametrize("path", CAPTURES)
def test_spooled_records_are_the_kept_records_and_tsharks(path: Path) -> None:
    require_tool("tshark")
    _check(path)


def test_client_second_sender_is_swapped(corpus_dir: Path, tmp_path: Path) -> None:
    """Streams whose first packet the server sent: the SYN-ACK captured before the SYN
    (zeek's handshake-reorder.pcap), and real captures with their SYNs filtered out
    (tcpdump), so the SYN-ACK comes first and its receiver is the client."""
    require_tool("tshark")
    require_tool("tcpdump")
    paths = [corpus_dir / "zeek__tcp_handshake-reorder.pcap"]
    for name in ("tcp-exchange.pcap", "http-fetch.pcap"):
        path = tmp_path / f"no-syn-{name}"
        subprocess.run(["tcpdump", "-r", str(CAPTURES_DIR / name), "-w", str(path),
                        "tcp[tcpflags] & (tcp-syn|tcp-ack) != tcp-syn"],
                       check=True, capture_output=True, timeout=60)
        paths.append(path)
    for path in paths:
        swapped = [r for r in _check(path) if not next(iter(r.records or ())).from_client]
        assert swapped, path.name  # the case this test is about is there
        for result in swapped:
            first = next(iter(result.records or ()))
            assert first.flags & vocab.SYN_AND_ACK == vocab.SYN_AND_ACK
            assert vocab.EVENT_SYN_ACK in first.events
            assert first.server_state == "SYN-RECEIVED"  # the server's, not the client's


def test_port_reuse_event_is_spooled(tmp_path: Path) -> None:
    conv = Conversation()
    conv.handshake()
    conv.send(True, "PA", b"x" * 10)
    conv.close()
    again = Conversation(client_isn=900_000, server_isn=700_000, start=conv.time + 1)
    again.handshake()
    again.close()
    conv.packets += again.packets
    path = conv.write(tmp_path / "reuse.pcap")
    first, second = _results(path, RecordSpool)
    assert vocab.EVENT_PORT_REUSE not in [e for r in first.records or () for e in r.events]
    events = [r.events for r in second.records or ()]
    assert events[0] == [vocab.EVENT_PORT_REUSE, vocab.EVENT_SYN]
    assert all(vocab.EVENT_PORT_REUSE not in e for e in events[1:])
    assert [_fields(r) for r in second.records or ()] == \
        [_fields(r) for r in _results(path, RecordList)[1].records or ()]


def test_every_code_and_edge_value_round_trips() -> None:
    """Every event code, the widest field values, a SYN's options and conflicts (one longer
    than 64 KiB, some with an empty first copy): read back as put, and written across
    several of the spill file's write blocks."""
    syn_options = bytes.fromhex("020405b40402080a0000000100000000010303070000")
    spool = RecordSpool(SpillFile(block=64))
    records = []
    for index, code in enumerate(vocab.RECORDED_CODES):
        syn = index % 3 == 0
        records.append(PacketRecord(
            frame=(1 << 40) + index, ts=1_700_000_000.123456789 + index,
            from_client=index % 2 == 0,
            flags=vocab.SYN | vocab.ACK if syn else 0xFF, seq=0xFFFFFFFF - index,
            ack=index, length=0xFFFF + index, window=0xFFFF, client_state="TIME-WAIT",
            server_state="CLOSED", events=[code, *vocab.RECORDED_CODES[:index]],
            tcp_options=syn_options if syn else b"",
            conflict=None if syn else Conflict(
                index % 2 == 0, (1 << 40) + index, (1 << 63) + index,
                bytes(range(index % 7)), bytes([index]) * (70_000 if index == 1 else index))))
    for record in records:
        spool.append(record)
    assert len(spool) == len(records) and spool.max_frame() == records[-1].frame
    assert [_fields(r) for r in spool] == [_fields(r) for r in records]
    assert [r.options for r in spool][0] == parse_tcp_options(syn_options)
    spool.settle(False, 10, 20)
    for record in records:
        record.settle(False, 10, 20)
    assert [_fields(r) for r in spool] == [_fields(r) for r in records]
    spool.close()


def test_conflicting_retransmissions_are_spooled_and_drawn(tmp_path: Path) -> None:
    """A retransmission with other bytes than the first copy: the spooled record carries
    both versions as the conversation sent them, and `tcp ladder` notes them at that
    packet only (it looked conflicts up per packet in a list: 20k packets took 21 s)."""
    conv = Conversation().handshake()
    base = conv.next[False]
    conv.send(False, "PA", b"first copy " * 5)
    conv.send(False, "PA", b"other bytes" * 5, seq=base, dt=0.5)
    conv.send(False, "PA", b"tail")
    conv.send(True, "A").close()
    path = conv.write(tmp_path / "conflict.pcap")
    (spooled,) = _results(path, RecordSpool)
    (kept,) = _results(path, RecordList)
    assert spooled.conflicts == kept.conflicts
    (conflict,) = spooled.conflicts
    # sent by the server (not the first sender): the settled record says so
    assert (conflict.from_client, conflict.offset, conflict.first, conflict.retransmitted) \
        == (False, 0, b"first copy " * 5, b"other bytes" * 5)
    noted = [r.frame for r in spooled.records or () if r.conflict is not None]
    assert noted == [conflict.frame]
    ladder = _cli_ladder(path, 0)
    assert ladder == _rendered(kept, path)
    assert ladder.count("bytes differ from the first copy") == 1
    words = " ".join(ladder.split())  # the note wraps in its column
    assert "offset 0: first b'first copy first', now b'other bytesother'" in words


def _rendered(result: TcpStreamResult, path: Path) -> str:
    """The ladder as `tcp ladder` prints it into a pipe, drawn by this process."""
    out = io.StringIO()
    console = Console(file=out, width=LADDER_WIDTH, highlight=False)
    print_ladder(console, result)
    console.print(frame_hint(str(path)), soft_wrap=True)
    return out.getvalue()


def _cli_ladder(path: Path, stream: int) -> str:
    done = subprocess.run([sys.executable, "-m", "analyzer", "tcp", "ladder", str(path),
                           str(stream)], capture_output=True, cwd=REPO_DIR, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.mark.parametrize("path", [p for p in CAPTURES if p.values[0].parent == CAPTURES_DIR])
def test_cli_ladder_is_the_in_memory_ladder(path: Path) -> None:
    """Every stream of the repository's captures: `tcp ladder` (records spooled) prints
    what the records kept in memory draw."""
    streams = _results(path, RecordList)
    for result in streams:
        kept = one_tcp_stream(path, result.stream)
        assert isinstance(kept.records, RecordList)
        assert _cli_ladder(path, result.stream) == _rendered(kept, path), result.stream


def test_cli_ladder_of_corpus_streams(corpus_dir: Path) -> None:
    for name, stream in (("tcpdump__resp_1_benchmark.pcap", 0), ("nDPI__telnet.pcap", 0),
                         ("zeek__tcp_handshake-reorder.pcap", 0),
                         ("zeek__tcp_tcp-fast-open.pcap", 0), ("zeek__redis_pubsub.pcap", 1)):
        path = corpus_dir / name
        kept = one_tcp_stream(path, stream)
        assert kept.packets > 3
        assert _cli_ladder(path, stream) == _rendered(kept, path), name
        spooled = one_tcp_stream(path, stream, chunks=False, spool=True)  # as the CLI's
        assert isinstance(spooled.records, RecordSpool) and spooled.chunks is None
        assert _rendered(spooled, path) == _rendered(kept, path), name


def test_cli_ladder_of_a_stream_over_several_batches(tmp_path: Path) -> None:
    """A connection of some 2,600 packets: the ladder is printed 1000 rows at a time,
    each batch read on from where the last stopped (the spool has no random access)."""
    require_tool("tshark")
    from tests.tcp.test_follow_memory import _write_stream

    path = tmp_path / "long.pcap"
    _write_stream(path, bytes(range(256)) * 9_600, extra_streams=0)
    frames_in_file = len(_tshark_packets(path))
    assert frames_in_file > 2 * 1000
    kept = one_tcp_stream(path, 0)
    text = _cli_ladder(path, 0)
    assert text == _rendered(kept, path)
    rows = [int(line.split()[0]) for line in text.splitlines() if "▶" in line or "◀" in line]
    assert rows == list(range(1, frames_in_file + 1))


def test_spools_let_go_close_their_files() -> None:
    """A program keeping every stream's records in files (`keep_all` with `RecordSpool`)
    runs out of descriptors unless a result let go gives its file back."""
    import os

    descriptors = len(os.listdir("/proc/self/fd"))
    for _ in range(2000):  # over the usual limit of 1024 descriptors
        spool = RecordSpool()
        spool.append(PacketRecord(1, 0.0, True, vocab.SYN, 1, 0, 0, 512,
                                  client_state="SYN-SENT", server_state="LISTEN"))
        del spool
    assert len(os.listdir("/proc/self/fd")) == descriptors
