"""Thin socket drivers for the active modes (TFTP client, UDP, TCP); protocol logic stays
in the sans-IO machines and the trackers.

A driver owns the sockets, the clock and the files of one active command: it opens its
sockets in `bind()` and does its exchange in `run(cancel)`, as `analyzer.run.session`
runs it while the capture watches. It feeds a machine (e.g.
`analyzer.tftp.client.TftpClient`) the datagrams and timer expiries and carries out the
actions the machine returns; it decides nothing about the protocol.
"""
