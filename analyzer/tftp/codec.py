"""TFTP packet codec: bytes <-> small immutable message objects.

Covers RFC 1350 (RRQ, WRQ, DATA, ACK, ERROR), RFC 2347 (OACK and request options) and
the options of RFC 2348 (blksize), 2349 (timeout, tsize) and 7440 (windowsize). Options
are kept exactly as given on the wire, as ordered (name, value) pairs: names may repeat
or be upper case, and unknown options are kept. `options_dict` gives the effective view
(names lower-cased, the last repeat wins).

Decoding is lenient where the wire is sloppy but unambiguous (a missing final NUL, NUL
padding after the options) and raises `MalformedPacket` where it is not. The same codec
serves the passive tracker and the active TFTP client.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

RRQ: Final = 1
WRQ: Final = 2
DATA: Final = 3
ACK: Final = 4
ERROR: Final = 5
OACK: Final = 6

OPCODE_NAMES: Final = {
    RRQ: "RRQ", WRQ: "WRQ", DATA: "DATA", ACK: "ACK", ERROR: "ERROR", OACK: "OACK",
}

TFTP_PORT: Final = 69
DEFAULT_BLKSIZE: Final = 512
DEFAULT_WINDOWSIZE: Final = 1

# RFC 1350 error codes, plus 8 from RFC 2347.
ERROR_NAMES: Final = {
    0: "Not defined",
    1: "File not found",
    2: "Access violation",
    3: "Disk full or allocation exceeded",
    4: "Illegal TFTP operation",
    5: "Unknown transfer ID",
    6: "File already exists",
    7: "No such user",
    8: "Option negotiation failed",
}
ERR_NOT_DEFINED: Final = 0
ERR_FILE_NOT_FOUND: Final = 1
ERR_ACCESS_VIOLATION: Final = 2
ERR_DISK_FULL: Final = 3
ERR_ILLEGAL_OPERATION: Final = 4
ERR_UNKNOWN_TID: Final = 5
ERR_FILE_EXISTS: Final = 6
ERR_NO_SUCH_USER: Final = 7
ERR_OPTION_NEGOTIATION: Final = 8

# Valid option values (inclusive): blksize RFC 2348, timeout RFC 2349, windowsize RFC 7440.
OPTION_RANGES: Final[dict[str, tuple[int, int | None]]] = {
    "blksize": (8, 65464),
    "timeout": (1, 255),
    "tsize": (0, None),
    "windowsize": (1, 65535),
}

_HEADER: Final = struct.Struct("!HH")
_OPCODE: Final = struct.Struct("!H")

Options = tuple[tuple[str, str], ...]


class MalformedPacket(ValueError):
    """The bytes are not a TFTP packet we can read; the message says why."""


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"unknown error code {code}")


class Request(NamedTuple):
    """RRQ or WRQ: `opcode` is RRQ or WRQ; `options` as (name, value) pairs in wire order."""

    opcode: int
    filename: str
    mode: str
    options: Options = ()

    @property
    def name(self) -> str:
        return OPCODE_NAMES[self.opcode]

    def encode(self) -> bytes:
        fields = [self.filename, self.mode]
        for name, value in self.options:
            fields += [name, value]
        return _OPCODE.pack(self.opcode) + b"".join(_text(f) + b"\0" for f in fields)


class Data(NamedTuple):
    """DATA: `data` may be a view of the decoded buffer; copy it (`bytes()`) to keep it."""

    block: int
    data: bytes | memoryview

    @property
    def name(self) -> str:
        return "DATA"

    def encode(self) -> bytes:
        return _HEADER.pack(DATA, self.block & 0xFFFF) + bytes(self.data)


class Ack(NamedTuple):
    block: int

    @property
    def name(self) -> str:
        return "ACK"

    def encode(self) -> bytes:
        return _HEADER.pack(ACK, self.block & 0xFFFF)


class Error(NamedTuple):
    code: int
    message: str

    @property
    def name(self) -> str:
        return "ERROR"

    @property
    def code_name(self) -> str:
        return error_name(self.code)

    def encode(self) -> bytes:
        return _HEADER.pack(ERROR, self.code) + _text(self.message) + b"\0"


class OAck(NamedTuple):
    options: Options

    @property
    def name(self) -> str:
        return "OACK"

    def encode(self) -> bytes:
        out = [_OPCODE.pack(OACK)]
        for name, value in self.options:
            out += [_text(name), b"\0", _text(value), b"\0"]
        return b"".join(out)


Message = Request | Data | Ack | Error | OAck


def encode(message: Message) -> bytes:
    return message.encode()


def decode(buf: bytes | memoryview) -> Message:
    """Parse one TFTP packet (a UDP payload). Raises `MalformedPacket`."""
    if len(buf) < 2:
        raise MalformedPacket(f"{len(buf)}-byte packet: too short for an opcode")
    opcode = (buf[0] << 8) | buf[1]
    if opcode == DATA:
        if len(buf) < 4:
            raise MalformedPacket(f"{len(buf)}-byte DATA: too short for a block number")
        return Data((buf[2] << 8) | buf[3], buf[4:])
    if opcode == ACK:
        if len(buf) < 4:
            raise MalformedPacket(f"{len(buf)}-byte ACK: too short for a block number")
        return Ack((buf[2] << 8) | buf[3])
    if opcode == RRQ or opcode == WRQ:
        fields = _split_fields(buf[2:])
        if len(fields) < 2:
            raise MalformedPacket(f"{OPCODE_NAMES[opcode]} without filename and mode")
        return Request(opcode, fields[0], fields[1], _pairs(fields[2:]))
    if opcode == ERROR:
        if len(buf) < 4:
            raise MalformedPacket(f"{len(buf)}-byte ERROR: too short for an error code")
        raw = bytes(buf[4:])
        end = raw.find(b"\0")
        return Error((buf[2] << 8) | buf[3], _str(raw if end < 0 else raw[:end]))
    if opcode == OACK:
        return OAck(_pairs(_split_fields(buf[2:])))
    raise MalformedPacket(f"unknown opcode {opcode}")


def options_dict(options: Options | None) -> dict[str, str]:
    """Effective options: names lower-cased (RFC 2347: case-insensitive), last one wins."""
    return {name.lower(): value for name, value in options or ()}


def format_options(options: Options) -> str:
    """Options as the wire gave them: "name=value name=value"."""
    return " ".join(f"{name}={value}" for name, value in options)


def option_int(value: str | None) -> int | None:
    """An option value as an integer, or None when it is not a plain decimal number."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        return None
    return int(text)


def option_in_range(name: str, value: str) -> bool:
    """Whether a known option's value is valid per its RFC (unknown options: True)."""
    limits = OPTION_RANGES.get(name.lower())
    if limits is None:
        return True
    number = option_int(value)
    if number is None:
        return False
    low, high = limits
    return number >= low and (high is None or number <= high)


def _split_fields(buf: bytes | memoryview) -> list[str]:
    """NUL-terminated strings; tolerate a missing last NUL and trailing NUL padding."""
    parts = bytes(buf).split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()  # the terminator of the last field
    while parts and parts[-1] == b"" and len(parts) > 2:
        parts.pop()  # NUL padding after the options
    return [_str(p) for p in parts]


def _pairs(fields: list[str]) -> Options:
    # A dangling name without a value is dropped: it cannot be acknowledged.
    return tuple((fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2))


def _str(raw: bytes) -> str:
    # Filenames are untrusted bytes; keep them printable and lossless in text form.
    return raw.decode("utf-8", "backslashreplace")


def _text(value: str) -> bytes:
    return value.encode("utf-8")
