"""Opening a capture file: format detection by content (pcap, pcapng, gzip-compressed
either), one-line errors for unusable input, and streaming iteration over its frames."""

from __future__ import annotations

import gzip
import io
import itertools
import os
import stat
import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, Protocol

from analyzer.capture.chunks import ChunkReader
from analyzer.capture.frame import CaptureInfo, Frame
from analyzer.capture.pcap import MAGICS, read_pcap
from analyzer.capture.pcapng import SHB_TYPE, read_pcapng
from analyzer.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"  # the path that means standard input (a pipe: `tcpdump -w - | analyzer read -`)


class CaptureFile:
    """An open capture: iterate it once for its frames; `info` fills in as it goes."""

    def __init__(self, path: str | os.PathLike[str], tee_fd: int | None = None) -> None:
        """tee_fd: a pipe that gets a copy of every byte read (standard input only: how
        a second process reads the same pipe, analyzer/run/parallel.py); closed here."""
        self.path = os.fspath(path)
        self.info = CaptureInfo(path=self.path)
        try:
            self._raw = _open_raw(self.path)
        except BaseException:
            if tee_fd is not None:
                os.close(tee_fd)
            raise
        if tee_fd is not None:
            self._raw = _Tee(self._raw, tee_fd)  # type: ignore[assignment]
        status = os.fstat(self._raw.fileno())
        plain = stat.S_ISREG(status.st_mode)
        # (a plain file read from where its descriptor was left, `{ ...; analyzer read -; }
        # < file`, cannot be mapped from its start)
        at_start = plain and os.lseek(self._raw.fileno(), 0, os.SEEK_CUR) == 0
        self.size = status.st_size if plain else 0
        stream: BinaryIO = self._raw
        head = _read_exactly(self._raw, 4)
        if head[:2] == GZIP_MAGIC:
            self.info.compressed = True
            # (no seek back: a pipe cannot; the bytes already read go in front)
            stream = gzip.GzipFile(fileobj=_Prefixed(head, self._raw),  # type: ignore[assignment]
                                   mode="rb")
            try:
                head = stream.read(4)
            except (OSError, EOFError, zlib.error) as exc:
                self._raw.close()
                raise InputError(f"{self.path}: damaged gzip data ({exc})") from None
        if not head:
            self._raw.close()
            raise InputError(f"{self.path}: empty file, not a capture")
        # A plain file is mapped rather than read (see chunks.WINDOW_SIZE).
        mapped = not self.info.compressed and at_start
        self._reader = ChunkReader(stream, head, mapped=mapped)
        if head in MAGICS:
            self._frames = read_pcap(self._reader, self.info)
        elif head == SHB_TYPE:
            self._frames = read_pcapng(self._reader, self.info)
        else:
            self._raw.close()
            raise InputError(
                f"{self.path}: not a pcap or pcapng capture (starts with {head.hex(' ')})")
        try:
            # Read the file header now so a broken one is an input error, not a warning.
            self._first = next(self._frames, None)
        except ValueError as exc:
            self._raw.close()
            raise InputError(f"{self.path}: {exc}") from None
        except (OSError, EOFError, zlib.error) as exc:
            self._raw.close()
            raise InputError(f"{self.path}: cannot read ({exc})") from None
        self._stream = stream

    @property
    def bytes_read(self) -> int:
        """Position in the file on disk (compressed bytes for gzip), for progress bars."""
        if not self.info.compressed:
            return self._reader.position
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.size

    def __iter__(self) -> Iterator[Frame]:
        if self._first is None:
            return iter(())
        # chain, not a generator here: a frame then passes from the reader to the loop
        # with no interpreted frame in between (about 3% of the time on small captures).
        return itertools.chain((self._first,), self._frames, self._end())

    def _end(self) -> Iterator[Frame]:
        """Yields nothing; says why the frames stopped early, if a read failed."""
        if self._reader.error is not None:
            damage = "compressed data damaged" if self.info.compressed else "read error"
            self.info.warnings.append(
                f"{damage} ({self._reader.error}); analysis stops there")
        yield from ()

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    """n bytes, or fewer only at the end (a pipe gives what was written so far)."""
    data = stream.read(n)
    while data and len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            break
        data += more
    return data


