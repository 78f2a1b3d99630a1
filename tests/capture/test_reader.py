"""The capture reader against crafted captures: truth by construction, tshark and scapy.

Every crafted file (tests/craft.py) is read with `open_capture`; the frames must be
exactly the ones written: timestamps, link types, interfaces (counted across pcapng
sections), captured bytes and original lengths. Damaged files give the frames before
the damage and a warning, and never raise.
"""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
import zlib
from decimal import Decimal
from fractions import Fraction

import pytest

from analyzer.capture import open_capture
from analyzer.errors import InputError
from tests.conftest import CAPTURES_DIR
from tests.craft import (
    BAD_INPUT_NAMES,
    COMPRESSED_NAMES,
    DAMAGED_NAMES,
    LINKTYPE_ETHERNET,
    PCAP_MAGIC_USEC,
    READABLE_NAMES,
    CraftedCapture,
    resolution_units,
)
from tests.oracle import scapy_frames, tshark_frames
from tests.support.analyzer_cli import run_analyzer

# A float epoch time near 1.7e9 s has a resolution of 2.4e-7 s; a reader that drops
# the nanosecond digits of our timestamps (…456789) is off by more than this.
TIME_TOLERANCE = 3e-7


def read_all(path: os.PathLike[str] | str) -> tuple[list, object]:
    with open_capture(path) as capture:
        frames = list(capture)
        return frames, capture.info


def assert_frames_match(frames: list, crafted: CraftedCapture) -> None:
    assert len(frames) == len(crafted.frames), "frame count"
    for number, (got, want) in enumerate(zip(frames, crafted.frames, strict=True), 1):
        where = f"{crafted.name} frame {number}"
        assert got.linktype == want.linktype, where
        assert got.interface == want.interface, where
        assert bytes(got.data) == want.data, where
        assert got.wirelen == want.wirelen, where
        assert isinstance(got.ts, float), where
        if want.ts is not None:
            assert abs(got.ts - float(want.ts)) <= TIME_TOLERANCE, (where, got.ts, want.ts)


@pytest.mark.parametrize("name", READABLE_NAMES)
def test_frames_are_the_ones_written(crafted: dict, name: str) -> None:
    capture = crafted[name]
    frames, info = read_all(capture.path)
    assert_frames_match(frames, capture)
    assert info.warnings == []
    assert info.format == capture.format
    assert info.compressed == capture.compressed


@pytest.mark.parametrize("name", COMPRESSED_NAMES)
def test_gzip_is_detected_by_content_not_name(crafted: dict, name: str) -> None:
    assert not name.endswith(".gz")
    with open(crafted[name].path, "rb") as handle:
        assert handle.read(2) == b"\x1f\x8b"
    _, info = read_all(crafted[name].path)
    assert info.compressed is True


@pytest.mark.parametrize("name", ["pcap-usec-le.pcap", "pcap-usec-be.pcap",
                                  "pcap-nsec-le.pcap", "pcap-nsec-be.pcap",
                                  "link-null-be.pcap"])
def test_pcap_byte_order_and_resolution(crafted: dict, name: str) -> None:
    capture = crafted[name]
    frames, info = read_all(capture.path)
    assert info.byte_order == capture.byte_order
    assert info.format == ("pcap-nsec" if "nsec" in name else "pcap")
    assert [i.tsresol for i in info.interfaces] == ["1e-9" if "nsec" in name else "1e-6"]
    # The sub-microsecond digits survive only in the nanosecond files.
    fractions = [Fraction(f.ts).limit_denominator(10**9) for f in frames]
    if "nsec" in name:
        assert all(abs(float(got - want.ts)) <= TIME_TOLERANCE
                   for got, want in zip(fractions, capture.frames, strict=True))
        assert any((want.ts * 10**6).denominator != 1 for want in capture.frames)


