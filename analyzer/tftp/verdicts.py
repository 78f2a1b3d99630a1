"""TFTP verdicts: judging an OACK, and turning what a transfer counted into findings.

Sans-IO and independent of how the packets were found: the passive tracker calls these,
and so can an active checker that watches its own transfers. `oack_findings` judges an
OACK against its request as it arrives; `judge` runs once, when a transfer is settled,
and appends its findings in a stable order: the counted ones (in the order each first
happened), then rollover, capture gaps, tsize, resend timing and strays.
"""

from __future__ import annotations

from analyzer.tftp.codec import (
    RRQ,
    WRQ,
    Options,
    Request,
    option_in_range,
    option_int,
    options_dict,
)
from analyzer.tftp.findings import (
    CAPTURE_GAP,
    FILE_CUT,
    OACK_REPEATED,
    OACK_UNREQUESTED,
    OPTION_CHANGED,
    OPTION_OUT_OF_RANGE,
    OPTION_RAISED,
    RESEND_TIMING,
    RESEND_TOO_EARLY,
    RESEND_TOO_LATE,
    ROLLOVER,
    ROLLOVER_UNKNOWN,
    SORCERERS_APPRENTICE,
    STRAY_TID,
    TSIZE_MISMATCH,
    Finding,
)
from analyzer.tftp.transfer import MAX_FILL_BYTES, TftpTransfer


def oack_findings(request: Request, oack: Options, frame: int) -> list[Finding]:
    """What is wrong with `oack` as the answer to `request` (RFC 2347/2348/2349/7440)."""
    findings = []
    requested = options_dict(request.options)
    acked = options_dict(oack)
    seen: dict[str, int] = {}
    for name, _ in oack:
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
    for name, times in seen.items():
        if times > 1:
            findings.append(OACK_REPEATED.at(frame, name=name, times=times, value=acked[name]))
    unrequested = [name for name in acked if name not in requested]
    if unrequested:
        findings.append(OACK_UNREQUESTED.at(
            frame, options=", ".join(f"{n}={acked[n]}" for n in unrequested)))
    for name, value in acked.items():
        if not option_in_range(name, value):
            findings.append(OPTION_OUT_OF_RANGE.at(frame, name=name, value=value))
    # Values a server may lower but not raise, or must echo.
    for name in ("blksize", "windowsize"):
        asked, got = option_int(requested.get(name)), option_int(acked.get(name))
        if asked is not None and got is not None and got > asked:
            findings.append(OPTION_RAISED.at(frame, name=name, asked=asked, got=got))
    asked, got = option_int(requested.get("timeout")), option_int(acked.get("timeout"))
    if asked is not None and got is not None and got != asked:
        findings.append(OPTION_CHANGED.at(
            frame, change=f"changes timeout from the requested {asked} to {got}",
            echoed="value"))
    if request.opcode == WRQ:
        asked, got = option_int(requested.get("tsize")), option_int(acked.get("tsize"))
        if asked is not None and got is not None and got != asked:
            findings.append(OPTION_CHANGED.at(
                frame, change=f"answers a WRQ's tsize={asked} with {got}", echoed="size"))
    return findings


def judge(transfer: TftpTransfer) -> None:
    """A settled transfer's findings from what it counted and recorded."""
    for kind, (frame, times, params) in transfer.counted.items():
        if kind is SORCERERS_APPRENTICE and times < 2:
            continue  # once could be two timers firing together; a pattern is the bug
        if "again" in kind.fields:
            params = {**params, "again": "" if times == 1 else f" ({times} times)"}
        transfer.findings.append(kind.at(frame, **params))
    if transfer.wrap_unknown:
        hole = next((g for g in transfer.gaps if g.last is not None and g.last >= 65536),
                    None)
        transfer.note(ROLLOVER_UNKNOWN, transfer.rollover_frame,
                      offset="?" if hole is None else hole.offset, size=transfer.blksize)
    elif transfer.rollover is not None:
        to = transfer.rollover
        transfer.note(ROLLOVER, transfer.rollover_frame, to=to,
                      remark=" (most implementations wrap to 0)" if to == 1 else "")
    if transfer.gaps and transfer.gaps[0].length is not None:
        lost = sum(1 for g in transfer.gaps if g.length is not None)
        transfer.note(CAPTURE_GAP, None, ranges=lost)
    cut = transfer.cut
    if cut is not None:
        transfer.note(FILE_CUT, None, first=cut.first, last=cut.last, length=cut.length,
                      limit=f"{MAX_FILL_BYTES >> 20} MiB", offset=cut.offset)
    _judge_tsize(transfer)
    _judge_resend(transfer)
    for stray in transfer.strays:
        answer = transfer.stray_answers.get(stray.frame)
        transfer.note(STRAY_TID, stray.frame, what=stray.what, sender=stray.sender,
                      side=stray.side, answer="no answer (RFC 1350 asks for ERROR 5)"
                      if answer is None else f"answered with {answer}")


def _judge_tsize(transfer: TftpTransfer) -> None:
    tsize = transfer.tsize
    if transfer.request.opcode == WRQ:
        tsize = option_int(transfer.options.get("tsize")) if tsize is None else tsize
    if tsize is None or transfer.status != "complete":
        return
    if tsize in (transfer.bytes, transfer.wire_bytes):
        return
    who = "server" if transfer.request.opcode == RRQ else "client"
    transfer.note(TSIZE_MISMATCH, None, who=who, tsize=tsize, carried=transfer.wire_bytes)


def _judge_resend(transfer: TftpTransfer) -> None:
    timeout = transfer.timeout
    first = transfer.first_resend
    if timeout is None or first is None:
        return
    what, spacing, frame = first
    if transfer.windowsize <= 1 and spacing < 0.5 * timeout:
        kind = RESEND_TOO_EARLY
    elif spacing > 2 * timeout + 1:
        kind = RESEND_TOO_LATE
    else:
        kind = RESEND_TIMING
    transfer.note(kind, frame, what=what, spacing=spacing, timeout=timeout)
