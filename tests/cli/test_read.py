"""`analyzer read` as a user runs it: a subprocess, its exit status, stdout and stderr.

The final `capture` JSON object must agree with the crafted truth (packets, bytes,
times, link types, interfaces, protocol counts) and with tshark on real captures;
unusable input gives exit 2 and one line naming the file; a capture damaged part-way
gives exit 0, the packets before the damage and a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import CAPTURES_DIR as CAPTURES_DIR_FOR_CLI
from tests.conftest import require_root, require_tool, synthetic_capture
from tests.craft import BAD_INPUT_NAMES, DAMAGED_NAMES, READABLE_NAMES, CraftedCapture
from tests.oracle import real_capture_params, tshark_five_tuples, tshark_frames
from tests.oracle import tshark_fields as tshark_fields_for_cli
from tests.support.analyzer_cli import run_analyzer


def json_lines(stdout: str) -> list[dict]:
    objects = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    assert objects, "no JSON output"
    assert all("type" in obj for obj in objects)
    return objects


def capture_object(path: Path) -> dict:
    return capture_object_with(path)


def capture_object_with(path: Path, *options: str) -> dict:
    """The final `capture` object of `analyzer read PATH --json OPTIONS`."""
    done = run_analyzer("read", path, "--json", *options)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    objects = json_lines(done.stdout)
    assert objects[-1]["type"] == "capture"
    assert [o["type"] for o in objects].count("capture") == 1
    return objects[-1]


def check_against_truth(summary: dict, capture: CraftedCapture) -> None:
    frames = capture.frames
    assert summary["packets"] == len(frames)
    assert summary["bytes"] == sum(len(f.data) for f in frames)
    assert summary["wire_bytes"] == sum(f.wirelen for f in frames)
    times = [float(f.ts) for f in frames if f.ts is not None]
    assert summary["first"] == pytest.approx(min(times), abs=3e-7)
    assert summary["last"] == pytest.approx(max(times), abs=3e-7)
    assert summary["duration"] == pytest.approx(max(times) - min(times), abs=1e-6)
    # link_types: {name: count}, sorted by link type number
    per_linktype = Counter(f.linktype for f in frames)
    assert list(summary["link_types"].values()) == [per_linktype[k] for k in sorted(per_linktype)]
    categories = Counter(f.category for f in frames)
    for protocol in ("tcp", "udp", "icmp", "icmpv6", "arp"):
        assert summary["protocols"].get(protocol, 0) == categories[protocol], protocol
    assert summary["format"] == capture.format
    assert summary["compressed"] == capture.compressed


@pytest.mark.parametrize("name", READABLE_NAMES)
def test_read_json_capture_object_matches_construction(crafted: dict, name: str) -> None:
    capture = crafted[name]
    summary = capture_object(capture.path)
    check_against_truth(summary, capture)
    assert summary["warnings"] == []
    if capture.format == "pcapng":
        assert [(i["id"], i["linktype"], i["name"]) for i in summary["interfaces"]] == [
            (i.id, i.linktype, i.name) for i in capture.interfaces]
    else:
        assert [i["linktype"] for i in summary["interfaces"]] == [capture.frames[0].linktype]


def test_read_reports_skipped_link_types(crafted: dict) -> None:
    summary = capture_object(crafted["link-ieee80211.pcap"].path)
    assert sum(summary["skipped_link_types"].values()) == 3
    assert summary["interfaces"][0]["linktype"] == 105


@pytest.mark.parametrize("name", DAMAGED_NAMES)
def test_read_damaged_capture_exits_0_with_warning(crafted: dict, name: str) -> None:
    capture = crafted[name]
    summary = capture_object(capture.path)
    check_against_truth(summary, capture)
    assert summary["warnings"], "the damage must be reported"


@pytest.mark.parametrize("name", DAMAGED_NAMES[:2])
def test_read_damaged_capture_table_says_warning(crafted: dict, name: str) -> None:
    done = run_analyzer("read", crafted[name].path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "warning" in (done.stdout + done.stderr).lower()


@pytest.mark.parametrize("name", BAD_INPUT_NAMES)
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_unusable_input_exits_2_with_one_line(bad_inputs: dict, name: str, as_json: bool) -> None:
    path = bad_inputs[name]
    done = run_analyzer("read", path, *(["--json"] if as_json else []))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0]
    assert done.stdout == ""


def test_no_such_file_message_says_so(bad_inputs: dict) -> None:
    done = run_analyzer("read", bad_inputs["missing"])
    assert "no such file" in done.stderr.lower() or "not found" in done.stderr.lower()


@pytest.mark.parametrize("name", ["pcap-usec-le.pcap", "multi-section.pcapng",
                                  "gzipped-pcap.cap"])
def test_read_table_output(crafted: dict, name: str) -> None:
    done = run_analyzer("read", crafted[name].path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert str(len(crafted[name].frames)) in done.stdout
    assert "packets" in done.stdout


def test_console_script_is_installed(crafted: dict) -> None:
    script = Path(sys.executable).parent / "analyzer"
    if not script.exists():
        script = shutil.which("analyzer")  # type: ignore[assignment]
    assert script, "the `analyzer` console script is not installed"
    done = subprocess.run([os.fspath(script), "read", os.fspath(crafted["pcap-usec-le.pcap"].path),
                           "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["packets"] == 14


@pytest.mark.parametrize("path", real_capture_params())
def test_read_real_capture_agrees_with_tshark(path: Path) -> None:
    summary = capture_object(path)
    rows = tshark_frames(path)
    assert summary["packets"] == len(rows)
    assert summary["wire_bytes"] == sum(int(r["frame.len"]) for r in rows)
    assert summary["bytes"] == sum(int(r["frame.cap_len"]) for r in rows)
    times = [float(r["frame.time_epoch"]) for r in rows]
    assert summary["first"] == pytest.approx(min(times), abs=1e-6)
    assert summary["last"] == pytest.approx(max(times), abs=1e-6)
    assert summary["warnings"] == []
    tuples = tshark_five_tuples(path)
    assert summary["protocols"].get("tcp", 0) == sum(1 for t in tuples.values() if t.proto == 6)
    assert summary["protocols"].get("udp", 0) == sum(1 for t in tuples.values() if t.proto == 17)


def test_read_does_not_import_scapy(crafted: dict) -> None:
    """The offline path stays lean: scapy (1.3 s to import scapy.all) is for live capture."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "analyzer", "read",
                           os.fspath(crafted["multi-section.pcapng"].path), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "scapy.all" not in imported
    assert not {name for name in imported if name.startswith("scapy")}


