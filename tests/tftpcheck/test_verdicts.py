"""Verdict functions on hand-built evidence (raw probes: datagrams only, bytes written
from RFC 1350/2347 with struct, independent of analyzer.tftp's codec)."""

from __future__ import annotations

import struct

from analyzer.tftpcheck.checks import (
    Evidence,
    Probe,
    Seen,
    judge_blksize_invalid,
    judge_error_on_oack,
    judge_illegal_opcode,
    judge_path_traversal,
    judge_retransmit,
)

SERVER = ("127.0.0.9", 69)
ME = "127.0.0.9"


def data(block: int, payload: bytes = b"x" * 512) -> bytes:
    return struct.pack("!HH", 3, block) + payload


def error(code: int, text: bytes) -> bytes:
    return struct.pack("!HH", 5, code) + text + b"\0"


def oack(**options: str) -> bytes:
    return struct.pack("!H", 6) + b"".join(k.encode() + b"\0" + v.encode() + b"\0"
                                          for k, v in options.items())


class Builder:
    """Probes and the datagrams of each, numbered as frames in order."""

    def __init__(self) -> None:
        self.frame = 0
        self.packets: dict[int, list[Seen]] = {}
        self.probes: list[Probe] = []
        self.port = 40000

    def probe(self, what: str, request: bytes,
              *answers: tuple[float, bytes]) -> None:
        self.port += 1
        port = self.port
        seen = [self._seen(0.0, (ME, port), SERVER, request)]
        for ts, payload in answers:
            seen.append(self._seen(ts, ("127.0.0.9", 50000 + port % 1000), (ME, port),
                                   payload))
        self.packets[port] = seen
        self.probes.append(Probe(what, [port], answered=len(answers) > 0))

    def send(self, ts: float, payload: bytes) -> None:
        """A datagram of ours to the server's transfer port, in the last probe."""
        port = self.port
        self.packets[port].append(self._seen(ts, (ME, port),
                                             ("127.0.0.9", 50000 + port % 1000), payload))
        self.packets[port].sort(key=lambda seen: seen.ts)

    def _seen(self, ts: float, src: tuple[str, int], dst: tuple[str, int],
              payload: bytes) -> Seen:
        self.frame += 1
        return Seen(self.frame, ts, src, dst, payload)

    def evidence(self) -> Evidence:
        return Evidence(self.probes, {}, self.packets, SERVER)


RRQ = b"\x00\x01"


def test_path_traversal_grades() -> None:
    refused = Builder()
    refused.probe("RRQ ../../../../etc/passwd", RRQ + b"../../../../etc/passwd\0octet\0",
                  (0.01, error(2, b"Access violation")))
    refused.probe("RRQ ../f.bin", RRQ + b"../f.bin\0octet\0", (0.01, error(2, b"no")))
    assert judge_path_traversal(refused.evidence()).verdict == "pass"

    inside = Builder()
    inside.probe("RRQ ../../../../etc/passwd", RRQ + b"../../../../etc/passwd\0octet\0",
                 (0.01, error(1, b"no")))
    inside.probe("RRQ ../f.bin", RRQ + b"../f.bin\0octet\0", (0.01, data(1)))
    assert judge_path_traversal(inside.evidence()).verdict == "warn"

    escaped = Builder()
    escaped.probe("RRQ /etc/passwd", RRQ + b"/etc/passwd\0octet\0", (0.01, data(1)))
    verdict = judge_path_traversal(escaped.evidence())
    assert verdict.verdict == "fail" and 2 in verdict.frames


def test_illegal_opcode_grades() -> None:
    answered = Builder()
    answered.probe("opcode 9", b"\x00\x09x\0octet\0", (0.01, error(4, b"Illegal")))
    assert judge_illegal_opcode(answered.evidence()).verdict == "pass"
    silent = Builder()
    silent.probe("opcode 9", b"\x00\x09x\0octet\0")
    assert judge_illegal_opcode(silent.evidence()).verdict == "warn"
    other = Builder()
    other.probe("opcode 9", b"\x00\x09x\0octet\0", (0.01, error(0, b"what")))
    assert judge_illegal_opcode(other.evidence()).verdict == "warn"


