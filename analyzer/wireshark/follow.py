"""tshark's Follow TCP Stream, rebuilt from tshark's own per-segment fields.

`tshark -z follow,tcp,raw,N` reads the whole capture once per stream: for a capture of
thousands of streams that is thousands of passes. Its rule (Wireshark 4.0,
`follow_tcp_tap_listener` and `check_follow_fragments` in packet-tcp.c) is small and
per-segment, so it is applied here to the values tshark's dissector reports for each
segment (`tcp.seq_raw`, `tcp.ack_raw`, SYN, `tcp.len`, `tcp.payload`), read from one
streaming `-T fields` pass. The tests check that this gives `-z follow` byte for byte.

The rule, per direction (node 0 is the first packet's sender, as in tshark):
- the first packet of a direction sets the next expected sequence number (after a SYN,
  one past it);
- a segment at the expected number is appended (only its bytes beyond what was already
  appended: retransmissions and overlaps add nothing twice), then any held fragment that
  now fits is appended;
- a segment ahead of it is held as a fragment;
- when the *other* direction acknowledges past the lowest held fragment, the bytes in
  between were seen by the receiver but not by the capture: tshark appends the text
  "[N bytes missing in capture file]" plus a NUL byte *into the data*, and goes on;
- fragments never acknowledged stay held: Follow's output stops at that gap.

Beside tshark's output (hashed as it grows, never kept) each direction keeps a second
digest, "plain": the same bytes without the spliced text, plus at the end the held
fragments in sequence order with the holes skipped. That is what `analyzer` reports (gaps
listed apart), so a difference that disappears in "plain" is explained by those two
tshark behaviours, and the `markers` and `holes` say where.

Memory per direction: two running SHA-256 states, and the held fragments, bounded by
`HELD_LIMIT` bytes (past it the direction is marked `overflowed` and not compared).
"""

from __future__ import annotations

import hashlib
from typing import Final

MOD: Final = 1 << 32
HALF: Final = 1 << 31
HELD_LIMIT: Final = 4 << 20  # the same bound as our own out-of-order buffer


def seq_lt(a: int, b: int) -> bool:
    """Wireshark's LT_SEQ: (int32)(a - b) < 0."""
    return (a - b) % MOD >= HALF


def seq_gt(a: int, b: int) -> bool:
    """Wireshark's GT_SEQ: (int32)(b - a) < 0."""
    return (b - a) % MOD >= HALF


def _int32(value: int) -> int:
    value %= MOD
    return value - MOD if value >= HALF else value


def missing_text(count: int) -> bytes:
    """What tshark 4.0 splices into Follow data for `count` bytes the capture lacks."""
    return f"[{count} bytes missing in capture file]".encode() + b"\0"


