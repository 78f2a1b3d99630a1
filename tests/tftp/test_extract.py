"""Extraction: untrusted names stay inside DIR, nothing is overwritten, partial files are
marked and mapped, and a file never sits under its final name before it is settled."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.tftp.extract import Extractor, numbered, safe_name
from tests.tftp import craft
from tests.tftp.craft import Capture, chunks

CLIENT_IP, SERVER_IP = "10.0.0.2", "10.0.0.1"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("wire, expected", [
    ("../../etc/passwd", "passwd"),
    ("/etc/shadow", "shadow"),
    ("boot\\x64\\wdsmgfw.efi", "wdsmgfw.efi"),  # Windows separators
    ("..", "transfer-7.bin"),
    ("dir/..", "transfer-7.bin"),
    ("", "transfer-7.bin"),
    ("/", "transfer-7.bin"),
    ("a\x00b\x01c\x7f", "a_b_c_"),
    ("invoice\u202efdp.exe", "invoice_fdp.exe"),  # a right-to-left override
    ("pxelinux.cfg/01-aa-bb", "01-aa-bb"),
    (".tftp-extract-x.tmp", "transfer-7.bin"),  # would look like our temporary files
])
def test_safe_name(wire: str, expected: str) -> None:
    assert safe_name(wire, 7) == expected


def test_long_names_are_bounded_and_keep_the_extension() -> None:
    name = safe_name("x" * 300 + ".iso", 1)
    assert len(name.encode()) <= 200 and name.endswith(".iso")
    assert numbered("a.txt", 1) == "a.txt" and numbered("a.txt", 3) == "a-3.txt"
    assert numbered("README", 2) == "README-2" and numbered(".hidden", 2) == ".hidden-2"


def _transfers(cap: Capture, files: list[tuple[str, bytes]]) -> None:
    for i, (name, content) in enumerate(files):
        client, tid = (CLIENT_IP, 41000 + i), (SERVER_IP, 51000 + i)
        cap.udp(client, (SERVER_IP, 69), craft.rrq(name))
        for n, chunk in enumerate(chunks(content, 512), 1):
            cap.udp(tid, client, craft.data(n, chunk))
            cap.udp(client, tid, craft.ack(n))


def test_hostile_names_land_inside_dir_without_overwriting(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "passwd").write_bytes(b"already here")
    outside = tmp_path / "victim"
    outside.write_bytes(b"untouched")
    (out / "shadow").symlink_to(outside)  # a symlink under the target name
    files = [("../../etc/passwd", b"one" * 300), ("/etc/shadow", b"two" * 10),
             ("..", b"three"), ("../victim", b"four"), ("same.txt", b"five"),
             ("dir/same.txt", b"six")]
    cap = Capture()
    _transfers(cap, files)
    results = cap.analyze(tmp_path, extract_dir=out).tftp.results()
    written = [Path(r.extracted) for r in results]  # type: ignore[arg-type]
    assert [p.name for p in written] == [
        "passwd-2", "shadow-2", "transfer-3.bin", "victim", "same.txt", "same-2.txt"]
    for path, (_, content) in zip(written, files, strict=True):
        assert path.parent == out and path.read_bytes() == content
    assert (out / "passwd").read_bytes() == b"already here"
    assert outside.read_bytes() == b"untouched"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["passwd", "shadow", *(p.name for p in written)])  # no temporary files left


def test_partial_file_and_gap_map(tmp_path: Path) -> None:
    content = os.urandom(4 * 512 + 100)
    blocks = chunks(content, 512)
    client, tid = (CLIENT_IP, 41000), (SERVER_IP, 51000)
    cap = Capture()
    cap.udp(client, (SERVER_IP, 69), craft.rrq("fw.img"))
    for n in (1, 2, 3):
        if n != 2:  # DATA 2 missed by the capture, acked by the client
            cap.udp(tid, client, craft.data(n, blocks[n - 1]))
        cap.udp(client, tid, craft.ack(n))
    # The capture ends before blocks 4 and 5.
    out = tmp_path / "out"
    (t,) = cap.analyze(tmp_path, extract_dir=out).tftp.results()
    assert t.status == "incomplete"
    path = Path(t.extracted)  # type: ignore[arg-type]
    assert path == out / "fw.img.partial"
    assert not (out / "fw.img").exists()
    assert path.read_bytes() == blocks[0] + bytes(512) + blocks[2]
    gap_map = json.loads((out / "fw.img.partial.json").read_text())
    assert gap_map["missing"] == [
        {"first_block": 2, "last_block": 2, "offset": 512, "length": 512},
        {"first_block": 4, "last_block": None, "offset": 1536, "length": None},
    ]
    assert gap_map["filename"] == "fw.img" and gap_map["status"] == "incomplete"


def test_error_only_transfer_writes_nothing(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp((CLIENT_IP, 41000), (SERVER_IP, 69), craft.rrq("nope"))
    cap.udp((SERVER_IP, 51000), (CLIENT_IP, 41000), craft.error(1, "File not found"))
    out = tmp_path / "out"
    (t,) = cap.analyze(tmp_path, extract_dir=out).tftp.results()
    assert t.extracted is None and list(out.iterdir()) == []


def test_many_transfers_in_flight_share_few_descriptors(tmp_path: Path) -> None:
    """Interleaved transfers with max_open=2: every file still comes out whole."""
    files = [(f"f{i}.bin", os.urandom(1500 + i)) for i in range(5)]
    extractor = Extractor(tmp_path / "out", max_open=2)
    from analyzer.tftp.tracker import TftpTracker

    tracker = TftpTracker(sink=extractor)
    cap = Capture()
    for i, (name, _) in enumerate(files):
        cap.udp((CLIENT_IP, 41000 + i), (SERVER_IP, 69), craft.rrq(name))
    for n in range(1, 5):
        for i, (_, content) in enumerate(files):
            client, tid = (CLIENT_IP, 41000 + i), (SERVER_IP, 51000 + i)
            blocks = chunks(content, 512)
            if n <= len(blocks):
                cap.udp(tid, client, craft.data(n, blocks[n - 1]))
                cap.udp(client, tid, craft.ack(n))
    from analyzer.pipeline import iter_packets

    for pkt in iter_packets(cap.write(tmp_path / "x.pcap")):
        tracker.on_packet(pkt)
    tracker.finish()
    for t, (name, content) in zip(tracker.results(), files, strict=True):
        assert t.status == "complete" and Path(t.extracted).name == name  # type: ignore[arg-type]
        assert Path(t.extracted).read_bytes() == content  # type: ignore[arg-type]


def test_unusable_directory_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(InputError):
        Extractor(blocker / "sub")


def test_file_systems_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: str, dst: str) -> None:
        raise PermissionError(1, "Operation not permitted")  # as on vfat or some FUSE mounts

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "out"
    out.mkdir()
    (out / "same.txt").write_bytes(b"old")
    cap = Capture()
    _transfers(cap, [("same.txt", b"new" * 200)])
    (t,) = cap.analyze(tmp_path, extract_dir=out).tftp.results()
    assert Path(t.extracted).name == "same-2.txt"  # type: ignore[arg-type]
    assert (out / "same-2.txt").read_bytes() == b"new" * 200
    assert (out / "same.txt").read_bytes() == b"old"
    assert sorted(p.name for p in out.iterdir()) == ["same-2.txt", "same.txt"]
