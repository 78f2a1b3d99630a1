"""`tcp connect` and `tcp serve` on loopback against independent peers.

Peers: socat and nc listeners, `python -m http.server`, nc and curl clients and a plain
Python socket client. The bytes each way are checked by SHA-256 against what the peer
wrote down (or against the file it served), and each way of closing is checked on the
wire: in the command's own `--watch -w` capture, read by tshark (who sent the first FIN,
the FIN/ACK order, data after a half-close, the RST of SO_LINGER 0), and by our own
`read --json` and `tcp ladder` of the same file.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.active.cli import (
    Background,
    assert_one_line_error,
    describe,
    free_port,
    json_lines,
    of_type,
    run,
    tshark_rows,
    wait_tcp_listening,
)
from tests.conftest import require_root, require_tool
from tests.support.analyzer_cli import read_json
from tests.tcp.tshark_tcp import parse_follow_raw, tshark_follow

pytestmark = pytest.mark.root

SEGMENT_FIELDS = ["frame.number", "tcp.srcport", "tcp.dstport", "tcp.flags.syn",
                  "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.reset", "tcp.len"]


@pytest.fixture(autouse=True)
def _live() -> None:
    """--watch sniffs (root); the evidence is read by tshark."""
    require_root()
    require_tool("tshark")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


def segments(capture: Path, port: int) -> list[dict[str, int]]:
    """Every TCP segment to or from `port` in the capture, as tshark decodes it."""
    rows = tshark_rows(capture, SEGMENT_FIELDS, f"tcp.port == {port}")
    return [{key.split(".")[-1]: int(value or 0) for key, value in row.items()}
            for row in rows]


def from_port(rows: list[dict[str, int]], port: int) -> list[dict[str, int]]:
    return [row for row in rows if row["srcport"] == port]


def first_fin(rows: list[dict[str, int]]) -> dict[str, int]:
    return next(row for row in rows if row["fin"])


def follow(capture: Path, client_port: int) -> tuple[bytes, bytes]:
    """(client's bytes, server's bytes) of stream 0 as tshark follows them. tshark's
    "Node 0" is whichever side sent data first, so the roles come from the ports."""
    raw = parse_follow_raw(tshark_follow(capture, 0, "raw"))
    if raw.node0.endswith(f":{client_port}"):
        return raw.data0, raw.data1
    assert raw.node1.endswith(f":{client_port}"), raw[:2]
    return raw.data1, raw.data0


def syn_port(capture: Path, port: int) -> int:
    """The client's port: the source of the SYN (without ACK) to `port`."""
    rows = segments(capture, port)
    return next(row["srcport"] for row in rows if row["syn"] and not row["ack"])


def one_exchange(stdout: bytes) -> dict:
    exchanges = of_type(json_lines(stdout), "tcp_exchange")
    assert len(exchanges) == 1, stdout[-2000:]
    return exchanges[0]


def our_stream(capture: Path) -> tuple[dict, str]:
    """Our own reading of the evidence: the one `tcp_stream` of `read --json`, and the
    ladder of stream 0 as one line of text."""
    streams = [obj for obj in read_json(capture) if obj["type"] == "tcp_stream"]
    assert len(streams) == 1, streams
    ladder = run("tcp", "ladder", capture, "0")
    assert ladder.returncode == 0, describe(ladder)
    return streams[0], " ".join(ladder.stdout.decode().split())


def assert_fin_handshake_order(rows: list[dict[str, int]], closer: int, other: int) -> None:
    """`closer` sent the first FIN; `other` ACKed it, then sent its own FIN, ACKed by
    `closer` (a four-way close, possibly with the middle ACK carried by the second FIN)."""
    fin = first_fin(rows)
    assert fin["srcport"] == closer, rows
    later = [row for row in rows if row["number"] > fin["number"]]
    # (the closer's FIN may be retransmitted on a busy machine before the answer)
    second = next(row for row in later if row["fin"] and row["srcport"] == other)
    assert second["ack"] == 1, rows
    assert any(row["srcport"] == closer and row["ack"] and row["number"] > second["number"]
               for row in later), rows
    assert not any(row["reset"] for row in rows), rows


# -- tcp connect ---------------------------------------------------------------------


