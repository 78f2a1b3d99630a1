"""The TFTP tracker on crafted captures: every expected value is known by construction
(the file that was split into blocks, the packets we chose to drop or repeat)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from analyzer.report.tftp_json import tftp_transfer_object
from analyzer.tftp.tracker import TftpTracker
from tests.tftp import craft
from tests.tftp.craft import Capture, chunks

CLIENT = ("10.0.0.2", 40001)
SERVER_IP = "10.0.0.1"
LISTEN = (SERVER_IP, 69)
TID = (SERVER_IP, 50001)


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def content_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def lockstep_rrq(cap: Capture, content: bytes, blksize: int = 512, *, wire: bytes | None = None,
                 client: tuple[str, int] = CLIENT, tid: tuple[str, int] = TID,
                 first_block: int = 1) -> None:
    """Server DATA n, client ACK n, for every block of `wire` (default: content)."""
    for n, chunk in enumerate(chunks(content if wire is None else wire, blksize), first_block):
        cap.udp(tid, client, craft.data(n, chunk))
        cap.udp(client, tid, craft.ack(n))


def only(analysis):  # type: ignore[no-untyped-def]
    results = analysis.tftp.results()
    assert len(results) == 1, [tftp_transfer_object(r) for r in results]
    return tftp_transfer_object(results[0])


def codes(transfer: dict) -> set[str]:
    return {f["code"] for f in transfer["findings"]}


def test_plain_rrq_is_rebuilt(tmp_path: Path) -> None:
    content = content_of(1500)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("boot.bin"))
    lockstep_rrq(cap, content)
    t = only(cap.analyze(tmp_path))
    assert t["type"] == "tftp_transfer"
    assert (t["client"], t["server"]) == ("10.0.0.2:40001", "10.0.0.1:50001")
    assert (t["request"], t["filename"], t["mode"]) == ("RRQ", "boot.bin", "octet")
    assert t["options"] == {} and t["oack"] is None
    assert (t["blksize"], t["windowsize"]) == (512, 1)
    assert t["status"] == "complete" and t["error"] is None
    assert (t["bytes"], t["sha256"], t["blocks"]) == (1500, sha(content), 3)
    assert t["missing_blocks"] == [] and t["retransmissions"] == 0 and t["extracted"] is None
    assert t["findings"] == []


def test_exact_multiple_ends_with_an_empty_block(tmp_path: Path) -> None:
    content = content_of(1024)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("even.bin"))
    lockstep_rrq(cap, content)
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["blocks"], t["sha256"]) == (
        "complete", 1024, 3, sha(content))


def test_empty_file(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("empty"))
    lockstep_rrq(cap, b"")
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["blocks"], t["sha256"]) == ("complete", 0, 1, sha(b""))


def test_netascii_cr_across_block_boundary(tmp_path: Path) -> None:
    # blksize 8: put the CR of a CR LF as the last byte of block 1, and a CR NUL across 2/3.
    original = b"abcdefg\nxyzuvw\rqrstuvwxyz\n"
    wire = craft.netascii_encode(original)
    assert wire[7:9] == b"\r\n" and wire[15:17] == b"\r\0"
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("text.txt", "netascii", [("blksize", "8")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "8")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    lockstep_rrq(cap, original, 8, wire=wire)
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["blksize"] == 8
    assert (t["bytes"], t["sha256"]) == (len(original), sha(original))
    assert t["blocks"] == len(wire) // 8 + 1


def test_netascii_wrq_uppercase_mode(tmp_path: Path) -> None:
    original = b"one\r\ntwo\nthree\r"
    wire = craft.netascii_encode(original)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.wrq("up.txt", "NETASCII"))
    cap.udp(TID, CLIENT, craft.ack(0))
    for n, chunk in enumerate(chunks(wire, 512), 1):
        cap.udp(CLIENT, TID, craft.data(n, chunk))
        cap.udp(TID, CLIENT, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert (t["request"], t["mode"], t["status"]) == ("WRQ", "NETASCII", "complete")
    assert (t["bytes"], t["sha256"]) == (len(original), sha(original))


def test_duplicate_blocks_count_once(tmp_path: Path) -> None:
    content = content_of(2000)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("dup.bin"))
    cap.udp(CLIENT, LISTEN, craft.rrq("dup.bin"), after=1.0)  # the request, resent
    for n, chunk in enumerate(blocks, 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        if n == 2:  # the ACK was lost: the server resends DATA 2 after its timeout
            cap.udp(TID, CLIENT, craft.data(n, chunk), after=1.0)
        cap.udp(CLIENT, TID, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["sha256"]) == ("complete", 2000, sha(content))
    assert (t["blocks"], t["retransmissions"]) == (4, 1)
    assert "duplicate-request" in codes(t) and "sorcerers-apprentice" not in codes(t)


def test_request_twice_two_tids_client_keeps_the_one_captured_second(tmp_path: Path) -> None:
    """tftpd-hpa starts a transfer per request. Both TIDs' DATA 1 can reach the capture in
    one order and the client's socket in the other (two sender CPUs): the client's ACK
    tells which one it kept, and its ERROR 5 refuses the other."""
    content = content_of(700)
    first, second = chunks(content, 512)
    other = (SERVER_IP, 50002)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("race.bin"))
    cap.udp(CLIENT, LISTEN, craft.rrq("race.bin"), after=0.0001)
    cap.udp(other, CLIENT, craft.data(1, first))
    cap.udp(TID, CLIENT, craft.data(1, first))
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(CLIENT, other, craft.error(5, "Unknown transfer ID"))
    cap.udp(TID, CLIENT, craft.data(2, second))
    cap.udp(CLIENT, TID, craft.ack(2))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["sha256"]) == ("complete", 700, sha(content))
    assert t["server"] == f"{SERVER_IP}:{TID[1]}"
    assert t["error"] is None
    stray = [f for f in t["findings"] if f["code"] == "stray-tid"]
    assert len(stray) == 1 and "50002" in stray[0]["message"]
    assert "ERROR 5" in stray[0]["message"]


def test_sorcerers_apprentice(tmp_path: Path) -> None:
    """Client ACKs every block twice; a buggy server sends every next block twice."""
    content = content_of(5 * 512 + 100)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("sa.bin"))
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    for n in range(1, len(blocks)):
        cap.udp(CLIENT, TID, craft.ack(n))
        cap.udp(CLIENT, TID, craft.ack(n))
        cap.udp(TID, CLIENT, craft.data(n + 1, blocks[n]))
        cap.udp(TID, CLIENT, craft.data(n + 1, blocks[n]))
    cap.udp(CLIENT, TID, craft.ack(len(blocks)))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["sha256"], t["blocks"]) == ("complete", sha(content), 6)
    assert t["retransmissions"] == 5
    sa = [f for f in t["findings"] if f["code"] == "sorcerers-apprentice"]
    assert len(sa) == 1 and "5 times" in sa[0]["message"]
    assert sa[0]["frame"] == 6  # RRQ, DATA 1, ACK 1, ACK 1, DATA 2, DATA 2 <- here


def test_duplicate_acks_alone_are_not_sorcerers_apprentice(tmp_path: Path) -> None:
    content = content_of(3 * 512 + 1)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("fine.bin"))
    for n, chunk in enumerate(chunks(content, 512), 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        cap.udp(CLIENT, TID, craft.ack(n))
        cap.udp(CLIENT, TID, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["retransmissions"] == 0
    assert "sorcerers-apprentice" not in codes(t)


def test_oack_repeated_uppercase_unrequested(tmp_path: Path) -> None:
    content = content_of(1000)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("o.bin", options=[("BLKSIZE", "1024")]))
    # tftpd-hpa echoes blksize twice (the last wins); tftpy adds an unrequested option.
    cap.udp(TID, CLIENT, craft.oack([("BLKSIZE", "1024"), ("blksize", "600"),
                                     ("tsize", "1000")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    lockstep_rrq(cap, content, 600)
    t = only(cap.analyze(tmp_path))
    assert t["options"] == {"blksize": "1024"}
    assert t["oack"] == {"blksize": "600", "tsize": "1000"}
    assert (t["blksize"], t["status"], t["sha256"], t["blocks"]) == (
        600, "complete", sha(content), 2)
    assert {"oack-repeated", "oack-unrequested"} <= codes(t)
    assert "tsize-mismatch" not in codes(t)


def test_blksize_7_is_not_clamped(tmp_path: Path) -> None:
    content = b"0123456789abcdefghij"  # 20 bytes: 7 + 7 + 6
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("tiny", options=[("blksize", "7")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "7")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    lockstep_rrq(cap, content, 7)
    t = only(cap.analyze(tmp_path))
    assert (t["blksize"], t["status"], t["blocks"], t["sha256"]) == (
        7, "complete", 3, sha(content))
    assert "option-out-of-range" in codes(t)


def test_tsize_mismatch_and_data_before_ack0(tmp_path: Path) -> None:
    content = content_of(700)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("t.bin", options=[("tsize", "0")]))
    cap.udp(TID, CLIENT, craft.oack([("tsize", "999")]))
    data1 = cap.udp(TID, CLIENT, craft.data(1, content[:512]))  # before ACK 0
    cap.udp(CLIENT, TID, craft.ack(0))
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(TID, CLIENT, craft.data(2, content[512:]))
    cap.udp(CLIENT, TID, craft.ack(2))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["sha256"] == sha(content)
    found = {f["code"]: f for f in t["findings"]}
    assert found["data-before-ack0"]["frame"] == data1
    assert "999" in found["tsize-mismatch"]["message"]


def test_error_only_transfers(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("missing.bin", "netascii"))
    cap.udp(TID, CLIENT, craft.error(1, "File not found"))
    cap.udp(CLIENT, TID, craft.ack(1))  # tftp-hpa's client really does this
    other = ("10.0.0.2", 40002)
    cap.udp(other, LISTEN, craft.rrq("opt.bin", options=[("blksize", "9000")]))
    cap.udp(("10.0.0.1", 50002), other, craft.oack([("blksize", "9000")]))
    cap.udp(other, ("10.0.0.1", 50002), craft.error(8, "blksize unacceptable"))
    results = [tftp_transfer_object(r) for r in cap.analyze(tmp_path).tftp.results()]
    assert [(r["filename"], r["status"], r["error"]) for r in results] == [
        ("missing.bin", "error", {"code": 1, "message": "File not found"}),
        ("opt.bin", "error", {"code": 8, "message": "blksize unacceptable"}),
    ]
    for r in results:
        assert (r["bytes"], r["sha256"], r["blocks"], r["extracted"]) == (0, None, 0, None)


def test_client_abort_keeps_the_partial_file(tmp_path: Path) -> None:
    content = content_of(3000)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("abort.bin"))
    blocks = chunks(content, 512)
    for n in (1, 2):
        cap.udp(TID, CLIENT, craft.data(n, blocks[n - 1]))
        cap.udp(CLIENT, TID, craft.ack(n))
    cap.udp(TID, CLIENT, craft.data(3, blocks[2]))
    cap.udp(CLIENT, TID, craft.error(0, "user abort"))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "error" and t["error"] == {"code": 0, "message": "user abort"}
    assert (t["bytes"], t["sha256"], t["blocks"]) == (1536, sha(content[:1536]), 3)


def test_stray_tid_answered_with_error_5(tmp_path: Path) -> None:
    content = content_of(2048 + 10)
    blocks = chunks(content, 512)
    stray = ("10.0.0.2", 45555)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("tid.bin"))
    for n, chunk in enumerate(blocks, 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        cap.udp(CLIENT, TID, craft.ack(n))
        if n == 2:
            stray_frame = cap.udp(stray, TID, craft.ack(2))
            cap.udp(TID, stray, craft.error(5, "Unknown transfer ID"))
    results = cap.analyze(tmp_path).tftp.results()
    assert len(results) == 1
    t = tftp_transfer_object(results[0])
    assert (t["status"], t["sha256"], t["retransmissions"]) == ("complete", sha(content), 0)
    strays = [f for f in t["findings"] if f["code"] == "stray-tid"]
    assert len(strays) == 1 and strays[0]["frame"] == stray_frame
    assert "10.0.0.2:45555" in strays[0]["message"] and "ERROR 5" in strays[0]["message"]
    assert "not ERROR 5" not in strays[0]["message"]


def test_stray_tid_answered_with_icmp_or_nothing(tmp_path: Path) -> None:
    content = content_of(1100)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("tid2.bin"))
    blocks = chunks(content, 512)
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    cap.udp(CLIENT, TID, craft.ack(1))
    first = cap.udp(("10.0.0.2", 45555), TID, craft.ack(1))
    cap.port_unreachable(first)  # a connected server socket: the kernel answers
    cap.udp(("10.0.0.9", 45556), TID, craft.ack(1))  # nobody answers this one
    cap.udp(TID, CLIENT, craft.data(2, blocks[1]))
    cap.udp(CLIENT, TID, craft.ack(2))
    cap.udp(TID, CLIENT, craft.data(3, blocks[2]))
    cap.udp(CLIENT, TID, craft.ack(3))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["sha256"] == sha(content)
    strays = [f["message"] for f in t["findings"] if f["code"] == "stray-tid"]
    assert len(strays) == 2
    assert "port unreachable" in strays[0] and "no answer" in strays[1]


def test_icmp_port_unreachable_for_the_request(tmp_path: Path) -> None:
    cap = Capture()
    request = cap.udp(CLIENT, LISTEN, craft.rrq("nobody.bin"))
    icmp = cap.port_unreachable(request)
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "incomplete" and t["server"] == "10.0.0.1:69"
    found = [f for f in t["findings"] if f["code"] == "icmp-unreachable"]
    assert len(found) == 1 and found[0]["frame"] == icmp


def test_icmpv6_port_unreachable_for_the_client(tmp_path: Path) -> None:
    client, listen, tid = ("fd00::2", 40001), ("fd00::1", 69), ("fd00::1", 50001)
    content = content_of(600)
    cap = Capture()
    cap.udp(client, listen, craft.rrq("v6.bin"))
    cap.udp(tid, client, craft.data(1, content[:512]))
    cap.udp(client, tid, craft.ack(1))
    last = cap.udp(tid, client, craft.data(2, content[512:]))
    cap.udp(client, tid, craft.ack(2))
    resent = cap.udp(tid, client, craft.data(2, content[512:]), after=1.0)
    cap.port_unreachable(resent)  # the client had already gone
    t = only(cap.analyze(tmp_path))
    assert (t["client"], t["server"]) == ("[fd00::2]:40001", "[fd00::1]:50001")
    assert (t["status"], t["sha256"], t["retransmissions"]) == ("complete", sha(content), 1)
    assert last == 4 and "icmp-unreachable" in codes(t)


def test_malformed_three_byte_data(tmp_path: Path) -> None:
    content = content_of(1000)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("m.bin"))
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    bad = cap.udp(TID, CLIENT, b"\x00\x03\x00")  # atftpd really sends these
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(TID, CLIENT, craft.data(2, blocks[1]))
    cap.udp(CLIENT, TID, craft.ack(2))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["sha256"] == sha(content)
    malformed = [f for f in t["findings"] if f["code"] == "malformed"]
    assert len(malformed) == 1 and malformed[0]["frame"] == bad


def test_server_answers_from_another_address(tmp_path: Path) -> None:
    """tftpy bound to 0.0.0.0: request to 127.0.0.5, answers from 127.0.0.1."""
    client, listen = ("127.0.0.1", 40001), ("127.0.0.5", 69)
    content = content_of(1300)
    cap = Capture()
    cap.udp(client, listen, craft.rrq("wild.bin"))
    for n, chunk in enumerate(chunks(content, 512), 1):
        cap.udp(("127.0.0.1", 50001), client, craft.data(n, chunk))
        cap.udp(client, ("127.0.0.5", 50001), craft.ack(n))  # the client keeps .5
    t = only(cap.analyze(tmp_path))
    assert t["server"] == "127.0.0.1:50001"
    assert (t["status"], t["sha256"], t["retransmissions"]) == ("complete", sha(content), 0)
    assert "server-address-changed" in codes(t) and "stray-tid" not in codes(t)


def test_windowsize_with_loss_and_restart(tmp_path: Path) -> None:
    content = content_of(10 * 512 + 77)
    blocks = chunks(content, 512)  # 11 blocks
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("win.bin", options=[("windowsize", "4")]))
    cap.udp(TID, CLIENT, craft.oack([("windowsize", "4")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    sent = [1, 2, 4]  # DATA 3 was lost before the capture point
    for n in sent:
        cap.udp(TID, CLIENT, craft.data(n, blocks[n - 1]))
    cap.udp(CLIENT, TID, craft.ack(2))  # the receiver acks what it has in order
    for n in (3, 4, 5, 6):
        cap.udp(TID, CLIENT, craft.data(n, blocks[n - 1]))
    cap.udp(CLIENT, TID, craft.ack(6))
    for n in (7, 8, 9, 10):
        cap.udp(TID, CLIENT, craft.data(n, blocks[n - 1]))
    cap.udp(CLIENT, TID, craft.ack(10))
    cap.udp(TID, CLIENT, craft.data(11, blocks[10]))
    cap.udp(CLIENT, TID, craft.ack(11))
    t = only(cap.analyze(tmp_path))
    assert (t["windowsize"], t["status"], t["sha256"]) == (4, "complete", sha(content))
    assert (t["blocks"], t["retransmissions"], t["missing_blocks"]) == (11, 1, [])
    assert "sorcerers-apprentice" not in codes(t)


def test_block_the_capture_missed_is_a_gap(tmp_path: Path) -> None:
    content = content_of(5 * 512 + 10)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("gap.bin"))
    for n, chunk in enumerate(blocks, 1):
        if n != 3:  # the capture dropped DATA 3; the client got it and acked it
            cap.udp(TID, CLIENT, craft.data(n, chunk))
        cap.udp(CLIENT, TID, craft.ack(n))
    analysis = cap.analyze(tmp_path, extract_dir=tmp_path / "out")
    t = only(analysis)
    assert t["status"] == "incomplete"
    assert t["missing_blocks"] == [{"first": 3, "last": 3}]
    assert (t["blocks"], t["bytes"]) == (5, len(content))
    expected = content[:1024] + bytes(512) + content[1536:]
    assert t["sha256"] == sha(expected)
    written = Path(t["extracted"])
    assert written.name == "gap.bin.partial" and written.read_bytes() == expected
    assert "capture-gap" in codes(t)


def test_capture_ends_mid_transfer(tmp_path: Path) -> None:
    content = content_of(3000)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("cut.bin", options=[("tsize", "0")]))
    cap.udp(TID, CLIENT, craft.oack([("tsize", "3000")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    for n in (1, 2):
        cap.udp(TID, CLIENT, craft.data(n, blocks[n - 1]))
        cap.udp(CLIENT, TID, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["sha256"]) == ("incomplete", 1024, sha(content[:1024]))
    assert t["missing_blocks"] == [{"first": 3, "last": 6}]  # tsize 3000 = 5 full + 1


def test_wrq_with_oack_and_custom_port(tmp_path: Path) -> None:
    content = content_of(3 * 1024)
    listen = (SERVER_IP, 6969)
    cap = Capture()
    cap.udp(CLIENT, listen, craft.wrq("put.bin", options=[("blksize", "1024"),
                                                          ("tsize", "3072")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "1024"), ("tsize", "3072")]))
    for n, chunk in enumerate(chunks(content, 1024), 1):
        cap.udp(CLIENT, TID, craft.data(n, chunk))
        cap.udp(TID, CLIENT, craft.ack(n))
    assert cap.analyze(tmp_path).tftp.results() == []  # port 6969 is not TFTP by default
    t = only(cap.analyze(tmp_path, tftp_ports=[6969]))
    assert (t["request"], t["status"], t["blocks"], t["sha256"]) == (
        "WRQ", "complete", 4, sha(content))
    assert t["findings"] == []


def test_same_client_port_new_request_after_completion(tmp_path: Path) -> None:
    """tftp-hpa's interactive client keeps one socket: two gets, two transfers."""
    first, second = content_of(100, 1), content_of(700, 2)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("a"))
    lockstep_rrq(cap, first)
    cap.udp(CLIENT, LISTEN, craft.rrq("a"), after=2.0)
    lockstep_rrq(cap, second, tid=(SERVER_IP, 50002))
    results = [tftp_transfer_object(r) for r in cap.analyze(tmp_path).tftp.results()]
    assert [(r["server"], r["sha256"]) for r in results] == [
        ("10.0.0.1:50001", sha(first)), ("10.0.0.1:50002", sha(second))]


