"""The decoded packet record the protocol trackers consume.

One `Packet` per TCP, UDP or ICMP datagram (after IP fragment reassembly). It holds
only what the trackers need; addresses stay packed (4 or 16 bytes) and are turned
into text only by views, through `format_endpoint` / `format_address`.
"""

from __future__ import annotations

from typing import Any, Final

# IP protocol numbers the trackers see.
PROTO_ICMP: Final = 1
PROTO_TCP: Final = 6
PROTO_UDP: Final = 17
PROTO_ICMPV6: Final = 58

# TCP flag bits (as in the header's flags byte; NS is ignored).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80


class Packet:
    """A TCP, UDP or ICMP packet, decoded just enough for the trackers.

    `payload` is the captured bytes after the transport header (a slice of the frame:
    for the small payloads of a capture, copying is cheaper than a memoryview's two
    objects, and a kept payload holds no frame alive).
    `payload_len` is the length the IP header claims; it exceeds `len(payload)` when
    the capture's snaplen cut the packet (`truncated`).

    For ICMP/ICMPv6, `sport` is the ICMP type, `dport` the code, and `payload` the
    ICMP body after the 4-byte type/code/checksum header (for errors: the 4 unused
    bytes then the quoted original datagram; see `decode.icmp.quoted_datagram`).
    """

    __slots__ = (
        "frame",
        "ts",
        "interface",
        "version",
        "src",
        "dst",
        "proto",
        "sport",
        "dport",
        "seq",
        "ack",
        "flags",
        "window",
        "tcp_options",
        "payload",
        "payload_len",
        "truncated",
        "key",
    )

    def __init__(
        self,
        frame: int,
        ts: float,
        interface: int,
        version: int,
        src: bytes,
        dst: bytes,
        proto: int,
        sport: int,
        dport: int,
        payload: bytes,
        payload_len: int,
        seq: int = 0,
        ack: int = 0,
        flags: int = 0,
        window: int = 0,
        tcp_options: bytes = b"",
        key: bytes = b"",
    ) -> None:
        self.frame = frame  # 1-based frame number, as Wireshark numbers frames
        self.ts = ts  # epoch seconds
        self.interface = interface  # pcapng interface id (0 for pcap)
        self.version = version  # 4 or 6
        self.src = src
        self.dst = dst
        self.proto = proto
        self.sport = sport
        self.dport = dport
        self.payload = payload
        self.payload_len = payload_len
        self.truncated = len(payload) < payload_len
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window  # as on the wire, not scaled
        self.tcp_options = tcp_options
        # The connection's direction as one hashable value (see flow_key); decoders
        # that have the header bytes at hand pass them, already in this layout.
        self.key = key or flow_key(src, sport, dst, dport)

    def __repr__(self) -> str:
        return (
            f"Packet(frame={self.frame}, {format_endpoint(self.src, self.sport)} -> "
            f"{format_endpoint(self.dst, self.dport)}, proto={self.proto}, "
            f"flags={self.flags:#04x}, len={self.payload_len})"
        )


def flow_key(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    """Source and destination address, then source and destination port: the bytes of an
    IPv4 header from its source address on followed by a TCP or UDP header's first four
    (IPv6 likewise), so a decoder can slice the key straight out of a frame."""
    return src + dst + ((sport << 16) | dport).to_bytes(4, "big")


def split_flow_key(key: bytes) -> tuple[bytes, int, bytes, int]:
    """(src, sport, dst, dport) of a `flow_key`."""
    size = (len(key) - 4) // 2
    return key[:size], key[-4] << 8 | key[-3], key[size:2 * size], key[-2] << 8 | key[-1]


def parse_tcp_options(raw: bytes | memoryview) -> dict[str, Any]:
    """The handshake options a SYN announces: mss, wscale, sack_perm, timestamps."""
    out: dict[str, Any] = {}
    data = bytes(raw)
    i = 0
    while i < len(data):
        kind = data[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        size = data[i + 1]
        if size < 2 or i + size > len(data):
            break
        body = data[i + 2:i + size]
        if kind == 2 and size == 4:
            out["mss"] = int.from_bytes(body, "big")
        elif kind == 3 and size == 3:
            out["wscale"] = body[0]
        elif kind == 4:
            out["sack_perm"] = True
        elif kind == 8 and size == 10:
            out["timestamps"] = (int.from_bytes(body[:4], "big"),
                                 int.from_bytes(body[4:], "big"))
        elif kind == 34:
            out["tfo"] = True
        i += size
    return out


# The busy addresses of a capture repeat, so their texts are kept; a bound keeps a
# capture of many hosts from holding a text for each (65,536 of them were ~6 MB). A
# dict, not functools.lru_cache: calling that wrapper cost more than the text (a SYN
# flood formats two endpoints a stream).
_ADDRESS_TEXTS: Final[dict[bytes, str]] = {}
_ADDRESS_TEXTS_LIMIT: Final = 4096


def format_address(addr: bytes) -> str:
    """Packed IPv4/IPv6 address to text."""
    text = _ADDRESS_TEXTS.get(addr)
    if text is None:
        if len(addr) == 4:
            text = f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}"
        else:
            import socket  # here, not at the top: ~3 ms of every start, for IPv6 only

            text = socket.inet_ntop(socket.AF_INET6, addr)
        if len(_ADDRESS_TEXTS) >= _ADDRESS_TEXTS_LIMIT:
            _ADDRESS_TEXTS.clear()
        _ADDRESS_TEXTS[addr] = text
    return text


def format_endpoint(addr: bytes, port: int) -> str:
    """SPEC endpoint text: "ip:port", IPv6 as "[addr]:port"."""
    if len(addr) == 4:
        return f"{format_address(addr)}:{port}"
    return f"[{format_address(addr)}]:{port}"


def parse_address(text: str) -> bytes:
    """Text IPv4/IPv6 address to packed bytes (for filters and tests)."""
    import socket  # (see format_address)

    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def flags_text(flags: int) -> str:
    """TCP flags as Wireshark-like text: "SYN, ACK"."""
    names = []
    for bit, name in ((CWR, "CWR"), (ECE, "ECE"), (URG, "URG"), (ACK, "ACK"),
                      (PSH, "PSH"), (RST, "RST"), (SYN, "SYN"), (FIN, "FIN")):
        if flags & bit:
            names.append(name)
    return ", ".join(reversed(names)) if names else "<none>"
