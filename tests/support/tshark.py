"""tshark as an independent second opinion on a capture."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool


def export_tftp_objects(capture: Path, out_dir: Path) -> dict[str, Path]:
    """`tshark -r CAPTURE --export-objects tftp,DIR`: the files tshark rebuilt, by name.

    tshark exports the wire bytes (no netascii decoding) and loses transfers whose replies
    come from another IP or use blksize < 8, so use it only where it is known to be right.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [require_tool("tshark"), "-n", "-r", str(capture), "-q",
         "--export-objects", f"tftp,{out_dir}"],
        capture_output=True, check=True, timeout=120,
    )
    return {path.name: path for path in sorted(out_dir.iterdir()) if path.is_file()}
