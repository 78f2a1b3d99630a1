"""Real transfers whose capture is then damaged on purpose with editcap: a DATA packet
removed (the sniffer missed it) or the capture cut short. The truth is known by
construction: which block is gone, and the bytes around it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.analyzer_cli import tftp_extract
from tests.support.tftp_raw import RawTftpClient
from tests.tftp_servers.checks import analyze, random_bytes

pytestmark = pytest.mark.root

BLOCK = 512


def _data_frame(capture: Path, block: int) -> int:
    """The frame number of DATA `block`, as tshark numbers frames (from 1)."""
    data_filter = f"tftp.opcode == 3 && tftp.block == {block} && !icmp"
    done = subprocess.run(
        [require_tool("tshark"), "-n", "-r", str(capture), "-Y", data_filter, "-T", "fields",
         "-e", "frame.number"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    frames = [int(field) for field in done.stdout.split()]
    assert len(frames) == 1, frames
    return frames[0]


def _editcap(*args: str | Path) -> None:
    subprocess.run(
        [require_tool("editcap"), *map(str, args)], capture_output=True, check=True, timeout=60
    )


def _record(server, recorder, name: str, content: bytes) -> Path:
    server.add_file(name, content)
    with recorder.capture(server) as sniff:
        seen = RawTftpClient(server.ip).get(name)
    assert seen.wire_bytes == content
    return sniff.path


def _blocks_in(ranges: object) -> set[int]:
    """Block numbers named by `missing_blocks`, whether ints, [first, last] pairs,
    {"first"/"start", "last"/"end"} objects or "a-b" strings."""
    blocks: set[int] = set()
    for item in ranges or []:  # type: ignore[union-attr]
        if isinstance(item, int):
            first = last = item
        elif isinstance(item, str):
            first_text, _, last_text = item.partition("-")
            first, last = int(first_text), int(last_text or first_text)
        elif isinstance(item, dict):
            first = item.get("first", item.get("start"))
            last = item.get("last", item.get("end", first))
        else:
            first, last = item
        blocks.update(range(int(first), int(last) + 1))
    return blocks


def _partial_file(capture: Path, out_dir: Path, name: str) -> Path:
    """`analyzer tftp extract` wrote NAME.partial (and never NAME) for an incomplete file."""
    written = tftp_extract(capture, out_dir)
    assert f"{name}.partial" in written, f"no {name}.partial in {sorted(written)}"
    assert name not in written
    return written[f"{name}.partial"]


def test_missing_data_block(hpa_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(20 * BLOCK + 100, seed=51)  # 21 blocks
    capture = _record(hpa_server, recorder, "dmg-gap.bin", content)
    damaged = tmp_path / "damaged.pcap"
    _editcap(capture, damaged, _data_frame(capture, 5))

    transfer, _ = analyze(damaged, "RRQ", "dmg-gap.bin")
    assert transfer["status"] == "incomplete", transfer
    assert _blocks_in(transfer["missing_blocks"]) == {5}, transfer
    assert transfer["blocks"] == 20, transfer

    partial = _partial_file(damaged, tmp_path / "extract", "dmg-gap.bin").read_bytes()
    # Every byte around the hole is where it belongs.
    assert partial[: 4 * BLOCK] == content[: 4 * BLOCK]
    assert partial[5 * BLOCK :] == content[5 * BLOCK :]


def test_capture_cut_short(hpa_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(20 * BLOCK + 100, seed=52)
    capture = _record(hpa_server, recorder, "dmg-cut.bin", content)
    damaged = tmp_path / "damaged.pcap"
    _editcap("-r", capture, damaged, f"1-{_data_frame(capture, 10)}")  # keep up to DATA 10

    transfer, _ = analyze(damaged, "RRQ", "dmg-cut.bin")
    assert transfer["status"] == "incomplete", transfer
    assert transfer["blocks"] == 10, transfer
    assert transfer["bytes"] == 10 * BLOCK, transfer

    partial = _partial_file(damaged, tmp_path / "extract", "dmg-cut.bin").read_bytes()
    assert partial == content[: 10 * BLOCK]
