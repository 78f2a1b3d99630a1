"""The server checks as a table: id, RFC section, needs, purpose; the exchange each one
drives and its verdict function.

Every check has two halves. `drive(exchange)` makes the exchange through the runner's
toolbox (`Exchange`: whole transfers through the sans-IO client and its misbehaviour
hooks, or raw datagrams for requests no client would send) and returns the `Probe`s it
made. After the session, `judge(evidence)` reads what the capture shows about those
probes: the TFTP tracker's transfers (status, bytes, digest, options, findings, frames)
and the captured datagrams of the probe's local ports (`Seen`). The client's own belief
(`Probe.outcome`) only helps choose later exchanges (the file's size), never a verdict.

Verdicts: `pass`, `fail` (a MUST broken), `warn` (a SHOULD broken), `unsupported` (an
optional feature absent), `skipped` (needs what was not given, or the server is dead).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, NamedTuple, Protocol

from analyzer.tftp import codec
from analyzer.tftp.client import ClientOutcome, Misbehaviour
from analyzer.tftp.findings import (
    BLKSIZE_EXCEEDED,
    CAPTURE_GAP,
    SAME_PORT_REPLY,
    SHORT_BLOCK,
    SORCERERS_APPRENTICE,
    TSIZE_MISMATCH,
)
from analyzer.tftp.transfer import TftpTransfer

PASS: Final = "pass"
FAIL: Final = "fail"
WARN: Final = "warn"
UNSUPPORTED: Final = "unsupported"
SKIPPED: Final = "skipped"
VERDICTS: Final = (PASS, WARN, FAIL, UNSUPPORTED, SKIPPED)

# What a check needs beyond the server: a readable file, a big one, permission to write.
NEEDS_FILE: Final = "file"
NEEDS_BIG_FILE: Final = "big-file"
NEEDS_WRITABLE: Final = "writable"

CHECKER_MARK: Final = "analyzer-check"  # in every name the checker invents
BLKSIZES_VALID: Final = (8, 512, 1428, 65464)
BLKSIZES_INVALID: Final = (7, 0, 65465)
CONCURRENT: Final = 8
# Asked beside the option under test: some servers (tftpy) put blksize in every OACK, and
# an OACK option never asked ends the transfer; unknown-option judges that, not these.
PLAIN_BLKSIZE: Final = (("blksize", "512"),)
TIMEOUT_OPTION: Final = 2  # seconds asked by timeout-option
ROLLOVER_BUDGET: Final = 600.0  # 65,536 lock-step blocks and more, on a slow link too
# A resend sooner than this after the copy before answers a packet, it is not a timer's
# (`retransmit` warns of timers this fast).
PROMPT_RESEND: Final = 0.2


class Seen(NamedTuple):
    """One captured UDP datagram of a probe: frame number in the evidence file, capture
    time, endpoints as text, and the UDP payload."""

    frame: int
    ts: float
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes

    def message(self) -> codec.Message | None:
        try:
            return codec.decode(self.payload)
        except codec.MalformedPacket:
            return None


@dataclass
class Probe:
    """One exchange of a check: the local ports it used (the capture is matched by them),
    what it sent and, for a transfer, the client's outcome (for choosing later steps)."""

    what: str
    ports: list[int]
    outcome: ClientOutcome | None = None
    stray_port: int | None = None
    answered: bool = False  # anything came back (a dead server answers nothing)


class Verdict(NamedTuple):
    verdict: str
    detail: str
    frames: tuple[int, ...] = ()


class Exchange(Protocol):
    """The runner's toolbox handed to each check's `drive`."""

    file: str | None
    big_file: str | None
    writable: bool
    file_size: int | None  # bytes of --file as the first read saw them
    token: str  # unique to this run (time, process, random): in every invented name

    def transfer(self, what: str, filename: str, *, put: bool = False,
                 data: bytes = b"", mode: str = "octet",
                 options: codec.Options = (),
                 misbehaviour: Misbehaviour | None = None,
                 timeout: float | None = None) -> Probe: ...

    def transfers(self, what: str, count: int, filename: str) -> list[Probe]: ...

    def raw(self, what: str, payload: bytes, *, reply: str = "end",
            listen: float | None = None) -> Probe: ...


@dataclass
class Evidence:
    """What the capture shows about one check's probes."""

    probes: list[Probe]
    transfers: dict[int, list[TftpTransfer]]  # client port -> the tracker's transfers
    packets: dict[int, list[Seen]]  # local port -> datagrams to or from it, in order
    server: tuple[str, int]
    notes: list[str] = field(default_factory=list)

    def transfer(self, probe: Probe) -> TftpTransfer | None:
        found = [t for port in probe.ports for t in self.transfers.get(port, [])]
        return found[0] if found else None

    def seen(self, probe: Probe) -> list[Seen]:
        out = [s for port in probe.ports for s in self.packets.get(port, [])]
        if probe.stray_port is not None:
            out += self.packets.get(probe.stray_port, [])
        return sorted(out, key=lambda s: s.frame)

    def replies(self, probe: Probe) -> list[Seen]:
        """Datagrams that came to the probe's ports (the server's side)."""
        ports = {*probe.ports, probe.stray_port}
        return [s for s in self.seen(probe) if s.dst[1] in ports and s.src[1] not in ports]


Drive = Callable[[Exchange], list[Probe]]
Judge = Callable[[Evidence], Verdict]


