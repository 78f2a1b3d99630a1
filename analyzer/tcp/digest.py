"""The SHA-256 of each stream direction, and saving its running state while a stream is
parked (tracker.py).

`new_sha256()` makes one; `save(hasher)` is its state as bytes, or None when it cannot be
saved, and `resume(state)` makes the hasher again. The compiled build's `_sha256.c`
(OpenSSL's SHA-256 over a plain struct: 112 bytes of state, as fast as hashlib) can save;
hashlib's OpenSSL contexts cannot, so without that build (no C compiler, OpenSSL headers
or `ANALYZER_PURE=1`) a parked stream keeps its hasher objects, ~290 bytes each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Sha256(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


try:
    from analyzer.tcp._sha256 import Sha256 as _Savable
except ImportError:  # not built, or ANALYZER_PURE=1 (native.py): hashlib, which cannot save
    import hashlib

    new_sha256: Callable[[], Sha256] = hashlib.sha256
    SAVABLE = False

    def save(hasher: Sha256) -> bytes | None:
        return None

    def resume(state: bytes) -> Sha256:
        raise ValueError("this build cannot resume a SHA-256 state")
else:
    new_sha256 = _Savable
    SAVABLE = True

    def save(hasher: Sha256) -> bytes | None:
        """The running state (112 bytes: OpenSSL's SHA256_CTX), for `resume`."""
        return hasher.state()  # type: ignore[attr-defined, no-any-return]

    def resume(state: bytes) -> Sha256:
        """A hasher that goes on from `state` (from `save`, in this process)."""
        return _Savable(state)
