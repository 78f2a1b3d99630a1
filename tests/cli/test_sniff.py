"""`analyzer sniff` on `lo` with real traffic the test sends to 127.0.0.1.

The sniffer runs as a subprocess (root). The test knows when it may send: once the
process holds an AF_PACKET socket (listed in /proc/net/packet), the kernel filter is
attached and every later packet on `lo` reaches it. Results are checked against what
was sent, and the pcapng written with -w against tshark.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require_root, require_tool
from tests.oracle import run_tshark

ANALYZER = [sys.executable, "-m", "analyzer"]
START_TIMEOUT = 20.0


@pytest.fixture
def live() -> None:
    """Sniffing needs root; checking the written pcapng needs tshark."""
    require_root()
    require_tool("tshark")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def holds_packet_socket(pid: int) -> bool:
    """The process holds an AF_PACKET socket that receives (listed in its own network
    namespace with a protocol and R(unning) 1: bound, so its filter is attached)."""
    try:
        with open(f"/proc/{pid}/net/packet") as table:
            # sk RefCnt Type Proto Iface R Rmem User Inode
            inodes = {fields[-1] for fields in map(str.split, table.readlines()[1:])
                      if len(fields) >= 9 and int(fields[3], 16) and fields[5] == "1"}
        fds = os.listdir(f"/proc/{pid}/fd")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


class Sniffer:
    """`analyzer sniff ARGS` as a subprocess; started() returns once it captures."""

    def __init__(self, *args: str, user: list[str] | None = None,
                 home: Path | None = None) -> None:
        self.argv = [*(user or []), *ANALYZER, "sniff", *args]
        env = dict(os.environ)
        if home is not None:  # another user needs a HOME it may write (scapy's cache)
            env["HOME"] = str(home)
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.stdout = ""
        self.stderr = ""

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.communicate()
                pytest.fail(f"sniff exited {self.proc.returncode} before capturing: "
                            f"{self.stderr.strip()}")
            if holds_packet_socket(self.proc.pid):
                time.sleep(0.2)  # margin: the socket is bound only once its filter is attached
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail("sniff did not open a packet socket in time")

    def communicate(self, timeout: float = 30.0) -> int:
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"sniff did not finish within {timeout} s")
        return self.proc.returncode

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()  # by PID: only the process this test started
            self.stdout, self.stderr = self.proc.communicate()

    def json_objects(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def capture_object(self) -> dict:
        objects = self.json_objects()
        assert objects and objects[-1]["type"] == "capture", self.stdout[-2000:]
        return objects[-1]


@pytest.fixture
def sniffers():
    started: list[Sniffer] = []

    def start(*args: str, user: list[str] | None = None, home: Path | None = None) -> Sniffer:
        sniffer = Sniffer(*args, user=user, home=home)
        started.append(sniffer)
        return sniffer

    yield start
    for sniffer in started:
        sniffer.stop()


class UdpSender:
    """Numbered datagrams to 127.0.0.1:port (a receiver is bound, so no ICMP errors)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.receiver.bind(("127.0.0.1", port))
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sent = 0

    def send(self, count: int = 1, gap: float = 0.0) -> None:
        for _ in range(count):
            self.sender.sendto(b"datagram %06d" % self.sent, ("127.0.0.1", self.port))
            self.sent += 1
            if gap:
                time.sleep(gap)

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()


@pytest.fixture
def udp_sender():
    sender = UdpSender(free_port())
    yield sender
    sender.close()


def tshark_count(path: Path, display_filter: str | None = None) -> int:
    result = run_tshark(path, ["frame.number"], display_filter)
    assert "cut short" not in result.stderr and "corrupt" not in result.stderr, result.stderr
    return len(result.rows)


def udp_payloads(path: Path) -> list[bytes]:
    rows = run_tshark(path, ["udp.payload"], "udp").rows
    return [bytes.fromhex(row["udp.payload"].replace(":", "")) for row in rows]


# -- stopping by count, duration, signal -----------------------------------------

@pytest.mark.root
def test_count_stops_after_n_packets_and_writes_pcapng(live, sniffers, udp_sender,
                                                        tmp_path) -> None:
    out = tmp_path / "count.pcapng"
    sniffer = sniffers("-i", "lo", "-f", f"udp port {udp_sender.port}", "-c", "5", "--json",
                       "-w", str(out))
    sniffer.wait_ready()
    udp_sender.send(8, gap=0.02)  # more than -c: the sniffer must stop at 5
    assert sniffer.communicate() == 0, sniffer.stderr
    summary = sniffer.capture_object()
    assert summary["packets"] == 5
    assert summary["protocols"].get("udp") == 5
    assert summary["link_types"] == {"ethernet": 5}
    assert summary["interfaces"][0]["name"] == "lo"
    assert isinstance(summary["interfaces"][0]["dropped"], int)
    assert summary["warnings"] == []
    assert tshark_count(out) == 5
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(5)]
    names = {row["frame.interface_name"] for row in run_tshark(out, ["frame.interface_name"]).rows}
    assert names == {"lo"}


