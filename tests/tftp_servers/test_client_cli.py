"""`analyzer tftp get/put` as a user runs it, against tftpd-hpa on 127.0.0.2: exit codes,
one-line errors, `-o -`, the JSON object's keys (SPEC), nothing left behind on failure."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.support.analyzer_cli import run_analyzer
from tests.tftp_servers.checks import random_bytes

pytestmark = pytest.mark.root

# SPEC "tftp_client": the contract's keys (we add `reason` and `notes`).
SPEC_KEYS = {"type", "server", "peer", "request", "filename", "local", "mode", "options",
             "oack", "blksize", "windowsize", "status", "error", "bytes", "sha256",
             "retransmitted", "duplicates", "seconds"}


def one_line_error(done, code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("analyzer: ") and "Traceback" not in done.stderr
    return lines[0]


def test_get_to_a_file_prints_one_summary_line(hpa_server, tmp_path: Path) -> None:
    content = random_bytes(70_000, seed=70)
    hpa_server.add_file("cli.bin", content)
    local = tmp_path / "cli.bin"
    done = run_analyzer("tftp", "get", hpa_server.ip, "cli.bin", "-o", local, "--tsize")
    assert done.returncode == 0, done.stderr
    assert local.read_bytes() == content
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "70,000 bytes" in lines[0] and hpa_server.ip in lines[0]
    assert "retransmitted" in lines[0]
    assert oct(local.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_get_into_a_directory_uses_the_remote_name(hpa_server, tmp_path: Path) -> None:
    hpa_server.add_file("named.bin", b"abc")
    done = run_analyzer("tftp", "get", f"{hpa_server.ip}:69", "named.bin", "-o", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "named.bin").read_bytes() == b"abc"


def test_get_to_stdout(hpa_server) -> None:
    content = random_bytes(5000, seed=71)
    hpa_server.add_file("out.bin", content)
    done = run_analyzer_bytes("tftp", "get", hpa_server.ip, "out.bin", "-o", "-")
    assert done.returncode == 0
    assert done.stdout == content


def run_analyzer_bytes(*args: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          timeout=60, check=False)


def test_json_keys_are_the_spec_ones(hpa_server, tmp_path: Path) -> None:
    content = random_bytes(3000, seed=72)
    hpa_server.add_file("j.bin", content)
    local = tmp_path / "j.bin"
    done = run_analyzer("tftp", "get", hpa_server.ip, "j.bin", "-o", local, "--json",
                        "--blksize", "1428", "--tsize")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert SPEC_KEYS <= set(obj) and set(obj) - SPEC_KEYS <= {"reason", "notes"}
    assert obj["type"] == "tftp_client" and obj["status"] == "complete"
    assert obj["server"] == f"{hpa_server.ip}:69"
    assert obj["peer"].startswith(f"{hpa_server.ip}:") and obj["peer"] != obj["server"]
    assert obj["request"] == "RRQ" and obj["filename"] == "j.bin" and obj["mode"] == "octet"
    assert obj["options"] == {"blksize": "1428", "tsize": "0"}
    assert obj["oack"] == {"blksize": "1428", "tsize": "3000"}
    assert obj["blksize"] == 1428 and obj["windowsize"] == 1 and obj["error"] is None
    assert obj["bytes"] == 3000
    assert obj["sha256"] == hashlib.sha256(content).hexdigest()
    assert obj["local"] == str(local) and obj["seconds"] > 0


def test_put_then_the_server_has_the_file(hpa_server, tmp_path: Path) -> None:
    content = random_bytes(12_345, seed=73)
    local = tmp_path / "upload.bin"
    local.write_bytes(content)
    done = run_analyzer("tftp", "put", hpa_server.ip, local, "--as", "cli-up.bin", "--json")
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    assert obj["request"] == "WRQ" and obj["status"] == "complete" and obj["bytes"] == 12_345
    stored = hpa_server.root / "cli-up.bin"
    assert stored.read_bytes() == content


def test_missing_remote_file_is_exit_1_with_error_1(hpa_server, tmp_path: Path) -> None:
    target = tmp_path / "kept.bin"
    target.write_bytes(b"old")
    done = run_analyzer("tftp", "get", hpa_server.ip, "nope.bin", "-o", target)
    line = one_line_error(done, 1)
    assert "error 1" in line and "File not found" in line
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.bin"]


def test_missing_remote_file_json(hpa_server, tmp_path: Path) -> None:
    done = run_analyzer("tftp", "get", hpa_server.ip, "nope.bin", "-o", tmp_path / "n",
                        "--json")
    assert done.returncode == 1
    obj = json.loads(done.stdout)
    assert obj["status"] == "error"
    assert obj["error"] == {"code": 1, "message": "File not found", "from": "server"}
    assert not (tmp_path / "n").exists()


@pytest.mark.parametrize("args, words", [
    (["tftp", "get", "no-such-host.invalid", "x"], "cannot resolve"),
    (["tftp", "get", "[::1", "x"], "bad server address"),
    (["tftp", "get", "127.0.0.7:99999", "x"], "bad port"),
    (["tftp", "get", "127.0.0.7", "x", "--blksize", "7"], "--blksize 7"),
    (["tftp", "get", "127.0.0.7", "x", "--blksize", "65465"], "--blksize 65465"),
    (["tftp", "get", "127.0.0.7", "x", "--windowsize", "0"], "--windowsize 0"),
    (["tftp", "get", "127.0.0.7", "x", "--timeout", "abc"], "--timeout"),
    (["tftp", "get", "127.0.0.7", "x", "-o", "/nonexistent-dir/x"], "cannot write"),
    (["tftp", "put", "127.0.0.7", "/nonexistent-file"], "cannot read"),
])
def test_unusable_input_is_exit_2(args: list[str], words: str) -> None:
    line = one_line_error(run_analyzer(*args), 2)
    assert words in line


def test_unreadable_local_file_is_exit_2(tmp_path: Path) -> None:
    # As root every mode bit is readable; a directory and a path through a plain file
    # are not, for anyone.
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    line = one_line_error(run_analyzer("tftp", "put", "127.0.0.7", tmp_path), 2)
    assert "cannot read" in line and "directory" in line
    line = one_line_error(run_analyzer("tftp", "put", "127.0.0.7", plain / "inner"), 2)
    assert "cannot read" in line and "Not a directory" in line


def test_timeout_is_exit_1(tmp_path: Path) -> None:
    # Nothing listens on 127.0.0.7:9 (an address no server test uses): only retries.
    done = run_analyzer("tftp", "get", "127.0.0.7:9", "x", "-o", tmp_path / "x",
                        "--timeout", "0.1", "--retries", "2")
    line = one_line_error(done, 1)
    assert "timed out" in line
    assert list(tmp_path.iterdir()) == []


def test_get_over_ipv6_brackets(hpa_ipv6_server, tmp_path: Path) -> None:
    hpa_ipv6_server.add_file("six.bin", b"six" * 1000)
    done = run_analyzer("tftp", "get", "[::1]:69", "six.bin", "-o", tmp_path / "six.bin")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "six.bin").read_bytes() == b"six" * 1000


def test_full_disk_is_exit_1_error_3_and_no_file(hpa_server, tmp_path: Path,
                                                 recorder) -> None:
    """A 64 KiB tmpfs cannot take a 1.5 MB download: one line, exit 1, ERROR 3 sent to
    the server mid-transfer (seen by tshark in the capture; the client writes in 1 MiB
    pieces), nothing left in the directory."""
    import subprocess

    from tests.conftest import require_tool

    hpa_server.add_file("big-for-tmpfs.bin", random_bytes(1_500_000, seed=74))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                   check=True, timeout=30)
    try:
        with recorder.capture(hpa_server) as sniff:
            done = run_analyzer("tftp", "get", hpa_server.ip, "big-for-tmpfs.bin", "-o",
                                small / "out.bin", "--blksize", "1428")
        line = one_line_error(done, 1)
        assert "No space left" in line
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=False, timeout=30)
    fields = subprocess.run(
        [require_tool("tshark"), "-r", str(sniff.path), "-Y", "tftp.opcode == 5",
         "-T", "fields", "-e", "ip.dst", "-e", "tftp.error.code"],
        capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert fields == [hpa_server.ip, "3"], fields
