"""tftpd-hpa 5.2 on 127.0.0.2, driven by tftp-hpa's client and our raw client; each run is
captured on lo, analyzed through the CLI, and compared with the real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.analyzer_cli import tftp_extract
from tests.support.tftp_clients import tftp_hpa
from tests.support.tftp_raw import RRQ, RawTftpClient, netascii_encode
from tests.tftp_servers.checks import (
    analyze,
    as_option_dict,
    check_complete,
    check_error,
    check_extracted,
    check_tshark_agrees,
    endpoint,
    finding,
    finding_codes,
    random_bytes,
    text_bytes,
    tshark_data_blocks,
    tshark_data_packets,
)

pytestmark = pytest.mark.root


def test_tftp_hpa_client_get_octet(hpa_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(100_000, seed=1)
    hpa_server.add_file("hpa-get.bin", content)
    local = tmp_path / "received.bin"
    with recorder.capture(hpa_server) as sniff:
        tftp_hpa(hpa_server.ip, "get", local, "hpa-get.bin")
    assert local.read_bytes() == content  # the client itself got the file

    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"hpa-get.bin": content})

    transfer, transfers = analyze(sniff.path, "RRQ", "hpa-get.bin")
    assert len(transfers) == 1
    check_complete(transfer, content, blksize=512, wire_length=len(content), mode="octet")
    assert transfer["oack"] is None  # tftp-hpa's client sends no options
    assert transfer["server"].startswith(f"{hpa_server.ip}:")
    assert transfer["server"] != f"{hpa_server.ip}:69"  # the server's TID, not port 69
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-get.bin": content})


def test_tftp_hpa_client_put_octet(hpa_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(70_001, seed=2)
    local = tmp_path / "upload.bin"
    local.write_bytes(content)
    with recorder.capture(hpa_server) as sniff:
        tftp_hpa(hpa_server.ip, "put", local, "hpa-put.bin")
    assert (hpa_server.root / "hpa-put.bin").read_bytes() == content  # what the server stored

    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"hpa-put.bin": content})

    transfer, _ = analyze(sniff.path, "WRQ", "hpa-put.bin")
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-put.bin": content})


def test_tftp_hpa_client_get_netascii(hpa_server, recorder, tmp_path: Path) -> None:
    content = text_bytes(30_000, seed=3)  # LF line ends: the server sends CR LF
    hpa_server.add_file("hpa-ascii.txt", content)
    local = tmp_path / "received.txt"
    with recorder.capture(hpa_server) as sniff:
        tftp_hpa(hpa_server.ip, "get", local, "hpa-ascii.txt", mode="ascii")
    assert local.read_bytes() == content

    wire = netascii_encode(content)
    # tshark exports the wire bytes, CR LF and all: a check that the wire really was netascii.
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"hpa-ascii.txt": wire})

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-ascii.txt")
    check_complete(transfer, content, blksize=512, wire_length=len(wire), mode="netascii")
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-ascii.txt": content})


def test_tftp_hpa_client_put_netascii(hpa_server, recorder, tmp_path: Path) -> None:
    content = text_bytes(20_000, seed=4)
    local = tmp_path / "upload.txt"
    local.write_bytes(content)
    with recorder.capture(hpa_server) as sniff:
        tftp_hpa(hpa_server.ip, "put", local, "hpa-ascii-put.txt", mode="ascii")
    assert (hpa_server.root / "hpa-ascii-put.txt").read_bytes() == content

    transfer, _ = analyze(sniff.path, "WRQ", "hpa-ascii-put.txt")
    check_complete(
        transfer, content, blksize=512, wire_length=len(netascii_encode(content)),
        mode="netascii",
    )
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-ascii-put.txt": content})


# blksize 8 over 2000 bytes ends with an empty block (an exact multiple); 65464 is the
# RFC 2348 maximum and fills a loopback datagram.
@pytest.mark.parametrize(
    ("blksize", "size"), [(8, 2000), (1428, 100_000), (8192, 200_000), (65464, 196_500)]
)
def test_raw_get_blksize_tsize(hpa_server, recorder, tmp_path, blksize, size) -> None:
    name = f"hpa-blk{blksize}.bin"
    content = random_bytes(size, seed=blksize)
    hpa_server.add_file(name, content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get(name, options={"blksize": str(blksize), "tsize": "0"})
    assert seen.wire_bytes == content
    assert seen.oack == {"blksize": str(blksize), "tsize": str(size)}
    if blksize >= 8:  # tshark truncates smaller blocks
        check_tshark_agrees(sniff.path, tmp_path / "tshark", {name: content})

    transfer, _ = analyze(sniff.path, "RRQ", name)
    check_complete(transfer, content, blksize=blksize, wire_length=size)
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    assert as_option_dict(transfer["oack"]) == seen.oack
    assert as_option_dict(transfer["options"]) == {"blksize": str(blksize), "tsize": "0"}
    # tftpd-hpa tells the truth about tsize and keeps to the RFC 2348 range.
    assert not finding_codes(transfer) & {"tsize-mismatch", "option-out-of-range"}
    check_extracted(sniff.path, tmp_path / "extract", {name: content})


def test_raw_put_blksize_tsize(hpa_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(50_000, seed=5)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.put("hpa-raw-put.bin", content, options={
            "blksize": "1428", "tsize": str(len(content)),
        })
    assert seen.error is None
    assert (hpa_server.root / "hpa-raw-put.bin").read_bytes() == content

    transfer, _ = analyze(sniff.path, "WRQ", "hpa-raw-put.bin")
    check_complete(transfer, content, blksize=1428, wire_length=len(content))
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-raw-put.bin": content})


def test_timeout_option_and_lost_block(hpa_server, recorder, tmp_path: Path) -> None:
    """The client ignores block 3 once; the server resends it after the 1 s it agreed to."""
    content = random_bytes(5000, seed=6)
    hpa_server.add_file("hpa-timeout.bin", content)
    client = RawTftpClient(hpa_server.ip, timeout=3.0)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-timeout.bin", options={"timeout": "1"}, drop_once={3})
    assert seen.wire_bytes == content and seen.dropped_blocks == [3]
    assert seen.oack == {"timeout": "1"}
    block_3_times = [data.time for data in tshark_data_packets(sniff.path) if data.block == 3]
    assert len(block_3_times) == 2  # truth of the run: block 3 went out twice
    spacing = block_3_times[1] - block_3_times[0]
    assert 0.5 <= spacing <= 3.0  # about the 1 s agreed on

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-timeout.bin")
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["retransmissions"] == 1
    codes = finding_codes(transfer)
    assert "resend-timing" in codes and not codes & {"resend-too-early", "resend-too-late"}


def test_duplicate_acks(hpa_server, recorder, tmp_path: Path) -> None:
    """Every ACK sent twice: tftpd-hpa must not answer duplicates (no Sorcerer's Apprentice)."""
    content = random_bytes(20_000, seed=7)
    hpa_server.add_file("hpa-dupack.bin", content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-dupack.bin", duplicate_acks=True)
    assert seen.wire_bytes == content
    blocks_on_wire = tshark_data_blocks(sniff.path)

    resent = len(blocks_on_wire) - len(set(blocks_on_wire))

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-dupack.bin")
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["retransmissions"] == resent
    if resent == 0:  # tftpd-hpa ignores duplicate ACKs: no Sorcerer's Apprentice
        assert "sorcerers-apprentice" not in finding_codes(transfer)


def test_wrong_tid_interference(hpa_server, recorder, tmp_path: Path) -> None:
    """An ACK from a foreign port mid-transfer belongs to no transfer."""
    content = random_bytes(10_000, seed=8)
    hpa_server.add_file("hpa-tid.bin", content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-tid.bin", stray_ack_after=3)
    assert seen.wire_bytes == content and seen.stray_client is not None

    assert seen.stray_reply is None  # tftpd-hpa sends no ERROR 5 (its socket is connected)

    transfer, transfers = analyze(sniff.path, "RRQ", "hpa-tid.bin")
    assert len(transfers) == 1, transfers  # the stray ACK starts no transfer
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    stray = finding(transfer, "stray-tid")
    assert str(seen.stray_client[1]) in stray["message"]
    assert "answered with ERROR" not in stray["message"]


def test_missing_file(hpa_server, recorder, tmp_path: Path) -> None:
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen, _, _ = client.request(RRQ, "hpa-no-such-file.bin")
    assert seen.error is not None and seen.error[0] == 1

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-no-such-file.bin")
    check_error(transfer, code=1)
    written = check_extracted(sniff.path, tmp_path / "extract", {})
    assert not any(name.startswith("hpa-no-such-file") for name in written)


def test_bad_mode(hpa_server, recorder, tmp_path: Path) -> None:
    hpa_server.add_file("hpa-mode.bin", b"x" * 100)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen, _, _ = client.request(RRQ, "hpa-mode.bin", mode="bogus")
    assert seen.error is not None and seen.error[0] == 4  # illegal TFTP operation

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-mode.bin")
    check_error(transfer, code=4)
    assert transfer["mode"] == "bogus"


def test_oack_rejected_by_client(hpa_server, recorder, tmp_path: Path) -> None:
    """RFC 2347: a client that dislikes the OACK answers ERROR 8 and the transfer ends."""
    hpa_server.add_file("hpa-reject.bin", random_bytes(3000, seed=9))
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-reject.bin", options={"blksize": "1024"}, reject_oack=True)
    assert seen.oack == {"blksize": "1024"} and not seen.wire_bytes

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-reject.bin")
    check_error(transfer, code=8)


def test_repeated_option_in_oack(hpa_server, recorder, tmp_path: Path) -> None:
    """A request naming blksize twice: tftpd-hpa echoes both in its OACK (keeping the
    client's upper case); the DATA shows which one it really uses."""
    content = random_bytes(5000, seed=14)
    hpa_server.add_file("hpa-twice-opt.bin", content)
    request = b"\0\x01hpa-twice-opt.bin\0octet\0blksize\x001024\0BLKSIZE\x002048\0"
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-twice-opt.bin", raw_request=request)
    assert seen.wire_bytes == content
    in_use = tshark_data_packets(sniff.path)[0].payload_length  # DATA 1 is a full block

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-twice-opt.bin")
    check_complete(transfer, content, blksize=in_use, wire_length=len(content))
    assert "oack-repeated" in finding_codes(transfer)


def test_netascii_cr_across_block_boundaries(hpa_server, recorder, tmp_path: Path) -> None:
    """CR LF split by the end of block 1, CR NUL split by the end of block 2."""
    content = b"a" * 511 + b"\n" + b"b" * 510 + b"\r" + text_bytes(700, seed=15)
    hpa_server.add_file("hpa-split.txt", content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-split.txt", mode="netascii")
    wire = seen.wire_bytes
    assert wire == netascii_encode(content)
    assert wire[511:513] == b"\r\n" and wire[1023:1025] == b"\r\0"  # the splits happened

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-split.txt")
    check_complete(transfer, content, blksize=512, wire_length=len(wire), mode="netascii")
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-split.txt": content})


def test_request_sent_twice(hpa_server, recorder, tmp_path: Path) -> None:
    """The same RRQ twice from one port: tftpd-hpa starts two transfers (two TIDs); the
    client keeps the first and refuses the other with ERROR 5, as RFC 1350 says."""
    content = random_bytes(8000, seed=11)
    hpa_server.add_file("hpa-twice.bin", content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-twice.bin", repeat_request=True)
    assert seen.wire_bytes == content
    assert seen.foreign_packets >= 1  # the second transfer really started

    transfer, transfers = analyze(sniff.path, "RRQ", "hpa-twice.bin")
    assert len(transfers) == 1, transfers
    check_complete(transfer, content, blksize=512, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)
    assert transfer["server"] == endpoint(seen.server)
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-twice.bin": content})


def test_client_abort(hpa_server, recorder, tmp_path: Path) -> None:
    """The client takes 5 blocks, then sends ERROR 0 instead of ACK 5."""
    content = random_bytes(10 * 512 + 7, seed=12)
    hpa_server.add_file("hpa-abort.bin", content)
    client = RawTftpClient(hpa_server.ip)
    with recorder.capture(hpa_server) as sniff:
        seen = client.get("hpa-abort.bin", abort_after=5)
    assert seen.wire_bytes == content[: 5 * 512]

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-abort.bin")
    assert transfer["status"] == "error", transfer
    assert transfer["error"]["code"] == 0, transfer
    assert transfer["blocks"] == 5, transfer
    written = tftp_extract(sniff.path, tmp_path / "extract")
    assert "hpa-abort.bin" not in written  # never under its own name: it is not the file
    assert written["hpa-abort.bin.partial"].read_bytes() == content[: 5 * 512]


def test_ipv6_loopback(hpa_ipv6_server, recorder, tmp_path: Path) -> None:
    content = random_bytes(30_000, seed=13)
    hpa_ipv6_server.add_file("hpa-v6.bin", content)
    client = RawTftpClient("::1", bind_ip="::1")
    with recorder.capture(hpa_ipv6_server) as sniff:
        seen = client.get("hpa-v6.bin", options={"blksize": "1428", "tsize": "0"})
    assert seen.wire_bytes == content
    check_tshark_agrees(sniff.path, tmp_path / "tshark", {"hpa-v6.bin": content})

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-v6.bin")
    check_complete(transfer, content, blksize=1428, wire_length=len(content))
    assert transfer["client"] == endpoint(seen.client)  # "[::1]:port"
    assert transfer["server"] == endpoint(seen.server)
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-v6.bin": content})


@pytest.mark.slow
def test_block_number_rollover(hpa_server, recorder, tmp_path: Path) -> None:
    """65535*512+1 bytes need 65536 blocks (the last a 1-byte block): numbers wrap."""
    size = 65535 * 512 + 1
    content = random_bytes(size, seed=10)
    hpa_server.add_file("hpa-rollover.bin", content)
    client = RawTftpClient(hpa_server.ip, max_seconds=90)
    with recorder.capture(hpa_server, burst=True) as sniff:
        seen = client.get("hpa-rollover.bin")
    assert seen.wire_bytes == content and seen.blocks == 65536

    transfer, _ = analyze(sniff.path, "RRQ", "hpa-rollover.bin")
    check_complete(transfer, content, blksize=512, wire_length=size)
    assert transfer["blocks"] == 65536
    assert "rollover" in finding_codes(transfer)
    check_extracted(sniff.path, tmp_path / "extract", {"hpa-rollover.bin": content})
