"""The sans-IO TFTP client machine, driven with plain bytes.

Server packets are built and our packets read with tests/support/tftp_raw.py (struct,
straight from the RFCs, independent of analyzer.tftp.codec); expected values come from
RFC 1350/2347/2348/2349/7440 arithmetic and hashlib, never from the machine.
"""

from __future__ import annotations

import hashlib
import struct

import pytest

from analyzer.tftp.client import (
    CancelTimer,
    ClientConfig,
    ClientOutcome,
    Finished,
    Misbehaviour,
    NeedData,
    Progress,
    Send,
    SetTimer,
    TftpClient,
    Write,
)
from tests.support.tftp_raw import (
    ACK,
    DATA,
    ERROR,
    RRQ,
    WRQ,
    encode_ack,
    encode_data,
    encode_error,
    encode_request,
    netascii_decode,
    netascii_encode,
)

SERVER = ("127.0.0.2", 69)
PEER = ("127.0.0.2", 40000)
OTHER = ("127.0.0.2", 40001)


def oack(**options: object) -> bytes:
    return struct.pack("!H", 6) + b"".join(
        f"{name}\0{value}\0".encode() for name, value in options.items())


def sent(actions: list) -> list[tuple[bytes, tuple]]:
    return [(a.payload, a.to) for a in actions if isinstance(a, Send) and not a.stray]


def packet(payload: bytes) -> tuple[int, int]:
    """(opcode, block or error code) of a packet we sent."""
    return struct.unpack("!HH", payload[:4])


def acks(actions: list) -> list[int]:
    out = []
    for payload, _ in sent(actions):
        opcode, block = packet(payload)
        if opcode == ACK:
            out.append(block)
    return out


def errors(actions: list) -> list[int]:
    return [packet(p)[1] for p, _ in sent(actions) if packet(p)[0] == ERROR]


def written(actions: list) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Write))


def finished(actions: list) -> ClientOutcome | None:
    done = [a.outcome for a in actions if isinstance(a, Finished)]
    assert len(done) <= 1
    if done:
        assert isinstance(actions[-1], Finished), "Finished must be the last action"
    return done[0] if done else None


def get_client(**config: object) -> tuple[TftpClient, list]:
    client = TftpClient(ClientConfig(server=SERVER, filename="file.bin", **config))
    return client, client.start()


def put_client(**config: object) -> tuple[TftpClient, list]:
    client = TftpClient(ClientConfig(server=SERVER, filename="up.bin", put=True, **config))
    return client, client.start()


def run_get(client: TftpClient, blocks: list[bytes], first: int = 1) -> list:
    actions: list = []
    for number, payload in enumerate(blocks, start=first):
        actions += client.receive(encode_data(number, payload), PEER)
    return actions


def blocks_of(data: bytes, blksize: int) -> list[bytes]:
    """RFC 1350 cutting: full blocks, then a short (maybe empty) last one."""
    out = [data[i:i + blksize] for i in range(0, len(data), blksize)]
    if not out or len(out[-1]) == blksize:
        out.append(b"")
    return out


# ---------------------------------------------------------------- requests

def test_rrq_bytes_with_options_and_tsize_zero() -> None:
    _, actions = get_client(blksize=1428, tsize=True, windowsize=4, timeout_option=3)
    expected = encode_request(RRQ, "file.bin", "octet",
                              {"blksize": "1428", "tsize": "0", "timeout": "3",
                               "windowsize": "4"})
    assert sent(actions) == [(expected, SERVER)]
    assert SetTimer(1.0) in actions


def test_wrq_carries_the_real_size_as_tsize() -> None:
    _, actions = put_client(tsize=True, put_size=123_456)
    assert sent(actions) == [(encode_request(WRQ, "up.bin", "octet", {"tsize": "123456"}),
                              SERVER)]


def test_no_options_sends_a_plain_rfc1350_request() -> None:
    _, actions = get_client(blksize=1428, tsize=True, use_options=False)
    assert sent(actions) == [(encode_request(RRQ, "file.bin", "octet"), SERVER)]


# ---------------------------------------------------------------- a plain get

def test_get_writes_in_order_acks_each_block_and_completes() -> None:
    data = bytes(range(256)) * 2 + b"tail"  # 516 bytes: one full block and 4 bytes
    client, _ = get_client()
    actions = run_get(client, blocks_of(data, 512))
    assert acks(actions) == [1, 2]
    assert written(actions) == data
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "complete"
    assert outcome.peer == PEER and outcome.bytes == 516
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    assert outcome.blksize == 512 and outcome.windowsize == 1


