"""Seeded mutation fuzzing of real captures through the analyzer's command line.

A case is one mutant of one seed capture and a few subcommands run on it. Everything a
case does follows from its seed (`case_seed(run_seed, index)`), so a failure reproduces
from the two numbers printed with it: `python scripts/fuzz.py --seed S --case I`.

Mutations know the capture's layout (pcap records, pcapng blocks and their options, the
link, IP, TCP, UDP and TFTP headers of each frame) and rewrite its fields with values
that hit edge cases (0, 1, all ones, one off, a sign bit, ...), besides blind byte flips,
inserts, deletes, truncations, records repeated or swapped, and gzip (intact or
damaged). Each subcommand runs as a real subprocess (what users run) with a fresh empty
working directory and TMPDIR; a
case fails on a traceback, an exit status other than 0/1/2, a run over the time limit,
or a file left anywhere but the output directory it was given.

Coverage-guided fuzzing (atheris) was considered: it installs from PyPI, but it fuzzes
in-process, where a traceback is just an exception, a compiled (mypyc) module has no
coverage to guide it, and the child's exit status, time and stray files (what users see)
are not observed; a subprocess per run is ~0.2 s, so a seeded generator that knows the
formats reaches deep fields faster than blind coverage search would at that rate.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
CORPUS_DIR = (REPO_DIR / ".." / "shared" / "corpus").resolve()
CAPTURES_DIR = REPO_DIR / "captures"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")

TIME_LIMIT_SECONDS = 10.0
ALLOWED_EXITS = (0, 1, 2)
OUTPUT_DIR_NAME = "out"

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
               b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
EPB, OPB, SPB, IDB, ISB = 6, 2, 3, 1, 5

# Link types whose network header is at a fixed offset: (offset of the ethertype or None
# for an address family / raw IP, offset of the network header).
ETHERNET, NULL, RAW, LOOP, SLL, SLL2 = 1, 0, 101, 108, 113, 276
RAW_LINKTYPES = (RAW, 12, 14, 228, 229)


def seed_captures() -> list[Path]:
    """The captures mutants are made from: captures/ and, when present, the shared corpus."""
    found: list[Path] = []
    for folder in (CAPTURES_DIR, CORPUS_DIR):
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir()
                            if p.is_file() and p.name.endswith(CAPTURE_SUFFIXES))
    return found


# -- where the fields are ---------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """A field of the file: `size` bytes at `offset`, in byte order `order`."""

    name: str
    offset: int
    size: int
    order: str = ">"
    nibble: str = ""  # "high" or "low": only that half of the byte


@dataclass
class Layout:
    """What a capture is made of, as far as the mutator cares."""

    kind: str  # "pcap", "pcapng" or "raw" (anything else: blind mutations only)
    records: list[tuple[int, int]] = field(default_factory=list)  # (start, length)
    fields: list[Field] = field(default_factory=list)
    order: str = "<"


def _network_fields(data: bytes, start: int, length: int, linktype: int,
                    out: list[Field]) -> None:
    """Fields of the IP, TCP, UDP and TFTP headers of the frame at data[start:start+length]."""
    end = start + length
    off: int | None = None
    version = 0
    if linktype == ETHERNET and length >= 14:
        ethertype_at = start + 12
        while (ethertype_at + 2 <= end
               and data[ethertype_at:ethertype_at + 2] in (b"\x81\x00", b"\x88\xa8")):
            out.append(Field("vlan.tpid", ethertype_at, 2))
            ethertype_at += 4
        off = ethertype_at + 2
        out.append(Field("ethernet.type", ethertype_at, 2))
    elif linktype == SLL and length >= 16:
        out.append(Field("sll.protocol", start + 14, 2))
        off = start + 16
    elif linktype == SLL2 and length >= 20:
        out.append(Field("sll2.protocol", start, 2))
        off = start + 20
    elif linktype in (NULL, LOOP) and length >= 4:
        out.append(Field("null.family", start, 4, "<" if linktype == NULL else ">"))
        off = start + 4
    elif linktype in RAW_LINKTYPES:
        off = start
    if off is None or off >= end:
        return
    version = data[off] >> 4
    proto = -1
    if version == 4 and off + 20 <= end:
        out += [Field("ipv4.version", off, 1, nibble="high"),
                Field("ipv4.ihl", off, 1, nibble="low"),
                Field("ipv4.total_length", off + 2, 2), Field("ipv4.id", off + 4, 2),
                Field("ipv4.flags_fragment", off + 6, 2), Field("ipv4.protocol", off + 9, 1)]
        proto = data[off + 9]
        off += (data[off] & 0x0F) * 4
    elif version == 6 and off + 40 <= end:
        out += [Field("ipv6.version", off, 1, nibble="high"),
                Field("ipv6.payload_length", off + 4, 2),
                Field("ipv6.next_header", off + 6, 1)]
        proto = data[off + 6]
        off += 40
        while proto in (0, 43, 44, 60, 51) and off + 8 <= end:
            out += [Field("ipv6.ext.next_header", off, 1),
                    Field("ipv6.ext.length", off + 1, 1)]
            if proto == 44:
                out.append(Field("ipv6.fragment", off + 2, 2))
                proto = data[off]
                off += 8
                break
            step = (data[off + 1] + 2) * 4 if proto == 51 else (data[off + 1] + 1) * 8
            proto = data[off]
            off += step
    if proto == 6 and off + 20 <= end:
        out += [Field("tcp.sport", off, 2), Field("tcp.dport", off + 2, 2),
                Field("tcp.seq", off + 4, 4), Field("tcp.ack", off + 8, 4),
                Field("tcp.data_offset", off + 12, 1, nibble="high"),
                Field("tcp.flags", off + 13, 1), Field("tcp.window", off + 14, 2)]
        doff = (data[off + 12] >> 4) * 4
        if doff > 20 and off + doff <= end:
            out.append(Field("tcp.option_length", off + 21, 1))
    elif proto == 17 and off + 8 <= end:
        out += [Field("udp.sport", off, 2), Field("udp.dport", off + 2, 2),
                Field("udp.length", off + 4, 2)]
        payload = off + 8
        if payload + 4 <= end and data[payload] == 0 and 1 <= data[payload + 1] <= 6:
            out += [Field("tftp.opcode", payload, 2), Field("tftp.block", payload + 2, 2)]
            if data[payload + 1] in (1, 2, 6):  # requests and OACK: NUL-separated strings
                for index in range(payload + 2, end):
                    if data[index] == 0:
                        out.append(Field("tftp.string_end", index, 1))
            elif data[payload + 1] == 3 and payload + 5 <= end:
                out.append(Field("tftp.data_byte", payload + 4, 1))


def _pcap_layout(data: bytes) -> Layout:
    order = PCAP_MAGICS[data[:4]]
    layout = Layout("pcap", order=order)
    layout.fields += [Field("pcap.version_major", 4, 2, order),
                      Field("pcap.snaplen", 16, 4, order), Field("pcap.linktype", 20, 4, order)]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    off = 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from(order + "I", data, off + 8)[0]
        if off + 16 + caplen > len(data):
            break
        layout.records.append((off, 16 + caplen))
        layout.fields += [Field("pcap.ts_sec", off, 4, order),
                          Field("pcap.ts_frac", off + 4, 4, order),
                          Field("pcap.caplen", off + 8, 4, order),
                          Field("pcap.wirelen", off + 12, 4, order)]
        _network_fields(data, off + 16, caplen, linktype, layout.fields)
        off += 16 + caplen
    return layout


def _pcapng_layout(data: bytes) -> Layout:
    layout = Layout("pcapng")
    order = "<"
    linktypes: list[int] = []
    off = 0
    while off + 12 <= len(data):
        if data[off:off + 4] == PCAPNG_SHB:
            order = "<" if data[off + 8:off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
            btype = 0x0A0D0D0A
            layout.fields.append(Field("pcapng.shb.byte_order", off + 8, 4, order))
        else:
            btype = struct.unpack_from(order + "I", data, off)[0]
        blen = struct.unpack_from(order + "I", data, off + 4)[0]
        if blen < 12 or off + blen > len(data):
            break
        layout.records.append((off, blen))
        layout.fields += [Field("pcapng.block_type", off, 4, order),
                          Field("pcapng.block_length", off + 4, 4, order),
                          Field("pcapng.block_trailing_length", off + blen - 4, 4, order)]
        if btype == IDB and blen >= 20:
            linktypes.append(struct.unpack_from(order + "H", data, off + 8)[0])
            layout.fields += [Field("pcapng.idb.linktype", off + 8, 2, order),
                              Field("pcapng.idb.snaplen", off + 12, 4, order)]
            opt = off + 16
            while opt + 4 <= off + blen - 4:
                code, length = struct.unpack_from(order + "HH", data, opt)
                if code == 0:
                    break
                layout.fields.append(Field("pcapng.option_length", opt + 2, 2, order))
                if code == 9 and length >= 1:
                    layout.fields.append(Field("pcapng.idb.if_tsresol", opt + 4, 1))
                elif code == 14 and length >= 8:
                    layout.fields.append(Field("pcapng.idb.if_tsoffset", opt + 4, 8, order))
                opt += 4 + ((length + 3) & ~3)
        elif btype in (EPB, OPB) and blen >= 32:
            iface_size = 4 if btype == EPB else 2
            layout.fields += [Field("pcapng.epb.interface", off + 8, iface_size, order),
                              Field("pcapng.epb.ts_high", off + 12, 4, order),
                              Field("pcapng.epb.ts_low", off + 16, 4, order),
                              Field("pcapng.epb.caplen", off + 20, 4, order),
                              Field("pcapng.epb.wirelen", off + 24, 4, order)]
            iface = struct.unpack_from(order + ("I" if btype == EPB else "H"), data, off + 8)[0]
            caplen = struct.unpack_from(order + "I", data, off + 20)[0]
            if iface < len(linktypes) and 28 + caplen <= blen - 4:
                _network_fields(data, off + 28, caplen, linktypes[iface], layout.fields)
        elif btype == SPB and blen >= 16:
            layout.fields.append(Field("pcapng.spb.wirelen", off + 8, 4, order))
            if linktypes:
                _network_fields(data, off + 12, blen - 16, linktypes[0], layout.fields)
        elif btype == ISB and blen >= 24:
            layout.fields.append(Field("pcapng.isb.interface", off + 8, 4, order))
        off += blen
    layout.order = order
    return layout


def layout_of(data: bytes) -> Layout:
    """The layout of a capture; anything unparseable gives a layout of no fields."""
    try:
        if data[:4] in PCAP_MAGICS and len(data) >= 24:
            return _pcap_layout(data)
        if data[:4] == PCAPNG_SHB:
            return _pcapng_layout(data)
    except (struct.error, IndexError, KeyError):
        pass
    return Layout("raw")


# -- mutations ----------------------------------------------------------------------------

def interesting_values(size: int, current: int, rng: random.Random) -> list[int]:
    """Values that hit edge cases for an unsigned field of `size` bytes holding `current`."""
    top = (1 << (8 * size)) - 1
    values = [0, 1, 2, top, top - 1, top >> 1, (top >> 1) + 1, current + 1, current - 1,
              current * 2, current >> 1, current ^ (1 << rng.randrange(8 * size)),
              rng.randrange(top + 1), rng.randrange(min(top, 4096) + 1)]
    if size >= 2:
        values += [0x7F, 0x80, 0xFF, 0x100, 20, 40, 60, 512, 1500, 65535]
    return [value & top for value in values]


def _set_field(data: bytearray, item: Field, rng: random.Random) -> str:
    if item.nibble:
        byte = data[item.offset]
        nibble = rng.choice([0, 1, 2, 4, 5, 6, 15, rng.randrange(16)])
        if item.nibble == "high":
            data[item.offset] = (nibble << 4) | (byte & 0x0F)
        else:
            data[item.offset] = (byte & 0xF0) | nibble
        return f"{item.name}@{item.offset} {item.nibble} nibble -> {nibble}"
    raw = bytes(data[item.offset:item.offset + item.size])
    byteorder = "little" if item.order == "<" else "big"
    current = int.from_bytes(raw, byteorder)
    if item.name == "pcapng.idb.if_tsresol":
        value = rng.choice([0, 6, 9, 19, 30, 0x7F, 0x80, 0x80 | 63, 0xFF, rng.randrange(256)])
    else:
        value = rng.choice(interesting_values(item.size, current, rng))
    data[item.offset:item.offset + item.size] = value.to_bytes(item.size, byteorder)
    return f"{item.name}@{item.offset} {current} -> {value}"


def mutate_field(data: bytearray, layout: Layout, rng: random.Random) -> str:
    if not layout.fields:
        return flip_bytes(data, layout, rng)
    # Pick the layer first, so the few file-level fields are hit as often as the many
    # per-packet ones.
    groups: dict[str, list[Field]] = {}
    for item in layout.fields:
        groups.setdefault(item.name.split(".")[0], []).append(item)
    chosen = rng.choice(groups[rng.choice(sorted(groups))])
    if chosen.offset + chosen.size > len(data):
        return flip_bytes(data, layout, rng)
    return _set_field(data, chosen, rng)


def flip_bytes(data: bytearray, layout: Layout, rng: random.Random) -> str:
    if not data:
        return "flip: empty"
    positions = [rng.randrange(len(data)) for _ in range(rng.choice([1, 1, 2, 4, 8]))]
    for position in positions:
        data[position] ^= rng.choice([0x01, 0x80, 0xFF, rng.randrange(1, 256)])
    return f"flip bytes at {positions}"


def insert_bytes(data: bytearray, layout: Layout, rng: random.Random) -> str:
    position = rng.randrange(len(data) + 1)
    chunk = rng.choice([b"\x00", b"\xff" * 4, rng.randbytes(rng.randrange(1, 64))])
    data[position:position] = chunk
    return f"insert {len(chunk)} bytes at {position}"


def delete_bytes(data: bytearray, layout: Layout, rng: random.Random) -> str:
    if not data:
        return "delete: empty"
    position = rng.randrange(len(data))
    count = rng.choice([1, 2, 4, rng.randrange(1, 128)])
    del data[position:position + count]
    return f"delete {count} bytes at {position}"


def truncate(data: bytearray, layout: Layout, rng: random.Random) -> str:
    if layout.records and rng.random() < 0.5:
        start, length = rng.choice(layout.records)
        cut = start + rng.randrange(length)  # inside a record or block
    else:
        cut = rng.randrange(len(data) + 1)
    del data[cut:]
    return f"truncate at {cut}"


def repeat_record(data: bytearray, layout: Layout, rng: random.Random) -> str:
    if not layout.records:
        return insert_bytes(data, layout, rng)
    start, length = rng.choice(layout.records)
    copies = rng.choice([1, 2, 50])
    data[start + length:start + length] = bytes(data[start:start + length]) * copies
    return f"repeat record at {start} x{copies}"


def swap_records(data: bytearray, layout: Layout, rng: random.Random) -> str:
    """Two adjacent records swapped: out-of-order segments, a reply before its request."""
    if len(layout.records) < 2:
        return delete_bytes(data, layout, rng)
    index = rng.randrange(len(layout.records) - 1)
    (a, alen), (b, blen) = layout.records[index], layout.records[index + 1]
    if b != a + alen or b + blen > len(data):
        return flip_bytes(data, layout, rng)
    data[a:b + blen] = data[b:b + blen] + data[a:b]
    return f"swap records at {a} and {b}"


def append_short_block(data: bytearray, layout: Layout, rng: random.Random) -> str:
    """A pcapng block at the end that is too short for its type's fields (12-16 bytes)."""
    if layout.kind != "pcapng":
        return truncate(data, layout, rng)
    btype = rng.choice([IDB, EPB, OPB, SPB, ISB])
    blen = rng.choice([12, 16])
    order = layout.order
    block = struct.pack(order + "II", btype, blen) + bytes(blen - 12) + struct.pack(
        order + "I", blen)
    cut = rng.choice([blen, rng.randrange(8, blen + 1)])  # whole, or itself cut short
    data += block[:cut]
    return f"append block type {btype} length {blen} ({cut} bytes of it)"


