"""Netascii decoding (RFC 764): CR LF -> LF, CR NUL -> CR, across any split of the stream."""

from __future__ import annotations

import random

import pytest

from analyzer.tftp.netascii import NetasciiDecoder
from tests.tftp.craft import netascii_encode


def decode_split(wire: bytes, cuts: list[int]) -> bytes:
    decoder = NetasciiDecoder()
    out, last = [], 0
    for cut in [*cuts, len(wire)]:
        out.append(decoder.decode(wire[last:cut]))
        last = cut
    out.append(decoder.flush())
    return b"".join(out)


def test_every_split_point_of_a_tricky_text() -> None:
    original = b"line one\nCR alone\rCRLF in file\r\n\r\rend\r"
    wire = netascii_encode(original)
    for cut in range(len(wire) + 1):
        assert decode_split(wire, [cut]) == original, cut


def test_random_texts_and_blocks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        original = bytes(rng.choice(b"ab\r\n\0") for _ in range(rng.randint(0, 60)))
        wire = netascii_encode(original)
        cuts = sorted(rng.sample(range(len(wire) + 1), k=min(3, len(wire) + 1)))
        assert decode_split(wire, cuts) == original


@pytest.mark.parametrize("wire, expected", [
    (b"a\rb", b"a\rb"),  # a bare CR (dnsmasq) stays
    (b"a\nb", b"a\nb"),  # an unconverted LF (tftpy) stays
    (b"end\r", b"end\r"),  # a CR at the very end stays
])
def test_lenient_with_unconverted_streams(wire: bytes, expected: bytes) -> None:
    assert decode_split(wire, []) == expected
