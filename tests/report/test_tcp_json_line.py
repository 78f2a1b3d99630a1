"""`stream_line()` (analyzer/report/tcp_json.py) writes the `tcp_stream` line by hand for
speed; it must be exactly the text the standard library's JSON encoder makes of
`stream_object()`, for every stream of every capture we have (gaps, analysis counts,
labels, IPv6 included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.pipeline import analyze_file
from analyzer.report.tcp_json import stream_line, stream_object
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