def test_duplicate_request_answered_by_two_server_tids(tmp_path: Path) -> None:
    """A forking server answers both copies of a resent RRQ; the client sends ERROR 5."""
    content = content_of(600)
    blocks = chunks(content, 512)
    second_tid = (SERVER_IP, 50009)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("twice"))
    cap.udp(CLIENT, LISTEN, craft.rrq("twice"), after=1.0)
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(second_tid, CLIENT, craft.data(1, blocks[0]))
    cap.udp(CLIENT, second_tid, craft.error(5, "Unknown transfer ID"))
    cap.udp(TID, CLIENT, craft.data(2, blocks[1]))
    cap.udp(CLIENT, TID, craft.ack(2))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["sha256"], t["retransmissions"]) == ("complete", sha(content), 0)
    stray = [f["message"] for f in t["findings"] if f["code"] == "stray-tid"]
    assert len(stray) == 1 and "client" in stray[0] and "ERROR 5" in stray[0]


def _rollover_exchange(blocks: list[bytes], wrap_to: int):  # type: ignore[no-untyped-def]
    client, listen, tid = ("10.0.0.2", 40001), ("10.0.0.1", 69), ("10.0.0.1", 50001)
    yield client, listen, craft.rrq("big.bin", options=[("blksize", "8")])
    yield tid, client, craft.oack([("blksize", "8")])
    yield client, tid, craft.raw_ack(0)
    for index, chunk in enumerate(blocks):
        n = index + 1
        wire = n if n < 65536 else (n % 65536 if wrap_to == 0 else (n - 1) % 65535 + 1)
        yield tid, client, craft.raw_data(wire, chunk)
        yield client, tid, craft.raw_ack(wire)


