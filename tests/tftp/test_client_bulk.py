"""The C bulk path of a plain download (analyzer/active/_tftp_bulk.c), on real UDP
sockets on loopback: DATA built with struct as RFC 1350 lays it out (tests/support/
tftp_raw.py), the ACKs read back by the "server" socket. The whole client is tested
against real servers in tests/tftp_servers/; this checks the edge cases one by one.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from analyzer.active import tftp as driver
from tests.conftest import missing_prerequisite
from tests.support.tftp_raw import encode_data

BLKSIZE = 16
STOPPED, TIMED_OUT, DATAGRAM, WRITE_FAILED = 0, 1, 2, 4


@pytest.fixture
def bulk():
    receive = driver._bulk_receive()
    if receive is None:
        missing_prerequisite("the C bulk path is not built (`make native`), or "
                             "ANALYZER_PURE=1")
    return receive


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(client, server): the client connected to the server, as the driver connects it;
    its receive times out after 0.2 s (SO_RCVTIMEO, as the driver sets it)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(0.5)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.connect(server.getsockname())
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 200_000))
    yield client, server
    client.close()
    server.close()


def block_data(number: int) -> bytes:
    return bytes([number & 0xFF]) * BLKSIZE


def send_blocks(server: socket.socket, client: socket.socket, numbers: list[int],
                size: int = BLKSIZE) -> None:
    for number in numbers:
        server.sendto(encode_data(number & 0xFFFF, block_data(number)[:1] * size),
                      client.getsockname())


def acks_received(server: socket.socket) -> list[int]:
    acks = []
    server.settimeout(0.05)
    while True:
        try:
            datagram = server.recv(100)
        except TimeoutError:
            return acks
        opcode, block = struct.unpack("!HH", datagram)
        assert opcode == 4
        acks.append(block)


def call(bulk, client, expected=1, acked=0, window=1, room=-1, max_blocks=100,
         capacity=100, file_fd=-1):
    out = bytearray(capacity * BLKSIZE)
    result = bulk(client.fileno(), file_fd, out, bytearray(70000), BLKSIZE, expected, acked,
                  window, room, max_blocks)
    return result, out


def test_lockstep_blocks_are_each_acked_and_received_in_place(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2, 3, 4, 5])
    (taken, acked, status, datagram), out = call(bulk, client)
    assert (taken, acked, status, datagram) == (5, 5, TIMED_OUT, None)
    assert bytes(out[:5 * BLKSIZE]) == b"".join(block_data(n) for n in range(1, 6))
    assert acks_received(server) == [1, 2, 3, 4, 5]


def test_a_window_is_acked_once_at_its_end(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2, 3, 4, 5, 6])
    (taken, acked, status, _), _ = call(bulk, client, window=4)
    assert (taken, acked, status) == (6, 4, TIMED_OUT)
    assert acks_received(server) == [4]  # RFC 7440: blocks 5-6 wait for the window


def test_the_short_final_block_goes_back_to_the_machine_whole(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2])
    final = encode_data(3, b"end")
    server.sendto(final, client.getsockname())
    (taken, acked, status, datagram), _ = call(bulk, client)
    assert (taken, acked, status, datagram) == (2, 2, DATAGRAM, final)
    assert acks_received(server) == [1, 2]  # the final ACK is the machine's to send


@pytest.mark.parametrize("what", ["oversized", "duplicate", "ahead", "error", "empty"])
def test_anything_but_the_next_full_block_is_returned_intact(bulk, pair, what) -> None:
    client, server = pair
    odd = {"oversized": encode_data(2, b"x" * (BLKSIZE + 100)),
           "duplicate": encode_data(1, block_data(1)),
           "ahead": encode_data(3, block_data(3)),
           "error": struct.pack("!HH", 5, 1) + b"File not found\0",
           "empty": b""}[what]
    send_blocks(server, client, [1])
    server.sendto(odd, client.getsockname())
    (taken, acked, status, datagram), _ = call(bulk, client)
    assert (taken, acked, status, datagram) == (1, 1, DATAGRAM, odd)


def test_tsize_room_stops_before_a_block_past_it(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2, 3])
    (taken, _, status, datagram), _ = call(bulk, client, room=2 * BLKSIZE + 5)
    assert (taken, status) == (2, DATAGRAM)
    assert datagram == encode_data(3, block_data(3))


def test_block_numbers_wrap_from_65535_to_0(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [65535, 65536, 65537])  # on the wire: 65535, 0, 1
    (taken, acked, status, _), _ = call(bulk, client, expected=65535, acked=65534)
    assert (taken, acked, status) == (3, 65537, TIMED_OUT)
    assert acks_received(server) == [65535, 0, 1]


@pytest.mark.parametrize(("max_blocks", "capacity"), [(2, 100), (100, 2)])
def test_a_batch_ends_at_max_blocks_or_a_full_buffer(bulk, pair, max_blocks,
                                                     capacity) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2, 3])
    (taken, acked, status, _), _ = call(bulk, client, max_blocks=max_blocks,
                                        capacity=capacity)
    assert (taken, acked, status) == (2, 2, STOPPED)
    (taken, acked, status, _), _ = call(bulk, client, expected=3, acked=2)
    assert (taken, acked, status) == (1, 3, TIMED_OUT)  # block 3 was left queued


def test_the_blocks_taken_are_written_to_the_file(bulk, pair, tmp_path) -> None:
    """In lockstep with a server thread (each block sent once its predecessor's ACK is
    in): 80 kB, so written once after an ACK (64 KiB) and once at the end."""
    client, server = pair
    numbers = list(range(1, 5001))
    acks: list[int] = []

    def serve() -> None:
        for number in numbers:
            send_blocks(server, client, [number])
            acks.append(struct.unpack("!HH", server.recv(100))[1])

    thread = threading.Thread(target=serve)
    thread.start()
    with open(tmp_path / "file", "wb") as file:
        (taken, acked, status, _), _ = call(bulk, client, max_blocks=5000, capacity=5000,
                                            file_fd=file.fileno())
    thread.join()
    assert (taken, acked, status) == (5000, 5000, STOPPED)
    assert acks == numbers
    assert (tmp_path / "file").read_bytes() == b"".join(block_data(n) for n in numbers)


def test_a_failed_write_says_why(bulk, pair) -> None:
    client, server = pair
    send_blocks(server, client, [1, 2])
    with open("/dev/full", "wb") as full:  # every write: ENOSPC
        (taken, acked, status, code), _ = call(bulk, client, file_fd=full.fileno())
    assert (taken, acked, status, code) == (2, 2, WRITE_FAILED, errno.ENOSPC)
