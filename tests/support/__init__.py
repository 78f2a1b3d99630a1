"""Reusable test machinery for real-world runs: processes stopped by PID, tcpdump on `lo`,
UDP readiness checks, a raw-socket TFTP client, and the analyzer CLI as a subprocess.

Everything here talks only to loopback addresses (127.0.0.0/8).
"""
