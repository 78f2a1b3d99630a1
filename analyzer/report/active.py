"""Views of the active modes' outcomes: the SPEC `tftp_client` JSON object and the
one-line summary a user reads after `tftp get/put`. Views only: no protocol logic."""

from __future__ import annotations

from typing import Any

from analyzer.tftp.client import ClientOutcome, Endpoint
from analyzer.tftp.codec import options_dict


def endpoint_text(address: Endpoint | None) -> str | None:
    """SPEC endpoints: "ip:port", IPv6 as "[addr]:port"."""
    if address is None:
        return None
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tftp_client_json(outcome: ClientOutcome, server_text: str | None = None) -> dict[str, Any]:
    """The SPEC `tftp_client` object (keys exactly as SPEC), plus `reason` and `notes`."""
    error = outcome.error
    return {
        "type": "tftp_client",
        "server": server_text or endpoint_text(outcome.server),
        "peer": endpoint_text(outcome.peer),
        "request": outcome.request,
        "filename": outcome.filename,
        "local": outcome.local,
        "mode": outcome.mode,
        "options": options_dict(outcome.options),
        "oack": None if outcome.oack is None else options_dict(outcome.oack),
        "blksize": outcome.blksize,
        "windowsize": outcome.windowsize,
        "status": outcome.status,
        "error": None if error is None
        else {"code": error.code, "message": error.message, "from": error.origin},
        "bytes": outcome.bytes,
        "sha256": outcome.sha256,
        "retransmitted": outcome.retransmitted,
        "duplicates": outcome.duplicates,
        "seconds": round(outcome.seconds, 6),
        "reason": outcome.reason,
        "notes": list(outcome.notes),
    }


def summary_line(outcome: ClientOutcome) -> str:
    """One line: what moved, how fast, with whom; or why it failed."""
    verb = "sent" if outcome.request == "WRQ" else "received"
    peer = endpoint_text(outcome.peer) or endpoint_text(outcome.server)
    if not outcome.ok:
        return f"tftp {outcome.filename}: {outcome.reason} (peer {peer})"
    seconds = max(outcome.seconds, 1e-9)
    rate = outcome.bytes / seconds
    text = (f"{verb} {outcome.bytes:,} bytes in {outcome.seconds:.2f} s "
            f"({_rate(rate)}) {'to' if outcome.request == 'WRQ' else 'from'} {peer}, "
            f"blksize {outcome.blksize}")
    if outcome.windowsize != 1:
        text += f", windowsize {outcome.windowsize}"
    text += f", {outcome.retransmitted} retransmitted"
    if outcome.duplicates:
        text += f", {outcome.duplicates} duplicates"
    return text


def _rate(bytes_per_second: float) -> str:
    for unit, size in (("GiB/s", 1 << 30), ("MiB/s", 1 << 20), ("KiB/s", 1 << 10)):
        if bytes_per_second >= size:
            return f"{bytes_per_second / size:.1f} {unit}"
    return f"{bytes_per_second:.0f} B/s"
