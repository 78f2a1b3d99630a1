"""Unusable input to the UDP and TCP active modes: exit 2, one line on stderr, no traceback.

Host names are resolved only inside an empty network namespace (just `lo`), so a lookup
can never leave the machine: there the resolver is unreachable and the name is unknown.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.active.cli import analyzer_argv, assert_one_line_error, free_port, run
from tests.conftest import require_root, require_tool
from tests.support.netns import NetLab

UNKNOWN_HOST = "no-such-host.invalid"  # RFC 6761: .invalid never resolves


@pytest.fixture(scope="module")
def isolated() -> Iterator[NetLab]:
    """A lab whose switch namespace has only `lo`: nothing there reaches any network."""
    require_root()
    with NetLab() as lab:
        yield lab


def in_namespace(lab: NetLab, namespace: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(lab.exec_argv(namespace, analyzer_argv(*args)),
                          capture_output=True, timeout=60, check=False)


@pytest.mark.root
@pytest.mark.parametrize("args", [
    ["udp", "send", UNKNOWN_HOST, "9999", "hi"],
    ["tcp", "connect", UNKNOWN_HOST, "9999"],
    ["udp", "chat", "40000", f"{UNKNOWN_HOST}:9999"],
], ids=["udp-send", "tcp-connect", "udp-chat"])
def test_unknown_host(isolated: NetLab, args: list[str]) -> None:
    line = assert_one_line_error(in_namespace(isolated, isolated.switch, *args))
    assert UNKNOWN_HOST in line


@pytest.mark.parametrize("args", [
    ["udp", "send", "127.0.0.1", "70000", "hi"],
    ["udp", "send", "127.0.0.1", "port", "hi"],
    ["udp", "listen", "-1"],
    ["tcp", "connect", "127.0.0.1", "0"],
    ["tcp", "serve", "65536"],
    ["udp", "chat", "40000", "127.0.0.1"],  # no :PORT
], ids=["send-70000", "send-word", "listen-negative", "connect-0", "serve-65536",
        "chat-no-port"])
def test_bad_port(args: list[str]) -> None:
    assert_one_line_error(run(*args, timeout=20))


@pytest.mark.root
def test_no_broadcast_address_on_an_interface_without_ipv4(isolated: NetLab) -> None:
    """An interface, up, with no address at all, inside the isolated namespace (an empty
    bridge: the dummy module may be missing in containers)."""
    subprocess.run(["ip", "-n", isolated.switch, "link", "add", "noaddr0", "type", "bridge"],
                   check=True, capture_output=True)
    subprocess.run(["ip", "-n", isolated.switch, "link", "set", "noaddr0", "up"],
                   check=True, capture_output=True)
    done = in_namespace(isolated, isolated.switch, "udp", "broadcast", "7788", "hi",
                        "-i", "noaddr0", "--wait", "0.5")
    line = assert_one_line_error(done)
    assert "noaddr0" in line and "broadcast" in line.lower()


def test_udp_listen_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        done = run("udp", "listen", port, "--bind", "127.0.0.1", "--duration", "1",
                   timeout=20)
    assert str(port) in assert_one_line_error(done)


def test_udp_chat_local_port_in_use() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", 0))
        port = holder.getsockname()[1]
        done = run("udp", "chat", port, f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
                   timeout=20)
    assert_one_line_error(done)


@pytest.mark.root
@pytest.mark.parametrize("args", [
    ["udp", "listen", "80", "--bind", "127.0.0.1", "--duration", "1"],
    ["tcp", "serve", "80", "--bind", "127.0.0.1", "-c", "1"],
], ids=["udp-listen", "tcp-serve"])
def test_privileged_port_as_nobody(open_tmp_path: Path, args: list[str]) -> None:
    require_root()
    setpriv = require_tool("setpriv")
    done = subprocess.run(
        [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "--inh-caps=-all", "--bounding-set=-all", *analyzer_argv(*args)],
        capture_output=True, timeout=60, check=False,
        env={**os.environ, "HOME": os.fspath(open_tmp_path)})
    line = assert_one_line_error(done)
    assert "80" in line