def test_rollover_past_65535_blocks() -> None:
    content = content_of(65536 * 8 + 3 * 8 + 5)  # 65539 full blocks + a short one
    blocks = chunks(content, 8)
    assert len(blocks) == 65540
    for wrap_to in (0, 1):
        tracker = TftpTracker()
        for pkt in craft.raw_packets(_rollover_exchange(blocks, wrap_to)):
            tracker.on_packet(pkt)
        tracker.finish()
        (result,) = tracker.results()
        t = tftp_transfer_object(result)
        assert (t["status"], t["bytes"], t["sha256"]) == ("complete", len(content), sha(content))
        assert (t["blocks"], t["retransmissions"], t["missing_blocks"]) == (65540, 0, [])
        rollover = [f for f in t["findings"] if f["code"] == "rollover"]
        assert len(rollover) == 1 and f"65535 to {wrap_to}" in rollover[0]["message"]


def test_non_tftp_udp_is_ignored(tmp_path: Path) -> None:
    cap = Capture()
    cap.udp(("10.0.0.3", 5353), ("224.0.0.251", 5353), b"\x00\x01dns-ish\x00octet\x00")
    cap.udp(("10.0.0.3", 40000), ("10.0.0.1", 69), b"\x00")  # too short to be a request
    cap.udp(("10.0.0.3", 40000), ("10.0.0.1", 69), b"\x00\x04\x00\x01")  # ACK to port 69
    assert cap.analyze(tmp_path).tftp.results() == []


