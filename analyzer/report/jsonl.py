"""JSON Lines (SPEC "Contract: JSON Lines"): one object per line, each with "type".

Views own the encodings; results are plain data. `tcp_json.py` writes `tcp_stream`
lines (compiled: one per connection), `tftp_json.py` the TFTP objects, this module the
`capture` object and the writing of lines. Where finished lines wait before they are
printed in order is the application layer's business (`analyzer.run.results`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.report.tcp_json import stream_line
from analyzer.report.tftp_json import finding_object, tftp_transfer_object
from analyzer.tftp.codec import DEFAULT_BLKSIZE, DEFAULT_WINDOWSIZE, Request, options_dict

if TYPE_CHECKING:
    from analyzer.capture import CaptureInfo
    from analyzer.pipeline import Analysis, CaptureSummary
    from analyzer.tcp.result import TcpStreamResult
    from analyzer.tftp.transfer import TftpTransfer, UnansweredRequest


# One encoder for every line: json.dumps with a keyword builds a new one per call.
_ENCODER = json.JSONEncoder(allow_nan=False)
_JSON_STRING = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def encode(obj: dict[str, Any]) -> str:
    """One JSON object as one line of text (no newline)."""
    return _ENCODER.encode(obj)


def tftp_transfer_line(t: TftpTransfer) -> str:
    """`tftp_transfer_object(t)` as one line, the same text `encode` makes of it, built
    directly: a port-69 scan is 100,000 of these (unanswered requests), and the dict and
    its encoding were a third of reading one. The parts that are usually empty (options,
    OACK, error, holes, findings) still go through `encode`."""
    text = _JSON_STRING  # json's own string encoder (ensure_ascii), as `encode` uses
    oack = "null" if t.oack is None else encode(options_dict(t.oack))
    error = "null" if t.error is None else encode(
        {"code": t.error.code, "message": t.error.message})
    digest = t.sha256
    extracted = t.extracted
    return (
        f'{{"type": "tftp_transfer", "client": {text(t.client)}, '
        f'"server": {text(t.server)}, "request": {text(t.request.name)}, '
        f'"filename": {text(t.request.filename)}, "mode": {text(t.request.mode)}, '
        f'"options": {encode(t.options) if t.options else "{}"}, "oack": {oack}, '
        f'"blksize": {int(t.blksize)}, "windowsize": {int(t.windowsize)}, '
        f'"status": {text(t.status)}, "error": {error}, "bytes": {int(t.bytes)}, '
        f'"sha256": {"null" if digest is None else text(digest)}, '
        f'"blocks": {int(t.blocks)}, "missing_blocks": '
        f'{_json_list([{"first": g.first, "last": g.last} for g in t.gaps])}, '
        f'"retransmissions": {int(t.retransmissions)}, '
        f'"extracted": {"null" if extracted is None else text(extracted)}, '
        f'"findings": {_json_list([finding_object(f) for f in t.findings])}}}')


def unanswered_line(u: UnansweredRequest) -> str:
    """The line `tftp_transfer_line` makes of the transfer an unanswered request stands
    for (tests/tftp/test_unanswered.py compares the two on every kind of request): all
    but the client is the same for each request of a scan, so it is made once."""
    key = (u.request_addr, u.listen_port, u.request)
    rest = _unanswered_rests.get(key)
    if rest is None:
        if len(_unanswered_rests) >= _UNANSWERED_KINDS:
            _unanswered_rests.clear()
        rest = _unanswered_rests[key] = _unanswered_rest(u.server, u.request)
    return f'{{"type": "tftp_transfer", "client": {_JSON_STRING(u.client)}{rest}'


# An unanswered request's line after its client, by where it went and what it asked.
_unanswered_rests: dict[tuple[bytes, int, Request], str] = {}
_UNANSWERED_KINDS = 1024  # (a scan that varies its file names starts over now and then)


def _unanswered_rest(server: str, request: Request) -> str:
    """Nobody answered: no OACK (the default block and window sizes), no ERROR, no data
    (status "incomplete"), nothing counted, so no finding."""
    text = _JSON_STRING
    options = options_dict(request.options)
    return (
        f', "server": {text(server)}, "request": {text(request.name)}, '
        f'"filename": {text(request.filename)}, "mode": {text(request.mode)}, '
        f'"options": {encode(options) if options else "{}"}, "oack": null, '
        f'"blksize": {DEFAULT_BLKSIZE}, "windowsize": {DEFAULT_WINDOWSIZE}, '
        '"status": "incomplete", "error": null, "bytes": 0, "sha256": null, "blocks": 0, '
        '"missing_blocks": [], "retransmissions": 0, "extracted": null, "findings": []}')


def _json_list(items: list[dict[str, Any]]) -> str:
    return encode(items) if items else "[]"  # type: ignore[arg-type]


def capture_object(summary: CaptureSummary) -> dict[str, Any]:
    """The SPEC `capture` object: what was read, from where, and what went wrong."""
    from analyzer.capture.linktypes import linktype_name

    info, stats = summary.info, summary.stats
    first, last = summary.first, summary.last
    return {
        "type": "capture",
        "file": info.path,
        "format": info.format,
        "compressed": info.compressed,
        "sections": info.sections,
        "packets": stats.packets,
        "bytes": stats.bytes,
        "wire_bytes": stats.wire_bytes,
        "first": first,
        "last": last,
        "duration": (last - first) if first is not None and last is not None else 0.0,
        "link_types": {linktype_name(k): v for k, v in sorted(stats.linktypes.items())},
        "skipped_link_types": {linktype_name(k): v
                               for k, v in sorted(stats.skipped_linktypes.items())},
        "interfaces": [
            {"id": i.id, "name": i.name, "description": i.description,
             "link_type": linktype_name(i.linktype), "linktype": i.linktype,
             "tsresol": i.tsresol, "snaplen": i.snaplen, "packets": i.packets,
             "dropped": i.dropped}
            for i in info.interfaces
        ],
        "protocols": dict(stats.protocols.most_common()),
        "tunnels": dict(stats.tunnels.most_common()),
        "tunnels_not_decoded": dict(stats.not_decoded.most_common()),
        "malformed": stats.malformed,
        "truncated": stats.truncated,
        "filtered_out": summary.filtered_out,
        "warnings": summary.warnings,
    } | ({"files": [_file_object(f) for f in info.files]} if info.files else {}) \
      | ({"ended": info.ended} if info.ended is not None else {})


def _file_object(info: CaptureInfo) -> dict[str, Any]:
    """One of several files read as one: its own format and link types."""
    from analyzer.capture.linktypes import linktype_name

    return {"file": info.path, "format": info.format, "compressed": info.compressed,
            "sections": info.sections,
            "packets": sum(i.packets for i in info.interfaces),
            "link_types": sorted({linktype_name(i.linktype) for i in info.interfaces})}


def write_objects(objects: Iterable[dict[str, Any]], out: TextIO) -> None:
    for obj in objects:
        out.write(_ENCODER.encode(obj))
        out.write("\n")


def write_results(out: TextIO, tcp: Iterable[TcpStreamResult],
                  tftp: Iterable[TftpTransfer]) -> None:
    """Results kept in memory, as lines: tcp_stream objects, then tftp_transfer objects."""
    for result in tcp:
        out.write(stream_line(result))
        out.write("\n")
    write_objects((tftp_transfer_object(t) for t in tftp), out)


def write_analysis(analysis: Analysis, out: TextIO) -> None:
    """An analysis whose results the trackers kept: tcp_stream objects by stream number,
    tftp_transfer objects in request order, then the capture."""
    write_results(out, analysis.tcp.results(), analysis.tftp.results())
    write_objects([capture_object(analysis.capture)], out)
    out.flush()
