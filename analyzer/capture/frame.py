"""The frame record and what a capture says about itself."""

from __future__ import annotations


class Frame:
    """One captured frame. A compiled class (analyzer/native.py): the readers make one per
    packet, which costs a third of a tuple-based NamedTuple's time."""

    __slots__ = ("ts", "linktype", "interface", "data", "wirelen")

    def __init__(self, ts: float, linktype: int, interface: int, data: bytes,
                 wirelen: int) -> None:
        self.ts = ts  # epoch seconds
        self.linktype = linktype  # LINKTYPE_ / DLT_ number
        self.interface = interface  # pcapng interface id, counted across sections; 0 for pcap
        self.data = data  # captured bytes (possibly cut by the snaplen)
        self.wirelen = wirelen  # length on the wire

    def __repr__(self) -> str:
        return (f"Frame(ts={self.ts!r}, linktype={self.linktype}, "
                f"interface={self.interface}, data=<{len(self.data)} bytes>, "
                f"wirelen={self.wirelen})")


class InterfaceInfo:
    def __init__(
        self,
        id: int,
        linktype: int,
        name: str | None = None,
        description: str | None = None,
        snaplen: int = 0,
        tsresol: str = "1e-6",
        packets: int = 0,
        dropped: int | None = None,
    ) -> None:
        self.id = id
        self.linktype = linktype
        self.name = name
        self.description = description
        self.snaplen = snaplen
        self.tsresol = tsresol  # as the capture declared it: "1e-N" or "2^-N"
        self.packets = packets
        self.dropped = dropped  # from a pcapng Interface Statistics Block or the kernel


class CaptureInfo:
    def __init__(
        self,
        path: str,
        format: str = "",
        compressed: bool = False,
        byte_order: str = "little",
        sections: int = 0,
        interfaces: list[InterfaceInfo] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.path = path
        self.format = format  # "pcap", "pcap-nsec", "pcapng", "live"
        self.compressed = compressed
        self.byte_order = byte_order
        self.sections = sections
        self.interfaces = [] if interfaces is None else interfaces
        self.warnings = [] if warnings is None else warnings
        self.files: list[CaptureInfo] = []  # several files read as one: each one's info
        # how a live capture ended: "count", "duration", "signal SIGINT", "signal SIGTERM",
        # "interface lost", "stopped" (by its session); None for a file
        self.ended: str | None = None
