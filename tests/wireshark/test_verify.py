"""`analyzer verify` against real tshark: real captures agree or differ only for
documented reasons, each crafted tshark behaviour is recognised and explained, and a
wrong result of ours (a doctored `read --json`, given with --ours) is reported."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.oracle import real_capture_params
from tests.support.analyzer_cli import run_analyzer
from tests.wireshark import crafted

KNOWN_REASONS = {"follow-missing-text", "follow-stops-at-gap", "tftp-other-address",
                 "tftp-small-blksize", "tftp-netascii", "tftp-not-complete"}


def _verify(capture: Path, *extra: str | Path) -> tuple[int, list[dict], dict]:
    require_tool("tshark")
    done = run_analyzer("verify", capture, "--json", *extra)
    assert done.returncode in (0, 1), done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    *items, summary = objects
    assert summary["type"] == "verify_summary"
    assert all(item["type"] == "verify_item" for item in items)
    return done.returncode, items, summary


def _tshark_stream_count(capture: Path) -> int:
    out = subprocess.run([require_tool("tshark"), "-n", "-r", str(capture), "-Y",
                          "tcp && !icmp && !icmpv6", "-T", "fields", "-e", "tcp.stream"],
                         capture_output=True, text=True, timeout=120).stdout
    return len(set(out.split()))


@pytest.mark.parametrize("path", real_capture_params())
def test_real_captures_agree_or_are_explained(path: Path) -> None:
    code, items, summary = _verify(path)
    assert code == 0, items
    assert summary["ok"] and summary["unexplained"] == 0
    for item in items:
        assert item["verdict"] == "explained", item
        assert set(item["reason"].split("+")) <= KNOWN_REASONS
    assert summary["tcp_streams"] == _tshark_stream_count(path)
    assert summary["agree"] + summary["explained"] + summary["unchecked"] == \
        summary["tcp_streams"] + summary["tftp_transfers"]


def test_missing_bytes_text_is_explained(tmp_path: Path) -> None:
    code, items, summary = _verify(crafted.lost_segment(tmp_path))
    assert code == 0
    (item,) = items
    assert (item["check"], item["verdict"], item["reason"]) == \
        ("client_bytes", "explained", "follow-missing-text")
    # tshark's Follow: 100 bytes, the 37-byte text, 100 bytes; ours: the 200 bytes
    assert item["tshark"]["bytes"] == 200 + len(b"[100 bytes missing in capture file]\0")
    assert item["ours"]["bytes"] == 200
    assert "100 bytes at offset 100" in item["detail"]
    assert summary["reasons"] == {"follow-missing-text": 1}


def test_follow_stopping_at_an_unacknowledged_gap_is_explained(tmp_path: Path) -> None:
    code, items, _summary = _verify(crafted.unacknowledged_gap(tmp_path))
    assert code == 0
    (item,) = items
    assert (item["reason"], item["tshark"]["bytes"], item["ours"]["bytes"]) == \
        ("follow-stops-at-gap", 10, 20)
    assert "10 bytes at offset 10" in item["detail"]


def test_reordering_and_sequence_wrap_agree(tmp_path: Path) -> None:
    code, items, summary = _verify(crafted.reordered_and_wrapping(tmp_path))
    assert (code, items, summary["agree"]) == (0, [], 1)


def test_each_tftp_export_behaviour_is_explained(tmp_path: Path) -> None:
    code, items, summary = _verify(crafted.tftp_behaviours(tmp_path))
    assert code == 0, items
    assert {item["number"]: item["reason"] for item in items} == \
        {n: r for n, r in crafted.TFTP_REASONS.items() if r is not None}
    assert all(item["verdict"] == "explained" for item in items)
    assert summary["tftp_transfers"] == len(crafted.TFTP_REASONS)
    assert summary["agree"] == 2


def _doctored(capture: Path, folder: Path, change) -> Path:  # type: ignore[no-untyped-def]
    done = run_analyzer("read", capture, "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    change(lines)
    path = folder / "ours.jsonl"
    path.write_text("".join(json.dumps(obj) + "\n" for obj in lines))
    return path


def test_a_wrong_completeness_of_ours_is_unexplained(captures_dir: Path,
                                                     tmp_path: Path) -> None:
    capture = captures_dir / "tour.pcapng"

    def change(lines: list[dict]) -> None:
        stream = next(obj for obj in lines if obj["type"] == "tcp_stream" and obj["stream"] == 1)
        stream["completeness"] ^= 8  # DATA bit flipped

    code, items, summary = _verify(capture, "--ours", _doctored(capture, tmp_path, change))
    assert code == 1 and not summary["ok"]
    (item,) = items
    assert (item["number"], item["check"], item["verdict"], item["reason"]) == \
        (1, "completeness", "unexplained", None)
    assert item["tshark"] == item["ours"] ^ 8


def test_wrong_bytes_and_file_of_ours_are_unexplained(captures_dir: Path,
                                                      tmp_path: Path) -> None:
    capture = captures_dir / "tour.pcapng"

    def change(lines: list[dict]) -> None:
        stream = next(obj for obj in lines if obj["type"] == "tcp_stream")
        stream["server_sha256"] = "0" * 64
        transfer = next(obj for obj in lines if obj["type"] == "tftp_transfer")
        transfer["sha256"] = "1" * 64

    code, items, _summary = _verify(capture, "--ours", _doctored(capture, tmp_path, change))
    assert code == 1
    checks = {(item["what"], item["check"], item["verdict"]) for item in items}
    assert ("tcp_stream", "server_bytes", "unexplained") in checks
    assert ("tftp_transfer", "file", "unexplained") in checks
    # paired by name with tshark's file, whose true hash is reported beside our wrong one
    (file_item,) = [i for i in items if i["what"] == "tftp_transfer"]
    exported = subprocess.run([require_tool("tshark"), "-n", "-r", str(capture), "-q",
                               "--export-objects", f"tftp,{tmp_path / 'eo'}"],
                              capture_output=True, timeout=120)
    assert exported.returncode == 0
    (name,) = [p.name for p in (tmp_path / "eo").iterdir()]
    assert file_item["tshark"]["name"] == name
    assert file_item["tshark"]["sha256"] == hashlib.sha256(
        (tmp_path / "eo" / name).read_bytes()).hexdigest()
    assert file_item["ours"]["sha256"] == "1" * 64


def test_a_stream_we_lack_is_unexplained(captures_dir: Path, tmp_path: Path) -> None:
    capture = captures_dir / "tcp-exchange.pcap"

    def change(lines: list[dict]) -> None:
        lines[:] = [obj for obj in lines
                    if not (obj["type"] == "tcp_stream" and obj["stream"] == 0)]

    code, items, _summary = _verify(capture, "--ours", _doctored(capture, tmp_path, change))
    assert code == 1
    assert [(i["number"], i["check"], i["ours"], i["tshark"]) for i in items] == \
        [(0, "stream", None, 0)]


def test_table_view_and_exit_status(tmp_path: Path) -> None:
    require_tool("tshark")
    done = run_analyzer("verify", crafted.lost_segment(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "explained" in done.stdout and "follow-missing-text" in done.stdout
    assert "verify: " in done.stderr and "10 packets, about 1 s" in done.stderr


def test_unusable_input_is_one_line_exit_2(tmp_path: Path) -> None:
    require_tool("tshark")
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"not a capture at all" * 10)
    for path in (tmp_path / "absent.pcap", garbage, tmp_path):
        done = run_analyzer("verify", path)
        assert done.returncode == 2, (path, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_crafted_formats_and_link_types_agree(crafted: dict) -> None:
    """tests/craft.py's captures: both byte orders and resolutions, pcapng sections, gzip,
    every link type we peel, snap-length cuts and damage part-way. tshark's complaint
    about a damaged file is passed on, and what both read still agrees."""
    for name, capture in sorted(crafted.items()):
        code, items, summary = _verify(capture.path)
        assert code == 0, (name, items)
        assert all(item["verdict"] == "explained" for item in items), name
        if name.startswith("damaged-"):
            assert summary["tshark_warning"], name
