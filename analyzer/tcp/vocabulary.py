"""The TCP vocabulary, in one place: flag bits and the masks the tracker tests, the analysis
kinds a stream counts (the SPEC `analysis` keys), the event codes recorded on the packets
of kept streams, and the stream labels.

Codes only: views turn them into words through one table keyed by these codes
(`analyzer.report.tcp_view.WORDS`). Every name is `Final`, so mypyc compiles each use to
the constant itself. This module imports only the decoder's header bits (the TCP header's
flags byte is the decoder's format; it is re-exported here so that TCP code and views
name every flag and mask from one module).
"""

from __future__ import annotations

from typing import Final

from analyzer.decode.packet import ACK as ACK
from analyzer.decode.packet import CWR as CWR
from analyzer.decode.packet import ECE as ECE
from analyzer.decode.packet import FIN as FIN
from analyzer.decode.packet import PSH as PSH
from analyzer.decode.packet import RST as RST
from analyzer.decode.packet import SYN as SYN
from analyzer.decode.packet import URG as URG

# -- flag masks ----------------------------------------------------------------------------
# Written as numbers: mypy gives a `Final` a compile-time value only when it is a literal
# (FIN | SYN would be a C static, loaded and checked at every use on the fast path).
# tests/report/test_tcp_vocabulary.py checks each against its bits.

# The flags that change a connection's state: a packet with none of them is plain data or
# a plain ACK.
CONTROL: Final = 0x07  # FIN | SYN | RST
# What Wireshark's completeness (and the fast path's test for "only ACK") looks at.
CONTROL_AND_ACK: Final = 0x17  # FIN | SYN | RST | ACK
# `flags & SYN_AND_ACK == SYN`: a SYN without ACK (an opening SYN).
SYN_AND_ACK: Final = 0x12  # SYN | ACK

# -- analysis kinds: counted per stream (TcpStreamResult.analysis, in this order) ----------
# A kept packet that triggers one records the same code as an event.

RETRANSMISSION: Final = "retransmission"
FAST_RETRANSMISSION: Final = "fast_retransmission"
OUT_OF_ORDER: Final = "out_of_order"
DUP_ACK: Final = "dup_ack"
ZERO_WINDOW: Final = "zero_window"
KEEP_ALIVE: Final = "keep_alive"
LOST_SEGMENT: Final = "lost_segment"
ACKED_UNSEEN: Final = "acked_unseen"
OVERLAP_CONFLICT: Final = "overlap_conflict"  # (not an event: the view lists conflicts)

ANALYSIS_KEYS: Final = (RETRANSMISSION, FAST_RETRANSMISSION, OUT_OF_ORDER, DUP_ACK,
                        ZERO_WINDOW, KEEP_ALIVE, LOST_SEGMENT, ACKED_UNSEEN,
                        OVERLAP_CONFLICT)

# -- events of a connection's life, recorded on kept packets (PacketRecord.events) -------

EVENT_SYN: Final = "syn"  # opening SYN
EVENT_SYN_ACK: Final = "syn-ack"
EVENT_HANDSHAKE_ACK: Final = "handshake-ack"
EVENT_SYN_DATA: Final = "syn-data"
EVENT_SIMULTANEOUS_OPEN: Final = "simultaneous-open"
EVENT_ACTIVE_FIN: Final = "active-fin"  # first FIN of the connection
EVENT_PASSIVE_FIN: Final = "passive-fin"
EVENT_SIMULTANEOUS_CLOSE: Final = "simultaneous-close"
EVENT_FIN_ACKED: Final = "fin-acked"
EVENT_RST: Final = "rst"
EVENT_REFUSED: Final = "refused"
EVENT_PORT_REUSE: Final = "port-reuse"

# Every code a kept packet's events may hold, in a fixed order: the ladder's spooled
# records (analyzer/run/spill.py RecordSpool) store each as its index here.
RECORDED_CODES: Final = (EVENT_SYN, EVENT_SYN_ACK, EVENT_HANDSHAKE_ACK, EVENT_SYN_DATA,
                         EVENT_SIMULTANEOUS_OPEN, EVENT_ACTIVE_FIN, EVENT_PASSIVE_FIN,
                         EVENT_SIMULTANEOUS_CLOSE, EVENT_FIN_ACKED, EVENT_RST, EVENT_REFUSED,
                         EVENT_PORT_REUSE, RETRANSMISSION, FAST_RETRANSMISSION, OUT_OF_ORDER,
                         DUP_ACK, ZERO_WINDOW, KEEP_ALIVE, LOST_SEGMENT, ACKED_UNSEEN)

# -- stream labels (SPEC `labels`) ----------------------------------------------------------

LABEL_PORT_REUSE: Final = "port-reuse"
LABEL_MIDSTREAM: Final = "midstream"
LABEL_SYN_DATA: Final = "syn-data"
LABEL_SIMULTANEOUS_OPEN: Final = "simultaneous-open"
LABEL_SIMULTANEOUS_CLOSE: Final = "simultaneous-close"
LABEL_REFUSED: Final = "refused"
LABEL_RESET_BY_CLIENT: Final = "reset-by-client"
LABEL_RESET_BY_SERVER: Final = "reset-by-server"
