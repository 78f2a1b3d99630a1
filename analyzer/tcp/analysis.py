"""Wireshark's `tcp.analysis` rules (Wireshark 4.0, packet-tcp.c), one function each.

Each rule reads one packet's facts and its direction's state (`Flow`; `peer` is the other
direction) *before* the packet updates them, and answers with a yes/no or the kind (a code
of vocabulary.py). `stream.Stream.on_packet` calls them in Wireshark's order, counts what
they find and records it on kept packets. They cannot fire on the tracker's fast path (an
in-order ACK or data segment in a settled connection), which is why it never calls them.
"""

from __future__ import annotations

from typing import Final

from analyzer.tcp.flow import Flow
from analyzer.tcp.vocabulary import (
    CONTROL,
    FAST_RETRANSMISSION,
    OUT_OF_ORDER,
    RETRANSMISSION,
    RST,
)

# Wireshark's default out-of-order threshold when the RTT is unknown (seconds).
OUT_OF_ORDER_THRESHOLD: Final = 0.003


def acks_unseen(peer: Flow, acked_off: int, flags: int) -> bool:
    """An ACK of bytes the capture never saw: beyond all the peer sent, or across a hole
    in front of its buffered segments (`acked_off`: the acknowledged stream offset, ahead
    of the peer's reassembly frontier). A RST's ACK field does not count."""
    return (acked_off > peer.high or bool(peer.pending)) and not flags & RST


def is_dup_ack(flow: Flow, peer: Flow, ack: int, window: int, offset: int) -> bool:
    """A duplicate ACK (for a segment without data or SYN/FIN/RST): same ack and window
    as the previous segment, a window, seq at nextseq, and not the ACK of a keep-alive."""
    return ack == flow.last_ack and window == flow.last_win and window != 0 and \
        offset == flow.high and not peer.keepalive


def is_zero_window(flags: int, window: int) -> bool:
    """A zero window (SYN, FIN and RST segments excepted)."""
    return window == 0 and not flags & CONTROL


def is_keep_alive(flags: int, length: int, start: int, high: int) -> bool:
    """A keep-alive: at most one byte, one below the highest sequence sent (`high`), no
    SYN, FIN or RST."""
    return length <= 1 and not flags & CONTROL and start == high - 1


def old_segment_kind(flow: Flow, peer: Flow, seq: int, ts: float, end: int, high: int,
                     rtt: float | None) -> str:
    """The kind of a segment starting below the highest sequence sent (`high`, before it):
    out-of-order when it comes within the initial RTT (3 ms while unknown) of the segment
    that advanced the highest sequence and does not end exactly there; a fast
    retransmission after 2+ duplicate ACKs asking for it; else a retransmission."""
    threshold = rtt if rtt else OUT_OF_ORDER_THRESHOLD
    if peer.dup_acks >= 2 and peer.last_ack == seq:
        return FAST_RETRANSMISSION
    if ts - flow.high_ts < threshold and end != high:
        return OUT_OF_ORDER
    return RETRANSMISSION
