"""One TCP vocabulary (analyzer/tcp/vocabulary.py): every code the tracker records has its
words in the views' one table (report/tcp_view.WORDS), and the table names nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.decode.packet import PROTO_TCP
from analyzer.pipeline import iter_packets
from analyzer.report.tcp_view import WORDS
from analyzer.tcp import TcpTracker
from analyzer.tcp import vocabulary as vocab
from tests.conftest import CAPTURES_DIR, CORPUS_DIR

EVENTS = {value for name, value in vars(vocab).items() if name.startswith("EVENT_")}


def captures() -> list[Path]:
    paths = sorted(CAPTURES_DIR.glob("*.pcap*"))
    if CORPUS_DIR.is_dir():
        paths += sorted(p for p in CORPUS_DIR.iterdir() if ".pcap" in p.name)
    return paths


def test_every_code_has_words_and_the_table_no_stray_code() -> None:
    assert len(EVENTS) == 12
    codes = EVENTS | set(vocab.ANALYSIS_KEYS)
    assert codes <= set(WORDS)
    # beyond the codes, only the view's own variant of a SYN-ACK (simultaneous open)
    assert len(set(WORDS) - codes) == 1
    for kind in vocab.ANALYSIS_KEYS:  # each has a name in the stream table's counts
        assert WORDS[kind].short


def test_flag_masks_are_their_bits() -> None:
    # the TCP header's flags byte (RFC 9293 section 3.1; ECE and CWR: RFC 3168)
    assert (vocab.FIN, vocab.SYN, vocab.RST, vocab.PSH, vocab.ACK, vocab.URG, vocab.ECE,
            vocab.CWR) == (1, 2, 4, 8, 16, 32, 64, 128)
    assert vocab.CONTROL == vocab.FIN | vocab.SYN | vocab.RST
    assert vocab.CONTROL_AND_ACK == vocab.FIN | vocab.SYN | vocab.RST | vocab.ACK
    assert vocab.SYN_AND_ACK == vocab.SYN | vocab.ACK


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_recorded_events_are_vocabulary_codes(path: Path) -> None:
    tracker = TcpTracker(keep_all=True)
    for pkt in iter_packets(path):
        if pkt.proto == PROTO_TCP:
            tracker.on_packet(pkt)
    tracker.finish()
    recorded = {event for result in tracker.results() for record in result.records or ()
                for event in record.events}
    assert recorded <= EVENTS | set(vocab.ANALYSIS_KEYS)
    assert recorded <= set(vocab.RECORDED_CODES)  # what the ladder's spool can store


def test_recorded_codes_are_every_event_and_every_recorded_analysis_kind() -> None:
    """The spooled ladder's table of codes (one byte each): every EVENT_*, every analysis
    kind but overlap_conflict (counted, never an event: the ladder lists conflicts),
    each once."""
    assert len(set(vocab.RECORDED_CODES)) == len(vocab.RECORDED_CODES) < 256
    assert set(vocab.RECORDED_CODES) == \
        EVENTS | set(vocab.ANALYSIS_KEYS) - {vocab.OVERLAP_CONFLICT}