def test_wrq_whose_ack0_the_capture_missed(tmp_path: Path) -> None:
    content = content_of(1200)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.wrq("late.bin"))
    # The server's ACK 0 from its TID is not in the capture; the client's DATA 1 is.
    for n, chunk in enumerate(chunks(content, 512), 1):
        cap.udp(CLIENT, TID, craft.data(n, chunk))
        cap.udp(TID, CLIENT, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert (t["server"], t["status"], t["sha256"]) == ("10.0.0.1:50001", "complete",
                                                       sha(content))


def test_client_port_and_server_tid_both_reused(tmp_path: Path) -> None:
    first, second = content_of(300, 3), content_of(900, 4)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("one"))
    lockstep_rrq(cap, first)
    cap.udp(CLIENT, LISTEN, craft.rrq("two"), after=5.0)
    lockstep_rrq(cap, second)  # the same TID again
    results = [tftp_transfer_object(r) for r in cap.analyze(tmp_path).tftp.results()]
    assert [(r["filename"], r["status"], r["sha256"]) for r in results] == [
        ("one", "complete", sha(first)), ("two", "complete", sha(second))]


def test_oack_values_a_server_must_not_choose(tmp_path: Path) -> None:
    content = content_of(100)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("v.bin", options=[("blksize", "1024"), ("timeout", "3"),
                                                        ("windowsize", "2")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "2048"), ("timeout", "5"),
                                     ("windowsize", "0")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    lockstep_rrq(cap, content, 2048)
    t = only(cap.analyze(tmp_path))
    assert (t["blksize"], t["windowsize"], t["status"]) == (2048, 0, "complete")
    messages = {f["code"]: f["message"] for f in t["findings"]}
    assert "blksize" in messages["option-raised"] and "timeout" in messages["option-changed"]
    assert "windowsize='0'" in messages["option-out-of-range"]


def test_first_resend_spacing_against_the_timeout(tmp_path: Path) -> None:
    content = content_of(1500)
    blocks = chunks(content, 512)
    for spacing, code in ((2.0, "resend-timing"), (0.2, "resend-too-early"),
                          (9.0, "resend-too-late")):
        cap = Capture()
        cap.udp(CLIENT, LISTEN, craft.rrq("r.bin", options=[("timeout", "2")]))
        cap.udp(TID, CLIENT, craft.oack([("timeout", "2")]))
        cap.udp(CLIENT, TID, craft.ack(0))
        cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
        resent = cap.udp(TID, CLIENT, craft.data(1, blocks[0]), after=spacing)
        cap.udp(CLIENT, TID, craft.ack(1))
        lockstep_rrq(cap, content[512:], first_block=2)
        t = only(cap.analyze(tmp_path, name=f"{code}.pcap"))
        timing = [f for f in t["findings"] if f["code"].startswith("resend")]
        assert [(f["code"], f["frame"]) for f in timing] == [(code, resent)]
        assert f"{spacing:.3f} s" in timing[0]["message"]


def test_stray_answered_as_if_it_were_the_peer(tmp_path: Path) -> None:
    content = content_of(1100)
    blocks = chunks(content, 512)
    stray = ("10.0.0.7", 45000)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("bad.bin"))
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    cap.udp(stray, TID, craft.ack(1))
    answer = cap.udp(TID, stray, craft.data(2, blocks[1]))  # a server that ignores TIDs
    cap.udp(TID, CLIENT, craft.data(2, blocks[1]))
    cap.udp(CLIENT, TID, craft.ack(2))
    cap.udp(TID, CLIENT, craft.data(3, blocks[2]))
    cap.udp(CLIENT, TID, craft.ack(3))
    t = only(cap.analyze(tmp_path))
    assert t["status"] == "complete" and t["sha256"] == sha(content)
    (message,) = [f["message"] for f in t["findings"] if f["code"] == "stray-tid"]
    assert f"DATA 2 in frame {answer}, as if it were its peer" in message


