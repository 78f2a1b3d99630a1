"""`analyzer tftp check`: grade a TFTP server against the RFCs, with its own capture as
evidence.

- `checks`: the table of checks (id, RFC section, what each needs, its purpose), the
  exchange each one drives and the verdict function that reads the evidence: the TFTP
  tracker's transfers and the captured packets, never what the client believed.
- `runner`: the sockets around it: runs the selected checks one after the other in one
  capture session (`analyzer.run.session`), each bounded in time, and hands each check's
  evidence to its verdict function.

May import `analyzer.tftp` (codec, client machine, tracker results), `analyzer.active`
(the client's socket driver), `analyzer.run.session` and `analyzer.errors`; never the
CLI or the report modules (the CLI imports this package, not the other way round).
"""
