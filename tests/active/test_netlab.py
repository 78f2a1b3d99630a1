"""The namespace lab itself (tests/support/netns.py): private, working, and cleaned up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import require_root, require_tool
from tests.support.netns import NetLab, existing_namespaces

pytestmark = pytest.mark.root


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                          check=True).stdout


def host_addresses() -> str:
    return subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                          check=True).stdout


def test_the_lab_leaves_the_host_as_it_was_even_when_the_test_fails() -> None:
    require_root()
    links, addresses = host_links(), host_addresses()
    with pytest.raises(RuntimeError, match="on purpose"), NetLab() as lab:
        lan = lab.add_bridge("lan")
        lab.add_host("a", lan, "10.60.0.1/24")
        proc = lab.start("switch", ["sleep", "60"])
        assert {name for name in existing_namespaces() if name.startswith(lab.tag)} == {
            f"{lab.tag}-switch", f"{lab.tag}-a"}
        assert host_links() == links and host_addresses() == addresses
        raise RuntimeError("on purpose")
    assert proc.returncode is not None  # stopped by PID
    assert not {name for name in existing_namespaces() if name.startswith(lab.tag)}
    assert host_links() == links and host_addresses() == addresses


def test_a_limited_broadcast_crosses_the_bridge_to_every_host() -> None:
    """A plain Python sender and socat responders: the lab delivers the limited broadcast
    to both hosts on the bridge, and they answer from their own addresses."""
    require_root()
    require_tool("socat")
    sender_code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n"
        "s.settimeout(2)\n"
        "s.sendto(b'hello', ('255.255.255.255', 7788))\n"
        "seen = set()\n"
        "try:\n"
        "    while True:\n"
        "        data, peer = s.recvfrom(100)\n"
        "        seen.add((peer[0], data.decode()))\n"
        "except TimeoutError:\n"
        "    pass\n"
        "print(sorted(seen))\n"
    )
    with NetLab() as lab:
        lan = lab.add_bridge("lan")
        sender = lab.add_host("sender", lan, "10.60.0.1/24")
        for index in (2, 3):
            host = lab.add_host(f"h{index}", lan, f"10.60.0.{index}/24")
            proc = lab.start(host, ["socat", "UDP4-RECVFROM:7788,fork",
                                    f"SYSTEM:cat >/dev/null; printf h{index}"])
            lab.wait_udp_bound(host, 7788, proc)
        done = lab.run(sender, [sys.executable, "-c", sender_code])
    assert done.stdout.strip() == "[('10.60.0.2', 'h2'), ('10.60.0.3', 'h3')]", done
