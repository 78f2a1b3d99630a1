"""`udp send` and `udp listen` on loopback: against plain Python sockets and each other,
with the wire read by tshark from the commands' own `--watch -w` captures."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.active.cli import (
    Background,
    analyzer_argv,
    describe,
    free_port,
    json_lines,
    of_type,
    run,
    tshark_rows,
)
from tests.conftest import require_root, require_tool
from tests.support.procs import wait_udp_port

CHINESE = "你好，世界！广播测试"


def listen(background: Callable[..., Background], port: int, *options: str) -> Background:
    listener = background("udp", "listen", str(port), "--bind", "127.0.0.1", *options)
    wait_udp_port("127.0.0.1", port, listener.proc, timeout=20)
    return listener


@pytest.mark.root
def test_send_to_listen_echo_in_gb2312_seen_on_the_wire(
        background: Callable[..., Background], tmp_path: Path) -> None:
    """The datagram leaves as gb2312 bytes (tshark's data.data), the echo comes back from
    the listener's port and is shown as the same text; both commands agree."""
    require_root()
    require_tool("tshark")
    port = free_port(socket.SOCK_DGRAM)
    listen_capture = tmp_path / "listen.pcapng"
    send_capture = tmp_path / "send.pcapng"
    listener = listen(background, port, "--echo", "-c", "1", "--encoding", "gb2312",
                      "--json", "--watch", "-w", str(listen_capture))
    done = run("udp", "send", "127.0.0.1", port, CHINESE, "--encoding", "gb2312",
               "--wait", "1", "--json", "--watch", "-w", send_capture)
    heard = listener.finish(timeout=20)
    assert done.returncode == 0, describe(done)
    assert heard.returncode == 0, describe(heard)

    wire = CHINESE.encode("gb2312")
    sent = of_type(json_lines(done.stdout), "udp_datagram")
    assert [(obj["direction"], obj["destination"], obj["bytes"], obj["hex"], obj["broadcast"])
            for obj in sent][:1] == [("out", f"127.0.0.1:{port}", len(wire), wire.hex(), False)]
    echoes = [obj for obj in sent if obj["direction"] == "in"]
    assert [(obj["source"], obj["text"]) for obj in echoes] == [(f"127.0.0.1:{port}", CHINESE)]
    sender = sent[0]["source"]  # as on the wire: 127.0.0.1, not the wildcard 0.0.0.0

    got = of_type(json_lines(heard.stdout), "udp_datagram")
    assert [(obj["source"], obj["text"], obj["hex"]) for obj in got if obj["direction"] == "in"
            ] == [(sender, CHINESE, wire.hex())]

    for capture in (send_capture, listen_capture):
        rows = tshark_rows(capture, ["udp.srcport", "udp.dstport", "data.data"],
                           f"udp.port == {port}")
        sender_port = sender.rsplit(":", 1)[1]
        assert rows == [
            {"udp.srcport": sender_port, "udp.dstport": str(port), "data.data": wire.hex()},
            {"udp.srcport": str(port), "udp.dstport": sender_port, "data.data": wire.hex()},
        ], capture


def test_listen_reply_answers_each_datagram_and_stops_after_count(
        background: Callable[..., Background]) -> None:
    port = free_port(socket.SOCK_DGRAM)
    listener = listen(background, port, "--reply", "ack ✓", "-c", "3")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        replies = []
        for number in range(3):
            sock.sendto(b"message %d" % number, ("127.0.0.1", port))
            replies.append(sock.recvfrom(100))
        source = sock.getsockname()[1]
    done = listener.finish(timeout=10)
    assert done.returncode == 0, describe(done)
    assert replies == [("ack ✓".encode(), ("127.0.0.1", port))] * 3
    lines = [line for line in done.stdout.decode().splitlines()
             if line.startswith(f"[127.0.0.1:{source}]: ")]
    assert lines == [f"[127.0.0.1:{source}]: message {number}" for number in range(3)]


def test_listen_duration_ends_in_time() -> None:
    port = free_port(socket.SOCK_DGRAM)
    started = time.monotonic()
    done = run("udp", "listen", port, "--bind", "127.0.0.1", "--duration", "1", timeout=30)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, describe(done)
    assert 1.0 <= elapsed < 10.0, elapsed


def test_listen_ends_on_sigterm_with_exit_0(background: Callable[..., Background]) -> None:
    listener = listen(background, free_port(socket.SOCK_DGRAM))
    done = listener.finish(timeout=10, terminate=True)
    assert done.returncode == 0, describe(done)
    assert b"Traceback" not in done.stderr


def test_send_to_a_closed_port_fails_with_the_icmp_error(tmp_path: Path) -> None:
    """Nothing listens: the kernel answers with ICMP port unreachable, which the command
    hears (IP_RECVERR) and reports: exit 1, one line. As root, the watched capture holds
    that ICMP error (tshark)."""
    watch = ["-w", str(tmp_path / "closed.pcapng")] if os.geteuid() == 0 else []
    done = run("udp", "send", "127.0.0.1", free_port(socket.SOCK_DGRAM), "anyone?",
               "--wait", "0.5", "--json", *watch)
    assert done.returncode == 1, describe(done)
    assert b"port unreachable" in done.stderr.splitlines()[-1]
    assert b"Traceback" not in done.stderr
    assert [obj["direction"] for obj in of_type(json_lines(done.stdout), "udp_datagram")] == [
        "out"]
    if watch:
        rows = tshark_rows(tmp_path / "closed.pcapng", ["icmp.type", "icmp.code"], "icmp")
        assert ["3", "3"] in [[row["icmp.type"], row["icmp.code"]] for row in rows]


@pytest.mark.root
def test_watch_without_permission_still_runs_and_says_why(open_tmp_path: Path) -> None:
    """As `nobody` (no CAP_NET_RAW) --watch cannot capture: the command still sends and
    shows the reply, exits 0, and says in one line why there is no watch."""
    require_root()
    setpriv = require_tool("setpriv")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        port = peer.getsockname()[1]
        command = subprocess.Popen(
            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all",
             *analyzer_argv("udp", "send", "127.0.0.1", port, "ping", "--wait", "2",
                            "--watch")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "HOME": os.fspath(open_tmp_path)})
        peer.settimeout(20)
        data, source = peer.recvfrom(100)
        peer.sendto(b"pong", source)
        stdout, stderr = command.communicate(timeout=30)
    assert data == b"ping"
    assert command.returncode == 0, (stdout, stderr)
    assert f"[127.0.0.1:{port}]".encode() in stdout and b"pong" in stdout
    output = (stdout + stderr).decode(errors="replace")
    why = [line for line in output.splitlines() if "watch" in line.lower()]
    assert len(why) == 1, output
    assert b"Traceback" not in stderr