MUTATORS: tuple[tuple[Callable[[bytearray, Layout, random.Random], str], int], ...] = (
    (mutate_field, 10), (flip_bytes, 4), (insert_bytes, 1), (delete_bytes, 1),
    (truncate, 2), (repeat_record, 1), (swap_records, 2), (append_short_block, 1),
)


def mutate(original: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """A mutant of `original` after 1-4 mutations, and what each did."""
    data = bytearray(original)
    steps: list[str] = []
    funcs = [func for func, _ in MUTATORS]
    weights = [weight for _, weight in MUTATORS]
    for _ in range(rng.choice([1, 1, 2, 3, 4])):
        layout = layout_of(bytes(data))
        func = rng.choices(funcs, weights)[0]
        steps.append(func(data, layout, rng))
    if rng.random() < 0.1:
        # The reader takes gzip too: a compressed mutant, its stream sometimes damaged.
        packed = bytearray(gzip.compress(bytes(data), mtime=0))
        damage = rng.choice(["none", "truncate", "flip"])
        if damage == "truncate":
            del packed[rng.randrange(10, len(packed)):]
        elif damage == "flip":
            packed[rng.randrange(10, len(packed))] ^= 0xFF
        steps.append(f"gzip ({damage})")
        return bytes(packed), steps
    return bytes(data), steps


# -- running the analyzer on a mutant ------------------------------------------------------

def _stream_number(rng: random.Random) -> str:
    return str(rng.choice([0, 0, 1, 2, 3, rng.randrange(16), -1, 10**12]))


def command_choices(capture: str, rng: random.Random) -> list[list[str]]:
    """Every subcommand that reads a capture, with arguments drawn from `rng`."""
    out = OUTPUT_DIR_NAME
    return [
        ["read", capture],
        ["read", capture, "--json"],
        ["read", capture, "--json", "--extract", out],
        ["read", capture, "--tftp-port", "6969"],
        ["tcp", "follow", capture, _stream_number(rng),
         "--format", rng.choice(["ascii", "hex", "raw", "yaml"])],
        ["tcp", "ladder", capture, _stream_number(rng)],
        ["tftp", "show", capture, str(rng.choice([1, 1, 2, 3]))],
        ["tftp", "show", capture, str(rng.choice([1, 2])), "--json"],
        ["tftp", "extract", capture, "-o", out],
        ["tftp", "extract", capture, "-o", out, "--json"],
    ]


@dataclass
class CaseResult:
    index: int
    seed: int
    source: str
    mutations: list[str]
    runs: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self, run_seed: int) -> str:
        lines = [f"case {self.index} (run seed {run_seed}, case seed {self.seed}) on "
                 f"{self.source}: mutations {self.mutations}"]
        lines += [f"  {failure}" for failure in self.failures]
        lines.append(f"  reproduce: python scripts/fuzz.py --seed {run_seed} --case "
                     f"{self.index} --keep DIR")
        return "\n".join(lines)


