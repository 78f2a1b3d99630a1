"""TFTP findings as data: every finding code, the rule it judges, and its sentence.

This table is the only place a finding can come from: `SAME_PORT_REPLY.at(frame,
port=69)` makes one. A misspelt kind is a NameError at import (and a mypy error), never a
finding that silently goes missing; `tests/tftp/test_findings.py` checks that every
template formats with exactly the parameters its callers pass, and that docs/tftp.md
lists exactly these codes, RFCs and severities.

Severity: `fail` breaks a rule the RFC states as a requirement (MUST, or RFC 1350's
plain "is"), `warn` a recommendation (SHOULD) or a sound practice, `info` is a fact worth
knowing (a capture property, a timing, a choice the RFC leaves open). `rfc` names the rule
("RFC 1350 section 4"); it is empty for facts about the capture rather than the peers.
"""

from __future__ import annotations

from string import Formatter
from typing import Final, NamedTuple

FAIL: Final = "fail"
WARN: Final = "warn"
INFO: Final = "info"


class Finding(NamedTuple):
    """One verdict: a short code, a sentence, the frame that shows it; then the rule."""

    code: str
    message: str
    frame: int | None
    severity: str
    rfc: str


class FindingKind:
    """One finding code: its rule, severity and message template (`str.format` fields)."""

    def __init__(self, code: str, rfc: str, severity: str, template: str) -> None:
        self.code = code
        self.rfc = rfc
        self.severity = severity
        self.template = template
        self.fields: frozenset[str] = frozenset(
            name for _, name, _, _ in Formatter().parse(template) if name)

    def at(self, frame: int | None, **params: object) -> Finding:
        """This finding, shown by `frame`, its template filled with `params`."""
        return Finding(self.code, self.template.format(**params), frame, self.severity,
                       self.rfc)

    def __repr__(self) -> str:
        return f"FindingKind({self.code!r})"


# The resend findings share one sentence (they differ in the verdict on the spacing).
_RESEND: Final = ("the first resend ({what}) came {spacing:.3f} s after the original; "
                  "negotiated timeout {timeout} s")

# -- matching: transfer IDs and endpoints ---------------------------------------------------
SAME_PORT_REPLY: Final = FindingKind(
    "same-port-reply", "RFC 1350 section 4", FAIL,
    "the server answered from its listening port {port} instead of a new transfer ID "
    "(RFC 1350 section 4)")
SERVER_ADDRESS_CHANGED: Final = FindingKind(
    "server-address-changed", "RFC 1350 section 4", WARN,
    "the request went to {requested} but the server answered from {answered}; the client "
    "kept that endpoint (a wildcard-bound server)")
STRAY_TID: Final = FindingKind(
    "stray-tid", "RFC 1350 section 4", WARN,
    "{what} from {sender} reached the {side}'s transfer ID; {answer}")
ICMP_UNREACHABLE: Final = FindingKind(
    "icmp-unreachable", "RFC 1350 section 7", INFO, "ICMP {what} for {situation}{again}")
DUPLICATE_REQUEST: Final = FindingKind(
    "duplicate-request", "RFC 1350 section 4", INFO,
    "the client sent its request again{again}")

# -- options (RFC 2347 and the option RFCs) --------------------------------------------------
OACK_REPEATED: Final = FindingKind(
    "oack-repeated", "RFC 2347 (Negotiation Protocol)", WARN,
    "the OACK names {name} {times} times; the last value ({value}) is in effect")
OACK_UNREQUESTED: Final = FindingKind(
    "oack-unrequested", "RFC 2347 (Negotiation Protocol)", FAIL,
    "the OACK acknowledges options the client never requested: {options} (RFC 2347 allows "
    "only requested options)")
OPTION_OUT_OF_RANGE: Final = FindingKind(
    "option-out-of-range", "RFC 2348, RFC 2349, RFC 7440 section 3", FAIL,
    "the OACK accepts {name}={value!r}, outside the range its RFC allows")
OPTION_RAISED: Final = FindingKind(
    "option-raised", "RFC 2348, RFC 7440 section 3", FAIL,
    "the OACK raises {name} from the requested {asked} to {got}; a server may only choose a "
    "smaller value")
OPTION_CHANGED: Final = FindingKind(
    "option-changed", "RFC 2349", FAIL,
    "the OACK {change}; RFC 2349 has the server echo the client's {echoed}")
OPTIONS_IGNORED: Final = FindingKind(
    "options-ignored", "RFC 2347 (Negotiation Protocol)", INFO,
    "the client requested options but the transfer went on without an OACK: defaults are in "
    "effect (blksize 512, windowsize 1)")
LATE_OACK: Final = FindingKind(
    "late-oack", "RFC 2347 (Negotiation Protocol)", FAIL,
    "an OACK arrived after DATA had started")
DATA_BEFORE_ACK0: Final = FindingKind(
    "data-before-ack0", "RFC 2347 (Negotiation Protocol)", FAIL,
    "the server sent DATA before the client acknowledged its OACK with ACK 0 (RFC 2347)")
