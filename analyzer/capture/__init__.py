"""Where frames come from: capture files (pcap, pcapng, gzip-compressed) and live interfaces.

A frame is (timestamp, link type, interface, bytes, original length). Nothing here knows
a protocol above the link type.
"""

from analyzer.capture.files import CaptureFile, open_capture
from analyzer.capture.frame import CaptureInfo, Frame, InterfaceInfo

__all__ = ["CaptureFile", "CaptureInfo", "Frame", "InterfaceInfo", "open_capture"]