@pytest.mark.root
def test_duration_stops_in_time_and_keeps_every_packet(live, sniffers, udp_sender,
                                                        tmp_path) -> None:
    out = tmp_path / "duration.pcapng"
    sniffer = sniffers("-i", "lo", "-f", f"udp port {udp_sender.port}", "--duration", "2",
                       "--json", "-w", str(out))
    sniffer.wait_ready()
    started = time.monotonic()
    udp_sender.send(10, gap=0.05)
    assert sniffer.communicate() == 0, sniffer.stderr
    assert time.monotonic() - started < 2 + 5
    summary = sniffer.capture_object()
    assert summary["packets"] == 10
    assert summary["duration"] <= 2.0
    assert tshark_count(out) == 10
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(10)]
    # Timestamps in the JSON come from the same clock tshark reads from the pcapng.
    times = [float(r["frame.time_epoch"]) for r in run_tshark(out, ["frame.time_epoch"]).rows]
    assert summary["first"] == pytest.approx(times[0], abs=1e-6)
    assert summary["last"] == pytest.approx(times[-1], abs=1e-6)


@pytest.mark.root
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_complete_pcapng_and_report(live, sniffers, udp_sender, tmp_path,
                                                  stop_signal) -> None:
    out = tmp_path / "signal.pcapng"
    sniffer = sniffers("-i", "lo", "-f", f"udp port {udp_sender.port}", "--json",
                       "-w", str(out))
    sniffer.wait_ready()
    udp_sender.send(20, gap=0.005)
    time.sleep(0.5)
    sniffer.proc.send_signal(stop_signal)
    assert sniffer.communicate() == 0, sniffer.stderr
    assert "Traceback" not in sniffer.stderr
    summary = sniffer.capture_object()
    assert summary["packets"] == 20
    assert tshark_count(out) == 20
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(20)]


@pytest.mark.root
def test_sigterm_right_after_a_burst_keeps_what_the_kernel_captured(live, sniffers,
                                                                    udp_sender,
                                                                    tmp_path) -> None:
    """Loopback delivery is synchronous: when sendto() returns, the datagram is already
    queued on the sniffer's packet socket. SIGTERM right after a burst must still report
    and save all of them (drain the socket before stopping), not only those read so far."""
    out = tmp_path / "burst.pcapng"
    sniffer = sniffers("-i", "lo", "-f", f"udp port {udp_sender.port}", "--json",
                       "-w", str(out))
    sniffer.wait_ready()
    # 30 datagrams (60 frames with lo's outgoing copies) fit the default socket buffer.
    udp_sender.send(30)
    sniffer.proc.send_signal(signal.SIGTERM)
    assert sniffer.communicate() == 0, sniffer.stderr
    summary = sniffer.capture_object()
    assert summary["interfaces"][0]["dropped"] == 0
    assert summary["packets"] == 30
    assert tshark_count(out) == 30


def _flood(sender: UdpSender, stop: threading.Event) -> None:
    while not stop.is_set():
        sender.send(50)
        time.sleep(0.001)


@pytest.mark.root
@pytest.mark.slow
def test_sigterm_during_a_flood_still_leaves_a_readable_pcapng(live, sniffers, udp_sender,
                                                              tmp_path) -> None:
    """SIGTERM at an arbitrary moment while packets pour in: the file must still be
    complete (no half-written block) and hold what the report counted."""
    for attempt in range(3):
        out = tmp_path / f"flood-{attempt}.pcapng"
        sniffer = sniffers("-i", "lo", "-f", f"udp port {udp_sender.port}", "--json",
                           "-w", str(out))
        sniffer.wait_ready()
        stop_sending = threading.Event()
        flooder = threading.Thread(target=_flood, args=(udp_sender, stop_sending))
        flooder.start()
        time.sleep(0.3 + 0.17 * attempt)
        sniffer.proc.send_signal(signal.SIGTERM)
        returncode = sniffer.communicate()
        stop_sending.set()
        flooder.join()
        assert returncode == 0, sniffer.stderr
        summary = sniffer.capture_object()
        assert summary["packets"] > 0
        assert tshark_count(out) == summary["packets"]


# -- TCP: the same report as for a file ----------------------------------------------

