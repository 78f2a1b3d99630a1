"""Shared test helpers: prerequisites that skip (or fail under CI=true) and data folders.

`require_tool("tshark")` and `require_root()` skip a test with a clear reason when the
prerequisite is missing; when the environment says `CI=true` they fail it instead, so a
CI run can never pass by skipping. Other test modules import them from here:

    from tests.conftest import require_tool, require_root
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parent.parent
CORPUS_DIR = (REPO_DIR / ".." / "shared" / "corpus").resolve()
CAPTURES_DIR = REPO_DIR / "captures"


def in_ci() -> bool:
    """True when a missing prerequisite must fail the run instead of skipping."""
    return os.environ.get("CI") == "true"


def missing_prerequisite(reason: str) -> None:
    """Skip the current test with `reason`, or fail it under CI=true."""
    if in_ci():
        pytest.fail(f"prerequisite missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """Return the path of the executable `name`, or skip (fail under CI) when absent."""
    path = shutil.which(name)
    if path is None:
        missing_prerequisite(f"{name} is not installed (apt-get install it or run `make test`)")
    return path  # type: ignore[return-value]


def require_root() -> None:
    """Skip (fail under CI) unless the tests run as root."""
    if os.geteuid() != 0:
        missing_prerequisite("needs root (live sniffing, privileged ports, namespaces)")


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The third-party sample captures (../shared/corpus); skipped when absent.

    The corpus lives outside the repo, so its absence is not a CI failure: it skips even
    under CI=true.
    """
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"sample corpus {CORPUS_DIR} is absent")
    return CORPUS_DIR


@pytest.fixture(scope="session")
def captures_dir() -> Path:
    """The repo's own recorded captures (captures/)."""
    return CAPTURES_DIR


@pytest.fixture(scope="session")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every capture from tests/craft.py, written once per session: {name: CraftedCapture}."""
    from tests.craft import build_all  # imports scapy: only for tests that need it

    return build_all(tmp_path_factory.mktemp("crafted"))


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files that are not captures (missing, directory, empty, text, random bytes, ...)."""
    from tests.craft import build_bad_inputs

    return build_bad_inputs(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture
def open_tmp_path():
    """A temporary folder other users (e.g. `nobody` in privilege tests) can traverse:
    pytest's own tmp_path sits under a root-only folder."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="analyzer-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    """Network safety: a crafted Ether() without a destination MAC must never make scapy
    resolve it (an ARP or neighbour solicitation on a real interface). Resolution is
    switched off for the whole test session, and such a frame fails to build instead."""
    from scapy.config import conf
    from scapy.layers import l2  # noqa: F401 - defines conf.neighbor

    conf.neighbor.resolve = lambda l2inst, l3inst: None  # type: ignore[method-assign]
    conf.raise_no_dst_mac = True


def synthetic_capture(folder: Path, packets: int, seed: int, concurrency: int) -> Path:
    """A busy capture from benchmarks/generate.py: interleaved TCP connections (handshakes,
    data both ways, retransmissions, out-of-order, FIN/RST closes) and TFTP reads."""
    import subprocess
    import sys

    path = folder / f"synthetic-{packets}-{seed}.pcap"
    subprocess.run([sys.executable, str(REPO_DIR / "benchmarks" / "generate.py"), str(path),
                    "--packets", str(packets), "--seed", str(seed),
                    "--concurrency", str(concurrency)],
                   check=True, capture_output=True, timeout=120)
    return path
