"""TCP and TFTP inside tunnels, against tshark (issue 23).

For each tunnel Wireshark decodes by default, a crafted capture holds a plain TCP
connection, then the same kind of connection tunnelled (inner IPv4 and inner IPv6), then
another plain one. tshark is the oracle: every TCP frame must land in the stream tshark
numbers it, with tshark's completeness, endpoints and Follow bytes; the capture summary
must name the tunnel, once per tunnelled frame. Encapsulations we do not decode are
counted with a warning, and the streams after them differ from tshark's by exactly the
streams hidden inside. sFlow's sampled headers (tshark numbers them; we decide they are
not connections) are in tests/decode/test_sflow.py.
"""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.gtp import GTP_U_Header, GTPPDUSessionContainer
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.l2tp import L2TP
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import wrpcap

from analyzer.capture import Frame
from analyzer.decode import Decoder
from analyzer.report.tcp_view import follow_text
from tests.conftest import REPO_DIR, require_tool
from tests.support.analyzer_cli import read_json, sha256
from tests.tcp.craft_tcp import Conversation, analyze
from tests.tcp.tshark_tcp import parse_follow_raw, tshark_follow, tshark_streams

# A tunnel: (the inner IP datagram, True when the client sent it) -> the whole frame.
Wrap = Callable[[Packet, bool], Packet]

# How deep tunnels may nest (a bound of ours: Wireshark has none short of its stack).
MAX_NESTING = 8

OUTER4 = ("192.0.2.1", "192.0.2.2")
OUTER6 = ("2001:db8::1", "2001:db8::2")


def _eth() -> Ether:
    return Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")


def _outer4(from_client: bool, **fields) -> IP:
    src, dst = OUTER4 if from_client else OUTER4[::-1]
    return IP(src=src, dst=dst, **fields)


def _outer6(from_client: bool, **fields) -> IPv6:
    src, dst = OUTER6 if from_client else OUTER6[::-1]
    return IPv6(src=src, dst=dst, **fields)


def _udp(from_client: bool, port: int, client_port: int = 50123) -> UDP:
    """A tunnel's UDP header: the client end's source port is its own (as VXLAN and
    Geneve hash flows onto source ports), the tunnel port is the far end's."""
    return UDP(sport=client_port, dport=port) if from_client else UDP(sport=port,
                                                                        dport=client_port)


def _ppp_protocol(inner: Packet) -> int:
    return 0x0021 if inner.version == 4 else 0x0057


# Per tunnel layer: how many times one tunnelled frame counts in the capture object's
# `tunnels` when it carries inner IPv4, and when it carries inner IPv6.
Layers = dict[str, tuple[int, int]]


def _each(*names: str) -> Layers:
    return {name: (1, 1) for name in names}


def _raw_ppp(inner: Packet, compressed: bool = False) -> bytes:
    """PPP's protocol field (one byte when compressed: IPv4 0x21, IPv6 0x57), the datagram."""
    protocol = _ppp_protocol(inner)
    return (bytes([protocol]) if compressed else struct.pack("!H", protocol)) + bytes(inner)


def _l2tp_data(inner: Packet) -> bytes:
    """An L2TPv2 data message with the length and sequence fields, carrying PPP."""
    ppp = b"\xff\x03" + _raw_ppp(inner)
    return struct.pack("!HHHHHH", 0x4802, 12 + len(ppp), 7, 9, 0, 0) + ppp


def _pptp(inner: Packet, from_client: bool) -> bytes:
    """PPTP's enhanced GRE (RFC 2637): key (payload length, call id), sequence and
    acknowledgment numbers, then PPP without address and control, protocol compressed."""
    ppp = _raw_ppp(inner, compressed=True)
    return struct.pack("!BBHHHII", 0x30, 0x81, 0x880B, len(ppp), 5 if from_client else 6,
                       11, 10) + ppp


def _vxlan_gpe(following: int) -> bytes:
    return bytes([0x0C, 0, 0, following]) + (4242).to_bytes(3, "big") + b"\0"


def _teredo(inner: Packet, from_client: bool) -> Packet:
    """Teredo carries IPv6 only: inner IPv4 goes in IPv6 first; the server's datagrams
    carry an origin indication (RFC 4380 5.1.1)."""
    ipv6 = inner if inner.version == 6 else IPv6(src="2001:0:4136:e378::1",
                                                 dst="2001:0:4136:e378::2") / inner
    origin = b"" if from_client else b"\0\0" + bytes(6)
    return _eth() / _outer4(from_client) / _udp(from_client, 3544) / Raw(origin + bytes(ipv6))



