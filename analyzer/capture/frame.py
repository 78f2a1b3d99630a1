"""The frame record and what a capture says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass
class InterfaceInfo:
    id: int
    linktype: int
    name: str | None = None
    description: str | None = None
    snaplen: int = 0
    tsresol: str = "1e-6"  # as the capture declared it: "1e-N" or "2^-N"
    packets: int = 0
    dropped: int | None = None  # from a pcapng Interface Statistics Block or the kernel


@dataclass
class CaptureInfo:
    path: str
    format: str = ""  # "pcap", "pcap-nsec", "pcapng", "live"
    compressed: bool = False
    byte_order: str = "little"
    sections: int = 0
    interfaces: list[InterfaceInfo] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
