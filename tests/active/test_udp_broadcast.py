"""`udp broadcast` on a private LAN of network namespaces (tests/support/netns.py).

    switch namespace: bridge "lan" 10.50.1.254/24 and bridge "far" 10.50.2.254/24, routing
    lan:  sender 10.50.1.1, two `analyzer udp listen --reply` responders .2 and .3,
          one socat responder .4
    far:  an `analyzer udp listen --reply` responder 10.50.2.2 (default route back
          through the switch, so it could answer if a broadcast ever reached it)

The sender must list exactly the three replies from lan, with their source addresses. The
far responder is proven reachable by a unicast `udp send` first, so its silence after a
broadcast means the broadcast did not reach it (routers do not forward broadcasts), not
that it could not answer. A tcpdump inside the sender's namespace shows, through tshark,
where the datagram went. Nothing is sent on the host's interfaces.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.active.cli import analyzer_argv, describe, json_lines, of_type, tshark_rows
from tests.conftest import require_root, require_tool
from tests.support.netns import Host, NetLab, existing_namespaces
from tests.support.sniff import Tcpdump

pytestmark = [pytest.mark.root, pytest.mark.slow]

PORT = 7788  # the port of the original classroom program; namespaces are private
MESSAGE = "who is there?"
# One word for socat: its address syntax would eat the quotes around a space.
REPLIES = {"r1": "r1 here", "r2": "r2 here", "socat": "socat-here"}
WAIT_SECONDS = "2"


@dataclass
class Lan:
    lab: NetLab
    sender: Host
    responders: dict[str, Host]  # lan responders by name
    far: Host
    logs: Path


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    require_root()
    require_tool("socat")
    require_tool("tcpdump")
    require_tool("tshark")
    logs = tmp_path_factory.mktemp("broadcast-lan")
    with NetLab() as lab:
        lan_bridge = lab.add_bridge("lan", "10.50.1.254/24")
        far_bridge = lab.add_bridge("far", "10.50.2.254/24")
        sender = lab.add_host("sender", lan_bridge, "10.50.1.1/24")
        responders = {
            "r1": lab.add_host("r1", lan_bridge, "10.50.1.2/24"),
            "r2": lab.add_host("r2", lan_bridge, "10.50.1.3/24"),
            "socat": lab.add_host("socat", lan_bridge, "10.50.1.4/24"),
        }
        far = lab.add_host("far", far_bridge, "10.50.2.2/24")
        started = []
        for name in ("r1", "r2"):
            started.append((responders[name], lab.start(
                responders[name],
                analyzer_argv("udp", "listen", PORT, "--reply", REPLIES[name]),
                logs / f"{name}.log")))
        # socat hands each datagram to a child on its stdin and sends back what the
        # child prints; the child must read its input first, or socat's write of the
        # datagram fails (EPIPE) and no reply is sent.
        started.append((responders["socat"], lab.start(
            responders["socat"],
            ["socat", f"UDP4-RECVFROM:{PORT},fork",
             f"SYSTEM:cat >/dev/null; printf '{REPLIES['socat']}'"],
            logs / "socat.log")))
        started.append((far, lab.start(
            far, analyzer_argv("udp", "listen", PORT, "--reply", "far here"),
            logs / "far.log")))
        for host, proc in started:
            lab.wait_udp_bound(host, PORT, proc)
        yield Lan(lab, sender, responders, far, logs)
    assert not {name for name in existing_namespaces() if name.startswith(lab.tag)}


def sender_run(lan: Lan, *args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run(lan.lab.exec_argv(lan.sender, analyzer_argv(*args)),
                          capture_output=True, timeout=60, check=False)
    return done


def watched_broadcast(lan: Lan, capture: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run `udp broadcast ARGS` in the sender's namespace under tcpdump on its interface."""
    sniffer = Tcpdump(capture, f"udp port {PORT}", interface=lan.sender.interface)
    sniffer.argv = lan.lab.exec_argv(lan.sender, sniffer.argv)
    with sniffer:
        return sender_run(lan, "udp", "broadcast", str(PORT), MESSAGE, *args)


def test_the_far_responder_answers_unicast(lan: Lan) -> None:
    """The control: the far responder is reachable and answers through the router."""
    done = sender_run(lan, "udp", "send", lan.far.address, str(PORT), "ping",
                      "--wait", "2", "--json")
    assert done.returncode == 0, describe(done)
    replies = [obj for obj in of_type(json_lines(done.stdout), "udp_datagram")
               if obj["direction"] == "in"]
    assert [(obj["source"], obj["text"]) for obj in replies] == [
        (f"{lan.far.address}:{PORT}", "far here")]


