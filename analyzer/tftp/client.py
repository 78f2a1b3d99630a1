"""A sans-IO TFTP client: the protocol of `tftp get`, `tftp put` and the server checker.

Theory of operation
-------------------
`TftpClient` is a state machine in the style of h11: it never touches a socket, a clock
or a file. The driver feeds it events by calling its methods, and each call returns the
list of actions the driver must carry out, in order:

    inputs (methods)                        outputs (actions)
    ----------------                        -----------------
    start()                                 Send(payload, to, stray=False)
    receive(datagram, sender)               SetTimer(seconds) / CancelTimer()
    timer_expired()                         Write(data)          file bytes of a get
    provide(data, eof)   (put: file bytes)  NeedData(n)          a put wants n more bytes
    abort()              (user's Ctrl-C)    Progress(done, total)
    local_failure(msg)   (disk full, ...)
                                            Finished(outcome)    always the last action

States (`client.state`):

    REQUESTING --first DATA/OACK/ACK 0--> TRANSFERRING --last block acked--> DONE
        |   \\--ERROR 8 to our options: REQUESTING again, once, without options
        \\------ ERROR, timeout after retries, abort, protocol violation ------> DONE

* TID lock (RFC 1350 section 4): the first answer to the request fixes the peer (address
  and port). Datagrams from any other endpoint get ERROR 5 and are otherwise ignored.
* Options (RFC 2347/2348/2349/7440): an OACK may only carry options we asked for, with
  blksize and windowsize no larger than asked and timeout equal to it; otherwise ERROR 8.
  Options left out of the OACK take their defaults; DATA 1 (get) or ACK 0 (put) instead of
  an OACK means no option was accepted. An ERROR 8 answer to our options makes the client
  ask once more without options, and the outcome notes it.
* Timeouts: the last packet sent (the request, the last ACK, the unacknowledged DATA
  window) is resent when the timer expires, with the wait doubling each time (up to 8x
  the base) and at most `retries` times in a row. A duplicate ACK never makes us resend
  DATA (the Sorcerer's Apprentice bug of RFC 1350); a duplicate DATA is ACKed again but
  not written again.
* Block numbers are 16-bit on the wire and wrap 65535 -> 0; the machine counts absolute
  blocks so files of any size work. A file whose size is a multiple of the block size
  ends with an empty DATA block.
* Windows (RFC 7440): a get ACKs every `windowsize` in-order blocks; on a gap (a lost
  block) it ACKs the last in-order block once, and the sender goes on from there. A put
  sends a window of blocks and slides it on each ACK.
* Netascii: a get decodes the wire (CR LF -> LF, CR NUL -> CR) across block boundaries;
  a put encodes the file (LF -> CR LF, CR -> CR NUL).
* Failures are outcomes, not exceptions: a DATA larger than blksize, data beyond the
  announced tsize, a block number jumping past the window, an unexpected opcode each end
  the transfer with an ERROR sent to the peer and `status == "error"`.

Misbehaviour on purpose (`Misbehaviour`, for a server checker): withhold the ACK of one
block once, send one ACK twice, send one ACK from a second local port (`Send.stray`: the
driver uses another socket), or send a request with chosen options or chosen raw bytes.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final, NamedTuple

from analyzer.tftp import codec
from analyzer.tftp.codec import (  # noqa: F401 - the defaults are the client's API
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    Ack,
    Data,
    Error,
    OAck,
    Options,
    Request,
)
from analyzer.tftp.netascii import NetasciiDecoder, netascii_encode

if TYPE_CHECKING:
    from analyzer.tcp.digest import Sha256

Endpoint = tuple[str, int]

REQUESTING: Final = "requesting"
TRANSFERRING: Final = "transferring"
DONE: Final = "done"

MAX_BACKOFF: Final = 8.0  # the retransmit wait grows up to this many times the base
_ACK: Final = struct.Struct("!HH")
_DATA: Final = codec.DATA
PROGRESS_EVERY: Final = 31  # a get reports progress every 32 blocks (and at the end)


# ---------------------------------------------------------------- actions (outputs)

class Send(NamedTuple):
    """Send `payload` to `to`; `stray`: from a second local port (a misbehaviour hook)."""

    payload: bytes
    to: Endpoint
    stray: bool = False


class SetTimer(NamedTuple):
    seconds: float


class CancelTimer(NamedTuple):
    pass


class Write(NamedTuple):
    """File bytes of a get, in order, netascii already decoded."""

    data: bytes


class NeedData(NamedTuple):
    """A put needs up to `size` more file bytes: answer with `provide(data, eof)`."""

    size: int


class Progress(NamedTuple):
    done: int
    total: int | None




# ---------------------------------------------------------------- configuration, outcome

class Misbehaviour(NamedTuple):
    """Deliberate protocol faults for testing servers; all off by default.

    `withhold_ack`: do not ACK this (absolute) block the first time it arrives.
    `repeat_ack`: send the ACK of this block twice.
    `stray_ack`: after ACKing this block, send the same ACK again from a second local port.
    `raw_request`: send these bytes instead of the encoded request.
    """

    withhold_ack: int | None = None
    repeat_ack: int | None = None
    stray_ack: int | None = None
    raw_request: bytes | None = None


class ClientConfig(NamedTuple):
    """One transfer. `put` uploads; `blksize`/`windowsize`/`timeout_option` None: not asked.

    `tsize`: ask for it (get: we send 0; put: we send `put_size`, the wire size, if known).
    `raw_options`: send exactly these options instead of the ones built from the fields.
    `hash_get`: False leaves a get's `sha256` empty for the driver to fill in.
    """

    server: Endpoint
    filename: str
    put: bool = False
    mode: str = "octet"
    blksize: int | None = None
    windowsize: int | None = None
    timeout_option: int | None = None
    tsize: bool = False
    put_size: int | None = None
    use_options: bool = True
    raw_options: Options | None = None
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    misbehaviour: Misbehaviour = Misbehaviour()
    hash_get: bool = True  # False: the driver computes a get's sha256 from the Writes

    def options(self) -> Options:
        if self.raw_options is not None:
            return self.raw_options
        if not self.use_options:
            return ()
        out: list[tuple[str, str]] = []
        if self.blksize is not None:
            out.append(("blksize", str(self.blksize)))
        if self.tsize:
            if not self.put:
                out.append(("tsize", "0"))
            elif self.put_size is not None:
                out.append(("tsize", str(self.put_size)))
        if self.timeout_option is not None:
            out.append(("timeout", str(self.timeout_option)))
        if self.windowsize is not None:
            out.append(("windowsize", str(self.windowsize)))
        return tuple(out)


class ClientError(NamedTuple):
    code: int
    message: str
    origin: str  # "server" or "client"


class ClientOutcome(NamedTuple):
    """What a transfer came to; `seconds` and `local` are filled in by the driver."""

    server: Endpoint
    peer: Endpoint | None
    request: str
    filename: str
    mode: str
    options: Options
    oack: Options | None
    blksize: int
    windowsize: int
    status: str  # complete, error, timeout, aborted
    error: ClientError | None
    bytes: int
    sha256: str
    retransmitted: int
    duplicates: int
    reason: str
    notes: tuple[str, ...] = ()
    tsize: int | None = None
    foreign: int = 0  # datagrams from other endpoints, answered with ERROR 5
    seconds: float = 0.0
    local: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "complete"

    def with_run(self, seconds: float, local: str | None) -> ClientOutcome:
        return self._replace(seconds=seconds, local=local)


# Defined after ClientOutcome: a NamedTuple field naming a later class crashes mypyc code.
class Finished(NamedTuple):
    outcome: ClientOutcome


Action = Send | SetTimer | CancelTimer | Write | NeedData | Progress | Finished


# ---------------------------------------------------------------- the machine

class TftpClient:
    """One RRQ or WRQ transfer; see the module docstring."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self.state = REQUESTING
        self.options: Options = config.options()
        self.asked = codec.options_dict(self.options)
        self.peer: Endpoint | None = None
        self.oack: Options | None = None
        self.blksize = codec.DEFAULT_BLKSIZE
        self.windowsize = codec.DEFAULT_WINDOWSIZE
        self.total: int | None = None  # the server's tsize (get)
        self.retried_without_options = False
        self.notes: list[str] = []
        self.done_bytes = 0  # file bytes written (get) or sent and acknowledged (put)
        self.wire_bytes = 0  # DATA payload bytes as on the wire
        self.retransmitted = 0
        self.duplicates = 0
        self.foreign = 0
        # A get's driver may hash the written data itself, after sending the ACK
        # (`hash_get=False`): hashing is then off the ACK's critical path, and hashlib
        # (OpenSSL's start, ~3 ms) is not even imported for a get not hashed at all.
        self._hash: Sha256 | None = None
        if config.put or config.hash_get:
            import hashlib

            self._hash = hashlib.sha256()
        self._tries = 0  # consecutive timeouts
        self._wait = config.timeout
        self._last: list[Send] = []  # what a timeout resends
        self._outcome: ClientOutcome | None = None
        self._netascii = config.mode.lower() == "netascii"
        # get
        self._expected = 1  # absolute number of the next block we want
        self._acked = 0  # absolute block last ACKed
        self._dups_since_ack = 0
        self._gap_acked = False
        self._decoder = NetasciiDecoder() if self._netascii else None
        self._withheld = False
        self._well_behaved = config.misbehaviour == Misbehaviour()
        self._plain_get = self._well_behaved and not self._netascii and not config.put
        self._base_timer = SetTimer(config.timeout)
        # put
        self._pending = bytearray()  # encoded file bytes not yet cut into blocks
        self._eof = False
        self._file_bytes = 0  # file bytes read (before netascii encoding)
        self._waiting_data = False
        self._window: list[tuple[int, bytes]] = []  # (absolute block, payload) unacked
        self._next_block = 1
        self._last_block: int | None = None  # absolute number of the final block

    # ------------------------------------------------------------ inputs

    def start(self) -> list[Action]:
        request = self._request_bytes()
        send = Send(request, self.config.server)
        self._last = [send]
        return [send, SetTimer(self._wait)]

    def receive(self, datagram: bytes | memoryview, sender: Endpoint) -> list[Action]:
        # Fast path: the next full DATA of a plain download, the bulk of one.
        ack, data = self.receive_next_block(datagram, sender)
        if data:
            return self._next_full_block(ack, data)
        # Any other DATA of a get from the locked peer needs no general decoding.
        if (sender == self.peer and self.state == TRANSFERRING and not self.config.put
                and len(datagram) >= 4 and datagram[1] == _DATA and datagram[0] == 0):
            return self._on_data(Data((datagram[2] << 8) | datagram[3], datagram[4:]))
        if self.peer is not None and sender != self.peer:
            return self._foreign(sender)  # (after the end too: the RFC's answer to a stray)
        if self.state == DONE:
            return []
        try:
            message = codec.decode(datagram)
        except codec.MalformedPacket as exc:
            if self.peer is None:
                self._lock(sender)
            return self._fail_client(codec.ERR_ILLEGAL_OPERATION,
                                     f"malformed packet from the server: {exc}")
        if self.peer is None:
            return self._first_answer(message, sender)
        if self.config.put:
            return self._put_receive(message)
        return self._get_receive(message)

    def timer_expired(self) -> list[Action]:
        if self.state == DONE:
            return []
        if self._tries >= self.config.retries:
            what = "the server's answer" if self.peer is None else (
                "an ACK" if self.config.put else f"DATA {self._expected & 0xFFFF}")
            waited = self._tries + 1
            return self._finish("timeout", None,
                                f"timed out waiting for {what} ({waited} tries, "
                                f"{self.config.retries} retransmissions)")
        self._tries += 1
        self._wait = min(self._wait * 2, self.config.timeout * MAX_BACKOFF)
        actions: list[Action] = []
        if not self.config.put and self.peer is not None:
            # get: (re)ACK the last in-order block so a windowed sender restarts there.
            self._acked = self._expected - 1
            self._dups_since_ack = 0
            self._last = [Send(Ack(self._acked).encode(), self.peer)]
        actions.extend(self._last)
        self.retransmitted += len(self._last)
        actions.append(SetTimer(self._wait))
        return actions

    def abort(self) -> list[Action]:
        if self.state == DONE:
            return []
        error = ClientError(codec.ERR_NOT_DEFINED, "transfer cancelled by the user", "client")
        actions: list[Action] = []
        to = self.peer
        if to is not None:
            actions.append(Send(Error(error.code, error.message).encode(), to))
        actions += self._finish("aborted", error, "cancelled by the user (Ctrl-C)")
        return actions

    def local_failure(self, message: str,
                      code: int = codec.ERR_DISK_FULL) -> list[Action]:
        """The driver could not write (or read) the local file: tell the peer, stop."""
        if self.state == DONE:
            return []
        return self._fail_client(code, message)

    def provide(self, data: bytes | memoryview, eof: bool) -> list[Action]:
        """File bytes for a put, answering NeedData."""
        if self.state == DONE:
            return []
        self._waiting_data = False
        chunk = bytes(data)
        self._hash.update(chunk)  # type: ignore[union-attr]  # always hashed for a put
        self._file_bytes += len(chunk)
        self._pending += netascii_encode(chunk) if self._netascii else chunk
        self._eof = eof
        return self._fill_window()

    # ------------------------------------------------------------ request and first answer

    def _request_bytes(self) -> bytes:
        raw = self.config.misbehaviour.raw_request
        if raw is not None and not self.retried_without_options:
            return raw
        opcode = codec.WRQ if self.config.put else codec.RRQ
        return Request(opcode, self.config.filename, self.config.mode, self.options).encode()

    def _lock(self, sender: Endpoint) -> None:
        self.peer = sender
        if sender[0] != self.config.server[0]:
            self.notes.append(f"the server answered from {_endpoint(sender)}, "
                              f"not from the address asked ({self.config.server[0]})")

    def _first_answer(self, message: codec.Message, sender: Endpoint) -> list[Action]:
        if isinstance(message, Error):
            if (message.code == codec.ERR_OPTION_NEGOTIATION and self.options
                    and not self.retried_without_options):
                # RFC 2347: a server may refuse options with ERROR 8; ask again plainly.
                self.retried_without_options = True
                self.notes.append(f"server refused the options with ERROR 8 "
                                  f"({_printable(message.message)!r}); retried without options")
                self.options = ()
                self.asked = {}
                self._tries = 0
                self._wait = self.config.timeout
                send = Send(self._request_bytes(), self.config.server)
                self._last = [send]
                return [send, SetTimer(self._wait)]
            self._lock(sender)
            return self._server_error(message)
        self._lock(sender)
        self.state = TRANSFERRING
        self._tries = 0
        self._wait = self.config.timeout
        if isinstance(message, OAck):
            refusal = self._accept_oack(message.options)
            if refusal is not None:
                return self._fail_client(codec.ERR_OPTION_NEGOTIATION, refusal)
            if self.config.put:
                return self._fill_window()
            return self._send_ack(0, [])
        if self.options:
            self.notes.append("the server ignored our options (no OACK): defaults in effect")
        if self.config.put:
            if isinstance(message, Ack) and message.block == 0:
                return self._fill_window()
            return self._unexpected(message, "ACK 0 or OACK")
        if isinstance(message, Data) and message.block == 1:
            return self._get_receive(message)
        return self._unexpected(message, "DATA 1 or OACK")

    def _accept_oack(self, options: Options) -> str | None:
        """Apply an OACK; the reason to refuse it, or None."""
        self.oack = options
        for name, value in options:
            key = name.lower()
            if key not in self.asked:
                return f"OACK carried option {_printable(name)!r} we did not ask for"
            number = codec.option_int(value)
            asked = codec.option_int(self.asked[key])
            if key in ("blksize", "windowsize", "timeout", "tsize"):
                if number is None or not codec.option_in_range(key, value):
                    return f"OACK {key}={_printable(value)!r} is not a valid value"
            if key in ("blksize", "windowsize") and asked is not None and number is not None \
                    and number > asked:
                return f"OACK {key}={number} is larger than the {asked} we asked for"
            if key == "timeout" and number != asked:
                return f"OACK timeout={number} differs from the {asked} we asked for"
        effective = codec.options_dict(options)
        self.blksize = codec.option_int(effective.get("blksize")) or codec.DEFAULT_BLKSIZE
        self.windowsize = (codec.option_int(effective.get("windowsize"))
                           or codec.DEFAULT_WINDOWSIZE)
        if not self.config.put and "tsize" in effective:
            self.total = codec.option_int(effective["tsize"])
        for key in self.asked:
            if key not in effective and key in codec.OPTION_RANGES:
                self.notes.append(f"the server did not acknowledge {key}: default in effect")
        return None

    # ------------------------------------------------------------ get

    def _get_receive(self, message: codec.Message) -> list[Action]:
        if isinstance(message, Data):
            return self._on_data(message)
        if isinstance(message, Error):
            return self._server_error(message)
        if isinstance(message, OAck) and self._expected == 1:
            # Our ACK 0 was lost and the server resent its OACK: answer it again.
            self.duplicates += 1
            return self._send_ack(0, [])
        return self._unexpected(message, "DATA")

    def receive_next_block(self, datagram: bytes | memoryview,
                           sender: Endpoint) -> tuple[bytes, bytes]:
        """`receive`, shortened for the bulk of a plain download, for a driver that wants
        the ACK on the wire before anything else: when `datagram` is the next full-size
        DATA of an octet get from the locked peer, with no retry pending and nothing
        unusual going on, it is taken, and the answer is (the ACK to send now, or b""
        while the window is not complete; the data to write). The timer is then to be
        set to `config.timeout` again; progress is for the driver to report (`done_bytes`).
        Otherwise the answer is (b"", b"") and nothing has happened: call `receive`."""
        if (sender == self.peer and self._in_bulk() and len(datagram) - 4 == self.blksize
                and datagram[1] == _DATA and datagram[0] == 0
                and (datagram[2] << 8 | datagram[3]) == self._expected & 0xFFFF
                and (self.total is None or self.wire_bytes + self.blksize <= self.total)):
            data = bytes(datagram[4:])
            return self._take_full_block(data), data
        return b"", b""

    def bulk_state(self) -> tuple[int, int, int, int] | None:
        """For a driver that takes a plain download's full blocks in bulk, as
        `receive_next_block` takes one (active/_tftp_bulk.c): (the next block's number,
        the last block ACKed, the window, the bytes the server's tsize still allows or
        -1) when it may; None when every datagram must go to `receive`. Afterwards,
        `take_blocks` tells the machine what was taken."""
        if self._in_bulk():
            room = -1 if self.total is None else self.total - self.wire_bytes
            return self._expected, self._acked, self.windowsize, room
        return None

    def _in_bulk(self) -> bool:
        """In the bulk of a plain download: the next full blocks may be taken as they come
        (`receive_next_block`, `bulk_state`), nothing unusual pending."""
        return self._plain_get and self.state == TRANSFERRING and self._tries == 0

    def take_blocks(self, data: bytes | memoryview, count: int, acked: int) -> None:
        """`count` full blocks (`data`, in order) taken in bulk from the state
        `bulk_state` gave, the ACKs due sent up to block `acked`: the state changes of
        `receive_next_block` for each of them."""
        size = len(data)
        self._expected += count
        self.wire_bytes += size
        self.done_bytes += size
        self._gap_acked = False
        if self._hash is not None:
            self._hash.update(data)
        if acked != self._acked:
            self._acked = acked
            self._dups_since_ack = 0

    def _next_full_block(self, ack: bytes, payload: bytes) -> list[Action]:
        """`receive_next_block`'s answer as actions (`_on_data`, shortened)."""
        actions: list[Action] = []
        # The ACK goes first: the server prepares the next block while the driver writes.
        if ack:
            actions.append(Send(ack, self.peer))  # type: ignore[arg-type]
        actions.append(Write(payload))
        if (self._expected - 1) & PROGRESS_EVERY == 0:
            actions.append(Progress(self.done_bytes, self.total))
        actions.append(self._base_timer)
        return actions

    def _take_full_block(self, payload: bytes) -> bytes:
        """The state changes of taking the next full block; the ACK due (b"": none yet)."""
        expected = self._expected
        if expected - self._acked < self.windowsize:
            self.take_blocks(payload, 1, self._acked)
            return b""
        self.take_blocks(payload, 1, expected)
        # (`_last` stays: a get's timeout ACKs the last in-order block afresh)
        return _ACK.pack(codec.ACK, expected & 0xFFFF)

    def _on_data(self, message: Data) -> list[Action]:
        expected = self._expected
        offset = (message.block - expected) & 0xFFFF  # 0: in order; small: ahead
        if offset != 0:
            behind = 0x10000 - offset
            if offset >= 0x8000 and expected - behind >= 1:
                return self._on_duplicate()  # a block we have (late, resent, duplicated)
            if offset < self.windowsize:
                return self._on_gap()
            return self._fail_client(
                codec.ERR_ILLEGAL_OPERATION,
                f"DATA {message.block} jumped ahead of block {expected & 0xFFFF} "
                f"(window {self.windowsize})")
        size = len(message.data)
        if size > self.blksize:
            return self._fail_client(
                codec.ERR_ILLEGAL_OPERATION,
                f"DATA {message.block} carried {size} bytes, more than blksize {self.blksize}")
        self.wire_bytes += size
        if self.total is not None and not self._netascii and self.wire_bytes > self.total:
            return self._fail_client(
                codec.ERR_ILLEGAL_OPERATION,
                f"the server sent more than the {self.total} bytes it announced (tsize)")
        self._expected = expected + 1
        self._gap_acked = False
        self._tries = 0
        self._wait = self.config.timeout
        actions: list[Action] = []
        data = message.data
        if self._decoder is not None:
            data = self._decoder.decode(data)
            if size < self.blksize:
                data += self._decoder.flush()
        if data:
            chunk = bytes(data)
            if self._hash is not None:
                self._hash.update(chunk)
            self.done_bytes += len(chunk)
            actions.append(Write(chunk))
            actions.append(Progress(self.done_bytes, self.total))
        if size < self.blksize:
            if self.total is not None and not self._netascii and self.wire_bytes != self.total:
                self._send_ack(expected, actions)
                return actions + self._fail_client(
                    codec.ERR_NOT_DEFINED,
                    f"the file has {self.wire_bytes} bytes, not the {self.total} "
                    f"the server announced (tsize)", send_error=False)
            self._send_ack(expected, actions)
            actions += self._finish("complete", None, "complete")
            return actions
        if expected - self._acked >= self.windowsize:
            self._send_ack(expected, actions)
        else:
            actions.append(SetTimer(self._wait))
        return actions

    def _send_ack(self, block: int, actions: list[Action]) -> list[Action]:
        """ACK absolute `block` (appended to `actions`), with the misbehaviour hooks."""
        assert self.peer is not None
        self._acked = block
        self._dups_since_ack = 0
        send = Send(_ACK.pack(codec.ACK, block & 0xFFFF), self.peer)
        self._last = [send]
        if self._well_behaved:
            actions.append(send)
            if self.state != DONE:
                actions.append(SetTimer(self._wait))
            return actions
        bad = self.config.misbehaviour
        if bad.withhold_ack == block and not self._withheld:
            self._withheld = True
            self.notes.append(f"withheld the ACK of block {block} once (on purpose)")
            actions.append(SetTimer(self._wait))
            return actions
        actions.append(send)
        if bad.repeat_ack == block:
            actions.append(send)
        if bad.stray_ack == block:
            actions.append(Send(send.payload, self.peer, stray=True))
        if self.state != DONE:
            actions.append(SetTimer(self._wait))
        return actions

    def _on_duplicate(self) -> list[Action]:
        self.duplicates += 1
        self._dups_since_ack += 1
        # Window 1: re-ACK every duplicate (our ACK may have been lost). Larger windows:
        # once per window's worth of duplicates, so a resent window is answered once.
        if self.windowsize == 1 or self._dups_since_ack % self.windowsize == 1:
            assert self.peer is not None
            dups = self._dups_since_ack
            actions = self._send_ack(self._expected - 1, [])
            self._dups_since_ack = dups
            return actions
        return []

    def _on_gap(self) -> list[Action]:
        """A block beyond the next one, within the window: one was lost (RFC 7440)."""
        if self._gap_acked:
            return []
        self._gap_acked = True
        return self._send_ack(self._expected - 1, [])

    # ------------------------------------------------------------ put

    def _put_receive(self, message: codec.Message) -> list[Action]:
        if isinstance(message, Error):
            return self._server_error(message)
        if isinstance(message, OAck) and self._next_block == 1:
            self.duplicates += 1
            return []
        if not isinstance(message, Ack):
            return self._unexpected(message, "ACK")
        window = self._window
        if not window:
            self.duplicates += 1  # nothing outstanding (waiting for file data)
            return []
        first = window[0][0]
        behind = (first - message.block) & 0xFFFF
        ahead = (message.block - first) & 0xFFFF
        if ahead < len(window):
            acked = first + ahead
        elif 1 <= behind < 0x8000 and first - behind >= 0:
            # A duplicate (or late) ACK: never resend DATA for it (Sorcerer's Apprentice).
            self.duplicates += 1
            return []
        else:
            return self._fail_client(
                codec.ERR_ILLEGAL_OPERATION,
                f"ACK {message.block} for a block we never sent "
                f"(next unacknowledged: {first & 0xFFFF})")
        self._tries = 0
        self._wait = self.config.timeout
        count = ahead + 1
        for _, payload in window[:count]:
            self.done_bytes += len(payload)
        del window[:count]
        if self._last_block is not None and acked == self._last_block:
            return [Progress(self.done_bytes, self.config.put_size)] + self._finish(
                "complete", None, "complete")
        actions: list[Action] = [Progress(self.done_bytes, self.config.put_size)]
        if window:
            # The receiver stopped part-way through the window (RFC 7440): it lost the
            # next block, so resend the rest of the window from there.
            self.retransmitted += len(window)
            resend = [Send(Data(b, p).encode(), self._peer()) for b, p in window]
            self._last = resend
            actions += resend
            actions.append(SetTimer(self._wait))
        return actions + self._fill_window()

    def _peer(self) -> Endpoint:
        assert self.peer is not None
        return self.peer

    def _fill_window(self) -> list[Action]:
        """Cut and send new blocks until the window is full; ask for file data if short."""
        if self.state != TRANSFERRING or self._waiting_data:
            return []
        actions: list[Action] = []
        blksize = self.blksize
        sent_new = False
        while len(self._window) < self.windowsize and self._last_block is None:
            if len(self._pending) < blksize and not self._eof:
                self._waiting_data = True
                actions.append(NeedData(max(blksize - len(self._pending), 65536)))
                break
            payload = bytes(self._pending[:blksize])
            del self._pending[:blksize]
            block = self._next_block
            self._next_block += 1
            self.wire_bytes += len(payload)
            if len(payload) < blksize:
                self._last_block = block
            self._window.append((block, payload))
            actions.append(Send(Data(block, payload).encode(), self._peer()))
            sent_new = True
        if sent_new:
            self._last = [Send(Data(b, p).encode(), self._peer()) for b, p in self._window]
            actions.append(SetTimer(self._wait))
        return actions

    # ------------------------------------------------------------ endings

    def _foreign(self, sender: Endpoint) -> list[Action]:
        self.foreign += 1
        if self.foreign == 1:
            self.notes.append(f"a datagram from {_endpoint(sender)} (not the transfer's "
                              "peer) was answered with ERROR 5")
        message = Error(codec.ERR_UNKNOWN_TID, "unknown transfer ID")
        return [Send(message.encode(), sender)]

    def _server_error(self, message: Error) -> list[Action]:
        error = ClientError(message.code, _printable(message.message), "server")
        reason = f"server error {message.code} ({message.code_name})"
        if error.message:
            reason += f": {error.message}"
        return self._finish("error", error, reason)

    def _unexpected(self, message: codec.Message, wanted: str) -> list[Action]:
        return self._fail_client(codec.ERR_ILLEGAL_OPERATION,
                                 f"unexpected {message.name} from the server "
                                 f"(expected {wanted})")

    def _fail_client(self, code: int, reason: str, send_error: bool = True) -> list[Action]:
        actions: list[Action] = []
        if send_error and self.peer is not None:
            actions.append(Send(Error(code, reason).encode(), self.peer))
        return actions + self._finish("error", ClientError(code, reason, "client"), reason)

    def _finish(self, status: str, error: ClientError | None, reason: str) -> list[Action]:
        self.state = DONE
        self._outcome = ClientOutcome(
            server=self.config.server, peer=self.peer,
            request="WRQ" if self.config.put else "RRQ",
            filename=self.config.filename, mode=self.config.mode, options=self.options,
            oack=self.oack, blksize=self.blksize, windowsize=self.windowsize,
            status=status, error=error,
            bytes=self._file_bytes if self.config.put else self.done_bytes,
            sha256=self._hash.hexdigest() if self._hash is not None else "",
            retransmitted=self.retransmitted,
            duplicates=self.duplicates, reason=reason, notes=tuple(self.notes),
            tsize=self.total if not self.config.put else self.config.put_size,
            foreign=self.foreign,
        )
        return [CancelTimer(), Finished(self._outcome)]

    @property
    def outcome(self) -> ClientOutcome | None:
        return self._outcome


def _endpoint(address: Endpoint) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _printable(text: str) -> str:
    """Server text with control characters escaped (it goes to a terminal)."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
