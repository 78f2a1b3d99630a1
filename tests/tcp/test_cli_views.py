"""`analyzer tcp follow|ladder` from the command line, and the stream table of `read`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.report.tcp_view import follow_text, streams_table
from tests.conftest import REPO_DIR
from tests.tcp.craft_tcp import Conversation, analyze


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "analyzer", *args], capture_output=True,
                          text=True, cwd=REPO_DIR, timeout=60)


@pytest.fixture()
def lossy_capture(tmp_path: Path) -> Path:
    """A handshake, a lost client segment (acked by the server), a conflicting resend,
    and a server-side reset with a cause."""
    conv = Conversation().handshake(options=True)
    base = conv.next[True]
    conv.send(True, "PA", b"first")
    conv.send(True, "PA", b"third", seq=base + 10)
    conv.next[True] = base + 15
    conv.send(False, "A")
    conv.send(True, "PA", b"FIRST", seq=base, dt=0.4)
    conv.send(False, "RA", b"bye now")
    return conv.write(tmp_path / "lossy.pcap")


def test_ladder_tells_the_story(lossy_capture: Path) -> None:
    done = _run("tcp", "ladder", str(lossy_capture), "0")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for text in ("client opens: SYN, ISN 0 (raw 1000)", "server accepts: SYN-ACK",
                 "handshake complete", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
                 "previous segment not captured", "bytes differ from the first copy",
                 "server resets the connection", "RST cause: 'bye now'", "MSS=1460",
                 "client bytes 5..9 never captured (5 bytes)", "CLOSED"):
        assert text in out, text
    arrows = [line for line in out.splitlines() if "Seq=" in line]
    assert len(arrows) == 8  # one per packet
    assert "▶" in arrows[0] and "◀" in arrows[1]


def test_follow_reports_gaps_on_stderr_not_in_data(lossy_capture: Path) -> None:
    done = _run("tcp", "follow", str(lossy_capture), "0", "--format", "raw")
    assert done.returncode == 0
    chunks = done.stdout.split("Node 1: 10.0.0.2:80\n")[1].splitlines()[:-1]
    assert [bytes.fromhex(c) for c in chunks if not c.startswith("\t")] == [b"first", b"third"]
    assert [bytes.fromhex(c[1:]) for c in chunks if c.startswith("\t")] == [b"bye now"]
    assert "client bytes 5..9 (5 bytes) were never captured" in done.stderr
    yaml = _run("tcp", "follow", str(lossy_capture), "0", "--format", "yaml").stdout
    assert "gaps:\n  - peer: 0\n    offset: 5\n    length: 5\n" in yaml


@pytest.mark.parametrize("args, message", [
    (("tcp", "follow", "/nonexistent.pcap", "0"), "/nonexistent.pcap"),
    (("tcp", "ladder", "CAPTURE", "7"), "no TCP stream 7 (the capture has 1 TCP stream, 0..0)"),
    (("tcp", "ladder", "CAPTURE", "-1"), "stream numbers start at 0"),
])
def test_bad_input_exits_2_with_one_line(lossy_capture: Path, args: tuple[str, ...],
                                         message: str) -> None:
    args = tuple(str(lossy_capture) if a == "CAPTURE" else a for a in args)
    done = _run(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_follow_format_choices_are_tsharks() -> None:
    done = _run("tcp", "follow", "x.pcap", "0", "--format", "ebcdic")
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_stream_table_colours(lossy_capture: Path, tmp_path: Path) -> None:
    good = Conversation(client=("10.0.0.3", 5000)).handshake()
    good.send(True, "PA", b"x").send(False, "A").close()
    results = analyze(good.write(tmp_path / "good.pcap")) + analyze(lossy_capture)
    console = Console(width=160, record=True, color_system="truecolor")
    console.print(streams_table(results))
    text = console.export_text(clear=False)
    assert "10.0.0.3:5000" in text and "reset-by-server" in text
    assert "gaps×1 (5 B missing)" in text and "CONFLICT×1" in text
    html = console.export_html(inline_styles=True)
    assert "color: #008000" in html and "color: #800000" in html  # green row, red row


def test_follow_hex_layout_by_construction(tmp_path: Path) -> None:
    """tshark's hex layout: offset, two groups of 8 bytes, ASCII column after 2 spaces."""
    conv = Conversation().handshake()
    conv.send(True, "PA", bytes(range(0x41, 0x41 + 20)))
    conv.send(False, "PA", b"ok")
    (result,) = analyze(conv.write(tmp_path / "hex.pcap"))
    lines = follow_text(result, "hex").splitlines()
    assert lines[6] == ("00000000  41 42 43 44 45 46 47 48  49 4a 4b 4c 4d 4e 4f 50  "
                        "ABCDEFGH IJKLMNOP")
    assert lines[7] == "00000010  51 52 53 54" + " " * 39 + "QRST"
    assert lines[8] == "\t00000000  6f 6b" + " " * 45 + "ok"


