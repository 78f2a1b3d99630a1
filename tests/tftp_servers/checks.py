"""Assertions shared by the real-server tests: find a transfer in `analyzer read --json`,
check it against the truth of the run, check `analyzer tftp extract`, and ask tshark.

Expected values always come from outside the analyzer: the file we served or uploaded,
what our raw client observed on its socket, the RFC arithmetic, or tshark.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path
from typing import NamedTuple

from tests.conftest import require_tool
from tests.support.analyzer_cli import sha256, tftp_extract, tftp_transfers
from tests.support.tshark import export_tftp_objects


def random_bytes(size: int, seed: int) -> bytes:
    """Reproducible incompressible content of a known size."""
    return random.Random(seed).randbytes(size)


def text_bytes(size: int, seed: int, line_end: bytes = b"\n") -> bytes:
    """Reproducible text of exactly `size` bytes: words and line ends (LF unless told)."""
    rng = random.Random(seed)
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf", b"tftp"]
    out = bytearray()
    while len(out) < size:
        line = b" ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        out += line + line_end
    return bytes(out[:size])


def endpoint(address: tuple) -> str:
    """The SPEC's endpoint text for a socket address: "ip:port", IPv6 as "[addr]:port"."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def as_option_dict(options: object) -> dict[str, str]:
    """Options from JSON as {lower-case name: value text}, whether a dict or name/value pairs."""
    if options is None:
        return {}
    pairs = options.items() if isinstance(options, dict) else options
    return {str(name).lower(): str(value) for name, value in pairs}  # type: ignore[misc]


def find_transfer(transfers: list[dict], request: str, filename: str) -> dict:
    """The one transfer for `request` of `filename` (each test uses its own file names)."""
    matches = [
        t for t in transfers if t.get("request") == request and t.get("filename") == filename
    ]
    assert len(matches) == 1, (
        f"expected one {request} {filename}, got {len(matches)} in "
        f"{[(t.get('request'), t.get('filename'), t.get('status')) for t in transfers]}"
    )
    return matches[0]


def analyze(
    capture: Path, request: str, filename: str, *extra: str
) -> tuple[dict, list[dict]]:
    """(the transfer of `filename`, all transfers) from `analyzer read CAPTURE --json`."""
    transfers = tftp_transfers(capture, *extra)
    return find_transfer(transfers, request, filename), transfers


def expected_blocks(wire_length: int, blksize: int) -> int:
    """RFC 1350: a transfer ends with the first block shorter than blksize (maybe empty)."""
    return wire_length // blksize + 1


def check_complete(
    transfer: dict, content: bytes, *, blksize: int, wire_length: int | None = None,
    windowsize: int | None = None, mode: str | None = None,
) -> None:
    """A complete transfer rebuilt byte-exact: status, size, hash, blocks, no gaps."""
    assert transfer["status"] == "complete", transfer
    assert transfer["error"] is None, transfer
    assert transfer["bytes"] == len(content), transfer
    assert transfer["sha256"] == sha256(content), transfer
    assert transfer["blksize"] == blksize, transfer
    if wire_length is not None:
        assert transfer["blocks"] == expected_blocks(wire_length, blksize), transfer
    assert not transfer["missing_blocks"], transfer
    if windowsize is not None:
        assert transfer["windowsize"] == windowsize, transfer
    if mode is not None:
        assert transfer["mode"].lower() == mode, transfer


def check_error(transfer: dict, code: int) -> None:
    """An error-only exchange: status error with the code the client saw, no file."""
    assert transfer["status"] == "error", transfer
    assert transfer["error"] is not None and transfer["error"]["code"] == code, transfer
    assert not transfer["bytes"], transfer


def check_extracted(
    capture: Path, out_dir: Path, files: dict[str, bytes], *extra: str
) -> dict[str, Path]:
    """`analyzer tftp extract` wrote each of `files` under its own name, byte-exact."""
    written = tftp_extract(capture, out_dir, *extra)
    for name, content in files.items():
        assert name in written, f"{name} not extracted; got {sorted(written)}"
        assert sha256(written[name].read_bytes()) == sha256(content), name
    return written


def check_tshark_agrees(capture: Path, out_dir: Path, files: dict[str, bytes]) -> None:
    """tshark's own export carries the same bytes (use only where tshark is right)."""
    exported = export_tftp_objects(capture, out_dir)
    for name, wire in files.items():
        assert name in exported, f"tshark did not export {name}; got {sorted(exported)}"
        assert sha256(exported[name].read_bytes()) == sha256(wire), f"tshark differs on {name}"


class DataPacket(NamedTuple):
    """One TFTP DATA packet as tshark sees it."""

    time: float  # epoch seconds
    block: int  # the 16-bit number on the wire
    payload_length: int  # data bytes after the 4-byte TFTP header


def tshark_data_packets(capture: Path) -> list[DataPacket]:
    """Every TFTP DATA packet in capture order, as tshark decodes it.

    ICMP errors quote the packet they answer, and tshark decodes the quoted DATA too:
    those are not DATA packets sent, so they are left out.
    """
    done = subprocess.run(
        [require_tool("tshark"), "-n", "-r", str(capture), "-Y", "tftp.opcode == 3 && !icmp",
         "-T", "fields", "-e", "frame.time_epoch", "-e", "tftp.block", "-e", "udp.length"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    rows = (line.split() for line in done.stdout.splitlines() if line.strip())
    # udp.length counts the 8-byte UDP header; TFTP DATA adds opcode and block (4 bytes).
    return [DataPacket(float(time), int(block), int(udp) - 12) for time, block, udp in rows]


def tshark_data_blocks(capture: Path) -> list[int]:
    """Block numbers of every TFTP DATA packet as tshark decodes them, in capture order."""
    return [packet.block for packet in tshark_data_packets(capture)]


def finding_codes(transfer: dict) -> set[str]:
    """The codes of the transfer's findings (the analyzer's verdicts)."""
    return {finding["code"] for finding in transfer["findings"]}


def finding(transfer: dict, code: str) -> dict:
    """The first finding with `code`; fails when the analyzer did not report it."""
    for item in transfer["findings"]:
        if item["code"] == code:
            return item
    raise AssertionError(f"no {code!r} finding in {transfer['findings']}")
