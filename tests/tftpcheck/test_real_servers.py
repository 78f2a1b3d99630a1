"""`analyzer tftp check` against tftpd-hpa, atftpd, dnsmasq and tftpy on loopback: one full
run each, then every verdict asserted here is established without the checker, by a
hand-made exchange with a plain socket (tests/support/tftp_raw.py, written from the RFCs
with struct), by tshark's reading of the evidence capture, or by the file on disk.

What the servers do, as documented in tests/support/tftp_servers.py and the existing
real-server tests (tests/tftp_servers/): atftpd has the Sorcerer's Apprentice bug and
supports windowsize; dnsmasq answers stray TIDs with ERROR 5, accepts tiny blksize values
and leaves bare CRs in netascii; tftpy answers from 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.support.analyzer_cli import run_analyzer
from tests.support.tftp_raw import DATA, ERROR, OACK, RRQ, RawTftpClient
from tests.tftpcheck.conftest import CONTENT, FILE_NAME, Card

pytestmark = pytest.mark.root

# The check ids SPEC.md lists (copied from the SPEC, not from the checker's table).
SPEC_IDS = {
    "rrq-octet", "rrq-netascii", "mode-case", "unknown-mode", "file-not-found",
    "path-traversal", "illegal-opcode", "malformed-request", "blksize", "blksize-invalid",
    "tsize", "timeout-option", "windowsize", "unknown-option", "option-case", "retransmit",
    "sorcerers-apprentice", "wrong-tid", "new-tid", "reply-address", "final-empty-block",
    "rollover", "error-on-oack", "concurrent", "wrq",
}
VERDICTS = {"pass", "fail", "warn", "unsupported", "skipped"}


def tshark_fields(capture: Path, frames: list[int], *fields: str) -> list[list[str]]:
    """tshark's reading of `fields` in the given frames. TFTP replies come from ports
    tshark cannot always tie to a request (tftpy answers from another address), so the
    tests read the opcode from `udp.payload` (see `tftp_head`)."""
    wanted = " || ".join(f"frame.number == {n}" for n in frames)
    argv = ["tshark", "-n", "-r", str(capture), "-Y", wanted, "-T", "fields"]
    for field in fields:
        argv += ["-e", field]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return [line.split("\t") for line in done.stdout.splitlines()]


def tftp_head(payload_hex: str) -> tuple[int, int]:
    """(opcode, block or error code) from tshark's hex of a UDP payload."""
    data = bytes.fromhex(payload_hex.replace(":", ""))
    return int.from_bytes(data[0:2], "big"), int.from_bytes(data[2:4], "big")


def frame_count(capture: Path) -> int:
    done = subprocess.run(["tshark", "-n", "-r", str(capture), "-T", "fields", "-e",
                           "frame.number"], capture_output=True, text=True, check=True,
                          timeout=60)
    return len(done.stdout.split())


def raw(card: Card) -> RawTftpClient:
    # Bind beside the checker's own address (tftpy answers from 127.0.0.1 whatever we use).
    return RawTftpClient(card.server.ip, bind_ip=card.server.ip, timeout=1.5)


def first_reply(card: Card, options: dict[str, str] | None = None,
                raw_request: bytes | None = None, name: str = FILE_NAME
                ) -> tuple[int, dict[str, str] | None, tuple[int, str] | None]:
    """A hand-made request: (opcode of the first reply or 0 for silence, OACK, ERROR)."""
    try:
        result, opcode, _ = raw(card).request(RRQ, name, options=options, raw=raw_request)
    except TimeoutError:
        return 0, None, None
    return opcode, result.oack, result.error


def verdict(card: Card, check: str) -> str:
    return str(card.checks[check]["verdict"])


# ---------------------------------------------------------------- the whole card

def test_every_check_runs_and_returns_a_verdict(card: Card) -> None:
    assert card.stderr == ""
    assert set(card.checks) >= SPEC_IDS
    for obj in card.checks.values():
        assert obj["verdict"] in VERDICTS, obj
        assert obj["rfc"].startswith("RFC "), obj
        assert obj["detail"], obj
    assert verdict(card, "rollover") == "skipped"  # no --big-file given
    assert verdict(card, "wrq") == ("pass" if card.server.writable else "skipped")
    failed = any(obj["verdict"] == "fail" for obj in card.checks.values())
    assert card.returncode == (1 if failed else 0)


def test_evidence_frames_are_in_the_capture(card: Card) -> None:
    total = frame_count(card.capture)
    for obj in card.checks.values():
        if obj["verdict"] != "skipped":
            assert obj["frames"], obj
        assert all(1 <= n <= total for n in obj["frames"]), obj


