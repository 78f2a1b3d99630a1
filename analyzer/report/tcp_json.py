"""The SPEC `tcp_stream` object of a `TcpStreamResult`: as a dict (`stream_object`) and as
the JSON Lines text `read --json` prints (`stream_line`).

`stream_line` is on the hot path (once per connection: ~25k lines for a 1M-packet
capture), so it writes the text directly instead of encoding the dict, ~3x faster, and
mypyc compiles this module (analyzer/native.py). It must stay exactly what the standard
library's encoder makes of `stream_object` (ASCII, ", " and ": ", no NaN), which
tests/report/test_tcp_json_line.py checks on every capture we have.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Final

from analyzer.tcp.result import TcpStreamResult

# What every line starts with, up to its stream number: lines spilled before they are
# numbered (analyzer/run/results.py TcpLines) are kept without it.
STREAM_START: Final = '{"type": "tcp_stream", "stream": '


def stream_line(result: TcpStreamResult) -> str:
    """`stream_object(result)` as JSON text, without the newline."""
    return f"{STREAM_START}{result.stream}{stream_head(result)}{stream_tail(result)}"


def stream_head(result: TcpStreamResult) -> str:
    """`stream_line` after the stream number, up to `end`: what differs between a probe's
    result and its template's (TcpStreamResult.template)."""
    return probe_head(result, result.client.endpoint, result.server.endpoint,
                      result.start, result.end)


def probe_head(template: TcpStreamResult, client: str, server: str, start: float,
               end: float) -> str:
    """`stream_head` of a result that is `template`'s but for its endpoints and times
    (a probe's, TcpTracker's on_probe), without making that result."""
    start_text = _number(start)
    # (one packet's stream starts and ends at once: a probe's, or most of a flood's)
    end_text = start_text if end == start else _number(end)
    return (
        f', "client": {_text(client)}, "server": {_text(server)}, '
        f'"direction_guessed": {"true" if template.direction_guessed else "false"}, '
        f'"packets": {template.packets}, "start": {start_text}, "end": {end_text}, ')


def stream_tail(result: TcpStreamResult) -> str:
    """The rest of `stream_line`, from `handshake` on."""
    client, server = result.client, result.server
    gaps = ", ".join([f'{{"direction": "{"client" if g.from_client else "server"}", '
                      f'"offset": {g.offset}, "length": {g.length}}}' for g in result.gaps])
    analysis = ", ".join([f"{_text(key)}: {count}" for key, count in result.analysis.items()])
    labels = ", ".join([_text(label) for label in result.labels])
    return (
        f'"handshake": {_text(result.handshake)}, '
        f'"close": {_text(result.close)}, "labels": [{labels}], '
        f'"completeness": {result.completeness}, "history": {_text(result.history)}, '
        f'"conn_state": {_text(result.conn_state)}, "client_bytes": {client.bytes}, '
        f'"server_bytes": {server.bytes}, "client_sha256": {_text(client.sha256)}, '
        f'"server_sha256": {_text(server.sha256)}, "gaps": [{gaps}], '
        f'"analysis": {{{analysis}}}}}')


def stream_object(result: TcpStreamResult) -> dict[str, Any]:
    """The SPEC `tcp_stream` object."""
    return {
        "type": "tcp_stream",
        "stream": result.stream,
        "client": result.client.endpoint,
        "server": result.server.endpoint,
        "direction_guessed": result.direction_guessed,
        "packets": result.packets,
        "start": result.start,
        "end": result.end,
        "handshake": result.handshake,
        "close": result.close,
        "labels": list(result.labels),
        "completeness": result.completeness,
        "history": result.history,
        "conn_state": result.conn_state,
        "client_bytes": result.client.bytes,
        "server_bytes": result.server.bytes,
        "client_sha256": result.client.sha256,
        "server_sha256": result.server.sha256,
        "gaps": [{"direction": "client" if g.from_client else "server",
                  "offset": g.offset, "length": g.length} for g in result.gaps],
        "analysis": dict(result.analysis),
    }


def _text(value: str) -> str:
    """A JSON string as json.dumps writes it (ensure_ascii): its own C function."""
    return encode_basestring_ascii(value)


def _number(value: float) -> str:
    """A JSON number as json.dumps writes it: repr, and no NaN or infinity (allow_nan=False
    in the encoder report/jsonl.py uses).

    A capture's times are whole microseconds (or near them) since 1970, and repr, the
    shortest text that reads back as the same float, spent ~0.4 us on each (a SYN
    flood's million lines: a tenth of the time). Such a time's text is its microseconds
    with the point put back, when that reads back as `value` (micros / 1e6 is the
    float nearest to that decimal, as reading the text gives): no shorter text can,
    since below 2^32 two floats' spacing is under a microsecond, so at most one number
    of six decimals or fewer reads back as `value`. tests/report/test_tcp_json_line.py
    compares this with repr on millions of times."""
    if 1.0 <= value < 4294967296.0:
        micros = int(value * 1e6 + 0.5)
        if micros / 1e6 == value:
            digits = str(micros)  # (seven at least)
            return f"{digits[:-6]}.{digits[-6:].rstrip('0') or '0'}"
    if not value - value == 0.0:  # NaN or an infinity (x - x is 0.0 for any other x)
        raise ValueError(f"out of range float value for JSON: {value!r}")
    return repr(value)
