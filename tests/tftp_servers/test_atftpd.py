"""atftpd 0.8.0 on 127.0.0.3 (unpacked from its Debian package), driven by atftp and our
raw client: options, RFC 7440 windows with a lost block, and its Sorcerer's Apprentice bug."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.analyzer_cli import tftp_transfers
from tests.support.tftp_clients import atftp
from tests.support.tftp_raw import RawTftpClient, netascii_encode
from tests.tftp_servers.checks import (
    analyze,
    as_option_dict,
    check_complete,
    check_extracted,
    check_tshark_agrees,
    endpoint,
    find_transfer,
    finding_codes,
    random_bytes,
    text_bytes,
    tshark_data_blocks,
)

pytestmark = pytest.mark.root


def test_atftp_get_blksize_tsize(atftpd_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(150_000, seed=21)
    atftpd_server.add_file("at-get.bin", content)
    local = tmp_path / "received.bin"
    with recorder.capture(atftpd_server) as sniff:
        atftp(atftpd_server.ip, "get", local, "at-get.bin", {"blksize": 8192, "tsize": 0})
    assert local.read_bytes() == content
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"at-get.bin": content})

    transfer, transfers = analyze(sniff.path, "RRQ", "at-get.bin")
    assert len(transfers) == 1
    check_complete(transfer, content, blksize=8192, wire_length=len(content))
    oack = as_option_dict(transfer["oack"])
    assert oack["blksize"] == "8192" and oack["tsize"] == str(len(content))
    check_extracted(sniff.path, tmp_path / "extract", {"at-get.bin": content})


def test_atftp_get_windowsize(atftpd_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(100_000, seed=22)
    atftpd_server.add_file("at-window.bin", content)
    local = tmp_path / "received.bin"
    with recorder.capture(atftpd_server) as sniff:
        atftp(atftpd_server.ip, "get", local, "at-window.bin", {"windowsize": 4, "blksize": 1024})
    assert local.read_bytes() == content

    transfer, _ = analyze(sniff.path, "RRQ", "at-window.bin")
    check_complete(transfer, content, blksize=1024, wire_length=len(content), windowsize=4)
    check_extracted(sniff.path, tmp_path / "extract", {"at-window.bin": content})


def test_atftp_put_windowsize(atftpd_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(81_920, seed=23)  # an exact multiple of 1024: empty last block
    local = tmp_path / "upload.bin"
    local.write_bytes(content)
    with recorder.capture(atftpd_server) as sniff:
        atftp(atftpd_server.ip, "put", local, "at-put.bin", {"windowsize": 4, "blksize": 1024})
    assert (atftpd_server.root / "at-put.bin").read_bytes() == content

    transfer, _ = analyze(sniff.path, "WRQ", "at-put.bin")
    check_complete(transfer, content, blksize=1024, wire_length=len(content), windowsize=4)
    check_extracted(sniff.path, tmp_path / "extract", {"at-put.bin": content})


def test_window_with_lost_block(atftpd_server, recorder, tmp_path: Path) -> None:
    """Block 6 (second window) is ignored once: the client acks 5 and the server restarts."""
    content = random_bytes(40_000, seed=24)
    atftpd_server.add_file("at-lost.bin", content)
    client = RawTftpClient(atftpd_server.ip)
    with recorder.capture(atftpd_server) as sniff:
        seen = client.get(
            "at-lost.bin", options={"blksize": "1024", "windowsize": "4"}, drop_once={6}
        )
    assert seen.wire_bytes == content and seen.dropped_blocks == [6]
    assert seen.oack == {"blksize": "1024", "windowsize": "4"}
    blocks_on_wire = tshark_data_blocks(sniff.path)
    resent = len(blocks_on_wire) - len(set(blocks_on_wire))
    assert resent >= 1  # block 6 at least went out twice

    transfer, _ = analyze(sniff.path, "RRQ", "at-lost.bin")
    check_complete(transfer, content, blksize=1024, wire_length=len(content), windowsize=4)
    assert transfer["retransmissions"] == resent
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)


def test_windowed_put_with_lost_block(atftpd_server, recorder, tmp_path: Path) -> None:
    """WRQ with windowsize 4: block 6 never leaves the client the first time; the server
    acks 5 and the client resends from 6 (so 7 and 8 go out twice)."""
    content = random_bytes(30_000, seed=28)
    client = RawTftpClient(atftpd_server.ip)
    with recorder.capture(atftpd_server) as sniff:
        seen = client.put(
            "at-lost-put.bin", content, options={"blksize": "1024", "windowsize": "4"},
            skip_once={6},
        )
    assert seen.error is None and seen.dropped_blocks == [6]
    assert (atftpd_server.root / "at-lost-put.bin").read_bytes() == content
    blocks_on_wire = tshark_data_blocks(sniff.path)
    resent = len(blocks_on_wire) - len(set(blocks_on_wire))
    assert resent >= 1

    transfer, _ = analyze(sniff.path, "WRQ", "at-lost-put.bin")
    check_complete(transfer, content, blksize=1024, wire_length=len(content), windowsize=4)
    assert transfer["retransmissions"] == resent
    check_extracted(sniff.path, tmp_path / "extract", {"at-lost-put.bin": content})


def test_sorcerers_apprentice(atftpd_server, recorder, tmp_path: Path) -> None:
    """Duplicate ACKs make atftpd send every block twice; each block still counts once."""
    content = random_bytes(30_000, seed=25)
    atftpd_server.add_file("at-sas.bin", content)
    client = RawTftpClient(atftpd_server.ip)
    with recorder.capture(atftpd_server) as sniff:
        seen = client.get("at-sas.bin", duplicate_acks=True)
    assert seen.wire_bytes == content
    blocks_on_wire = tshark_data_blocks(sniff.path)
    distinct = len(set(blocks_on_wire))
    assert distinct == len(content) // 512 + 1
    resent = len(blocks_on_wire) - distinct
    assert resent >= distinct - 2  # the bug really showed: nearly every block twice

    transfer, transfers = analyze(sniff.path, "RRQ", "at-sas.bin")
    # The last duplicate DATA reaches a closed port: the ICMP error is no transfer of its own.
    assert len(transfers) == 1, transfers
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["retransmissions"] == resent
    assert "sorcerers-apprentice" in finding_codes(transfer)
    check_extracted(sniff.path, tmp_path / "extract", {"at-sas.bin": content})


def test_atftp_netascii_both_ways(atftpd_server, recorder, tmp_path: Path) -> None:
    """A file with LF, CR LF and bare CR: atftpd and atftp encode it per RFC 764."""
    content = text_bytes(6000, seed=26) + b"dos line\r\nbare\rcr\n" + text_bytes(3000, seed=27)
    atftpd_server.add_file("at-ascii.txt", content)
    upload = tmp_path / "upload.txt"
    upload.write_bytes(content)
    local = tmp_path / "received.txt"
    with recorder.capture(atftpd_server) as sniff:
        atftp(atftpd_server.ip, "get", local, "at-ascii.txt", mode="netascii")
        atftp(atftpd_server.ip, "put", upload, "at-ascii-put.txt", mode="netascii")
    assert local.read_bytes() == content
    assert (atftpd_server.root / "at-ascii-put.txt").read_bytes() == content
    wire = netascii_encode(content)
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"at-ascii.txt": wire})

    transfers = tftp_transfers(sniff.path)
    assert len(transfers) == 2
    for request, name in (("RRQ", "at-ascii.txt"), ("WRQ", "at-ascii-put.txt")):
        transfer = find_transfer(transfers, request, name)
        check_complete(transfer, content, blksize=512, wire_length=len(wire), mode="netascii")
    check_extracted(
        sniff.path, tmp_path / "extract", {"at-ascii.txt": content, "at-ascii-put.txt": content}
    )
