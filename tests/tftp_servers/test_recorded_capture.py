"""The repo's recorded real TFTP capture (captures/tftp-hpa-download.pcapng, see
captures/README.md): no root needed. tshark's export is the independent reference."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import require_tool
from tests.support.analyzer_cli import tftp_transfers
from tests.support.tshark import export_tftp_objects
from tests.tftp_servers.checks import (
    as_option_dict,
    check_complete,
    check_extracted,
)


def test_tftp_hpa_download(captures_dir: Path, tmp_path: Path) -> None:
    require_tool("tshark")
    capture = captures_dir / "tftp-hpa-download.pcapng"
    exported = export_tftp_objects(capture, tmp_path / "tshark")
    content = exported["notes.txt"].read_bytes()
    assert len(content) == 20_000  # as recorded by captures/record_tftp.sh

    transfers = tftp_transfers(capture)
    assert len(transfers) == 1
    transfer = transfers[0]
    assert (transfer["request"], transfer["filename"], transfer["mode"]) == (
        "RRQ", "notes.txt", "octet"
    )
    assert transfer["client"].startswith("127.0.0.1:")
    assert transfer["server"].startswith("127.0.0.2:") and transfer["server"] != "127.0.0.2:69"
    assert as_option_dict(transfer["options"]) == {"blksize": "1024", "tsize": "0"}
    assert as_option_dict(transfer["oack"]) == {"blksize": "1024", "tsize": "20000"}
    check_complete(transfer, content, blksize=1024, wire_length=len(content))
    assert transfer["blocks"] == 20 and transfer["retransmissions"] == 0
    check_extracted(capture, tmp_path / "extract", {"notes.txt": content})


def test_read_with_extract(captures_dir: Path, tmp_path: Path) -> None:
    """`read --json --extract DIR` writes the file and names it in `extracted`."""
    require_tool("tshark")
    capture = captures_dir / "tftp-hpa-download.pcapng"
    content = export_tftp_objects(capture, tmp_path / "tshark")["notes.txt"].read_bytes()
    out_dir = tmp_path / "extract"
    out_dir.mkdir()

    transfers = tftp_transfers(capture, "--extract", out_dir)
    assert len(transfers) == 1
    extracted = Path(transfers[0]["extracted"])
    assert extracted.resolve().parent == out_dir.resolve()
    assert extracted.name == "notes.txt"
    assert extracted.read_bytes() == content