def test_exact_multiple_needs_the_final_empty_block() -> None:
    data = b"x" * 1024
    client, _ = get_client()
    actions = run_get(client, [data[:512], data[512:]])
    assert finished(actions) is None, "a full block is never the last one"
    actions = client.receive(encode_data(3, b""), PEER)
    assert acks(actions) == [3]
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "complete" and outcome.bytes == 1024


def test_empty_file_is_one_empty_block() -> None:
    client, _ = get_client()
    actions = client.receive(encode_data(1, b""), PEER)
    assert acks(actions) == [1]
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.bytes == 0
    assert outcome.sha256 == hashlib.sha256(b"").hexdigest()


# ---------------------------------------------------------------- TID

def test_tid_lock_answers_strangers_with_error_5_and_goes_on() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    stray = client.receive(encode_data(2, b"evil"), OTHER)
    assert sent(stray) == [(encode_error(5, "unknown transfer ID"), OTHER)]
    assert written(stray) == b"" and finished(stray) is None
    stray_host = client.receive(encode_data(2, b"evil"), ("127.0.0.9", 40000))
    assert errors(stray_host) == [5]
    actions = client.receive(encode_data(2, b"good"), PEER)
    assert written(actions) == b"good"
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.foreign == 2


# ---------------------------------------------------------------- OACK rules

def test_options_left_out_of_the_oack_take_their_defaults() -> None:
    client, _ = get_client(blksize=1428, windowsize=4, tsize=True)
    actions = client.receive(oack(tsize=700), PEER)
    assert acks(actions) == [0]
    assert client.blksize == 512 and client.windowsize == 1
    actions = run_get(client, [b"a" * 512, b"b" * 188])
    assert acks(actions) == [1, 2]
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.oack == (("tsize", "700"),)


@pytest.mark.parametrize("answer, what", [
    (oack(blksize=512, windowsize=8), "windowsize"),  # never asked
    (oack(blksize=2048), "blksize"),  # more than the 1024 asked
    (oack(blksize=7), "blksize"),  # below RFC 2348's minimum
    (oack(blksize="big"), "blksize"),
])
def test_bad_oack_is_refused_with_error_8(answer: bytes, what: str) -> None:
    client, _ = get_client(blksize=1024)
    actions = client.receive(answer, PEER)
    assert errors(actions) == [8]
    assert sent(actions)[0][1] == PEER
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "error"
    assert outcome.error is not None and outcome.error.code == 8
    assert outcome.error.origin == "client" and what in outcome.reason


def test_data_1_instead_of_oack_is_accepted_at_defaults() -> None:
    client, _ = get_client(blksize=1428, windowsize=4)
    actions = client.receive(encode_data(1, b"q" * 100), PEER)
    assert acks(actions) == [1]
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.oack is None
    assert outcome.blksize == 512 and outcome.windowsize == 1


def test_error_8_to_the_options_retries_once_without_them() -> None:
    client, _ = get_client(blksize=1428, tsize=True)
    actions = client.receive(encode_error(8, "no options here"), PEER)
    assert sent(actions) == [(encode_request(RRQ, "file.bin", "octet"), SERVER)]
    assert finished(actions) is None
    actions = client.receive(encode_data(1, b"z"), ("127.0.0.2", 40007))
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.options == ()
    assert any("ERROR 8" in note and "without options" in note for note in outcome.notes)


def test_a_second_error_8_is_a_failure() -> None:
    client, _ = get_client(blksize=1428)
    client.receive(encode_error(8, "no"), PEER)
    actions = client.receive(encode_error(8, "still no"), PEER)
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "error"
    assert outcome.error is not None and outcome.error.origin == "server"
    assert outcome.error.code == 8


def test_error_8_without_options_is_not_retried() -> None:
    client, _ = get_client()
    outcome = finished(client.receive(encode_error(8, "odd"), PEER))
    assert outcome is not None and outcome.status == "error"


# ---------------------------------------------------------------- timeouts

def test_timeouts_resend_with_backoff_then_give_up() -> None:
    client, first = get_client(timeout=1.0, retries=4)
    request = sent(first)[0]
    waits = []
    for _ in range(4):
        actions = client.timer_expired()
        assert sent(actions) == [request]
        waits += [a.seconds for a in actions if isinstance(a, SetTimer)]
    assert waits == [2.0, 4.0, 8.0, 8.0]  # doubled each time, up to 8x the base
    actions = client.timer_expired()
    assert sent(actions) == []
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "timeout"
    assert outcome.retransmitted == 4 and "timed out" in outcome.reason