@dataclass(frozen=True)
class Check:
    id: str
    rfc: str
    needs: tuple[str, ...]
    purpose: str
    drive: Drive
    judge: Judge
    budget: float | None = None  # seconds before the runner cancels it (None: default)


# ------------------------------------------------------------------ helpers for verdicts

def _frames(seen: Sequence[Seen], limit: int = 6) -> tuple[int, ...]:
    frames = [s.frame for s in seen]
    if len(frames) <= limit:
        return tuple(frames)
    return (*frames[:limit - 1], frames[-1])


def _transfer_frames(transfer: TftpTransfer, seen: Sequence[Seen]) -> tuple[int, ...]:
    frames = [transfer.first_frame, *[s.frame for s in seen[1:3]]]
    if seen:
        frames.append(seen[-1].frame)
    return tuple(sorted(set(frames)))


def _describe(message: codec.Message | None) -> str:
    if message is None:
        return "a malformed packet"
    if isinstance(message, codec.Error):
        return f"ERROR {message.code} ({_printable(message.message)})"
    if isinstance(message, codec.Data):
        return f"DATA {message.block} ({len(message.data)} bytes)"
    if isinstance(message, codec.Ack):
        return f"ACK {message.block}"
    if isinstance(message, codec.OAck):
        return f"OACK {codec.format_options(message.options) or '(empty)'}"
    return message.name


def _printable(text: str, limit: int = 60) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in text)
    return clean if len(clean) <= limit else clean[:limit - 3] + "..."


def _first_reply(ev: Evidence, probe: Probe) -> Seen | None:
    replies = ev.replies(probe)
    return replies[0] if replies else None


def _no_answer(what: str, probe: Probe, ev: Evidence) -> Verdict:
    sent = len(ev.seen(probe))
    return Verdict(FAIL, f"{what}: no answer from the server "
                         f"({sent} packet{'s' if sent != 1 else ''} sent)",
                   _frames(ev.seen(probe)))


def _first_answered(ev: Evidence) -> tuple[Probe, TftpTransfer] | Verdict:
    """The check's first probe and the transfer the tracker saw for it, or the verdict
    when the server never answered it."""
    probe = ev.probes[0]
    transfer = ev.transfer(probe)
    if transfer is None:
        return _no_answer(probe.what, probe, ev)
    return probe, transfer


def _data_from_server(ev: Evidence, probe: Probe) -> list[Seen]:
    return [s for s in ev.replies(probe) if isinstance(s.message(), codec.Data)]


def _has_finding(transfer: TftpTransfer, *kinds: object) -> list[int | None]:
    codes = {getattr(kind, "code", kind) for kind in kinds}
    return [f.frame for f in transfer.findings if f.code in codes]


def _outcome_text(transfer: TftpTransfer | None) -> str:
    if transfer is None:
        return "no transfer in the capture"
    if transfer.error is not None:
        return (f"ERROR {transfer.error.code} ({_printable(transfer.error.message)}) "
                f"from the {transfer.error_by}")
    if transfer.complete:
        return f"{transfer.bytes} bytes in {transfer.blocks} blocks"
    return f"{transfer.status} after {transfer.bytes} bytes"


def _complete(transfer: TftpTransfer | None) -> bool:
    return transfer is not None and transfer.complete and transfer.error is None


def _read_check(what: str, ev: Evidence, probe: Probe) -> Verdict:
    transfer = ev.transfer(probe)
    seen = ev.seen(probe)
    if transfer is None or not ev.replies(probe):
        return _no_answer(what, probe, ev)
    frames = _transfer_frames(transfer, seen)
    if _complete(transfer):
        return Verdict(PASS, f"{what}: {_outcome_text(transfer)}, "
                             f"SHA-256 {(transfer.sha256 or '')[:12]}", frames)
    return Verdict(FAIL, f"{what}: {_outcome_text(transfer)}", frames)


# ------------------------------------------------------------------ the checks

def _file(x: Exchange) -> str:
    assert x.file is not None
    return x.file


def drive_rrq_octet(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} octet", _file(x))]


def judge_rrq_octet(ev: Evidence) -> Verdict:
    return _read_check(ev.probes[0].what, ev, ev.probes[0])


def drive_rrq_netascii(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} netascii", _file(x), mode="netascii")]


