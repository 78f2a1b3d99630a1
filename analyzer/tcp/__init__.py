"""TCP analysis: the sans-IO tracker (Wireshark stream numbers, Follow-exact reassembly,
each endpoint's RFC 9293 state, Wireshark completeness, Zeek history and conn_state).

Modules, from the top: tracker.py (dispatch, the inlined fast path, sweeps), stream.py (one
connection's full per-packet analysis and its result), flow.py (one direction: sequence
space and reassembly), analysis.py (Wireshark's tcp.analysis rules), parking.py (quiet
streams frozen to records and thawed), tombstones.py, lifecycle.py, completeness.py,
zeek.py, digest.py, result.py (the plain result types) and vocabulary.py (flag masks,
event codes, analysis kinds, labels). This package imports only `analyzer.decode`; views
and encodings of its results live in `analyzer.report`.
"""

from analyzer.tcp.result import TcpStreamResult
from analyzer.tcp.tracker import TcpTracker

__all__ = ["TcpStreamResult", "TcpTracker"]
