"""The decoder against crafted captures (truth by construction) and against tshark.

For every frame the decoder must return exactly the TCP/UDP/ICMP packet that was put
in it (addresses, ports, flags, payload bytes), nothing for ARP and unsupported link
types, and a reassembled datagram at the frame that completes a fragmented one, as
Wireshark shows it.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections import Counter

import pytest

from analyzer.capture import Frame, open_capture
from analyzer.decode import Decoder, format_address
from tests.craft import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IEEE802_11,
    LINKTYPE_RAW,
    PROTO_TCP,
    PROTO_UDP,
    READABLE_NAMES,
    CraftedCapture,
)
from tests.oracle import FiveTuple, tshark_five_tuples


def decode_file(path) -> tuple[dict[int, object], Decoder]:
    decoder = Decoder()
    packets = {}
    with open_capture(path) as capture:
        for number, frame in enumerate(capture, 1):
            packet = decoder.decode(frame, number)
            if packet is not None:
                packets[number] = packet
    return packets, decoder


@pytest.mark.parametrize("name", READABLE_NAMES)
def test_packets_are_the_ones_built(crafted: dict, name: str) -> None:
    capture: CraftedCapture = crafted[name]
    packets, _ = decode_file(capture.path)
    expected = dict(capture.expected_packets())
    assert sorted(packets) == sorted(expected), "frames that yield a packet"
    for number, want in expected.items():
        got = packets[number]
        where = f"{name} frame {number}"
        assert got.frame == number, where
        assert got.version == want.version, where
        assert format_address(got.src) == want.src, where
        assert format_address(got.dst) == want.dst, where
        assert got.proto == want.proto, where
        assert (got.sport, got.dport) == (want.sport, want.dport), where
        assert bytes(got.payload) == want.payload, where
        payload_len = want.payload_len if want.payload_len is not None else len(want.payload)
        assert got.payload_len == payload_len, where
        assert got.truncated == (want.payload_len is not None), where
        if want.tcp_flags is not None:
            assert got.flags == want.tcp_flags, where
            assert (got.seq, got.ack) == (want.seq, want.ack), where
        frame = capture.frames[number - 1]
        assert got.interface == frame.interface, where
        if frame.ts is not None:
            assert abs(got.ts - float(frame.ts)) <= 3e-7, where


@pytest.mark.parametrize("name", READABLE_NAMES)
def test_five_tuples_agree_with_tshark(crafted: dict, name: str) -> None:
    packets, _ = decode_file(crafted[name].path)
    ours = {number: FiveTuple(format_address(p.src), format_address(p.dst), p.proto, p.sport,
                              p.dport)
            for number, p in packets.items() if p.proto in (PROTO_TCP, PROTO_UDP)}
    assert ours == tshark_five_tuples(crafted[name].path)


@pytest.mark.parametrize("name", READABLE_NAMES)
def test_counts_by_protocol_and_link_type(crafted: dict, name: str) -> None:
    capture: CraftedCapture = crafted[name]
    _, decoder = decode_file(capture.path)
    stats = decoder.stats
    categories = Counter(frame.category for frame in capture.frames)
    assert stats.packets == len(capture.frames)
    assert stats.bytes == sum(len(f.data) for f in capture.frames)
    assert stats.wire_bytes == sum(f.wirelen for f in capture.frames)
    assert dict(stats.linktypes) == dict(Counter(f.linktype for f in capture.frames))
    for protocol in ("tcp", "udp", "icmp", "icmpv6", "arp"):
        assert stats.protocols.get(protocol, 0) == categories[protocol], protocol
    assert stats.truncated == sum(1 for f in capture.frames
                                  if f.expect is not None and f.expect.payload_len is not None)
    assert stats.malformed == 0
    unsupported = Counter(f.linktype for f in capture.frames if f.category == "unsupported-link")
    assert dict(stats.skipped_linktypes) == dict(unsupported)


def test_unsupported_link_type_is_counted_and_skipped(crafted: dict) -> None:
    packets, decoder = decode_file(crafted["link-ieee80211.pcap"].path)
    assert packets == {}
    assert decoder.stats.skipped_linktypes == {LINKTYPE_IEEE802_11: 3}


def test_fragment_counts(crafted: dict) -> None:
    _, decoder = decode_file(crafted["ipv4-fragments.pcap"].path)
    assert decoder.stats.protocols["ipv4-fragment"] == 13  # 8 + 5 fragments
    _, decoder = decode_file(crafted["ipv6-ext.pcap"].path)
    assert decoder.stats.protocols["ipv6-fragment"] == 11  # 4 + 4 + 3 fragments


def _raw_ipv4_fragment(ident: int, offset_units: int, more: bool, payload: bytes) -> bytes:
    flags_offset = (0x2000 if more else 0) | offset_units
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_offset, 64,
                         PROTO_UDP, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return header + payload


def test_fragment_buffers_are_bounded() -> None:
    """20,000 first fragments that never complete (30 MB) do not pile up in memory, and
    a datagram sent afterwards still reassembles."""
    decoder = Decoder()
    chunk = b"\xab" * 1480
    tracemalloc.start()
    try:
        for i in range(20_000):
            data = _raw_ipv4_fragment(i % 65536, 0, True, chunk)
            frame = Frame(1_700_000_000.0 + i * 1e-4, LINKTYPE_RAW, 0, data, len(data))
            assert decoder.decode(frame, i + 1) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"peak {peak} bytes"
    udp = struct.pack("!HHHH", 1000, 2000, 8 + 16, 0) + b"0123456789abcdef"
    first = _raw_ipv4_fragment(60_000, 0, True, udp[:16])
    last = _raw_ipv4_fragment(60_000, 2, False, udp[16:])
    t = 1_700_000_002.5
    assert decoder.decode(Frame(t, LINKTYPE_RAW, 0, first, len(first)), 20_001) is None
    packet = decoder.decode(Frame(t, LINKTYPE_RAW, 0, last, len(last)), 20_002)
    assert packet is not None
    assert (packet.sport, packet.dport, bytes(packet.payload)) == (1000, 2000,
                                                                  b"0123456789abcdef")


@pytest.mark.parametrize("cut", [1, 13, 14, 20, 33, 34, 40, 53])
def test_frames_cut_inside_headers_do_not_raise(crafted: dict, cut: int) -> None:
    """Any prefix of a frame decodes to a packet, None, or a counted malformation."""
    capture = crafted["pcap-usec-le.pcap"]
    decoder = Decoder()
    for number, frame in enumerate(capture.frames, 1):
        data = frame.data[:cut]
        decoder.decode(Frame(1.0, LINKTYPE_ETHERNET, 0, data, frame.wirelen), number)
    assert decoder.stats.packets == len(capture.frames)


def _ipv4(payload: bytes, proto: int, ihl_words: int = 5, total: int | None = None) -> bytes:
    options = b"\x01" * (ihl_words * 4 - 20)
    length = 20 + len(options) + len(payload) if total is None else total
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl_words, 0, length, 1, 0, 64, proto, 0,
                       bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + options + payload


@pytest.mark.parametrize("data, wirelen", [
    # caplen 42, wirelen 30 (issue 23): the record claims less than the UDP header
    (_ipv4(struct.pack("!HHHH", 1000, 69, 22, 0) + b"\x00\x01x\x00octet\x00", PROTO_UDP),
     30 - 14),
    # the same for TCP and ICMP
    (_ipv4(struct.pack("!HHIIBBHHH", 1, 2, 0, 0, 0x50, 0x18, 100, 0, 0) + b"data", 6), 21),
    (_ipv4(b"\x03\x03\x00\x00\x00\x00\x00\x00", 1), 22),
    # an IHL of 15 words (60 bytes) in a 28-byte frame
    (_ipv4(b"", PROTO_UDP)[:0] + bytes([0x4F]) + _ipv4(b"12345678", PROTO_UDP)[1:], 28),
    # a total length below the header it follows
    (_ipv4(struct.pack("!HHHH", 1, 2, 12, 0) + b"abcd", PROTO_UDP, total=23), 32),
], ids=["udp-wirelen-below-caplen", "tcp-wirelen-below-caplen", "icmp-wirelen-below-caplen",
        "ihl-beyond-frame", "total-inside-udp-header"])
def test_lengths_from_the_wire_are_clamped(data: bytes, wirelen: int) -> None:
    """Lengths taken from the wire never reach a slice or a payload length negative (the
    compiled decoder raised SystemError: Negative size passed to PyBytes_FromStringAndSize)."""
    decoder = Decoder()
    packet = decoder.decode(Frame(1.0, LINKTYPE_RAW, 0, data, wirelen), 1)
    if packet is not None:
        assert packet.payload_len >= 0
        assert len(packet.payload) >= 0


def test_wire_length_below_captured_length_takes_the_bytes_captured(tmp_path) -> None:
    """Records claiming a wire length of 1 for whole TCP segments (IPv4 and IPv6, the
    Ethernet fast path and, with a VLAN tag, the other): the TCP length is what the IP
    header says, as tshark takes it (a fuzzed capture gave -65, and `tcp ladder` a
    struct.error)."""
    from benchmarks.generate import PCAP_HEADER, RECORD
    from tests.conftest import require_tool
    from tests.craft import ethernet, tcp_datagram
    from tests.oracle import tshark_fields

    require_tool("tshark")
    datagrams = [tcp_datagram("10.0.0.1", "10.0.0.2", 1000, 80, b"x" * 13),
                 tcp_datagram("fd00::1", "fd00::2", 1000, 80, b"y" * 7)]
    frames = [ethernet(d) for d in datagrams] + [ethernet(d, [(0x8100, 5)]) for d in datagrams]
    path = tmp_path / "short-wire.pcap"
    with path.open("wb") as out:
        out.write(PCAP_HEADER)
        for number, frame in enumerate(frames):
            out.write(RECORD.pack(1_700_000_000, number, len(frame), 1) + frame)
    packets, _ = decode_file(path)
    ours = [packet.payload_len for packet in packets.values()]  # type: ignore[attr-defined]
    theirs = [int(row["tcp.len"]) for row in tshark_fields(path, ["tcp.len"])]
    assert ours == theirs == [13, 7, 13, 7]


def test_ipv6_extension_headers_past_the_frame_are_malformed() -> None:
    """A hop-by-hop header whose length points past the frame's end."""
    hop = bytes([17, 200]) + b"\x00" * 6  # next header UDP, 201 * 8 bytes long
    header = struct.pack("!IHBB16s16s", 6 << 28, len(hop), 0, 64, b"\x00" * 15 + b"\x01",
                         b"\x00" * 15 + b"\x02")
    data = header + hop
    decoder = Decoder()
    assert decoder.decode(Frame(1.0, LINKTYPE_RAW, 0, data, len(data)), 1) is None
    assert decoder.stats.malformed == 1