def test_follow_ascii_on_a_terminal_shows_a_lone_cr_as_a_dot(tmp_path: Path) -> None:
    """tshark's ascii mode lets CR through; on a terminal a CR without its LF would
    move the cursor back over the line, so it becomes '.' there (CR LF stays)."""
    from analyzer.report.tcp_view import write_follow

    conv = Conversation().handshake()
    conv.send(True, "PA", b"GET / HTTP/1.0\r\nfake\rreal\x1b[2J\r\n")
    (result,) = analyze(conv.write(tmp_path / "cr.pcap"))
    piped: list[str] = []
    write_follow(result, "ascii", piped.append)
    assert "fake\rreal.[2J\r\n" in "".join(piped)  # as tshark prints it (ESC is '.')
    shown: list[str] = []
    write_follow(result, "ascii", shown.append, terminal=True)
    text = "".join(shown)
    assert "GET / HTTP/1.0\r\nfake.real.[2J\r\n" in text
    assert not any(ch < " " and ch not in "\t\n" and not text[i:i + 2] == "\r\n"
                   for i, ch in enumerate(text))


def test_ladder_rows_line_up_and_wrap_within_the_width(tmp_path: Path) -> None:
    """More rows than a batch (report/tcp_view.py LADDER_BATCH), every other one with a
    note longer than the notes column: each line fits the 170 columns of a pipe, the
    fixed columns line up across batches, wrapped notes continue under their column, and
    the words put back together are each conflict's note with the generator's bytes."""
    import random

    from analyzer.report.tcp_view import LADDER_BATCH, LADDER_WIDTH
    from benchmarks.hostile import conflicts, write_frames

    frames = list(conflicts(2 * LADDER_BATCH + 3, random.Random(4)))
    path = write_frames(tmp_path / "conflicts.pcap", frames)
    done = _run("tcp", "ladder", str(path), "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("frame")):]
    table = table[:-1]  # the closing hint
    assert all(len(line) <= LADDER_WIDTH for line in table)
    rows = [line for line in table if "Seq=" in line]
    assert len(rows) == len(frames)
    notes_at = table[0].index("notes")
    arrow_ends = {max(line.rfind("▶"), line.rfind("─")) for line in rows}
    assert len(arrow_ends) == 1  # the arrows' column, in every batch
    first, second = frames[3][-100:], frames[4][-100:]
    notes: list[str] = []
    for line in table[1:]:
        if "Seq=" in line:
            notes.append(line[notes_at:].strip())
        else:
            assert line[:notes_at].strip() == ""  # a wrapped note stays in its column
            notes[-1] += " " + line[notes_at:].strip()
    conflicting = [note for note in notes if "bytes differ" in note]
    assert len(conflicting) == (len(frames) - 3) // 2  # every second data segment
    offset = 0
    for note in conflicting:
        assert f"at offset {offset}: first {first[:16]!r}, now {second[:16]!r}" in note
        offset += 100
