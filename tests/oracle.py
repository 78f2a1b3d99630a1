"""Independent oracles for capture tests: tshark (Wireshark's dissectors) and scapy's
readers. Tests compare the analyzer's frames and packets with these, never with
the analyzer's own output.

    rows = tshark_fields(path, ["frame.number", "ip.src"])
    tuples = tshark_five_tuples(path)        # {frame number: FiveTuple}
    frames = scapy_frames(path)              # [(ts, linktype, data, wirelen)]
"""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import CAPTURES_DIR, CORPUS_DIR, require_tool

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")


def real_capture_params() -> list:
    """pytest params for every capture in ../shared/corpus/ (when present) and captures/."""
    params = []
    for folder, label in ((CORPUS_DIR, "corpus"), (CAPTURES_DIR, "captures")):
        if folder.is_dir():
            params += [pytest.param(path, id=f"{label}/{path.name}")
                       for path in sorted(folder.iterdir())
                       if path.is_file() and path.name.endswith(CAPTURE_SUFFIXES)]
    return params


class FiveTuple(NamedTuple):
    src: str
    dst: str
    proto: int
    sport: int
    dport: int


class TsharkResult(NamedTuple):
    rows: list[dict[str, str]]
    stderr: str
    returncode: int


def run_tshark(path: Path | str, fields: list[str], display_filter: str | None = None,
               two_pass: bool = False) -> TsharkResult:
    """tshark -T fields over `path`; first occurrence of each field (the outermost
    header, not an ICMP error's quoted one). Damaged files still give their rows."""
    tshark = require_tool("tshark")
    command = [tshark, "-n", "-r", os.fspath(path), "-T", "fields", "-E", "occurrence=f",
               "-E", "separator=\t"]
    if two_pass:
        command.append("-2")
    if display_filter:
        command += ["-Y", display_filter]
    for name in fields:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LC_ALL": "C"})
    rows = []
    for line in done.stdout.splitlines():
        values = line.split("\t")
        rows.append(dict(zip(fields, values + [""] * (len(fields) - len(values)), strict=True)))
    return TsharkResult(rows, done.stderr, done.returncode)


def tshark_fields(path: Path | str, fields: list[str], display_filter: str | None = None,
                  two_pass: bool = False) -> list[dict[str, str]]:
    return run_tshark(path, fields, display_filter, two_pass).rows


FRAME_FIELDS = ["frame.number", "frame.section_number", "frame.interface_id",
                "frame.time_epoch", "frame.len", "frame.cap_len", "frame.protocols"]


def tshark_frames(path: Path | str) -> list[dict[str, str]]:
    """One row per packet record, in file order.

    Wireshark also shows pcapng Custom Blocks as numbered records (no interface, no
    time): they are not packets, so they are left out here. Note that tshark 4.0's
    `frame.interface_id` counts within a section (see `frame.section_number`), and its
    `frame.interface_name` for later sections is wrong (it shows section one's names).
    """
    rows = tshark_fields(path, FRAME_FIELDS)
    return [row for row in rows if not _is_custom_block(row)]


def _is_custom_block(row: dict[str, str]) -> bool:
    """tshark 4.0 shows a Custom Block as a record of "data" with no interface or time
    (a Simple Packet Block has no time either, but it has an interface)."""
    return (row["frame.interface_id"] == "" and row["frame.time_epoch"] == ""
            and row["frame.protocols"] == "data")


TUPLE_FIELDS = ["frame.number", "frame.interface_id", "frame.time_epoch", "frame.protocols",
                "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.dstport",
                "udp.srcport", "udp.dstport", "icmp.type", "icmpv6.type"]


def tshark_five_tuples(path: Path | str) -> dict[int, FiveTuple]:
    """{frame number: 5-tuple} for every frame where tshark sees TCP or UDP directly
    over IP (after its own IP reassembly), numbered over packet records only.

    ICMP frames are left out: tshark shows the quoted header's ports for ICMP errors.
    """
    result: dict[int, FiveTuple] = {}
    number = 0
    for row in tshark_fields(path, TUPLE_FIELDS):
        if _is_custom_block(row):
            continue
        number += 1
        if row["icmp.type"] or row["icmpv6.type"]:
            continue
        src = row["ip.src"] or row["ipv6.src"]
        dst = row["ip.dst"] or row["ipv6.dst"]
        if not src:
            continue
        if row["tcp.srcport"]:
            result[number] = FiveTuple(src, dst, 6, int(row["tcp.srcport"]),
                                       int(row["tcp.dstport"]))
        elif row["udp.srcport"]:
            result[number] = FiveTuple(src, dst, 17, int(row["udp.srcport"]),
                                       int(row["udp.dstport"]))
    return result


class ScapyFrame(NamedTuple):
    ts: Decimal | None  # exact; None for a Simple Packet Block
    linktype: int
    data: bytes
    wirelen: int


def scapy_frames(path: Path | str) -> list[ScapyFrame]:
    """Frames as scapy's raw readers see them (a second, independent reader).

    Known scapy limitation: RawPcapNgReader does not reset its interface list at a new
    Section Header Block, so it mislabels frames of second and later sections; use it
    on single-section files only.
    """
    from scapy.utils import RawPcapNgReader, RawPcapReader

    frames = []
    with RawPcapReader(os.fspath(path)) as reader:  # picks pcap or pcapng, gzip too
        if isinstance(reader, RawPcapNgReader):
            for data, meta in reader:
                if meta.tshigh is None:
                    ts = None
                else:
                    ts = Decimal((meta.tshigh << 32) | meta.tslow) / Decimal(meta.tsresol)
                frames.append(ScapyFrame(ts, meta.linktype, data, meta.wirelen))
        else:
            nanos = reader.nano
            for data, meta in reader:
                fraction = Decimal(meta.usec) / Decimal(10**9 if nanos else 10**6)
                frames.append(ScapyFrame(meta.sec + fraction, reader.linktype, data,
                                         meta.wirelen))
    return frames
