"""The prerequisite helpers of tests/conftest.py: skip normally, fail under CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR

PROBE = '''
from tests.conftest import require_tool

def test_needs_a_tool_nobody_has():
    require_tool("no-such-tool-for-analyzer-tests")
'''


@pytest.mark.parametrize("ci, outcome", [("", "1 skipped"), ("true", "1 failed")])
def test_missing_tool_skips_or_fails_under_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.fspath(REPO_DIR)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--rootdir", os.fspath(tmp_path), os.fspath(probe)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert outcome in done.stdout, done.stdout[-1500:]
