"""A deliberately broken TFTP server for testing `analyzer tftp check` (test-only).

One defect per variant, everything else plain RFC 1350/2347/2348/2349 (reads only):

| variant        | defect                                                          |
|----------------|-----------------------------------------------------------------|
| good           | none (the baseline the others are compared with)                |
| sorcerer       | answers every ACK, duplicates too, with the next DATA (RFC 1123) |
| wrong-tsize    | OACK tsize is the file size plus 100                            |
| ignore-blksize | OACK echoes blksize but DATA is cut in 512-byte blocks          |
| port-69        | answers from its listening port, not a new transfer ID          |
| traversal      | opens names as given: `../` and absolute paths leave the root   |
| lose-ack-2     | no defect: drops the first ACK 2 of each transfer, as a lossy    |
|                | link would, so DATA 2 is resent by its timer (TIMEOUT later)     |

Run in a thread of the test (`BrokenServer(...).start()`, `.stop()`), on loopback only.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

VARIANTS = ("good", "sorcerer", "wrong-tsize", "ignore-blksize", "port-69", "traversal",
            "lose-ack-2")
RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6
TIMEOUT = 0.5
TRIES = 4


def _error(code: int, text: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + text.encode() + b"\0"


class BrokenServer:
    def __init__(self, variant: str, ip: str, root: Path, port: int = 69) -> None:
        assert variant in VARIANTS
        self.variant = variant
        self.root = root
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, port))
        self.sock.settimeout(0.1)
        self.ip = ip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> BrokenServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, client = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            if self.variant == "port-69":
                self._transfer(self.sock, packet, client)  # one at a time, from port 69
                self.sock.settimeout(0.1)
            else:
                threading.Thread(target=self._new_tid, args=(packet, client),
                                 daemon=True).start()

    def _new_tid(self, packet: bytes, client: tuple[str, int]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.ip, 0))
        try:
            self._transfer(sock, packet, client)
        finally:
            sock.close()

    def _open(self, name: str) -> bytes | None:
        if self.variant == "traversal":
            path = os.path.join(self.root, name)  # the defect: no check at all
        else:
            if name.startswith("/") or ".." in name.split("/") or not name:
                return None
            path = os.path.join(self.root, name)
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def _transfer(self, sock: socket.socket, packet: bytes, client: tuple[str, int]) -> None:
        if len(packet) < 4 or struct.unpack("!H", packet[:2])[0] != RRQ \
                or not packet.endswith(b"\0"):
            sock.sendto(_error(4, "illegal operation"), client)
            return
        fields = packet[2:-1].decode("latin-1").split("\0")
        name, mode = fields[0], fields[1].lower() if len(fields) > 1 else ""
        if mode not in ("octet", "netascii"):
            sock.sendto(_error(4, "unknown mode"), client)
            return
        data = self._open(name)
        if data is None:
            sock.sendto(_error(1, "file not found"), client)
            return
        options = {k.lower(): v for k, v in zip(fields[2::2], fields[3::2], strict=False)}
        oack: list[tuple[str, str]] = []
        blksize = 512
        if "blksize" in options and options["blksize"].isdigit() \
                and 8 <= int(options["blksize"]) <= 65464:
            blksize = int(options["blksize"])
            oack.append(("blksize", str(blksize)))
        if "tsize" in options:
            size = len(data) + (100 if self.variant == "wrong-tsize" else 0)
            oack.append(("tsize", str(size)))
        if self.variant == "ignore-blksize":
            blksize = 512
        if oack:
            payload = struct.pack("!H", OACK) + b"".join(
                k.encode() + b"\0" + v.encode() + b"\0" for k, v in oack)
            if self._send_until_ack(sock, payload, client, 0) is None:
                return
        block = 1
        offset = 0
        while True:
            chunk = data[offset:offset + blksize]
            payload = struct.pack("!HH", DATA, block & 0xFFFF) + chunk
            if self._send_until_ack(sock, payload, client, block) is None:
                return
            offset += len(chunk)
            if len(chunk) < blksize:
                return
            block += 1

    def _send_until_ack(self, sock: socket.socket, payload: bytes,
                        client: tuple[str, int], block: int) -> int | None:
        sock.settimeout(TIMEOUT)
        lose = self.variant == "lose-ack-2" and block == 2
        for _ in range(TRIES):
            sock.sendto(payload, client)
            while True:
                try:
                    reply, sender = sock.recvfrom(65536)
                except TimeoutError:
                    break  # resend
                if sender != client:
                    sock.sendto(_error(5, "unknown transfer ID"), sender)
                    continue
                opcode, number = struct.unpack("!HH", reply[:4])
                if opcode == ERROR:
                    return None
                if opcode == ACK and number == block & 0xFFFF:
                    if lose:
                        lose = False
                        continue
                    return block
                if opcode == ACK and self.variant == "sorcerer" and block > 1 \
                        and number == (block - 1) & 0xFFFF:
                    sock.sendto(payload, client)  # the defect: a duplicate ACK resends
        return None