TUNNELS: dict[str, tuple[Wrap, Layers]] = {
    "gre": (lambda ip, c: _eth() / _outer4(c) / GRE() / ip, _each("gre")),
    "gre-key-seq-checksum": (
        lambda ip, c: _eth() / _outer4(c) / GRE(chksum_present=1, key_present=1,
                                                seqnum_present=1, key=77) / ip,
        _each("gre")),
    "gre-over-ipv6-in-vlan": (
        lambda ip, c: _eth() / Dot1Q(vlan=12) / _outer6(c) / GRE() / ip, _each("gre")),
    "gre-ethernet-bridging": (
        lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x6558) / _eth() / Dot1Q(vlan=7) / ip,
        _each("gre")),
    "erspan-i": (lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x88BE) / _eth() / ip,
                 _each("gre", "erspan")),
    "erspan-ii": (
        lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x88BE, seqnum_present=1)
        / ERSPAN_II(session_id=9, vlan=3) / _eth() / ip,
        _each("gre", "erspan")),
    "erspan-iii": (
        lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x22EB, seqnum_present=1)
        / ERSPAN_III(session_id=9, o=1) / ERSPAN_PlatformSpecific() / _eth() / ip,
        _each("gre", "erspan")),
    "ipv4-in-ipv4-or-ipv6-in-ipv4": (
        lambda ip, c: _eth() / _outer4(c) / ip, {"ipv4-in-ipv4": (1, 0), "ipv6-in-ipv4": (0, 1)}),
    "ipv4-in-ipv6-or-ipv6-in-ipv6": (
        lambda ip, c: _eth() / _outer6(c) / ip, {"ipv4-in-ipv6": (1, 0), "ipv6-in-ipv6": (0, 1)}),
    "vxlan": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 4789) / VXLAN(vni=5001) / _eth()
              / ip, _each("vxlan")),
    "geneve": (lambda ip, c: _eth() / _outer6(c) / _udp(c, 6081)
               / GENEVE(vni=7, proto=0x6558, optionlen=2,
                        options=GeneveOptions(classid=0x0102, type=0x80, length=1,
                                              data=b"\0\0\0\1")) / _eth() / ip,
               _each("geneve")),
    "geneve-ip": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 6081)
                  / GENEVE(vni=7, proto=0x0800 if ip.version == 4 else 0x86DD) / ip,
                  _each("geneve")),
    "gtp-u": (lambda ip, c: _eth() / _outer4(c) / UDP(sport=2152, dport=2152)
              / GTP_U_Header(teid=0x1234) / ip, _each("gtp-u")),
    "gtp-u-extension": (
        lambda ip, c: _eth() / _outer4(c) / _udp(c, 2152)
        / GTP_U_Header(teid=0x1234, E=1, S=1, seq=9, next_ex=0x85)
        / GTPPDUSessionContainer(type=1, QFI=5) / ip,
        _each("gtp-u")),
    "mpls": (lambda ip, c: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b",
                                 type=0x8847)
             / MPLS(label=1001, s=0, ttl=64) / MPLS(label=2002, s=1, ttl=64) / ip,
             _each("mpls")),
    "mpls-in-gre": (lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x8847)
                    / MPLS(label=16, s=1) / ip, _each("gre", "mpls")),
    "pppoe": (lambda ip, c: _eth() / PPPoE(sessionid=0x2A) / PPP(proto=_ppp_protocol(ip))
              / ip, _each("pppoe")),
    "gre-in-vxlan": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 4789) / VXLAN(vni=1)
                     / _eth() / IP(src="198.51.100.1", dst="198.51.100.2") / GRE() / ip,
                     _each("vxlan", "gre")),
    "etherip": (lambda ip, c: _eth() / _outer4(c, proto=97) / b"\x30\x00" / _eth() / ip,
                _each("etherip")),
    "mpls-in-ip": (lambda ip, c: _eth() / _outer4(c, proto=137) / MPLS(label=16, s=1) / ip,
                   _each("mpls")),
    "mpls-in-udp": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 6635)
                    / MPLS(label=16, s=0) / MPLS(label=17, s=1) / ip, _each("mpls")),
    "vxlan-gpe-ip": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 4790)
                     / _vxlan_gpe(1 if ip.version == 4 else 2) / ip, _each("vxlan-gpe")),
    "vxlan-gpe-ethernet": (lambda ip, c: _eth() / _outer6(c) / _udp(c, 4790) / _vxlan_gpe(3)
                           / _eth() / ip, _each("vxlan-gpe")),
    "vxlan-gpe-mpls": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 4790) / _vxlan_gpe(5)
                       / MPLS(label=16, s=1) / ip, _each("vxlan-gpe", "mpls")),
    "teredo": (_teredo, {"teredo": (1, 1), "ipv4-in-ipv6": (1, 0)}),
    "l2tp": (lambda ip, c: _eth() / _outer4(c) / UDP(sport=1701, dport=1701)
             / L2TP(tunnel_id=7, session_id=9) / b"\xff\x03" / _raw_ppp(ip),
             _each("l2tp")),
    "l2tp-length-sequence": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 1701)
                             / _l2tp_data(ip), _each("l2tp")),
    "pptp": (lambda ip, c: _eth() / _outer4(c, proto=47) / _pptp(ip, c), _each("pptp")),
    "gre-ppp": (lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x880B) / b"\xff\x03"
                / _raw_ppp(ip), _each("gre")),
    "wccp-v1": (lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x883E)
                / (ip if ip.version == 4 else IP(src="10.8.0.1", dst="10.8.0.2") / ip),
                {"gre": (1, 1), "wccp": (1, 1), "ipv6-in-ipv4": (0, 1)}),
    "wccp-v2": (lambda ip, c: _eth() / _outer4(c) / GRE(proto=0x883E) / b"\x00\x00\x00\x00"
                / (ip if ip.version == 4 else IP(src="10.8.0.1", dst="10.8.0.2") / ip),
                {"gre": (1, 1), "wccp": (1, 1), "ipv6-in-ipv4": (0, 1)}),
}