# ---------------------------------------------------------------- checks every server passes

def test_rrq_octet_delivers_the_file_on_disk(card: Card) -> None:
    assert verdict(card, "rrq-octet") == "pass"
    expected = hashlib.sha256(CONTENT).hexdigest()
    assert card.checks["rrq-octet"]["detail"].find(expected[:12]) > 0
    # rrq-octet runs first: its transfer is the capture's first, and it is the file.
    # (Later ones may differ on purpose: atftpd serves the malformed request no bytes.)
    first = card.transfers[0]
    assert (first["filename"], first["mode"], first["status"]) == (FILE_NAME, "octet",
                                                                  "complete")
    assert first["sha256"] == expected and first["bytes"] == len(CONTENT)


def test_file_not_found_is_error_1_per_tshark(card: Card) -> None:
    assert verdict(card, "file-not-found") == "pass"
    frames = card.checks["file-not-found"]["frames"]
    heads = [tftp_head(row[0]) for row in tshark_fields(card.capture, frames, "udp.payload")]
    assert (ERROR, 1) in heads


def test_final_empty_block_per_tshark(card: Card) -> None:
    assert verdict(card, "final-empty-block") == "pass"
    frames = card.checks["final-empty-block"]["frames"]
    # The last evidence frame is the empty DATA: a UDP payload of 4 bytes (opcode, block).
    rows = tshark_fields(card.capture, [max(frames)], "udp.length")
    assert rows == [["12"]]


@pytest.mark.parametrize("check", ["new-tid", "concurrent", "tsize", "error-on-oack",
                                   "mode-case"])
def test_common_passes(card: Card, check: str) -> None:
    assert verdict(card, check) == "pass", card.checks[check]


def test_tsize_matches_a_hand_made_request(card: Card) -> None:
    opcode, oack, _ = first_reply(card, {"tsize": "0", "blksize": "512"})
    assert opcode == OACK and oack is not None and oack["tsize"] == str(len(CONTENT))
    assert str(len(CONTENT)) in card.checks["tsize"]["detail"]


def test_wrq_upload_is_on_the_server_disk(card: Card) -> None:
    uploads = sorted(card.server.root.glob("analyzer-check-upload-*"))
    if not card.server.writable:
        assert uploads == []
        return
    assert len(uploads) == 1
    assert uploads[0].read_bytes().startswith(b"written by analyzer tftp check")


# ---------------------------------------------------------------- where the servers differ

def test_sorcerers_apprentice(card: Card) -> None:
    # atftpd's documented bug; the others send each DATA once.
    expected = "fail" if card.server.name == "atftpd" else "pass"
    assert verdict(card, "sorcerers-apprentice") == expected
    if expected == "fail":
        frames = card.checks["sorcerers-apprentice"]["frames"]
        heads = [tftp_head(row[0])
                 for row in tshark_fields(card.capture, frames, "udp.payload")]
        assert heads and all(opcode == DATA for opcode, _ in heads)  # the evidence is DATA


def test_wrong_tid(card: Card) -> None:
    result = raw(card).get(FILE_NAME, stray_ack_after=1)
    got_error_5 = (result.stray_reply is not None and result.stray_reply[0] == ERROR
                   and result.stray_reply[1] == 5)
    assert result.wire_bytes == CONTENT  # the transfer went on
    assert verdict(card, "wrong-tid") == ("pass" if got_error_5 else "warn")
    assert got_error_5 == (card.server.name == "dnsmasq")


def test_reply_address(card: Card) -> None:
    frames = card.checks["reply-address"]["frames"]
    rows = tshark_fields(card.capture, frames, "ip.src", "ip.dst")
    request, answer = rows[0], rows[-1]
    assert request[1] == card.server.ip
    expected = "pass" if answer[0] == card.server.ip else "fail"
    assert verdict(card, "reply-address") == expected
    assert expected == ("fail" if card.server.name == "tftpy" else "pass")


def test_windowsize(card: Card) -> None:
    opcode, oack, _ = first_reply(card, {"windowsize": "4", "blksize": "512"})
    supported = opcode == OACK and oack is not None and "windowsize" in oack
    assert verdict(card, "windowsize") == ("pass" if supported else "unsupported")
    assert supported == (card.server.name == "atftpd")


