"""Real TCP traffic on `lo`, recorded by tcpdump (started by the test, stopped by PID),
then analyzed: the truth is the bytes the programs actually sent."""

from __future__ import annotations

import hashlib
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.support.procs import start_process, stop_process
from tests.support.sniff import Tcpdump
from tests.tcp.craft_tcp import analyze, analyze_one

pytestmark = pytest.mark.root


def _prerequisites() -> None:
    require_root()
    require_tool("tcpdump")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _recv_all(conn: socket.socket) -> bytes:
    chunks = []
    while data := conn.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_python_client_and_server_exchange(tmp_path: Path) -> None:
    _prerequisites()
    rng = random.Random(3)
    request, reply = rng.randbytes(300_000), rng.randbytes(150_000)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            received.append(_recv_all(conn))  # until the client's FIN
            conn.sendall(reply)
        server.close()

    path = tmp_path / "exchange.pcap"
    with Tcpdump(path, f"tcp port {port}"):
        thread = threading.Thread(target=serve)
        thread.start()
        client = socket.create_connection(("127.0.0.1", port))
        client_port = client.getsockname()[1]
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)  # the client closes first (active close)
        answer = _recv_all(client)
        client.close()
        thread.join(timeout=10)
    assert received == [request] and answer == reply

    result = analyze_one(path)
    assert result.client.endpoint == f"127.0.0.1:{client_port}"
    assert result.server.endpoint == f"127.0.0.1:{port}"
    assert (result.handshake, result.close, result.active_closer) == ("complete", "fin", "client")
    assert result.client.bytes == len(request) and result.server.bytes == len(reply)
    assert result.client.sha256 == hashlib.sha256(request).hexdigest()
    assert result.server.sha256 == hashlib.sha256(reply).hexdigest()
    assert result.gaps == [] and result.labels == []
    assert result.conn_state == "SF" and result.completeness == 31
    states = [(r.client_state, r.server_state) for r in result.records]
    assert states[:3] == [("SYN-SENT", "LISTEN"), ("ESTABLISHED", "SYN-RECEIVED"),
                          ("ESTABLISHED", "ESTABLISHED")]
    assert states[-1] == ("TIME-WAIT", "CLOSED")
    assert result.client.options.get("mss") and "wscale" in result.client.options


def test_refused_and_reset_connections(tmp_path: Path) -> None:
    _prerequisites()
    closed_port = _free_port()  # nothing listens there
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    path = tmp_path / "resets.pcap"
    with Tcpdump(path, f"tcp port {closed_port} or tcp port {port}"):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", closed_port), timeout=5)
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        client.sendall(b"about to reset")
        assert conn.recv(100) == b"about to reset"
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # linger 0: RST instead of FIN
        time.sleep(0.1)
        conn.close()
        server.close()
    refused, reset = analyze(path)
    assert refused.server.endpoint == f"127.0.0.1:{closed_port}"
    assert refused.labels == ["refused"] and refused.conn_state == "REJ"
    assert (refused.handshake, refused.close) == ("incomplete", "rst")
    assert reset.labels == ["reset-by-client"] and reset.close == "rst"
    assert reset.client_data() == b"about to reset"
    assert reset.conn_state == "RSTO"
    assert list(reset.records)[-1].client_state == "CLOSED"


def test_curl_against_http_server(tmp_path: Path) -> None:
    _prerequisites()
    curl = require_tool("curl")
    content = random.Random(5).randbytes(200_000)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "known.bin").write_bytes(content)
    port = _free_port()
    proc = start_process([sys.executable, "-m", "http.server", str(port), "--bind",
                          "127.0.0.1", "--directory", str(tmp_path / "www")],
                         tmp_path / "http.log")
    try:
        deadline = time.monotonic() + 10
        while True:  # ready when it accepts (before the capture starts)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        path = tmp_path / "http.pcap"
        with Tcpdump(path, f"tcp port {port}"):
            fetched = subprocess.run([curl, "-s", "--http1.1",
                                      f"http://127.0.0.1:{port}/known.bin"],
                                     capture_output=True, timeout=30, check=True).stdout
    finally:
        stop_process(proc)
    assert fetched == content
    result = analyze_one(path)
    assert result.client_data().startswith(b"GET /known.bin HTTP/1.1\r\n")
    head, _, body = result.server_data().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and body == content
    assert (result.handshake, result.close) == ("complete", "fin")
    assert result.server.sha256 == hashlib.sha256(result.server_data()).hexdigest()
    assert result.gaps == []
