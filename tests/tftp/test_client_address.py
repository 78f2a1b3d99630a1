"""`tftp get/put` server addresses: HOST, HOST:PORT, [IPv6]:PORT, bare IPv6, --port."""

from __future__ import annotations

import pytest

from analyzer.active.tftp import parse_server
from analyzer.errors import InputError


@pytest.mark.parametrize("text, port, expected", [
    ("localhost", None, ("localhost", 69)),
    ("127.0.0.2:6969", None, ("127.0.0.2", 6969)),
    ("[::1]:69", None, ("::1", 69)),
    ("[::1]", None, ("::1", 69)),
    ("::1", None, ("::1", 69)),  # more than one colon: an IPv6 address, no port
    ("fe80::1:2", None, ("fe80::1:2", 69)),
    ("127.0.0.2:6969", 70, ("127.0.0.2", 70)),  # --port wins
])
def test_forms(text: str, port: int | None, expected: tuple[str, int]) -> None:
    assert parse_server(text, port) == expected


@pytest.mark.parametrize("text", ["", ":69", "[::1", "[::1]x", "host:port", "host:0",
                                  "host:65536"])
def test_bad_forms_are_input_errors(text: str) -> None:
    with pytest.raises(InputError):
        parse_server(text)
