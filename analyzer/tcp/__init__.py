"""TCP analysis: the sans-IO tracker (Wireshark stream numbers, Follow-exact reassembly,
each endpoint's RFC 9293 state, Wireshark completeness, Zeek history and conn_state)."""

from analyzer.tcp.result import TcpStreamResult
from analyzer.tcp.tracker import TcpTracker

__all__ = ["TcpStreamResult", "TcpTracker"]