def _conversation(client: tuple[str, int], server: tuple[str, int], start: float,
                  isn: int) -> Conversation:
    conv = Conversation(client=client, server=server, client_isn=isn, server_isn=isn * 3,
                        start=start)
    conv.handshake(options=True)
    conv.send(True, "PA", b"GET /tunnelled HTTP/1.0\r\n\r\n")
    conv.send(False, "A")
    conv.send(False, "PA", b"HTTP/1.0 200 OK\r\n\r\n" + bytes(range(256)) * 3)
    conv.send(True, "A")
    return conv.close()


def _tunnelled(conv: Conversation, wrap: Wrap) -> list[Packet]:
    frames = []
    for frame in conv.packets:
        inner = frame.payload.copy()
        outer = wrap(inner, inner.src == conv.client[0])
        outer.time = frame.time
        frames.append(outer)
    return frames


def _tunnel_capture(path: Path, wrap: Wrap) -> tuple[Path, int, int]:
    """Plain, tunnelled inner IPv4, tunnelled inner IPv6, plain: (path, tunnelled frames
    of each)."""
    before = _conversation(("10.1.0.1", 40001), ("10.1.0.2", 80), 1_700_000_000.0, 1000)
    inner4 = _conversation(("10.9.0.1", 41000), ("10.9.0.2", 22), 1_700_000_001.0, 2000)
    inner6 = _conversation(("fd00::1", 41001), ("fd00::2", 443), 1_700_000_002.0, 3000)
    after = _conversation(("10.1.0.1", 40002), ("10.1.0.2", 80), 1_700_000_003.0, 4000)
    tunnelled4, tunnelled6 = _tunnelled(inner4, wrap), _tunnelled(inner6, wrap)
    wrpcap(str(path), before.packets + tunnelled4 + tunnelled6 + after.packets)
    return path, len(tunnelled4), len(tunnelled6)


