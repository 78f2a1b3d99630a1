"""Hostile peers on loopback: the largest datagrams, binary junk carrying terminal escape
sequences, a server that resets in the middle of its reply, and a flood of datagrams.

The commands must show what came, escaped, never a raw control character (the network
must not be able to clear the screen or retitle the terminal), keep their memory bounded,
and end with the outcome the contract names.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.active.cli import (
    RAW_CONTROL,
    Background,
    describe,
    free_port,
    json_lines,
    of_type,
    run,
)
from tests.support.procs import wait_udp_port

LARGEST_UDP_PAYLOAD = 65_507  # 65,535 - 20 (IPv4 header) - 8 (UDP header)
# Clear screen, set the window title (OSC 0 ... BEL), a CSI in C1 form, and every byte.
TERMINAL_JUNK = b"\x1b[2J\x1b]0;pwned title\x07\x9b31m\r\x08\x00" + bytes(range(256))
FLOOD_DATAGRAMS = 100_000
PEAK_RSS_LIMIT_KIB = 150 * 1024


def assert_no_raw_controls(*outputs: bytes) -> None:
    for output in outputs:
        found = RAW_CONTROL.search(output)
        assert found is None, f"raw control {found.group()!r} in {output[-600:]!r}"


def listen(background: Callable[..., Background], port: int, *options: str,
           **kwargs: object) -> Background:
    listener = background("udp", "listen", str(port), "--bind", "127.0.0.1", *options,
                          **kwargs)
    wait_udp_port("127.0.0.1", port, listener.proc, timeout=20)
    return listener


def send_datagram(port: int, payload: bytes) -> int:
    """Send `payload` to 127.0.0.1:port from a fresh socket; returns our source port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.sendto(payload, ("127.0.0.1", port))
        return int(sock.getsockname()[1])


def test_listen_takes_the_largest_datagram_whole(background: Callable[..., Background]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    payload = os.urandom(LARGEST_UDP_PAYLOAD)
    listener = listen(background, port, "-c", "1", "--json")
    source_port = send_datagram(port, payload)
    done = listener.finish(timeout=20)
    assert done.returncode == 0, describe(done)
    received = [obj for obj in of_type(json_lines(done.stdout), "udp_datagram")
                if obj["direction"] == "in"]
    assert len(received) == 1
    assert received[0]["source"] == f"127.0.0.1:{source_port}"
    assert received[0]["bytes"] == LARGEST_UDP_PAYLOAD
    assert bytes.fromhex(received[0]["hex"]) == payload
    assert_no_raw_controls(done.stdout, done.stderr)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "gb2312"])
def test_listen_shows_terminal_junk_escaped(background: Callable[..., Background],
                                            encoding: str) -> None:
    """latin-1 matters most: it decodes 0x80-0x9f to the C1 controls (0x9b is CSI)."""
    port = free_port(socket.SOCK_DGRAM)
    listener = listen(background, port, "-c", "2", "--encoding", encoding)
    send_datagram(port, TERMINAL_JUNK)
    send_datagram(port, os.urandom(LARGEST_UDP_PAYLOAD))
    done = listener.finish(timeout=20)
    assert done.returncode == 0, describe(done)
    assert_no_raw_controls(done.stdout, done.stderr)
    assert b"pwned title" in done.stdout  # the printable part is still shown


