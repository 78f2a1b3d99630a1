"""Which modules mypyc compiles to C, and the switch back to their pure-Python sources.

The per-packet path (reading records, decoding, the TCP and TFTP trackers) is plain typed
Python that `scripts/build_native.py` (run by `make`) compiles with mypyc into extension
modules next to the sources: the same code, about 1.7x faster. Python imports an extension
module before a `.py` of the same name, so without care an edited source would be shadowed
by its stale build. `prefer_sources()`, called when the package is imported, falls back to
the sources for every listed module when any of them is newer than its build, or when
ANALYZER_PURE=1 (how the tests check that both forms give the same results).
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

# As in the package's __path__ (import caches key on it). Paths here are strings: this
# runs on every start, and pathlib would add ~8 ms to it (see docs/performance.md).
PACKAGE_DIR = os.path.dirname(__file__)

# Relative to the package; the order does not matter (mypyc compiles them as one group).
COMPILED_MODULES = (
    "active/tftp.py",
    "capture/chunks.py",
    "capture/frame.py",
    "capture/merge.py",
    "capture/pcap.py",
    "capture/pcapng.py",
    "decode/decoder.py",
    "decode/fragments.py",
    "decode/packet.py",
    "decode/partition.py",
    "report/tcp_json.py",
    "run/results.py",
    "tcp/analysis.py",
    "tcp/completeness.py",
    "tcp/flow.py",
    "tcp/lifecycle.py",
    "tcp/parking.py",
    "tcp/result.py",
    "tcp/stream.py",
    "tcp/tombstones.py",
    "tcp/tracker.py",
    "tcp/vocabulary.py",
    "tcp/zeek.py",
    "tftp/client.py",
    "tftp/codec.py",
    "tftp/findings.py",
    "tftp/matching.py",
    "tftp/netascii.py",
    "tftp/tracker.py",
    "tftp/transfer.py",
    "tftp/verdicts.py",
    "pipeline.py",
)
# mypyc's group: its shared runtime library becomes the module analyzer._native__mypyc.
GROUP_NAME = "analyzer._native"


def built_module(source: str | os.PathLike[str]) -> str | None:
    """The extension module built from the `.py` file `source`, if there is one."""
    stem = os.fspath(source)[:-len(".py")]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = stem + suffix
        if os.path.exists(candidate):
            return candidate
    return None


def source_path(name: str) -> str:
    """The path of a COMPILED_MODULES entry."""
    return os.path.join(PACKAGE_DIR, *name.split("/"))


def stale_modules() -> list[str]:
    """Compiled modules whose source changed after they were built."""
    stale = []
    for name in COMPILED_MODULES:
        source = source_path(name)
        built = built_module(source)
        if built is not None and os.stat(built).st_mtime < os.stat(source).st_mtime:
            stale.append(name)
    return stale


def is_compiled(module_name: str) -> bool:
    """True when the imported module `analyzer.x.y` runs as compiled code."""
    module = sys.modules.get(module_name)
    return module is not None and not str(getattr(module, "__file__", "")).endswith(".py")


def prefer_sources() -> None:
    """Import the `.py` sources instead of their builds (see the module docstring)."""
    if os.environ.get("ANALYZER_PURE") == "1":
        reason = None
    else:
        if built_module(source_path(COMPILED_MODULES[0])) is None:
            return  # nothing built: sources are all there is
        stale = stale_modules()
        if not stale:
            return
        reason = (f"analyzer: {stale[0]} changed after it was compiled; running the "
                  "pure-Python sources (slower) until `make native` rebuilds it")
    source_only = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
    for directory in {PACKAGE_DIR} | {os.path.dirname(source_path(n)) for n in COMPILED_MODULES}:
        sys.path_importer_cache[directory] = importlib.machinery.FileFinder(
            directory, *source_only)
    if reason:
        print(reason, file=sys.stderr)
