"""A small raw-socket TFTP client for driving real servers into edge cases.

It is written straight from RFC 1350 / 2347 / 2348 / 2349 / 7440 with `struct`, on purpose
independent of `analyzer.tftp`, so a test compares the analyzer with a second, separate
reading of the protocol. It can misbehave on request: ignore a DATA block once (a "lost"
packet), send every ACK twice (duplicate ACKs), send an ACK from a foreign port mid-transfer
(wrong TID), or reject an OACK.

Only loopback servers are allowed (127.0.0.0/8).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from dataclasses import dataclass, field

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
MAX_PACKET = 65536 + 4
TIMED_OUT = 0  # not an opcode: "nothing arrived in time"


def _check_loopback(ip: str) -> None:
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(f"the raw TFTP client only talks to loopback, not {ip}")


def encode_request(
    opcode: int, filename: str, mode: str, options: dict[str, str] | None = None
) -> bytes:
    """RRQ/WRQ: opcode, filename NUL, mode NUL, then name NUL value NUL per option."""
    parts = [filename.encode(), mode.encode()]
    for name, value in (options or {}).items():
        parts += [name.encode(), str(value).encode()]
    return struct.pack("!H", opcode) + b"".join(part + b"\0" for part in parts)


def encode_ack(block: int) -> bytes:
    return struct.pack("!HH", ACK, block & 0xFFFF)


def encode_data(block: int, payload: bytes) -> bytes:
    return struct.pack("!HH", DATA, block & 0xFFFF) + payload


def encode_error(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode() + b"\0"


def decode_options(body: bytes) -> dict[str, str]:
    """OACK body: NUL-terminated name/value pairs (names lower-cased; the last repeat wins)."""
    fields = body.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    return {
        fields[i].decode(errors="replace").lower(): fields[i + 1].decode(errors="replace")
        for i in range(0, len(fields) - 1, 2)
    }


def netascii_encode(data: bytes) -> bytes:
    """RFC 764 NVT encoding as a sender must do it: LF -> CR LF, bare CR -> CR NUL."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def netascii_decode(wire: bytes) -> bytes:
    """The receiver's side: CR LF -> LF, CR NUL -> CR (done in one pass, left to right)."""
    out = bytearray()
    i = 0
    while i < len(wire):
        byte = wire[i]
        if byte == 0x0D and i + 1 < len(wire) and wire[i + 1] in (0x0A, 0x00):
            out.append(0x0A if wire[i + 1] == 0x0A else 0x0D)
            i += 2
            continue
        out.append(byte)
        i += 1
    return bytes(out)


@dataclass
class TransferResult:
    """What the client saw; `wire_bytes` is the DATA payload stream as sent (not decoded)."""

    client: tuple[str, int]
    server: tuple[str, int] | None = None  # the server's transfer endpoint (its TID)
    oack: dict[str, str] | None = None
    error: tuple[int, str] | None = None  # an ERROR received from the server
    wire_bytes: bytes = b""
    blksize: int = 512
    windowsize: int = 1
    blocks: int = 0  # distinct DATA blocks delivered (RRQ) or sent (WRQ)
    duplicate_data: int = 0  # DATA received again or out of order (RRQ)
    # Absolute block numbers ignored once (RRQ) or left out of a window once (WRQ).
    dropped_blocks: list[int] = field(default_factory=list)
    stray_client: tuple[str, int] | None = None
    stray_reply: tuple[int, int, bytes] | None = None  # (opcode, code/block, rest) to the stray
    foreign_packets: int = 0  # packets from an unexpected endpoint (answered with ERROR 5)
    malformed_packets: int = 0  # from the server but neither DATA nor a first OACK


