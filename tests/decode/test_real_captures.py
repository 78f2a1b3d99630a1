"""Every real capture we have (../shared/corpus/ and the repo's captures/) read and
decoded, compared with tshark (frame count, sizes, times, TCP/UDP 5-tuples) and with
scapy's reader (link type and bytes of every frame)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from analyzer.capture import open_capture
from analyzer.decode import Decoder, format_address
from tests.oracle import (
    FiveTuple,
    real_capture_params,
    scapy_frames,
    tshark_five_tuples,
    tshark_frames,
)

REAL_CAPTURES = real_capture_params()


def test_corpus_is_there(corpus_dir: Path) -> None:
    """Skips (and says so) when ../shared/corpus is absent; the tests below then have
    only the repo's own captures."""
    assert any(corpus_dir.glob("*.pcap*"))


def test_repo_captures_are_there(captures_dir: Path) -> None:
    names = {p.name for p in captures_dir.glob("*.pcap*")}
    assert {"tcp-exchange.pcap", "http-fetch.pcap"} <= names


@pytest.mark.parametrize("path", REAL_CAPTURES)
def test_frames_agree_with_tshark_and_scapy(path: Path) -> None:
    with open_capture(path) as capture:
        frames = list(capture)
        warnings = list(capture.info.warnings)
    assert warnings == []
    rows = tshark_frames(path)
    assert len(frames) == len(rows)
    for frame, row in zip(frames, rows, strict=True):
        assert frame.wirelen == int(row["frame.len"])
        assert len(frame.data) == int(row["frame.cap_len"])
        assert abs(Decimal(repr(frame.ts)) - Decimal(row["frame.time_epoch"])) <= Decimal("3e-7")
    theirs = scapy_frames(path)
    assert [(f.linktype, bytes(f.data)) for f in frames] == [(f.linktype, f.data)
                                                            for f in theirs]


@pytest.mark.parametrize("path", REAL_CAPTURES)
def test_five_tuples_agree_with_tshark(path: Path) -> None:
    decoder = Decoder()
    ours = {}
    with open_capture(path) as capture:
        for number, frame in enumerate(capture, 1):
            packet = decoder.decode(frame, number)
            if packet is not None and packet.proto in (6, 17):
                ours[number] = FiveTuple(format_address(packet.src), format_address(packet.dst),
                                         packet.proto, packet.sport, packet.dport)
    assert ours == tshark_five_tuples(path)
    assert decoder.stats.malformed == 0


def _tcp_payloads(path: Path) -> list[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of every TCP segment carrying data."""
    decoder = Decoder()
    segments = []
    with open_capture(path) as capture:
        for number, frame in enumerate(capture, 1):
            packet = decoder.decode(frame, number)
            if packet is not None and packet.proto == 6 and packet.payload_len:
                segments.append((packet.sport, packet.dport, bytes(packet.payload)))
    return segments


def test_tcp_exchange_carries_the_messages_record_sh_sent(captures_dir: Path) -> None:
    """The messages are fixed in captures/record.sh; the ephemeral ports are not."""
    segments = _tcp_payloads(captures_dir / "tcp-exchange.pcap")
    server_port = 50007
    expected = [
        (True, b"hello server\n"), (False, b"hello client\n"),
        (True, b"second message from the client\n"), (False, b"second reply from the server\n"),
        (True, b"this connection will be reset\n"), (False, b"ok, reset it\n"),
    ]
    assert [(dport == server_port, data) for _, dport, data in segments] == expected


def test_http_fetch_carries_the_known_file(captures_dir: Path) -> None:
    known = "".join(f"line {n:03d} of the known file served by python -m http.server\n"
                    for n in range(1, 101)).encode()
    segments = _tcp_payloads(captures_dir / "http-fetch.pcap")
    request = b"".join(data for sport, _, data in segments if sport != 50080)
    response = b"".join(data for sport, _, data in segments if sport == 50080)
    assert request.startswith(b"GET /known.txt HTTP/1.1\r\n")
    headers, _, body = response.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.0 200 OK")
    assert b"Content-Length: 5900" in headers
    assert body == known
