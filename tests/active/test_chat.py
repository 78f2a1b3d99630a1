"""`udp chat` on loopback, driven through pipes: lines typed on stdin go out as datagrams,
datagrams received are printed as "[ip:port]: text".

Terminal text (stdin, stdout) is in the locale's encoding (UTF-8: C.UTF-8 here, and Python
coerces the plain C locale to UTF-8);
`--encoding` is the encoding on the wire. A plain Python socket checks the wire bytes
independently; two chats then talk to each other both ways at once.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from tests.active.cli import Background, free_port
from tests.support.procs import wait_udp_port

LINE_TIMEOUT = 20.0
LINES_EACH_WAY = 100

GB2312_LINES = [f"第{i}行：你好，世界！中文测试 ABC {i}" for i in range(LINES_EACH_WAY)]
# Characters gb2312 does not have (an emoji, Hangul, Latin with diaeresis): utf-8 only.
UTF8_LINES = [f"line {i}: grüße 😀 한국어 中文 {i}" for i in range(LINES_EACH_WAY)]


class ChatReader:
    """Collects a chat's stdout lines on a thread, so the test can wait for them."""

    def __init__(self, chat: Background) -> None:
        assert chat.proc.stdout is not None
        self.stream = chat.proc.stdout
        self.lines: list[bytes] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.stream:
            with self.lock:
                self.lines.append(line.rstrip(b"\n"))

    def messages_from(self, port: int) -> list[str]:
        """The texts of the "[127.0.0.1:port]: text" lines, in order."""
        pattern = re.compile(rb"^\[127\.0\.0\.1:%d\]: (.*)$" % port)
        with self.lock:
            found = [pattern.match(line) for line in self.lines]
        return [match.group(1).decode() for match in found if match]

    def wait_for(self, port: int, count: int) -> list[str]:
        deadline = time.monotonic() + LINE_TIMEOUT
        while time.monotonic() < deadline:
            messages = self.messages_from(port)
            if len(messages) >= count:
                return messages
            time.sleep(0.05)
        with self.lock:
            raise AssertionError(f"only {len(self.messages_from(port))} of {count} lines "
                                 f"from port {port}; output tail {self.lines[-5:]!r}")


def start_chat(background: Callable[..., Background], local: int, remote: int,
               *options: str) -> tuple[Background, ChatReader]:
    chat = background("udp", "chat", str(local), f"127.0.0.1:{remote}", *options,
                      stdin=subprocess.PIPE)
    wait_udp_port("127.0.0.1", local, chat.proc, timeout=20)
    return chat, ChatReader(chat)


def type_lines(chat: Background, lines: list[str]) -> None:
    """Write the lines to the chat's stdin (UTF-8, as a terminal would), a few ms apart."""
    assert chat.proc.stdin is not None
    for line in lines:
        chat.proc.stdin.write(line.encode() + b"\n")
        chat.proc.stdin.flush()
        time.sleep(0.005)


def end_chat(chat: Background) -> None:
    """EOF on stdin ends the chat with exit 0."""
    assert chat.proc.stdin is not None
    chat.proc.stdin.close()
    assert chat.proc.wait(timeout=10) == 0
    stderr = chat.proc.stderr.read() if chat.proc.stderr else b""
    assert b"Traceback" not in stderr, stderr


def test_chat_puts_gb2312_on_the_wire_and_reads_it_back(
        background: Callable[..., Background]) -> None:
    """Against a plain socket: what we type leaves as gb2312 bytes, without the newline;
    gb2312 bytes that come in are shown as the text they encode."""
    local = free_port(socket.SOCK_DGRAM)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(LINE_TIMEOUT)
        peer_port = peer.getsockname()[1]
        chat, reader = start_chat(background, local, peer_port, "--encoding", "gb2312")
        type_lines(chat, ["你好，世界！", "second 第二"])
        got = [peer.recvfrom(2048) for _ in range(2)]
        assert [data for data, _ in got] == ["你好，世界！".encode("gb2312"),
                                             "second 第二".encode("gb2312")]
        assert {source for _, source in got} == {("127.0.0.1", local)}
        peer.sendto("回复：收到".encode("gb2312"), ("127.0.0.1", local))
        assert reader.wait_for(peer_port, 1) == ["回复：收到"]
        end_chat(chat)


@pytest.mark.parametrize(("encoding", "lines"), [("gb2312", GB2312_LINES),
                                                 ("utf-8", UTF8_LINES)])
def test_two_chats_exchange_lines_both_ways_in_order(
        background: Callable[..., Background], encoding: str, lines: list[str]) -> None:
    port_a = free_port(socket.SOCK_DGRAM)
    port_b = free_port(socket.SOCK_DGRAM)
    while port_b == port_a:
        port_b = free_port(socket.SOCK_DGRAM)
    chat_a, reader_a = start_chat(background, port_a, port_b, "--encoding", encoding)
    chat_b, reader_b = start_chat(background, port_b, port_a, "--encoding", encoding)
    lines_b = [f"B says {line}" for line in reversed(lines)]
    typing = threading.Thread(target=type_lines, args=(chat_b, lines_b))
    typing.start()
    type_lines(chat_a, lines)
    typing.join()
    assert reader_b.wait_for(port_a, len(lines)) == lines
    assert reader_a.wait_for(port_b, len(lines_b)) == lines_b
    end_chat(chat_a)
    end_chat(chat_b)
    # Nothing garbled: no replacement characters, no stray bytes around the lines.
    for reader in (reader_a, reader_b):
        assert not any("\ufffd".encode() in line for line in reader.lines)
