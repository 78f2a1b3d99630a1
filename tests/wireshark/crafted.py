"""Crafted captures with each tshark behaviour `verify` knows, truth known by
construction (scapy writes them; tests/tcp/craft_tcp.py and tests/tftp/craft.py)."""

from __future__ import annotations

from pathlib import Path

from tests.tcp.craft_tcp import Conversation
from tests.tftp import craft

CLIENT, SERVER = ("10.0.0.1", 3000), ("10.0.0.2", 69)


def lost_segment(folder: Path) -> Path:
    """Client bytes 100..199 never captured, but the server acknowledges all 300."""
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"1" * 100)
    conv.send(True, "PA", b"3" * 100, seq=base + 200)
    conv.next[True] = base + 300
    conv.send(False, "A")
    conv.close()
    return conv.write(folder / "lost-segment.pcap")


def unacknowledged_gap(folder: Path) -> Path:
    """Client bytes 10..19 missing and nothing acknowledges past them: the capture ends."""
    conv = Conversation().handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"x" * 10)
    conv.send(True, "PA", b"z" * 10, seq=base + 20)
    return conv.write(folder / "unacknowledged-gap.pcap")


def reordered_and_wrapping(folder: Path) -> Path:
    """No gap, but out-of-order segments, a retransmission with more data, an overlap,
    and sequence numbers wrapping past 2^32: Follow's rule at work, tshark and we agree."""
    conv = Conversation(client_isn=(1 << 32) - 150, server_isn=(1 << 32) - 3)
    conv.handshake()
    base = conv.next[True]
    conv.send(True, "PA", b"b" * 100, seq=base + 100)  # ahead of a hole...
    conv.send(True, "PA", b"a" * 100, seq=base)  # ...filled just after
    conv.send(True, "PA", b"a" * 100 + b"b" * 100 + b"c" * 50, seq=base)  # resent, longer
    conv.send(True, "PA", b"c" * 20 + b"d" * 30, seq=base + 230)  # overlaps by 20
    conv.next[True] = base + 280
    conv.send(False, "PA", b"reply across the wrap")
    conv.send(True, "A")
    conv.close()
    return conv.write(folder / "reordered-wrapping.pcap")


def _transfer(cap: craft.Capture, name: str, content: bytes, *, client: tuple[str, int],
              tid: tuple[str, int], mode: str = "octet", blksize: int = 512,
              drop_last: bool = False) -> None:
    options = [("blksize", str(blksize))] if blksize != 512 else []
    cap.udp(client, SERVER, craft.rrq(name, mode, options))
    if options:
        cap.udp(tid, client, craft.oack(options))
        cap.udp(client, tid, craft.ack(0))
    blocks = craft.chunks(content, blksize)
    for number, chunk in enumerate(blocks, 1):
        if drop_last and number == len(blocks):
            break
        cap.udp(tid, client, craft.data(number, chunk))
        cap.udp(client, tid, craft.ack(number))


def tftp_behaviours(folder: Path) -> Path:
    """One transfer per known tshark export behaviour, and two it gets right."""
    cap = craft.Capture()
    _transfer(cap, "dir/plain.bin", bytes(range(256)) * 4, client=("10.0.0.1", 3001),
              tid=("10.0.0.2", 4001))
    _transfer(cap, "text.txt", craft.netascii_encode(b"one\ntwo\rthree\n"),
              client=("10.0.0.1", 3002), tid=("10.0.0.2", 4002), mode="netascii")
    _transfer(cap, "moved.bin", b"m" * 600, client=("10.0.0.1", 3003),
              tid=("10.0.0.9", 4003))  # answered from another address
    _transfer(cap, "tiny.bin", b"t" * 30, client=("10.0.0.1", 3004), tid=("10.0.0.2", 4004),
              blksize=7)
    _transfer(cap, "cut.bin", b"c" * 1500, client=("10.0.0.1", 3005),
              tid=("10.0.0.2", 4005), drop_last=True)  # the capture misses the last block
    _transfer(cap, "dir/plain.bin", b"second copy", client=("10.0.0.1", 3006),
              tid=("10.0.0.2", 4006))  # the same name again: tshark's "plain(1).bin"
    return cap.write(folder / "tftp-behaviours.pcap")


# The reason `verify` must give for each crafted TFTP transfer (1-based), None: agrees.
TFTP_REASONS = {1: None, 2: "tftp-netascii", 3: "tftp-other-address",
                4: "tftp-small-blksize", 5: "tftp-not-complete", 6: None}
