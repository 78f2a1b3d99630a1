"""Frame bytes to `Packet` records: link layers, IPv4/IPv6 (with fragment reassembly),
TCP/UDP/ICMP headers and the payload; counts of everything else for the summary.

Only what the trackers need, read straight from the frame's bytes. Full dissection of a
packet a user asks to see is Wireshark's (`analyzer frame`: analyzer/wireshark/).
"""

from analyzer.decode.decoder import Decoder, DecodeStats
from analyzer.decode.packet import Packet, format_address, format_endpoint

__all__ = ["DecodeStats", "Decoder", "Packet", "format_address", "format_endpoint"]
