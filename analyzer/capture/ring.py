"""A TPACKET_V3 receive ring on a packet socket (PACKET_MMAP), as libpcap uses on Linux.

The kernel packs frames into blocks of a ring shared with us, so a burst waits in
RING_BYTES of memory (small packets take about 100 bytes each, not a socket buffer's
~1 KiB per packet) and we read them without a system call each. A block is ours while
its status has TP_STATUS_USER; we hand it back by writing TP_STATUS_KERNEL.

Layouts (linux/if_packet.h): a block starts with `tpacket_block_desc` (version,
offset_to_priv, then `tpacket_hdr_v1`: block_status, num_pkts, offset_to_first_pkt, ...);
each frame with `tpacket3_hdr` (next_offset, sec, nsec, snaplen, len, status, mac, net,
vlan tci, vlan tpid), followed by its `sockaddr_ll` at TPACKET_ALIGN(48).
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100
ARPHRD_ETHER = 1

BLOCK_BYTES = 1 << 20  # a block is handed over when full or after BLOCK_TIMEOUT_MS
BLOCKS = 64  # 64 MiB in all
BLOCK_TIMEOUT_MS = 50  # a quiet link's packets still reach us this soon
FRAME_BYTES = 1 << 16  # the kernel's bound for one frame (a block holds several)

_BLOCK_HEADER = struct.Struct("=III")  # block_status, num_pkts, offset_to_first_pkt (at 8)
# tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan_tci,
# vlan_tpid (and padding)
_FRAME_HEADER = struct.Struct("=IIIIIIHHIIH")
_ADDRESS = struct.Struct("=HHiHBB")  # sockaddr_ll: family, protocol, ifindex, hatype, ...
_ADDRESS_OFFSET = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr))

# (interface index, hardware type, packet type, ns, frame bytes, length on the wire)
Deliver = Callable[[int, int, int, int, bytes, int], None]


class PacketRing:
    """The ring on `sock` (a bound packet socket); OSError when the kernel refuses it."""

    def __init__(self, sock: socket.socket, blocks: int = BLOCKS) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        request = struct.pack("=7I", BLOCK_BYTES, blocks, FRAME_BYTES,
                              BLOCK_BYTES // FRAME_BYTES * blocks, BLOCK_TIMEOUT_MS, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self.blocks = blocks
        self.memory = mmap.mmap(sock.fileno(), BLOCK_BYTES * blocks,
                                mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.next_block = 0

    def ready_blocks(self) -> int:
        """How many blocks, from the next one on, the kernel has handed over."""
        count = 0
        while count < self.blocks:
            offset = (self.next_block + count) % self.blocks * BLOCK_BYTES + 8
            if not _BLOCK_HEADER.unpack_from(self.memory, offset)[0] & TP_STATUS_USER:
                break
            count += 1
        return count

    def read_block(self, deliver: Deliver, wanted: Callable[[], bool]) -> bool:
        """Deliver the frames of the next block if it is ours, then hand it back; False
        when it is not ready. Stops early (the rest of the block is dropped, as it
        would be by a count) once `wanted()` turns False."""
        memory = self.memory
        base = self.next_block * BLOCK_BYTES
        status, count, offset = _BLOCK_HEADER.unpack_from(memory, base + 8)
        if not status & TP_STATUS_USER:
            return False
        position = base + offset
        for _ in range(count):
            if not wanted():
                break
            (next_offset, sec, nsec, snaplen, length, frame_status, mac, _net, _hash, tci,
             tpid) = _FRAME_HEADER.unpack_from(memory, position)
            _family, _proto, index, hatype, pkttype, _halen = _ADDRESS.unpack_from(
                memory, position + _ADDRESS_OFFSET)
            data = memory[position + mac:position + mac + snaplen]
            if frame_status & TP_STATUS_VLAN_VALID and hatype == ARPHRD_ETHER \
                    and len(data) >= 12:
                # The kernel took the 802.1Q tag out (hardware offload); put it back, as
                # libpcap does, so the frame is what was on the wire.
                kind = tpid if frame_status & TP_STATUS_VLAN_TPID_VALID else ETH_P_8021Q
                data = data[:12] + struct.pack("!HH", kind, tci) + data[12:]
                length += 4
            deliver(index, hatype, pkttype, sec * 1_000_000_000 + nsec, data, length)
            position += next_offset
        struct.pack_into("=I", memory, base + 8, TP_STATUS_KERNEL)
        self.next_block = (self.next_block + 1) % self.blocks
        return True

    def close(self) -> None:
        self.memory.close()