def tcpdump_count(path: Path, bpf: str) -> int | None:
    """How many frames of `path` tcpdump's own reader passes through filter `bpf`;
    None when tcpdump refuses the filter for this link type."""
    tcpdump = require_tool("tcpdump")
    done = subprocess.run([tcpdump, "-n", "-r", os.fspath(path), bpf], capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0 and "tcpdump: " in done.stderr:
        return None
    assert done.returncode == 0, done.stderr
    return len(done.stdout.splitlines())


@pytest.mark.parametrize("bpf", ["tcp", "ip6", "vlan", "not tcp", "icmp or icmp6",
                                 "host 10.0.0.3 or port 80"])
@pytest.mark.parametrize("name", ["pcap-usec-le.pcap", "link-linux-sll.pcap",
                                  "link-null-le.pcap", "link-null-be.pcap", "link-loop.pcap",
                                  "ipv4-fragments.pcap", "gzipped-pcap.cap"])
def test_read_filter_selects_what_tcpdump_selects(crafted: dict, name: str, bpf: str) -> None:
    capture = crafted[name]
    path = capture.path
    if capture.compressed:  # tcpdump reads plain files only: give it the same bytes
        path = crafted["pcap-usec-le.pcap"].path
    expected = tcpdump_count(path, bpf)
    if expected is None:  # e.g. "vlan" on Linux cooked: libpcap cannot compile it
        done = run_analyzer("read", capture.path, "--json", "-f", bpf)
        assert done.returncode == 2, done.stdout[-500:]
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        return
    summary = capture_object_with(capture.path, "-f", bpf)
    assert summary["packets"] == expected
    assert summary["filtered_out"] == len(capture.frames) - expected


def test_read_bad_filter_exits_2_with_one_line(crafted: dict) -> None:
    done = run_analyzer("read", crafted["pcap-usec-le.pcap"].path, "-f", "tcp port banana")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def _big_pcap(path: Path, records: int = 200_000) -> Path:
    """A capture big enough that reading it takes a moment (UDP on Ethernet)."""
    frame = (b"\x02" * 12 + b"\x08\x00" + bytes.fromhex("4500001c0001000040117ccd0a0000010a000002")
             + bytes.fromhex("1388004500080000"))
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    chunk = b"".join(struct.pack("<IIII", 1_700_000_000 + i // 1000, i % 1000, len(frame),
                                 len(frame)) + frame for i in range(1000))
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(records // 1000):
            out.write(chunk)
    return path


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    big = _big_pcap(tmp_path / "big.pcap")
    # stderr is a pipe: no progress output at all
    done = run_analyzer("read", big, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["packets"] == 200_000
    assert "\r" not in done.stderr and "\x1b[" not in done.stderr
    # stderr is a terminal: a progress display is drawn there
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "analyzer", "read", os.fspath(big),
                                 "--json"], stdout=subprocess.PIPE, stderr=follower,
                                env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
        os.close(follower)
        drawn = b""
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            drawn += chunk
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    assert json.loads(stdout.splitlines()[-1])["packets"] == 200_000
    assert b"\x1b[" in drawn or b"\r" in drawn, drawn[:200]
    assert b"%" in drawn or "━".encode() in drawn, drawn[:400]


def test_header_only_capture_is_an_empty_report(tmp_path: Path) -> None:
    path = tmp_path / "empty-but-valid.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    summary = capture_object(path)
    assert summary["packets"] == 0
    assert summary["first"] is None and summary["last"] is None
    assert summary["duration"] == 0
    assert summary["warnings"] == []


def test_unreadable_file_exits_2_with_one_line(crafted: dict, open_tmp_path: Path) -> None:
    """A capture the user may not read (run as nobody on a root-only file)."""
    require_root()
    setpriv = require_tool("setpriv")
    path = open_tmp_path / "secret.pcap"
    shutil.copy(crafted["pcap-usec-le.pcap"].path, path)
    path.chmod(0o600)
    done = subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           sys.executable, "-m", "analyzer", "read", os.fspath(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": os.fspath(open_tmp_path)})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], done.stderr
    assert "permission" in lines[0].lower()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_full_disk_exits_1_with_one_line_and_leaves_nothing(tmp_path: Path,
                                                              workers: str) -> None:
    """`read --json` keeps finished streams' lines and parked streams in temporary files;
    on a full disk (TMPDIR on a 64 KiB tmpfs) it says so in one line, exits 1 and leaves
    no file there, with one process and with two."""
    require_root()
    capture = synthetic_capture(tmp_path, 12_000, 11, 200)  # ~400 streams: ~0.4 MB of lines
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", os.fspath(small)],
                   check=True, capture_output=True)
    try:
        done = subprocess.run([sys.executable, "-m", "analyzer", "read", os.fspath(capture),
                               "--json"], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TMPDIR": os.fspath(small),
                                   "ANALYZER_WORKERS": workers})
        left = list(small.iterdir())
    finally:
        subprocess.run(["umount", os.fspath(small)], check=True, capture_output=True)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], done.stderr
    assert os.fspath(small) in lines[0]  # where the temporary files went
    assert left == []