class _Prefixed(io.RawIOBase):
    """`prefix`, then the rest of `stream`: a stream read from again as if from its start."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._stream.read(len(view))
        view[:len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self._stream.tell() - len(self._prefix)


class _Tee(io.RawIOBase):
    """`stream`, with a copy of every byte read written to the pipe `fd`. A reader on the
    other end that goes away costs nothing here: the copying stops (its owner notices
    the missing result)."""

    def __init__(self, stream: BinaryIO, fd: int) -> None:
        self._stream = stream
        self._fd: int | None = fd
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._stream.readinto1(buffer)  # type: ignore[attr-defined]
        if not n:
            return 0
        self._position += n
        if self._fd is not None:
            view = memoryview(buffer).cast("B")[:n]
            try:
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError:  # BrokenPipeError: the other reader stopped
                self._close_copy()
        return int(n)

    def fileno(self) -> int:
        return self._stream.fileno()

    def tell(self) -> int:
        return self._position

    def _close_copy(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_copy()
        self._stream.close()
        super().close()


def _open_raw(path: str) -> BinaryIO:
    if path == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("-: standard input is a terminal, not a capture (pipe one in: "
                             "tcpdump -U -w - | analyzer read -)")
        plain = plain_stdin_path()
        if plain is not None:
            # Its own open file description: worker 1 of analyzer/run/parallel.py reads
            # the same file, and a shared file offset would mix their reads.
            return open(plain, "rb")  # noqa: SIM115
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by CaptureFile.close
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a capture file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror})") from None


def plain_stdin_path() -> str | None:
    """For standard input redirected from a plain file at its start (`analyzer read - <
    capture.pcap`), a path that opens that file anew, to be read like the file itself
    rather than like a pipe; None for anything else."""
    if sys.stdin is None:
        return None
    try:
        fd = sys.stdin.fileno()
        path = f"/proc/self/fd/{fd}"
        if stat.S_ISREG(os.fstat(fd).st_mode) and os.lseek(fd, 0, os.SEEK_CUR) == 0 \
                and os.path.exists(path):
            return path
    except (OSError, ValueError):
        pass
    return None


class Capture(Protocol):
    """What the pipeline reads: one capture file, or several merged (`MergedCapture`)."""

    info: CaptureInfo
    size: int

    @property
    def bytes_read(self) -> int: ...

    def __iter__(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Capture: ...

    def __exit__(self, *exc: object) -> None: ...


class MergedCapture:
    """Several captures read as one, their frames merged in time order as `mergecap`
    merges them (`capture/merge.py`): a ring buffer's files, or a directory of them. Each
    file's format, link types and warnings are kept (`files`); a file that cannot be
    read at all is reported and skipped, the rest analyzed."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.files: list[CaptureFile] = []
        skipped: list[str] = []
        for path in paths:
            try:
                self.files.append(CaptureFile(path))
            except InputError as exc:
                skipped.append(f"{exc}; that file is skipped")
        if not self.files:
            raise InputError(skipped[0] if len(skipped) == 1 else
                             f"none of the {len(paths)} files is a capture ({skipped[0]})")
        first = self.files[0].info
        formats = sorted({f.info.format for f in self.files})
        self.info = CaptureInfo(path=" ".join(f.path for f in self.files),
                                format=formats[0] if len(formats) == 1 else "mixed",
                                compressed=any(f.info.compressed for f in self.files),
                                byte_order=first.byte_order)
        self.info.warnings.extend(skipped)
        self.info.files = [f.info for f in self.files]
        self.size = sum(f.size for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)

    def __iter__(self) -> Iterator[Frame]:
        from analyzer.capture.merge import merge_frames

        # Interface ids: each file's come after those of the files before it. A pcap
        # file has its one interface from its header; a pcapng file's grow as its
        # interface blocks are read, so its offset is fixed by the files before it only
        # when those are complete: counted from their headers' interfaces as read so far.
        offsets = []
        count = 0
        for file in self.files:
            offsets.append(count)
            count += max(len(file.info.interfaces), 1)
        yield from merge_frames([iter(f) for f in self.files], offsets)
        self._collect()

    def _collect(self) -> None:
        """Every file's interfaces, sections and warnings, into the merged info."""
        info = self.info
        info.interfaces = []
        info.sections = 0
        for file in self.files:
            for iface in file.info.interfaces:
                iface.id = len(info.interfaces)
                info.interfaces.append(iface)
            info.sections += file.info.sections
            info.warnings.extend(f"{file.path}: {w}" for w in file.info.warnings)

    def close(self) -> None:
        for file in self.files:
            file.close()

    def __enter__(self) -> MergedCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def capture_paths(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
                  ) -> list[str]:
    """The files a command reads: one path, several, or a directory's files (by name)."""
    paths = [os.fspath(path)] if isinstance(path, str | os.PathLike) else \
        [os.fspath(p) for p in path]
    found = []
    for item in paths:
        if item != STDIN and os.path.isdir(item):
            entries = sorted(e.path for e in os.scandir(item) if e.is_file())
            if not entries:
                raise InputError(f"{item}: an empty directory, no capture in it")
            found.extend(entries)
        else:
            found.append(item)
    return found


def open_capture(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 tee_fd: int | None = None) -> Capture:
    """Open a pcap/pcapng file (plain or gzip; "-" is standard input), or several of
    them, or a directory of them, merged in time order; raises InputError when it is
    unusable. tee_fd: see CaptureFile (one file only)."""
    paths = capture_paths(path)
    if len(paths) == 1:
        return CaptureFile(paths[0], tee_fd)
    assert tee_fd is None
    return MergedCapture(paths)