def test_connect_fin_against_nc_closes_first_with_both_ways_intact(
        tmp_path: Path, peers: Callable) -> None:
    """nc (no -N) sends its file and keeps the connection open: after --wait seconds of
    quiet we close first, with a FIN, and nc, seeing EOF, closes too."""
    require_tool("nc")
    port = free_port(socket.SOCK_STREAM)
    sent = random_file(tmp_path / "send.bin", 100_000)
    reply = random_file(tmp_path / "reply.bin", 80_000)
    got = tmp_path / "got.bin"
    nc = peers(["sh", "-c", f"exec nc -l 127.0.0.1 {port} < '{tmp_path}/reply.bin' > '{got}'"])
    wait_tcp_listening(port, nc)
    capture = tmp_path / "fin.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", f"@{tmp_path}/send.bin",
               "--close", "fin", "--wait", "0.5", "--watch", "-w", capture, "--json")
    assert done.returncode == 0, describe(done)
    nc.wait(timeout=10)
    exchange = one_exchange(done.stdout)
    assert exchange["remote"] == f"127.0.0.1:{port}"
    assert (exchange["sent_bytes"], exchange["sent_sha256"]) == (len(sent), sha256(sent))
    assert got.read_bytes() == sent  # nc's view
    assert (exchange["received_bytes"], exchange["received_sha256"]) == (
        len(reply), sha256(reply))
    assert (exchange["closed_by"], exchange["close"], exchange["outcome"]) == (
        "local", "fin", "ok")

    client_port = int(exchange["local"].rsplit(":", 1)[1])
    assert_fin_handshake_order(segments(capture, port), closer=client_port, other=port)
    assert follow(capture, client_port) == (sent, reply)

    # The watched analysis printed after the exchange (--watch --json) says the same.
    watched = of_type(json_lines(done.stdout), "tcp_stream")
    assert len(watched) == 1, watched
    assert (watched[0]["client"], watched[0]["server"]) == (exchange["local"],
                                                            f"127.0.0.1:{port}")
    assert (watched[0]["client_sha256"], watched[0]["server_sha256"]) == (
        sha256(sent), sha256(reply))
    assert watched[0]["close"] == "fin" and watched[0]["handshake"] == "complete"

    stream, ladder = our_stream(capture)
    assert (stream["close"], stream["labels"]) == ("fin", [])
    assert stream["history"].index("F") < stream["history"].index("f")  # Zeek: client FIN first
    assert "close fin (client closed first)" in ladder


def test_connect_rst_aborts_with_so_linger_zero(tmp_path: Path, peers: Callable) -> None:
    """--close rst (SO_LINGER 0): the client's last segment is a RST, it never sends a FIN;
    what it sent (from stdin, `--send -`) still reached nc first."""
    require_tool("nc")
    port = free_port(socket.SOCK_STREAM)
    sent = os.urandom(30_000)
    random_file(tmp_path / "reply.bin", 5_000)
    got = tmp_path / "got.bin"
    nc = peers(["sh", "-c", f"exec nc -l 127.0.0.1 {port} < '{tmp_path}/reply.bin' > '{got}'"])
    wait_tcp_listening(port, nc)
    capture = tmp_path / "rst.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", "-", "--close", "rst",
               "--wait", "0.5", "--watch", "-w", capture, "--json", stdin=sent)
    assert done.returncode == 0, describe(done)
    nc.wait(timeout=10)
    exchange = one_exchange(done.stdout)
    assert exchange["sent_sha256"] == sha256(sent) == sha256(got.read_bytes())
    assert (exchange["closed_by"], exchange["close"]) == ("local", "rst")

    client_port = int(exchange["local"].rsplit(":", 1)[1])
    rows = segments(capture, port)
    ours = from_port(rows, client_port)
    assert not any(row["fin"] for row in ours), rows
    assert ours[-1]["reset"] == 1, rows
    assert not any(row["reset"] for row in from_port(rows, port)), rows

    stream, ladder = our_stream(capture)
    assert stream["close"] == "rst" and "reset-by-client" in stream["labels"], stream
    assert "close rst" in ladder and "client resets the connection" in ladder