def test_times_beyond_the_calendar_are_shown_as_epoch_seconds(tmp_path) -> None:
    """A pcapng packet timestamp mutated to year ~586,000 (the 64-bit microsecond counter
    at its top) crashed the table view with 'year ... is out of range' (issue 23)."""
    import struct

    from tests.conftest import CAPTURES_DIR

    data = bytearray((CAPTURES_DIR / "tour.pcapng").read_bytes())
    off = 0
    while off < len(data):  # the first Enhanced Packet Block
        block_type, length = struct.unpack_from("<II", data, off)
        if block_type == 6:
            struct.pack_into("<I", data, off + 12, 0xFFFFFFF0)  # timestamp, high word
            break
        off += length
    path = tmp_path / "far-future.pcapng"
    path.write_bytes(bytes(data))
    done = run_analyzer("read", path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "(epoch seconds)" in done.stdout
    assert "beyond what a date can show" in done.stdout


def test_table_into_a_closed_pipe_ends_quietly_with_0() -> None:
    """`analyzer read F | true`: the reader went away; rich's default was exit 1."""
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader.wait()
    done = subprocess.run([sys.executable, "-m", "analyzer", "read",
                           str(CAPTURES_DIR_FOR_CLI / "tour.pcapng")], stdout=reader.stdin,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    reader.stdin.close()  # type: ignore[union-attr]
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("columns", ["0", "-5", "wide"])
def test_an_unusable_columns_value_still_prints_the_report(columns: str) -> None:
    done = subprocess.run([sys.executable, "-m", "analyzer", "read",
                           str(CAPTURES_DIR_FOR_CLI / "tour.pcapng")],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": columns})
    assert done.returncode == 0, done.stderr
    assert "TCP streams (3)" in done.stdout  # the capture's three connections (tshark)


@pytest.mark.parametrize("command", [["read"], ["tftp", "show"], ["tftp", "extract"]])
@pytest.mark.parametrize("port", ["70000", "0", "x"])
def test_tftp_port_out_of_range_is_refused(command: list[str], port: str, tmp_path) -> None:
    extra = ["1"] if command == ["tftp", "show"] else (
        ["-o", str(tmp_path)] if command == ["tftp", "extract"] else [])
    done = run_analyzer(*command, CAPTURES_DIR_FOR_CLI / "tour.pcapng", *extra,
                        "--tftp-port", port)
    assert done.returncode == 2
    assert "--tftp-port" in done.stderr and "Traceback" not in done.stderr


def _from_stdin(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], input=data,
                          capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("name, compress", [("tour.pcapng", False), ("http-fetch.pcap", False),
                                            ("tour.pcapng", True)],
                         ids=["pcapng", "pcap", "pcapng-gzip"])
def test_read_from_a_pipe_gives_what_the_file_gives(name: str, compress: bool) -> None:
    """`tcpdump -w - | analyzer read -`: no seeking (gzip too), the same JSON lines as
    the file, but for the capture's name."""
    import gzip

    path = CAPTURES_DIR_FOR_CLI / name
    data = path.read_bytes()
    piped = _from_stdin(gzip.compress(data) if compress else data, "read", "-", "--json")
    assert piped.returncode == 0, piped.stderr
    from_file = run_analyzer("read", path, "--json")
    ours = [json.loads(line) for line in piped.stdout.splitlines()]
    theirs = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert ours[-1].pop("file") == "-"
    theirs[-1].pop("file")
    assert ours[-1].pop("compressed") is compress
    theirs[-1].pop("compressed")
    assert ours == theirs


def test_standard_input_from_a_file_is_read_from_where_it_stands(tmp_path) -> None:
    """`analyzer read - < file` (a plain file: mapped, and read by both processes on
    their own), and `{ head -c 8 >/dev/null; analyzer read -; } < file` (read from where
    the descriptor stands, not from the file's start)."""
    path = CAPTURES_DIR_FOR_CLI / "tour.pcapng"
    expected = [json.loads(line) for line in run_analyzer("read", path, "--json").stdout
                .splitlines()]
    expected[-1].pop("file")
    skipped = tmp_path / "after-8-bytes"
    skipped.write_bytes(b"8 bytes." + path.read_bytes())
    for source, skip in ((path, 0), (skipped, 8)):
        with source.open("rb") as stdin:
            stdin.seek(skip)
            done = subprocess.run([sys.executable, "-m", "analyzer", "read", "-", "--json"],
                                  stdin=stdin, capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        ours = [json.loads(line) for line in done.stdout.splitlines()]
        assert ours[-1].pop("file") == "-"
        assert ours == expected, source


def test_the_one_stream_commands_read_a_pipe_too(tmp_path) -> None:
    data = (CAPTURES_DIR_FOR_CLI / "tour.pcapng").read_bytes()
    for args in (["tcp", "follow", "-", "0", "--format", "raw"], ["tcp", "ladder", "-", "1"],
                 ["tftp", "show", "-", "1", "--json"]):
        piped = _from_stdin(data, *args)
        from_file = run_analyzer(*[str(CAPTURES_DIR_FOR_CLI / "tour.pcapng") if a == "-"
                                   else a for a in args])
        assert piped.returncode == 0, piped.stderr
        piped_text, file_text = piped.stdout.decode(), from_file.stdout
        if args[1] == "ladder":  # its last line names the file for `analyzer frame`
            piped_text, hint = piped_text.rstrip("\n").rsplit("\n", 1)
            assert hint.startswith("analyzer frame CAPTURE N ")
            file_text = file_text.rstrip("\n").rsplit("\n", 1)[0]
        assert piped_text == file_text, args
    piped = _from_stdin(data, "tftp", "extract", "-", "-o", str(tmp_path / "out"))
    assert piped.returncode == 0, piped.stderr
    extracted = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert hashlib.sha256(extracted["notes.txt"]).hexdigest() == json.loads(
        run_analyzer("tftp", "show", CAPTURES_DIR_FOR_CLI / "tour.pcapng", "1",
                     "--json").stdout)["sha256"]


def test_an_empty_pipe_is_one_line_and_exit_2() -> None:
    piped = _from_stdin(b"", "read", "-")
    assert piped.returncode == 2
    assert piped.stderr.decode().strip().splitlines() == ["analyzer: -: empty file, not a capture"]


@pytest.fixture(scope="module")
def ring_buffer(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A long recording split into a ring buffer's files with editcap -c, as `dumpcap -b`
    leaves them: connections and transfers span files."""
    editcap = require_tool("editcap")
    folder = tmp_path_factory.mktemp("ring")
    whole = synthetic_capture(folder, 20_000, seed=7, concurrency=40)
    parts = folder / "parts"
    parts.mkdir()
    subprocess.run([editcap, "-F", "pcap", "-c", "3000", str(whole), str(parts / "ring.pcap")],
                   check=True,
                   capture_output=True, timeout=120)
    return whole, sorted(parts.iterdir())


def _lines_but_the_capture(stdout: str) -> tuple[list[str], dict]:
    lines = stdout.splitlines()
    return lines[:-1], json.loads(lines[-1])


def test_several_files_read_as_one_are_what_mergecap_makes_of_them(ring_buffer,
                                                                    tmp_path) -> None:
    """`read A B C` (and `read DIR`) merge the files in time order: every stream and
    transfer that spans files is one, numbered as Wireshark numbers the mergecap'd file."""
    mergecap = require_tool("mergecap")
    _, parts = ring_buffer
    assert len(parts) == 7
    merged = tmp_path / "merged.pcap"
    subprocess.run([mergecap, "-F", "pcap", "-w", str(merged), *map(str, parts)], check=True,
                   capture_output=True, timeout=120)
    expected, _ = _lines_but_the_capture(run_analyzer("read", merged, "--json").stdout)
    for args in ([*map(str, reversed(parts))], [str(parts[0].parent)]):
        done = run_analyzer("read", *args, "--json")
        assert done.returncode == 0, done.stderr
        lines, capture = _lines_but_the_capture(done.stdout)
        assert lines == expected
        assert capture["packets"] == 20_000
        assert [f["packets"] for f in capture["files"]] == [
            3000, 3000, 3000, 3000, 3000, 3000, 2000][::-1 if len(args) > 1 else 1]
        assert {f["format"] for f in capture["files"]} == {"pcap"}
    streams = {row["tcp.stream"] for row in tshark_fields_for_cli(merged, ["tcp.stream"])
               if row["tcp.stream"]}
    assert len([line for line in expected if '"tcp_stream"' in line]) == len(streams)


def test_a_file_that_is_not_a_capture_in_the_middle_is_skipped(ring_buffer, tmp_path) -> None:
    _, parts = ring_buffer
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    done = run_analyzer("read", parts[0], junk, parts[1], "--json")
    assert done.returncode == 0, done.stderr
    _, capture = _lines_but_the_capture(done.stdout)
    assert capture["packets"] == 6000
    assert any("junk.pcap" in w and "skipped" in w for w in capture["warnings"])
