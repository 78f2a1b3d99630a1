"""`analyzer frame` against tshark's own PDML, parsed here independently (minidom)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.dom import minidom

import pytest

from tests.conftest import REPO_DIR, require_tool
from tests.oracle import real_capture_params
from tests.support.analyzer_cli import run_analyzer
from tests.tftp import craft


def _pdml_layers(capture: Path, number: int) -> list[dict]:
    """tshark's packet-details tree of one frame, by the rule `frame` documents: every
    proto but PDML's geninfo, fields not hidden, text = showname or else show, the items
    of PDML's fake-field-wrapper at the top level."""
    out = subprocess.run([require_tool("tshark"), "-n", "-r", str(capture), "-T", "pdml",
                          "-Y", f"frame.number == {number}"],
                         capture_output=True, check=True, timeout=120).stdout
    (packet,) = minidom.parseString(out).getElementsByTagName("packet")

    def node(element) -> dict:
        children = [node(child) for child in element.childNodes
                    if child.nodeType == child.ELEMENT_NODE
                    and child.tagName in ("field", "proto")
                    and child.getAttribute("hide") != "yes"]
        return {"name": element.getAttribute("name"),
                "text": element.getAttribute("showname") or element.getAttribute("show"),
                "children": children}

    layers = []
    for proto in packet.childNodes:
        if proto.nodeType != proto.ELEMENT_NODE or proto.tagName != "proto":
            continue
        if proto.getAttribute("name") == "fake-field-wrapper":  # items outside a protocol
            layers += node(proto)["children"]
        elif proto.getAttribute("name") != "geninfo":
            layers.append(node(proto))
    return layers


def _ours(obj: dict) -> dict:
    return {"name": obj["name"], "text": obj["showname"],
            "children": [_ours(child) for child in obj["fields"]]}


# Counted from the previous frame *shown*: with several frames asked for, the previous
# one asked for (tshark's -Y); the oracle shows one frame at a time.
DISPLAYED_DELTA = "frame.time_delta_displayed"


def _without_displayed_delta(layers: list[dict]) -> list[dict]:
    return [{**layer, "children": [child for child in layer["children"]
                                   if child["name"] != DISPLAYED_DELTA]}
            if layer["name"] == "frame" else layer for layer in layers]


def _frame_count(capture: Path) -> int:
    out = subprocess.run([require_tool("tshark"), "-n", "-r", str(capture), "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, timeout=120)
    return len(out.stdout.split())


@pytest.mark.parametrize("path", real_capture_params())
def test_frame_json_is_tsharks_tree(path: Path) -> None:
    count = _frame_count(path)
    numbers = sorted({1, (count + 1) // 2, count})
    done = run_analyzer("frame", path, *map(str, numbers), "--json")
    assert done.returncode == 0, done.stderr
    objects = [json.loads(line) for line in done.stdout.splitlines()]
    assert [obj["frame"] for obj in objects] == numbers
    for obj in objects:
        assert obj["type"] == "frame" and obj["capture"] == str(path)
        ours = [_ours(layer) for layer in obj["layers"]]
        assert _without_displayed_delta(ours) == _without_displayed_delta(
            _pdml_layers(path, obj["frame"]))
        assert obj["layers"][0]["name"] == "frame"
    # One frame alone: every field, the displayed-frame delta too.
    done = run_analyzer("frame", path, str(numbers[-1]), "--json")
    (obj,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert [_ours(layer) for layer in obj["layers"]] == _pdml_layers(path, numbers[-1])


def test_frame_tree_shows_every_layer_and_field(captures_dir: Path) -> None:
    path = captures_dir / "tour.pcapng"
    done = run_analyzer("frame", path, "4")
    assert done.returncode == 0, done.stderr
    expected = _pdml_layers(path, 4)

    def texts(nodes: list[dict]) -> list[str]:
        # a node PDML gives no text (the "data" wrapper of a payload) shows its name
        return [t for n in nodes for t in [n["text"] or n["name"], *texts(n["children"])]]

    lines = done.stdout.splitlines()
    assert lines[0] == f"{path} frame 4"
    shown = [line.lstrip("│├└─ ") for line in lines[1:]]
    assert shown == texts(expected)  # every line of the pane, in order
    assert any(text.startswith("Transmission Control Protocol") for text in shown)


def test_frames_in_the_order_asked(captures_dir: Path) -> None:
    done = run_analyzer("frame", captures_dir / "tour.pcapng", "5", "2", "--json")
    assert [json.loads(line)["frame"] for line in done.stdout.splitlines()] == [5, 2]


def test_frame_out_of_range_is_one_line_exit_2(captures_dir: Path) -> None:
    path = captures_dir / "tour.pcapng"
    count = _frame_count(path)
    done = run_analyzer("frame", path, "3", str(count + 1))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"no frame {count + 1}" in done.stderr and f"has {count} frames" in done.stderr
    done = run_analyzer("frame", path, "0")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_frame_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    done = run_analyzer("frame", tmp_path / "absent.pcap", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def test_no_tshark_exit_2_with_how_to_install(captures_dir: Path, tmp_path: Path) -> None:
    """PATH without tshark (pyshark searches PATH): one line saying how to install it."""
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(REPO_DIR)}
    for command in (["frame", str(captures_dir / "tour.pcapng"), "1"],
                    ["verify", str(captures_dir / "tour.pcapng")]):
        done = subprocess.run([sys.executable, "-m", "analyzer", *command], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1
        assert "apt-get install tshark" in done.stderr


def test_control_characters_from_the_capture_are_escaped(tmp_path: Path) -> None:
    """A TFTP file name carrying a terminal escape sequence: never written raw."""
    require_tool("tshark")
    cap = craft.Capture()
    cap.udp(("10.0.0.1", 3000), ("10.0.0.2", 69), craft.rrq("\x1b[2J\x1b]0;owned\x07x.txt"))
    path = cap.write(tmp_path / "escape.pcap")
    for extra in ((), ("--json",)):
        done = run_analyzer("frame", path, "1", *extra)
        assert done.returncode == 0, done.stderr
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "x.txt" in done.stdout


def test_help_does_not_import_pyshark() -> None:
    code = ("import sys\nfrom analyzer.cli import build_parser\nbuild_parser()\n"
            "assert 'pyshark' not in sys.modules, 'pyshark imported'\n"
            "assert 'lxml' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    help_run = run_analyzer("--help")
    assert help_run.returncode == 0 and "frame" in help_run.stdout and "verify" in help_run.stdout


def test_views_with_frame_numbers_say_where_the_detail_is(captures_dir: Path) -> None:
    path = captures_dir / "tour.pcapng"
    hint = f"analyzer frame {path} N shows frame N in full"
    for command in (("tcp", "ladder", path, "0"), ("tftp", "show", path, "1")):
        done = run_analyzer(*command)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].startswith(hint), command
