"""Our TFTP client against real servers on loopback: tftpd-hpa, atftpd, dnsmasq, tftpy.

Every result is checked by SHA-256 against the file on the server's disk (what we served,
or what the server stored from our upload). The matrix crosses sizes with blksize 512 and
1428, block sizes with one size, windows with the servers that have them, and modes.
The client runs in-process through its socket driver (the CLI has its own tests).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from analyzer.active.tftp import TftpClientDriver, TransferSpec
from analyzer.tftp.client import ClientOutcome
from tests.support.tftp_raw import netascii_encode
from tests.tftp_servers.checks import random_bytes, text_bytes

pytestmark = pytest.mark.root

SERVERS = ["tftpd-hpa", "atftpd", "dnsmasq", "tftpy"]
FIXTURES = {"tftpd-hpa": "hpa_server", "atftpd": "atftpd_server",
            "dnsmasq": "dnsmasq_server", "tftpy": "tftpy_server"}
# Servers that implement RFC 7440 windowsize.
WINDOWED = {"atftpd"}


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest):
    return request.getfixturevalue(FIXTURES[request.param])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored(path: Path, expected: bytes, settle_seconds: float = 3.0) -> bytes:
    """The server's copy of an upload. Servers may close the file just after their final
    ACK, so wait (briefly) for the expected content before returning what is there."""
    deadline = time.monotonic() + settle_seconds
    while True:
        data = path.read_bytes() if path.exists() else b""
        if data == expected or time.monotonic() > deadline:
            return data
        time.sleep(0.02)


def transfer(server, remote: str, local: Path | str, put: bool = False,
             **options) -> ClientOutcome:
    address = f"[{server.ip}]:{server.port}" if ":" in server.ip else \
        f"{server.ip}:{server.port}"
    spec = TransferSpec(server=address, remote=remote, local=str(local), put=put,
                        timeout=options.pop("timeout", 1.0), **options)
    return TftpClientDriver(spec).run()


def check_get(server, tmp_path: Path, content: bytes, name: str, **options) -> ClientOutcome:
    server.add_file(name, content)
    local = tmp_path / f"got-{name}"
    outcome = transfer(server, name, local, **options)
    assert outcome.status == "complete", outcome.reason
    expected = content if options.get("mode", "octet") == "octet" else content
    assert sha(local.read_bytes()) == sha(expected)
    assert outcome.sha256 == sha(expected) and outcome.bytes == len(expected)
    return outcome


def check_put(server, tmp_path: Path, content: bytes, name: str, **options) -> ClientOutcome:
    if not server.writable:
        pytest.skip(f"{server.name} refuses WRQ")
    local = tmp_path / f"up-{name}"
    local.write_bytes(content)
    outcome = transfer(server, name, local, put=True, **options)
    assert outcome.status == "complete", outcome.reason
    assert outcome.sha256 == sha(content) and outcome.bytes == len(content)
    return outcome


# -------------------------------------------------------------------- sizes

SIZES = [0, 1, 511, 512, 513, 1024, 2856]  # 1024 = 2 x 512, 2856 = 2 x 1428


@pytest.mark.parametrize("blksize", [512, 1428])
def test_get_sizes(server, tmp_path: Path, blksize: int) -> None:
    for size in SIZES:
        content = random_bytes(size, seed=size + blksize)
        outcome = check_get(server, tmp_path, content, f"get-{size}-{blksize}.bin",
                            blksize=blksize, tsize=True)
        assert outcome.blksize == blksize
        blocks = size // blksize + 1
        assert outcome.retransmitted == 0, f"{blocks} blocks on loopback, no loss"


@pytest.mark.parametrize("blksize", [512, 1428])
def test_put_sizes(server, tmp_path: Path, blksize: int) -> None:
    for size in SIZES:
        content = random_bytes(size, seed=size * 3 + blksize)
        name = f"put-{size}-{blksize}.bin"
        check_put(server, tmp_path, content, name, blksize=blksize, tsize=True)
        assert sha(stored(server.root / name, content)) == sha(content), size


# -------------------------------------------------------------------- block sizes, tsize

@pytest.mark.parametrize("blksize", [8, 512, 1428, 8192, 65464])
@pytest.mark.parametrize("tsize", [False, True])
def test_get_blksize(server, tmp_path: Path, blksize: int, tsize: bool) -> None:
    size = 20_000 if blksize == 8 else 150_000
    content = random_bytes(size, seed=blksize)
    outcome = check_get(server, tmp_path, content, f"bs-{blksize}-{tsize}.bin",
                        blksize=blksize, tsize=tsize)
    if server.name == "atftpd" and blksize == 8:
        # atftpd 0.8 answers blksize 8 with ERROR 8: we ask again without options.
        assert outcome.oack is None and outcome.blksize == 512
        assert any("retried without options" in note for note in outcome.notes)
        return
    assert outcome.oack is not None
    oack = {name.lower(): value for name, value in outcome.oack}
    assert oack.get("blksize") == str(outcome.blksize)
    if server.name == "dnsmasq":
        # dnsmasq offers at most what fits its packet buffer (2263 here): less is legal.
        assert outcome.blksize <= blksize
    else:
        assert outcome.blksize == blksize
    if tsize:
        assert oack.get("tsize") == str(size)
    else:
        assert "tsize" not in oack


@pytest.mark.parametrize("blksize", [8, 1428, 65464])
def test_put_blksize(server, tmp_path: Path, blksize: int) -> None:
    content = random_bytes(30_000, seed=blksize + 1)
    name = f"put-bs-{blksize}.bin"
    outcome = check_put(server, tmp_path, content, name, blksize=blksize, tsize=True)
    if server.name == "atftpd" and blksize == 8:
        assert any("retried without options" in note for note in outcome.notes)
        assert outcome.blksize == 512
    else:
        assert outcome.blksize == blksize
    assert sha(stored(server.root / name, content)) == sha(content)


def test_no_options_and_plain_defaults(server, tmp_path: Path) -> None:
    content = random_bytes(5000, seed=5)
    outcome = check_get(server, tmp_path, content, "plain.bin", use_options=False)
    assert outcome.options == () and outcome.oack is None and outcome.blksize == 512


# -------------------------------------------------------------------- windows

@pytest.mark.parametrize("windowsize", [1, 4, 16])
def test_get_windowsize(server, tmp_path: Path, windowsize: int) -> None:
    content = random_bytes(300_000, seed=windowsize)
    outcome = check_get(server, tmp_path, content, f"win-{windowsize}.bin",
                        blksize=1428, windowsize=windowsize)
    if server.name in WINDOWED:
        assert outcome.windowsize == windowsize
    else:
        assert outcome.windowsize == 1


@pytest.mark.parametrize("windowsize", [4, 16])
def test_put_windowsize(server, tmp_path: Path, windowsize: int) -> None:
    content = random_bytes(200_000, seed=windowsize + 7)
    name = f"put-win-{windowsize}.bin"
    check_put(server, tmp_path, content, name, blksize=1024, windowsize=windowsize)
    assert sha(stored(server.root / name, content)) == sha(content)


# -------------------------------------------------------------------- netascii

TEXT = text_bytes(7000, seed=3)  # LF line ends: every server's netascii agrees on these


def test_get_netascii(server, tmp_path: Path) -> None:
    # The server converts LF -> CR LF (tftpy sends the file as is); we decode back to LF.
    for blksize in (8, 512):
        check_get(server, tmp_path, TEXT, f"text-{blksize}.txt", mode="netascii",
                  blksize=blksize)


def test_put_netascii(server, tmp_path: Path) -> None:
    name = "up-text.txt"
    check_put(server, tmp_path, TEXT, name, mode="netascii", blksize=512)
    # Servers that convert store LF again; tftpy stores the wire form as it came.
    expected = netascii_encode(TEXT) if server.name == "tftpy" else TEXT
    assert sha(stored(server.root / name, expected)) == sha(expected)


# -------------------------------------------------------------------- rollover

ROLLOVER_SIZE = 65_536 * 512 + 1000  # 65,538 blocks at blksize 512


@pytest.fixture(scope="module")
def rollover_content() -> bytes:
    return random_bytes(ROLLOVER_SIZE, seed=65536)


def test_get_rollover(server, tmp_path: Path, rollover_content: bytes) -> None:
    outcome = check_get(server, tmp_path, rollover_content, "rollover.bin", blksize=512,
                        tsize=True)
    assert outcome.retransmitted == 0 or server.name == "atftpd"
    (server.root / "rollover.bin").unlink()


def test_put_rollover_hpa(hpa_server, tmp_path: Path, rollover_content: bytes) -> None:
    name = "rollover-up.bin"
    check_put(hpa_server, tmp_path, rollover_content, name, blksize=512)
    assert sha(stored(hpa_server.root / name, rollover_content)) == sha(rollover_content)
    (hpa_server.root / name).unlink()


# -------------------------------------------------------------------- IPv6, errors

def test_get_over_ipv6(hpa_ipv6_server, tmp_path: Path) -> None:
    content = random_bytes(3000, seed=6)
    outcome = check_get(hpa_ipv6_server, tmp_path, content, "v6.bin", blksize=1428)
    assert outcome.peer is not None and outcome.peer[0] == "::1"


def test_missing_file_is_a_server_error_1(server, tmp_path: Path) -> None:
    local = tmp_path / "never.bin"
    outcome = transfer(server, "no-such-file.bin", local)
    assert outcome.status == "error"
    assert outcome.error is not None and outcome.error.origin == "server"
    assert outcome.error.code == 1 or (server.name == "tftpy" and outcome.error.code in (0, 1))
    assert not local.exists()
    assert list(tmp_path.iterdir()) == [], "no temporary file left behind"


# -------------------------------------------------------------------- misbehaviour hooks

def test_stray_ack_from_a_second_port_gets_error_5(dnsmasq_server, tmp_path: Path,
                                                   recorder) -> None:
    """The hook sends ACK 1 again from a second local socket; dnsmasq answers that port
    with ERROR 5 (RFC 1350) and the transfer goes on. tshark reads the capture."""
    import subprocess

    from analyzer.tftp.client import Misbehaviour
    from tests.conftest import require_tool

    content = random_bytes(3000, seed=77)
    dnsmasq_server.add_file("stray.bin", content)
    spec = TransferSpec(server=dnsmasq_server.ip, remote="stray.bin",
                        local=str(tmp_path / "stray.bin"),
                        misbehaviour=Misbehaviour(stray_ack=1))
    driver = TftpClientDriver(spec)
    endpoints = driver.bind()
    assert len(endpoints) == 2 and endpoints[0][1] != endpoints[1][1]
    with recorder.capture(dnsmasq_server) as sniff:
        outcome = driver.run()
    assert outcome.ok and outcome.sha256 == sha(content)
    fields = subprocess.run(
        [require_tool("tshark"), "-r", str(sniff.path), "-d", f"udp.port=={endpoints[1][1]},tftp",
         "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "tftp.opcode",
         "-e", "tftp.error.code"], capture_output=True, text=True, check=True, timeout=60)
    rows = [line.split("\t") for line in fields.stdout.splitlines()]
    stray_port = str(endpoints[1][1])
    sent_by_stray = [row for row in rows if row[0] == stray_port]
    answered = [row for row in rows if row[1] == stray_port]
    assert sent_by_stray and sent_by_stray[0][2] == "4", rows  # our stray ACK
    assert answered and answered[0][2:] == ["5", "5"], rows  # dnsmasq's ERROR 5


def test_get_to_a_stdout_without_a_descriptor(hpa_server, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`-o -` when standard output is a Python object (an embedding program, a test's
    capture): the C bulk path writes to a descriptor, so the Python path takes every
    block instead, and nothing is lost."""
    import io

    content = random_bytes(512 * 300 + 7, 19)
    hpa_server.add_file("nofd.bin", content)
    captured = io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(captured))
    outcome = transfer(hpa_server, "nofd.bin", "-")
    assert outcome.status == "complete", outcome.reason
    assert captured.getvalue() == content
