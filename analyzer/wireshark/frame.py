"""`analyzer frame`: Wireshark's full dissection of chosen frames, as its packet-details
pane shows them: every layer (`proto`) and field, nested, each with its display text.

tshark writes PDML (`-T pdml`), one `<packet>` element per frame; it is read as a stream
(`iterparse`), each packet turned into `DissectionNode`s and its XML freed before the
next. tshark stops reading the capture after the highest frame asked for (`-c`), so frame
3 of a huge file costs three frames of dissection, not the whole file.

What is kept, and why: PDML's `geninfo` pseudo-layer is left out (it is not in the pane);
fields marked `hide="yes"` are left out (the pane hides them too: filter-only aliases such
as `eth.addr_resolved`). A node's text is its `showname`, or `show` when it has none
(Wireshark's plain text items); the tree shows the name of a node with neither. Items
outside any protocol, which PDML wraps in a `fake-field-wrapper` element (the "Data"
item of an undissected payload, for one), are top-level items as in the pane. "Time
delta from previous displayed frame" counts from the previous frame asked for, as `-Y`
displays only those.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from analyzer.errors import InputError
from analyzer.wireshark.tshark import (
    check_readable,
    first_error_line,
    run_tshark,
    tshark_command,
    tshark_env,
)

PSEUDO_LAYERS = frozenset({"geninfo"})
FIELD_WRAPPER = "fake-field-wrapper"  # PDML's home for items outside any protocol


@dataclass
class DissectionNode:
    """One line of the packet-details pane: a layer or a field, with its sub-fields."""

    name: str  # the filter name (tcp.flags), or the layer's (tcp); "" for a text item
    showname: str  # the text the pane shows
    show: str  # the value as text
    value: str  # the raw bytes in hex, when PDML gives them
    children: list[DissectionNode] = field(default_factory=list)


@dataclass
class FrameDissection:
    number: int
    layers: list[DissectionNode]


def dissect_frames(capture: str, numbers: Sequence[int]) -> list[FrameDissection]:
    """Wireshark's dissection of frames `numbers` (1-based, as Wireshark numbers them), in
    the order asked; InputError (one line) for a number the capture does not have."""
    check_readable(capture)
    wanted = sorted(set(numbers))
    if wanted[0] < 1:
        raise InputError(f"frame numbers start at 1, not {wanted[0]}")
    display_filter = " || ".join(f"frame.number == {n}" for n in wanted)
    command = tshark_command("-r", capture, "-T", "pdml", "-Y", display_filter,
                             "-c", str(wanted[-1]))
    found: dict[int, FrameDissection] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=tshark_env()) as process:
        assert process.stdout is not None and process.stderr is not None
        try:
            for frame in _read_pdml(process.stdout):
                found[frame.number] = frame
        except ElementTree.ParseError:
            pass  # tshark stopped mid-document (a damaged capture): what came is kept
        stderr = process.stderr.read()
    missing = [n for n in wanted if n not in found]
    if missing:
        if process.returncode != 0 and not found:
            raise InputError(f"{capture}: tshark cannot read it: "
                             f"{first_error_line(stderr) or 'no reason given'}")
        count = count_frames(capture)
        raise InputError(f"{capture}: no frame {missing[0]} (the capture has {count} "
                         f"frame{'s' if count != 1 else ''})")
    return [found[n] for n in numbers]


def count_frames(capture: str) -> int:
    """How many frames tshark numbers in the capture (for the out-of-range message)."""
    done = run_tshark(["-r", capture, "-T", "fields", "-e", "frame.number"])
    return sum(1 for line in done.stdout.splitlines() if line.strip())


def _read_pdml(stream: IO[bytes]) -> Iterator[FrameDissection]:
    events = ElementTree.iterparse(stream, events=("end",))
    for _event, element in events:
        if element.tag != "packet":
            continue
        layers = []
        for proto in element:
            if proto.tag != "proto" or proto.get("name") in PSEUDO_LAYERS:
                continue
            if proto.get("name") == FIELD_WRAPPER:
                layers += _node(proto).children  # top-level items, as the pane shows them
            else:
                layers.append(_node(proto))
        number = _frame_number(element)
        element.clear()
        yield FrameDissection(number, layers)


def _frame_number(packet: ElementTree.Element) -> int:
    for proto in packet:
        if proto.get("name") == "geninfo":
            for item in proto:
                if item.get("name") == "num":
                    return int(item.get("show", "0"))
    return 0


def _node(element: ElementTree.Element) -> DissectionNode:
    show = element.get("show", "")
    return DissectionNode(
        name=element.get("name", ""),
        showname=element.get("showname") or show,
        show=show,
        value=element.get("value", ""),
        children=[_node(child) for child in element
                  if child.tag in ("field", "proto") and child.get("hide") != "yes"],
    )
