"""The frame record and what a capture says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Frame(NamedTuple):
    ts: float  # epoch seconds
    linktype: int  # LINKTYPE_ / DLT_ number
    interface: int  # pcapng interface id, counted across sections; 0 for pcap
    data: bytes  # captured bytes (possibly cut by the snaplen)
    wirelen: int  # length on the wire


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