def judge_rrq_netascii(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    verdict = _read_check(probe.what, ev, probe)
    if verdict.verdict != PASS:
        return verdict
    data = [s for s in _data_from_server(ev, probe)]
    wire = b"".join(bytes(m.data) for s in data if isinstance(m := s.message(), codec.Data))
    bad = [i for i, byte in enumerate(wire) if byte == 13 and wire[i + 1:i + 2] not in
           (b"\n", b"\0")]
    # A CR at the very end of the file has nothing after it: tolerated.
    bad = [i for i in bad if i != len(wire) - 1]
    if bad:
        return Verdict(FAIL, f"{probe.what}: the wire has {len(bad)} CR not followed by LF "
                             f"or NUL (first at byte {bad[0]})", verdict.frames)
    return Verdict(PASS, verdict.detail + "; every CR followed by LF or NUL", verdict.frames)


def drive_mode_case(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} mode OcTeT", _file(x), mode="OcTeT")]


def judge_mode_case(ev: Evidence) -> Verdict:
    return _read_check(ev.probes[0].what, ev, ev.probes[0])


def drive_unknown_mode(x: Exchange) -> list[Probe]:
    payload = codec.Request(codec.RRQ, _file(x), "x-analyzer-mode").encode()
    return [x.raw(f"RRQ {_file(x)} mode x-analyzer-mode", payload)]


def _refusal(ev: Evidence, probe: Probe, *, want_code: int | None,
             data_is: str = FAIL, silent_is: str = WARN) -> Verdict:
    """A request the server must refuse: an ERROR (of `want_code`) passes, DATA is
    `data_is`, silence is `silent_is`."""
    seen = ev.seen(probe)
    data = _data_from_server(ev, probe)
    if data:
        return Verdict(data_is, f"{probe.what}: the server sent "
                                f"{_describe(data[0].message())}", _frames(seen))
    first = _first_reply(ev, probe)
    if first is None:
        return Verdict(silent_is, f"{probe.what}: no answer (no ERROR)", _frames(seen))
    message = first.message()
    if isinstance(message, codec.Error):
        if want_code is None or message.code == want_code:
            return Verdict(PASS, f"{probe.what}: {_describe(message)}", _frames(seen))
        return Verdict(WARN, f"{probe.what}: {_describe(message)}, expected ERROR "
                             f"{want_code} ({codec.error_name(want_code)})", _frames(seen))
    return Verdict(data_is, f"{probe.what}: the server answered {_describe(message)}",
                   _frames(seen))


def judge_unknown_mode(ev: Evidence) -> Verdict:
    # RFC 1350 lets cooperating hosts define other modes: serving one is not a breach.
    return _refusal(ev, ev.probes[0], want_code=None, data_is=WARN)


def drive_file_not_found(x: Exchange) -> list[Probe]:
    name = f"{CHECKER_MARK}-no-such-file-{x.token}"
    return [x.transfer(f"RRQ {name} (absent)", name)]


def judge_file_not_found(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    transfer = ev.transfer(probe)
    seen = ev.seen(probe)
    if transfer is None or not ev.replies(probe):
        return _no_answer(probe.what, probe, ev)
    if transfer.error is not None and transfer.error_by == "server":
        code = transfer.error.code
        verdict = PASS if code == codec.ERR_FILE_NOT_FOUND else WARN
        return Verdict(verdict, f"{probe.what}: {_outcome_text(transfer)}"
                       + ("" if verdict == PASS else ", expected ERROR 1"),
                       (transfer.first_frame, *( [transfer.error_frame]
                                                 if transfer.error_frame else [])))
    return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", _frames(seen))


TRAVERSAL_NAMES: Final = ("../../../../../../../../etc/passwd", "/etc/passwd")


def drive_path_traversal(x: Exchange) -> list[Probe]:
    probes = []
    names = list(TRAVERSAL_NAMES)
    if x.file is not None:
        names.insert(1, f"../{x.file}")
    for name in names:
        payload = codec.Request(codec.RRQ, name, "octet").encode()
        probes.append(x.raw(f"RRQ {name}", payload))
    return probes


def judge_path_traversal(ev: Evidence) -> Verdict:
    """Names that leave the root (deep ../, absolute) must get no DATA: fail. `../NAME`
    of the served file may land back inside a chrooted root: DATA for it is a warn."""
    frames: list[int] = []
    answers = []
    worst = PASS
    for probe in ev.probes:
        seen = ev.seen(probe)
        frames += [s.frame for s in seen[:2]]
        data = _data_from_server(ev, probe)
        first = _first_reply(ev, probe)
        if data:
            # The name as captured: one leading ../ may fall back into a chrooted root.
            request = seen[0].message() if seen else None
            name = request.filename if isinstance(request, codec.Request) else ""
            escapes = name.startswith("/") or name.count("../") != 1
            worst = FAIL if escapes else (worst if worst == FAIL else WARN)
            answers.append(f"{probe.what}: served ({_describe(data[0].message())})")
        else:
            answers.append(f"{probe.what}: "
                           f"{_describe(first.message()) if first else 'no answer'}")
    return Verdict(worst, "; ".join(answers), tuple(frames))


def drive_illegal_opcode(x: Exchange) -> list[Probe]:
    payload = struct.pack("!H", 9) + b"analyzer-check\0octet\0"
    return [x.raw("opcode 9", payload)]


def judge_illegal_opcode(ev: Evidence) -> Verdict:
    return _refusal(ev, ev.probes[0], want_code=codec.ERR_ILLEGAL_OPERATION,
                    silent_is=WARN)


def drive_malformed_request(x: Exchange) -> list[Probe]:
    name = x.file or CHECKER_MARK
    no_nul = struct.pack("!H", codec.RRQ) + name.encode("utf-8", "replace") + b"\0octet"
    empty = struct.pack("!H", codec.RRQ) + b"\0octet\0"
    return [x.raw(f"RRQ {name} without the final NUL", no_nul),
            x.raw("RRQ with an empty file name", empty)]


def judge_malformed_request(ev: Evidence) -> Verdict:
    parts = []
    verdict = PASS
    frames: list[int] = []
    for probe in ev.probes:
        # RFC 1350 defines the request's fields, not what to do with a broken one:
        # serving it is a warn, an ERROR or silence a pass.
        one = _refusal(ev, probe, want_code=None, data_is=WARN, silent_is=PASS)
        frames += one.frames
        parts.append(one.detail)
        if one.verdict != PASS:
            verdict = WARN
    return Verdict(verdict, "; ".join(parts), tuple(frames))


def _options(name: str, value: int | str) -> codec.Options:
    return ((name, str(value)),)


def drive_blksize(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} blksize={size}", _file(x),
                       options=_options("blksize", size)) for size in BLKSIZES_VALID]