def test_snaplen_cut_frames_keep_their_wire_length(crafted: dict) -> None:
    capture = crafted["pcap-snaplen80.pcap"]
    frames, _ = read_all(capture.path)
    assert [len(f.data) for f in frames] == [80, 80, 59]
    # Ethernet 14 + IPv4 20 + TCP 20 + 512 payload; UDP 8 + 300; TCP 5 bytes (uncut)
    assert [f.wirelen for f in frames] == [566, 342, 59]
    capture = crafted["snaplen64.pcapng"]
    frames, _ = read_all(capture.path)
    assert [len(f.data) for f in frames] == [64, 64]
    assert [f.wirelen for f in frames] == [354, 142]


def test_pcapng_sections_interfaces_and_resolutions(crafted: dict) -> None:
    capture = crafted["multi-section.pcapng"]
    frames, info = read_all(capture.path)
    assert info.format == "pcapng"
    assert info.sections == 2
    assert info.byte_order == "little"  # the first section's
    got = [(i.id, i.linktype, i.name, i.snaplen) for i in info.interfaces]
    want = [(i.id, i.linktype, i.name, i.snaplen) for i in capture.interfaces]
    assert got == want
    assert [i.tsresol for i in info.interfaces] == ["1e-6", "1e-9", "2^-10", "1e-6", "1e-3"]
    per_interface = [sum(1 for f in capture.frames if f.interface == i.id)
                     for i in capture.interfaces]
    assert [i.packets for i in info.interfaces] == per_interface
    # The Interface Statistics Block of interface 0 says 3 packets were dropped.
    assert info.interfaces[0].dropped == 3
    # Frames keep their interface and each interface's link type: mixed link types.
    assert {f.linktype for f in frames} == {1, 101, 113, 108, 229}


def test_pcapng_timestamps_in_each_resolution(crafted: dict) -> None:
    capture = crafted["multi-section.pcapng"]
    frames, _ = read_all(capture.path)
    units = {i.id: resolution_units(i.tsresol) for i in capture.interfaces}
    seen_units = set()
    for got, want in zip(frames, capture.frames, strict=True):
        if want.ts is None:  # Simple Packet Block
            continue
        seen_units.add(units[want.interface])
        assert abs(got.ts - float(want.ts)) <= TIME_TOLERANCE
    assert seen_units == {10**6, 10**9, 1024, 10**3}


@pytest.mark.parametrize("name", DAMAGED_NAMES)
def test_damage_part_way_gives_the_frames_before_it_and_a_warning(crafted: dict,
                                                                  name: str) -> None:
    capture = crafted[name]
    frames, info = read_all(capture.path)  # must not raise
    assert_frames_match(frames, capture)
    assert info.warnings, "damage must be reported"
    assert all(isinstance(w, str) and w and "\n" not in w for w in info.warnings)


@pytest.mark.parametrize("name", BAD_INPUT_NAMES)
def test_unusable_input_raises_input_error_naming_the_file(bad_inputs: dict,
                                                           name: str) -> None:
    path = bad_inputs[name]
    with pytest.raises(InputError) as raised:
        with open_capture(path) as capture:
            list(capture)
    message = str(raised.value)
    assert str(path) in message
    assert "\n" not in message


def test_header_only_pcap_is_an_empty_capture(tmp_path) -> None:
    path = tmp_path / "header-only.pcap"
    path.write_bytes(struct.pack("<IHHiIII", PCAP_MAGIC_USEC, 2, 4, 0, 0, 65535,
                                 LINKTYPE_ETHERNET))
    frames, info = read_all(path)
    assert frames == []
    assert info.warnings == []


# -- the same frames as tshark and scapy read them ---------------------------------

