"""The mypyc build of the per-packet modules (analyzer/native.py, scripts/build_native.py).

The rest of the suite runs whichever form is installed (compiled under `make test`); these
tests check that the compiled form is really in use where it must be, that it gives the
same results as the Python sources, and that an edited source is never shadowed by a
stale build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analyzer import native
from tests.conftest import CAPTURES_DIR, CORPUS_DIR, REPO_DIR, missing_prerequisite


def _require_build() -> None:
    if native.built_module(native.source_path(native.COMPILED_MODULES[0])) is None:
        missing_prerequisite("the mypyc build is absent (`make native`; needs gcc and "
                             "python3-dev)")


def _analyzer(args: list[str], pure: bool) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, ANALYZER_PURE="1" if pure else "0", ANALYZER_WORKERS="1")
    return subprocess.run([sys.executable, "-m", "analyzer", *args], env=env,
                          capture_output=True, timeout=300, check=False)


def test_every_listed_module_is_compiled_and_imported_compiled() -> None:
    _require_build()
    assert native.stale_modules() == []
    probe = ("import importlib, sys\n"
             "from analyzer import native\n"
             "for name in native.COMPILED_MODULES:\n"
             "    module = 'analyzer.' + name[:-3].replace('/', '.')\n"
             "    importlib.import_module(module)\n"
             "    print(module, native.is_compiled(module))\n")
    env = dict(os.environ, ANALYZER_PURE="0")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout.split("\n")
    rows = dict(line.split() for line in out if line)
    assert len(rows) == len(native.COMPILED_MODULES)
    assert set(rows.values()) == {"True"}, rows


def test_pure_switch_imports_the_sources() -> None:
    probe = ("import analyzer.tcp.tracker as t, analyzer.pipeline as p\n"
             "print(t.__file__, p.__file__)")
    env = dict(os.environ, ANALYZER_PURE="1")
    files = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, check=True, timeout=60).stdout.split()
    assert [Path(f).name for f in files] == ["tracker.py", "pipeline.py"]


def _captures() -> list[Path]:
    found = sorted(CAPTURES_DIR.glob("*.pcap*"))
    if CORPUS_DIR.is_dir():
        found += sorted(p for p in CORPUS_DIR.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return found


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_compiled_and_sources_give_identical_output(capture: Path) -> None:
    _require_build()
    compiled = _analyzer(["read", str(capture), "--json"], pure=False)
    source = _analyzer(["read", str(capture), "--json"], pure=True)
    assert compiled.returncode == source.returncode == 0, compiled.stderr + source.stderr
    assert compiled.stdout.count(b"\n") > 1
    assert compiled.stdout == source.stdout


def test_compiled_and_sources_agree_on_follow_ladder_and_tftp() -> None:
    _require_build()
    tcp = CAPTURES_DIR / "tcp-exchange.pcap"
    tftp = CAPTURES_DIR / "tftp-hpa-download.pcapng"
    for args in (["tcp", "follow", str(tcp), "0", "--format", "hex"],
                 ["tcp", "ladder", str(tcp), "0"],
                 ["tftp", "show", str(tftp), "1", "--json"]):
        compiled, source = _analyzer(args, pure=False), _analyzer(args, pure=True)
        assert compiled.returncode == 0, compiled.stderr
        assert compiled.stdout and compiled.stdout == source.stdout, args


def test_a_source_edited_after_the_build_is_imported_instead(tmp_path: Path) -> None:
    _require_build()
    copy = tmp_path / "analyzer"
    shutil.copytree(REPO_DIR / "analyzer", copy,
                    ignore=shutil.ignore_patterns("__pycache__"), copy_function=shutil.copy2)
    edited = copy / "tcp" / "tracker.py"
    later = time.time() + 5
    os.utime(edited, (later, later))
    probe = "import analyzer.tcp.tracker as t, analyzer.decode.decoder as d\n" \
            "print(t.__file__, d.__file__)"
    env = dict(os.environ, PYTHONPATH=str(tmp_path), ANALYZER_PURE="0")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, check=True, timeout=60, cwd=tmp_path)
    files = done.stdout.split()
    assert Path(files[0]).parent.parent == copy
    # Every listed module falls back together, not only the edited one.
    assert [Path(f).name for f in files] == ["tracker.py", "decoder.py"]
    assert "tcp/tracker.py changed after it was compiled" in done.stderr


def test_without_a_compiler_the_build_says_why_and_keeps_the_package_usable(
        tmp_path: Path) -> None:
    stamp = tmp_path / "stamp"
    before = sorted(p.name for p in Path(native.PACKAGE_DIR).rglob("*.so"))
    env = dict(os.environ, CC=str(tmp_path / "no-such-cc"))
    done = subprocess.run([sys.executable, str(REPO_DIR / "scripts" / "build_native.py"),
                           "--stamp", str(stamp)], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "no C compiler" in done.stderr and "pure Python" in done.stderr
    assert not stamp.exists()  # so that make tries again once a compiler is there
    assert sorted(p.name for p in Path(native.PACKAGE_DIR).rglob("*.so")) == before
