"""The session layer (analyzer/run/session.py): a driver runs while a real capture on `lo`
watches exactly its own traffic. Checked against tshark on the session's own -w file and
against what the driver itself sent and received; other traffic on the same interface
at the same time must not get in."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Sequence

import pytest

from analyzer.run.session import Endpoint, interface_for, run_session, watch_filter
from tests.conftest import require_root, require_tool
from tests.oracle import tshark_fields


@pytest.fixture
def live() -> None:
    require_root()
    require_tool("tshark")


class EchoServer:
    """A plain socket TCP server on 127.0.0.1 that echoes one connection (independent of
    the code under test)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.close()
        self.thread.join(timeout=5)


class EchoClient:
    """A minimal driver: connect, send `payload`, read it back, close."""

    def __init__(self, port: int, payload: bytes) -> None:
        self.port = port
        self.payload = payload
        self.sock: socket.socket | None = None

    def bind(self) -> Sequence[Endpoint]:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return [Endpoint("tcp", self.sock.getsockname(), ("127.0.0.1", self.port))]

    def run(self, cancel: threading.Event) -> bytes:
        assert self.sock is not None
        with self.sock:
            self.sock.connect(("127.0.0.1", self.port))
            self.sock.sendall(self.payload)
            self.sock.shutdown(socket.SHUT_WR)
            received = b""
            while data := self.sock.recv(65536):
                received += data
        return received


def test_filter_and_interface_come_from_the_endpoints() -> None:
    endpoints = [Endpoint("udp", ("127.0.0.1", 5000), ("127.0.0.2", 69)),
                 Endpoint("tcp", ("0.0.0.0", 8080))]
    assert watch_filter(endpoints) == "udp port 5000 or tcp port 8080 or icmp or icmp6"
    assert interface_for(endpoints[:1]) == "lo"
    assert interface_for([Endpoint("udp", ("::1", 5000), ("::1", 69))]) == "lo"
    # a listener on every address may be reached through any interface
    assert interface_for(endpoints[1:]) == "any"


@pytest.mark.root
def test_session_watches_exactly_its_own_connection(live, tmp_path) -> None:
    server = EchoServer()
    noise = EchoServer()  # another connection on lo at the same time: not ours
    payload = bytes(range(256)) * 40
    out = tmp_path / "evidence.pcapng"
    stop_noise = threading.Event()

    def make_noise() -> None:
        with socket.create_connection(("127.0.0.1", noise.port)) as conn:
            while not stop_noise.is_set():
                conn.sendall(b"noise")
                conn.recv(100)

    noisy = threading.Thread(target=make_noise, daemon=True)
    noisy.start()
    try:
        result = run_session(EchoClient(server.port, payload), watch=True, write=str(out))
    finally:
        stop_noise.set()
        noisy.join(timeout=5)
        server.close()
        noise.close()
    assert result.outcome == payload
    assert result.analysis is not None and result.interface == "lo"
    streams = result.analysis.tcp.results()
    assert len(streams) == 1
    stream = streams[0]
    assert stream.server.endpoint == f"127.0.0.1:{server.port}"
    assert stream.client.sha256 == hashlib.sha256(payload).hexdigest()
    assert stream.server.sha256 == hashlib.sha256(payload).hexdigest()
    assert stream.handshake == "complete" and stream.close == "fin"
    # tshark reads the session's evidence file: the same single connection, every packet
    rows = tshark_fields(out, ["tcp.stream", "tcp.srcport", "tcp.dstport"])
    assert {row["tcp.stream"] for row in rows} == {"0"}
    assert all(str(server.port) in (row["tcp.srcport"], row["tcp.dstport"]) for row in rows)
    assert len(rows) == stream.packets
    assert result.analysis.capture.stats.packets == len(rows)


@pytest.mark.root
def test_without_permission_the_driver_runs_and_says_why(live, open_tmp_path) -> None:
    """As `nobody` (no CAP_NET_RAW) a watched command still does its exchange, and one
    line says why there is no watch."""
    import subprocess
    import sys

    setpriv = require_tool("setpriv")
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    home = open_tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    try:
        done = subprocess.run(
            [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m", "analyzer",
             "udp", "send", "127.0.0.1", str(port), "hello", "--wait", "0", "--watch"],
            capture_output=True, text=True, timeout=60, env={"HOME": str(home),
                                                              "PATH": "/usr/bin:/bin"})
        listener.settimeout(5)
        data, _ = listener.recvfrom(100)
    finally:
        listener.close()
    assert data == b"hello"
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no watch" in lines[0], done.stderr
    assert "CAP_NET_RAW" in lines[0] or "root" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.root
def test_sniff_any_sees_loopback_traffic_like_tcpdump(live, tmp_path) -> None:
    """`sniff -i any` captures every interface (it used to see only the default route's):
    datagrams on lo arrive, with the same payloads tcpdump -i any records."""
    import subprocess
    import sys
    import time

    from tests.support.sniff import Tcpdump

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    out = tmp_path / "any.pcapng"
    sniffer = subprocess.Popen([sys.executable, "-m", "analyzer", "sniff", "-i", "any", "-f",
                                f"udp port {port}", "-c", "5", "--json", "-w", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)  # the packet socket is open well before this
        with Tcpdump(tmp_path / "tcpdump.pcap", f"udp port {port}", interface="any"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for number in range(5):
                    sender.sendto(b"datagram %d" % number, ("127.0.0.1", port))
                    time.sleep(0.05)
        stdout, stderr = sniffer.communicate(timeout=30)
    finally:
        if sniffer.poll() is None:
            sniffer.kill()
            sniffer.communicate()
        receiver.close()
    assert sniffer.returncode == 0, stderr
    ours = [row["data.data"] for row in tshark_fields(out, ["data.data"])]
    theirs = [row["data.data"] for row in tshark_fields(tmp_path / "tcpdump.pcap",
                                                        ["data.data"])]
    assert ours == theirs == [(b"datagram %d" % n).hex() for n in range(5)]
    assert '"udp": 5' in stdout
