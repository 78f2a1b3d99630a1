"""The third-party TFTP captures, checked against tshark's export and the MANIFEST."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from analyzer.pipeline import analyze_file
from analyzer.report.tftp_json import tftp_transfer_object
from tests.conftest import require_tool
from tests.support.tshark import export_tftp_objects

# From ../shared/corpus/MANIFEST.md: capture -> (file name, size, blocks, options).
CORPUS = {
    "spicytftp__tftp_rrq.pcap": ("rfc1350.txt", 24599, 49, {}),
    "spicytftp__tftp_oack.pcap": ("hello.txt", 446, 2, {"blksize": "256"}),
    "tcpdump__tftp.pcap": ("file1", 1129, 3, {}),
}


@pytest.mark.parametrize("capture", sorted(CORPUS))
def test_corpus_transfer_matches_tshark(corpus_dir: Path, capture: str, tmp_path: Path) -> None:
    require_tool("tshark")
    name, size, blocks, options = CORPUS[capture]
    exported = export_tftp_objects(corpus_dir / capture, tmp_path / "tshark")
    truth = hashlib.sha256(exported[name].read_bytes()).hexdigest()
    analysis = analyze_file(corpus_dir / capture, extract_dir=tmp_path / "ours")
    (transfer,) = analysis.tftp.results()
    t = tftp_transfer_object(transfer)
    assert (t["request"], t["filename"], t["mode"]) == ("RRQ", name, "octet")
    assert (t["status"], t["bytes"], t["blocks"], t["sha256"]) == ("complete", size, blocks, truth)
    assert t["options"] == options and t["missing_blocks"] == [] and t["retransmissions"] == 0
    assert Path(t["extracted"]) == tmp_path / "ours" / name
    assert Path(t["extracted"]).read_bytes() == exported[name].read_bytes()
