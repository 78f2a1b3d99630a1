"""How benchmarks/run.py judges the targets from its measurements (the numbers here are
made up; the rules are the issue's: 4x tshark, faster than tcpflow, <= 150 MiB at 1M,
no higher at 5M within the 10% sampling slack)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from benchmarks.run import BEGIN_MARKER, END_MARKER, Measurement, main, target_lines


def _measured(tool: str, size: str, walls: list[float], memory: float | None = None
              ) -> Measurement:
    m = Measurement(tool=tool, label=tool, size=size, packets=0, runs=len(walls),
                    wall_median=sorted(walls)[len(walls) // 2])
    m.wall_all = walls
    m.peak_total_mib = memory
    return m


def test_speed_targets_by_median_with_each_round_shown() -> None:
    lines = target_lines([
        _measured("analyzer", "100k", [0.30, 0.40, 0.35]),
        _measured("tshark-conv", "100k", [1.50, 1.30, 1.45]),  # median 1.45 / 0.35 = 4.14
        _measured("tcpflow", "100k", [0.33, 0.36, 0.34]),  # 0.34 / 0.35: slower than it
    ], [])
    assert lines[0] == ("- 100k: analyzer is 4.1x as fast as `tshark -z conv,tcp` "
                        "(target 4x: met); run by run: 5.0, 3.2, 4.1")
    assert lines[1] == ("- 100k: analyzer is 0.97x as fast as tcpflow "
                        "(target > 1x: NOT met); run by run: 1.10, 0.90, 0.97")


def test_memory_judged_against_1m_with_slack() -> None:
    lines = target_lines([
        _measured("analyzer", "1M", [2.0], memory=64.0),
        _measured("analyzer", "5M", [10.0], memory=70.0),  # 70 <= 64 * 1.1
    ], [])
    assert "- 5M: 70 MiB against 64 MiB at 1M (target: no higher: met)" in lines
    lines = target_lines([
        _measured("analyzer", "1M", [2.0], memory=64.0),
        _measured("analyzer", "5M", [10.0], memory=81.0),
    ], [])
    assert "- 5M: 81 MiB against 64 MiB at 1M (target: no higher: NOT met)" in lines
    assert "- 1M: analyzer peak memory 64 MiB, all processes (target ≤ 150 MiB: met)" in lines


def test_memory_slope_between_sizes_shows_whether_it_levels_off() -> None:
    lines = target_lines([
        _measured("analyzer", "100k", [0.3], memory=30.0),  # below 1M: not judged
        _measured("analyzer", "1M", [2.0], memory=62.0),
        _measured("analyzer", "5M", [10.0], memory=71.0),  # +9 over 4M packets
        _measured("analyzer", "10M", [20.0], memory=73.0),  # +2 over 5M packets
    ], [])
    assert "- 5M: +9 MiB over 1M (+2.2 MiB per million packets)" in lines
    assert "- 10M: +2 MiB over 5M (+0.4 MiB per million packets)" in lines
    assert not any("over 100k" in line for line in lines)
    assert not any(line.startswith("- 1M: +") for line in lines)


def test_a_scan_capture_gets_ratios_but_no_verdict() -> None:
    """The issue's targets are the plain captures'; a scan is a stress case we added: its
    ratios are shown without met / NOT met, and its memory only in the table."""
    lines = target_lines([
        _measured("analyzer", "1M", [2.0], memory=60.0),
        _measured("analyzer", "1M scan", [5.0], memory=200.0),
        _measured("tshark-conv", "1M scan", [21.0]),
        _measured("tcpflow", "1M scan", [4.0]),
        _measured("analyzer", "5M", [10.0], memory=62.0),
    ], [])
    assert ("- 1M scan: analyzer is 4.2x as fast as `tshark -z conv,tcp` (stress case, no "
            "target)") in lines
    assert "- 1M scan: analyzer is 0.80x as fast as tcpflow (stress case, no target)" in lines
    scan_lines = [line for line in lines if line.startswith("- 1M scan:")]
    assert len(scan_lines) == 2 and not any("met" in line for line in scan_lines)
    assert "- 5M: +2 MiB over 1M (+0.5 MiB per million packets)" in lines


def test_render_writes_the_section_again_from_saved_numbers(tmp_path: Path) -> None:
    """`--render`: the results file main() writes gives the same targets section."""
    results = [_measured("analyzer", "1M", [2.0, 2.2, 2.1], memory=60.0),
               _measured("tshark-conv", "1M", [12.0, 13.0, 12.5]),
               _measured("analyzer-tiny", "tiny", [0.06])]
    machine = {"date": "2026-12-06 10:58 UTC", "cpus": 2, "cpu_model": "x", "memory_gib": 1,
               "kernel": "k", "os": "o", "python": "p", "tshark": "t", "tcpflow": "f",
               "scapy": "s", "analyzer": "abc1234"}
    meta = {"file_bytes": 1 << 20, "packets": 1_000_000, "tcp_connections": 1,
            "tftp_transfers": 0, "ipv6_packets": 0}
    raw = {"command": "python benchmarks/run.py --sizes 1M", "machine": machine,
           "captures": {"1M": meta}, "checks": {"1M": "ok"},
           "results": [asdict(m) | {"packets_per_second": m.packets_per_second}
                       for m in results]}
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(raw))
    document = tmp_path / "performance.md"
    document.write_text(f"# Performance\n\n{BEGIN_MARKER}\nold\n{END_MARKER}\n\ntail\n")
    assert main(["--render", str(saved), "--output", str(document)]) == 0
    text = document.read_text()
    assert "old" not in text and text.endswith("tail\n")
    assert "with `python benchmarks/run.py --sizes 1M`" in text
    assert "- 1M: analyzer is 6.0x as fast as `tshark -z conv,tcp` (target 4x: met)" in text
    assert "| `analyzer-tiny` | 1 | 0.060 |" in text  # startup rows come back as startup