def _oack_options(transfer: TftpTransfer | None) -> dict[str, str] | None:
    if transfer is None or transfer.oack is None:
        return None
    return codec.options_dict(transfer.oack)


def judge_blksize(ev: Evidence) -> Verdict:
    honoured, smaller, ignored, broken = [], [], [], []
    frames: list[int] = []
    for probe, size in zip(ev.probes, BLKSIZES_VALID, strict=True):
        transfer = ev.transfer(probe)
        if transfer is None:
            broken.append(f"{size}: no transfer")
            continue
        frames.append(transfer.first_frame)
        bad = _has_finding(transfer, BLKSIZE_EXCEEDED, SHORT_BLOCK)
        oack = _oack_options(transfer)
        if bad or not _complete(transfer):
            frames += [f for f in bad if f is not None]
            broken.append(f"{size}: {_outcome_text(transfer)}"
                          + (f", {len(bad)} block-size finding(s)" if bad else ""))
        elif oack is None or "blksize" not in oack:
            ignored.append(str(size))
        elif transfer.blksize == size:
            honoured.append(str(size))
        else:
            smaller.append(f"{size}->{transfer.blksize}")
    detail = (f"honoured {','.join(honoured) or 'none'}"
              + (f"; lowered {','.join(smaller)}" if smaller else "")
              + (f"; not acknowledged {','.join(ignored)}" if ignored else "")
              + (f"; broken {'; '.join(broken)}" if broken else ""))
    if broken:
        return Verdict(FAIL, detail, tuple(frames))
    if not honoured and not smaller:
        return Verdict(UNSUPPORTED, detail, tuple(frames))
    if smaller or ignored:
        return Verdict(WARN, detail, tuple(frames))
    return Verdict(PASS, detail, tuple(frames))


def drive_blksize_invalid(x: Exchange) -> list[Probe]:
    return [x.raw(f"RRQ {_file(x)} blksize={size}",
                  codec.Request(codec.RRQ, _file(x), "octet",
                                _options("blksize", size)).encode())
            for size in BLKSIZES_INVALID]


def judge_blksize_invalid(ev: Evidence) -> Verdict:
    parts, accepted, frames = [], [], []
    for probe, size in zip(ev.probes, BLKSIZES_INVALID, strict=True):
        first = _first_reply(ev, probe)
        frames += [s.frame for s in ev.seen(probe)[:2]]
        message = first.message() if first else None
        if isinstance(message, codec.OAck):
            got = codec.options_dict(message.options).get("blksize")
            if got is not None and codec.option_int(got) == size:
                accepted.append(str(size))
        parts.append(f"{size}: {_describe(message) if first else 'no answer'}")
    detail = "; ".join(parts)
    if accepted:
        return Verdict(FAIL, f"accepted as asked {','.join(accepted)} ({detail})",
                       tuple(frames))
    return Verdict(PASS, detail, tuple(frames))


def drive_tsize(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} tsize=0 blksize=512", _file(x),
                       options=(("tsize", "0"), *PLAIN_BLKSIZE))]


def judge_tsize(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    oack = _oack_options(transfer)
    if oack is None or "tsize" not in oack:
        return Verdict(UNSUPPORTED, f"{probe.what}: no tsize in the answer "
                                    f"({_outcome_text(transfer)})", frames)
    if not _complete(transfer):
        return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", frames)
    mismatch = _has_finding(transfer, TSIZE_MISMATCH)
    if mismatch or transfer.tsize != transfer.wire_bytes:
        return Verdict(FAIL, f"{probe.what}: OACK tsize={oack['tsize']} but "
                             f"{transfer.wire_bytes} bytes were sent", frames)
    return Verdict(PASS, f"{probe.what}: OACK tsize={oack['tsize']}, "
                         f"{transfer.wire_bytes} bytes sent", frames)


def drive_timeout_option(x: Exchange) -> list[Probe]:
    # Our own timer is longer than the one asked, so the server's resend comes first.
    return [x.transfer(f"RRQ {_file(x)} timeout={TIMEOUT_OPTION}, ACK 1 withheld", _file(x),
                       options=(("timeout", str(TIMEOUT_OPTION)), *PLAIN_BLKSIZE),
                       misbehaviour=Misbehaviour(withhold_ack=1),
                       timeout=TIMEOUT_OPTION * 3.0)]


def _copies_of_data(ev: Evidence, probe: Probe, block: int) -> list[Seen]:
    out = []
    for s in ev.replies(probe):
        message = s.message()
        if isinstance(message, codec.Data) and message.block == block:
            out.append(s)
    return out


def judge_timeout_option(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    oack = _oack_options(transfer)
    if oack is None or "timeout" not in oack:
        return Verdict(UNSUPPORTED, f"{probe.what}: timeout not acknowledged "
                                    f"({_outcome_text(transfer)})",
                       _transfer_frames(transfer, ev.seen(probe)))
    copies = _copies_of_data(ev, probe, 1)
    if len(copies) < 2:
        return Verdict(FAIL, f"{probe.what}: OACK timeout={oack['timeout']} but DATA 1 was "
                             f"never resent", _frames(copies))
    spacing = copies[1].ts - copies[0].ts
    asked = float(TIMEOUT_OPTION)
    text = (f"{probe.what}: OACK timeout={oack['timeout']}, DATA 1 resent after "
            f"{spacing:.2f} s")
    verdict = PASS if 0.75 * asked <= spacing <= 1.5 * asked + 0.25 else WARN
    return Verdict(verdict, text, _frames(copies[:2]))


def drive_windowsize(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} windowsize=4 blksize=512", _file(x),
                       options=(("windowsize", "4"), *PLAIN_BLKSIZE))]


