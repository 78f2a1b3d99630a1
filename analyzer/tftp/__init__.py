"""TFTP (RFC 1350 with options per RFC 2347/2348/2349 and windowsize per RFC 7440).

`codec` encodes and decodes packets and `netascii` decodes the netascii wire form. The
passive side is sans-IO: `tracker` dispatches captured packets, `matching` finds the
transfer each belongs to (TID lock, strays), `transfer` is one transfer (reassembly,
gaps, rollover, the rebuilt file), `verdicts` judges them, and `findings` is the table
of every finding code (RFC, severity, message). `extract` is the IO side that writes the
rebuilt files. Nothing here imports `analyzer.report` or `analyzer.cli`: the views
(report/tftp_view.py, report/tftp_json.py) read the plain result objects.
"""