@pytest.mark.parametrize("name", READABLE_NAMES)
def test_frames_agree_with_tshark(crafted: dict, name: str) -> None:
    capture = crafted[name]
    frames, _ = read_all(capture.path)
    rows = tshark_frames(capture.path)
    assert len(frames) == len(rows)
    # tshark numbers interfaces within each section, we across sections: the mapping
    # (section, tshark's id) -> our id must be one-to-one.
    interface_map: dict[tuple[str, str], int] = {}
    for got, row in zip(frames, rows, strict=True):
        assert got.wirelen == int(row["frame.len"])
        assert len(got.data) == int(row["frame.cap_len"])
        if row["frame.interface_id"]:
            key = (row["frame.section_number"], row["frame.interface_id"])
            assert interface_map.setdefault(key, got.interface) == got.interface
        if row["frame.time_epoch"]:
            # tshark prints nanoseconds, truncating finer (2^-10) resolutions
            assert abs(Decimal(repr(got.ts)) - Decimal(row["frame.time_epoch"])) <= Decimal(
                "3e-7")
    assert len(set(interface_map.values())) == len(interface_map)
    if not name.endswith("pcapng") and "pcapng" not in name:
        assert set(interface_map.values()) <= {0}


@pytest.mark.parametrize("name", DAMAGED_NAMES)
def test_damaged_frames_agree_with_tshark(crafted: dict, name: str) -> None:
    """tshark also reads up to the damage: the same number of frames."""
    frames, _ = read_all(crafted[name].path)
    assert len(frames) == len(tshark_frames(crafted[name].path))


SINGLE_SECTION = [n for n in READABLE_NAMES if n not in ("multi-section.pcapng",
                                                         "gzipped-pcapng.bin")]


@pytest.mark.parametrize("name", SINGLE_SECTION)
def test_frames_agree_with_scapy(crafted: dict, name: str) -> None:
    capture = crafted[name]
    frames, _ = read_all(capture.path)
    theirs = scapy_frames(capture.path)
    assert len(frames) == len(theirs)
    for got, want in zip(frames, theirs, strict=True):
        assert bytes(got.data) == want.data
        assert got.linktype == want.linktype
        assert got.wirelen == want.wirelen
        if want.ts is not None:
            assert abs(Decimal(repr(got.ts)) - want.ts) <= Decimal("3e-7")


# -- streaming -------------------------------------------------------------------