@pytest.mark.root
def test_tcp_exchange_is_reported_like_a_file(live, sniffers, tmp_path) -> None:
    port = free_port(socket.SOCK_STREAM)
    out = tmp_path / "tcp.pcapng"
    listener = socket.create_server(("127.0.0.1", port))
    sniffer = sniffers("-i", "lo", "-f", f"tcp port {port}", "--duration", "3", "--json",
                       "-w", str(out))
    sniffer.wait_ready()
    request, reply = b"ping from the client\n", b"pong from the server, a bit longer\n"

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            assert conn.recv(100) == request
            conn.sendall(reply)
            while conn.recv(100):
                pass

    server = threading.Thread(target=serve)
    server.start()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(request)
        assert client.recv(100) == reply
        client.shutdown(socket.SHUT_WR)
        assert client.recv(100) == b""
    server.join(5)
    listener.close()
    assert sniffer.communicate() == 0, sniffer.stderr
    objects = sniffer.json_objects()
    streams = [o for o in objects if o["type"] == "tcp_stream"]
    assert len(streams) == 1
    stream = streams[0]
    assert stream["server"] == f"127.0.0.1:{port}"
    assert stream["handshake"] == "complete"
    assert stream["close"] == "fin"
    assert (stream["client_bytes"], stream["server_bytes"]) == (len(request), len(reply))
    summary = objects[-1]
    assert summary["packets"] == tshark_count(out)
    assert summary["packets"] == stream["packets"]
    # The saved pcapng read back gives the same TCP report as the live run.
    done = subprocess.run([*ANALYZER, "read", str(out), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    from_file = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [o for o in from_file if o["type"] == "tcp_stream"] == streams
    assert from_file[-1]["packets"] == summary["packets"]


@pytest.mark.root
def test_ipv6_loopback_datagrams(live, sniffers, tmp_path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as receiver:
        try:
            receiver.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 is not configured on lo")
        port = receiver.getsockname()[1]
        out = tmp_path / "v6.pcapng"
        sniffer = sniffers("-i", "lo", "-f", f"udp port {port}", "-c", "3", "--json",
                           "-w", str(out))
        sniffer.wait_ready()
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sender:
            for i in range(3):
                sender.sendto(b"v6 datagram %d" % i, ("::1", port))
                time.sleep(0.02)
        assert sniffer.communicate() == 0, sniffer.stderr
    summary = sniffer.capture_object()
    assert summary["packets"] == 3
    assert summary["protocols"].get("ipv6") == 3
    assert summary["protocols"].get("udp") == 3
    rows = run_tshark(out, ["ipv6.src", "udp.dstport"]).rows
    assert [(r["ipv6.src"], r["udp.dstport"]) for r in rows] == [("::1", str(port))] * 3


# -- refusing to start -------------------------------------------------------------

def test_unknown_interface_exits_2_with_one_line(sniffers) -> None:
    sniffer = sniffers("-i", "nosuchif0", "-c", "1")
    assert sniffer.communicate() == 2
    lines = sniffer.stderr.strip().splitlines()
    assert len(lines) == 1, sniffer.stderr
    assert "nosuchif0" in lines[0]
    assert "Traceback" not in sniffer.stderr


@pytest.mark.root
def test_without_root_exits_2_with_one_line(live, sniffers, open_tmp_path) -> None:
    setpriv = require_tool("setpriv")
    home = open_tmp_path / "home"
    home.mkdir()
    home.chmod(0o777)
    sniffer = sniffers("-i", "lo", "-c", "1", home=home, user=[
        setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all"])
    assert sniffer.communicate() == 2, sniffer.stderr
    lines = sniffer.stderr.strip().splitlines()
    assert len(lines) == 1, sniffer.stderr
    assert "root" in lines[0] or "permission" in lines[0].lower() or "CAP_NET_RAW" in lines[0]
    assert "Traceback" not in sniffer.stderr


@pytest.mark.root
@pytest.mark.parametrize("args, mentions", [
    (["-c", "0"], "-c"),
    (["--duration", "-1"], "duration"),
    (["-c", "1", "-w", "/nonexistent-folder/out.pcapng"], "/nonexistent-folder/out.pcapng"),
    (["-c", "1", "-f", "udp port banana"], "banana"),
], ids=["zero-count", "negative-duration", "unwritable-output", "bad-filter"])
def test_unusable_options_exit_2_with_one_line(live, sniffers, args: list[str],
                                               mentions: str) -> None:
    sniffer = sniffers("-i", "lo", *args)
    assert sniffer.communicate() == 2, sniffer.stderr
    lines = sniffer.stderr.strip().splitlines()
    assert len(lines) == 1, sniffer.stderr
    assert mentions in lines[0]
    assert "Traceback" not in sniffer.stderr


# -- analyzer interfaces -----------------------------------------------------------

def test_interfaces_lists_lo() -> None:
    done = subprocess.run([*ANALYZER, "interfaces"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert any(line.split() and "lo" in line.split() for line in done.stdout.splitlines()), \
        done.stdout
    done = subprocess.run([*ANALYZER, "interfaces", "--json"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    names = {json.loads(line).get("name") for line in done.stdout.splitlines() if line.strip()}
    assert "lo" in names
    assert {name for _, name in socket.if_nameindex()} <= names


@pytest.mark.root
def test_live_view_on_a_terminal_and_final_report(live, udp_sender) -> None:
    """With stderr on a terminal the sniffer draws a live view there while it runs, and
    prints the same kind of report as `read` on stdout when it stops."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([*ANALYZER, "sniff", "-i", "lo", "-f", f"udp port {udp_sender.port}",
                             "--duration", "3"], stdout=subprocess.PIPE, stderr=follower,
                            text=True, env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(follower)
    drawn = b""
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not holds_packet_socket(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        udp_sender.send(6, gap=0.1)
        while True:
            ready, _, _ = select.select([leader], [], [], 10)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            drawn += chunk
        stdout, _ = proc.communicate(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert b"\x1b[" in drawn, drawn[:300]
    assert "packets" in stdout and "6" in stdout, stdout
