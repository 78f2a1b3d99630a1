"""Text from the network, made safe for a terminal: bytes decoded in the user's encoding,
and every control character (ESC, BEL, CR, DEL, C1 controls, ...) shown escaped, never
written raw: a peer must not be able to clear the screen, retitle the window or hide
text (escape-sequence injection). Rich markup in such text is never interpreted either:
views wrap it in `rich.text.Text`, not markup strings."""

from __future__ import annotations

import codecs

_SHOWN_AS: dict[str, str] = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def check_encoding(name: str) -> str:
    """The codec's canonical name; LookupError (for a one-line error) when unknown."""
    return codecs.lookup(name).name


def escape(text: str, keep_newlines: bool = False) -> str:
    """`text` with every non-printable character escaped (\\n, \\t, \\x1b, \\u2028, ...);
    with `keep_newlines`, line feeds and tabs stay as they are (for multi-line replies)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or (keep_newlines and ch in "\n\t"):
            out.append(ch)
        elif ch in _SHOWN_AS:
            out.append(_SHOWN_AS[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def payload_text(data: bytes, encoding: str = "utf-8", keep_newlines: bool = False) -> str:
    """Bytes from the wire as printable text: decoded with `encoding`, undecodable bytes
    as \\xNN, control characters escaped."""
    return escape(data.decode(encoding, errors="backslashreplace"), keep_newlines)
