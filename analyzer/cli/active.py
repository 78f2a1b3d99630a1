"""What every active command shares on the command line: `--watch`, `-w`, `--json`,
`--encoding`, and running its driver through the session (`analyzer.run.session`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from analyzer.errors import InputError

if TYPE_CHECKING:
    from analyzer.decode import Packet
    from analyzer.run.session import Driver, SessionResult

T = TypeVar("T")
CHUNK = 1 << 16


def add_active_options(parser: argparse.ArgumentParser, encoding: bool = True) -> None:
    parser.add_argument("--watch", action="store_true",
                        help="sniff this command's own traffic and show its analysis at the "
                             "end (needs root or CAP_NET_RAW; without, the command runs "
                             "unwatched)")
    parser.add_argument("-w", "--write", metavar="OUT.pcapng",
                        help="keep the watched traffic as pcapng (implies watching)")
    parser.add_argument("--json", action="store_true",
                        help="JSON Lines on stdout (see SPEC), the watched results after")
    if encoding:
        parser.add_argument("--encoding", default="utf-8", metavar="CODEC",
                            help="text encoding for what is sent and shown (utf-8, gb2312, "
                                 "gbk, latin-1, ...; default utf-8)")


def check_encoding(args: argparse.Namespace) -> str:
    from analyzer.report.text import check_encoding as lookup

    try:
        return lookup(args.encoding)
    except LookupError:
        raise InputError(f"unknown encoding {args.encoding!r}") from None


def encode_text(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise InputError(f"the text cannot be written in {encoding}: {exc.reason} "
                         f"({text[exc.start:exc.end]!r})") from None


def watched(driver: Driver[T], args: argparse.Namespace,
            observers: Sequence[Callable[[Packet], object]] = ()) -> SessionResult[T]:
    """Run `driver` in a session that watches it when `--watch` or `-w` asks; a watch
    that cannot happen (no permission to capture) is one line on stderr, not an error."""
    from analyzer.run.session import run_session

    result = run_session(driver, watch=args.watch, write=args.write, observers=observers)
    if args.watch or args.write:
        from analyzer.report.net_view import no_watch_line

        line = no_watch_line(result)
        if line is not None:
            print(f"analyzer: {line}", file=sys.stderr)
    return result


def payload_chunks(spec: str | None, encoding: str) -> Iterator[bytes]:
    """`TEXT`, `@FILE` (streamed) or `-` (stdin, streamed) as chunks of bytes to send."""
    if spec is None:
        return iter(())
    if spec == "-":
        return _stream(sys.stdin.buffer)
    if spec.startswith("@"):
        path = spec[1:]
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed by _stream when read
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror}") from None
        return _stream(file)
    return iter([encode_text(spec, encoding)])


def read_reply(spec: str | None, encoding: str) -> bytes | None:
    """A server's reply: TEXT or @FILE (read once: it is sent to every client)."""
    if spec is None:
        return None
    if spec.startswith("@"):
        try:
            with open(spec[1:], "rb") as file:
                return file.read()
        except OSError as exc:
            raise InputError(f"{spec[1:]}: {exc.strerror}") from None
    return encode_text(spec, encoding)


def _stream(file: Any) -> Iterator[bytes]:
    with file:
        while chunk := file.read(CHUNK):
            yield chunk
