#!/usr/bin/env bash
# Re-record the repo's loopback captures with tcpdump (see captures/README.md).
#
#   sudo captures/record.sh            # every capture this script knows
#   sudo captures/record.sh tcp-exchange http-fetch
#
# Needs root (tcpdump on lo), tcpdump, python3 and curl. All traffic stays on 127.0.0.1.
# Each recorder writes <name>.pcap next to this script, then checks it with tshark
# when tshark is installed. Other captures may be added as further record_<name>
# functions; keep the list in ALL_CAPTURES in sync.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
TCP_PORT="${TCP_PORT:-50007}"
HTTP_PORT="${HTTP_PORT:-50080}"
ALL_CAPTURES=(tcp-exchange http-fetch)

die() { echo "record.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root to capture on lo (run with sudo)"
command -v tcpdump >/dev/null || die "tcpdump is not installed (apt-get install tcpdump)"

WORK="$(mktemp -d)"
TCPDUMP_PID=""
SERVER_PID=""
cleanup() {
    # Stop what this script started, by PID.
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
    [[ -n "$TCPDUMP_PID" ]] && kill "$TCPDUMP_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_tcpdump OUT FILTER: capture on lo into OUT, return once tcpdump is listening.
start_tcpdump() {
    local out="$1" filter="$2"
    # --immediate-mode: otherwise packets still in the kernel ring when tcpdump is
    # stopped are lost (short exchanges on lo never fill a ring block).
    tcpdump -i lo -n -U --immediate-mode -Z root -s 262144 -w "$out" "$filter" 2>"$WORK/tcpdump.log" &
    TCPDUMP_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/tcpdump.log" 2>/dev/null && return 0
        sleep 0.05
    done
    cat "$WORK/tcpdump.log" >&2
    die "tcpdump did not start"
}

stop_tcpdump() {
    sleep 0.3  # let the last packets reach the capture
    kill -INT "$TCPDUMP_PID"
    wait "$TCPDUMP_PID" || true
    TCPDUMP_PID=""
    grep -E "packets (captured|dropped by kernel)" "$WORK/tcpdump.log" >&2 || true
}

# wait_port PORT: until something listens on 127.0.0.1:PORT.
wait_port() {
    for _ in $(seq 100); do
        "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2).close()" \
            2>/dev/null && return 0
        sleep 0.05
    done
    die "nothing listens on 127.0.0.1:$1"
}

# tcp-exchange.pcap: two TCP connections to a Python server on $TCP_PORT.
#   1: handshake, two messages each way, client closes with FIN (shutdown), server FIN.
#   2: handshake, one message each way, client aborts with RST (SO_LINGER 0).
record_tcp-exchange() {
    local out="$HERE/tcp-exchange.pcap"
    start_tcpdump "$out" "tcp port $TCP_PORT"
    "$PYTHON" - "$TCP_PORT" <<'PY'
import socket
import struct
import sys
import threading

PORT = int(sys.argv[1])
CONVERSATIONS = [
    # (client messages, server replies, how the client ends the connection)
    ([b"hello server\n", b"second message from the client\n"],
     [b"hello client\n", b"second reply from the server\n"], "fin"),
    ([b"this connection will be reset\n"], [b"ok, reset it\n"], "rst"),
]

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", PORT))
listener.listen()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            break
        data += more
    return data


def serve() -> None:
    for asks, replies, _ in CONVERSATIONS:
        conn, _ = listener.accept()
        with conn:
            for ask, reply in zip(asks, replies):
                assert recv_exactly(conn, len(ask)) == ask
                conn.sendall(reply)
            try:
                while conn.recv(4096):  # until the client's FIN (or its RST)
                    pass
            except ConnectionResetError:
                pass


server = threading.Thread(target=serve)
server.start()
for asks, replies, ending in CONVERSATIONS:
    client = socket.create_connection(("127.0.0.1", PORT))
    for ask, reply in zip(asks, replies):
        client.sendall(ask)
        assert recv_exactly(client, len(reply)) == reply
    if ending == "fin":
        client.shutdown(socket.SHUT_WR)  # our FIN
        assert client.recv(4096) == b""  # the server's FIN
        client.close()
    else:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # RST
server.join(timeout=10)
listener.close()
PY
    stop_tcpdump
}

# http-fetch.pcap: curl fetches a known 6 KB text file from `python -m http.server`.
record_http-fetch() {
    command -v curl >/dev/null || die "curl is not installed (apt-get install curl)"
    local out="$HERE/http-fetch.pcap" root="$WORK/www"
    mkdir -p "$root"
    "$PYTHON" -c "
import sys
lines = [f'line {n:03d} of the known file served by python -m http.server\n' for n in range(1, 101)]
open(sys.argv[1], 'w').write(''.join(lines))" "$root/known.txt"
    "$PYTHON" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$root" \
        >"$WORK/http.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$HTTP_PORT"
    start_tcpdump "$out" "tcp port $HTTP_PORT"
    curl -sS --http1.1 -o "$WORK/fetched.txt" "http://127.0.0.1:$HTTP_PORT/known.txt"
    stop_tcpdump
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
    cmp "$root/known.txt" "$WORK/fetched.txt" || die "curl fetched something else"
    echo "known.txt sha256 $(sha256sum "$root/known.txt" | cut -d' ' -f1)" >&2
}

names=("$@")
[[ ${#names[@]} -gt 0 ]] || names=("${ALL_CAPTURES[@]}")
for name in "${names[@]}"; do
    declare -F "record_$name" >/dev/null || die "no recorder for '$name' (known: ${ALL_CAPTURES[*]})"
    echo "recording $name.pcap" >&2
    "record_$name"
    chmod 644 "$HERE/$name.pcap"
    if command -v tshark >/dev/null; then
        tshark -n -r "$HERE/$name.pcap" -q -z conv,tcp 2>/dev/null | sed -n '/<->/p' >&2 || true
    fi
done
