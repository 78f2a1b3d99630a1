"""`tftp_transfer_line` builds the JSON text directly (a port scan is 100k lines); it must
be exactly what the JSON encoder makes of `tftp_transfer_object`, on every real capture's
transfers and on crafted ones that fill every field (options, OACK, an ERROR with quotes,
control and non-ASCII characters, holes, findings, an extracted file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.pipeline import analyze_file
from analyzer.report.jsonl import encode, tftp_transfer_line
from analyzer.report.tftp_json import tftp_transfer_object
from tests.oracle import real_capture_params
from tests.tftp import craft
from tests.tftp.craft import Capture

CLIENT, SERVER, TID = ("10.0.0.2", 40000), ("10.0.0.1", 69), ("10.0.0.1", 50000)


def _same(transfers: list) -> int:
    for transfer in transfers:
        assert tftp_transfer_line(transfer) == encode(tftp_transfer_object(transfer))
    return len(transfers)


@pytest.mark.parametrize("path", real_capture_params())
def test_real_transfers(path: Path) -> None:
    _same(analyze_file(path).tftp.results())


def test_every_field_filled(tmp_path: Path) -> None:
    cap = Capture()
    # options, OACK, a hole (block 2 never seen), a short final block: findings too
    cap.udp(CLIENT, SERVER, craft.rrq('dir/"quoted"\\name\u00e9.bin', "octet",
                                      [("blksize", "1024"), ("tsize", "0"), ("x-é", "ü")]))
    cap.udp(TID, CLIENT, craft.oack([("blksize", "1024"), ("tsize", "3000")]))
    cap.udp(CLIENT, TID, craft.ack(0))
    cap.udp(TID, CLIENT, craft.data(1, b"a" * 1024))
    cap.udp(CLIENT, TID, craft.ack(1))
    cap.udp(TID, CLIENT, craft.data(3, b"c" * 100))
    cap.udp(CLIENT, TID, craft.ack(3))
    # an ERROR whose message carries quotes, an escape sequence and non-ASCII text
    other = ("10.0.0.3", 40001)
    cap.udp(other, SERVER, craft.rrq("missing\x1b[31m.txt"))
    cap.udp(("10.0.0.1", 50001), other, craft.error(1, 'no "file" \x1b]0;x\x07 \u00fc'))
    out = tmp_path / "out"
    out.mkdir()
    transfers = cap.analyze(tmp_path, extract_dir=out).tftp.results()
    assert _same(transfers) == 2
    first, second = transfers
    assert first.oack is not None and first.gaps and first.findings and first.extracted
    assert second.error is not None
