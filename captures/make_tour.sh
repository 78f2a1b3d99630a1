#!/usr/bin/env bash
# Re-creates captures/tour.pcapng, the capture `make run` shows: the three recordings of
# this folder merged in time order by mergecap (from tshark's wireshark-common package).
# Run it after record.sh / record_tftp.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mergecap -F pcapng -w "$here/tour.pcapng" \
    "$here/tcp-exchange.pcap" "$here/http-fetch.pcap" "$here/tftp-hpa-download.pcapng"
echo "wrote $here/tour.pcapng" >&2
