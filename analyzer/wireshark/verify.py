"""`analyzer verify`: tshark's reading of a capture beside ours, stream by stream and
transfer by transfer, each difference explained by a documented tshark behaviour or
reported as unexplained.

How tshark is asked, and why this way:
- One streaming `tshark -2 -T fields` pass gives, per TCP segment, its `tcp.stream`,
  addresses and ports, `tcp.completeness`, and what Follow TCP Stream needs (`tcp.seq_raw`,
  `tcp.ack_raw`, flags, `tcp.len`, `tcp.payload`), and per TFTP request its addresses and
  file name. `-2` (two passes) because the completeness a single pass shows lags one
  packet; the last value of each stream is then its final one.
- Follow's bytes are rebuilt from those fields by tshark's own rule (`follow.py`):
  `-z follow,tcp,raw,N` would read the whole capture once per stream, and keeps every
  stream's data in memory until the end. The rebuilt bytes are hashed as they grow.
- The same tshark run writes `--export-objects tftp,DIR` into a temporary folder; each
  file is hashed from disk.
- pyshark finds tshark (`tshark.py`); its per-packet objects are far too slow here.

Our side is `read --json`'s output (run into a temporary file, or given with `--ours`),
read one line at a time. Memory holds, per TCP stream, its endpoints and two SHA-256
states per direction (plus Follow's held out-of-order fragments, bounded), and per TFTP
transfer a short record: never the capture, nor tshark's output, nor a stream's data.

Explanations (the `reason` codes; docs/wireshark.md has the same list):
- `follow-missing-text`: tshark splices "[N bytes missing in capture file]" and a NUL
  into Follow's data where the capture lacks bytes the receiver acknowledged;
- `follow-stops-at-gap`: tshark's Follow ends at a gap no packet acknowledges: the
  bytes held after it are never shown;
- `tftp-other-address`: the server answered from another IP address than the request
  went to: tshark does not follow the transfer and exports nothing;
- `tftp-small-blksize`: a blksize below 8 (RFC 2348's minimum): tshark keeps 512, takes
  the first (short) DATA block for the last and exports only that block (in two passes,
  followed by NUL bytes up to the file's size);
- `tftp-netascii`: tshark exports a netascii file as the wire bytes (CR LF, CR NUL);
  decoding them gives ours;
- `tftp-not-complete`: tshark exports only transfers that reached their final block.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from binascii import a2b_hex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from analyzer.decode.packet import format_endpoint, parse_address
from analyzer.errors import InputError
from analyzer.wireshark.follow import FollowDirection, FollowStream
from analyzer.wireshark.tshark import (
    check_readable,
    first_error_line,
    tshark_command,
    tshark_env,
    tshark_version,
)

AGREE = "agree"
EXPLAINED = "explained"
UNEXPLAINED = "unexplained"
UNCHECKED = "unchecked"  # not compared (a bound was reached): neither agrees nor differs
VERDICT_RANK = {AGREE: 0, UNCHECKED: 1, EXPLAINED: 2, UNEXPLAINED: 3}

REASONS: dict[str, str] = {
    "follow-missing-text": "tshark splices \"[N bytes missing in capture file]\" into "
                           "Follow's data where the capture lacks acknowledged bytes",
    "follow-stops-at-gap": "tshark's Follow stops at a gap no packet acknowledges",
    "tftp-other-address": "the server answered from another address: tshark does not "
                          "follow the transfer",
    "tftp-small-blksize": "blksize below 8: tshark keeps 512 and exports only the first "
                          "block",
    "tftp-netascii": "tshark exports netascii as the wire bytes (CR LF, CR NUL)",
    "tftp-not-complete": "tshark exports only transfers that reached their final block",
}

# What tshark reports: one line per TCP segment or TFTP request. The last occurrence of
# each field is the innermost header's (an IP-in-IP tunnel's inner addresses).
FIELDS = ("frame.number", "tcp.stream", "frame.protocols", "ip.src", "ip.dst", "ipv6.src",
          "ipv6.dst", "tcp.srcport", "tcp.dstport", "tcp.completeness", "tcp.seq_raw",
          "tcp.ack_raw", "tcp.flags", "tcp.len", "tcp.payload", "udp.srcport",
          "udp.dstport", "tftp.opcode", "tftp.source_file", "tftp.destination_file")
DISPLAY_FILTER = ("!icmp && !icmpv6 && (tcp || tftp.opcode == 1 || tftp.opcode == 2)")
TCP_FLAG_SYN = 0x02

# The whole command's speed, measured on the 100k-packet benchmark capture on a busy
# 2-CPU machine (docs/performance.md: 20-23 s): for the estimate printed first. Nearly
# all of it is tshark's two passes.
VERIFY_PACKETS_PER_SECOND = 4_500.0


@dataclass
class VerifyItem:
    """One difference between tshark and us (the `verify_item` JSON object)."""

    what: str  # "tcp_stream" or "tftp_transfer"
    number: int | None  # tcp.stream, or the transfer's number as `read` counts (1-based)
    check: str  # stream, endpoints, completeness, client_bytes, server_bytes, file
    ours: Any
    tshark: Any
    verdict: str  # explained, unexplained, unchecked
    reason: str | None  # a REASONS code when explained
    detail: str


@dataclass
class VerifyRow:
    """One stream's or transfer's verdict (a row of the table)."""

    what: str
    number: int | None
    label: str  # endpoints, or the file name
    verdict: str = AGREE
    notes: list[str] = field(default_factory=list)

    def add(self, item: VerifyItem) -> None:
        if VERDICT_RANK[item.verdict] > VERDICT_RANK[self.verdict]:
            self.verdict = item.verdict
        self.notes.append(item.detail)


@dataclass
class VerifySummary:
    capture: str
    tshark_version: str
    packets: int = 0
    tcp_streams: int = 0
    tftp_transfers: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: {AGREE: 0, EXPLAINED: 0, UNEXPLAINED: 0, UNCHECKED: 0})
    reasons: dict[str, int] = field(default_factory=dict)
    tshark_warning: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.counts[UNEXPLAINED] == 0


@dataclass
class VerifyHooks:
    """What the command line wants to hear while verify runs (all optional)."""

    on_start: Callable[[int], None] | None = None  # the packet count, before tshark starts
    progress: Callable[[int, int], None] | None = None  # (work done, total work)
    on_item: Callable[[VerifyItem], None] | None = None
    on_row: Callable[[VerifyRow], None] | None = None


def estimate_seconds(packets: int) -> float:
    return 1.0 + packets / VERIFY_PACKETS_PER_SECOND  # tshark's start-up, then per packet


def verify(capture: str, *, ours: str | None = None, tftp_ports: tuple[int, ...] = (),
           hooks: VerifyHooks | None = None) -> VerifySummary:
    """Compare tshark's reading of `capture` with ours (`ours`: a `read --json` output to
    use instead of reading the capture again)."""
    hooks = hooks or VerifyHooks()
    check_readable(capture)
    started = time.monotonic()
    summary = VerifySummary(capture, tshark_version())
    with tempfile.TemporaryDirectory(prefix="analyzer-verify-") as workdir:
        if ours is not None and not os.path.isfile(ours):
            raise InputError(f"{ours}: no such file (--ours takes a saved `read --json`)")
        ours_path = ours if ours is not None else _our_results(capture, workdir, tftp_ports)
        summary.packets = _packet_count(ours_path)
        if hooks.on_start is not None:
            hooks.on_start(summary.packets)
        export_dir = os.path.join(workdir, "tftp")
        os.mkdir(export_dir)
        tshark = TsharkReading(capture, export_dir, summary.packets, hooks.progress)
        tshark.run()
        summary.tshark_warning = tshark.warning
        report = _Reporter(summary, hooks)
        with open(ours_path, encoding="utf-8") as lines:
            transfers = _compare_streams(_objects(lines, ours_path), tshark, report)
        _compare_transfers(transfers, tshark, export_dir, report)
    summary.seconds = time.monotonic() - started
    return summary


def _our_results(capture: str, workdir: str, tftp_ports: tuple[int, ...]) -> str:
    """`read --json` of the capture into a file: our streams and transfers."""
    from analyzer.run.read import read_report

    path = os.path.join(workdir, "ours.jsonl")
    with open(path, "w", encoding="utf-8") as out:
        read_report(capture, as_json=True, tftp_ports=tftp_ports, out=out)
    return path


def _objects(lines: IO[str], path: str) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise InputError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(obj, dict):
            raise InputError(f"{path}:{number}: not a JSON object")
        yield obj


def _packet_count(path: str) -> int:
    """The `capture` object's packet count (it is the last line of `read --json`)."""
    with open(path, "rb") as lines:
        lines.seek(0, os.SEEK_END)
        size = lines.tell()
        lines.seek(max(0, size - 65536))
        tail = lines.read().splitlines()
    for line in reversed(tail):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("type") == "capture":
            return int(obj.get("packets") or 0)
    return 0


