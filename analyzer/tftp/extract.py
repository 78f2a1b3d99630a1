"""Writing rebuilt TFTP files into a directory: the IO side of the tracker's file sink.

Names come off the wire and are untrusted. `safe_name` keeps only the last path
component (both / and \\ separate directories: Windows clients send `boot\\bcd`),
replaces NUL, control and invisible formatting characters, refuses `.`/`..`/empty
names (the file is then called `transfer-N.bin`), and bounds the length. A file is
written under a temporary name in DIR and linked to its final name only when the
transfer is settled, so a failed or partial transfer never sits under the final name:
a complete file gets its name, anything else `NAME.partial` plus `NAME.partial.json`,
a map of the missing byte ranges. An existing name is never overwritten (`stem-2.ext`,
`stem-3.ext`, ... instead), and nothing is ever written outside DIR.

A write that fails once the directory was found writable (a full disk, a quota) is the
machine's trouble, not the input's: every temporary file is removed (`discard`) and an
OSError naming DIR goes up (exit 1, one line). A command that ends early for any other
reason discards them too (`analyzer.pipeline.analyze_file`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import OrderedDict
from typing import IO, TYPE_CHECKING, Any

from analyzer.errors import InputError

if TYPE_CHECKING:
    from analyzer.tftp.transfer import TftpTransfer

MAX_NAME_BYTES = 200  # leaves room for "-NNN.partial.json" within NAME_MAX (255)
MAX_OPEN_FILES = 32  # transfers in flight at once keep at most this many descriptors
_TEMP_PREFIX = ".tftp-extract-"


def safe_name(wire_name: str, number: int) -> str:
    """A file name for `wire_name` that cannot leave the directory or hide in it."""
    name = wire_name.replace("\\", "/").rsplit("/", 1)[-1]
    # Control and invisible format characters (NUL, ESC, U+202E right-to-left override).
    name = "".join(ch if ch.isprintable() else "_" for ch in name)
    name = name.strip()
    if name in ("", ".", "..") or name.startswith(_TEMP_PREFIX):
        return f"transfer-{number}.bin"
    encoded = name.encode("utf-8", "backslashreplace")
    if len(encoded) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 16 else ""
        keep = MAX_NAME_BYTES - len(ext.encode()) - 1
        cut = (stem if dot else name).encode("utf-8", "backslashreplace")[:keep]
        name = cut.decode("utf-8", "ignore") + (f".{ext}" if ext else "")
    return name


def numbered(name: str, n: int) -> str:
    """The n-th alternative for a taken name: `stem-n.ext` (n >= 2)."""
    if n < 2:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}-{n}"
    return f"{stem}-{n}.{ext}"


class Extractor:
    """A `FileSink` for `TftpTracker`: one temporary file per transfer, settled by name."""

    def __init__(self, directory: str | os.PathLike[str],
                 max_open: int = MAX_OPEN_FILES) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create extraction directory {directory}: "
                             f"{exc.strerror or exc}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise InputError(f"cannot write into extraction directory {directory}")
        self.max_open = max(1, max_open)
        self._open: OrderedDict[FileWriter, None] = OrderedDict()
        self._temps: set[str] = set()  # temporary files not yet settled
        self.written: list[str] = []

    def open(self, transfer: TftpTransfer) -> FileWriter:
        try:
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".tmp", dir=self.directory)
        except OSError as exc:
            raise self.failed(exc) from None
        self._temps.add(temp)
        os.close(fd)
        os.chmod(temp, 0o644)  # mkstemp's 0600 is for the temporary name only
        return FileWriter(self, temp)

    def failed(self, exc: OSError) -> OSError:
        """Writing failed: discard every temporary file; the error to raise, naming DIR."""
        self.discard()
        return OSError(exc.errno, exc.strerror or str(exc), self.directory)

    def discard(self) -> None:
        """Close and remove every temporary file (the command ends without settling)."""
        for writer in list(self._open):
            writer._drop()
        self._open.clear()
        for temp in self._temps:
            with contextlib.suppress(OSError):
                os.unlink(temp)
        self._temps.clear()

    def _activate(self, writer: FileWriter) -> None:
        """Keep at most `max_open` descriptors: close the least recently written."""
        self._open[writer] = None
        self._open.move_to_end(writer)
        while len(self._open) > self.max_open:
            oldest, _ = self._open.popitem(last=False)
            oldest._release()

    def _forget(self, writer: FileWriter) -> None:
        self._open.pop(writer, None)

    def _settle(self, temp: str, transfer: TftpTransfer) -> str:
        """Link the temporary file to its final, unused name; return that path."""
        base = safe_name(transfer.request.filename, transfer.number)
        complete = transfer.status == "complete"
        for n in range(1, 10_000):
            name = numbered(base, n)
            target = os.path.join(self.directory, name if complete else name + ".partial")
            if os.path.dirname(target) != self.directory:  # belt and braces
                raise InputError(f"refusing to write outside {self.directory}: {name!r}")
            gap_map = None if complete else target + ".json"
            if gap_map is not None and not _create_exclusive(gap_map, _gap_map(transfer)):
                continue
            if _move_exclusive(temp, target):
                self._temps.discard(temp)
                self.written.append(target)
                return target
            if gap_map is not None:
                os.unlink(gap_map)
        raise InputError(f"no free file name for {base!r} in {self.directory}")


class FileWriter:
    """One transfer's temporary file; the descriptor may be closed and reopened."""

    def __init__(self, extractor: Extractor, temp: str) -> None:
        self.extractor = extractor
        self.temp = temp
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        try:
            if self._file is None:
                self._file = open(self.temp, "ab")  # noqa: SIM115 - kept open across calls
            self.extractor._activate(self)
            self._file.write(data)
        except OSError as exc:
            raise self.extractor.failed(exc) from None

    def _release(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()  # (flushes: may fail on a full disk)

    def _drop(self) -> None:
        """Close without caring whether the last bytes made it (being discarded)."""
        with contextlib.suppress(OSError):
            self._release()

    def close(self, transfer: TftpTransfer) -> str | None:
        try:
            self._release()
            self.extractor._forget(self)
            return self.extractor._settle(self.temp, transfer)
        except OSError as exc:
            raise self.extractor.failed(exc) from None


def _gap_map(transfer: TftpTransfer) -> dict[str, Any]:
    error = transfer.error
    return {
        "filename": transfer.request.filename,
        "transfer": transfer.number,
        "status": transfer.status,
        "error": None if error is None else {"code": error.code, "message": error.message},
        "bytes": transfer.bytes,
        "blksize": transfer.blksize,
        "missing": [
            {"first_block": g.first, "last_block": g.last, "offset": g.offset,
             "length": g.length}
            for g in transfer.gaps
        ],
    }


def _create_exclusive(path: str, content: dict[str, Any]) -> bool:
    import json  # (here: `tftp get` imports this module for safe_name on every start)

    try:
        with open(path, "x", encoding="utf-8") as out:
            try:
                json.dump(content, out, indent=1)
                out.write("\n")
                out.flush()
            except OSError:
                os.unlink(path)  # no half-written map (the `with` then fails to flush)
                raise
    except FileExistsError:
        return False
    return True


def _move_exclusive(temp: str, target: str) -> bool:
    """Rename `temp` to `target` unless that name exists (symlinks included)."""
    try:
        os.link(temp, target)  # fails on an existing name, never follows a symlink
    except FileExistsError:
        return False
    except OSError:
        pass  # no hard links on this file system: reserve the name, then replace it
    else:
        os.unlink(temp)
        return True
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    os.replace(temp, target)
    return True
