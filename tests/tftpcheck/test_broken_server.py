"""Each defect of the test-only broken server (tests/support/tftp_broken.py) is caught by
exactly the check meant for it: against the same server without the defect ("good") every
one of these checks passes, and each variant changes exactly one verdict to fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.support.analyzer_cli import run_analyzer
from tests.support.procs import wait_udp_port_free
from tests.support.tftp_broken import BrokenServer
from tests.support.tftp_servers import make_root

pytestmark = pytest.mark.root

IP = "127.0.0.26"
# A multiple of 512, so final-empty-block asks for no blksize (the ignore-blksize defect
# then shows only where a blksize is asked), and big enough for the Sorcerer's cascade.
CONTENT = bytes(range(256)) * 16
CHECKS = ("rrq-octet", "file-not-found", "blksize", "tsize", "sorcerers-apprentice",
          "reply-address", "new-tid", "final-empty-block", "path-traversal", "wrong-tid")
MEANT = {
    "sorcerer": "sorcerers-apprentice",
    "wrong-tsize": "tsize",
    "ignore-blksize": "blksize",
    "port-69": "new-tid",
    "traversal": "path-traversal",
}


def run_card(variant: str, tmp_path: Path) -> dict[str, dict]:
    """Each check's `tftp_check` object against the variant, by check id."""
    root = make_root(f"broken-{variant}")
    (root / "f.bin").write_bytes(CONTENT)
    wait_udp_port_free(IP, 69, 60)
    server = BrokenServer(variant, IP, root).start()
    try:
        done = run_analyzer("tftp", "check", IP, "--file", "f.bin", "--only",
                            ",".join(CHECKS), "--json", "-w", tmp_path / "e.pcapng",
                            timeout=180)
    finally:
        server.stop()
        for path in root.iterdir():
            path.unlink()
        root.rmdir()
    assert done.stderr == ""
    card = {o["check"]: o for o in map(json.loads, done.stdout.splitlines())
            if o["type"] == "tftp_check"}
    assert set(card) == set(CHECKS)
    failed = any(o["verdict"] == "fail" for o in card.values())
    assert done.returncode == (1 if failed else 0)
    return card


def run_variant(variant: str, tmp_path: Path) -> dict[str, str]:
    return {check: o["verdict"] for check, o in run_card(variant, tmp_path).items()}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_root()
    yield run_variant("good", tmp_path_factory.mktemp("good"))


def test_the_good_variant_passes_every_check(good: dict[str, str]) -> None:
    # wrong-tid: the broken server answers a stray port with ERROR 5 (its source says so).
    assert good == dict.fromkeys(CHECKS, "pass")


@pytest.mark.parametrize("variant", list(MEANT))
def test_each_defect_is_caught_by_its_check_only(variant: str, good: dict[str, str],
                                                 tmp_path: Path) -> None:
    verdicts = run_variant(variant, tmp_path)
    changed = {check for check in CHECKS if verdicts[check] != good[check]}
    assert changed == {MEANT[variant]}, verdicts
    assert verdicts[MEANT[variant]] == "fail"


def test_a_resend_by_timer_is_not_the_sorcerers_apprentice(good: dict[str, str],
                                                           tmp_path: Path) -> None:
    # lose-ack-2 drops the first ACK 2 (a lossy link): DATA 2 comes again TIMEOUT (0.5 s)
    # later, by the server's timer, after the duplicate ACK 1 the check sends.
    card = run_card("lose-ack-2", tmp_path)
    assert {check: o["verdict"] for check, o in card.items()} == good
    detail = card["sorcerers-apprentice"]["detail"]
    assert "DATA 2 resent 1 times, each a timeout later" in detail, detail