def test_connect_half_close_keeps_reading_after_its_fin(tmp_path: Path, peers: Callable) -> None:
    """socat runs `cat > got; cat reply`: the peer answers only after our FIN, so the whole
    reply arrives after the half-close, and must still be read."""
    require_tool("socat")
    port = free_port(socket.SOCK_STREAM)
    sent = random_file(tmp_path / "send.bin", 50_000)
    reply = random_file(tmp_path / "reply.bin", 120_000)
    got = tmp_path / "got.bin"
    socat = peers(["socat", "-t", "10", f"TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                   f"SYSTEM:cat > '{got}'; cat '{tmp_path}/reply.bin'"])
    wait_tcp_listening(port, socat)
    capture = tmp_path / "half.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", f"@{tmp_path}/send.bin",
               "--close", "half", "--wait", "2", "--watch", "-w", capture, "--json")
    assert done.returncode == 0, describe(done)
    socat.wait(timeout=10)
    exchange = one_exchange(done.stdout)
    assert exchange["sent_sha256"] == sha256(sent) == sha256(got.read_bytes())
    assert (exchange["received_bytes"], exchange["received_sha256"]) == (
        len(reply), sha256(reply))
    assert (exchange["closed_by"], exchange["close"], exchange["outcome"]) == (
        "local", "half", "ok")

    client_port = int(exchange["local"].rsplit(":", 1)[1])
    rows = segments(capture, port)
    our_fin = first_fin(rows)
    assert our_fin["srcport"] == client_port, rows
    server_data = [row for row in from_port(rows, port) if row["len"]]
    assert server_data and all(row["number"] > our_fin["number"] for row in server_data), rows
    assert sum(row["len"] for row in server_data) == len(reply)
    assert_fin_handshake_order(rows, closer=client_port, other=port)

    stream, ladder = our_stream(capture)
    assert stream["close"] == "fin" and stream["server_sha256"] == sha256(reply), stream
    assert "close fin (client closed first)" in ladder


def test_connect_sees_the_peer_close_first(tmp_path: Path, peers: Callable) -> None:
    """socat sends its file and shuts its side (FIN) at the file's end: the peer closed
    first, and our close answers it."""
    require_tool("socat")
    port = free_port(socket.SOCK_STREAM)
    sent = random_file(tmp_path / "send.bin", 20_000)
    reply = random_file(tmp_path / "reply.bin", 60_000)
    got = tmp_path / "got.bin"
    socat = peers(["socat", "-t", "10", f"TCP4-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                   f"OPEN:{tmp_path}/reply.bin!!CREATE:{got}"])
    wait_tcp_listening(port, socat)
    capture = tmp_path / "peer-first.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", f"@{tmp_path}/send.bin",
               "--wait", "5", "--watch", "-w", capture, "--json")
    assert done.returncode == 0, describe(done)
    socat.wait(timeout=10)
    exchange = one_exchange(done.stdout)
    assert exchange["sent_sha256"] == sha256(sent) == sha256(got.read_bytes())
    assert exchange["received_sha256"] == sha256(reply)
    assert (exchange["closed_by"], exchange["outcome"]) == ("remote", "ok")
    client_port = int(exchange["local"].rsplit(":", 1)[1])
    assert_fin_handshake_order(segments(capture, port), closer=port, other=client_port)
    _, ladder = our_stream(capture)
    assert "close fin (server closed first)" in ladder


def test_connect_gets_a_file_from_python_http_server(tmp_path: Path, peers: Callable) -> None:
    """An HTTP/1.0 GET to `python -m http.server`: the body after the headers is the file
    on disk, byte for byte (the server's bytes as tshark follows them)."""
    port = free_port(socket.SOCK_STREAM)
    site = tmp_path / "site"
    site.mkdir()
    body = random_file(site / "blob.bin", 70_000)
    request = b"GET /blob.bin HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    (tmp_path / "request.txt").write_bytes(request)
    server = peers([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                    "--directory", str(site)], tmp_path / "http.log")
    wait_tcp_listening(port, server)
    capture = tmp_path / "http.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", f"@{tmp_path}/request.txt",
               "--wait", "5", "--watch", "-w", capture, "--json")
    assert done.returncode == 0, describe(done)
    exchange = one_exchange(done.stdout)
    client_bytes, server_bytes = follow(capture, syn_port(capture, port))
    assert client_bytes == request
    head, _, got_body = server_bytes.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200") and got_body == body
    assert (exchange["received_bytes"], exchange["received_sha256"]) == (
        len(server_bytes), sha256(server_bytes))
    assert exchange["sent_sha256"] == sha256(request)
    assert exchange["closed_by"] == "remote"  # HTTP/1.0: the server closes


def test_connect_refused_exits_1_and_the_watch_shows_syn_and_rst(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    capture = tmp_path / "refused.pcapng"
    done = run("tcp", "connect", "127.0.0.1", port, "--send", "hello", "--watch",
               "-w", capture, "--json")
    assert done.returncode == 1, describe(done)
    assert b"Traceback" not in done.stderr
    exchange = one_exchange(done.stdout)
    assert exchange["outcome"] == "refused" and exchange["sent_bytes"] == 0
    rows = segments(capture, port)
    assert [(row["dstport"], row["syn"], row["ack"]) for row in rows[:1]] == [(port, 1, 0)]
    assert any(row["srcport"] == port and row["reset"] for row in rows[1:]), rows
    stream, _ = our_stream(capture)
    assert "refused" in stream["labels"], stream


def test_connect_refused_without_watch_says_so_in_one_line() -> None:
    done = run("tcp", "connect", "127.0.0.1", free_port(socket.SOCK_STREAM))
    assert_one_line_error(done, code=1)


# -- tcp serve -----------------------------------------------------------------------


def serve(background: Callable[..., Background], port: int, capture: Path,
          *options: str) -> Background:
    server = background("tcp", "serve", str(port), "--bind", "127.0.0.1", "-c", "1",
                        "--watch", "-w", str(capture), "--json", *options)
    wait_tcp_listening(port, server.proc)
    return server


def test_serve_echo_to_nc_both_ways_by_sha256(tmp_path: Path, peers: Callable,
                                              background: Callable[..., Background]) -> None:
    require_tool("nc")
    port = free_port(socket.SOCK_STREAM)
    sent = random_file(tmp_path / "send.bin", 200_000)
    got = tmp_path / "got.bin"
    capture = tmp_path / "echo.pcapng"
    server = serve(background, port, capture, "--echo")
    client = peers(["sh", "-c",
                    f"exec nc -N 127.0.0.1 {port} < '{tmp_path}/send.bin' > '{got}'"])
    assert client.wait(timeout=20) == 0
    done = server.finish()
    assert done.returncode == 0, describe(done)
    assert got.read_bytes() == sent
    exchange = one_exchange(done.stdout)
    assert exchange["received_sha256"] == exchange["sent_sha256"] == sha256(sent)
    assert exchange["received_bytes"] == exchange["sent_bytes"] == len(sent)
    assert exchange["closed_by"] == "remote"  # nc -N shut its side first
    assert follow(capture, syn_port(capture, port)) == (sent, sent)


def test_serve_reply_file_to_curl(tmp_path: Path, background: Callable[..., Background]) -> None:
    """--reply @FILE holding an HTTP response: curl gets the body; what curl sent is what
    the exchange says it received (tshark's follow of the capture)."""
    curl = require_tool("curl")
    port = free_port(socket.SOCK_STREAM)
    body = os.urandom(40_000)
    response = (b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
    (tmp_path / "response.bin").write_bytes(response)
    capture = tmp_path / "curl.pcapng"
    server = serve(background, port, capture, "--reply", f"@{tmp_path}/response.bin",
                   "--close", "fin")
    fetched = subprocess.run([curl, "-sS", "--max-time", "15", "-o", str(tmp_path / "out"),
                              f"http://127.0.0.1:{port}/anything"],
                             capture_output=True, timeout=30, check=False)
    done = server.finish()
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "out").read_bytes() == body
    assert done.returncode == 0, describe(done)
    exchange = one_exchange(done.stdout)
    client_bytes, server_bytes = follow(capture, syn_port(capture, port))
    assert client_bytes.startswith(b"GET /anything HTTP/1.1\r\n")
    assert exchange["received_sha256"] == sha256(client_bytes)
    assert exchange["sent_sha256"] == sha256(response) == sha256(server_bytes)


def python_client(port: int, send: bytes = b"", expect: int | None = None,
                  linger: float = 0.0) -> tuple[bytes, str]:
    """A plain socket client: send `send`, read `expect` bytes (or to EOF / reset), wait
    `linger` seconds, close. Returns what it read and how the read ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if send:
            sock.sendall(send)
        received = bytearray()
        ending = "eof"
        try:
            while expect is None or len(received) < expect:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            else:
                ending = "count"
        except ConnectionResetError:
            ending = "reset"
        time.sleep(linger)
    return bytes(received), ending


def test_serve_echo_to_a_python_client(tmp_path: Path,
                                       background: Callable[..., Background]) -> None:
    port = free_port(socket.SOCK_STREAM)
    payload = os.urandom(1_000_000)
    capture = tmp_path / "echo-py.pcapng"
    server = serve(background, port, capture, "--echo")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        echoed = bytearray()
        while chunk := sock.recv(65536):
            echoed += chunk
    done = server.finish()
    assert done.returncode == 0, describe(done)
    assert bytes(echoed) == payload
    exchange = one_exchange(done.stdout)
    assert exchange["received_sha256"] == exchange["sent_sha256"] == sha256(payload)


@pytest.mark.parametrize("close", ["fin", "rst", "wait"])
def test_serve_close_variants_on_the_wire(tmp_path: Path, close: str,
                                          background: Callable[..., Background]) -> None:
    """--reply then --close: fin = the server's FIN first; rst = an abortive close (RST,
    no FIN from the server); wait = the client closes first and the server follows."""
    port = free_port(socket.SOCK_STREAM)
    reply = random_file(tmp_path / "reply.bin", 3_000)
    capture = tmp_path / f"serve-{close}.pcapng"
    server = serve(background, port, capture, "--reply", f"@{tmp_path}/reply.bin",
                   "--close", close)
    if close == "wait":  # the client reads the whole reply, then closes first
        received, ending = python_client(port, expect=len(reply), linger=0.3)
        assert (received, ending) == (reply, "count")
    else:
        received, ending = python_client(port)
        if close == "fin":
            assert (received, ending) == (reply, "eof")
    done = server.finish()
    assert done.returncode == 0, describe(done)
    exchange = one_exchange(done.stdout)
    assert exchange["sent_sha256"] == sha256(reply)

    rows = segments(capture, port)
    client_port = syn_port(capture, port)
    server_data = sum(row["len"] for row in from_port(rows, port))
    assert server_data == len(reply), rows
    stream, ladder = our_stream(capture)
    if close == "fin":
        assert (exchange["closed_by"], exchange["close"]) == ("local", "fin")
        assert_fin_handshake_order(rows, closer=port, other=client_port)
        assert "close fin (server closed first)" in ladder
    elif close == "rst":
        assert (exchange["closed_by"], exchange["close"]) == ("local", "rst")
        ours = from_port(rows, port)
        assert not any(row["fin"] for row in ours) and ours[-1]["reset"], rows
        assert stream["close"] == "rst" and "reset-by-server" in stream["labels"], stream
        assert "server resets the connection" in ladder
    else:
        assert (exchange["closed_by"], exchange["close"]) == ("remote", "fin")
        assert_fin_handshake_order(rows, closer=client_port, other=port)
        assert "close fin (client closed first)" in ladder


def test_serve_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run("tcp", "serve", port, "--bind", "127.0.0.1", "-c", "1", timeout=20)
    assert_one_line_error(done)


def test_connect_and_serve_over_ipv6(tmp_path: Path,
                                     background: Callable[..., Background]) -> None:
    """Our client and our server over ::1: endpoints written "[addr]:port" (SPEC), the
    echo intact, the capture IPv6 throughout."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    payload = random_file(tmp_path / "payload.bin", 30_000)
    server = background("tcp", "serve", str(port), "--bind", "::1", "--echo", "-c", "1",
                        "--json")
    wait_tcp_listening(port, server.proc)
    capture = tmp_path / "v6.pcapng"
    done = run("tcp", "connect", "::1", port, "--send", f"@{tmp_path}/payload.bin",
               "--close", "half", "--wait", "3", "--watch", "-w", capture, "--json")
    served = server.finish()
    assert done.returncode == 0, describe(done)
    assert served.returncode == 0, describe(served)
    client = one_exchange(done.stdout)
    assert client["remote"] == f"[::1]:{port}"
    assert client["received_sha256"] == client["sent_sha256"] == sha256(payload)
    server_side = one_exchange(served.stdout)
    assert server_side["local"] == f"[::1]:{port}" and server_side["remote"] == client["local"]
    assert server_side["received_sha256"] == sha256(payload)
    rows = tshark_rows(capture, ["ipv6.src", "ipv6.dst"], f"tcp.port == {port}")
    assert rows and all(row == {"ipv6.src": "::1", "ipv6.dst": "::1"} for row in rows), rows
    assert follow(capture, syn_port(capture, port)) == (payload, payload)
