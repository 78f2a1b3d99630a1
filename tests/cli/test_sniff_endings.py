"""How `analyzer sniff` ends: the interface going away, SIGKILL, and hostile interface
names.

- An interface brought down or deleted mid-capture (a veth inside network namespaces
  this test creates, tests/support/netns.py) ends the capture with the report of what
  was seen, `"ended": "interface lost"`, one line on stderr and exit 1, never a
  traceback; the `-w` pcapng holds every packet, as tshark reads it.
- After SIGKILL the `-w` pcapng (flushed per packet) is readable by tshark with every
  packet the sniffer had taken, at most the last record cut short; `analyzer read`
  reads it too (with a warning when a record was cut).
- SIGINT and SIGTERM: the report says which signal ended the capture.
- An interface named with control characters or rich markup (Linux accepts any
  printable or control byte but space, `/` and `:`) is shown escaped, never raw.
Traffic goes only to 127.0.0.1 or to hosts inside the test's namespaces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_sniff import (
    ANALYZER,
    START_TIMEOUT,
    UdpSender,
    free_port,
    holds_packet_socket,
    tshark_count,
    udp_payloads,
)
from tests.conftest import require_root, require_tool
from tests.oracle import run_tshark
from tests.support.netns import Host, NetLab

pytestmark = pytest.mark.root

PORT = 9077
SEND_CODE = ("import socket, sys\n"
             "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
             "for i in range(int(sys.argv[2])):\n"
             "    s.sendto(b'datagram %06d' % i, (sys.argv[1], int(sys.argv[3])))\n")


def wait_capturing(proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"sniff exited {proc.returncode} before capturing: {err!r}")
        if holds_packet_socket(proc.pid):
            time.sleep(0.2)  # margin: the socket is bound only once its filter is attached
            return
        time.sleep(0.05)
    pytest.fail("sniff did not open a packet socket in time")


class Pair:
    """Two namespaces on a bridge: `a` sniffs on its interface, `b` is the peer."""

    def __init__(self, lab: NetLab, interface: str) -> None:
        lan = lab.add_bridge("lan")
        self.lab = lab
        self.a: Host = lab.add_host("a", lan, "10.77.0.1/24", interface=interface)
        self.b: Host = lab.add_host("b", lan, "10.77.0.2/24")

    def sniff(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.lab.exec_argv(self.a, [*ANALYZER, "sniff", *args]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "COLUMNS": "200"})
        self.lab.processes.append(proc)  # stopped by PID when the lab closes
        return proc

    def send_from_a(self, count: int) -> None:
        """`count` datagrams from a to b (a host inside the lab)."""
        self.lab.run(self.a, [sys.executable, "-c", SEND_CODE, self.b.address, str(count),
                              str(PORT)])


@pytest.fixture
def pair() -> Iterator[Pair]:
    require_root()
    require_tool("ip")
    with NetLab() as lab:  # deletes its namespaces (and so the interfaces) on the way out
        yield Pair(lab, "eth0")


@pytest.mark.parametrize("how", ["down", "delete"])
def test_interface_lost_mid_capture_keeps_the_report(pair: Pair, tmp_path: Path,
                                                      how: str) -> None:
    require_tool("tshark")
    out = tmp_path / "lost.pcapng"
    proc = pair.sniff("-i", "eth0", "-f", f"udp port {PORT}", "--json", "-w", str(out))
    wait_capturing(proc)
    pair.send_from_a(5)
    time.sleep(0.5)
    if how == "down":
        pair.lab.run(pair.a, ["ip", "link", "set", "eth0", "down"])
    else:
        pair.lab.run(pair.a, ["ip", "link", "delete", "eth0"])
    stdout, stderr = proc.communicate(timeout=30)
    text = stderr.decode()
    assert proc.returncode == 1, text
    assert "Traceback" not in text
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "eth0" in lines[0] and "went away" in lines[0], text
    summary = json.loads(stdout.decode().splitlines()[-1])
    assert summary["type"] == "capture"
    assert summary["ended"] == "interface lost"
    assert summary["packets"] == 5
    assert any("eth0" in warning and "went away" in warning
               for warning in summary["warnings"]), summary["warnings"]
    assert tshark_count(out) == 5
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(5)]


def test_interface_lost_with_the_table_report(pair: Pair) -> None:
    proc = pair.sniff("-i", "eth0", "-f", f"udp port {PORT}")
    wait_capturing(proc)
    pair.send_from_a(3)
    time.sleep(0.5)
    pair.lab.run(pair.a, ["ip", "link", "delete", "eth0"])
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1, stderr
    report = stdout.decode()
    assert "interface lost" in report and "went away" in report, report
    assert "Traceback" not in stderr.decode()
    assert len(stderr.decode().strip().splitlines()) == 1


# -- hostile interface names -----------------------------------------------------

@pytest.mark.parametrize("name, shown", [
    ("\x1b]0;pwn\x07", "\\x1b]0;pwn\\x07"),  # OSC: would retitle the terminal
    ("\x1b[2Jx", "\\x1b[2Jx"),  # CSI: would clear the screen
    ("[bold]x", "[bold]x"),  # rich markup: must show as text
], ids=["osc", "csi", "markup"])
def test_interface_names_are_shown_escaped(name: str, shown: str) -> None:
    require_root()
    with NetLab() as lab:
        pair = Pair(lab, name)
        proc = pair.sniff("-i", name, "-f", f"udp port {PORT}", "-c", "2")
        wait_capturing(proc)
        pair.send_from_a(2)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        report = stdout.decode()
        assert f"#0 {shown} ethernet (2)" in report, report
        listing = lab.run(pair.a, [*ANALYZER, "interfaces"],
                          env={**os.environ, "COLUMNS": "200"}).stdout
        assert shown in listing, listing
        # the name from the system, in JSON: exact (JSON escapes control characters)
        done = lab.run(pair.a, [*ANALYZER, "interfaces", "--json"])
        assert name in {json.loads(line)["name"] for line in done.stdout.splitlines()}
        # an error message quoting the name
        missing = lab.run(pair.a, [*ANALYZER, "sniff", "-i", name + "z", "-c", "1"],
                          check=False)
        assert missing.returncode == 2
        assert missing.stderr.strip().splitlines() == [
            f"analyzer: {shown}z: no such interface (`analyzer interfaces` lists them)"]
        for output in (report, stderr.decode(), listing, missing.stderr):
            assert "\x1b" not in output and "\x07" not in output


# -- SIGKILL, SIGINT, SIGTERM on lo ------------------------------------------------

@pytest.fixture
def udp_sender() -> Iterator[UdpSender]:
    sender = UdpSender(free_port())
    yield sender
    sender.close()


def tshark_complaints(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith("Running as user")]


def lo_sniffer(port: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*ANALYZER, "sniff", "-i", "lo", "-f", f"udp port {port}",
                             "--json", "-w", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_packets(path: Path, count: int, timeout: float = 20.0) -> None:
    """Until the file holds `count` packets, as tshark reads it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(run_tshark(path, ["frame.number"]).rows) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"{path} did not reach {count} packets")