def _write_big_pcap(path, records: int) -> None:
    record = b"\x00" * 1200
    header = struct.pack("<IHHiIII", PCAP_MAGIC_USEC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
    chunk = b"".join(struct.pack("<IIII", 1_700_000_000 + i, 0, len(record), len(record))
                     + record for i in range(1000))
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(records // 1000):
            out.write(chunk)


def _peak_memory_reading(path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        seen = 0
        with open_capture(path) as capture:
            for _frame in capture:
                seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return seen, peak


def test_reading_streams_without_holding_the_file(tmp_path) -> None:
    """Peak memory does not grow with the file: 2.4 MB and 24 MB read in the same."""
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    _write_big_pcap(small, 2_000)
    _write_big_pcap(big, 20_000)
    seen_small, peak_small = _peak_memory_reading(small)
    seen_big, peak_big = _peak_memory_reading(big)
    assert (seen_small, seen_big) == (2_000, 20_000)
    assert peak_big < peak_small * 1.5 + 512 * 1024, (peak_small, peak_big)
    assert peak_big < big.stat().st_size / 4


def test_gzip_cut_keeps_every_frame_before_the_cut(tmp_path) -> None:
    """A big gzip capture cut short (an interrupted download): every record that the
    surviving compressed bytes still hold must be read, then a warning."""
    record = bytes(range(256)) * 4  # 1 KiB of poorly compressible-ish data per record
    records = 6000
    header = struct.pack("<IHHiIII", PCAP_MAGIC_USEC, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)
    body = b"".join(struct.pack("<IIII", 1_700_000_000, i, len(record), len(record))
                    + record[i % 256:] + record[:i % 256] for i in range(records))
    packed = gzip.compress(header + body, compresslevel=1)
    cut = int(len(packed) * 0.6)
    path = tmp_path / "interrupted.pcap.gz"
    path.write_bytes(packed[:cut])
    available = len(zlib.decompressobj(16 + 15).decompress(packed[:cut]))
    whole_records = (available - len(header)) // (16 + len(record))
    assert 1000 < whole_records < records
    assert len(tshark_frames(path)) == whole_records  # tshark reads up to the cut too
    frames, info = read_all(path)
    assert len(frames) == whole_records
    assert info.warnings


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_mapped_windows_give_every_record_across_their_edges(tmp_path, fmt: str) -> None:
    """A plain file is read through mmap windows of 2 MiB (capture/chunks.py). Records of
    random lengths straddle the windows' edges; each must come out whole and in order,
    exactly as written and as the same file read through gzip (plain reads) gives it."""
    import random

    from analyzer.capture.frame import Frame
    from analyzer.capture.pcapng_writer import PcapngWriter

    rng = random.Random(7)
    payloads: list[bytes] = []
    total = 0
    while total < 26 << 20:  # a dozen windows and more
        payloads.append(rng.randbytes(rng.choice([1, 60, 1514, 9000, rng.randint(1, 65535)])))
        total += len(payloads[-1]) + 32
    path = tmp_path / f"windows.{fmt}"
    if fmt == "pcap":
        with open(path, "wb") as out:
            out.write(struct.pack("<IHHiIII", PCAP_MAGIC_USEC, 2, 4, 0, 0, 262144,
                                  LINKTYPE_ETHERNET))
            for i, data in enumerate(payloads):
                out.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(data), len(data)))
                out.write(data)
    else:
        writer = PcapngWriter(str(path))
        writer.add_interface(LINKTYPE_ETHERNET, "eth0")
        for i, data in enumerate(payloads):
            writer.write(Frame(1_700_000_000.0 + i, LINKTYPE_ETHERNET, 0, data, len(data)))
        writer.close()
    frames, info = read_all(path)
    assert not info.warnings
    assert [bytes(f.data) for f in frames] == payloads
    assert [f.ts for f in frames] == [1_700_000_000.0 + i for i in range(len(payloads))]
    packed = tmp_path / f"windows.{fmt}.gz"
    packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    unmapped, _ = read_all(packed)
    assert [bytes(f.data) for f in unmapped] == payloads


def test_mapped_file_cut_mid_record_warns_like_a_read_one(tmp_path) -> None:
    """The last record cut short: the mapped reader stops there with the same warning
    and frames as the gzip (plain read) path, and tshark reads the same frames."""
    path = tmp_path / "big.pcap"
    _write_big_pcap(path, 9_000)  # 11 MB: the cut lies in the sixth window
    with open(path, "r+b") as out:
        out.truncate(path.stat().st_size - 700)
    frames, info = read_all(path)
    packed = tmp_path / "big.pcap.gz"
    packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    read_frames, read_info = read_all(packed)
    assert len(frames) == len(read_frames) == 8_999 == len(tshark_frames(path))
    assert info.warnings == read_info.warnings
    assert "truncated packet 9000" in info.warnings[0]


@pytest.mark.parametrize("block_type", [1, 2, 3, 5, 6], ids=["idb", "opb", "spb", "isb", "epb"])
@pytest.mark.parametrize("length", [12, 16])
def test_pcapng_blocks_too_short_for_their_fields_are_skipped(tmp_path, block_type: int,
                                                             length: int) -> None:
    """A block whose length is valid (a multiple of 4, at least 12) but too short for its
    type's fixed fields, at the end of the file: the frames before it, and a warning; it
    used to be a struct.error traceback. tshark reads the same frames."""
    source = CAPTURES_DIR / "tour.pcapng"  # little-endian, one section
    data = source.read_bytes()
    block = struct.pack("<II", block_type, length) + b"\x00" * (length - 12) \
        + struct.pack("<I", length)
    path = tmp_path / "short-block.pcapng"
    path.write_bytes(data + block)
    frames, info = read_all(path)
    assert len(frames) == len(tshark_frames(path))
    too_short = length < {1: 20, 2: 32, 3: 16, 5: 24, 6: 32}[block_type]
    assert len(frames) == len(read_all(source)[0]) + (block_type == 3 and not too_short)
    assert too_short == any("too short" in w for w in info.warnings), info.warnings  # type: ignore[attr-defined]
    done = run_analyzer("read", path, "--json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
