"""Zeek `conn.log` vocabulary for a TCP connection: the `history` letters and `conn_state`.

History letters follow Zeek's `update_history` (TCP.cc) and its documentation:

    S  SYN without ACK          H  SYN-ACK ("handshake")     A  pure ACK
    D  packet with payload      F  FIN                       R  RST
    Q  multi-flag packet (SYN with FIN or RST)               I  FIN and RST together
    T  retransmitted payload    W  zero window               G  content gap
    ^  the originator was flipped (the first packet was not the originator's)

Upper case: the originator (our client) sent it; lower case: the responder. A, D, I and
Q appear at most once per direction; S, H, F and R again when their sequence number
differs from the previous one of the same kind; T, W and G logarithmically: first, 10th,
100th, ... occurrence.

`conn_state` is Zeek's `conn_state()` (base/protocols/conn/main.zeek) over each
endpoint's Zeek state (INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED,
RESET), which `ZeekEndpoints` keeps the way Zeek's TCP analyzer updates it.
"""

from __future__ import annotations

import re
from typing import Final

from analyzer.tcp.vocabulary import ACK as _ACK
from analyzer.tcp.vocabulary import FIN as _FIN
from analyzer.tcp.vocabulary import RST as _RST
from analyzer.tcp.vocabulary import SYN as _SYN

INACTIVE: Final = "INACTIVE"
SYN_SENT: Final = "SYN_SENT"
SYN_ACK_SENT: Final = "SYN_ACK_SENT"
PARTIAL: Final = "PARTIAL"
ESTABLISHED: Final = "ESTABLISHED"
CLOSED: Final = "CLOSED"
RESET: Final = "RESET"

# Once-only history marks, per direction.
_MARK_SYN: Final = 1
_MARK_SYNACK: Final = 2
_MARK_FIN: Final = 4
_MARK_RST: Final = 8
MARK_DATA: Final = 16
MARK_ACK: Final = 32
_MARK_MULTI: Final = 64
_MARK_FIN_RST: Final = 128
MARKS_DATA_AND_ACK: Final = MARK_DATA | MARK_ACK


CONN_STATES: Final = {
    "S0": "Connection attempt seen, no reply.",
    "S1": "Connection established, not terminated.",
    "SF": "Normal establishment and termination.",
    "REJ": "Connection attempt rejected.",
    "S2": "Established, close attempt by originator seen (but no reply from responder).",
    "S3": "Established, close attempt by responder seen (but no reply from originator).",
    "RSTO": "Established, originator aborted (sent a RST).",
    "RSTR": "Responder sent a RST.",
    "RSTOS0": "Originator sent a SYN followed by a RST, never saw a SYN-ACK from the responder.",
    "RSTRH": "Responder sent a SYN-ACK followed by a RST, never saw a SYN from the originator.",
    "SH": "Originator sent a SYN followed by a FIN, never saw a SYN-ACK from the responder.",
    "SHR": "Responder sent a SYN-ACK followed by a FIN, never saw a SYN from the originator.",
    "OTH": "No SYN seen, just midstream traffic.",
}


