"""The TFTP views render what the transfers say (checked on plain-text renderings)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from analyzer.report.tftp_view import fold_timeline, live_rows, transfer_details, transfers_table
from analyzer.tftp.tracker import TftpTracker
from tests.tftp import craft
from tests.tftp.craft import Capture, chunks

CLIENT, LISTEN, TID = ("10.0.0.2", 40001), ("10.0.0.1", 69), ("10.0.0.1", 50001)


def render(renderable: object, width: int = 250) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def _capture(tmp_path: Path) -> Path:
    content = b"q" * (10 * 512 + 1)
    cap = Capture()
    cap.udp(CLIENT, LISTEN, craft.rrq("[bold]x\x1b.bin"))  # markup and ESC from the wire
    for n, chunk in enumerate(chunks(content, 512), 1):
        cap.udp(TID, CLIENT, craft.data(n, chunk))
        if n == 4:
            cap.udp(TID, CLIENT, craft.data(n, chunk), after=1.0)
        cap.udp(CLIENT, TID, craft.ack(n))
    cap.udp(("10.0.0.2", 40002), LISTEN, craft.rrq("gone"))
    cap.udp(("10.0.0.1", 50002), ("10.0.0.2", 40002), craft.error(1, "File not found"))
    return cap.write(tmp_path / "view.pcap")


def _tracker(path: Path) -> TftpTracker:
    from analyzer.pipeline import iter_packets

    tracker = TftpTracker(timeline=[1])
    for pkt in iter_packets(path):
        tracker.on_packet(pkt)
    tracker.finish()
    return tracker


def test_transfers_table(tmp_path: Path) -> None:
    text = render(transfers_table(_tracker(_capture(tmp_path)).results()))
    rows = [line for line in text.splitlines() if "10.0.0.2:4000" in line]
    assert len(rows) == 2
    assert "[bold]x\\x1b.bin" in rows[0] and "5,121" in rows[0] and "11, +1 resent" in rows[0]
    assert "complete" in rows[0]
    assert "gone" in rows[1] and "error (1 File not found)" in rows[1]


def test_live_rows_follow_transfers_as_they_go(tmp_path: Path) -> None:
    from analyzer.pipeline import iter_packets

    tracker = TftpTracker()
    packets = iter_packets(_capture(tmp_path))
    for _ in range(4):  # RRQ, DATA 1, ACK 1, DATA 2
        tracker.on_packet(next(packets))
    # The ESC from the wire is shown as text, and "[bold]" is not read as markup.
    first = "#1 10.0.0.2:40001 → 10.0.0.1:50001 RRQ [bold]x\\x1b.bin"

    def plain(limit: int) -> list[tuple[str, str, str]]:
        return [(c.plain, p, s) for c, p, s in live_rows(tracker.transfers, limit)]

    assert plain(4) == [(first, "4", "2 blocks, 1,024 bytes")]
    assert render(live_rows(tracker.transfers, 4)[0][0]).rstrip("\n") == first
    for pkt in packets:
        tracker.on_packet(pkt)
    # 11 DATA (one sent twice) and 11 ACKs after the request; the file is 10 * 512 + 1.
    assert plain(4) == [
        (first, "24", "done, 5,121 bytes"),
        ("#2 10.0.0.2:40002 → 10.0.0.1:50002 RRQ gone", "2", "error 1 File not found")]
    assert plain(1)[0][0].startswith("#2 ")


def test_transfers_table_on_a_narrow_terminal(tmp_path: Path) -> None:
    text = render(transfers_table(_tracker(_capture(tmp_path)).results()), width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for expected in ("RRQ [bold]x\\x1b.bin (octet)", "10.0.0.2:40001 →", "10.0.0.1:50001",
                     "5,121 B", "+1 resent", "complete", "RRQ gone (octet)", "error (1 File"):
        assert expected in text, (expected, text)


def test_timeline_folds_in_order_runs(tmp_path: Path) -> None:
    t = _tracker(_capture(tmp_path)).results()[0]
    rows = fold_timeline(t.events or [])
    packets = [row[4] for row in rows]
    # RRQ; DATA 1-3 with ACK 1-3 and DATA 4 folded; the resent DATA 4; the rest folded.
    assert packets[0] == "RRQ"
    assert packets[1] == "DATA 1–4 (2,048 bytes) / ACK 1–3"
    assert packets[2] == "DATA 4 (512 bytes)" and rows[2][5] == "retransmission"
    assert packets[3].startswith("DATA 5–10") and packets[-1] == "ACK 11"
    assert sum(row[2] for row in rows) == len(t.events or []) == 24
    text = render(transfer_details(t))
    assert "Timeline" in text and "retransmission" in text and "5,121 bytes" in text