def judge_windowsize(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    oack = _oack_options(transfer)
    if not _complete(transfer):
        return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", frames)
    if oack is None or "windowsize" not in oack:
        return Verdict(UNSUPPORTED, f"{probe.what}: windowsize not acknowledged, "
                                    f"{_outcome_text(transfer)}", frames)
    acks = [s for s in ev.seen(probe) if s.src[1] in probe.ports
            and isinstance(s.message(), codec.Ack)]
    return Verdict(PASS, f"{probe.what}: OACK windowsize={oack['windowsize']}, "
                         f"{_outcome_text(transfer)} with {len(acks)} ACKs", frames)


UNKNOWN_OPTION: Final = "x-analyzer-check"


def drive_unknown_option(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} {UNKNOWN_OPTION}=1", _file(x),
                       options=_options(UNKNOWN_OPTION, 1))]


def judge_unknown_option(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    oack = _oack_options(transfer)
    if oack is not None and UNKNOWN_OPTION in oack:
        return Verdict(FAIL, f"{probe.what}: the OACK acknowledges the unknown option",
                       frames)
    if oack:
        return Verdict(FAIL, f"{probe.what}: the OACK carries options never asked "
                             f"({codec.format_options(transfer.oack or ())})", frames)
    if not _complete(transfer):
        return Verdict(WARN, f"{probe.what}: {_outcome_text(transfer)} (RFC 2347: unknown "
                             f"options are ignored)", frames)
    return Verdict(PASS, f"{probe.what}: ignored, {_outcome_text(transfer)}", frames)


def drive_option_case(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} BlkSize=1024", _file(x),
                       options=_options("BlkSize", 1024))]


def judge_option_case(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    oack = _oack_options(transfer)
    if oack is not None and oack.get("blksize") == "1024":
        return Verdict(PASS, f"{probe.what}: OACK blksize={oack['blksize']}, "
                             f"{_outcome_text(transfer)}", frames)
    if oack is not None and "blksize" in oack:
        return Verdict(WARN, f"{probe.what}: OACK blksize={oack['blksize']}, not the 1024 "
                             f"asked: the mixed-case name was not recognised", frames)
    if not _complete(transfer):
        return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", frames)
    return Verdict(WARN, f"{probe.what}: the mixed-case name was not recognised "
                         f"({_outcome_text(transfer)})", frames)


def drive_retransmit(x: Exchange) -> list[Probe]:
    payload = codec.Request(codec.RRQ, _file(x), "octet").encode()
    return [x.raw(f"RRQ {_file(x)}, DATA 1 never acknowledged", payload, reply="silent")]


def judge_retransmit(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    copies = _copies_of_data(ev, probe, 1)
    if not copies:
        return _no_answer(probe.what, probe, ev)
    if len(copies) == 1:
        broken = [s for s in ev.replies(probe) if s.frame > copies[0].frame
                  and s.message() is None]
        if broken:
            return Verdict(FAIL, f"{probe.what}: DATA 1 was resent as a malformed "
                                 f"{len(broken[0].payload)}-byte packet "
                                 f"({broken[0].payload[:8].hex()}), {len(broken)} times",
                           _frames([copies[0], *broken]))
        return Verdict(FAIL, f"{probe.what}: DATA 1 was never resent", _frames(copies))
    gaps = [b.ts - a.ts for a, b in zip(copies, copies[1:], strict=False)]
    spacing = ", ".join(f"{g:.2f}" for g in gaps[:6]) + (" ..." if len(gaps) > 6 else "")
    ours = [s for s in ev.seen(probe) if s.src[1] in probe.ports
            and isinstance(s.message(), codec.Error)]
    errors = [s for s in ev.replies(probe) if isinstance(s.message(), codec.Error)]
    if errors:
        end = f"gave up with {_describe(errors[0].message())}"
    elif ours and ours[-1].ts - copies[-1].ts >= 2 * max(gaps):
        end = f"then silent for {ours[-1].ts - copies[-1].ts:.1f} s (gave up)"
    else:
        end = "still resending when the checker ended the transfer"
    backoff = "backing off" if gaps[-1] > gaps[0] * 1.5 else "fixed spacing"
    text = (f"{probe.what}: DATA 1 sent {len(copies)} times, spacing {spacing} s "
            f"({backoff}), {end}")
    frames = (*_frames(copies), *(s.frame for s in (errors or ours)[:1]))
    if min(gaps) < PROMPT_RESEND:
        return Verdict(WARN, text + f" (resends faster than {PROMPT_RESEND} s)", frames)
    return Verdict(PASS, text, frames)


def drive_sorcerers_apprentice(x: Exchange) -> list[Probe]:
    size = x.file_size
    options: codec.Options = ()
    if size is not None and size < 4 * 512:
        options = _options("blksize", 8)  # enough blocks to see the cascade
    return [x.transfer(f"RRQ {_file(x)}, ACK 1 sent twice", _file(x), options=options,
                       misbehaviour=Misbehaviour(repeat_ack=1))]


def judge_sorcerers_apprentice(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    bad = _has_finding(transfer, SORCERERS_APPRENTICE)
    dup2 = _copies_of_data(ev, probe, 2)
    # A copy of DATA 2 right after the one before answers our second ACK 1; one a timeout
    # later is the server's timer (our ACK 2 was late or lost), no bug.
    answers = [b for a, b in zip(dup2, dup2[1:], strict=False)
               if b.ts - a.ts < PROMPT_RESEND]
    if answers:
        return Verdict(FAIL, f"{probe.what}: DATA 2 was sent {len(dup2)} times, "
                             f"{len(answers)} right after the copy before: in answer to "
                             f"the duplicate ACK 1 (the Sorcerer's Apprentice bug)",
                       _frames(dup2))
    if bad:
        return Verdict(FAIL, f"{probe.what}: duplicate ACKs were answered with the next "
                             f"DATA again (the Sorcerer's Apprentice bug)",
                       tuple(f for f in bad if f is not None))
    if not _complete(transfer):
        return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", frames)
    timer = f" (DATA 2 resent {len(dup2) - 1} times, each a timeout later)" \
        if len(dup2) > 1 else ""
    return Verdict(PASS, f"{probe.what}: no DATA sent again for the duplicate ACK, "
                         f"{_outcome_text(transfer)}{timer}", frames)


def drive_wrong_tid(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)}, ACK 1 also sent from a second port", _file(x),
                       misbehaviour=Misbehaviour(stray_ack=1))]


