"""What a finished TCP connection leaves behind for its late packets: a compact table.

A stream is finished while the capture goes on (closed and quiet for a while, or idle
too long), and its state is freed. A packet that still comes for it - a final ACK, a
resent FIN, a keep-alive - must count in that stream, not open a new one, and a SYN with
a new sequence number on the same 4-tuple must open a new one (port reuse). So each
finished stream leaves a tombstone: the key of its first direction, when its last packet
was seen, and the ISN of each direction. Wireshark keeps every conversation to the end
of the capture; a tombstone lasts `window` capture seconds after the stream's last packet
(the tracker's `tombstone_timeout`), so the table follows the rate of new connections,
not the length of the capture.

Layout. A busy link has tens of thousands of tombstones live at once, and a dict of bytes
keys to ints costs ~170 bytes an entry. Tombstones arrive in retirement order and expire
in about that order, so they are kept in generations: the newest in a dict, each older
one frozen into four parallel arrays sorted by hash (32 bytes an entry: the key's hash,
a CRC-32 of the key with the two "sent a packet" bits, the end time, both ISNs). A
frozen generation is dropped whole once its newest entry has expired. An entry matches a
key when both the hash (Python's, keyed per process and cached by the key's bytes object;
62 of its bits) and the CRC-32 agree: a false match needs a 94-bit collision. Each frozen
generation has a Bloom filter of its hashes (1-2 bytes an entry), so a lookup of a key it
does not hold (nearly all of them) costs two bit tests there, not a binary search; and
a generation is frozen at `GENERATION_SIZE` entries or a sixteenth of the table,
whichever is more, so that a scan's 100k+ tombstones make tens of generations, not
hundreds.
"""

from __future__ import annotations

import zlib
from array import array
from bisect import bisect_left
from typing import Final

# Entries in the newest generation before it is frozen: lookups cost a binary search per
# frozen generation, freezing a sort of this many entries.
GENERATION_SIZE: Final = 4096

NONE: Final = -1  # find(): no tombstone for that key (or it expired)
_DEAD: Final = -(1 << 62)  # the end time of a removed entry: expired at any time
_HASH_BITS: Final = (1 << 62) - 1
_SEEN_0: Final = 2
_SEEN_1: Final = 1


def pack_isns(isn0: int, isn1: int) -> int:
    """Both directions' ISNs as one value for `add` and `find` (-1: that direction sent
    nothing): (isn0 + 1) << 33 | (isn1 + 1)."""
    return (isn0 + 1) << 33 | (isn1 + 1)


def isn_of(isns: int, direction: int) -> int:
    """The ISN of direction 0 or 1 from a `pack_isns` value, -1 if it sent nothing."""
    return ((isns >> 33 if direction == 0 else isns) & 0x1FFFFFFFF) - 1


class _Frozen:
    """One older generation: parallel arrays sorted by `hashes`."""

    __slots__ = ("hashes", "checks", "ends", "isns", "newest", "bloom", "mask")

    def __init__(self, entries: dict[bytes, tuple[int, int]]) -> None:
        rows = sorted((_hash(key), _check(key, isns), end, isns)
                      for key, (end, isns) in entries.items())
        self.hashes = array("q", [row[0] for row in rows])
        self.checks = array("Q", [row[1] for row in rows])
        self.ends = array("q", [row[2] for row in rows])
        # the ISNs without their "seen" bits, which went into `checks`
        self.isns = array("Q", [_bare_isns(row[3]) for row in rows])
        self.newest = max(self.ends) if rows else _DEAD
        # A Bloom filter of the hashes (8 to 16 bits an entry, two probes: under 5% false
        # positives), so that most lookups skip this generation's binary search. The
        # probes are two bit ranges of the hash, as `index` tests them.
        bits = 64
        while bits < 8 * len(rows):
            bits <<= 1
        mask = self.mask = bits - 1
        bloom = bytearray(bits >> 3)
        for wanted in self.hashes:
            bit = wanted & mask
            bloom[bit >> 3] |= 1 << (bit & 7)
            bit = (wanted >> 32) & mask
            bloom[bit >> 3] |= 1 << (bit & 7)
        self.bloom = bytes(bloom)

    def index(self, key: bytes, wanted: int) -> int:
        """Position of the entry of `key` (whose hash is `wanted`), or -1."""
        bloom, mask = self.bloom, self.mask
        bit = wanted & mask
        if not bloom[bit >> 3] & (1 << (bit & 7)):
            return -1
        bit = (wanted >> 32) & mask
        if not bloom[bit >> 3] & (1 << (bit & 7)):
            return -1
        hashes = self.hashes
        i = bisect_left(hashes, wanted)
        if i == len(hashes) or hashes[i] != wanted:
            return -1  # most lookups (a new connection's first packet) end here
        crc = zlib.crc32(key)
        while i < len(hashes) and hashes[i] == wanted:
            if self.checks[i] >> 2 == crc:
                return i
            i += 1
        return -1

    def isns_at(self, i: int) -> int:
        check = self.checks[i]
        isns = self.isns[i]
        isn0 = (isns >> 32) if check & _SEEN_0 else -1
        isn1 = (isns & 0xFFFFFFFF) if check & _SEEN_1 else -1
        return pack_isns(isn0, isn1)


