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
from tests.tcp.tshark_tcp import parse_follow_raw, tshark_follow
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
            assert (node.follow_length, node.follow.hexdigest()) == \
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
