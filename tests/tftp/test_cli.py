"""`analyzer tftp extract` and `analyzer tftp show` as a user runs them (subprocesses)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.support.analyzer_cli import run_analyzer
from tests.tftp import craft
from tests.tftp.craft import Capture, chunks

CLIENT, LISTEN, TID = ("10.0.0.2", 40001), ("10.0.0.1", 69), ("10.0.0.1", 50001)


def _capture(tmp_path: Path, content: bytes, port: int = 69) -> Path:
    cap = Capture()
    cap.udp(CLIENT, (LISTEN[0], port), craft.rrq("../cli.bin", options=[("blksize", "1024")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "1024")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    blocks = chunks(content, 1024)
    for n, chunk in enumerate(blocks, 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        if n == 3:
            cap.udp(TID, CLIENT, craft.data(n, chunk), after=1.0)
        cap.udp(CLIENT, TID, craft.ack(n))
    return cap.write(tmp_path / "cli.pcap")


def test_extract_writes_the_file(tmp_path: Path) -> None:
    content = bytes(range(256)) * 40
    capture = _capture(tmp_path, content)
    done = run_analyzer("tftp", "extract", capture, "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "cli.bin").read_bytes() == content
    assert "cli.bin" in done.stdout
    # Again into the same directory: a new name, the first file untouched.
    done = run_analyzer("tftp", "extract", capture, "-o", tmp_path / "out", "--json")
    (obj,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert obj["extracted"] == str(tmp_path / "out" / "cli-2.bin")
    assert obj["sha256"] == hashlib.sha256(content).hexdigest()


def test_tftp_port_option(tmp_path: Path) -> None:
    capture = _capture(tmp_path, b"x" * 5000, port=1069)
    done = run_analyzer("tftp", "extract", capture, "-o", tmp_path / "a", "--json")
    assert done.returncode == 0 and done.stdout == ""
    done = run_analyzer("tftp", "extract", capture, "-o", tmp_path / "b", "--json",
                        "--tftp-port", "1069")
    (obj,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert obj["status"] == "complete" and obj["bytes"] == 5000


def test_show_timeline(tmp_path: Path) -> None:
    content = b"y" * (5 * 1024 + 10)
    capture = _capture(tmp_path, content)
    done = run_analyzer("tftp", "show", capture, "1")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for expected in ("RRQ", "OACK", "blksize=1024", "DATA 1–3", "DATA 3 (1024 bytes)",
                     "retransmission", "DATA 4–5", "DATA 6 (10 bytes)", "complete",
                     hashlib.sha256(content).hexdigest()):
        assert expected in out, (expected, out)
    done = run_analyzer("tftp", "show", capture, "1", "--json")
    (obj,) = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = [e["kind"] for e in obj["timeline"]]
    # RRQ, OACK, ACK 0, then DATA/ACK pairs with DATA 3 twice: 3 + 2 * 6 + 1 packets.
    assert kinds[:3] == ["RRQ", "OACK", "ACK"] and len(kinds) == 16
    assert obj["retransmissions"] == 1


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    not_capture = tmp_path / "notes.txt"
    not_capture.write_text("hello")
    for args in (("tftp", "extract", tmp_path / "missing.pcap", "-o", tmp_path / "o"),
                 ("tftp", "extract", not_capture, "-o", tmp_path / "o"),
                 ("tftp", "show", not_capture, "1")):
        done = run_analyzer(*args)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    capture = _capture(tmp_path, b"z" * 100)
    done = run_analyzer("tftp", "show", capture, "2")
    assert done.returncode == 2 and "no TFTP transfer 2" in done.stderr


# The SPEC's tftp_transfer keys (../shared/SPEC.md, "Contract: JSON Lines"), plus findings.
SPEC_KEYS = {"type", "client", "server", "request", "filename", "mode", "options", "oack",
             "blksize", "windowsize", "status", "error", "bytes", "sha256", "blocks",
             "missing_blocks", "retransmissions", "extracted", "findings"}


def test_read_json_has_exactly_the_spec_keys(tmp_path: Path) -> None:
    content = bytes(range(256)) * 9
    capture = _capture(tmp_path, content)
    done = run_analyzer("read", capture, "--json", "--extract", tmp_path / "x")
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    (t,) = [o for o in objects if o["type"] == "tftp_transfer"]
    assert set(t) == SPEC_KEYS
    assert (t["client"], t["server"], t["request"], t["filename"]) == (
        "10.0.0.2:40001", "10.0.0.1:50001", "RRQ", "../cli.bin")
    assert t["extracted"] == str(tmp_path / "x" / "cli.bin")
    assert Path(t["extracted"]).read_bytes() == content
    assert objects[-1]["type"] == "capture"