@pytest.fixture
def junk_udp_responder() -> Iterator[int]:
    """A UDP peer on 127.0.0.1 that answers any datagram with TERMINAL_JUNK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                _, peer = sock.recvfrom(65536)
            except TimeoutError:
                continue
            sock.sendto(TERMINAL_JUNK, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])
    stop.set()
    thread.join()
    sock.close()


def test_udp_send_shows_a_junk_reply_escaped(junk_udp_responder: int) -> None:
    done = run("udp", "send", "127.0.0.1", junk_udp_responder, "hello", "--wait", "1",
               "--encoding", "latin-1")
    assert done.returncode == 0, describe(done)
    assert f"[127.0.0.1:{junk_udp_responder}]".encode() in done.stdout
    assert_no_raw_controls(done.stdout, done.stderr)


class OneShotTcpServer:
    """A test-only TCP server on 127.0.0.1 for one connection, run on a thread:
    reads the request (up to a quiet 0.3 s), sends `reply`, then closes with a FIN, or
    with `reset_after` seconds of pause and an abortive close (SO_LINGER 0: a RST)."""

    def __init__(self, reply: bytes, reset_after: float | None = None) -> None:
        self.reply = reply
        self.reset_after = reset_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(20)
        conn, _ = self.listener.accept()
        conn.settimeout(0.3)
        try:
            while conn.recv(65536):
                pass
        except TimeoutError:
            pass
        conn.sendall(self.reply)
        if self.reset_after is not None:
            time.sleep(self.reset_after)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def close(self) -> None:
        self.thread.join(timeout=30)
        self.listener.close()


def test_connect_reports_a_reset_mid_reply() -> None:
    """The server promises 5000 bytes, sends 1000 and resets: outcome reset, exit 1, and
    the 1000 bytes that did arrive are accounted for."""
    partial = b"HTTP/1.0 200 OK\r\nContent-Length: 5000\r\n\r\n"
    partial += b"x" * (1000 - len(partial))
    server = OneShotTcpServer(partial, reset_after=0.3)
    try:
        done = run("tcp", "connect", "127.0.0.1", server.port, "--send", "GET",
                   "--wait", "3", "--json")
    finally:
        server.close()
    assert done.returncode == 1, describe(done)
    assert b"Traceback" not in done.stderr
    exchange = of_type(json_lines(done.stdout), "tcp_exchange")
    assert len(exchange) == 1
    assert exchange[0]["outcome"] == "reset"
    assert exchange[0]["closed_by"] == "remote" and exchange[0]["close"] == "rst"
    assert exchange[0]["received_bytes"] == len(partial)


def test_connect_shows_junk_from_a_server_escaped() -> None:
    server = OneShotTcpServer(TERMINAL_JUNK * 3)
    try:
        done = run("tcp", "connect", "127.0.0.1", server.port, "--send", "hi",
                   "--encoding", "latin-1")
    finally:
        server.close()
    assert done.returncode == 0, describe(done)
    assert_no_raw_controls(done.stdout, done.stderr)
    assert b"pwned title" in done.stdout


# -- the flood -----------------------------------------------------------------------


def udp_socket_row(pid: int, port: int) -> list[str]:
    """The /proc/PID/net/udp row of the socket bound to 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    for line in Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local:
            return fields
    raise AssertionError(f"no UDP socket on 127.0.0.1:{port}")


def queued_and_dropped(pid: int, port: int) -> tuple[int, int]:
    """Bytes still waiting in the socket's receive queue, and the datagrams the kernel
    dropped because the queue was full (the last column, "drops")."""
    fields = udp_socket_row(pid, port)
    return int(fields[4].split(":")[1], 16), int(fields[-1])


def wait_drained(pid: int, port: int, timeout: float) -> int:
    """Wait until the listener has read everything queued; return the drop count."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued, dropped = queued_and_dropped(pid, port)
        if queued == 0:
            return dropped
        time.sleep(0.1)
    raise AssertionError(f"listener still has {queued} bytes queued after {timeout} s")


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    assert match, status
    return int(match.group(1))


@pytest.mark.slow
def test_listen_survives_a_flood_with_bounded_memory(
        background: Callable[..., Background], tmp_path: Path) -> None:
    """100k datagrams as fast as one socket sends them: the listener shows every one it
    got (the kernel's drop counter accounts for the rest), keeps its peak RSS bounded,
    still works afterwards, ends on SIGTERM with exit 0 and says how many it received."""
    port = free_port(socket.SOCK_DGRAM)
    out_path = tmp_path / "listen.out"
    with open(out_path, "wb") as out:
        listener = listen(background, port, stdout=out)
    pid = listener.proc.pid
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        source = f"[127.0.0.1:{sock.getsockname()[1]}]: "
        for number in range(FLOOD_DATAGRAMS):
            sock.sendto(b"flood %06d" % number, ("127.0.0.1", port))
        sent_seconds = time.monotonic() - started
        dropped = wait_drained(pid, port, timeout=60)
        peak = peak_rss_kib(pid)
        sock.sendto(b"still alive", ("127.0.0.1", port))
        assert wait_drained(pid, port, timeout=10) == dropped
    done = listener.finish(timeout=30, terminate=True)
    assert done.returncode == 0, describe(done)
    assert b"Traceback" not in done.stderr
    assert peak < PEAK_RSS_LIMIT_KIB, f"peak RSS {peak} KiB"

    text = out_path.read_text(errors="replace")
    shown = re.findall(re.escape(source) + r"flood (\d{6})$", text, re.MULTILINE)
    assert len(shown) == FLOOD_DATAGRAMS - dropped, (len(shown), dropped)
    assert [int(number) for number in shown] == sorted(int(number) for number in shown)
    assert f"{source}still alive" in text
    received = len(shown) + 1
    tail = "\n".join((text + done.stderr.decode(errors="replace")).splitlines()[-5:])
    assert re.search(rf"\b({received}|{received:,})\b", tail), tail
    print(f"flood: {FLOOD_DATAGRAMS} sent in {sent_seconds:.2f} s, {len(shown)} shown, "
          f"{dropped} dropped by the kernel, peak RSS {peak / 1024:.1f} MiB, "
          f"total {time.monotonic() - started:.1f} s")