@pytest.mark.parametrize(("label", "options", "destination"), [
    ("limited", [], "255.255.255.255"),
    ("directed", ["-i", "eth0"], "10.50.1.255"),
])
def test_broadcast_lists_the_three_lan_replies_and_not_the_far_one(
        lan: Lan, tmp_path: Path, label: str, options: list[str], destination: str) -> None:
    capture = tmp_path / f"{label}.pcap"
    done = watched_broadcast(lan, capture, *options, "--wait", WAIT_SECONDS, "--json")
    assert done.returncode == 0, describe(done)
    datagrams = of_type(json_lines(done.stdout), "udp_datagram")

    sent = [obj for obj in datagrams if obj["direction"] == "out"]
    assert len(sent) == 1, datagrams
    assert sent[0]["destination"] == f"{destination}:{PORT}"
    assert sent[0]["broadcast"] is True
    assert sent[0]["bytes"] == len(MESSAGE.encode())
    assert bytes.fromhex(sent[0]["hex"]) == MESSAGE.encode()
    sender_endpoint = sent[0]["source"]
    # The source as it is on the wire (not the wildcard the socket may be bound to).
    assert sender_endpoint.rsplit(":", 1)[0] == lan.sender.address

    replies = {obj["source"]: obj for obj in datagrams if obj["direction"] == "in"}
    expected = {f"{lan.responders[name].address}:{PORT}": text for name, text in REPLIES.items()}
    assert {source: obj["text"] for source, obj in replies.items()} == expected
    for obj in replies.values():
        assert obj["destination"] == sender_endpoint
        assert bytes.fromhex(obj["hex"]) == obj["text"].encode()
        assert obj["time"] >= sent[0]["time"]

    # The wire, as tshark reads tcpdump's capture from inside the sender's namespace.
    out = tshark_rows(capture, ["ip.dst", "eth.dst", "udp.srcport", "data.data"],
                      f"ip.src == {lan.sender.address} && udp.dstport == {PORT}")
    assert out == [{"ip.dst": destination, "eth.dst": "ff:ff:ff:ff:ff:ff",
                    "udp.srcport": sender_endpoint.rsplit(":", 1)[1],
                    "data.data": MESSAGE.encode().hex()}]
    answered = tshark_rows(capture, ["ip.src", "ip.dst"], f"udp.srcport == {PORT}")
    assert sorted(row["ip.src"] for row in answered) == sorted(
        host.address for host in lan.responders.values())
    assert all(row["ip.dst"] == lan.sender.address for row in answered)


def test_the_text_listing_names_who_answered(lan: Lan) -> None:
    done = sender_run(lan, "udp", "broadcast", str(PORT), MESSAGE, "--wait", WAIT_SECONDS)
    assert done.returncode == 0, describe(done)
    text = done.stdout.decode()
    for name, reply in REPLIES.items():
        line = next((line for line in text.splitlines()
                     if f"{lan.responders[name].address}:{PORT}" in line), None)
        assert line is not None, text
        assert reply in line and "ms" in line, line  # who, what, and the round-trip time
    assert lan.far.address not in text


def test_a_broadcast_to_the_far_subnet_is_not_forwarded(lan: Lan, tmp_path: Path) -> None:
    """The far subnet's own directed broadcast, sent from lan: the router keeps it."""
    capture = tmp_path / "far.pcap"
    done = watched_broadcast(lan, capture, "--to", "10.50.2.255", "--wait", "1", "--json")
    assert done.returncode == 0, describe(done)
    replies = [obj for obj in of_type(json_lines(done.stdout), "udp_datagram")
               if obj["direction"] == "in"]
    assert replies == []
    assert tshark_rows(capture, ["ip.dst"], f"udp.dstport == {PORT}") == [
        {"ip.dst": "10.50.2.255"}]
    assert tshark_rows(capture, ["ip.src"], f"udp.srcport == {PORT}") == []


def test_the_listeners_saw_the_sender(lan: Lan) -> None:
    """Each `udp listen` responder printed the broadcasts it answered, with the sender's
    address (runs after the broadcasts above, in file order)."""
    for name in ("r1", "r2"):
        log = (lan.logs / f"{name}.log").read_text(errors="replace")
        assert f"[{lan.sender.address}:" in log and MESSAGE in log, log[-2000:]
    assert MESSAGE not in (lan.logs / "far.log").read_text(errors="replace")
