"""pcapng's obsolete Packet Block (type 2), which old Wireshark versions wrote: frames
come out as from Enhanced Packet Blocks, checked against construction and tshark."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

from analyzer.capture import open_capture
from tests.conftest import require_tool
from tests.craft import PcapngWriter, udp_datagram


def test_obsolete_packet_blocks_read_like_enhanced_ones(tmp_path: Path) -> None:
    writer = PcapngWriter()
    writer.section("<")
    writer.interface(1, name="eth0")
    writer.interface(101, tsresol=9, name="tun0")
    start = Fraction(1_700_000_000)
    writer.opb(0, start, udp_datagram("10.0.0.1", "10.0.0.2", 1000, 2000, b"old block"))
    writer.epb(1, start + Fraction(1, 1000), udp_datagram("10.0.0.3", "10.0.0.4", 3, 4, b"x"))
    writer.opb(1, start + Fraction(3, 1000),
               udp_datagram("10.0.0.5", "10.0.0.6", 5, 6, b"second old block"))
    path = tmp_path / "obsolete.pcapng"
    path.write_bytes(writer.getvalue())

    with open_capture(path) as cap:
        frames = list(cap)
    assert [(f.linktype, f.interface, f.data, f.wirelen) for f in frames] == \
        [(c.linktype, c.interface, c.data, c.wirelen) for c in writer.frames]
    assert [round(f.ts, 6) for f in frames] == [float(c.ts) for c in writer.frames]

    tshark = require_tool("tshark")
    lines = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.interface_id",
                            "-e", "udp.srcport", "-e", "frame.time_epoch"],
                           capture_output=True, text=True, check=True).stdout.splitlines()
    oracle = [line.split("\t") for line in lines]
    assert [int(i) for i, _, _ in oracle] == [f.interface for f in frames]
    assert [float(t) for _, _, t in oracle] == [round(f.ts, 9) for f in frames]