# --- tshark's side -------------------------------------------------------------------


@dataclass(slots=True)
class TsharkStream:
    endpoints: tuple[str, str]  # the first packet's sender and receiver
    completeness: int
    follow: FollowStream


@dataclass
class TftpRequest:
    client: str
    server_host: str  # the address the request went to
    filename: str


class TsharkReading:
    """One tshark run over the capture: TCP streams with Follow digests, TFTP requests,
    and the exported TFTP files in `export_dir`."""

    def __init__(self, capture: str, export_dir: str, packets: int,
                 progress: Callable[[int, int], None] | None) -> None:
        self.capture = capture
        self.export_dir = export_dir
        self.packets = packets
        self.progress = progress
        self.streams: dict[int, TsharkStream] = {}
        self.requests: dict[str, list[TftpRequest]] = {}  # by client endpoint
        self.warning: str | None = None
        self._second_pass = False

    def run(self) -> None:
        command = tshark_command("-2", "-r", self.capture, "-Y", DISPLAY_FILTER,
                                 "-T", "fields", "-E", "occurrence=l", "-E", "separator=/t",
                                 "-E", "quote=n", "--export-objects",
                                 f"tftp,{self.export_dir}")
        for name in FIELDS:
            command += ["-e", name]
        with tempfile.TemporaryFile() as stderr, subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, env=tshark_env(),
                bufsize=1 << 16) as process:
            assert process.stdout is not None
            poller = self._start_first_pass_progress(process.pid)
            lines = 0
            try:
                for raw in process.stdout:
                    if not self._second_pass:
                        self._second_pass = True
                    lines += 1
                    self._line(raw)
            finally:
                self._second_pass = True
                if poller is not None:
                    poller.join()
            process.wait()
            stderr.seek(0)
            message = first_error_line(stderr.read(4096))
        for stream in self.streams.values():
            stream.follow.finish()
        if self.progress is not None and self.packets:
            self.progress(2 * self.packets, 2 * self.packets)
        if process.returncode != 0:
            if lines == 0 and not os.listdir(self.export_dir):
                raise InputError(f"{self.capture}: tshark cannot read it: "
                                 f"{message or 'no reason given'}")
            self.warning = message or f"tshark ended with status {process.returncode}"

    def _line(self, raw: bytes) -> None:
        # Bytes, not text: ~100k lines a second, most of them a TCP segment's numbers and
        # payload hex; only a TFTP request's file name is decoded.
        values = raw.rstrip(b"\n").split(b"\t")
        if len(values) < len(FIELDS):
            return
        (number, stream_text, protocols, ip_src, ip_dst, ip6_src, ip6_dst, sport, dport,
         completeness, seq, ack, flags, length, payload, usport, _udport, opcode,
         source_file, destination_file) = values[:len(FIELDS)]
        if self.progress is not None and self.packets and number.isdigit():
            frame = int(number)
            if frame % 256 == 0:
                self.progress(self.packets + min(frame, self.packets), 2 * self.packets)
        if ip_src and ip6_src:
            src_host, dst_host = _inner_hosts(protocols, ip_src, ip_dst, ip6_src, ip6_dst)
        elif ip_src:
            src_host, dst_host = ip_src, ip_dst
        else:
            src_host, dst_host = ip6_src, ip6_dst
        if not src_host:
            return
        if stream_text:
            sender = src_host + b" " + sport  # compared, not shown: formatted once a stream
            stream = self.streams.get(int(stream_text))
            if stream is None:
                first = _endpoint(src_host.decode(), sport.decode())
                stream = TsharkStream((first, _endpoint(dst_host.decode(), dport.decode())),
                                      0, FollowStream(sender))
                self.streams[int(stream_text)] = stream
            if completeness:
                stream.completeness = int(completeness, 0)
            stream.follow.packet(sender, int(seq or 0), int(ack or 0),
                                 bool(int(flags or b"0", 16) & TCP_FLAG_SYN),
                                 int(length or 0), a2b_hex(payload) if payload else b"")
        elif opcode in (b"1", b"2") and usport:
            client = _endpoint(src_host.decode(), usport.decode())
            name = (source_file if opcode == b"1" else destination_file).decode(
                "utf-8", "surrogateescape")
            self.requests.setdefault(client, []).append(
                TftpRequest(client, dst_host.decode(), name))

    def _start_first_pass_progress(self, pid: int) -> threading.Thread | None:
        """tshark's first pass writes nothing: its progress is how far it has read the
        capture (Linux's /proc/PID/fdinfo), polled until the first line arrives."""
        if self.progress is None or not self.packets or not os.path.isdir("/proc"):
            return None
        progress, packets = self.progress, self.packets
        size = max(1, os.path.getsize(self.capture))
        target = os.path.realpath(self.capture)

        def poll() -> None:
            while not self._second_pass:
                position = _read_position(pid, target)
                if position is not None:
                    progress(min(packets, packets * position // size), 2 * packets)
                time.sleep(0.25)

        thread = threading.Thread(target=poll, name="verify-progress", daemon=True)
        thread.start()
        return thread


def _read_position(pid: int, target: str) -> int | None:
    """How far process `pid` has read file `target` (the furthest of its descriptors)."""
    folder = f"/proc/{pid}/fd"
    best: int | None = None
    try:
        for fd in os.listdir(folder):
            try:
                if os.readlink(os.path.join(folder, fd)) != target:
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                    for line in info:
                        if line.startswith("pos:"):
                            position = int(line.split()[1])
                            best = position if best is None else max(best, position)
            except OSError:
                continue
    except OSError:
        return None
    return best


def _inner_hosts(protocols: bytes, ip_src: bytes, ip_dst: bytes, ip6_src: bytes,
                 ip6_dst: bytes) -> tuple[bytes, bytes]:
    """A tunnel carries IPv4 in IPv6 or the reverse: the addresses of whichever comes
    last in frame.protocols (the innermost network layer)."""
    layers = protocols.split(b":")
    last_v4 = max((i for i, name in enumerate(layers) if name == b"ip"), default=-1)
    last_v6 = max((i for i, name in enumerate(layers) if name == b"ipv6"), default=-1)
    return (ip6_src, ip6_dst) if last_v6 > last_v4 else (ip_src, ip_dst)


def _endpoint(host: str, port: str) -> str:
    """An endpoint in our text form ("ip:port", "[v6]:port")."""
    try:
        return format_endpoint(parse_address(host), int(port or 0))
    except (OSError, ValueError):
        return f"{host}:{port}"


def _normal_endpoint(text: str) -> str:
    """Our endpoint text, normalised as tshark's is (IPv6 written one way)."""
    host, _, port = text.rpartition(":")
    return _endpoint(host.strip("[]"), port)


# --- comparing ------------------------------------------------------------------------


class _Reporter:
    def __init__(self, summary: VerifySummary, hooks: VerifyHooks) -> None:
        self.summary = summary
        self.hooks = hooks

    def item(self, row: VerifyRow, item: VerifyItem) -> None:
        row.add(item)
        if item.reason is not None:
            self.summary.reasons[item.reason] = self.summary.reasons.get(item.reason, 0) + 1
        if self.hooks.on_item is not None:
            self.hooks.on_item(item)

    def row(self, row: VerifyRow) -> None:
        self.summary.counts[row.verdict] += 1
        if self.hooks.on_row is not None:
            self.hooks.on_row(row)


@dataclass
class OurTransfer:
    number: int
    client: str
    server: str
    filename: str
    mode: str
    blksize: int
    status: str
    bytes: int
    sha256: str | None


def _compare_streams(objects: Iterator[dict[str, Any]], tshark: TsharkReading,
                     report: _Reporter) -> list[OurTransfer]:
    """Every tcp_stream line against tshark's stream of the same number; the transfers
    are collected for `_compare_transfers` (they need all of tshark's files)."""
    transfers: list[OurTransfer] = []
    for obj in objects:
        kind = obj.get("type")
        try:
            if kind == "tcp_stream":
                report.summary.tcp_streams += 1
                _compare_stream(obj, tshark, report)
            elif kind == "tftp_transfer":
                transfers.append(OurTransfer(
                    len(transfers) + 1, _normal_endpoint(str(obj.get("client", ""))),
                    _normal_endpoint(str(obj.get("server", ""))),
                    str(obj.get("filename", "")), str(obj.get("mode", "")),
                    int(obj.get("blksize") or 512), str(obj.get("status", "")),
                    int(obj.get("bytes") or 0), obj.get("sha256")))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(f"our results: a {kind} line is not as `read --json` writes "
                             "it") from None
    for number in sorted(tshark.streams):
        stream = tshark.streams.pop(number)
        row = VerifyRow("tcp_stream", number, " → ".join(stream.endpoints))
        report.item(row, VerifyItem("tcp_stream", number, "stream", None, number,
                                    UNEXPLAINED, None,
                                    f"tshark has stream {number}; we have no such stream"))
        report.row(row)
    report.summary.tftp_transfers = len(transfers)
    return transfers


def _compare_stream(obj: dict[str, Any], tshark: TsharkReading, report: _Reporter) -> None:
    number = int(obj.get("stream", -1))
    client = _normal_endpoint(str(obj.get("client", "")))
    server = _normal_endpoint(str(obj.get("server", "")))
    row = VerifyRow("tcp_stream", number, f"{client} → {server}")
    theirs = tshark.streams.pop(number, None)
    if theirs is None:
        report.item(row, VerifyItem("tcp_stream", number, "stream", number, None, UNEXPLAINED,
                                    None, f"we have stream {number}; tshark has no such stream"))
        report.row(row)
        return
    if {client, server} != set(theirs.endpoints):
        report.item(row, VerifyItem(
            "tcp_stream", number, "endpoints", [client, server], list(theirs.endpoints),
            UNEXPLAINED, None, f"endpoints differ: tshark has {' and '.join(theirs.endpoints)}"))
        report.row(row)
        return
    ours_completeness = int(obj.get("completeness", -1))
    if ours_completeness != theirs.completeness:
        report.item(row, VerifyItem(
            "tcp_stream", number, "completeness", ours_completeness, theirs.completeness,
            UNEXPLAINED, None, f"completeness {ours_completeness}, tshark "
                               f"{theirs.completeness}"))
    gaps = obj.get("gaps") or []
    for side, endpoint in (("client", client), ("server", server)):
        node = theirs.follow.nodes[endpoint != theirs.endpoints[0]]  # node 0: first sender
        our_gaps = {(int(g["offset"]), int(g["length"])) for g in gaps
                    if g.get("direction") == side}
        item = _compare_follow(number, side, int(obj.get(f"{side}_bytes") or 0),
                               obj.get(f"{side}_sha256"), our_gaps, node)
        if item is not None:
            report.item(row, item)
    report.row(row)


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _compare_follow(number: int, side: str, length: int, sha256: str | None,
                    gaps: set[tuple[int, int]], node: FollowDirection) -> VerifyItem | None:
    check = f"{side}_bytes"
    ours = {"bytes": length, "sha256": sha256 or EMPTY_SHA256}
    if node.overflowed:
        return VerifyItem("tcp_stream", number, check, ours, None, UNCHECKED, None,
                          f"{side} bytes not compared: more than 4 MiB held out of order")
    follow = {"bytes": node.follow_length, "sha256": node.follow_digest()}
    if follow == ours:
        return None
    plain = {"bytes": node.plain_length, "sha256": node.plain_digest()}
    reasons = []
    if node.markers:
        reasons.append("follow-missing-text")
    if node.holes:
        reasons.append("follow-stops-at-gap")
    where = sorted(set(node.markers) | set(node.holes))
    places = ", ".join(f"{count} bytes at offset {offset}" for offset, count in where)
    if reasons and plain == ours and set(where) <= gaps:
        detail = (f"{side} bytes: tshark's Follow {follow['bytes']} B, ours {length} B; "
                  f"the same once tshark's " + " and ".join(
                      "missing-bytes text is taken out" if r == "follow-missing-text"
                      else "Follow goes on past the unacknowledged gap" for r in reasons)
                  + f" ({places}, our gaps)")
        return VerifyItem("tcp_stream", number, check, ours, follow, EXPLAINED,
                          reasons[0] if len(reasons) == 1 else "+".join(reasons), detail)
    detail = f"{side} bytes differ: ours {length} B, tshark's Follow {follow['bytes']} B"
    if reasons:
        detail += f" (tshark's gaps: {places}; ours: " + (", ".join(
            f"{n} bytes at offset {o}" for o, n in sorted(gaps)) or "none") + ")"
    return VerifyItem("tcp_stream", number, check, ours, follow, UNEXPLAINED, None, detail)


# --- TFTP -----------------------------------------------------------------------------

# The characters tshark's export replaces by %xx in a file name (eo_massage_str).
_REJECTED = re.compile(r'[<>:"/\\|?*\x01-\x1f]')
_DUPLICATE = re.compile(r"\(\d+\)(?=\.[^.]*$|$)")


def export_name(filename: str) -> str:
    """The name tshark's TFTP export gives a requested file (before " (N)" numbering of
    repeated names): its last path component, unsafe characters as %xx."""
    base = filename.rsplit("/", 1)[-1]
    return _REJECTED.sub(lambda m: f"%{ord(m.group()):02x}", base)


@dataclass
class ExportedFile:
    name: str
    key: str  # the name without tshark's "(N)" of a repeated name
    bytes: int
    sha256: str
    netascii_sha256: str
    data_end: int  # one past the last byte that is not NUL
    paired: bool = False


def _exported_files(folder: str) -> list[ExportedFile]:
    from analyzer.tftp.netascii import NetasciiDecoder

    files = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        digest, decoded, decoder = hashlib.sha256(), hashlib.sha256(), NetasciiDecoder()
        size = data_end = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                decoded.update(decoder.decode(chunk))
                stripped = len(chunk.rstrip(b"\0"))
                if stripped:
                    data_end = size + stripped
                size += len(chunk)
        decoded.update(decoder.flush())
        files.append(ExportedFile(name, _DUPLICATE.sub("", name), size, digest.hexdigest(),
                                  decoded.hexdigest(), data_end))
    return files


def _compare_transfers(transfers: list[OurTransfer], tshark: TsharkReading, export_dir: str,
                       report: _Reporter) -> None:
    files = _exported_files(export_dir)
    by_key: dict[str, list[ExportedFile]] = {}
    for exported in files:
        by_key.setdefault(exported.key, []).append(exported)
    pairs: dict[int, ExportedFile] = {}
    # Same content first (a name repeated by several transfers), then the same name.
    for match in (lambda t, f: f.sha256 == t.sha256,
                  lambda t, f: t.mode.lower() == "netascii" and f.netascii_sha256 == t.sha256,
                  lambda t, f: True):
        for transfer in transfers:
            if transfer.number in pairs or transfer.sha256 is None:
                continue  # no DATA seen: nothing tshark could have exported
            for exported in by_key.get(export_name(transfer.filename), []):
                if not exported.paired and match(transfer, exported):
                    exported.paired = True
                    pairs[transfer.number] = exported
                    break
    for transfer in transfers:
        if transfer.number not in pairs and transfer.sha256 is not None:
            for exported in files:  # a name tshark wrote otherwise, the same content
                if not exported.paired and exported.sha256 == transfer.sha256:
                    exported.paired = True
                    pairs[transfer.number] = exported
                    break
    for transfer in transfers:
        row = VerifyRow("tftp_transfer", transfer.number, transfer.filename)
        item = _compare_transfer(transfer, pairs.get(transfer.number), tshark)
        if item is not None:
            report.item(row, item)
        report.row(row)
    for exported in files:
        if not exported.paired:
            row = VerifyRow("tftp_transfer", None, exported.name)
            report.item(row, VerifyItem(
                "tftp_transfer", None, "file", None,
                {"name": exported.name, "bytes": exported.bytes, "sha256": exported.sha256},
                UNEXPLAINED, None, f"tshark exported {exported.name} ({exported.bytes} B); "
                                   "we have no transfer with that file"))
            report.row(row)


def _compare_transfer(t: OurTransfer, exported: ExportedFile | None,
                      tshark: TsharkReading) -> VerifyItem | None:
    ours = {"status": t.status, "bytes": t.bytes, "sha256": t.sha256}
    if exported is None:
        if t.status != "complete":
            return VerifyItem("tftp_transfer", t.number, "file", ours, None, EXPLAINED,
                              "tftp-not-complete", f"{t.status} transfer: tshark exports "
                                                   "only complete ones")
        asked = [r.server_host for r in tshark.requests.get(t.client, [])
                 if export_name(r.filename) == export_name(t.filename)]
        server_host = t.server.rpartition(":")[0].strip("[]")
        if asked and all(_normal_host(host) != server_host for host in asked):
            return VerifyItem("tftp_transfer", t.number, "file", ours, None, EXPLAINED,
                              "tftp-other-address",
                              f"request to {asked[0]}, answered from {server_host}: "
                              "tshark exported nothing")
        return VerifyItem("tftp_transfer", t.number, "file", ours, None, UNEXPLAINED, None,
                          f"tshark exported no file for {t.filename}")
    theirs = {"name": exported.name, "bytes": exported.bytes, "sha256": exported.sha256}
    if exported.sha256 == t.sha256 and t.status == "complete":
        return None
    if t.status == "complete" and t.mode.lower() == "netascii" \
            and exported.netascii_sha256 == t.sha256:
        return VerifyItem("tftp_transfer", t.number, "file", ours, theirs, EXPLAINED,
                          "tftp-netascii", f"netascii: tshark's file is the wire form "
                                           f"({exported.bytes} B, ours decoded {t.bytes} B)")
    if t.blksize < 8 and exported.data_end <= t.blksize and exported.bytes <= t.bytes:
        return VerifyItem("tftp_transfer", t.number, "file", ours, theirs, EXPLAINED,
                          "tftp-small-blksize", f"blksize {t.blksize}: tshark's file has only "
                                                f"the first block's {exported.data_end} B "
                                                f"(ours {t.bytes} B)")
    if exported.sha256 == t.sha256:
        detail = f"the same bytes, but ours is {t.status} and tshark exported it as complete"
    else:
        detail = (f"file differs: ours {t.status} {t.bytes} B, tshark's {exported.name} "
                  f"{exported.bytes} B")
    return VerifyItem("tftp_transfer", t.number, "file", ours, theirs, UNEXPLAINED, None,
                      detail)


def _normal_host(host: str) -> str:
    return _endpoint(host, "0").rpartition(":")[0].strip("[]")