def test_out_of_order_blocks_are_held_then_placed(tmp_path: Path) -> None:
    content = content_of(6 * 512 + 3)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.wrq("ooo.bin", options=[("windowsize", "8")]))
    cap.udp(TID, CLIENT, craft.oack([("windowsize", "8")]))
    for n in (1, 3, 2, 5, 4, 7, 6):  # reordered on the way to the capture point
        cap.udp(CLIENT, TID, craft.data(n, blocks[n - 1]))
    cap.udp(TID, CLIENT, craft.ack(7))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["sha256"], t["blocks"], t["retransmissions"]) == (
        "complete", sha(content), 7, 0)


def test_blocks_larger_than_blksize(tmp_path: Path) -> None:
    content = content_of(2 * 600 + 100)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("big-blocks.bin"))
    lockstep_rrq(cap, content, 600)  # no OACK: 512 is in effect, the server sends 600
    t = only(cap.analyze(tmp_path))
    assert (t["blksize"], t["status"], t["sha256"], t["blocks"]) == (
        512, "complete", sha(content), 3)
    (found,) = [f for f in t["findings"] if f["code"] == "blksize-exceeded"]
    assert found["frame"] == 2 and "600 bytes" in found["message"] and "2 times" in found["message"]


def test_blocks_smaller_than_the_negotiated_blksize(tmp_path: Path) -> None:
    content = content_of(2 * 512 + 100)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("small-blocks.bin", options=[("blksize", "1024")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "1024")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    lockstep_rrq(cap, content, 512)  # the server ignores its own OACK
    t = only(cap.analyze(tmp_path))
    assert (t["blksize"], t["status"], t["sha256"], t["blocks"]) == (
        1024, "complete", sha(content), 3)
    assert "short-block" in codes(t) and "data-after-final" not in codes(t)


def test_memory_stays_bounded_without_extraction() -> None:
    """A 16 MiB transfer is hashed on the fly: the tracker keeps no copy of the file."""
    import tracemalloc

    blocks = 32 * 1024  # 32768 blocks of 512 bytes, then an empty final block
    chunk = bytes(range(256)) * 2
    client, tid = ("10.0.0.2", 40001), ("10.0.0.1", 50001)

    def exchange():  # type: ignore[no-untyped-def]
        yield client, ("10.0.0.1", 69), craft.rrq("stream.bin")
        for n in range(1, blocks + 2):
            yield tid, client, craft.raw_data(n, chunk if n <= blocks else b"")
            yield client, tid, craft.raw_ack(n)

    tracker = TftpTracker()
    tracemalloc.start()
    for pkt in craft.raw_packets(exchange()):
        tracker.on_packet(pkt)
    tracker.finish()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    (t,) = tracker.results()
    assert t.status == "complete" and t.bytes == blocks * 512
    assert t.sha256 == hashlib.sha256(chunk * blocks).hexdigest()
    assert peak < 2 << 20, f"peak {peak} bytes while tracking a {t.bytes}-byte transfer"


def test_one_timeout_coinciding_with_a_resent_ack_is_not_sorcerers_apprentice(
        tmp_path: Path) -> None:
    """DATA 3 is lost: the client resends ACK 2 and the server resends DATA 3, once."""
    content = content_of(5 * 512 + 9)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("once.bin"))
    for n, chunk in enumerate(blocks, 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        if n == 3:
            cap.udp(CLIENT, TID, craft.ack(2), after=1.0)
            cap.udp(TID, CLIENT, craft.data(3, chunk))
        cap.udp(CLIENT, TID, craft.ack(n))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["sha256"], t["retransmissions"]) == ("complete", sha(content), 1)
    assert "sorcerers-apprentice" not in codes(t)


