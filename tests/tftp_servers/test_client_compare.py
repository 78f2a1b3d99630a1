"""Our client beside the tftp-hpa client (`tftp`), the atftp client and `curl tftp://`,
on the same files from tftpd-hpa: the same bytes, downloads and uploads, octet and
netascii. The truth is the file on the server's disk."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.analyzer_cli import run_analyzer
from tests.support.tftp_clients import atftp, tftp_hpa
from tests.tftp_servers.checks import random_bytes, text_bytes

pytestmark = pytest.mark.root

FILES = {
    "cmp-1.bin": random_bytes(1, seed=1),
    "cmp-512.bin": random_bytes(512, seed=2),
    "cmp-70k.bin": random_bytes(70_001, seed=3),
}
TEXT = text_bytes(9_000, seed=4) + b"a bare CR\rin the middle\r\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def curl(url: str, out: Path, *extra: str) -> None:
    done = subprocess.run([require_tool("curl"), "-sS", *extra, "-o", str(out), url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def ours(*args: str | Path) -> None:
    done = run_analyzer("tftp", *args)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", list(FILES))
def test_same_bytes_as_the_other_clients(hpa_server, tmp_path: Path, name: str) -> None:
    content = FILES[name]
    hpa_server.add_file(name, content)
    results = {
        "ours": tmp_path / "ours", "tftp-hpa": tmp_path / "hpa",
        "atftp": tmp_path / "atftp", "curl": tmp_path / "curl",
    }
    ours("get", hpa_server.ip, name, "-o", results["ours"], "--blksize", "1428")
    tftp_hpa(hpa_server.ip, "get", results["tftp-hpa"], name)
    atftp(hpa_server.ip, "get", results["atftp"], name, {"blksize": 1428})
    curl(f"tftp://{hpa_server.ip}/{name}", results["curl"], "--tftp-blksize", "1428")
    digests = {client: sha(path.read_bytes()) for client, path in results.items()}
    assert set(digests.values()) == {sha(content)}, digests


def test_netascii_get_same_text_as_the_other_clients(hpa_server, tmp_path: Path) -> None:
    hpa_server.add_file("cmp.txt", TEXT)
    ours("get", hpa_server.ip, "cmp.txt", "-o", tmp_path / "ours", "--mode", "netascii")
    tftp_hpa(hpa_server.ip, "get", tmp_path / "hpa", "cmp.txt", mode="ascii")
    atftp(hpa_server.ip, "get", tmp_path / "atftp", "cmp.txt", mode="netascii")
    expected = TEXT  # tftpd-hpa encodes, every client decodes: the file itself again
    assert (tmp_path / "ours").read_bytes() == expected
    assert (tmp_path / "hpa").read_bytes() == expected
    assert (tmp_path / "atftp").read_bytes() == expected


def test_uploads_store_the_same_bytes(hpa_server, tmp_path: Path) -> None:
    content = random_bytes(50_000, seed=5)
    local = tmp_path / "up.bin"
    local.write_bytes(content)
    ours("put", hpa_server.ip, local, "--as", "cmp-up-ours.bin", "--blksize", "1428")
    tftp_hpa(hpa_server.ip, "put", local, "cmp-up-hpa.bin")
    atftp(hpa_server.ip, "put", local, "cmp-up-atftp.bin")
    curl(f"tftp://{hpa_server.ip}/cmp-up-curl.bin", tmp_path / "unused", "-T", str(local))
    stored = {name: sha((hpa_server.root / f"cmp-up-{name}.bin").read_bytes())
              for name in ("ours", "hpa", "atftp", "curl")}
    assert set(stored.values()) == {sha(content)}, stored
