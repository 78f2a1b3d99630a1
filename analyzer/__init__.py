"""analyzer: a packet capture and protocol analyzer for TCP stream lifecycles and TFTP transfers.

Data flows one way: capture (frames) -> decode (packets) -> tcp / tftp trackers (results)
-> report (views). `cli` wires them together. See docs/architecture.md.
"""

__version__ = "0.1.0"

from analyzer.native import prefer_sources

prefer_sources()
