"""TFTP client benchmark: `analyzer tftp get` of a 100 MiB file on loopback against the
tftp-hpa client, the atftp client and curl, runs alternated, wall time and CPU per MiB.

Settings (as issue 19 asks): tftpd-hpa at blksize 512 and 1428, atftpd at windowsize 16.
Servers run on 127.0.0.9 (tftpd-hpa) and 127.0.0.10 (atftpd, from .deps/) in a temporary
root, are stopped by PID, and every download is checked against the served file.

    .venv/bin/python benchmarks/tftp_client.py              # 3 rounds, 100 MiB (root)
    .venv/bin/python benchmarks/tftp_client.py --rounds 1 --mib 20
    .venv/bin/python benchmarks/tftp_client.py --realtime   # on a busy machine (root)

--realtime runs the servers and every client under SCHED_FIFO (`chrt -f 50`), so other
work on a shared machine does not land in the middle of a lockstep transfer; the
comparison stays fair because every client gets the same treatment.

Prints a markdown table (median of the rounds); nothing is written into docs/.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ATFTPD = REPO / ".deps" / "atftpd" / "usr" / "sbin" / "atftpd"
HPA_IP, ATFTPD_IP = "127.0.0.9", "127.0.0.10"


def clients(out: Path) -> dict[str, list[tuple[str, str, list[str]]]]:
    """setting -> [(client, server ip, argv)]."""
    # the console script users run (`python -m` adds runpy's imports)
    script = Path(sys.executable).parent / "analyzer"
    ours = [str(script) if script.exists() else sys.executable, *(
        [] if script.exists() else ["-m", "analyzer"]), "tftp", "get"]
    return {
        "tftpd-hpa, blksize 512": [
            ("analyzer", HPA_IP, [*ours, HPA_IP, "big.bin", "-o", str(out)]),
            ("tftp-hpa", HPA_IP, ["tftp", "-m", "binary", HPA_IP, "-c", "get", "big.bin",
                                  str(out)]),
            ("atftp", HPA_IP, ["atftp", "-g", "-l", str(out), "-r", "big.bin", HPA_IP]),
            ("curl", HPA_IP, ["curl", "-sS", "-o", str(out), f"tftp://{HPA_IP}/big.bin"]),
        ],
        "tftpd-hpa, blksize 1428": [
            ("analyzer", HPA_IP, [*ours, HPA_IP, "big.bin", "-o", str(out),
                                  "--blksize", "1428"]),
            ("atftp", HPA_IP, ["atftp", "-g", "-l", str(out), "-r", "big.bin",
                               "--option", "blksize 1428", HPA_IP]),
            ("curl", HPA_IP, ["curl", "-sS", "--tftp-blksize", "1428", "-o", str(out),
                              f"tftp://{HPA_IP}/big.bin"]),
        ],
        "atftpd, windowsize 16": [
            ("analyzer", ATFTPD_IP, [*ours, ATFTPD_IP, "big.bin", "-o", str(out),
                                     "--windowsize", "16", "--blksize", "1428"]),
            ("atftp", ATFTPD_IP, ["atftp", "-g", "-l", str(out), "-r", "big.bin",
                                  "--option", "windowsize 16", "--option", "blksize 1428",
                                  ATFTPD_IP]),
        ],
    }


REALTIME = ["chrt", "-f", "50"]


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user+system) of one run of argv."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--realtime", action="store_true",
                        help="servers and clients under SCHED_FIFO (chrt -f 50; root)")
    args = parser.parse_args()
    prefix = REALTIME if args.realtime else []
    # Byte code compiled once, as after a first run: with PYTHONDONTWRITEBYTECODE set (as
    # in some containers) every run would compile our edited modules again.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "analyzer")],
                   check=True, stdout=subprocess.DEVNULL)
    root = Path(tempfile.mkdtemp(prefix="analyzer-bench-tftp-"))
    root.chmod(0o777)
    content = os.urandom(args.mib << 20)
    (root / "big.bin").write_bytes(content)
    (root / "big.bin").chmod(0o644)
    digest = hashlib.sha256(content).hexdigest()
    del content
    out = root / "out.bin"
    servers = [
        subprocess.Popen([*prefix, "in.tftpd", "-L", "-s", str(root), "-a", f"{HPA_IP}:69"]),
        subprocess.Popen([*prefix, str(ATFTPD), "--daemon", "--no-fork", "--logfile", "/dev/null",
                          "--bind-address", ATFTPD_IP, "--port", "69", str(root)]),
    ]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        time.sleep(0.5)
        plan = clients(out)
        for _ in range(args.rounds):
            for setting, runs in plan.items():
                for client, _ip, argv in runs:  # alternated: every client once per round
                    out.unlink(missing_ok=True)
                    results.setdefault((setting, client), []).append(timed([*prefix, *argv]))
                    if hashlib.sha256(out.read_bytes()).hexdigest() != digest:
                        raise SystemExit(f"{client} ({setting}) got different bytes")
    finally:
        for server in servers:
            server.terminate()
            server.wait(5)
        shutil.rmtree(root, ignore_errors=True)
    print(f"{args.mib} MiB, median of {args.rounds} alternated rounds"
          f"{', SCHED_FIFO' if args.realtime else ''}\n")
    print("| setting | client | wall s | MiB/s | CPU ms per MiB | wall s, run by run |")
    print("|---|---|---:|---:|---:|---|")
    for (setting, client), runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        each = ", ".join(f"{r[0]:.2f}" for r in runs)
        print(f"| {setting} | {client} | {wall:.2f} | {args.mib / wall:.1f} | "
              f"{cpu * 1000 / args.mib:.1f} | {each} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
