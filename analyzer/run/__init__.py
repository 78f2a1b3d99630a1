"""The application layer: what each command does, between the command line and the pipeline.

`cli/` parses arguments and calls one function here; these functions put together a
frame source, the pipeline's trackers, the stores results wait in, and the views:

- `read.py`: reading a capture file (one process or two, spill stores, progress), and the
  one-stream / one-transfer looks that `tcp follow`, `tcp ladder`, `tftp show` and
  `tftp extract` take, all through the same pipeline;
- `session.py`: a live capture watching the trackers' traffic: `sniff` (no driver) and
  every active mode, which runs a driver (a callable that sends and receives on sockets)
  while the capture and the trackers watch exactly its own traffic;
- `parallel.py`: `read --json` on two cores; `results.py`, `spill.py`: where finished
  results and parked streams wait, on disk, so memory stays flat.

Layering: this package may import everything below it (capture, decode, the trackers, the
pipeline), the views (`report/`) and the active drivers (`active/`); nothing below it
imports it, and it never imports `cli/`.
"""