def test_sigkill_leaves_every_taken_packet_readable(udp_sender, tmp_path: Path) -> None:
    require_root()
    require_tool("tshark")
    out = tmp_path / "killed.pcapng"
    proc = lo_sniffer(udp_sender.port, out)
    try:
        wait_capturing(proc)
        udp_sender.send(25, gap=0.002)
        wait_for_packets(out, 25)  # written per packet: no need to stop the sniffer
    finally:
        proc.kill()  # SIGKILL, by PID
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    result = run_tshark(out, ["frame.number"])
    assert result.returncode == 0 and not tshark_complaints(result.stderr), result.stderr
    assert len(result.rows) == 25
    assert udp_payloads(out) == [b"datagram %06d" % i for i in range(25)]
    done = subprocess.run([*ANALYZER, "read", str(out), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["packets"] == 25


def test_sigkill_during_a_flood_leaves_a_file_read_up_to_the_last_record(
        udp_sender, tmp_path: Path) -> None:
    """Killed at an arbitrary moment while packets pour in: tshark reads the file with
    at most the last record cut short, and `read` agrees with it (a warning if cut)."""
    require_root()
    require_tool("tshark")
    out = tmp_path / "flood.pcapng"
    proc = lo_sniffer(udp_sender.port, out)
    try:
        wait_capturing(proc)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            udp_sender.send(50)
    finally:
        proc.kill()
        proc.communicate()
    result = run_tshark(out, ["frame.number"])
    cut = "cut short" in result.stderr
    assert not tshark_complaints(result.stderr) or cut, result.stderr
    assert len(result.rows) > 0
    done = subprocess.run([*ANALYZER, "read", str(out), "--json"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["packets"] == len(result.rows)
    assert bool(summary["warnings"]) == cut, summary["warnings"]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_signal_is_named_in_the_report_and_the_file_is_complete(udp_sender, tmp_path: Path,
                                                                 stop_signal) -> None:
    require_root()
    capinfos = require_tool("capinfos")
    out = tmp_path / "signal.pcapng"
    proc = lo_sniffer(udp_sender.port, out)
    wait_capturing(proc)
    udp_sender.send(10, gap=0.002)
    time.sleep(0.5)
    proc.send_signal(stop_signal)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.decode().splitlines()[-1])
    assert summary["ended"] == f"signal {stop_signal.name}"
    assert summary["packets"] == 10
    info = subprocess.run([capinfos, "-c", "-M", str(out)], capture_output=True, text=True,
                          timeout=60)
    assert info.returncode == 0, info.stderr
    assert "Number of packets:   10" in info.stdout.replace("= ", ""), info.stdout


# -- bursts: the ring holds them ---------------------------------------------------

@pytest.mark.slow
def test_a_burst_of_200k_datagrams_is_captured_whole(udp_sender, tmp_path: Path) -> None:
    """200,000 datagrams as fast as Python sends them (400,000 frames on lo, counting the
    outgoing copies the kernel also delivers): the 64 MiB ring holds them even while the
    analysis lags, where a socket buffer overflowed (benchmarks/live_capture.py)."""
    require_root()
    proc = subprocess.Popen([*ANALYZER, "sniff", "-i", "lo", "-f", f"udp port {udp_sender.port}",
                             "--json", "-c", "200000", "--duration", "40"],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        wait_capturing(proc)
        udp_sender.send(200000)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.decode().splitlines()[-1])
    assert summary["packets"] == 200000
    assert summary["interfaces"][0]["dropped"] == 0
    assert summary["protocols"]["udp"] == 200000