def _hash(key: bytes) -> int:
    """The key's hash in 62 bits: compiled code does arithmetic on those without making
    an object (the Bloom filter tests take a few nanoseconds then)."""
    return hash(key) & _HASH_BITS


def _check(key: bytes, isns: int) -> int:
    seen0 = _SEEN_0 if isn_of(isns, 0) >= 0 else 0
    seen1 = _SEEN_1 if isn_of(isns, 1) >= 0 else 0
    return zlib.crc32(key) << 2 | seen0 | seen1


def _bare_isns(isns: int) -> int:
    return max(isn_of(isns, 0), 0) << 32 | max(isn_of(isns, 1), 0)


class Tombstones:
    """Finished streams' keys for `window` capture seconds after their last packet.

    A key may be here more than once (a stream on a 4-tuple whose older tombstone had
    expired): the newest entry is the one `find` answers with."""

    def __init__(self, window: float) -> None:
        self.window_us = int(window * 1e6)
        self._newest: dict[bytes, tuple[int, int]] = {}  # key -> (end in us, isns)
        self._frozen: list[_Frozen] = []  # oldest first
        self._held = 0  # entries in frozen generations, expired and removed ones included

    def __len__(self) -> int:
        """Entries held (expired ones until their generation is dropped)."""
        return len(self._newest) + self._held

    def add(self, key: bytes, end: float, isns: int) -> None:
        """Remember a finished stream: `end` its last packet's time, `isns` from
        `pack_isns`."""
        newest = self._newest
        newest[key] = (int(end * 1e6), isns)
        if len(newest) >= GENERATION_SIZE and len(newest) >= self._held >> 4:
            frozen = _Frozen(newest)
            self._frozen.append(frozen)
            self._held += len(frozen.hashes)
            self._newest = {}

    def find(self, key: bytes, now: float) -> int:
        """The `pack_isns` value of the key's tombstone, or NONE when there is none, it
        was removed, or its stream's last packet is more than `window` before `now`."""
        oldest = int(now * 1e6) - self.window_us
        entry = self._newest.get(key)
        if entry is not None:
            return entry[1] if entry[0] >= oldest else NONE
        wanted = _hash(key)
        for frozen in reversed(self._frozen):
            i = frozen.index(key, wanted)
            if i >= 0:
                return frozen.isns_at(i) if frozen.ends[i] >= oldest else NONE
        return NONE

    def remove(self, key: bytes) -> None:
        """Forget the key's tombstones (a new stream took its 4-tuple): older entries of
        the key must not come back in its place."""
        self._newest.pop(key, None)
        wanted = _hash(key)
        for frozen in self._frozen:
            i = frozen.index(key, wanted)
            if i >= 0:
                frozen.ends[i] = _DEAD

    def expire(self, now: float) -> None:
        """Drop the oldest frozen generations once every entry in them is past the
        window at `now`."""
        oldest = int(now * 1e6) - self.window_us
        frozen = self._frozen
        while frozen and frozen[0].newest < oldest:
            self._held -= len(frozen.pop(0).hashes)