def judge_wrong_tid(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    transfer = ev.transfer(probe)
    if transfer is None or probe.stray_port is None:
        return _no_answer(probe.what, probe, ev)
    to_stray = [s for s in ev.packets.get(probe.stray_port, [])
                if s.dst[1] == probe.stray_port]
    errors = [s for s in to_stray if isinstance(m := s.message(), codec.Error)
              and m.code == codec.ERR_UNKNOWN_TID]
    frames = (*_transfer_frames(transfer, ev.seen(probe)), *_frames(to_stray))
    if not _complete(transfer):
        return Verdict(FAIL, f"{probe.what}: the transfer did not go on: "
                             f"{_outcome_text(transfer)}", frames)
    if errors:
        return Verdict(PASS, f"{probe.what}: ERROR 5 to the stray port, the transfer went "
                             f"on ({_outcome_text(transfer)})", frames)
    answer = _describe(to_stray[0].message()) if to_stray else "nothing"
    return Verdict(WARN, f"{probe.what}: the stray port got {answer}, not ERROR 5; the "
                         f"transfer went on", frames)


def drive_new_tid(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)} (first)", _file(x)),
            x.transfer(f"RRQ {_file(x)} (second)", _file(x))]


def judge_new_tid(ev: Evidence) -> Verdict:
    ports, frames = [], []
    for probe in ev.probes:
        transfer = ev.transfer(probe)
        if transfer is None or transfer.server_port is None:
            return _no_answer(probe.what, probe, ev)
        ports.append(transfer.server_port)
        same = _has_finding(transfer, SAME_PORT_REPLY)
        first = ev.replies(probe)
        frames += [transfer.first_frame, *(s.frame for s in first[:1])]
        if same or transfer.server_port == ev.server[1]:
            return Verdict(FAIL, f"{probe.what}: the server answered from its listening "
                                 f"port {transfer.server_port}", tuple(frames))
    if len(set(ports)) < len(ports):
        return Verdict(WARN, f"two transfers were served from the same port {ports[0]}",
                       tuple(frames))
    return Verdict(PASS, f"two RRQs answered from ports {' and '.join(map(str, ports))}",
                   tuple(frames))


def drive_reply_address(x: Exchange) -> list[Probe]:
    return [x.transfer(f"RRQ {_file(x)}", _file(x))]


