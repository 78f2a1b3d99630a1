"""Compile the per-packet modules (analyzer/native.py lists them) with mypyc, in place.

Run by `make` whenever one of those sources changed. Without a C compiler or Python's
headers it says so and leaves the package pure Python (correct, about 1.7x slower); a
mypyc error is a bug in our typed code and fails the build. With OpenSSL's headers
(Debian: libssl-dev) it also builds analyzer/tcp/_sha256.c, the SHA-256 whose state a
parked stream can save (analyzer/tcp/digest.py); without them hashlib does that job.
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


SHA256_SOURCE = "analyzer/tcp/_sha256.c"
# A plain download's full blocks received and ACKed in C (analyzer/active/tftp.py).
TFTP_BULK_SOURCE = "analyzer/active/_tftp_bulk.c"


def openssl_headers() -> bool:
    """Whether <openssl/sha.h> is where the compiler looks by default."""
    include = sysconfig.get_config_var("INCLUDEDIR") or "/usr/include"
    return any(Path(d, "openssl", "sha.h").exists() for d in {include, "/usr/include"})


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
    for c_source in (SHA256_SOURCE, TFTP_BULK_SOURCE):
        for built in Path(REPO, c_source).parent.glob(Path(c_source).stem + ".*.so"):
            built.unlink()
    with tempfile.TemporaryDirectory(prefix="analyzer-native-") as tmp:
        extensions = mypycify(sources, opt_level="3", group_name=GROUP_NAME,
                              target_dir=str(Path(tmp) / "c"))
        from setuptools import Extension

        extensions.append(Extension("analyzer.active._tftp_bulk", [TFTP_BULK_SOURCE],
                                    extra_compile_args=["-O2"]))
        sha256 = openssl_headers()
        if sha256:
            extensions.append(Extension("analyzer.tcp._sha256", [SHA256_SOURCE],
                                        libraries=["crypto"], extra_compile_args=["-O2"]))
        else:
            print("build_native: no OpenSSL headers (Debian: libssl-dev); parked TCP "
                  "streams keep hashlib objects (~0.3 KB more each)", file=sys.stderr)
        setup(name="analyzer-native", ext_modules=extensions, script_args=[
            "--quiet", "build_ext", "--inplace", "--build-temp", str(Path(tmp) / "obj"),
            "--parallel", str(os.cpu_count() or 1)])
    print(f"build_native: compiled {len(sources)} modules with mypyc, {TFTP_BULK_SOURCE}"
          + (f" and {SHA256_SOURCE}" if sha256 else ""))
    if args.stamp:
        Path(args.stamp).touch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
