"""`stream_line()` (analyzer/report/tcp_json.py) writes the `tcp_stream` line by hand for
speed; it must be exactly the text the standard library's JSON encoder makes of
`stream_object()`, for every stream of every capture we have (gaps, analysis counts,
labels, IPv6 included)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from analyzer.pipeline import analyze_file
from analyzer.report.tcp_json import _number, stream_line, stream_object
from analyzer.tcp.result import SideInfo, TcpStreamResult
from tests.conftest import CAPTURES_DIR, CORPUS_DIR, synthetic_capture

ENCODER = json.JSONEncoder(allow_nan=False)  # as analyzer/report/jsonl.py


def captures() -> list[Path]:
    paths = sorted(CAPTURES_DIR.glob("*.pcap*"))
    if CORPUS_DIR.is_dir():
        paths += sorted(p for p in CORPUS_DIR.iterdir() if ".pcap" in p.name)
    return paths


@pytest.fixture(scope="module")
def busy_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_capture(tmp_path_factory.mktemp("synthetic"), 20000, 5, 300)


def _check(path: Path) -> list[TcpStreamResult]:
    results = analyze_file(path).tcp.results()
    for result in results:
        assert stream_line(result) == ENCODER.encode(stream_object(result))
    return results


def test_same_text_as_the_encoder_on_a_busy_capture(busy_capture: Path) -> None:
    results = _check(busy_capture)
    # the fields that are lists and dicts, not only empty ones
    assert any(r.gaps for r in results)
    assert any(any(r.analysis.values()) for r in results)
    assert any(r.labels for r in results)
    assert any(r.client.endpoint.startswith("[") for r in results)  # IPv6


@pytest.mark.parametrize("path", captures(), ids=lambda p: p.name)
def test_same_text_as_the_encoder_on_real_captures(path: Path) -> None:
    _check(path)


def test_odd_strings_escaped_and_no_nan() -> None:
    side = SideInfo(endpoint="é\"\\\n\x01:1", sha256="")
    result = TcpStreamResult(
        stream=3, client=side, server=side, direction_guessed=True, packets=1,
        start=1.5e-7, end=1e22, handshake="none", close="none", labels=["a\u2028"],
        completeness=0, history="", conn_state="OTH", gaps=[], analysis={"x\t": 2})
    assert stream_line(result) == ENCODER.encode(stream_object(result))
    result.end = float("nan")
    with pytest.raises(ValueError):
        stream_line(result)
    with pytest.raises(ValueError):
        ENCODER.encode(stream_object(result))


def _times(rng: random.Random) -> list[float]:
    """Times as captures hold them (whole microseconds, nanoseconds, any float), and the
    floats next to whole seconds and microseconds, where a shortcut would slip."""
    times = [0.0, -0.0, 1.0, 0.999999, 1e-4, 9.9999995, 4294967295.999999, 4294967296.0,
             1700000000.0, 1700000000.00002, -1.5, 1e22]
    for _ in range(100_000):
        seconds = rng.randrange(0, 1 << 32)
        micros = rng.randrange(0, 1_000_000)
        times += [
            seconds + micros / 1e6,
            seconds + rng.randrange(0, 10**9) * 1e-9,
            rng.uniform(0, 1 << 33),
            rng.randrange(1, 10**6) + micros * 1e-6,
            rng.uniform(0, 100),
        ]
        exact = (seconds * 1_000_000 + micros) / 1e6
        times += [math.nextafter(exact, math.inf), math.nextafter(exact, -math.inf),
                  math.nextafter(float(seconds), -math.inf)]
    return times


def test_times_written_as_repr_writes_them() -> None:
    """`_number`'s shortcut for times of whole microseconds gives repr's text for every
    float (checked against repr itself, on 800k of them)."""
    times = _times(random.Random(17))
    assert [_number(t) for t in times] == [repr(t) for t in times]
    shortcut = sum(1 for t in times if 1.0 <= t < 4294967296.0 and
                   int(t * 1e6 + 0.5) / 1e6 == t)
    assert shortcut > len(times) // 4  # (the shortcut is taken, not only repr)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError):
            _number(bad)