def test_timeout_mid_get_resends_the_last_ack_and_progress_resets_the_backoff() -> None:
    client, _ = get_client(timeout=0.5)
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.timer_expired()
    assert acks(actions) == [1] and SetTimer(1.0) in actions
    actions = client.receive(encode_data(2, b"a" * 512), PEER)
    assert SetTimer(0.5) in actions


# ---------------------------------------------------------------- duplicates, SAS

def test_duplicate_data_is_acked_again_but_not_written_again() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.receive(encode_data(1, b"a" * 512), PEER)
    assert acks(actions) == [1] and written(actions) == b""
    actions = client.receive(encode_data(2, b"end"), PEER)
    outcome = finished(actions)
    assert outcome is not None and outcome.bytes == 515 and outcome.duplicates == 1


def test_put_never_resends_data_on_a_duplicate_ack() -> None:
    client, _ = put_client()
    actions = client.receive(encode_ack(0), PEER)
    assert [a for a in actions if isinstance(a, NeedData)]
    actions = client.provide(b"d" * 600, eof=False)
    assert [packet(p) for p, _ in sent(actions)] == [(DATA, 1)]
    assert sent(actions)[0][0] == encode_data(1, b"d" * 512)
    assert sent(client.receive(encode_ack(0), PEER)) == []  # duplicate ACK 0
    actions = client.receive(encode_ack(1), PEER)
    assert sent(client.receive(encode_ack(1), PEER)) == []  # duplicate ACK 1: no SAS
    more = client.provide(b"", eof=True) if any(isinstance(a, NeedData) for a in actions) \
        else []
    data_sent = sent(actions) + sent(more)
    assert data_sent == [(encode_data(2, b"d" * 88), PEER)]
    outcome = finished(client.receive(encode_ack(2), PEER))
    assert outcome is not None and outcome.ok and outcome.bytes == 600
    assert outcome.duplicates == 2
    assert outcome.sha256 == hashlib.sha256(b"d" * 600).hexdigest()


def test_late_old_packets_are_duplicates_not_failures() -> None:
    # Reordering can deliver a copy of an old block (get) or ACK (put) well after it.
    client, _ = get_client()
    run_get(client, [b"a" * 512] * 5)
    actions = client.receive(encode_data(2, b"a" * 512), PEER)
    assert finished(actions) is None and written(actions) == b""
    client, _ = put_client()
    client.receive(encode_ack(0), PEER)
    client.provide(b"p" * 512 * 4, eof=False)
    for block in (1, 2, 3):
        client.receive(encode_ack(block), PEER)
        client.provide(b"p" * 512, eof=False)
    assert sent(client.receive(encode_ack(1), PEER)) == []
    assert client.state == "transferring" and client.duplicates == 1


def test_put_timeout_resends_the_unacknowledged_data() -> None:
    client, _ = put_client()
    client.receive(encode_ack(0), PEER)
    client.provide(b"x" * 10, eof=True)
    actions = client.timer_expired()
    assert sent(actions) == [(encode_data(1, b"x" * 10), PEER)]


def drive_put(client: TftpClient, data: bytes, chunk: int = 4096) -> list[bytes]:
    """Answer NeedData from `data`, ACK every DATA at once; the DATA payloads sent."""
    payloads: list[bytes] = []
    offset = 0
    pending = client.receive(encode_ack(0), PEER)
    while pending:
        action = pending.pop(0)
        if isinstance(action, NeedData):
            piece = data[offset:offset + min(chunk, action.size)]
            offset += len(piece)
            pending += client.provide(piece, eof=offset >= len(data))
        elif isinstance(action, Send):
            opcode, block = packet(action.payload)
            if opcode == DATA:
                payloads.append(action.payload[4:])
                pending += client.receive(encode_ack(block), PEER)
    return payloads


def test_put_exact_multiple_ends_with_an_empty_block() -> None:
    client, _ = put_client()
    payloads = drive_put(client, b"m" * 1024)
    assert payloads == [b"m" * 512, b"m" * 512, b""]
    assert client.outcome is not None and client.outcome.ok


# ---------------------------------------------------------------- rollover

def test_get_block_numbers_wrap_past_65535() -> None:
    count = 65_540  # blocks of 8 bytes, then an empty one
    data = bytes((i * 7) & 0xFF for i in range(count * 8))
    client, _ = get_client(blksize=8)
    client.receive(oack(blksize=8), PEER)
    digest = hashlib.sha256()
    ack_numbers = []
    for absolute in range(1, count + 2):
        payload = data[(absolute - 1) * 8:absolute * 8]
        actions = client.receive(encode_data(absolute & 0xFFFF, payload), PEER)
        digest.update(written(actions))
        ack_numbers += acks(actions)
    assert ack_numbers[65_533:65_538] == [65_534, 65_535, 0, 1, 2]
    outcome = client.outcome
    assert outcome is not None and outcome.ok and outcome.bytes == len(data)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest() == outcome.sha256


