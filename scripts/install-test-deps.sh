#!/usr/bin/env bash
# Install what the real-server tests need (run as root; idempotent, quick when all is there):
#   - Debian packages: tcpdump, tshark, tftpd-hpa (in.tftpd), tftp-hpa (tftp client),
#     dnsmasq-base (dnsmasq), atftp (atftp client); iproute2, util-linux (setpriv), curl,
#     socat and netcat-openbsd (independent peers of the udp/tcp active-mode tests),
#     for the benchmark tcpflow, hyperfine and GNU time; gcc and python3-dev for the mypyc
#     build of the hot path, libssl-dev for its savable SHA-256 (scripts/build_native.py);
#   - atftpd, unpacked into .deps/atftpd/ (its package conflicts with tftpd-hpa, so it is
#     never installed: `apt-get download` + `dpkg-deb -x`; the tests run the binary there).
# Package services are never started: the tests start their own servers on 127.0.0.x:69.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
atftpd_dir="$repo_dir/.deps/atftpd"
atftpd_bin="$atftpd_dir/usr/sbin/atftpd"
packages=(tcpdump tshark tftpd-hpa tftp-hpa dnsmasq-base atftp iproute2 util-linux curl socat netcat-openbsd tcpflow hyperfine time gcc python3-dev libssl-dev)
# atftpd's run-time libraries (its Depends); libc is always there.
atftpd_libs=(libwrap0 libpcre2-8-0)

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
    if [[ $apt_updated -eq 0 ]]; then
        apt-get update -qq
        apt_updated=1
    fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${packages[@]}" "${atftpd_libs[@]}"; do
    is_installed "$package" || missing+=("$package")
done

if [[ $(id -u) -ne 0 ]]; then
    # Not root: nothing can be installed; the tests that need these skip with a reason
    # (and fail under CI=true, which runs as root).
    if [[ ${#missing[@]} -gt 0 || ! -x $atftpd_bin ]]; then
        echo "install-test-deps.sh: not root; cannot install ${missing[*]}" \
            "${atftpd_bin#"$repo_dir"/}" >&2
    fi
    exit 0
fi

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-test-deps.sh: installing ${missing[*]}"
    apt_update_once
    # Keep package scripts from starting services (tftpd-hpa would grab 0.0.0.0:69):
    # policy-rc.d exit 101 is Debian's documented "do not start" switch.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    trap 'if [[ $own_policy -eq 1 ]]; then rm -f "$policy"; fi' EXIT
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -x $atftpd_bin ]]; then
    echo "install-test-deps.sh: unpacking atftpd into $atftpd_dir"
    download_dir="$(mktemp -d)"
    chmod 777 "$download_dir"  # apt's download runs as _apt when it can
    if ! (cd "$download_dir" && apt-get download -qq atftpd 2>/dev/null); then
        apt_update_once
        (cd "$download_dir" && apt-get download -qq atftpd)
    fi
    mkdir -p "$atftpd_dir"
    dpkg-deb -x "$download_dir"/atftpd_*.deb "$atftpd_dir"
    rm -rf "$download_dir"
fi

if ldd "$atftpd_bin" | grep -q "not found"; then
    echo "install-test-deps.sh: atftpd is missing libraries:" >&2
    ldd "$atftpd_bin" | grep "not found" >&2
    exit 1
fi