def test_blksize_invalid_fails_only_on_the_value_asked() -> None:
    lowered = Builder()
    for size, answer in (("7", oack(blksize="8")), ("0", error(8, b"bad")),
                         ("65465", oack(blksize="65464"))):
        lowered.probe(f"blksize={size}", RRQ + b"f\0octet\0blksize\0" + size.encode() + b"\0",
                      (0.01, answer))
    assert judge_blksize_invalid(lowered.evidence()).verdict == "pass"
    taken = Builder()
    for size in ("7", "0", "65465"):
        taken.probe(f"blksize={size}", RRQ + b"f\0octet\0blksize\0" + size.encode() + b"\0",
                    (0.01, oack(blksize=size)))
    verdict = judge_blksize_invalid(taken.evidence())
    assert verdict.verdict == "fail" and "7,0,65465" in verdict.detail


def test_error_on_oack() -> None:
    stops = Builder()
    stops.probe("RRQ blksize=1024", RRQ + b"f\0octet\0blksize\x001024\0",
                (0.01, oack(blksize="1024")))
    assert judge_error_on_oack(stops.evidence()).verdict == "pass"
    goes_on = Builder()
    goes_on.probe("RRQ blksize=1024", RRQ + b"f\0octet\0blksize\x001024\0",
                  (0.01, oack(blksize="1024")), (0.02, data(1)))
    assert judge_error_on_oack(goes_on.evidence()).verdict == "fail"
    no_oack = Builder()
    no_oack.probe("RRQ blksize=1024", RRQ + b"f\0octet\0blksize\x001024\0",
                  (0.01, data(1)))
    assert judge_error_on_oack(no_oack.evidence()).verdict == "unsupported"


def test_error_on_oack_with_retransmitted_oacks() -> None:
    """OACKs again before our ERROR 8, and one just after it (sent before the server read
    it: it crossed), are retransmissions; a second OACK after the ERROR, or any DATA,
    is the server going on."""
    request = RRQ + b"f\0octet\0blksize\x001024\0"
    refusal = error(8, b"option refused")
    crossed = Builder()
    crossed.probe("RRQ", request, (0.01, oack(blksize="1024")), (1.01, oack(blksize="1024")),
                  (2.01, oack(blksize="1024")))
    crossed.send(2.0, refusal)
    verdict = judge_error_on_oack(crossed.evidence())
    assert verdict.verdict == "pass" and "2 retransmitted OACK" in verdict.detail
    again = Builder()
    again.probe("RRQ", request, (0.01, oack(blksize="1024")), (1.01, oack(blksize="1024")),
                (2.01, oack(blksize="1024")))
    again.send(0.02, refusal)
    assert judge_error_on_oack(again.evidence()).verdict == "fail"
    data_after = Builder()
    data_after.probe("RRQ", request, (0.01, oack(blksize="1024")), (0.03, data(1)))
    data_after.send(0.02, refusal)
    verdict = judge_error_on_oack(data_after.evidence())
    assert verdict.verdict == "fail" and "DATA" in verdict.detail


def test_retransmit_spacing_backoff_and_faults() -> None:
    backoff = Builder()
    backoff.probe("RRQ f", RRQ + b"f\0octet\0", (0.0, data(1)), (1.0, data(1)),
                  (3.0, data(1)), (7.0, data(1)))
    verdict = judge_retransmit(backoff.evidence())
    assert verdict.verdict == "pass"
    assert "1.00, 2.00, 4.00" in verdict.detail and "backing off" in verdict.detail
    never = Builder()
    never.probe("RRQ f", RRQ + b"f\0octet\0", (0.0, data(1)))
    assert judge_retransmit(never.evidence()).verdict == "fail"
    broken = Builder()
    broken.probe("RRQ f", RRQ + b"f\0octet\0", (0.0, data(1)), (5.0, b"\x00\x03\x00"))
    verdict = judge_retransmit(broken.evidence())
    assert verdict.verdict == "fail" and "malformed 3-byte" in verdict.detail
    hasty = Builder()
    hasty.probe("RRQ f", RRQ + b"f\0octet\0", (0.0, data(1)), (0.05, data(1)))
    assert judge_retransmit(hasty.evidence()).verdict == "warn"
