"""verify's Follow TCP Stream (tshark's rule over tshark's per-segment fields) against
tshark's own `-z follow,tcp,raw,N`, byte for byte, on every real capture and on crafted
ones with gaps, reordering, overlaps and sequence wrap."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analyzer.wireshark.verify import TsharkReading
from tests.conftest import require_tool
from tests.oracle import real_capture_params
from tests.tcp.tshark_tcp import missing_marker, parse_follow_raw, tshark_follow
from tests.wireshark import crafted


def _check_against_tshark(path: Path, tmp_path: Path) -> int:
    require_tool("tshark")
    export = tmp_path / "export"
    export.mkdir()
    reading = TsharkReading(str(path), str(export), 0, None)
    reading.run()
    for number, stream in reading.streams.items():
        follow = parse_follow_raw(tshark_follow(path, number, "raw"))
        assert follow.node0 == stream.endpoints[0], number  # the first packet's sender
        for node, data in zip(stream.follow.nodes, (follow.data0, follow.data1), strict=True):
            assert (node.follow_length, node.follow_digest()) == \
                (len(data), hashlib.sha256(data).hexdigest()), number
    return len(reading.streams)


@pytest.mark.parametrize("path", real_capture_params())
def test_follow_matches_tshark_on_real_captures(path: Path, tmp_path: Path) -> None:
    _check_against_tshark(path, tmp_path)


@pytest.mark.parametrize("build", [crafted.lost_segment, crafted.unacknowledged_gap,
                                   crafted.reordered_and_wrapping])
def test_follow_matches_tshark_on_crafted_captures(build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _check_against_tshark(build(tmp_path), tmp_path) == 1


def test_plain_bytes_leave_out_the_text_and_go_past_the_gap(tmp_path: Path) -> None:
    """The second digest: what Follow shows without its spliced text, with the held
    bytes after an unacknowledged gap (built here from the crafted payloads)."""
    require_tool("tshark")
    for build, data, markers, holes in (
            (crafted.lost_segment, b"1" * 100 + b"3" * 100, [(100, 100)], []),
            (crafted.unacknowledged_gap, b"x" * 10 + b"z" * 10, [], [(10, 10)])):
        folder = tmp_path / build.__name__
        (folder / "export").mkdir(parents=True)
        reading = TsharkReading(str(build(folder)), str(folder / "export"), 0, None)
        reading.run()
        (stream,) = reading.streams.values()
        client = stream.follow.nodes[0]
        assert (client.plain_length, client.plain_digest()) == \
            (len(data), hashlib.sha256(data).hexdigest())
        assert (client.markers, client.holes) == (markers, holes)


def test_held_fragments_are_bounded() -> None:
    """Past the bound on held out-of-order bytes a direction stops being compared (verify
    says `unchecked`) instead of holding more: the rule's memory stays bounded."""
    from analyzer.wireshark.follow import FollowStream

    stream = FollowStream(b"client", held_limit=250)
    stream.packet(b"client", 1000, 0, True, 0, b"")  # SYN: the next byte is 1001
    for i in range(1, 6):  # bytes 1001..1100 never come; five segments after them
        stream.packet(b"client", 1001 + 100 * i, 0, False, 100, bytes([48 + i]) * 100)
        assert stream.nodes[0].held_bytes <= 250
    assert stream.nodes[0].overflowed and stream.nodes[0].held == []


def test_missing_text_counts_what_the_ack_covers() -> None:
    """tshark's text gives the hole's size up to the lowest held fragment."""
    from analyzer.wireshark.follow import FollowStream

    stream = FollowStream(b"c")
    stream.packet(b"c", 0, 0, True, 0, b"")
    stream.packet(b"c", 1, 0, False, 5, b"hello")
    stream.packet(b"c", 16, 0, False, 3, b"end")  # bytes 6..15 missing
    stream.packet(b"s", 0, 19, False, 0, b"")  # the server acknowledges everything
    node = stream.nodes[0]
    expected = b"hello" + missing_marker(10) + b"end"  # tshark 4.0's text, from its tests
    assert node.follow_digest() == hashlib.sha256(expected).hexdigest()
    assert node.markers == [(5, 10)] and node.plain_digest() == hashlib.sha256(
        b"helloend").hexdigest()
