"""What a driver tells its session about each socket before it sends anything (kept in a
module of its own: the command line imports it on every start)."""

from __future__ import annotations

from typing import NamedTuple

CLOSE_MODES = ("fin", "half", "rst")  # how `tcp connect` may end a connection
SERVE_CLOSE_MODES = ("fin", "rst", "wait")  # how `tcp serve` may end one


class Endpoint(NamedTuple):
    """One socket of a driver: `transport` "udp" or "tcp", the local (address, port) it
    is bound to, and the peer's (address, port) when known (None for a listener)."""

    transport: str
    local: tuple[str, int]
    remote: tuple[str, int] | None = None
