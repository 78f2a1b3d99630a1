"""The finding table (analyzer/tftp/findings.py) against its users and its documentation.

Every finding comes from a `FindingKind` constant of the table, so a misspelt kind fails at
import; these tests close the rest: each call site passes exactly the parameters its
template needs (read from the source, so a rarely taken branch is checked too), every
kind is used, every code the tests look for exists, and docs/tftp.md lists exactly the
table's codes with the same rule and severity.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from analyzer.tftp import findings
from analyzer.tftp.findings import BY_CODE, FAIL, INFO, KINDS, WARN, FindingKind
from tests.conftest import REPO_DIR

TFTP_SOURCES = sorted((REPO_DIR / "analyzer" / "tftp").glob("*.py"))
TEST_SOURCES = sorted([*(REPO_DIR / "tests" / "tftp").glob("*.py"),
                       *(REPO_DIR / "tests" / "tftp_servers").glob("*.py")])
# The parameter that `verdicts.judge` adds to counted findings: " (N times)" or "".
REPEATS = "again"


def _table() -> dict[str, FindingKind]:
    """The module's FindingKind constants by name."""
    return {name: value for name, value in vars(findings).items()
            if isinstance(value, FindingKind)}


def _call_sites() -> list[tuple[str, int, FindingKind, set[str], bool]]:
    """(file, line, kind, keyword names, counted) of every `KIND.at(...)`,
    `x.note(KIND, ...)` and `x.count(KIND, ...)` in analyzer/tftp/, with KIND a table
    constant or a local variable assigned only table constants."""
    table = _table()
    sites = []
    for path in TFTP_SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            local: dict[str, set[str]] = {}  # variable -> the constants assigned to it
            for node in ast.walk(function):
                if (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name)
                        and isinstance(node.value, ast.Name) and node.value.id in table):
                    local.setdefault(node.targets[0].id, set()).add(node.value.id)
            for node in ast.walk(function):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                method = node.func.attr
                if method == "at":
                    subject: ast.expr | None = node.func.value
                elif method in ("note", "count") and node.args:
                    subject = node.args[0]
                else:
                    continue
                if not isinstance(subject, ast.Name):
                    continue
                names = ({subject.id} if subject.id in table else local.get(subject.id, set()))
                keywords = {k.arg for k in node.keywords if k.arg is not None}
                if any(k.arg is None for k in node.keywords):
                    continue  # `**params`: checked where the parameters were counted
                for name in names:
                    sites.append((path.name, node.lineno, table[name], keywords,
                                  method == "count"))
    return sites


def test_table_is_complete_and_codes_unique() -> None:
    table = _table()
    assert set(table.values()) == set(KINDS)
    assert len(BY_CODE) == len(KINDS) == len(table)
    for name, kind in table.items():
        assert name == kind.code.upper().replace("-", "_")
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", kind.code)
        assert kind.severity in (FAIL, WARN, INFO)
        assert kind.rfc == "" or re.fullmatch(r"RFC \d+.*", kind.rfc), kind.rfc


def test_every_call_site_passes_exactly_its_template_fields() -> None:
    sites = _call_sites()
    assert len(sites) >= len(KINDS)
    for path, line, kind, keywords, counted in sites:
        given = keywords | ({REPEATS} if counted and REPEATS in kind.fields else set())
        assert given == kind.fields, f"{path}:{line}: {kind.code} takes {sorted(kind.fields)}"
        # And the template formats with them (format specs such as {spacing:.3f} too).
        finding = kind.at(7, **dict.fromkeys(given, 1))
        assert finding.code == kind.code and finding.frame == 7 and "{" not in finding.message


def test_every_kind_is_made_somewhere() -> None:
    made = {kind.code for _, _, kind, _, _ in _call_sites()}
    assert made == set(BY_CODE)


def test_only_counted_findings_say_how_often() -> None:
    """`again` is filled in by `verdicts.judge` for counted kinds only: a noted kind whose
    template asks for it would fail to format."""
    noted = {kind for _, _, kind, _, counted in _call_sites() if not counted}
    counted = {kind for _, _, kind, _, counted in _call_sites() if counted}
    assert not noted & counted
    assert all(REPEATS not in kind.fields for kind in noted)


def _codes_named_in_tests() -> set[str]:
    """String constants the TFTP tests compare with a finding's code."""
    named: set[str] = set()

    def mentions_code(node: ast.expr) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return node.func.id in ("codes", "finding_codes")
        if isinstance(node, ast.Subscript):
            return isinstance(node.slice, ast.Constant) and node.slice.value == "code"
        return isinstance(node, ast.Attribute) and node.attr == "code"

    def strings(node: ast.expr) -> list[str]:
        return [n.value for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)]

    for path in TEST_SOURCES:
        if path.name == Path(__file__).name:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(mentions_code(op) for op in operands):
                    for op in operands:
                        if not mentions_code(op):
                            named.update(strings(op))
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "finding" and len(node.args) == 2):
                named.update(strings(node.args[1]))
    return named


def test_codes_the_tests_look_for_exist() -> None:
    named = _codes_named_in_tests()
    assert len(named) >= 15  # the scan finds them (a broken scan would find none)
    assert named <= set(BY_CODE), named - set(BY_CODE)


def _documented() -> dict[str, tuple[str, str]]:
    """docs/tftp.md's findings table: code -> (rule, severity)."""
    text = (REPO_DIR / "docs" / "tftp.md").read_text()
    section = text.split("\n## Findings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        for code in re.findall(r"`([^`]+)`", cells[0]):
            assert code not in documented, f"{code} documented twice"
            documented[code] = (cells[1], cells[2])
    return documented


def test_docs_list_exactly_the_table() -> None:
    documented = _documented()
    assert set(documented) == set(BY_CODE)
    for code, (rule, severity) in documented.items():
        kind = BY_CODE[code]
        assert (rule, severity) == (kind.rfc or "-", kind.severity), code


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.code)
def test_finding_carries_its_rule(kind: FindingKind) -> None:
    finding = kind.at(3, **dict.fromkeys(kind.fields, 1))
    assert (finding.severity, finding.rfc) == (kind.severity, kind.rfc)