def test_put_block_numbers_wrap_past_65535() -> None:
    data = bytes(range(256)) * (65_537 * 8 // 256 + 1)
    client, _ = put_client(blksize=8)
    client.receive(oack(blksize=8), PEER)
    numbers = []
    payloads = []
    offset = 0
    pending = client.provide(data[:4096], eof=False)
    offset = 4096
    while pending:
        action = pending.pop(0)
        if isinstance(action, NeedData):
            piece = data[offset:offset + 4096]
            offset += len(piece)
            pending += client.provide(piece, eof=offset >= len(data))
        elif isinstance(action, Send):
            opcode, block = packet(action.payload)
            assert opcode == DATA
            numbers.append(block)
            payloads.append(action.payload[4:])
            pending += client.receive(encode_ack(block), PEER)
    assert numbers[65_534:65_537] == [65_535, 0, 1]
    assert b"".join(payloads) == data
    assert client.outcome is not None and client.outcome.ok


# ---------------------------------------------------------------- windows (RFC 7440)

def test_windowed_get_acks_each_window_and_recovers_a_lost_block() -> None:
    client, _ = get_client(windowsize=4)
    client.receive(oack(windowsize=4), PEER)
    block = [bytes([n]) * 512 for n in range(10)]
    actions = run_get(client, block[1:5])  # blocks 1-4: one ACK, at the window's end
    assert acks(actions) == [4]
    # The next window: 5, 6, (7 lost), 8 -> ACK 6 once, for the last in-order block.
    actions = client.receive(encode_data(5, block[5]), PEER)
    actions += client.receive(encode_data(6, block[6]), PEER)
    actions += client.receive(encode_data(8, block[8]), PEER)
    assert acks(actions) == [6]
    # The server restarts from 7: 7, 8, 9 (short: the last) -> ACK 9.
    actions = client.receive(encode_data(7, block[7]), PEER)
    actions += client.receive(encode_data(8, block[8]), PEER)
    actions += client.receive(encode_data(9, b"end"), PEER)
    assert acks(actions) == [9]
    outcome = finished(actions)
    assert outcome is not None and outcome.ok
    assert outcome.sha256 == hashlib.sha256(b"".join(block[1:9]) + b"end").hexdigest()


def test_windowed_put_resends_from_a_partial_ack() -> None:
    data = bytes(range(256)) * 12  # 3072 bytes: 6 blocks of 512, then an empty one
    client, _ = put_client(windowsize=4)
    actions = client.receive(oack(windowsize=4), PEER)
    actions += client.provide(data, eof=True)
    assert [packet(p)[1] for p, _ in sent(actions)] == [1, 2, 3, 4]
    actions = client.receive(encode_ack(2), PEER)  # 3 was lost at the receiver
    assert [packet(p)[1] for p, _ in sent(actions)] == [3, 4, 5, 6]
    actions = client.receive(encode_ack(6), PEER)
    assert sent(actions) == [(encode_data(7, b""), PEER)]
    outcome = finished(client.receive(encode_ack(7), PEER))
    assert outcome is not None and outcome.ok and outcome.bytes == 3072


# ---------------------------------------------------------------- netascii

def test_netascii_get_decodes_across_block_boundaries() -> None:
    original = b"line1\nbare\rcr\r\nend\n" * 3
    wire = netascii_encode(original)
    client, _ = get_client(mode="netascii", blksize=8)
    client.receive(oack(blksize=8), PEER)
    actions = run_get(client, blocks_of(wire, 8))
    assert written(actions) == original == netascii_decode(wire)
    outcome = finished(actions)
    assert outcome is not None and outcome.ok and outcome.bytes == len(original)


def test_netascii_put_encodes_lf_and_cr() -> None:
    original = b"a\nb\rc\r\n" * 100
    client, _ = put_client(mode="netascii")
    payloads = drive_put(client, original, chunk=7)
    assert b"".join(payloads) == netascii_encode(original)
    assert client.outcome is not None and client.outcome.ok
    assert client.outcome.sha256 == hashlib.sha256(original).hexdigest()


# ---------------------------------------------------------------- tsize, progress

def test_servers_tsize_is_the_progress_total() -> None:
    client, _ = get_client(tsize=True)
    client.receive(oack(tsize=70_000), PEER)
    data = bytes(range(256)) * 273 + b"x" * 112  # 70,000 bytes: 136 full blocks and 1 short
    actions = run_get(client, blocks_of(data, 512))
    progress = [a for a in actions if isinstance(a, Progress)]
    # Reported every so often (not necessarily every block), always against the tsize.
    assert len(progress) >= 2 and progress[-1] == Progress(70_000, 70_000)
    assert all(p.total == 70_000 and p.done % 512 == 0 for p in progress[:-1])
    assert [p.done for p in progress] == sorted({p.done for p in progress})


# ---------------------------------------------------------------- hostile servers

def failed(actions: list) -> ClientOutcome:
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "error" and outcome.error is not None
    return outcome


def test_data_larger_than_blksize_fails() -> None:
    client, _ = get_client()
    outcome = failed(client.receive(encode_data(1, b"x" * 513), PEER))
    assert outcome.error is not None and outcome.error.origin == "client"
    assert "513" in outcome.reason and "blksize 512" in outcome.reason


def test_data_beyond_the_announced_tsize_fails() -> None:
    client, _ = get_client(tsize=True)
    client.receive(oack(tsize=600), PEER)
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.receive(encode_data(2, b"a" * 512), PEER)
    assert errors(actions) == [4]
    assert "600" in failed(actions).reason


def test_a_file_shorter_than_the_announced_tsize_fails() -> None:
    client, _ = get_client(tsize=True)
    client.receive(oack(tsize=600), PEER)
    outcome = failed(run_get(client, [b"a" * 100]))
    assert "100" in outcome.reason and "600" in outcome.reason


def test_block_jumping_ahead_fails() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.receive(encode_data(5, b"a" * 512), PEER)
    assert errors(actions) == [4]
    assert "jumped ahead" in failed(actions).reason


def test_error_mid_transfer_is_the_servers_error() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    outcome = failed(client.receive(encode_error(3, "Disk full"), PEER))
    assert outcome.error == (3, "Disk full", "server")
    assert "Disk full" in outcome.reason


def test_unexpected_opcode_fails_with_error_4() -> None:
    client, _ = get_client()
    actions = client.receive(encode_ack(1), PEER)
    assert errors(actions) == [4]
    failed(actions)


def test_abort_sends_error_0_to_the_peer() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.abort()
    assert errors(actions) == [0] and sent(actions)[0][1] == PEER
    assert CancelTimer() in actions
    outcome = finished(actions)
    assert outcome is not None and outcome.status == "aborted"
    assert outcome.error is not None and outcome.error.origin == "client"
    assert client.receive(encode_data(2, b"x"), PEER) == []


# ---------------------------------------------------------------- misbehaviour hooks

def test_withhold_ack_once_then_answer_the_resent_data() -> None:
    client, _ = get_client(misbehaviour=Misbehaviour(withhold_ack=2))
    actions = run_get(client, [b"a" * 512, b"b" * 512])
    assert acks(actions) == [1]
    actions = client.receive(encode_data(2, b"b" * 512), PEER)  # the server's resend
    assert acks(actions) == [2] and written(actions) == b""


def test_repeat_ack_sends_it_twice() -> None:
    client, _ = get_client(misbehaviour=Misbehaviour(repeat_ack=1))
    assert acks(client.receive(encode_data(1, b"a" * 512), PEER)) == [1, 1]


def test_stray_ack_goes_out_of_the_second_port() -> None:
    client, _ = get_client(misbehaviour=Misbehaviour(stray_ack=1))
    actions = client.receive(encode_data(1, b"a" * 512), PEER)
    strays = [a for a in actions if isinstance(a, Send) and a.stray]
    assert strays == [Send(encode_ack(1), PEER, stray=True)]
    assert acks(actions) == [1]


def test_raw_request_bytes_and_raw_options() -> None:
    _, actions = get_client(misbehaviour=Misbehaviour(raw_request=b"\x00\x01x\x00"))
    assert sent(actions) == [(b"\x00\x01x\x00", SERVER)]
    client, actions = get_client(raw_options=(("BLKSIZE", "7"), ("foo", "bar")))
    assert sent(actions)[0][0] == encode_request(RRQ, "file.bin", "octet",
                                                 {"BLKSIZE": "7", "foo": "bar"})
    client.receive(oack(foo="bar"), PEER)  # asked for, so accepted
    assert client.state == "transferring"


def test_local_failure_sends_error_3_and_fails() -> None:
    client, _ = get_client()
    client.receive(encode_data(1, b"a" * 512), PEER)
    actions = client.local_failure("cannot write the local file: No space left on device")
    assert errors(actions) == [3] and sent(actions)[0][1] == PEER
    outcome = failed(actions)
    assert outcome.error is not None and outcome.error.origin == "client"
    assert "No space left" in outcome.reason
