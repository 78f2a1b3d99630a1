"""tftpy 0.8.7 (pure Python, from PyPI) listening on 127.0.0.5: it answers from 127.0.0.1
(its transfer socket is unbound), adds blksize to every OACK, and accepts blksize 65465."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tftp_raw import RawTftpClient
from tests.tftp_servers.checks import (
    analyze,
    as_option_dict,
    check_complete,
    check_extracted,
    endpoint,
    finding_codes,
    random_bytes,
    text_bytes,
)
from tests.tftp_servers.conftest import TFTPY_CLIENT_IP, TFTPY_WILDCARD_PORT

pytestmark = pytest.mark.root


def test_reply_from_another_ip(tftpy_server, recorder, tmp_path: Path) -> None:
    """The request goes to 127.0.0.5, the DATA comes from 127.0.0.1: still one transfer."""
    content = random_bytes(50_000, seed=41)
    tftpy_server.add_file("py-get.bin", content)
    client = RawTftpClient(tftpy_server.ip, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_server, TFTPY_CLIENT_IP) as sniff:
        seen = client.get("py-get.bin")
    assert seen.wire_bytes == content
    assert seen.server is not None and seen.server[0] == tftpy_server.reply_ip != tftpy_server.ip

    transfer, transfers = analyze(sniff.path, "RRQ", "py-get.bin")
    assert len(transfers) == 1
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    check_extracted(sniff.path, tmp_path / "extract", {"py-get.bin": content})


def test_unrequested_blksize_in_oack(tftpy_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(9000, seed=42)
    tftpy_server.add_file("py-tsize.bin", content)
    client = RawTftpClient(tftpy_server.ip, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_server, TFTPY_CLIENT_IP) as sniff:
        seen = client.get("py-tsize.bin", options={"tsize": "0"})
    assert seen.wire_bytes == content
    assert seen.oack is not None and "blksize" in seen.oack  # tftpy adds it unasked

    transfer, _ = analyze(sniff.path, "RRQ", "py-tsize.bin")
    check_complete(transfer, content, blksize=int(seen.oack["blksize"]), wire_length=len(content))
    assert as_option_dict(transfer["oack"]) == seen.oack
    assert as_option_dict(transfer["options"]) == {"tsize": "0"}
    assert "oack-unrequested" in finding_codes(transfer)


def test_blksize_above_rfc_maximum(tftpy_server, recorder, tmp_path: Path) -> None:
    """tftpy acknowledges blksize 65465 (RFC 2348 max is 65464): blocks really are 65465."""
    content = random_bytes(65465 * 2 + 10, seed=43)
    tftpy_server.add_file("py-big.bin", content)
    client = RawTftpClient(tftpy_server.ip, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_server, TFTPY_CLIENT_IP) as sniff:
        seen = client.get("py-big.bin", options={"blksize": "65465"})
    assert seen.oack is not None and seen.oack["blksize"] == "65465"
    assert seen.wire_bytes == content and seen.blocks == 3

    transfer, _ = analyze(sniff.path, "RRQ", "py-big.bin")
    check_complete(transfer, content, blksize=65465, wire_length=len(content))
    assert "option-out-of-range" in finding_codes(transfer)  # RFC 2348: 8..65464


def test_put(tftpy_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(20_480, seed=44)  # 40 full blocks and an empty one
    client = RawTftpClient(tftpy_server.ip, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_server, TFTPY_CLIENT_IP) as sniff:
        seen = client.put("py-put.bin", content)
    assert seen.error is None
    assert (tftpy_server.root / "py-put.bin").read_bytes() == content

    transfer, _ = analyze(sniff.path, "WRQ", "py-put.bin")
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    check_extracted(sniff.path, tmp_path / "extract", {"py-put.bin": content})


def test_netascii_not_converted(tftpy_server, recorder, tmp_path: Path) -> None:
    """tftpy sends the file as is in netascii mode; with LF-only text that still decodes
    to the served file (no CR on the wire to interpret)."""
    content = text_bytes(5000, seed=45)
    tftpy_server.add_file("py-ascii.txt", content)
    client = RawTftpClient(tftpy_server.ip, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_server, TFTPY_CLIENT_IP) as sniff:
        seen = client.get("py-ascii.txt", mode="netascii")
    assert seen.wire_bytes == content  # the quirk, as measured: no CR LF conversion

    transfer, _ = analyze(sniff.path, "RRQ", "py-ascii.txt")
    check_complete(transfer, content, blksize=512, wire_length=len(content), mode="netascii")


def test_wildcard_bound_server_on_another_port(
    tftpy_wildcard_server, recorder, tmp_path: Path
) -> None:
    """tftpy bound to 0.0.0.0:6969: the request goes to 127.0.0.5:6969, the replies come
    from 127.0.0.1; the analyzer finds it when told `--tftp-port 6969`."""
    content = random_bytes(25_000, seed=46)
    tftpy_wildcard_server.add_file("py-wild.bin", content)
    client = RawTftpClient("127.0.0.5", TFTPY_WILDCARD_PORT, bind_ip=TFTPY_CLIENT_IP)
    with recorder.capture(tftpy_wildcard_server, "127.0.0.5", TFTPY_CLIENT_IP) as sniff:
        seen = client.get("py-wild.bin", options={"blksize": "1024"})
    assert seen.wire_bytes == content
    assert seen.server is not None and seen.server[0] == "127.0.0.1"

    port_option = ("--tftp-port", str(TFTPY_WILDCARD_PORT))
    transfer, transfers = analyze(sniff.path, "RRQ", "py-wild.bin", *port_option)
    assert len(transfers) == 1
    check_complete(transfer, content, blksize=1024, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    check_extracted(sniff.path, tmp_path / "extract", {"py-wild.bin": content}, *port_option)
