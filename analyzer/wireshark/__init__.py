"""Wireshark's dissectors, through pyshark and tshark: the second opinion.

`frame.py` gives Wireshark's full dissection of chosen frames (the packet-details pane:
every layer and field, nested) for `analyzer frame`; `verify.py` runs tshark over a whole
capture and compares its streams, completeness, Follow bytes and exported TFTP files with
ours, explaining each difference by a documented tshark behaviour or reporting it
(`analyzer verify`). `follow.py` is tshark's Follow TCP Stream rule, fed with tshark's own
per-segment fields; `tshark.py` finds tshark (pyshark's search) and runs it.

Nothing here is imported by `analyzer --help` or the other commands: pyshark and its
lxml load only when one of these two commands runs.
"""
