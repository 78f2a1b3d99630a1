#!/usr/bin/env bash
# Re-record captures/tftp-hpa-download.pcapng (see captures/README.md, "TFTP captures"):
# a real tftpd-hpa on 127.0.0.2:69 serves a ~20 KB text file to atftp, which asks for
# blksize 1024 and tsize; tcpdump on lo records it and editcap turns it into pcapng.
#
#   sudo captures/record_tftp.sh
#
# Needs root, in.tftpd (tftpd-hpa), atftp, tcpdump, editcap, python3 (scripts/install-test-
# deps.sh installs them). All traffic stays on 127.0.0.2 <-> 127.0.0.1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$HERE/tftp-hpa-download.pcapng"
SERVER_IP=127.0.0.2
FILE_NAME=notes.txt

die() { echo "record_tftp.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (port 69, tcpdump on lo)"
for tool in in.tftpd atftp tcpdump editcap python3; do
    command -v "$tool" >/dev/null || die "$tool is not installed (run scripts/install-test-deps.sh)"
done

WORK="$(mktemp -d)"
chmod 755 "$WORK"
TFTPD_PID=""
TCPDUMP_PID=""
cleanup() {
    # Stop what this script started, by PID.
    [[ -n "$TCPDUMP_PID" ]] && kill "$TCPDUMP_PID" 2>/dev/null || true
    [[ -n "$TFTPD_PID" ]] && kill "$TFTPD_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The served file: 20,000 bytes of numbered text lines (LF), the same on every run.
mkdir -m 755 "$WORK/root"
python3 - "$WORK/root/$FILE_NAME" <<'PY'
import sys
words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
lines, n = [], 0
while sum(map(len, lines)) < 20_000:
    n += 1
    lines.append(f"{n:04d} " + " ".join(words[(n + i) % len(words)] for i in range(n % 9 + 3)) + "\n")
open(sys.argv[1], "w").write("".join(lines)[:20_000])
PY
chmod 644 "$WORK/root/$FILE_NAME"

in.tftpd -L -s "$WORK/root" -a "$SERVER_IP:69" &
TFTPD_PID=$!
# Wait until 127.0.0.2:69 is bound (/proc/net/udp shows it little-endian: 0200007F:0045).
for _ in $(seq 100); do
    grep -q " 0200007F:0045 " /proc/net/udp && break
    sleep 0.05
done

tcpdump -i lo -n -U --immediate-mode -s 262144 -w "$WORK/raw.pcap" "host $SERVER_IP" \
    2>"$WORK/tcpdump.log" &
TCPDUMP_PID=$!
for _ in $(seq 100); do
    grep -q "listening on" "$WORK/tcpdump.log" && break
    sleep 0.05
done

atftp --option "blksize 1024" --option "tsize 0" -g -r "$FILE_NAME" -l "$WORK/received" \
    "$SERVER_IP" 69
sleep 0.3  # let the last packets reach tcpdump
kill "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
grep -E "packets (captured|dropped by kernel)" "$WORK/tcpdump.log" >&2

cmp -s "$WORK/received" "$WORK/root/$FILE_NAME" || die "the client did not get the file"
editcap -F pcapng "$WORK/raw.pcap" "$OUT"
echo "wrote $OUT; $FILE_NAME sha256 $(sha256sum <"$WORK/root/$FILE_NAME" | cut -d' ' -f1)"
