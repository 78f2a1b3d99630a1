"""One TFTP transfer: its facts, the file rebuilt from its DATA blocks, and what was
counted while it went on (sans-IO).

Theory of operation
-------------------
The tracker (`analyzer.tftp.tracker`) finds a transfer's packets and hands each message
to it: `on_data`, `on_ack`, `on_error`, `on_oack`. Blocks get absolute numbers (the
16-bit number wraps 65535 -> 0, or -> 1 on some servers: the first DATA after the wrap
decides). The file is rebuilt in block order and hashed on the fly; only blocks that
arrive ahead of a gap are held. A gap becomes permanent once the receiver acknowledges
past it (it got them, so nobody will resend), when more than MAX_HELD_BYTES are held,
or at the end; it is zero-filled (full blocks) and recorded. Holes cost at most
MAX_FILL_BYTES of zeros per file: a hole that would take the total past that (block
numbers that jump, a huge OACK blksize, DATA claiming a 1 TiB file) ends the file where it
starts, and the `file-cut` finding names it; blocks after it are counted, not written.
The final block is the first shorter than the blksize in effect (the OACK's value, not
clamped), so an empty final block after an exact multiple needs no special case.
netascii is decoded as it streams.

Findings that are clear at once are made with `note`; those that may repeat are
`count`ed (first frame, how often, the parameters of the first) and turned into
findings at the end by `analyzer.tftp.verdicts`. `settle` fixes the status and gaps,
`close_output` hands the file to the sink, `release` drops what only tracking needed.

File bytes go to an optional sink (`FileSink`): the transfer never touches files, and
keeps no file in memory.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, NamedTuple, Protocol

from analyzer.decode.packet import Packet, format_endpoint
from analyzer.tftp.codec import (
    DEFAULT_BLKSIZE,
    DEFAULT_WINDOWSIZE,
    RRQ,
    Error,
    OAck,
    Options,
    Request,
    error_name,
    format_options,
    option_int,
    options_dict,
)
from analyzer.tftp.findings import (
    BLKSIZE_EXCEEDED,
    CONTENT_CHANGED,
    DATA_AFTER_FINAL,
    DATA_BEFORE_ACK0,
    DUPLICATE_REQUEST,
    ERROR_AFTER_COMPLETE,
    LATE_OACK,
    OPTIONS_IGNORED,
    SHORT_BLOCK,
    SORCERERS_APPRENTICE,
    TRUNCATED,
    UNEXPECTED_PACKET,
    Finding,
    FindingKind,
)
from analyzer.tftp.netascii import NetasciiDecoder

CLIENT: Final = "client"
SERVER: Final = "server"

# Bytes held ahead of a gap before the gap is declared lost for good (per transfer): the
# receiver's ACKs usually settle a gap long before (they are missing only when the
# capture saw one direction).
MAX_HELD_BYTES: Final = 8 << 20
# What a held block costs besides its bytes (so empty or tiny blocks are bounded too).
_HELD_OVERHEAD: Final = 64
# Zero bytes a rebuilt file may get for its holes, in all: past that, the file ends at
# the hole (see the module docstring). Zeros are written this much at a time.
MAX_FILL_BYTES: Final = 16 << 20
_ZEROS: Final = bytes(1 << 20)
# Wrap detection: a block number this far below the expected one is past a rollover.
_HALF: Final = 32768
# Only this close to block 65535 can a small block number mean a wrap.
_WRAP_ZONE: Final = 65536 - 4096


class Gap(NamedTuple):
    """Blocks (absolute numbers) the capture never saw; offset/length in the rebuilt file.

    `last` and `length` are None for a missing tail of unknown size.
    """

    first: int
    last: int | None
    offset: int
    length: int | None


class TimelineEvent(NamedTuple):
    """One packet of a transfer, for `tftp show` (recorded only when asked)."""

    frame: int
    ts: float
    sender: str  # CLIENT, SERVER, or an endpoint text for strays
    kind: str  # RRQ, WRQ, DATA, ACK, ERROR, OACK, ICMP, MALFORMED
    block: int | None  # absolute block number for DATA/ACK
    length: int | None  # DATA payload bytes
    note: str  # "", "retransmission", "final", "duplicate request", error text, ...


class FileWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self, transfer: TftpTransfer) -> str | None: ...


class FileSink(Protocol):
    """Where rebuilt files go: `open` when a transfer's first byte arrives, then in-order
    `write`s (gaps already zero-filled), then `close` with the finished transfer, which
    returns the path written."""

    def open(self, transfer: TftpTransfer) -> FileWriter: ...


class TftpTransfer:
    """One TFTP request and everything that followed it: the result object.

    Public attributes below "Matching state" and "Verdict state" are for the tracker's
    matching and for `verdicts`; they are emptied by `release`.
    """

    def __init__(self, number: int, request: Request, pkt: Packet,
                 sink: FileSink | None = None) -> None:
        self.number = number
        self.request = request
        self.client_addr = pkt.src
        self.client_port = pkt.sport
        self.request_addr = pkt.dst
        self.listen_port = pkt.dport
        self.server_addr: bytes | None = None
        self.server_port: int | None = None
        self.start = pkt.ts
        self.end = pkt.ts
        self.first_frame = pkt.frame
        self.packets = 1
        self.requests = 1
        self.data_sender = SERVER if request.opcode == RRQ else CLIENT
        mode = request.mode.lower()
        self.netascii = mode == "netascii"
        self.options: dict[str, str] = options_dict(request.options)
        self.oack: Options | None = None
        self.blksize = DEFAULT_BLKSIZE
        self.windowsize = DEFAULT_WINDOWSIZE
        self.timeout: int | None = None
        self.tsize: int | None = None
        self.status = "incomplete"
        self.error: Error | None = None
        self.error_frame: int | None = None
        self.error_by: str | None = None
        self.ended = False  # final block acknowledged, or an ERROR: no more data expected
        self.bytes = 0
        self.wire_bytes = 0
        self.blocks = 0
        self.retransmissions = 0
        self.gaps: list[Gap] = []
        self.cut: Gap | None = None  # the hole the file ends at (see MAX_FILL_BYTES)
        self._filled = 0  # zero bytes the file got for holes so far
        self.extracted: str | None = None
        self.findings: list[Finding] = []
        self.events: list[TimelineEvent] | None = None
        self.rollover: int | None = None  # 0 or 1: what block number followed 65535
        self.rollover_frame: int | None = None
        self.wrap_undecided = False  # the blocks around the wrap are missing (`absolute`)
        self.wrap_unknown = False  # ... and nothing told which way it wrapped
        # Matching state (the tracker's TID lock and strays).
        self.strays: list[Stray] = []
        self.stray_answers: dict[int, str] = {}  # stray frame -> how it was answered
        self.client_answered = False  # the client has sent to the locked server TID
        self.locked_frame = 0
        # Verdict state.
        self.counted: dict[FindingKind, list[Any]] = {}  # kind -> [first frame, count, params]
        self.first_resend: tuple[str, float, int] | None = None  # what, spacing, frame
        # Reassembly state.
        self._sink = sink
        self._hash: Any = None
        self._sha256: str | None = None  # the file's digest, once `release`d
        self._next = 1  # next absolute block to append to the file
        self._final: int | None = None  # absolute number of the final block, once seen
        self._held: dict[int, bytes] = {}
        self._held_bytes = 0
        self._acked = 0  # highest block the receiver acknowledged (absolute)
        self._full_size = DEFAULT_BLKSIZE  # size of a non-final block, for zero fill
        self._decoder = NetasciiDecoder() if self.netascii else None
        self._writer: FileWriter | None = None
        # block -> (first sent, size, digest of the data): a digest, not the data, so a
        # finished transfer kept for the report holds a few bytes per recent block
        self._recent: dict[int, tuple[float, int, bytes]] = {}
        self._ack_copies: dict[int, int] = {}  # recent blocks -> ACKs seen
        self._data_copies: dict[int, int] = {}  # recent blocks -> DATA copies seen
        self._ack0_seen = False
        self._data_seen = False
        self._request_ts = pkt.ts
        self._oack_ts: float | None = None

    # -- identity ------------------------------------------------------------------------

    @property
    def client(self) -> str:
        return format_endpoint(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        if self.server_port is None or self.server_addr is None:
            return format_endpoint(self.request_addr, self.listen_port)
        return format_endpoint(self.server_addr, self.server_port)

    @property
    def sha256(self) -> str | None:
        return self._sha256 if self._hash is None else self._hash.hexdigest()

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def complete(self) -> bool:
        """The final block is in the file (gaps or not)."""
        return self._final is not None and self._next > self._final

    # -- findings and timeline -----------------------------------------------------------

    def note(self, kind: FindingKind, frame: int | None, **params: object) -> None:
        self.findings.append(kind.at(frame, **params))

    def count(self, kind: FindingKind, frame: int, **params: object) -> None:
        """A finding that may repeat: keep the first frame, its parameters and how often
        it happened (`verdicts` makes the finding)."""
        entry = self.counted.get(kind)
        if entry is None:
            self.counted[kind] = [frame, 1, params]
        else:
            entry[1] += 1

    def resent(self, what: str, spacing: float, frame: int) -> None:
        """Something was sent again `spacing` s after the original: the first one counts."""
        if self.first_resend is None:
            self.first_resend = (what, spacing, frame)

    def event(self, pkt: Packet, sender: str, kind: str, block: int | None = None,
              length: int | None = None, note: str = "") -> None:
        if self.events is not None:
            self.events.append(TimelineEvent(pkt.frame, pkt.ts, sender, kind, block, length,
                                             note))

    # -- messages ------------------------------------------------------------------------

    def on_request_again(self, pkt: Packet) -> None:
        """The client sent the same request again before the transfer ended."""
        self.requests += 1
        self.packets += 1
        self.end = pkt.ts
        self.resent(self.request.name, pkt.ts - self._request_ts, pkt.frame)
        self.count(DUPLICATE_REQUEST, pkt.frame)
        self.event(pkt, CLIENT, self.request.name, note="duplicate request")

    def on_oack(self, pkt: Packet, oack: OAck) -> bool:
        """The server's OACK: True when it is the first and puts its values in effect (the
        caller judges them), False for a resend or a late one."""
        if self.oack is not None:
            self.event(pkt, SERVER, "OACK", note="retransmission")
            if self._oack_ts is not None:
                self.resent("OACK", pkt.ts - self._oack_ts, pkt.frame)
            return False
        self.event(pkt, SERVER, "OACK", note=format_options(oack.options))
        if self._data_seen:
            self.note(LATE_OACK, pkt.frame)
            return False
        self.oack = oack.options
        self._oack_ts = pkt.ts
        acked = options_dict(oack.options)
        blksize = option_int(acked.get("blksize"))
        if blksize is not None:
            self.blksize = blksize
            self._full_size = max(blksize, 1)
        windowsize = option_int(acked.get("windowsize"))
        if windowsize is not None:
            self.windowsize = windowsize
        self.timeout = option_int(acked.get("timeout"))
        self.tsize = option_int(acked.get("tsize"))
        return True

    def on_data(self, pkt: Packet, wire_block: int, payload: bytes | memoryview) -> None:
        length = pkt.payload_len - 4  # what was sent, even if the capture cut it
        if not self._data_seen:
            self._data_seen = True
            self._first_data_checks(pkt)
        block = self.absolute(wire_block, pkt.frame, is_data=True)
        if self.wrap_undecided and length < self.blksize and self.tsize is not None \
                and block >= 65536:
            # The final block's place, by tsize: where a wrap to 0 puts it, or one earlier.
            place = self.tsize // self._full_size + 1
            if place == block - 1:
                self._wrap_to_one()
                block -= 1
            elif place == block:
                self.wrap_undecided = False
        if length > self.blksize:
            self.count(BLKSIZE_EXCEEDED, pkt.frame, block=wire_block, length=length,
                       blksize=self.blksize)
            if length > self._full_size:
                self._full_size = length
        if block < self._next or block in self._held:
            self._duplicate_data(pkt, block, payload)
            return
        final = self._final
        if final is not None and block > final:
            if self.error is not None or block != final + 1:
                self.count(DATA_AFTER_FINAL, pkt.frame, block=block)
                self.event(pkt, self.data_sender, "DATA", block, length,
                           "after the final block")
                return
            # The short block was not the end after all: the sender is not using the
            # negotiated block size (say 512-byte blocks after an OACK of 1024).
            size = self._recent[final][1] if final in self._recent else 0
            self.count(SHORT_BLOCK, pkt.frame, block=final, size=size, blksize=self.blksize)
            if size:
                self._full_size = size
            self._final = None
            if self.ended:
                self.ended = False
                if self.netascii and self._decoder is None:
                    self._decoder = NetasciiDecoder()
        if pkt.truncated:
            self.count(TRUNCATED, pkt.frame, block=block)
            payload = bytes(payload) + bytes(length - len(payload))
        if len(self._recent) > 2 * max(1, self.windowsize) + 2:
            self._recent.pop(next(iter(self._recent)))
        self._recent[block] = (pkt.ts, len(payload), _digest(payload))
        final = length < self.blksize
        if final:
            self._final = block
        self.event(pkt, self.data_sender, "DATA", block, length, "final" if final else "")
        self.blocks += 1
        if block == self._next:
            self.append(payload)
            self._next += 1
            if self._held:
                self.drain(force=False)
        else:
            self._held[block] = bytes(payload)
            self._held_bytes += len(payload) + _HELD_OVERHEAD
            if self._held_bytes > MAX_HELD_BYTES:
                self.drain(force=True)
            else:
                self.drain(force=False)

    def _first_data_checks(self, pkt: Packet) -> None:
        request = self.request
        if self.oack is None and request.options:
            self.note(OPTIONS_IGNORED, pkt.frame)
        if request.opcode == RRQ and self.oack is not None and not self._ack0_seen:
            self.note(DATA_BEFORE_ACK0, pkt.frame)

    def _duplicate_data(self, pkt: Packet, block: int, payload: bytes | memoryview) -> None:
        self.retransmissions += 1
        recent = self._recent.get(block)
        note = "retransmission"
        if recent is not None:
            first_sent, _size, digest = recent
            self.resent(f"DATA {block}", pkt.ts - first_sent, pkt.frame)
            if _digest(payload) != digest and not pkt.truncated:
                self.count(CONTENT_CHANGED, pkt.frame, block=block)
                note = "retransmission with different content"
        elif block in self._held and bytes(payload) != self._held[block]:
            self.count(CONTENT_CHANGED, pkt.frame, block=block)
        # Sorcerer's Apprentice (RFC 1123 4.2.3.1): every copy of ACK n-1 made the sender
        # send DATA n once more. Windowed transfers legitimately resend on an ACK.
        copies = self._data_copies.get(block, 1) + 1
        self._data_copies[block] = copies
        if len(self._data_copies) > 8:
            self._data_copies.pop(next(iter(self._data_copies)))
        if self.windowsize <= 1 and self._ack_copies.get(block - 1, 0) >= copies:
            self.count(SORCERERS_APPRENTICE, pkt.frame, block=block, acked=block - 1)
            note = "sent again for a duplicate ACK"
        self.event(pkt, self.data_sender, "DATA", block, pkt.payload_len - 4, note)

    def on_ack(self, pkt: Packet, wire_block: int) -> None:
        undecided = self.wrap_undecided
        block = self.absolute(wire_block, pkt.frame, is_data=False)
        receiver = CLIENT if self.data_sender == SERVER else SERVER
        acks = self._ack_copies
        copies = acks.get(block, 0) + 1
        acks[block] = copies
        if len(acks) > 8:
            acks.pop(next(iter(acks)))
        note = "duplicate" if copies > 1 else ""
        if block == 0 and self.request.opcode == RRQ:
            self._ack0_seen = True
            if self.oack is None:
                self.count(UNEXPECTED_PACKET, pkt.frame, what="ACK 0 without an OACK")
        if block > self._acked:
            self._acked = block
            if self._held:
                self.drain(force=False)
        elif undecided and not self.wrap_undecided and self._held:
            self.drain(force=False)  # an ACK 0 told the wrap: the hole can be filled
        final = self._final
        if final is not None and block >= final and self._next > final:
            note = note or "final"
            self.ended = True
            self.close_file()
        self.event(pkt, receiver, "ACK", block, note=note)

    def on_error(self, pkt: Packet, error: Error, sender: str) -> None:
        self.event(pkt, sender, "ERROR",
                   note=f"{error.code} {error_name(error.code)}: {error.message}")
        if self.error is not None:
            return
        self.error = error
        self.error_frame = pkt.frame
        self.error_by = sender
        if self.complete:
            self.note(ERROR_AFTER_COMPLETE, pkt.frame, sender=sender, code=error.code,
                      name=error_name(error.code))
        else:
            self.ended = True

    # -- block numbers -------------------------------------------------------------------

    def absolute(self, wire: int, frame: int, is_data: bool) -> int:
        """Map a 16-bit block number to its absolute number near the expected block.

        The first wrap decides the policy, 65535 -> 0 or -> 1, from the first number
        after it, DATA or ACK, that tells: a 0 follows only a wrap to 0, a 1 right after
        block 65535 is a wrap to 1 (a wrap to 0 would have shown its 0 first, unless the
        capture missed both its DATA and its ACK). A DATA numbered higher, or a 1 after
        a hole, when the capture missed the blocks around the wrap, does not tell: it is
        taken as a wrap to 0 for now, the blocks after it are held and the hole left
        unfilled (`wrap_undecided`) until an ACK 0 or the final block's place, given a
        tsize, tells (`_wrap_to_one`); else, when the blocks must be written, it stays 0
        and `wrap_unknown` says that it could not be told."""
        reference = self._next
        policy = self.rollover
        if policy is None:
            if reference - wire < _HALF or reference < _WRAP_ZONE:
                return wire
            if wire == 0 or (wire == 1 and reference == 65536):
                policy = wire
            elif is_data:
                policy = 0
                self.wrap_undecided = True
            else:
                return wire + 65536  # an ACK that does not tell (the hole's end, say)
            self.rollover = policy
            self.rollover_frame = frame
        elif self.wrap_undecided and wire == 0 and reference <= 65536:
            self.wrap_undecided = False  # block 0 after the wrap: it wrapped to 0
        if policy == 1:
            if wire == 0 or reference < _HALF:
                best = wire
            else:
                cycle = max(1, round((reference - wire) / 65535))
                best = wire
                for k in (cycle - 1, cycle, cycle + 1):
                    if k >= 1:
                        candidate = 65535 * k + wire
                        if abs(candidate - reference) < abs(best - reference):
                            best = candidate
            return best
        cycle = round((reference - wire) / 65536)
        return wire + 65536 * max(0, cycle)

    def _wrap_to_one(self) -> None:
        """The undecided wrap was to 1: every block after it is one place earlier."""
        def moved(table: dict[int, Any]) -> dict[int, Any]:
            return {(k - 1 if k >= 65536 else k): v for k, v in table.items()}

        self._held = moved(self._held)
        self._recent = moved(self._recent)
        self._ack_copies = moved(self._ack_copies)
        self._data_copies = moved(self._data_copies)
        if self._final is not None and self._final >= 65536:
            self._final -= 1
        if self._acked >= 65536:
            self._acked -= 1
        self.rollover = 1
        self.wrap_undecided = False

    # -- the rebuilt file ----------------------------------------------------------------

    def append(self, chunk: bytes | memoryview) -> None:
        """Add the next block's bytes to the file (hash, size, sink)."""
        if self.cut is not None:
            return  # the file ended at a hole too large to fill
        self.wire_bytes += len(chunk)
        if self._decoder is not None:
            chunk = self._decoder.decode(chunk)
        self._emit(chunk)

    def _emit(self, chunk: bytes | memoryview) -> None:
        if self._hash is None:
            self._hash = hashlib.sha256()
            if self._sink is not None:
                self._writer = self._sink.open(self)
        if not chunk:
            return
        self._hash.update(chunk)
        self.bytes += len(chunk)
        if self._writer is not None:
            self._writer.write(bytes(chunk))

    def drain(self, force: bool) -> None:
        """Append held blocks that are now in order, filling gaps that are permanent
        (acknowledged past, or all of them when `force`d)."""
        held = self._held
        if force:
            if self.wrap_undecided:  # the blocks must be written now: 0 it stays
                self.wrap_undecided = False
                self.wrap_unknown = True
            # In block order, each hole filled: one sort, however many are held.
            for block in sorted(held):
                if block > self._next:
                    self._fill_gap(self._next, block - 1)
                chunk = held.pop(block)
                self._held_bytes -= len(chunk) + _HELD_OVERHEAD
                self.append(chunk)
                self._next = block + 1
            return
        while held:
            block = self._next
            if block in held:
                chunk = held.pop(block)
                self._held_bytes -= len(chunk) + _HELD_OVERHEAD
                self.append(chunk)
                self._next += 1
                continue
            if self._acked < block or self.wrap_undecided:
                return  # (a hole at an undecided wrap: its length is not known yet)
            self._fill_gap(block, min(min(held) - 1, self._acked))

    def _fill_gap(self, first: int, last: int) -> None:
        """Blocks the capture never saw but the transfer went past: zeros in the file,
        unless they would take the file's zeros past MAX_FILL_BYTES: then it ends here."""
        self._next = last + 1
        if self.cut is not None:
            return
        self._flush_decoder()
        length = (last - first + 1) * self._full_size
        gap = Gap(first, last, self.bytes, length)
        self.gaps.append(gap)
        if self._filled + length > MAX_FILL_BYTES:
            self.cut = gap
            if self._hash is None:
                self._emit(b"")  # the file exists, empty, so the cut is in it
            return
        self._filled += length
        self.wire_bytes += length
        while length:
            zeros = _ZEROS[:min(length, len(_ZEROS))]
            self._emit(zeros)
            length -= len(zeros)

    def _flush_decoder(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._emit(rest)

    def close_file(self) -> None:
        """No more file bytes: the netascii decoder gives up a CR it held back."""
        self._flush_decoder()
        self._decoder = None

    # -- the end -------------------------------------------------------------------------

    def settle(self) -> None:
        """The transfer is over: fill what is still held, record the missing tail, set the
        status (findings come from `verdicts`, then `close_output`)."""
        if self._held:
            self.drain(force=True)
        self.close_file()
        complete = self.complete
        if not complete and self._hash is not None:
            expected = None
            if self.tsize is not None and self._full_size > 0:
                expected = self.tsize // self._full_size + 1
            last = expected if expected is not None and expected >= self._next else None
            self.gaps.append(Gap(self._next, last, self.bytes, None))
        elif not complete and self.tsize and self.error is None:
            self.gaps.append(Gap(1, self.tsize // self._full_size + 1, 0, None))
        if self.error is not None and not complete:
            self.status = "error"
        elif complete and not self.gaps:
            self.status = "complete"
        else:
            self.status = "incomplete"

    def close_output(self) -> None:
        """Hand the rebuilt file to the sink, which names it (`extracted`)."""
        if self._writer is not None:
            self.extracted = self._writer.close(self)
            self._writer = None

    def release(self) -> None:
        """Settled: drop what only tracking needed (the result keeps a few hundred bytes)."""
        if self._hash is not None:
            self._sha256 = self._hash.hexdigest()
            self._hash = None
        self._held.clear()
        self.counted.clear()
        self._recent.clear()
        self._ack_copies.clear()
        self._data_copies.clear()
        self.strays.clear()
        self.stray_answers.clear()


class UnansweredRequest:
    """A request sent once that nobody answered, settled as it is: never made a
    `TftpTransfer`, whose result would say no more (status incomplete, no block, nothing
    counted, no finding) and whose making took most of the time of reading a port-69
    scan. The tracker hands these to its `on_unanswered`, when it is given one."""

    def __init__(self, number: int, first_frame: int, start: float, client_addr: bytes,
                 client_port: int, request_addr: bytes, listen_port: int,
                 request: Request) -> None:
        self.number = number
        self.first_frame = first_frame
        self.start = start
        self.client_addr = client_addr
        self.client_port = client_port
        self.request_addr = request_addr
        self.listen_port = listen_port
        self.request = request

    @property
    def client(self) -> str:
        return format_endpoint(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        """Where the request went (as a transfer nobody answered names its server)."""
        return format_endpoint(self.request_addr, self.listen_port)


# (after TftpTransfer: a compiled NamedTuple cannot refer to a class defined later)
class Stray(NamedTuple):
    """A packet that reached one side of a transfer from an endpoint that is not its peer."""

    transfer: TftpTransfer
    side: str  # the side the stray packet was sent to
    frame: int
    sender: str  # endpoint text of the stray sender
    what: str  # what the stray packet was
    key: tuple[bytes, int]  # the stray sender's (address, port)


def _digest(data: bytes | memoryview) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()