def judge_reply_address(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    first = _first_reply(ev, probe)
    if first is None:
        return _no_answer(probe.what, probe, ev)
    frames = (ev.seen(probe)[0].frame, first.frame)
    if first.src[0] != ev.server[0]:
        return Verdict(FAIL, f"{probe.what} sent to {ev.server[0]}, answered from "
                             f"{first.src[0]}", frames)
    return Verdict(PASS, f"{probe.what} sent to {ev.server[0]}, answered from the same "
                         f"address", frames)


def final_blksize(size: int) -> int | None:
    """A block size that divides `size` (None: 512 does already, no option needed)."""
    if size % 512 == 0:
        return None
    for blksize in range(min(size, 1428), 7, -1):
        if size % blksize == 0:
            return blksize
    return size if 8 <= size <= 65464 else None


def drive_final_empty_block(x: Exchange) -> list[Probe]:
    size = x.file_size
    if size is None or size == 0:
        return []
    blksize = final_blksize(size)
    options = _options("blksize", blksize) if blksize is not None else ()
    return [x.transfer(f"RRQ {_file(x)} ({size} bytes) blksize={blksize or 512}", _file(x),
                       options=options)]


def judge_final_empty_block(ev: Evidence) -> Verdict:
    if not ev.probes:
        return Verdict(SKIPPED, "the file's size is not known (or is 0)")
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    data = _data_from_server(ev, probe)
    frames = _transfer_frames(transfer, ev.seen(probe))
    if transfer.bytes % transfer.blksize != 0 and transfer.bytes:
        return Verdict(SKIPPED, f"{probe.what}: the server used blksize {transfer.blksize}, "
                                f"which does not divide {transfer.bytes}", frames)
    last = data[-1].message() if data else None
    if _complete(transfer) and isinstance(last, codec.Data) and len(last.data) == 0:
        return Verdict(PASS, f"{probe.what}: ended with an empty DATA {last.block}",
                       (*frames, data[-1].frame))
    return Verdict(FAIL, f"{probe.what}: no empty final block ({_outcome_text(transfer)})",
                   frames)


def drive_rollover(x: Exchange) -> list[Probe]:
    assert x.big_file is not None
    return [x.transfer(f"RRQ {x.big_file} octet", x.big_file, timeout=2.0)]


def judge_rollover(ev: Evidence) -> Verdict:
    answered = _first_answered(ev)
    if isinstance(answered, Verdict):
        return answered
    probe, transfer = answered
    frames = _transfer_frames(transfer, ev.seen(probe))
    if transfer.rollover_frame is not None:
        frames = (*frames, transfer.rollover_frame)
    gaps = _has_finding(transfer, CAPTURE_GAP)
    if gaps and not _complete(transfer):
        return Verdict(SKIPPED, f"{probe.what}: the capture could not keep up (blocks "
                                f"missing from the evidence): no verdict", frames)
    if transfer.blocks <= 65535 and _complete(transfer):
        return Verdict(SKIPPED, f"{probe.what}: only {transfer.blocks} blocks; the file "
                                f"must have more than 65,535", frames)
    if _complete(transfer):
        return Verdict(PASS, f"{probe.what}: {_outcome_text(transfer)}, block numbers "
                             f"wrapped 65535 -> {transfer.rollover}", frames)
    if transfer.blocks >= 65535:
        return Verdict(UNSUPPORTED, f"{probe.what}: stopped at the wrap: "
                                    f"{_outcome_text(transfer)}", frames)
    return Verdict(FAIL, f"{probe.what}: {_outcome_text(transfer)}", frames)


def drive_error_on_oack(x: Exchange) -> list[Probe]:
    payload = codec.Request(codec.RRQ, _file(x), "octet",
                            (("blksize", "1024"), ("tsize", "0"))).encode()
    return [x.raw(f"RRQ {_file(x)} blksize=1024 tsize=0, OACK answered with ERROR 8",
                  payload, reply="refuse-oack")]


def judge_error_on_oack(ev: Evidence) -> Verdict:
    probe = ev.probes[0]
    replies = ev.replies(probe)
    if not replies:
        return _no_answer(probe.what, probe, ev)
    first = replies[0].message()
    if not isinstance(first, codec.OAck):
        return Verdict(UNSUPPORTED, f"{probe.what}: no OACK ({_describe(first)})",
                       _frames(ev.seen(probe)))
    # Our ERROR 8, and the OACKs that came after it: the first of those may have crossed
    # it (a retransmission the server sent before reading it: on a loaded machine our
    # answer can take longer than its timeout), a second may not.
    refusal = next((s for s in ev.seen(probe) if s not in replies and
                    isinstance(s.message(), codec.Error)), None)
    later = [s for s in replies[1:] if isinstance(s.message(), codec.Data) or
             isinstance(s.message(), codec.OAck) and refusal is None]
    if refusal is not None:
        oacks_after = [s for s in replies if s.ts >= refusal.ts and
                       isinstance(s.message(), codec.OAck)]
        later += oacks_after[1:]
        later.sort(key=lambda s: s.frame)
    if later:
        return Verdict(FAIL, f"{probe.what}: the server went on with "
                             f"{_describe(later[0].message())}", _frames(ev.seen(probe)))
    crossed = "" if refusal is None or len(replies) == 1 else \
        f" (but {len(replies) - 1} retransmitted OACK: before the ERROR, or crossing it)"
    return Verdict(PASS, f"{probe.what}: nothing more came{crossed}", _frames(ev.seen(probe)))


def drive_concurrent(x: Exchange) -> list[Probe]:
    return x.transfers(f"{CONCURRENT} RRQ {_file(x)} at once", CONCURRENT, _file(x))


def judge_concurrent(ev: Evidence) -> Verdict:
    transfers = [ev.transfer(p) for p in ev.probes]
    done = [t for t in transfers if _complete(t)]
    digests = {t.sha256 for t in done if t is not None}
    frames = tuple(t.first_frame for t in transfers if t is not None)
    what = ev.probes[0].what if ev.probes else "concurrent"
    if len(done) == len(ev.probes) and len(digests) == 1:
        return Verdict(PASS, f"{what}: all {len(done)} complete and identical", frames)
    return Verdict(FAIL, f"{what}: {len(done)} of {len(ev.probes)} complete, "
                         f"{len(digests)} distinct contents", frames)


def upload_data(size: int = 3000) -> bytes:
    """The checker's upload: recognisable, not a multiple of 512."""
    line = b"written by analyzer tftp check; safe to delete\n"
    return (line * (size // len(line) + 1))[:size]


def drive_wrq(x: Exchange) -> list[Probe]:
    name = f"{CHECKER_MARK}-upload-{x.token}.txt"
    data = upload_data()
    put = x.transfer(f"WRQ {name} ({len(data)} bytes)", name, put=True, data=data)
    get = x.transfer(f"RRQ {name} (read back)", name)
    return [put, get]


def judge_wrq(ev: Evidence) -> Verdict:
    put, get = ev.probes
    sent, read = ev.transfer(put), ev.transfer(get)
    frames = tuple(t.first_frame for t in (sent, read) if t is not None)
    if sent is None:
        return _no_answer(put.what, put, ev)
    if sent.error is not None and sent.error_by == "server" and sent.blocks == 0:
        return Verdict(UNSUPPORTED, f"{put.what}: refused with {_outcome_text(sent)}",
                       frames)
    if not _complete(sent):
        return Verdict(FAIL, f"{put.what}: {_outcome_text(sent)}", frames)
    if not _complete(read):
        return Verdict(FAIL, f"{get.what}: {_outcome_text(read)}", frames)
    assert read is not None
    if read.sha256 != sent.sha256:
        return Verdict(FAIL, f"{put.what}, then {get.what}: the contents differ", frames)
    return Verdict(PASS, f"{put.what}, then {get.what}: identical "
                         f"({(sent.sha256 or '')[:12]})", frames)


def _c(id_: str, rfc: str, needs: tuple[str, ...], purpose: str, drive: Drive,
       judge: Judge, budget: float | None = None) -> Check:
    return Check(id_, rfc, needs, purpose, drive, judge, budget)


F = (NEEDS_FILE,)
CHECKS: Final = (
    _c("rrq-octet", "RFC 1350 section 2", F, "read the file in octet mode",
       drive_rrq_octet, judge_rrq_octet),
    _c("rrq-netascii", "RFC 1350 section 2", F,
       "read in netascii: every CR on the wire followed by LF or NUL",
       drive_rrq_netascii, judge_rrq_netascii),
    _c("mode-case", "RFC 1350 section 5", F, "mode names in any case (OcTeT)",
       drive_mode_case, judge_mode_case),
    _c("unknown-mode", "RFC 1350 section 5", F, "an unknown mode is refused with an ERROR",
       drive_unknown_mode, judge_unknown_mode),
    _c("file-not-found", "RFC 1350 section 7", (), "a missing file gets ERROR 1",
       drive_file_not_found, judge_file_not_found),
    _c("path-traversal", "RFC 1350 section 1", (),
       "../ and absolute names refused, not one DATA byte", drive_path_traversal,
       judge_path_traversal),
    _c("illegal-opcode", "RFC 1350 section 5", (), "an unknown opcode gets ERROR 4",
       drive_illegal_opcode, judge_illegal_opcode),
    _c("malformed-request", "RFC 1350 section 5", (),
       "requests without the final NUL or with an empty name are refused",
       drive_malformed_request, judge_malformed_request),
    _c("blksize", "RFC 2348", F, "blksize 8, 512, 1428 and 65464 honoured",
       drive_blksize, judge_blksize),
    _c("blksize-invalid", "RFC 2348", F, "blksize 7, 0 and 65465 never accepted as asked",
       drive_blksize_invalid, judge_blksize_invalid),
    _c("tsize", "RFC 2349", F, "tsize in the OACK equal to the bytes sent",
       drive_tsize, judge_tsize),
    _c("timeout-option", "RFC 2349", F, "the timeout option sets the resend spacing",
       drive_timeout_option, judge_timeout_option),
    _c("windowsize", "RFC 7440", F, "windowsize 4 acknowledged and used",
       drive_windowsize, judge_windowsize),
    _c("unknown-option", "RFC 2347", F, "an unknown option is ignored",
       drive_unknown_option, judge_unknown_option),
    _c("option-case", "RFC 2347", F, "option names in any case (BlkSize)",
       drive_option_case, judge_option_case),
    _c("retransmit", "RFC 1350 section 2", F,
       "DATA resent while its ACK is withheld: spacing, backoff, give-up",
       drive_retransmit, judge_retransmit),
    _c("sorcerers-apprentice", "RFC 1123 section 4.2.3.1", F,
       "a duplicated ACK does not make every later DATA go twice",
       drive_sorcerers_apprentice, judge_sorcerers_apprentice),
    _c("wrong-tid", "RFC 1350 section 4", F,
       "a packet from a wrong TID gets ERROR 5 and the transfer goes on",
       drive_wrong_tid, judge_wrong_tid),
    _c("new-tid", "RFC 1350 section 4", F, "each transfer answered from a new port",
       drive_new_tid, judge_new_tid),
    _c("reply-address", "RFC 1350 section 4", F,
       "answers come from the address the request went to", drive_reply_address,
       judge_reply_address),
    _c("final-empty-block", "RFC 1350 section 6", F,
       "a size that is a multiple of blksize ends with an empty DATA",
       drive_final_empty_block, judge_final_empty_block),
    _c("rollover", "RFC 1350 section 5", (NEEDS_BIG_FILE,),
       "block numbers wrap past 65535", drive_rollover, judge_rollover,
       budget=ROLLOVER_BUDGET),
    _c("error-on-oack", "RFC 2347", F, "ERROR 8 in answer to the OACK ends the transfer",
       drive_error_on_oack, judge_error_on_oack),
    _c("concurrent", "RFC 1350 section 4", F,
       f"{CONCURRENT} simultaneous reads of the file, all identical",
       drive_concurrent, judge_concurrent),
    _c("wrq", "RFC 1350 section 2", (NEEDS_WRITABLE,),
       "an upload (unique name) read back identical", drive_wrq, judge_wrq),
)
BY_ID: Final = {check.id: check for check in CHECKS}