def test_garbage_never_crashes_the_tracker() -> None:
    """Random payloads on every other path (port 69, strays, fake ICMP, reversed) between
    the packets of a real transfer: the transfer still rebuilds; nothing raises."""
    from analyzer.decode.packet import Packet, parse_address

    rng = random.Random(99)
    content = content_of(4000)
    client, listen, tid = ("10.0.0.2", 40001), ("10.0.0.1", 69), ("10.0.0.1", 50001)
    exchange = [(client, listen, craft.rrq("fuzz.bin", "netascii"))]
    for n, chunk in enumerate(chunks(craft.netascii_encode(content), 512), 1):
        exchange += [(tid, client, craft.raw_data(n, chunk)), (client, tid, craft.raw_ack(n))]
    ends = [client, listen, tid, ("10.0.0.9", 45000)]
    tracker = TftpTracker(timeline=True)
    frame = 0
    for index, real in enumerate(exchange):
        for _ in range(3):
            frame += 1
            src, dst = rng.choice(ends), rng.choice(ends)
            if {src, dst} == {client, tid}:
                continue  # on the flow itself, junk would be the transfer's own data
            if dst == client and index < 2:
                continue  # before the server's first answer, junk would be taken for it
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
            if rng.random() < 0.5 and len(junk) >= 2:
                junk = bytes([0, rng.randrange(0, 8)]) + junk[2:]
            proto = 17 if rng.random() < 0.8 else 1
            tracker.on_packet(Packet(frame, float(frame), 0, 4, parse_address(src[0]),
                                     parse_address(dst[0]), proto,
                                     src[1] if proto == 17 else 3,
                                     dst[1] if proto == 17 else 3, junk, len(junk)))
        frame += 1
        src, dst, payload = real
        tracker.on_packet(Packet(frame, float(frame), 0, 4, parse_address(src[0]),
                                 parse_address(dst[0]), 17, src[1], dst[1], payload,
                                 len(payload)))
    tracker.finish()
    mine = [t for t in tracker.results() if t.request.filename == "fuzz.bin"
            and t.client_port == 40001]
    assert mine, [tftp_transfer_object(t) for t in tracker.results()]
    for t in tracker.results():
        tftp_transfer_object(t)  # every result serializes
    assert any(t.sha256 == sha(content) for t in mine)