TSIZE_MISMATCH: Final = FindingKind(
    "tsize-mismatch", "RFC 2349 (Transfer Size Option)", WARN,
    "the {who} announced tsize={tsize} but the transfer carried {carried} bytes")
RESEND_TIMING: Final = FindingKind(
    "resend-timing", "RFC 2349 (Timeout Interval Option)", INFO, _RESEND + ": consistent")
RESEND_TOO_EARLY: Final = FindingKind(
    "resend-too-early", "RFC 2349 (Timeout Interval Option)", WARN, _RESEND)
RESEND_TOO_LATE: Final = FindingKind(
    "resend-too-late", "RFC 2349 (Timeout Interval Option)", WARN, _RESEND)

# -- blocks and the file ---------------------------------------------------------------------
BLKSIZE_EXCEEDED: Final = FindingKind(
    "blksize-exceeded", "RFC 2348", FAIL,
    "DATA {block} carries {length} bytes, more than the blksize {blksize} in effect{again}")
SHORT_BLOCK: Final = FindingKind(
    "short-block", "RFC 1350 section 6", FAIL,
    "DATA {block} ({size} bytes) was shorter than the blksize {blksize} in effect, yet more "
    "blocks followed: the sender does not use the negotiated block size")
DATA_AFTER_FINAL: Final = FindingKind(
    "data-after-final", "RFC 1350 section 6", FAIL,
    "DATA {block} follows the final block{again}")
CONTENT_CHANGED: Final = FindingKind(
    "content-changed", "RFC 1350 section 2", FAIL,
    "a retransmission of DATA {block} carries different bytes than the first copy{again}")
SORCERERS_APPRENTICE: Final = FindingKind(
    "sorcerers-apprentice", "RFC 1123 section 4.2.3.1", FAIL,
    "DATA {block} was sent again in answer to a duplicate ACK {acked}, and so on{again}: "
    "the Sorcerer's Apprentice bug (RFC 1123 4.2.3.1)")
ROLLOVER: Final = FindingKind(
    "rollover", "RFC 1350 section 5", INFO,
    "block numbers wrapped from 65535 to {to}{remark}")
ROLLOVER_UNKNOWN: Final = FindingKind(
    "rollover-unknown", "RFC 1350 section 5", WARN,
    "block numbers wrapped after 65535, but the capture missed the blocks around the wrap "
    "and nothing tells whether they wrapped to 0 or to 1: taken as 0 (most "
    "implementations); had they wrapped to 1, the hole at byte {offset} is one block "
    "({size} bytes) too long and the file as much too long")
ERROR_AFTER_COMPLETE: Final = FindingKind(
    "error-after-complete", "RFC 1350 section 6", WARN,
    "the {sender} sent ERROR {code} ({name}) after the file was complete")
MALFORMED: Final = FindingKind(
    "malformed", "RFC 1350 section 5", FAIL, "malformed packet: {reason}{again}")
UNEXPECTED_PACKET: Final = FindingKind(
    "unexpected-packet", "RFC 1350 section 2", WARN, "unexpected packet: {what}{again}")

# -- the capture, not the peers --------------------------------------------------------------
CAPTURE_GAP: Final = FindingKind(
    "capture-gap", "", INFO,
    "{ranges} range(s) of blocks the capture missed but the transfer went past: "
    "zero-filled in the file")
FILE_CUT: Final = FindingKind(
    "file-cut", "", WARN,
    "blocks {first}-{last} are missing ({length} bytes): more zeros than the {limit} a "
    "file may get for its holes, so the file ends at byte {offset}, where they start")
TRUNCATED: Final = FindingKind(
    "truncated", "", INFO,
    "the capture cut DATA {block} short (snaplen); the missing bytes are zeros{again}")

# Every kind, in the order docs/tftp.md lists them.
KINDS: Final = (
    TSIZE_MISMATCH, BLKSIZE_EXCEEDED, SHORT_BLOCK, RESEND_TIMING, RESEND_TOO_EARLY,
    RESEND_TOO_LATE, SORCERERS_APPRENTICE, DATA_BEFORE_ACK0, OACK_UNREQUESTED, OACK_REPEATED,
    OPTION_OUT_OF_RANGE, OPTION_RAISED, OPTION_CHANGED, OPTIONS_IGNORED, LATE_OACK, STRAY_TID,
    ICMP_UNREACHABLE, ROLLOVER, ROLLOVER_UNKNOWN, CAPTURE_GAP, FILE_CUT, TRUNCATED, MALFORMED,
    UNEXPECTED_PACKET, DUPLICATE_REQUEST, DATA_AFTER_FINAL, ERROR_AFTER_COMPLETE, SAME_PORT_REPLY,
    SERVER_ADDRESS_CHANGED, CONTENT_CHANGED,
)
BY_CODE: Final = {kind.code: kind for kind in KINDS}