def test_timeout_option(card: Card) -> None:
    opcode, oack, _ = first_reply(card, {"timeout": "2", "blksize": "512"})
    supported = opcode == OACK and oack is not None and oack.get("timeout") == "2"
    if supported:
        assert verdict(card, "timeout-option") in ("pass", "warn")
        assert "resent after" in card.checks["timeout-option"]["detail"]
    else:
        assert verdict(card, "timeout-option") == "unsupported"


def test_blksize_invalid(card: Card) -> None:
    accepted = []
    for size in ("7", "0", "65465"):
        opcode, oack, _ = first_reply(card, {"blksize": size})
        if opcode == OACK and oack is not None and oack.get("blksize") == size:
            accepted.append(size)
    assert verdict(card, "blksize-invalid") == ("fail" if accepted else "pass")
    for size in accepted:
        assert f"{size}: OACK blksize={size}" in card.checks["blksize-invalid"]["detail"]


def test_illegal_opcode(card: Card) -> None:
    opcode, _, error = first_reply(card, raw_request=b"\x00\x09analyzer-test\x00octet\x00")
    if opcode == ERROR and error is not None and error[0] == 4:
        assert verdict(card, "illegal-opcode") == "pass"
    elif opcode == 0:
        assert verdict(card, "illegal-opcode") == "warn"
    else:
        assert verdict(card, "illegal-opcode") in ("warn", "fail")


def test_path_traversal(card: Card) -> None:
    outcomes = {}
    for name in ("../../../../../../../../etc/passwd", f"../{FILE_NAME}", "/etc/passwd"):
        outcomes[name] = first_reply(card, name=name)[0]
    escapes = [n for n in outcomes if n != f"../{FILE_NAME}" and outcomes[n] == 3]
    inside = outcomes[f"../{FILE_NAME}"] == 3
    expected = "fail" if escapes else "warn" if inside else "pass"
    assert verdict(card, "path-traversal") == expected
    # No server here leaves its root; tftpd-hpa's chroot maps ../NAME back into it.
    assert expected == ("warn" if card.server.name == "tftpd-hpa" else "pass")


def test_netascii_bare_cr(card: Card) -> None:
    result = raw(card).get(FILE_NAME, mode="netascii")
    wire = result.wire_bytes
    bare = [i for i in range(len(wire) - 1) if wire[i] == 13 and wire[i + 1] not in (10, 0)]
    assert verdict(card, "rrq-netascii") == ("fail" if bare else "pass")
    assert bool(bare) == (card.server.name in ("dnsmasq", "tftpy"))


def test_retransmit_spacing_measured_by_tshark(card: Card) -> None:
    assert verdict(card, "retransmit") in ("pass", "warn", "fail")
    frames = card.checks["retransmit"]["frames"]
    rows = tshark_fields(card.capture, frames, "frame.time_relative", "udp.payload")
    copies = [float(row[0]) for row in rows if tftp_head(row[1]) == (DATA, 1)]
    if verdict(card, "retransmit") == "fail":
        assert len(copies) <= 1
        # atftpd 0.8 resends DATA 1 as 3 bytes (00 03 00): tshark's payloads say so.
        others = [bytes.fromhex(row[1]) for row in rows if tftp_head(row[1]) != (DATA, 1)]
        assert ("malformed" in card.checks["retransmit"]["detail"]) == bool(others)
        assert all(len(payload) < 4 for payload in others)
        return
    assert len(copies) >= 2
    spacing = copies[1] - copies[0]
    assert f"{spacing:.2f}" in card.checks["retransmit"]["detail"]


def test_rollover_with_a_big_file(card: Card, tmp_path: Path) -> None:
    """tftpd-hpa counts blocks in an unsigned short, so block 65535 is followed by 0 (its
    tftpd.c); tshark reads that DATA 0 in the evidence, and the file is the one on disk."""
    if card.server.name != "tftpd-hpa":
        pytest.skip("one big transfer is enough: run against tftpd-hpa only")
    big = bytes(range(256)) * (2 * 65536 + 8)  # 65,536 blocks of 512 bytes and more
    card.server.add_file("big.bin", big)
    capture = tmp_path / "rollover.pcapng"
    done = run_analyzer("tftp", "check", card.server.ip, "--big-file", "big.bin", "--only",
                        "rollover", "--json", "-w", capture, timeout=600)
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    check = objects[0]
    assert (check["check"], check["verdict"]) == ("rollover", "pass"), check
    transfer = objects[1]
    assert transfer["sha256"] == hashlib.sha256(big).hexdigest()
    heads = [tftp_head(row[0]) for row in tshark_fields(capture, check["frames"],
                                                        "udp.payload")]
    assert (DATA, 0) in heads  # the block after 65535, at the frame the tracker names
