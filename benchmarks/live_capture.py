"""Packets lost by live capture at a bounded send rate on `lo`: analyzer (TPACKET_V3 ring,
and recvmsg with ANALYZER_LIVE_RING=0) against tcpdump, in alternating runs.

Each run binds a UDP receiver on 127.0.0.1 (so no ICMP errors), starts the sniffer with
`-c COUNT -f "udp port P"`, waits until its packet socket is bound, sends COUNT datagrams
to 127.0.0.1:P paced at RATE per second (in 1 ms slices), and waits for the sniffer to
exit on its own (it has every packet) or to stop making progress (QUIET_SECONDS), then
stops it by PID with SIGTERM. It reports what the sniffer captured and the kernel's drop
count. Traffic goes to 127.0.0.1 only; every process is stopped by its PID.

    .venv/bin/python benchmarks/live_capture.py                  # 100k at 4 rates, 2 runs
    .venv/bin/python benchmarks/live_capture.py --count 200000 --rates 0 --runs 3
    (rate 0: as fast as one Python sender goes)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUIET_SECONDS = 3.0
START_TIMEOUT = 30.0
MAX_RUN_SECONDS = 120.0


def running_packet_socket(pid: int) -> bool:
    """`pid` holds a bound (running) AF_PACKET socket: its filter is in place."""
    try:
        with open(f"/proc/{pid}/net/packet") as table:
            inodes = {fields[-1] for fields in map(str.split, table.readlines()[1:])
                      if len(fields) >= 9 and int(fields[3], 16) and fields[5] == "1"}
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                return True
    except OSError:
        return False
    return False


def send(port: int, count: int, rate: int) -> float:
    """`count` datagrams to 127.0.0.1:port, `rate` per second (0: unpaced); seconds taken."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"x" * 64
    address = ("127.0.0.1", port)
    started = time.perf_counter()
    per_slice = max(1, rate // 1000) if rate else count
    sent = 0
    while sent < count:
        batch = min(per_slice, count - sent)
        for _ in range(batch):
            sender.sendto(payload, address)
        sent += batch
        if rate:
            due = started + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    sender.close()
    return time.perf_counter() - started


def sniffer_argv(tool: str, port: int, count: int, out_dir: Path) -> tuple[list[str], dict]:
    env = dict(os.environ)
    bpf = f"udp port {port}"
    if tool == "tcpdump":
        return ["tcpdump", "-i", "lo", "-n", "-c", str(count), "-w", str(out_dir / "t.pcap"),
                bpf], env
    env["PYTHONPATH"] = str(REPO)
    env["ANALYZER_LIVE_RING"] = "0" if tool == "analyzer-recvmsg" else "1"
    return [sys.executable, "-m", "analyzer", "sniff", "-i", "lo", "-c", str(count),
            "--json", "-f", bpf], env


def progress(proc: subprocess.Popen[str]) -> int:
    """A number that grows while the sniffer works: its CPU time in ticks."""
    try:
        with open(f"/proc/{proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except OSError:
        return -1


def one_run(tool: str, count: int, rate: int) -> dict:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    port = receiver.getsockname()[1]
    out_dir = Path(tempfile.mkdtemp(prefix="live-bench-"))
    argv, env = sniffer_argv(tool, port, count, out_dir)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not running_packet_socket(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{tool} did not start: {proc.communicate()[1][-500:]}")
            time.sleep(0.02)
        time.sleep(0.3)
        send_seconds = send(port, count, rate)
        sent_at = time.monotonic()
        last, last_change = progress(proc), time.monotonic()
        while proc.poll() is None:
            time.sleep(0.2)
            now_progress = progress(proc)
            if now_progress != last:
                last, last_change = now_progress, time.monotonic()
            if time.monotonic() - last_change > QUIET_SECONDS \
                    or time.monotonic() - sent_at > MAX_RUN_SECONDS:
                proc.send_signal(signal.SIGTERM)
                break
        stdout, stderr = proc.communicate(timeout=60)
        finished = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        receiver.close()
        shutil.rmtree(out_dir, ignore_errors=True)
    if tool == "tcpdump":
        captured = int(re.search(r"(\d+) packets captured", stderr).group(1))
        dropped = int(re.search(r"(\d+) packets dropped by kernel", stderr).group(1))
    else:
        summary = json.loads(stdout.splitlines()[-1])
        captured = summary["packets"]
        interfaces = summary["interfaces"]
        dropped = (interfaces[0]["dropped"] or 0) if interfaces else 0
    return {"tool": tool, "rate": rate, "count": count, "captured": captured,
            "lost": count - captured, "kernel_drops": dropped,
            "send_seconds": round(send_seconds, 3), "after_send_seconds": round(finished, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rates", default="25000,50000,100000,0",
                        help="datagrams per second, comma-separated (0: unpaced)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--tools", default="analyzer-ring,analyzer-recvmsg,tcpdump")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("live_capture.py needs root (packet sockets)")
    tools = args.tools.split(",")
    results = []
    for rate in (int(r) for r in args.rates.split(",")):
        for run in range(args.runs):
            # alternate the order, so no tool always runs on a warmer machine
            for tool in tools if run % 2 == 0 else reversed(tools):
                result = one_run(tool, args.count, rate)
                results.append(result)
                print(json.dumps(result), flush=True)
    print()
    print("| rate (pkt/s) | tool | lost (median of runs) | runs' losses | kernel drops |")
    print("|---|---|---|---|---|")
    for rate in dict.fromkeys(r["rate"] for r in results):
        for tool in tools:
            mine = [r for r in results if r["rate"] == rate and r["tool"] == tool]
            losses = [r["lost"] for r in mine]
            print(f"| {rate or 'unpaced'} | {tool} | {statistics.median(losses):,.0f} of "
                  f"{args.count:,} | {', '.join(f'{x:,}' for x in losses)} | "
                  f"{', '.join(str(r['kernel_drops']) for r in mine)} |")


if __name__ == "__main__":
    main()