class ZeekHistory:
    """History letters of one connection, by direction (0 = first sender, 1 = the other).

    Letters are stored as one string, upper case for direction 0 and lower case for
    direction 1, and given their final case at the end, when we know which direction is
    the originator (the SYN may come after the first packet). One string, one list of
    the last SYN/FIN/RST sequence numbers and counters made on first use: thousands of
    connections are open at once, so this is a few hundred bytes rather than a
    kilobyte of tuples and lists.
    """

    __slots__ = ("letters", "marks", "last", "counts")

    def __init__(self) -> None:
        self.letters = ""
        self.marks = [0, 0]
        # last sequence number of a SYN / FIN / RST, at [kind * 2 + side]
        self.last: list[int | None] = [None] * 6
        self.counts: dict[str, int] | None = None  # T/W/G occurrences, by letter as stored

    def _add(self, side: int, letter: str) -> None:
        self.letters += letter if side == 0 else letter.lower()

    def _once(self, side: int, mark: int, letter: str) -> bool:
        """Zeek's CheckHistory: add the letter the first time; True if already seen."""
        if self.marks[side] & mark:
            return True
        self.marks[side] |= mark
        self._add(side, letter)
        return False

    def on_packet(self, side: int, flags: int, rel_seq: int, length: int) -> None:
        """Zeek's update_history for one packet (rel_seq: sequence relative to the ISN)."""
        syn, fin, rst = flags & _SYN, flags & _FIN, flags & _RST
        bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        if bits > 1:
            if fin and rst:
                self._once(side, _MARK_FIN_RST, "I")
            else:
                self._once(side, _MARK_MULTI, "Q")
        elif bits == 1:
            last = self.last
            if syn:
                letter = "H" if flags & _ACK else "S"
                mark = _MARK_SYNACK if flags & _ACK else _MARK_SYN
                if self._once(side, mark, letter) and rel_seq != last[side]:
                    self._add(side, letter)
                last[side] = rel_seq
            elif fin:
                if self._once(side, _MARK_FIN, "F") and rel_seq + length != last[2 + side]:
                    self._add(side, "F")
                last[2 + side] = rel_seq + length
            else:
                if self._once(side, _MARK_RST, "R") and rel_seq != last[4 + side]:
                    self._add(side, "R")
                last[4 + side] = rel_seq
        elif length:
            self._once(side, MARK_DATA, "D")
        elif flags & _ACK:
            self._once(side, MARK_ACK, "A")

    def count(self, side: int, letter: str) -> None:
        """A T, W or G event: recorded at the 1st, 10th, 100th, ... occurrence."""
        if self.counts is None:
            self.counts = {}
        key = letter if side == 0 else letter.lower()
        n = self.counts.get(key, 0) + 1
        self.counts[key] = n
        while n % 10 == 0:
            n //= 10
        if n == 1:
            self._add(side, letter)

    def text(self, originator: int, flipped: bool) -> str:
        letters = self.letters if originator == 0 else self.letters.swapcase()
        return ("^" if flipped else "") + letters


class ZeekEndpoints:
    """Each endpoint's Zeek TCP state (by direction: 0 = first sender, 1 = the other)."""

    __slots__ = ("states",)

    def __init__(self) -> None:
        self.states = [INACTIVE, INACTIVE]

    def on_packet(self, side: int, flags: int, length: int) -> None:
        states = self.states
        mine = states[side]
        if flags & _RST:
            states[side] = RESET
            return
        if mine == RESET:
            return
        if flags & _SYN:
            if mine == INACTIVE:
                states[side] = SYN_ACK_SENT if flags & _ACK else SYN_SENT
            if flags & _FIN:
                states[side] = CLOSED
            return
        if flags & _FIN:
            states[side] = CLOSED
            return
        if mine == INACTIVE:
            if length or flags & _ACK:
                states[side] = PARTIAL
        elif mine in (SYN_SENT, SYN_ACK_SENT) and flags & _ACK:
            states[side] = ESTABLISHED
            other = states[1 - side]
            if other in (SYN_SENT, SYN_ACK_SENT):
                states[1 - side] = ESTABLISHED

    @property
    def idle(self) -> bool:
        """True when no packet can change a state except SYN/FIN/RST ones."""
        return self.states[0] not in (INACTIVE, SYN_SENT, SYN_ACK_SENT) and \
            self.states[1] not in (INACTIVE, SYN_SENT, SYN_ACK_SENT)


_RSTOS0: Final = re.compile(r"\^?S[^HAFGIQ]*R.*")


def conn_state(orig: str, resp: str, orig_bytes: int, resp_bytes: int, history: str) -> str:
    """Zeek's conn_state() for TCP, from the two endpoint states."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (
                orig == RESET and orig_bytes == 0 and resp_bytes == 0):
            return "REJ"
        if o_inactive:
            return "RSTRH"
        return "RSTR"
    if orig == RESET:
        if r_inactive:
            if _RSTOS0.fullmatch(history):
                return "RSTOS0"
            return "OTH"
        return "RSTO"
    if resp == CLOSED and orig == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"
