"""Each endpoint's RFC 9293 connection state, inferred from the packets on the wire.

Theory of operation
-------------------
A capture shows what each endpoint *sent*; what it *received* we assume arrived as seen
(the capture point sits between the two). Every packet therefore drives two transitions:
the sender's "send" events, then the receiver's "receive" events, in the order a TCP
stack processes them (the ACK field before a SYN or FIN it carries). The table below maps
(state, event) to the next state; a pair that is not listed leaves the state unchanged
(a retransmitted FIN in TIME-WAIT, data in ESTABLISHED, ...).

Conventions, following the figures in RFC 9293 section 3.5:
- The passive side stays LISTEN until it answers with a SYN-ACK (then SYN-RECEIVED) or
  refuses with a RST (then CLOSED): until it answers we have no evidence it got the SYN.
- The active side is ESTABLISHED once it receives the SYN-ACK; the passive side once it
  receives the ACK of its SYN.
- A FIN moves its receiver to CLOSE-WAIT (or CLOSING / TIME-WAIT) at once.
- Crossing FINs (simultaneous close): when an endpoint sends its FIN without
  acknowledging the peer's FIN already on the wire, it had not received that FIN yet: it
  went FIN-WAIT-1 and then, the peer's FIN arriving, CLOSING. `closing_crossed_fin`
  handles that case; the table alone cannot see it.
- Crossing SYNs (simultaneous open): a bare SYN from the "listening" side means it was
  opening too; with the peer's SYN arriving it is SYN-RECEIVED.
- Without a SYN at the start (midstream pickup) both endpoints start ESTABLISHED.
"""

from __future__ import annotations

from typing import Final

CLOSED: Final = "CLOSED"
LISTEN: Final = "LISTEN"
SYN_SENT: Final = "SYN-SENT"
SYN_RECEIVED: Final = "SYN-RECEIVED"
ESTABLISHED: Final = "ESTABLISHED"
FIN_WAIT_1: Final = "FIN-WAIT-1"
FIN_WAIT_2: Final = "FIN-WAIT-2"
CLOSE_WAIT: Final = "CLOSE-WAIT"
CLOSING: Final = "CLOSING"
LAST_ACK: Final = "LAST-ACK"
TIME_WAIT: Final = "TIME-WAIT"

# Events. The sender's:
SEND_SYN: Final = "send SYN"
SEND_SYNACK: Final = "send SYN-ACK"
SEND_FIN: Final = "send FIN"
SEND_RST: Final = "send RST"
# The receiver's (in processing order):
RCV_ACK_OF_SYN: Final = "receive ACK of its SYN"
RCV_ACK_OF_FIN: Final = "receive ACK of its FIN"
RCV_SYNACK: Final = "receive SYN-ACK"
RCV_SYN: Final = "receive SYN"
RCV_FIN: Final = "receive FIN"
RCV_RST: Final = "receive RST"

TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    (CLOSED, SEND_SYN): SYN_SENT,
    (LISTEN, SEND_SYNACK): SYN_RECEIVED,
    (LISTEN, SEND_SYN): SYN_RECEIVED,  # simultaneous open: the peer's SYN crosses ours
    (LISTEN, SEND_RST): CLOSED,  # refused
    (SYN_SENT, RCV_SYNACK): ESTABLISHED,
    (SYN_SENT, RCV_SYN): SYN_RECEIVED,  # simultaneous open
    (SYN_SENT, RCV_RST): CLOSED,
    (SYN_SENT, SEND_RST): CLOSED,
    (SYN_RECEIVED, RCV_ACK_OF_SYN): ESTABLISHED,
    (SYN_RECEIVED, RCV_SYNACK): ESTABLISHED,  # simultaneous open, the peer's SYN-ACK
    (SYN_RECEIVED, SEND_FIN): FIN_WAIT_1,
    (SYN_RECEIVED, RCV_FIN): CLOSE_WAIT,
    (SYN_RECEIVED, RCV_RST): CLOSED,
    (SYN_RECEIVED, SEND_RST): CLOSED,
    (ESTABLISHED, SEND_FIN): FIN_WAIT_1,
    (ESTABLISHED, RCV_FIN): CLOSE_WAIT,
    (ESTABLISHED, RCV_RST): CLOSED,
    (ESTABLISHED, SEND_RST): CLOSED,
    (FIN_WAIT_1, RCV_ACK_OF_FIN): FIN_WAIT_2,
    (FIN_WAIT_1, RCV_FIN): CLOSING,  # simultaneous close
    (FIN_WAIT_1, RCV_RST): CLOSED,
    (FIN_WAIT_1, SEND_RST): CLOSED,
    (FIN_WAIT_2, RCV_FIN): TIME_WAIT,
    (FIN_WAIT_2, RCV_RST): CLOSED,
    (FIN_WAIT_2, SEND_RST): CLOSED,
    (CLOSE_WAIT, SEND_FIN): LAST_ACK,
    (CLOSE_WAIT, RCV_RST): CLOSED,
    (CLOSE_WAIT, SEND_RST): CLOSED,
    (CLOSING, RCV_ACK_OF_FIN): TIME_WAIT,
    (CLOSING, RCV_RST): CLOSED,
    (CLOSING, SEND_RST): CLOSED,
    (LAST_ACK, RCV_ACK_OF_FIN): CLOSED,
    (LAST_ACK, RCV_RST): CLOSED,
    (LAST_ACK, SEND_RST): CLOSED,
    (TIME_WAIT, RCV_RST): CLOSED,
    (TIME_WAIT, SEND_RST): CLOSED,
}

# States in which an endpoint waits for an ACK: while one endpoint is in one of them,
# the tracker must look at plain ACKs too (otherwise only SYN/FIN/RST packets matter).
WAITING_FOR_ACK: Final = frozenset({SYN_SENT, SYN_RECEIVED, FIN_WAIT_1, CLOSING, LAST_ACK})

ALL_STATES: Final = (CLOSED, LISTEN, SYN_SENT, SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2,
              CLOSE_WAIT, CLOSING, LAST_ACK, TIME_WAIT)


def initial_states(first_flags_syn: bool, first_flags_ack: bool) -> tuple[str, str]:
    """States of (first sender, first receiver) before the first packet of a stream."""
    if first_flags_syn and not first_flags_ack:
        return CLOSED, LISTEN
    if first_flags_syn:
        # The SYN-ACK came first: the SYN is missing or captured later.
        return LISTEN, SYN_SENT
    return ESTABLISHED, ESTABLISHED


def step(state: str, event: str) -> str:
    """The state after `event`; unchanged when the table has no entry."""
    return TRANSITIONS.get((state, event), state)


def closing_crossed_fin(sender_state: str) -> str | None:
    """The sender's state when its FIN crossed the peer's (it did not ACK the peer's FIN).

    Our "FIN arrives at once" convention put the sender in CLOSE-WAIT; the wire proves it
    was still ESTABLISHED when it sent its FIN (FIN-WAIT-1), and the peer's FIN in flight
    then moves it to CLOSING. Returns None when the case does not apply.
    """
    if sender_state == CLOSE_WAIT:
        return CLOSING
    return None