class RawTftpClient:
    """One client socket per transfer, bound to `bind_ip` (a loopback address)."""

    def __init__(
        self, server_ip: str, server_port: int = 69, bind_ip: str = "127.0.0.1",
        timeout: float = 1.0, max_seconds: float = 60.0,
    ) -> None:
        _check_loopback(server_ip)
        _check_loopback(bind_ip)
        self.server = (server_ip, server_port)
        self.bind_ip = bind_ip
        self.timeout = timeout
        self.max_seconds = max_seconds

    def _socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.bind_ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((self.bind_ip, 0))
        sock.settimeout(self.timeout)
        return sock

    def _reject_foreign(self, sock: socket.socket, result: TransferResult, addr: tuple) -> None:
        """RFC 1350: a packet from an unknown TID is answered with ERROR 5, then ignored."""
        result.foreign_packets += 1
        sock.sendto(encode_error(5, "Unknown transfer ID"), addr)

    def _refuse_foreign_for(
        self, sock: socket.socket, result: TransferResult, seconds: float
    ) -> None:
        """For `seconds`, answer packets from other TIDs with ERROR 5 (and ignore the rest)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                _, addr = sock.recvfrom(MAX_PACKET)
            except TimeoutError:
                return
            if addr != result.server:
                self._reject_foreign(sock, result, addr)

    def request(
        self, opcode: int, filename: str, mode: str = "octet",
        options: dict[str, str] | None = None, raw: bytes | None = None,
    ) -> tuple[TransferResult, int, bytes]:
        """Send one request and return the first reply: (result, opcode, body).

        Used for error cases (missing file, bad mode): when the reply is not an ERROR the
        transfer is aborted with ERROR 0 so the server does not keep retransmitting.
        """
        with self._socket() as sock:
            result = TransferResult(client=sock.getsockname())
            sock.sendto(raw or encode_request(opcode, filename, mode, options), self.server)
            packet, addr = sock.recvfrom(MAX_PACKET)
            result.server = addr
            reply_opcode = struct.unpack_from("!H", packet)[0]
            if reply_opcode == ERROR:
                code = struct.unpack_from("!H", packet, 2)[0]
                result.error = (code, packet[4:].split(b"\0")[0].decode(errors="replace"))
            elif reply_opcode == OACK:
                result.oack = decode_options(packet[2:])
                sock.sendto(encode_error(0, "client abort"), addr)
            else:
                sock.sendto(encode_error(0, "client abort"), addr)
            return result, reply_opcode, packet[2:]

    def get(
        self, filename: str, mode: str = "octet", options: dict[str, str] | None = None, *,
        drop_once: frozenset[int] | set[int] = frozenset(), duplicate_acks: bool = False,
        stray_ack_after: int | None = None, reject_oack: bool = False,
        repeat_request: bool = False, abort_after: int | None = None,
        raw_request: bytes | None = None,
    ) -> TransferResult:
        """Read `filename`; block numbers in `drop_once` are absolute (1, 2, ... past 65535).

        Misbehaviour on request: `duplicate_acks` sends every ACK twice; `stray_ack_after`
        N sends an ACK from another port after block N; `reject_oack` answers the OACK with
        ERROR 8; `repeat_request` sends the request twice at once (servers that start a
        second transfer get ERROR 5 from us); `abort_after` N sends ERROR 0 instead of
        ACK N; `raw_request` replaces the encoded request (e.g. to repeat an option).
        """
        deadline = time.monotonic() + self.max_seconds
        with self._socket() as sock:
            result = TransferResult(client=sock.getsockname())
            request = raw_request or encode_request(RRQ, filename, mode, options)
            sock.sendto(request, self.server)
            if repeat_request:
                sock.sendto(request, self.server)
            chunks: list[bytes] = []
            expected = 1  # absolute number of the next block we want
            in_window = 0
            gap_acked = False
            timeouts = 0
            pending_drops = set(drop_once)
            stray: socket.socket | None = None
            try:
                while True:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"get {filename}: over {self.max_seconds} s")
                    try:
                        packet, addr = sock.recvfrom(MAX_PACKET)
                    except TimeoutError:
                        timeouts += 1
                        if timeouts > 5:
                            raise
                        if result.server is None:
                            sock.sendto(request, self.server)
                        else:
                            sock.sendto(encode_ack(expected - 1), result.server)
                            in_window = 0
                        continue
                    if result.server is None:
                        result.server = addr
                    elif addr != result.server:
                        self._reject_foreign(sock, result, addr)
                        continue
                    opcode = struct.unpack_from("!H", packet)[0]
                    if opcode == ERROR:
                        code = struct.unpack_from("!H", packet, 2)[0]
                        message = packet[4:].split(b"\0")[0].decode(errors="replace")
                        result.error = (code, message)
                        break
                    if opcode == OACK and expected == 1 and not chunks:
                        result.oack = decode_options(packet[2:])
                        if reject_oack:
                            sock.sendto(encode_error(8, "option rejected"), addr)
                            break
                        result.blksize = int(result.oack.get("blksize", 512))
                        result.windowsize = int(result.oack.get("windowsize", 1))
                        sock.sendto(encode_ack(0), addr)
                        continue
                    if opcode != DATA or len(packet) < 4:
                        result.malformed_packets += 1  # e.g. a repeated OACK, a 3-byte DATA
                        continue
                    block = struct.unpack_from("!H", packet, 2)[0]
                    payload = packet[4:]
                    if block != expected & 0xFFFF:
                        result.duplicate_data += 1
                        ahead = (block - expected) & 0xFFFF < 0x8000
                        if ahead and not gap_acked:
                            # RFC 7440: on a gap, acknowledge the last block received in order.
                            sock.sendto(encode_ack(expected - 1), addr)
                            gap_acked = True
                            in_window = 0
                        continue
                    if expected in pending_drops:
                        pending_drops.discard(expected)
                        result.dropped_blocks.append(expected)
                        continue
                    gap_acked = False
                    timeouts = 0
                    if abort_after is not None and expected == abort_after:
                        chunks.append(payload)
                        expected += 1
                        sock.sendto(encode_error(0, "client abort"), addr)
                        break
                    chunks.append(payload)
                    expected += 1
                    in_window += 1
                    final = len(payload) < result.blksize
                    if final or in_window >= result.windowsize:
                        ack = encode_ack(block)
                        sock.sendto(ack, addr)
                        if duplicate_acks:
                            sock.sendto(ack, addr)
                        in_window = 0
                    if stray_ack_after is not None and expected - 1 == stray_ack_after:
                        stray = socket.socket(sock.family, socket.SOCK_DGRAM)
                        stray.bind((self.bind_ip, 0))
                        result.stray_client = stray.getsockname()
                        stray.sendto(encode_ack(block), addr)
                    if final:
                        break
                result.blocks = expected - 1
                result.wire_bytes = b"".join(chunks)
                if stray is not None:
                    result.stray_reply = _receive_reply(stray, 0.5)
                if repeat_request:
                    # The second transfer's first DATA may still be on its way: refuse it too.
                    self._refuse_foreign_for(sock, result, 0.3)
            finally:
                if stray is not None:
                    stray.close()
            return result

    def put(
        self, filename: str, wire_bytes: bytes, mode: str = "octet",
        options: dict[str, str] | None = None, *,
        skip_once: frozenset[int] | set[int] = frozenset(),
    ) -> TransferResult:
        """Write `wire_bytes` (already netascii-encoded when mode is netascii).

        Blocks in `skip_once` (absolute numbers) are left out of the first window that holds
        them, as if lost before reaching the server (and the capture).
        """
        pending_skips = set(skip_once)
        deadline = time.monotonic() + self.max_seconds
        with self._socket() as sock:
            result = TransferResult(client=sock.getsockname(), wire_bytes=wire_bytes)
            request = encode_request(WRQ, filename, mode, options)
            sock.sendto(request, self.server)
            # The request is answered by ACK 0 or an OACK, from the server's TID.
            reply = self._receive_from_server(sock, result, request, deadline)
            if reply is None:
                return result
            opcode, body = reply
            if opcode == OACK:
                result.oack = decode_options(body)
                result.blksize = int(result.oack.get("blksize", 512))
                result.windowsize = int(result.oack.get("windowsize", 1))
            elif opcode != ACK or struct.unpack_from("!H", body)[0] != 0:
                raise RuntimeError(f"unexpected reply to WRQ: opcode {opcode}")
            size = result.blksize
            total_blocks = len(wire_bytes) // size + 1  # a short (maybe empty) block ends it
            acked = 0
            while acked < total_blocks:
                window_end = min(acked + result.windowsize, total_blocks)
                for absolute in range(acked + 1, window_end + 1):
                    if absolute in pending_skips:
                        pending_skips.discard(absolute)
                        result.dropped_blocks.append(absolute)
                        continue
                    chunk = wire_bytes[(absolute - 1) * size : absolute * size]
                    sock.sendto(encode_data(absolute, chunk), result.server)
                reply = self._receive_from_server(sock, result, None, deadline)
                if reply is None:
                    return result
                opcode, body = reply
                if opcode != ACK:
                    continue
                block = struct.unpack_from("!H", body)[0]
                # Map the 16-bit ACK back to an absolute block inside the window we sent.
                advance = (block - acked) & 0xFFFF
                if 0 < advance <= window_end - acked:
                    acked += advance
            result.blocks = total_blocks
            return result

    def _receive_from_server(
        self, sock: socket.socket, result: TransferResult, resend: bytes | None,
        deadline: float,
    ) -> tuple[int, bytes] | None:
        """Next packet from the server's TID (learning it on the first reply); None on ERROR."""
        timeouts = 0
        while time.monotonic() < deadline:
            try:
                packet, addr = sock.recvfrom(MAX_PACKET)
            except TimeoutError:
                timeouts += 1
                if timeouts > 5:
                    raise
                if resend is not None:
                    sock.sendto(resend, self.server)
                    continue
                return (TIMED_OUT, b"")  # let the caller resend its window
            if result.server is None:
                result.server = addr
            elif addr != result.server:
                self._reject_foreign(sock, result, addr)
                continue
            opcode = struct.unpack_from("!H", packet)[0]
            if opcode == ERROR:
                code = struct.unpack_from("!H", packet, 2)[0]
                result.error = (code, packet[4:].split(b"\0")[0].decode(errors="replace"))
                return None
            return opcode, packet[2:]
        raise TimeoutError("transfer took too long")


def _receive_reply(sock: socket.socket, timeout: float) -> tuple[int, int, bytes] | None:
    """One packet on `sock` within `timeout`, as (opcode, second field, rest), or None."""
    sock.settimeout(timeout)
    try:
        packet, _ = sock.recvfrom(MAX_PACKET)
    except TimeoutError:
        return None
    opcode, second = struct.unpack_from("!HH", packet)
    return opcode, second, packet[4:]