def _our_follow_raw(path: Path, stream: int) -> str:
    done = subprocess.run([sys.executable, "-m", "analyzer", "tcp", "follow", str(path),
                           str(stream), "--format", "raw"], capture_output=True, cwd=REPO_DIR,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("latin-1")


def _capture_object(objects: list[dict]) -> dict:
    return next(obj for obj in objects if obj["type"] == "capture")


@pytest.mark.parametrize("kind", list(TUNNELS))
def test_tunnelled_streams_match_tshark(tmp_path: Path, kind: str) -> None:
    require_tool("tshark")
    wrap, layers = TUNNELS[kind]
    path, frames4, frames6 = _tunnel_capture(tmp_path / f"{kind}.pcap", wrap)
    oracle = tshark_streams(path)
    # the oracle itself: tshark finds both tunnelled connections between the plain ones
    assert sorted(set(oracle.frames.values())) == [0, 1, 2, 3]
    results = analyze(path)
    assert {rec.frame: r.stream for r in results for rec in r.records} == oracle.frames
    assert {r.stream: r.completeness for r in results} == oracle.completeness

    for result in results:
        assert follow_text(result, "raw") == tshark_follow(path, result.stream, "raw")

    objects = read_json(path)
    streams = {obj["stream"]: obj for obj in objects if obj["type"] == "tcp_stream"}
    assert sorted(streams) == [0, 1, 2, 3]
    for number, stream in streams.items():
        follow = parse_follow_raw(tshark_follow(path, number, "raw"))
        assert (stream["client"], stream["server"]) == (follow.node0, follow.node1)
        assert stream["client_sha256"] == sha256(follow.data0)
        assert stream["server_sha256"] == sha256(follow.data1)

    capture = _capture_object(objects)
    expected = {name: frames4 * per4 + frames6 * per6 for name, (per4, per6) in layers.items()}
    assert capture["tunnels"] == {name: count for name, count in expected.items() if count}
    assert capture["tunnels_not_decoded"] == {}
    assert capture["warnings"] == []


def test_same_inner_connection_in_two_tunnels_is_one_stream(tmp_path: Path) -> None:
    """Wireshark keys a tunnelled conversation by its own addresses and ports only: one
    connection whose packets arrive through two different GRE tunnels (and bare) is one
    stream, in tshark and here."""
    require_tool("tshark")
    conv = _conversation(("10.9.0.1", 41000), ("10.9.0.2", 22), 1_700_000_000.0, 2000)
    frames = []
    for index, frame in enumerate(conv.packets):
        inner = frame.payload.copy()
        if index % 3 == 0:
            outer = _eth() / IP(src="192.0.2.1", dst="192.0.2.2") / GRE() / inner
        elif index % 3 == 1:
            outer = _eth() / IP(src="198.51.100.7", dst="198.51.100.8") / GRE(
                key_present=1, key=5) / inner
        else:
            outer = frame
        outer.time = frame.time
        frames.append(outer)
    path = tmp_path / "two-tunnels.pcap"
    wrpcap(str(path), frames)
    oracle = tshark_streams(path)
    assert set(oracle.frames.values()) == {0}
    results = analyze(path)
    assert {rec.frame: r.stream for r in results for rec in r.records} == oracle.frames
    assert {r.stream: r.completeness for r in results} == oracle.completeness
    assert _our_follow_raw(path, 0) == tshark_follow(path, 0, "raw")  # the CLI's Follow


def _tftp_exchange(content: bytes, wrap: Wrap) -> list[Packet]:
    """An RRQ of `content` (512-byte blocks) and its DATA/ACKs, each datagram wrapped."""
    client, server = ("10.9.0.5", 49152), ("10.9.0.6", 69)
    transfer_port = 50500

    def udp(from_client: bool, sport: int, dport: int, payload: bytes) -> Packet:
        src, dst = (client[0], server[0]) if from_client else (server[0], client[0])
        return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)

    datagrams = [(True, udp(True, client[1], server[1], b"\0\x01tunnelled.bin\0octet\0"))]
    blocks = [content[i:i + 512] for i in range(0, len(content) + 1, 512)]
    for number, block in enumerate(blocks, 1):
        datagrams.append((False, udp(False, transfer_port, client[1],
                                     b"\0\x03" + number.to_bytes(2, "big") + block)))
        datagrams.append((True, udp(True, client[1], transfer_port,
                                    b"\0\x04" + number.to_bytes(2, "big"))))
    frames = []
    for index, (from_client, datagram) in enumerate(datagrams):
        frame = wrap(datagram, from_client)
        frame.time = 1_700_000_100.0 + index * 0.001
        frames.append(frame)
    return frames