def case_seed(run_seed: int, index: int) -> int:
    """The seed of case `index` of a run: independent of how many cases the run has."""
    return random.Random(f"{run_seed}/{index}").getrandbits(64)


def _files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def run_command(argv: Sequence[str], case_dir: Path, time_limit: float,
                env: dict[str, str]) -> str | None:
    """Run `analyzer ARGV` in a fresh working directory; what went wrong, or None."""
    work = case_dir / "cwd"
    tmp = case_dir / "tmp"
    for folder in (work, tmp):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    started = time.monotonic()
    shown = "analyzer " + " ".join(argv)
    try:
        done = subprocess.run([sys.executable, "-m", "analyzer", *argv], cwd=work,
                              env={**env, "TMPDIR": str(tmp)}, capture_output=True,
                              timeout=time_limit, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"{shown}: still running after {time_limit:.0f} s"
    elapsed = time.monotonic() - started
    stderr = done.stderr.decode("utf-8", "replace")
    problems = []
    if "Traceback (most recent call last)" in stderr:
        problems.append("traceback:\n" + stderr[-3000:])
    if done.returncode not in ALLOWED_EXITS:
        problems.append(f"exit status {done.returncode}: {stderr[-500:]}")
    stray = [name for name in _files_under(work)
             if name != OUTPUT_DIR_NAME and not name.startswith(OUTPUT_DIR_NAME + os.sep)]
    if stray:
        problems.append(f"files written outside the output directory: {stray[:10]}")
    left_in_tmp = _files_under(tmp)
    if left_in_tmp:
        problems.append(f"files left in TMPDIR: {left_in_tmp[:10]}")
    if not problems:
        return None
    return f"{shown} ({elapsed:.1f} s): " + "; ".join(problems)


def analyzer_env() -> dict[str, str]:
    """The environment the analyzer runs in: no terminal colours, a fixed width."""
    env = dict(os.environ)
    env.pop("TMPDIR", None)
    env.update({"COLUMNS": "120", "NO_COLOR": "1"})
    return env


def run_case(run_seed: int, index: int, sources: Sequence[Path], scratch: Path,
             commands_per_case: int = 2, time_limit: float = TIME_LIMIT_SECONDS,
             keep: Path | None = None, every_command: bool = False) -> CaseResult:
    """Make mutant `index` of the run and run a few subcommands (all, if asked) on it."""
    seed = case_seed(run_seed, index)
    rng = random.Random(seed)
    source = sources[rng.randrange(len(sources))]
    mutant, steps = mutate(source.read_bytes(), rng)
    result = CaseResult(index, seed, source.name, steps)
    case_dir = Path(tempfile.mkdtemp(prefix=f"case{index}-", dir=scratch))
    started = time.monotonic()
    try:
        # The mutant sits beside the working directory, given by absolute path, so the
        # working directory starts empty.
        capture = case_dir / f"mutant-{source.name}"
        capture.write_bytes(mutant)
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            (keep / f"case{index}-{source.name}").write_bytes(mutant)
        choices = command_choices(str(capture), rng)
        chosen = choices if every_command else rng.sample(choices, commands_per_case)
        env = analyzer_env()
        for argv in chosen:
            result.runs += 1
            problem = run_command(argv, case_dir, time_limit, env)
            if problem is not None:
                result.failures.append(problem)
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    result.seconds = time.monotonic() - started
    return result


def run_cases(run_seed: int, indices: Iterable[int], sources: Sequence[Path],
              jobs: int = 2, commands_per_case: int = 2,
              time_limit: float = TIME_LIMIT_SECONDS, keep: Path | None = None,
              every_command: bool = False,
              report: Callable[[CaseResult], None] | None = None) -> list[CaseResult]:
    """Run the cases `jobs` at a time (threads waiting on subprocesses); results in order."""
    with tempfile.TemporaryDirectory(prefix="analyzer-fuzz-") as scratch, \
            ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(run_case, run_seed, index, sources, Path(scratch),
                               commands_per_case, time_limit, keep, every_command)
                   for index in indices]
        results = []
        for future in futures:
            result = future.result()
            if report is not None:
                report(result)
            results.append(result)
    return results
