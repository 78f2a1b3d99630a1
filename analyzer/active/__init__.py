"""Thin socket drivers for the active modes (TFTP client, UDP, TCP).

Each driver opens its sockets in `bind()` and does its exchange in `run(cancel)`, as
`analyzer.run.session` runs it while the capture watches. Protocol logic stays in the
sans-IO machines (`analyzer.tftp.client`) and the trackers; what is here is sockets,
timers and files.
"""
