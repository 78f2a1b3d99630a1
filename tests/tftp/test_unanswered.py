"""Requests nobody answered, settled without being made transfers (`on_unanswered`, the
port-69 scan's fast path): their `read --json` lines are the lines of the full path, which
makes each one a `TftpTransfer` and settles it, byte for byte.

The expected lines come from the full path (the same capture through a tracker given no
`on_unanswered`); what is sent once and never answered is known by construction.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from analyzer.pipeline import analyze_file
from analyzer.run.results import TftpLines
from analyzer.tftp.tracker import TftpTracker, UnansweredRequest
from benchmarks.hostile_tftp import rrq
from tests.tftp import craft
from tests.tftp.craft import Capture

SERVER = ("10.0.0.1", 69)
SERVER6 = ("2001:db8::1", 69)
OTHER_PORT = ("10.0.0.1", 6969)  # given with --tftp-port
TID = ("10.0.0.1", 50001)

# Requests of every shape, each (destination, payload): the same sent from many ports is
# what a scan does, and what the fast path makes each line's text once for.
REQUESTS = [
    (SERVER, craft.rrq("pxelinux.0")),
    (SERVER, craft.rrq("boot/grub.cfg", "netascii")),
    (SERVER, craft.rrq("Mixed.Case", "NetASCII")),
    (SERVER, craft.rrq("mail-me", "mail")),
    (SERVER, craft.rrq("big.img", options=[("blksize", "1428"), ("tsize", "0"),
                                          ("windowsize", "16"), ("timeout", "3")])),
    (SERVER, craft.rrq("odd", options=[("x-vendor", "1"), ("BlkSize", "9000")])),
    (SERVER, craft.wrq("upload.txt", options=[("tsize", "123")])),
    (SERVER, craft.wrq("upload.bin")),
    (SERVER, rrq(b'quote" back\\slash tab\t esc\x1b[2J')),
    (SERVER, rrq("caf\u00e9 \u2603".encode())),
    (SERVER, rrq(b"not utf-8 \xff\xfe")),
    (SERVER, rrq(b"")),
    (SERVER6, craft.rrq("v6.bin")),
    (SERVER6, craft.rrq("v6.bin", options=[("blksize", "512")])),
    (OTHER_PORT, craft.rrq("other-port.bin")),
]


def lines(capture: Path, fast: bool) -> tuple[str, int]:
    """`read --json`'s tftp_transfer lines of `capture`, and how many requests took the
    fast path (with `fast`; without, every one is made a transfer)."""
    out = io.StringIO()
    spilled = TftpLines()
    taken: list[UnansweredRequest] = []

    def unanswered(request: UnansweredRequest) -> None:
        taken.append(request)
        spilled.unanswered(request)

    try:
        analyze_file(capture, tftp_ports=[6969], tftp_results=spilled.add,
                     tftp_unanswered=unanswered if fast else None)
        spilled.write_ordered(out)
    finally:
        spilled.close()
    return out.getvalue(), len(taken)


def scan(path: Path) -> tuple[Path, int, int]:
    """Every shape of request from many client ports, most sent once and never answered;
    among them requests resent, answered by an ICMP port unreachable, answered by a
    server, and a client port that asks again with another request; over a minute and a
    half, so that early ones expire while the capture goes on. Returns the capture, how
    many requests it holds, and how many of them were sent once and never answered."""
    cap = Capture(step=0.05)
    requests = unanswered = 0
    port = 20000
    for round_ in range(12):
        for index, (server, payload) in enumerate(REQUESTS):
            port += 1
            requests += 1
            client = ("2001:db8::2" if ":" in server[0] else "10.0.0.2", port)
            frame = cap.udp(client, server, payload)
            case = (round_ + index) % 7
            if case == 1:
                cap.udp(client, server, payload, after=1.0)  # resent: the full path
            elif case == 2:
                cap.port_unreachable(frame)  # answered by ICMP: the full path
            elif case == 3 and server == SERVER and payload[1] == 1:  # an RRQ, answered
                cap.udp(TID, client, craft.data(1, b"tiny"))
                cap.udp(client, TID, craft.ack(1))
            elif case == 4:
                # the same client port asks again, with another request: the first is
                # made a transfer then (a newer request hides it), the second is held
                cap.udp(client, server, craft.rrq("second-thought"), after=0.5)
                requests += 1
                unanswered += 1
            else:
                unanswered += 1
        cap.ts += 8.0  # requests expire 30 s after their last copy
    return cap.write(path / "scan.pcap"), requests, unanswered


def test_unanswered_lines_are_the_full_paths_lines(tmp_path: Path) -> None:
    capture, requests, sent_once = scan(tmp_path)
    full, none_taken = lines(capture, fast=False)
    fast, taken = lines(capture, fast=True)
    assert none_taken == 0
    assert taken == sent_once  # the fast path was taken, for exactly these
    assert full.count("\n") == requests  # one line per request
    assert fast == full


@pytest.mark.parametrize("timeline", [False, True])
def test_a_tracker_without_on_unanswered_makes_every_request_a_transfer(
        tmp_path: Path, timeline: bool) -> None:
    """Without `on_unanswered` (the tables, `tftp show`) every request is still a
    transfer, in request order."""
    cap = Capture()
    for port in range(30000, 30010):
        cap.udp(("10.0.0.2", port), SERVER, craft.rrq(f"f{port}"))
    tracker = TftpTracker(timeline=timeline)
    analyze_file(cap.write(tmp_path / "ten.pcap"), tftp_tracker=tracker, track_tcp=False)
    results = tracker.results()
    assert [(t.number, t.client_port, t.request.filename) for t in results] == \
        [(n, port, f"f{port}") for n, port in enumerate(range(30000, 30010), 1)]
    assert all(t.status == "incomplete" and t.server_port is None for t in results)