def test_final_data_resent_within_the_linger_counts_later_it_does_not(tmp_path: Path) -> None:
    """A sender dallying over a lost last ACK resends the final DATA within seconds: that
    copy belongs to the transfer. One `linger` (60 s) after the transfer's last packet,
    the transfer is settled and a copy no longer counts in it."""
    content = content_of(1200)
    final = chunks(content, 512)[-1]
    for delay, resent in ((5.0, 1), (61.0, 0)):
        cap = Capture()
        cap.udp(CLIENT, LISTEN, craft.rrq("late.bin"))
        lockstep_rrq(cap, content)
        cap.udp(TID, CLIENT, craft.data(3, final), after=delay)
        t = only(cap.analyze(tmp_path))
        assert (t["status"], t["sha256"], t["blocks"]) == ("complete", sha(content), 3)
        assert t["retransmissions"] == resent, delay


def test_a_stalled_transfer_is_settled_after_the_idle_timeout(tmp_path: Path) -> None:
    """No block for over `idle_timeout` (300 s): the transfer is settled as it stood
    (incomplete, the blocks so far); DATA arriving after that is not part of it."""
    content = content_of(1500)
    blocks = chunks(content, 512)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("stall.bin"))
    cap.udp(TID, CLIENT, craft.data(1, blocks[0]))
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(TID, CLIENT, craft.data(2, blocks[1]), after=301.0)
    cap.udp(CLIENT, TID, craft.ack(2))
    t = only(cap.analyze(tmp_path))
    assert (t["status"], t["bytes"], t["blocks"]) == ("incomplete", 512, 1)


