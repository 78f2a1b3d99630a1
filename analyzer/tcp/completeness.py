"""Wireshark's `tcp.completeness`: bits of a conversation's life seen in the capture.

Update rule (Wireshark 4.0, packet-tcp.c), per packet of the conversation:
- SYN (1): only on the packet that creates the conversation, if it is a SYN without ACK
  (plus DATA when that SYN carries payload). A later SYN is ignored.
- SYN-ACK (2): any SYN with ACK.
- ACK (4) / DATA (8): a packet with ACK and without SYN sets DATA if it has payload,
  else ACK.
- FIN (16): only together with ACK.
- RST (32): any RST.
A stream of exactly one packet keeps only the creating packet's bits (SYN, SYN+DATA, or
nothing): Wireshark adds the rest only on later packets (`Stream._completeness`; checked
against tshark for every flag combination in tests/tcp/test_one_packet_completeness.py).
"""

from __future__ import annotations

from typing import Final

from analyzer.tcp.vocabulary import ACK as _ACK
from analyzer.tcp.vocabulary import CONTROL_AND_ACK, SYN_AND_ACK
from analyzer.tcp.vocabulary import FIN as _FIN
from analyzer.tcp.vocabulary import RST as _RST
from analyzer.tcp.vocabulary import SYN as _SYN

SYN_SENT: Final = 1
SYN_ACK: Final = 2
ACK: Final = 4
DATA: Final = 8
FIN: Final = 16
RST: Final = 32


def creation_bits(flags: int, length: int) -> int:
    """Bits the packet creating the conversation sets on top of `on_packet`'s."""
    if flags & SYN_AND_ACK == _SYN:
        return SYN_SENT | (DATA if length else 0)
    return 0


def on_packet(flags: int, length: int) -> int:
    """Bits set by any packet of the conversation."""
    bits = 0
    if flags & _SYN:
        if flags & _ACK:
            bits |= SYN_ACK
    elif flags & _ACK:
        bits |= DATA if length else ACK
    if flags & _FIN and flags & _ACK:
        bits |= FIN
    if flags & _RST:
        bits |= RST
    return bits


# `on_packet`'s bits by (flags & CONTROL_AND_ACK) + 32 * has_payload: one lookup a packet.
BY_PACKET: Final = [on_packet(i & CONTROL_AND_ACK, i >> 5) for i in range(64)]


def label(value: int) -> str:
    """Wireshark's text for a completeness value, e.g. "Complete, WITH_DATA"."""
    handshake = SYN_SENT | SYN_ACK | ACK
    if value == SYN_SENT:
        return "Incomplete, SYN_SENT"
    if value == SYN_SENT | SYN_ACK:
        return "Incomplete, CLIENT_ESTABLISHED"
    if value == handshake:
        return "Incomplete, ESTABLISHED"
    if value == handshake | DATA:
        return "Incomplete, DATA"
    if value & handshake == handshake and value & (FIN | RST):
        return "Complete, WITH_DATA" if value & DATA else "Complete, NO_DATA"
    return "Incomplete"