@pytest.mark.parametrize("kind", ["vxlan", "gre", "gtp-u", "pppoe", "l2tp", "teredo"])
def test_tftp_transfer_inside_tunnel(tmp_path: Path, kind: str) -> None:
    require_tool("tshark")
    content = bytes((i * 7) % 251 for i in range(1300))
    path = tmp_path / f"tftp-{kind}.pcap"
    wrpcap(str(path), _tftp_exchange(content, TUNNELS[kind][0]))
    # the oracle sees a TFTP transfer inside the tunnel: the request and every block
    rows = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tftp", "-T", "fields",
                           "-e", "ip.src", "-e", "tftp.opcode", "-e", "tftp.source_file"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    assert rows.splitlines()[0].endswith("\t1\ttunnelled.bin")
    objects = read_json(path)
    transfers = [obj for obj in objects if obj["type"] == "tftp_transfer"]
    assert len(transfers) == 1
    transfer = transfers[0]
    assert transfer["client"] == "10.9.0.5:49152"
    assert transfer["server"] == "10.9.0.6:50500"
    assert transfer["filename"] == "tunnelled.bin"
    assert transfer["status"] == "complete"
    assert (transfer["bytes"], transfer["sha256"]) == (len(content), sha256(content))


def test_icmp_inside_tunnel_makes_no_stream(tmp_path: Path) -> None:
    """An echo inside GRE is decoded (counted under the tunnel), and is no stream."""
    require_tool("tshark")
    wrap = TUNNELS["gre"][0]
    frames = []
    for index, (from_client, datagram) in enumerate([
            (True, IP(src="10.9.0.1", dst="10.9.0.2") / ICMP(type=8, id=1, seq=1) / b"ping"),
            (False, IP(src="10.9.0.2", dst="10.9.0.1") / ICMP(type=0, id=1, seq=1) / b"ping")]):
        frame = wrap(datagram, from_client)
        frame.time = 1_700_000_000.0 + index
        frames.append(frame)
    after = _conversation(("10.1.0.1", 40002), ("10.1.0.2", 80), 1_700_000_003.0, 4000)
    path = tmp_path / "icmp-in-gre.pcap"
    wrpcap(str(path), frames + after.packets)
    oracle = tshark_streams(path)
    assert set(oracle.frames.values()) == {0}
    objects = read_json(path)
    assert [obj["stream"] for obj in objects if obj["type"] == "tcp_stream"] == [0]
    capture = _capture_object(objects)
    assert capture["tunnels"] == {"gre": 2}
    assert capture["protocols"]["icmp"] == 2
    assert capture["warnings"] == []


# Encapsulations Wireshark decodes that we count but do not decode.
NOT_DECODED: dict[str, tuple[Wrap, str]] = {
    "lisp-data": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 4341)
                  / b"\x80\x00\x00\x01\x00\x00\x00\x01" / ip, "lisp-data"),
    "capwap-data": (lambda ip, c: _eth() / _outer4(c) / _udp(c, 5247)
                    / b"\x00\x10\x02\x00\x00\x00\x00\x00" / _eth() / ip, "capwap-data"),
}


@pytest.mark.parametrize("kind", list(NOT_DECODED))
def test_encapsulation_not_decoded_is_counted_with_a_warning(tmp_path: Path,
                                                             kind: str) -> None:
    """tshark finds the connection inside; we warn that we did not look, and every later
    stream number is tshark's minus the one stream hidden inside."""
    require_tool("tshark")
    wrap, name = NOT_DECODED[kind]
    inner = _conversation(("10.9.0.1", 41000), ("10.9.0.2", 22), 1_700_000_000.0, 2000)
    after1 = _conversation(("10.1.0.1", 40001), ("10.1.0.2", 80), 1_700_000_001.0, 3000)
    after2 = _conversation(("10.1.0.1", 40002), ("10.1.0.2", 80), 1_700_000_002.0, 4000)
    path = tmp_path / f"{kind}.pcap"
    hidden = _tunnelled(inner, wrap)
    wrpcap(str(path), hidden + after1.packets + after2.packets)
    oracle = tshark_streams(path)
    assert {oracle.frames[n] for n in range(1, len(hidden) + 1)} == {0}  # tshark's view
    results = analyze(path)
    ours = {rec.frame: r.stream for r in results for rec in r.records}
    assert ours == {frame: stream - 1 for frame, stream in oracle.frames.items()
                    if frame > len(hidden)}
    capture = _capture_object(read_json(path))
    assert capture["tunnels_not_decoded"] == {name: len(hidden)}
    assert len(capture["warnings"]) == 1
    assert name in capture["warnings"][0] and "not analyzed" in capture["warnings"][0]


