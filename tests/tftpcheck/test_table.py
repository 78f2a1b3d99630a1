"""The check table against SPEC.md and the RFCs, without a network."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzer.errors import InputError
from analyzer.tftpcheck.checks import BY_ID, CHECKS, final_blksize
from analyzer.tftpcheck.runner import select_checks

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "SPEC.md"


def test_every_spec_check_id_is_in_the_table() -> None:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is absent")
    text = SPEC.read_text()
    section = text[text.index('"type": "tftp_check"'):]
    section = section[:section.index("With `--watch`")]
    ids = set(re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+|wrq|blksize|tsize|windowsize|"
                         r"retransmit|rollover|concurrent)`", section))
    ids -= {"tftp_check"}
    assert ids and ids <= set(BY_ID), ids - set(BY_ID)


def test_each_check_names_an_rfc_and_a_purpose() -> None:
    for check in CHECKS:
        assert re.fullmatch(r"RFC (1350|1123|2347|2348|2349|7440)( section [0-9.]+)?",
                            check.rfc), check
        assert check.purpose and not check.purpose.endswith(".")


@pytest.mark.parametrize(("size", "expected"), [
    (4096, None),  # 512 divides it: no option needed
    (5000, 1250),  # the largest divisor up to 1428
    (4999, 4999),  # prime: one full block of the whole file, then the empty one
    (7, None),  # below the smallest blksize
])
def test_final_blksize_divides_the_size(size: int, expected: int | None) -> None:
    got = final_blksize(size)
    assert got == expected
    if got is not None:
        assert size % got == 0 and 8 <= got <= 65464


def test_select_checks_keeps_table_order_and_refuses_unknown_ids() -> None:
    chosen = select_checks(("wrq", "rrq-octet"), ())
    assert [c.id for c in chosen] == ["rrq-octet", "wrq"]
    assert "tsize" not in [c.id for c in select_checks((), ("tsize",))]
    with pytest.raises(InputError, match="no-such"):
        select_checks(("no-such",), ())