def test_a_long_capture_holds_only_the_transfers_under_way(tmp_path: Path) -> None:
    """200 transfers, one every 5 s for over 16 minutes: each is settled and handed to
    on_result about a linger (60 s) after its end, so at most ~13 are held at once, and
    every file is rebuilt exactly (truth: the contents sent)."""
    from analyzer.pipeline import iter_packets

    contents = [content_of(300 + 37 * i, seed=i) for i in range(200)]
    cap = Capture()
    for i, content in enumerate(contents):
        client = ("10.0.0.2", 40000 + i)
        cap.udp(client, LISTEN, craft.rrq(f"f{i}.bin"), after=5.0)
        lockstep_rrq(cap, content, client=client, tid=(SERVER_IP, 50000 + i))
    settled: list = []
    held: list[int] = []
    tracker = TftpTracker(on_result=lambda t: (settled.append(t), held.append(
        tracker.live())))
    for pkt in iter_packets(cap.write(tmp_path / "long.pcap")):
        tracker.on_packet(pkt)
    during = len(settled)
    tracker.finish()
    assert during >= 180  # settled while the capture went on, not at its end
    assert max(held) <= 14
    assert tracker.results() == [] and not tracker.live() and not tracker.matcher.flows
    assert [t.number for t in settled] == list(range(1, 201))
    assert [(t.status, t.sha256) for t in settled] == \
        [("complete", sha(content)) for content in contents]
