"""The TFTP codec against scapy's independent TFTP layers and the RFC byte layouts."""

from __future__ import annotations

import pytest

from analyzer.tftp import codec
from analyzer.tftp.codec import (
    Ack,
    Data,
    Error,
    MalformedPacket,
    OAck,
    Request,
    decode,
    option_in_range,
    option_int,
    options_dict,
)
from tests.tftp import craft


def test_request_with_options_matches_scapy() -> None:
    options = (("blksize", "1428"), ("tsize", "0"), ("BLKSIZE", "8"), ("x-vendor", "on"))
    ours = Request(codec.RRQ, "boot/pxelinux.0", "octet", options)
    assert ours.encode() == craft.rrq("boot/pxelinux.0", "octet", options)
    assert decode(craft.rrq("boot/pxelinux.0", "octet", options)) == ours
    wrq = Request(codec.WRQ, "up.txt", "netascii")
    assert wrq.encode() == craft.wrq("up.txt", "netascii")
    assert decode(craft.wrq("up.txt", "netascii")) == wrq


@pytest.mark.parametrize("block", [0, 1, 255, 256, 65535])
def test_data_and_ack_match_scapy(block: int) -> None:
    assert Data(block, b"payload").encode() == craft.data(block, b"payload")
    decoded = decode(craft.data(block, b"payload"))
    assert isinstance(decoded, Data) and decoded.block == block
    assert bytes(decoded.data) == b"payload"
    assert Ack(block).encode() == craft.ack(block)
    assert decode(craft.ack(block)) == Ack(block)


def test_error_and_oack_match_scapy() -> None:
    assert Error(5, "Unknown transfer ID").encode() == craft.error(5, "Unknown transfer ID")
    assert decode(craft.error(1, "File not found")) == Error(1, "File not found")
    pairs = (("blksize", "7"), ("blksize", "512"), ("TSIZE", "99"))
    assert OAck(pairs).encode() == craft.oack(pairs)
    assert decode(craft.oack(pairs)) == OAck(pairs)


def test_byte_layouts_from_rfc1350() -> None:
    # RFC 1350 section 5 figures: 2-byte opcode, 2-byte block, strings NUL-terminated.
    assert Ack(0x0102).encode() == b"\x00\x04\x01\x02"
    assert Data(7, b"ab").encode() == b"\x00\x03\x00\x07ab"
    assert Error(0, "x").encode() == b"\x00\x05\x00\x00x\x00"
    assert Request(1, "f", "octet").encode() == b"\x00\x01f\x00octet\x00"


def test_error_code_names_rfc1350_and_2347() -> None:
    assert [codec.error_name(c) for c in range(9)] == [
        "Not defined", "File not found", "Access violation",
        "Disk full or allocation exceeded", "Illegal TFTP operation", "Unknown transfer ID",
        "File already exists", "No such user", "Option negotiation failed"]
    assert "unknown" in codec.error_name(42)
    assert Error(8, "").code_name == "Option negotiation failed"


@pytest.mark.parametrize("raw, why", [
    (b"", "too short"),
    (b"\x00", "too short"),
    (b"\x00\x03\x00", "DATA"),  # atftpd's 3-byte DATA
    (b"\x00\x04\x00", "ACK"),
    (b"\x00\x05\x00", "ERROR"),
    (b"\x00\x09\x00\x00", "unknown opcode"),
    (b"\x00\x01onlyname\x00", "without filename and mode"),
])
def test_malformed_packets_raise(raw: bytes, why: str) -> None:
    with pytest.raises(MalformedPacket, match=why):
        decode(raw)


def test_lenient_requests() -> None:
    # No final NUL, NUL padding after the options, a dangling option name.
    assert decode(b"\x00\x01f\x00octet") == Request(1, "f", "octet")
    assert decode(b"\x00\x01f\x00octet\x00blksize\x00512\x00\x00\x00") == Request(
        1, "f", "octet", (("blksize", "512"),))
    assert decode(b"\x00\x01f\x00octet\x00tsize\x00") == Request(1, "f", "octet")
    # ERROR without its NUL still carries the message.
    assert decode(b"\x00\x05\x00\x01gone") == Error(1, "gone")


def test_option_helpers() -> None:
    assert options_dict((("BLKSIZE", "1024"), ("blksize", "600"))) == {"blksize": "600"}
    assert option_int("1428") == 1428 and option_int("abc") is None and option_int("-1") is None
    assert option_in_range("blksize", "8") and option_in_range("blksize", "65464")
    assert not option_in_range("blksize", "7") and not option_in_range("blksize", "65465")
    assert not option_in_range("timeout", "0") and option_in_range("timeout", "255")
    assert not option_in_range("windowsize", "0") and option_in_range("windowsize", "65535")
    assert option_in_range("x-unknown", "anything")
