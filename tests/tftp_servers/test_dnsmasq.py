"""dnsmasq 2.90's TFTP server (DNS off) on 127.0.0.4: read-only, accepts tiny blksize
values, leaves bare CRs in netascii, and answers stray TIDs with ERROR 5."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.analyzer_cli import tftp_transfers
from tests.support.tftp_clients import tftp_hpa
from tests.support.tftp_raw import ERROR, RRQ, WRQ, RawTftpClient
from tests.tftp_servers.checks import (
    analyze,
    as_option_dict,
    check_complete,
    check_error,
    check_extracted,
    check_tshark_agrees,
    endpoint,
    find_transfer,
    finding,
    finding_codes,
    random_bytes,
    text_bytes,
)

pytestmark = pytest.mark.root


def test_tftp_hpa_client_get(dnsmasq_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(60_000, seed=31)
    dnsmasq_server.add_file("dq-get.bin", content)
    local = tmp_path / "received.bin"
    with recorder.capture(dnsmasq_server) as sniff:
        tftp_hpa(dnsmasq_server.ip, "get", local, "dq-get.bin")
    assert local.read_bytes() == content
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"dq-get.bin": content})

    transfer, transfers = analyze(sniff.path, "RRQ", "dq-get.bin")
    assert len(transfers) == 1
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    check_extracted(sniff.path, tmp_path / "extract", {"dq-get.bin": content})


def test_blksize_below_rfc_minimum(dnsmasq_server, recorder, tmp_path: Path) -> None:
    """dnsmasq acknowledges blksize 7 (RFC 2348 says 8..65464): the OACK's value rules."""
    content = random_bytes(700, seed=32)  # 100 blocks of 7, then an empty one
    dnsmasq_server.add_file("dq-blk7.bin", content)
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen = client.get("dq-blk7.bin", options={"blksize": "7", "tsize": "0"})
    assert seen.oack is not None and seen.oack["blksize"] == "7"
    assert seen.wire_bytes == content and seen.blocks == 101

    transfer, _ = analyze(sniff.path, "RRQ", "dq-blk7.bin")
    check_complete(transfer, content, blksize=7, wire_length=len(content))
    assert as_option_dict(transfer["oack"])["blksize"] == "7"
    assert "option-out-of-range" in finding_codes(transfer)  # RFC 2348: 8..65464
    check_extracted(sniff.path, tmp_path / "extract", {"dq-blk7.bin": content})


def test_raw_get_blksize_1428(dnsmasq_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(1428 * 40, seed=33)  # exact multiple: an empty final block
    dnsmasq_server.add_file("dq-1428.bin", content)
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen = client.get("dq-1428.bin", options={"blksize": "1428", "tsize": "0"})
    assert seen.wire_bytes == content
    assert seen.oack == {"blksize": "1428", "tsize": str(len(content))}
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"dq-1428.bin": content})

    transfer, _ = analyze(sniff.path, "RRQ", "dq-1428.bin")
    check_complete(transfer, content, blksize=1428, wire_length=len(content))
    assert transfer["blocks"] == 41


def test_netascii_with_bare_cr(dnsmasq_server, recorder, tmp_path: Path) -> None:
    """dnsmasq turns LF into CR LF but leaves a CR bare (CR CR LF for a DOS line end);
    a lenient decoder still gives back the served file."""
    content = text_bytes(4000, seed=34) + b"dos line\r\n" + text_bytes(2000, seed=35)
    dnsmasq_server.add_file("dq-ascii.txt", content)
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen = client.get("dq-ascii.txt", mode="netascii")
    assert b"dos line\r\r\n" in seen.wire_bytes  # the server's quirk, as measured

    transfer, _ = analyze(sniff.path, "RRQ", "dq-ascii.txt")
    check_complete(
        transfer, content, blksize=512, wire_length=len(seen.wire_bytes), mode="netascii"
    )
    check_extracted(sniff.path, tmp_path / "extract", {"dq-ascii.txt": content})


def test_write_refused(dnsmasq_server, recorder, tmp_path: Path) -> None:
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen, opcode, _ = client.request(WRQ, "dq-upload.bin")
    assert opcode == ERROR and seen.error is not None

    transfer, _ = analyze(sniff.path, "WRQ", "dq-upload.bin")
    check_error(transfer, code=seen.error[0])
    assert transfer["error"]["message"] == seen.error[1]


def test_missing_file(dnsmasq_server, recorder, tmp_path: Path) -> None:
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen, _, _ = client.request(RRQ, "dq-missing.bin")
    assert seen.error is not None and seen.error[0] == 1

    transfer, _ = analyze(sniff.path, "RRQ", "dq-missing.bin")
    check_error(transfer, code=1)


def test_wrong_tid_answered_with_error_5(dnsmasq_server, recorder, tmp_path: Path) -> None:
    """RFC 1350: a packet from an unknown TID gets ERROR 5 and the transfer goes on."""
    content = random_bytes(12_000, seed=36)
    dnsmasq_server.add_file("dq-tid.bin", content)
    client = RawTftpClient(dnsmasq_server.ip)
    with recorder.capture(dnsmasq_server) as sniff:
        seen = client.get("dq-tid.bin", stray_ack_after=4)
    assert seen.wire_bytes == content
    assert seen.stray_reply is not None and seen.stray_reply[:2] == (ERROR, 5)

    transfers = tftp_transfers(sniff.path)
    assert len(transfers) == 1, transfers  # neither the stray ACK nor its ERROR is a transfer
    transfer = find_transfer(transfers, "RRQ", "dq-tid.bin")
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    stray = finding(transfer, "stray-tid")
    assert str(seen.stray_client[1]) in stray["message"]
    assert "answered with ERROR 5" in stray["message"]