class FollowDirection:
    """One node's bytes as tshark's Follow shows them, and the same without its text."""

    __slots__ = ("seq", "base", "written", "started", "held", "held_bytes", "held_limit",
                 "follow", "plain", "follow_length", "plain_length", "markers", "holes",
                 "overflowed")

    def __init__(self, held_limit: int = HELD_LIMIT) -> None:
        self.seq = 0  # the next expected sequence number (tshark's follow_info->seq)
        self.base = 0  # the first expected number: offsets count from it
        self.written = 0  # tshark's bytes_written (in-order data appended)
        self.started = False
        self.held: list[tuple[int, bytes]] = []  # fragments ahead of `seq`, in arrival order
        self.held_bytes = 0
        self.held_limit = held_limit
        # Digests made at the first byte: a stream with no data (a port scan's probe)
        # costs no hash state.
        self.follow: hashlib._Hash | None = None  # exactly tshark's output
        self.plain: hashlib._Hash | None = None  # None: the same as `follow` so far
        self.follow_length = 0
        self.plain_length = 0
        self.markers: list[tuple[int, int]] = []  # (offset, count) of each spliced text
        self.holes: list[tuple[int, int]] = []  # (offset, length) skipped in "plain" at the end
        self.overflowed = False

    def _follow_hash(self) -> hashlib._Hash:
        if self.follow is None:
            self.follow = hashlib.sha256()
        return self.follow

    def _append(self, data: bytes) -> None:
        self._follow_hash().update(data)
        self.follow_length += len(data)
        if self.plain is not None:
            self.plain.update(data)
        self.plain_length += len(data)

    def _append_marker(self, count: int) -> None:
        follow = self._follow_hash()
        if self.plain is None:
            self.plain = follow.copy()
        text = missing_text(count)
        follow.update(text)
        self.follow_length += len(text)
        self.markers.append(((self.seq - self.base) % MOD, count))

    def init(self, sequence: int) -> None:
        # tshark: `if (bytes_written == 0 && seq == 0) seq = sequence` (a direction whose
        # number is 0 is initialised again, as there)
        if self.written == 0 and self.seq == 0:
            self.seq = sequence
            if not self.started:
                self.base = sequence
                self.started = True

    def segment(self, sequence: int, length: int, data: bytes) -> None:
        """A segment's payload: `sequence` (one past the SYN's), `length` (tcp.len) and
        the captured bytes `data` (may be fewer than `length` when cut by the snap length)."""
        data_offset = 0
        data_length = len(data)
        if seq_lt(sequence, self.seq):
            nextseq = (sequence + length) % MOD
            if seq_gt(nextseq, self.seq):
                data_offset = (self.seq - sequence) % MOD
                data_length = 0 if data_length <= data_offset else data_length - data_offset
                sequence = self.seq
                length = (nextseq - self.seq) % MOD
        if data_length == 0 or seq_lt(sequence, self.seq):
            return
        chunk = data[data_offset:data_offset + data_length]
        if sequence == self.seq:
            self.seq = (self.seq + length) % MOD
            self.written += len(chunk)
            self._append(chunk)
            while self.check_held(0):
                pass
        elif not self.overflowed:
            self.held.append((sequence, chunk))
            self.held_bytes += len(chunk)
            if self.held_bytes > self.held_limit:
                self.overflowed = True
                self.held.clear()
                self.held_bytes = 0

    def check_held(self, acknowledged: int) -> bool:
        """tshark's check_follow_fragments: append the first held fragment that fits, or
        splice the missing-bytes text when `acknowledged` passes the lowest one."""
        if not self.held:
            return False
        lowest = self.held[0][0]
        for index, (start, data) in enumerate(self.held):
            if seq_gt(lowest, start):
                lowest = start
            if seq_lt(start, self.seq):
                end = (start + len(data)) % MOD
                if seq_gt(end, self.seq):
                    new_pos = (self.seq - start) % MOD
                    if len(data) > new_pos:
                        self._append(data[new_pos:])
                    self.seq = end
                self._drop(index)
                return True
            if start == self.seq:
                if data:
                    self._append(data)
                self.seq = (self.seq + len(data)) % MOD
                self._drop(index)
                return True
        if seq_gt(acknowledged, lowest):
            self._append_marker(_int32(lowest - self.seq))
            self.seq = lowest
            return True
        return False

    def _drop(self, index: int) -> None:
        self.held_bytes -= len(self.held[index][1])
        del self.held[index]

    def finish(self) -> None:
        """End of capture: the held fragments go into "plain" only, in sequence order,
        the holes between them skipped (tshark's output ends before them)."""
        if not self.held:
            return
        if self.plain is None:
            self.plain = self._follow_hash().copy()
        position = self.seq
        for start, data in sorted(self.held, key=lambda item: (item[0] - self.seq) % MOD):
            if seq_gt(start, position):
                self.holes.append(((position - self.base) % MOD, (start - position) % MOD))
                position = start
            skip = (position - start) % MOD
            if skip < len(data) and not seq_lt(start + len(data), position):
                piece = data[skip:]
                self.plain.update(piece)
                self.plain_length += len(piece)
                position = (position + len(piece)) % MOD
        self.held.clear()
        self.held_bytes = 0

    def follow_digest(self) -> str:
        return self._follow_hash().hexdigest()

    def plain_digest(self) -> str:
        return (self.plain or self._follow_hash()).hexdigest()


class FollowStream:
    """Both directions of one tcp.stream; node 0 is the first packet's sender (a sender
    is any key that tells the two endpoints apart)."""

    __slots__ = ("node0", "nodes")

    def __init__(self, first_sender: bytes, held_limit: int = HELD_LIMIT) -> None:
        self.node0 = first_sender
        self.nodes = (FollowDirection(held_limit), FollowDirection(held_limit))

    def packet(self, sender: bytes, seq: int, ack: int, syn: bool, length: int,
               data: bytes) -> None:
        is_server = sender != self.node0
        here, there = self.nodes[is_server], self.nodes[not is_server]
        if there.held:
            while there.check_held(ack):
                pass
        if syn:
            seq = (seq + 1) % MOD
        here.init(seq)
        here.segment(seq, length, data)

    def finish(self) -> None:
        for node in self.nodes:
            node.finish()