def test_fragmented_outer_datagram_is_reassembled_before_the_tunnel(tmp_path: Path) -> None:
    """The outer IPv4 datagram of a GRE tunnel cut into fragments: tshark reassembles it,
    then finds the connection inside; so do we (the data lands at the last fragment)."""
    require_tool("tshark")
    conv = _conversation(("10.9.0.1", 41000), ("10.9.0.2", 22), 1_700_000_000.0, 2000)
    frames = []
    for index, frame in enumerate(conv.packets):
        inner = frame.payload.copy()
        outer = _outer4(inner.src == conv.client[0], id=100 + index) / GRE() / inner
        pieces = fragment(outer, fragsize=256) if len(outer) > 300 else [outer]
        for piece in pieces:
            wrapped = _eth() / piece
            wrapped.time = frame.time
            frames.append(wrapped)
    assert len(frames) > len(conv.packets)  # the server's data was cut
    path = tmp_path / "gre-fragments.pcap"
    wrpcap(str(path), frames)
    oracle = tshark_streams(path)
    results = analyze(path)
    assert {rec.frame: r.stream for r in results for rec in r.records} == oracle.frames
    assert follow_text(results[0], "raw") == tshark_follow(path, 0, "raw")


def _decode_all(frames: list[bytes]) -> tuple[list, Decoder]:
    decoder = Decoder()
    packets = [decoder.decode(Frame(1_700_000_000.0 + n, 1, 0, data, len(data)), n)
               for n, data in enumerate(frames, 1)]
    return packets, decoder


def test_tunnels_nested_too_deep_are_malformed_not_a_crash() -> None:
    inner = IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=1, dport=2, flags="S")
    for depth in (MAX_NESTING, MAX_NESTING + 1, 2000):
        layers = bytes(inner)
        for _ in range(depth):  # one layer at a time (scapy recurses through nesting)
            layers = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / GRE(proto=0x0800)
                           / Raw(layers))
        ethernet = bytes(Ether(dst="02:00:00:00:00:0b", type=0x0800))
        packets, decoder = _decode_all([ethernet + layers])
        if depth <= MAX_NESTING:
            assert packets[0] is not None and packets[0].dport == 2
            assert decoder.stats.malformed == 0
        else:
            assert packets == [None]
            assert decoder.stats.malformed == 1
            assert "nested" in decoder.stats.warnings[0]


def test_tunnel_headers_cut_anywhere_do_not_raise(tmp_path: Path) -> None:
    """Every tunnel's frame cut at every length, and with each byte flipped: the decoder
    returns a packet or None and counts, never raises (compiled or not)."""
    for wrap, _ in TUNNELS.values():
        frame = bytes(wrap(IP(src="10.9.0.1", dst="10.9.0.2") / TCP(sport=1, dport=2)
                           / b"data", True))
        variants = [frame[:cut] for cut in range(len(frame))]
        variants += [frame[:i] + bytes([frame[i] ^ 0xFF]) + frame[i + 1:]
                     for i in range(len(frame))]
        _decode_all(variants)


def test_two_process_read_gives_the_same_tunnelled_streams(tmp_path: Path) -> None:
    """`read --json` on two cores (analyzer/run/parallel.py) splits connections by their
    inner addresses and ports: every tunnel kind in one capture, same output as one
    process (whose numbering the tests above check against tshark)."""
    from tests.run.test_parallel import one_process_lines, two_process_lines

    frames = []
    for index, (wrap, _) in enumerate(TUNNELS.values()):
        start = 1_700_000_000.0 + index * 10
        for offset, (client, server) in enumerate([
                (("10.9.0.1", 41000 + index), ("10.9.0.2", 22)),
                (("fd00::1", 42000 + index), ("fd00::2", 443))]):
            conv = _conversation(client, server, start + offset, 1000 + index)
            frames += _tunnelled(conv, wrap)
        frames += _conversation(("10.1.0.1", 40000 + index), ("10.1.0.2", 80), start + 2,
                                5000 + index).packets
    path = tmp_path / "all-tunnels.pcap"
    wrpcap(str(path), frames)
    single = one_process_lines(path)
    assert sum('"type": "tcp_stream"' in line for line in single) == 3 * len(TUNNELS)
    assert two_process_lines(path) == single
