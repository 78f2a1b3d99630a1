"""TFTP results as JSON: the SPEC `tftp_transfer` object (plus `findings`), and the
`timeline` list `tftp show --json` adds. The result types are plain data; this is where
they become JSON (key order is part of the output: `read --json` is compared byte for
byte)."""

from __future__ import annotations

from typing import Any

from analyzer.tftp.codec import options_dict
from analyzer.tftp.findings import Finding
from analyzer.tftp.transfer import TftpTransfer


def tftp_transfer_object(t: TftpTransfer) -> dict[str, Any]:
    """The SPEC `tftp_transfer` object, plus `findings`."""
    return {
        "type": "tftp_transfer",
        "client": t.client,
        "server": t.server,
        "request": t.request.name,
        "filename": t.request.filename,
        "mode": t.request.mode,
        "options": t.options,
        "oack": None if t.oack is None else options_dict(t.oack),
        "blksize": t.blksize,
        "windowsize": t.windowsize,
        "status": t.status,
        "error": None if t.error is None
        else {"code": t.error.code, "message": t.error.message},
        "bytes": t.bytes,
        "sha256": t.sha256,
        "blocks": t.blocks,
        "missing_blocks": [{"first": g.first, "last": g.last} for g in t.gaps],
        "retransmissions": t.retransmissions,
        "extracted": t.extracted,
        "findings": [finding_object(f) for f in t.findings],
    }


def finding_object(f: Finding) -> dict[str, Any]:
    """A finding as JSON: code, message and frame (severity and rfc are in the docs)."""
    return {"code": f.code, "message": f.message, "frame": f.frame}


def tftp_show_object(t: TftpTransfer) -> dict[str, Any]:
    """`tftp show --json`: the transfer object with its `timeline` of packets."""
    obj = tftp_transfer_object(t)
    obj["timeline"] = [e._asdict() for e in t.events or []]
    return obj
