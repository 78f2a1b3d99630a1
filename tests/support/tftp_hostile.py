"""A scripted, misbehaving TFTP server for the client's tests (test-only code).

It answers one request on a loopback address with a fixed misbehaviour, built with
tests/support/tftp_raw.py (struct, independent of analyzer.tftp), and records every
datagram it receives so a test can check what the client told it (ERROR 5, ERROR 8, ...).
It runs in a thread of the test process; `close()` ends it. Loopback only.

Scenarios:
    wrong-tid       DATA 1 from the transfer port, then DATA 2 from another port (forever)
    big-data        DATA 1 of 600 bytes (no options were accepted: blksize is 512)
    past-tsize      OACK tsize=1000, then full 512-byte blocks without end
    error-mid       DATA 1, DATA 2, then ERROR 3 "Disk full"
    unasked-option  OACK carrying windowsize 8 (never asked) and blksize 4096 (too big)
    jump-ahead      DATA 1, then DATA 5
    stall           DATA 1, then silence (the client times out or is interrupted)
    stray-at-end    DATA 1; then, back to back, DATA 2 from another port and the short
                    final DATA 2 from the transfer port (a good transfer, one stray at
                    its very end)
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from dataclasses import dataclass, field

from tests.support.tftp_raw import DATA, encode_data, encode_error

SCENARIOS = ("wrong-tid", "big-data", "past-tsize", "error-mid", "unasked-option",
             "jump-ahead", "stall", "stray-at-end")


def _oack(**options: object) -> bytes:
    return struct.pack("!H", 6) + b"".join(
        f"{name}\0{value}\0".encode() for name, value in options.items())


@dataclass
class HostileServer:
    scenario: str
    ip: str = "127.0.0.6"
    received: list[tuple[str, bytes]] = field(default_factory=list)  # (which socket, data)
    senders: list[tuple[str, int]] = field(default_factory=list)  # of each received, in order

    def __post_init__(self) -> None:
        if not ipaddress.ip_address(self.ip).is_loopback:
            raise ValueError("the hostile server listens on loopback only")
        if self.scenario not in SCENARIOS:
            raise ValueError(self.scenario)
        self.listen = self._socket()
        self.port = self.listen.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((self.ip, 0))
        sock.settimeout(0.05)
        return sock

    def close(self) -> None:
        """Wait for the scripted exchange to end (the client quiet), then stop."""
        self._thread.join(10)
        self._stop.set()
        self._thread.join(5)
        self.listen.close()

    def errors_received(self) -> list[tuple[str, int]]:
        """(socket name, error code) of every ERROR the client sent us."""
        return [(name, struct.unpack("!H", data[2:4])[0]) for name, data in self.received
                if len(data) >= 4 and data[:2] == b"\x00\x05"]

    # ------------------------------------------------------------------ internals

    def _recv(self, sock: socket.socket, name: str, seconds: float) -> tuple | None:
        waited = 0.0
        while not self._stop.is_set() and waited < seconds:
            try:
                data, address = sock.recvfrom(70000)
            except TimeoutError:
                waited += 0.05
                continue
            self.received.append((name, data))
            self.senders.append(address)
            return data, address
        return None

    def _drain(self, socks: dict[str, socket.socket], quiet_seconds: float) -> None:
        """Record what the client still sends, until it has been quiet that long."""
        quiet = 0.0
        while not self._stop.is_set() and quiet < quiet_seconds:
            got = False
            for name, sock in socks.items():
                try:
                    data, address = sock.recvfrom(70000)
                except TimeoutError:
                    continue
                self.received.append((name, data))
                self.senders.append(address)
                got = True
            quiet = 0.0 if got else quiet + 0.05 * len(socks)

    def _serve(self) -> None:
        first = self._recv(self.listen, "listen", 30.0)
        if first is None:
            return
        client = first[1]
        transfer = self._socket()
        other = self._socket()
        try:
            getattr(self, "_" + self.scenario.replace("-", "_"))(transfer, other, client)
            self._drain({"transfer": transfer, "other": other}, 0.5)
        finally:
            transfer.close()
            other.close()

    def _wait_ack(self, transfer: socket.socket) -> None:
        self._recv(transfer, "transfer", 5.0)

    def _wrong_tid(self, transfer, other, client) -> None:
        transfer.sendto(encode_data(1, b"a" * 512), client)
        self._wait_ack(transfer)
        for _ in range(20):
            other.sendto(encode_data(2, b"evil" * 10), client)
            if self._stop.wait(0.1):
                return

    def _stray_at_end(self, transfer, other, client) -> None:
        transfer.sendto(encode_data(1, b"s" * 512), client)
        self._wait_ack(transfer)
        other.sendto(encode_data(2, b"evil"), client)
        transfer.sendto(encode_data(2, b"end"), client)
        self._wait_ack(transfer)

    def _big_data(self, transfer, other, client) -> None:
        transfer.sendto(encode_data(1, b"b" * 600), client)

    def _past_tsize(self, transfer, other, client) -> None:
        transfer.sendto(_oack(tsize=1000), client)
        self._wait_ack(transfer)
        for block in range(1, 10):
            transfer.sendto(encode_data(block, b"p" * 512), client)
            reply = self._recv(transfer, "transfer", 2.0)
            if reply is None or reply[0][:2] != b"\x00\x04":
                return

    def _error_mid(self, transfer, other, client) -> None:
        for block in (1, 2):
            transfer.sendto(encode_data(block, b"e" * 512), client)
            self._wait_ack(transfer)
        transfer.sendto(encode_error(3, "Disk full"), client)

    def _unasked_option(self, transfer, other, client) -> None:
        transfer.sendto(_oack(windowsize=8, blksize=4096), client)

    def _jump_ahead(self, transfer, other, client) -> None:
        transfer.sendto(encode_data(1, b"j" * 512), client)
        self._wait_ack(transfer)
        transfer.sendto(struct.pack("!HH", DATA, 5) + b"j" * 512, client)

    def _stall(self, transfer, other, client) -> None:
        transfer.sendto(encode_data(1, b"s" * 512), client)
