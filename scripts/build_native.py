"""Compile the per-packet modules (analyzer/native.py lists them) with mypyc, in place.

Run by `make` whenever one of those sources changed. Without a C compiler or Python's
headers it says so and leaves the package pure Python (correct, about 1.7x slower); a
mypyc error is a bug in our typed code and fails the build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def missing_toolchain() -> str | None:
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    if shutil.which(compiler.split()[0]) is None:
        return f"no C compiler ({compiler.split()[0]})"
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").exists():
        return f"no Python headers ({include}/Python.h; Debian: python3-dev)"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stamp", help="file to touch once the modules are compiled")
    args = parser.parse_args()
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    from analyzer.native import COMPILED_MODULES, GROUP_NAME, PACKAGE_DIR, built_module

    why_not = missing_toolchain()
    if why_not:
        print(f"build_native: {why_not}; analyzer stays pure Python (about 1.7x slower)",
              file=sys.stderr)
        return 0
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        print(f"build_native: {exc}; install the package first (make)", file=sys.stderr)
        return 1
    sources = [str((Path(PACKAGE_DIR) / name).relative_to(REPO)) for name in COMPILED_MODULES]
    for source in sources:  # an old build of a module must not outlive a failed build
        built = built_module(REPO / source)
        if built is not None:
            os.unlink(built)
    with tempfile.TemporaryDirectory(prefix="analyzer-native-") as tmp:
        extensions = mypycify(sources, opt_level="3", group_name=GROUP_NAME,
                              target_dir=str(Path(tmp) / "c"))
        setup(name="analyzer-native", ext_modules=extensions, script_args=[
            "--quiet", "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "obj"),
            "--parallel", str(os.cpu_count() or 1)])
    print(f"build_native: compiled {len(sources)} modules with mypyc")
    if args.stamp:
        Path(args.stamp).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
