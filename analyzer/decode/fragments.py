"""IPv4 and IPv6 fragment reassembly with bounded buffers.

Datagrams are held until complete, for at most `timeout` seconds of capture time, and the
bytes held across all datagrams are capped; what falls out is counted, never kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

MAX_DATAGRAM: Final = 65535 + 40  # IPv6 jumbograms are not fragmented; 64 KiB is the ceiling
MAX_HELD_BYTES: Final = 8 << 20
MAX_DATAGRAMS: Final = 4096
TIMEOUT: Final = 60.0  # seconds of capture time (Linux drops after 30, Windows 60)


class _Datagram:
    def __init__(
        self,
        first_ts: float,
        pieces: dict[int, bytes] | None = None,
        total: int | None = None,
        held: int = 0,
    ) -> None:
        self.first_ts = first_ts
        self.pieces = {} if pieces is None else pieces  # offset -> bytes
        self.total = total  # known once the last fragment (MF=0) arrives
        self.held = held


class FragmentReassembler:
    """Collects fragments by (version, src, dst, id, proto); returns whole payloads."""

    def __init__(self) -> None:
        # Oldest first. An OrderedDict, not a dict: the oldest is taken out on every
        # fragment once the table is full (200k never-completed datagrams), and a dict
        # finds its first item by scanning past the slots of those removed before it.
        self._pending: OrderedDict[tuple, _Datagram] = OrderedDict()
        self.held_bytes = 0
        self.reassembled = 0
        self.dropped = 0  # datagrams given up: timeout, memory cap, impossible sizes
        self.overlaps = 0

    def add(self, key: tuple, offset: int, more: bool, data: bytes | memoryview,
            ts: float) -> bytes | None:
        """Add one fragment; return the reassembled payload when the datagram is whole."""
        self._expire(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            self.dropped += 1
            self._discard(key)
            return None
        dgram = self._pending.get(key)
        if dgram is None:
            if len(self._pending) >= MAX_DATAGRAMS:
                self._discard_oldest()
            dgram = self._pending[key] = _Datagram(first_ts=ts)
        if not more:
            dgram.total = end
        if offset in dgram.pieces:
            self.overlaps += 1  # a repeated fragment: the first copy stands
        else:
            piece = bytes(data)
            dgram.pieces[offset] = piece
            dgram.held += len(piece)
            self.held_bytes += len(piece)
        while self.held_bytes > MAX_HELD_BYTES and self._pending:
            self._discard_oldest()
        if key not in self._pending or dgram.total is None:
            return None
        return self._assemble(key, dgram)

    def _assemble(self, key: tuple, dgram: _Datagram) -> bytes | None:
        out = bytearray()
        for offset in sorted(dgram.pieces):
            piece = dgram.pieces[offset]
            if offset > len(out):
                return None  # a hole: wait for more
            if offset < len(out):
                self.overlaps += 1
                piece = piece[len(out) - offset:]
            out += piece
        assert dgram.total is not None
        if len(out) < dgram.total:
            return None
        self._discard(key)
        self.reassembled += 1
        return bytes(out[:dgram.total])

    def _discard(self, key: tuple) -> None:
        dgram = self._pending.pop(key, None)
        if dgram is not None:
            self.held_bytes -= dgram.held

    def _discard_oldest(self) -> None:
        _, dgram = self._pending.popitem(last=False)
        self.held_bytes -= dgram.held
        self.dropped += 1

    def _expire(self, ts: float) -> None:
        pending = self._pending
        while pending:
            key, oldest = next(iter(pending.items()))
            if ts - oldest.first_ts <= TIMEOUT:
                return
            self._discard_oldest()

    @property
    def pending(self) -> int:
        return len(self._pending)
