"""BPF capture filters (`-f`) on frames read from files, through libpcap.

libpcap compiles the expression once per link type and runs it on each frame, exactly as
tcpdump and tshark would; live capture hands the same expression to the kernel instead.
"""

from __future__ import annotations

import ctypes
import struct
import tempfile

from analyzer.capture.frame import Frame
from analyzer.errors import InputError


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long),
                ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


def _libpcap() -> ctypes.CDLL:
    import ctypes.util  # here: it imports subprocess and shutil (~4 ms of every start)

    name = ctypes.util.find_library("pcap")
    if name is None:
        raise InputError("-f needs libpcap (Debian package libpcap0.8), which is not installed")
    lib = ctypes.CDLL(name)
    lib.pcap_open_offline.restype = ctypes.c_void_p
    lib.pcap_open_offline.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_offline_filter.argtypes = [ctypes.POINTER(_BpfProgram), ctypes.POINTER(_PktHdr),
                                        ctypes.c_char_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


class FrameFilter:
    """A BPF expression applied to frames of any link type.

    Compiled on a handle opened from a pcap header with the capture's link type and
    byte order, as tcpdump does when it reads the file: for BSD loopback (NULL, LOOP)
    libpcap then tests the address families of every BSD flavour in the file's byte
    order, which a `pcap_open_dead` handle does not.
    """

    def __init__(self, expression: str, byte_order: str = "little") -> None:
        self.expression = expression
        self.byte_order = byte_order
        self._lib = _libpcap()
        self._programs: dict[int, _BpfProgram] = {}
        self._header = _PktHdr()
        self.compile(1)  # report a syntax error before reading anything

    def compile(self, linktype: int) -> _BpfProgram:
        program = self._programs.get(linktype)
        if program is None:
            handle = self._open_handle(linktype)
            program = _BpfProgram()
            if self._lib.pcap_compile(handle, ctypes.byref(program),
                                      self.expression.encode(), 1, 0xFFFFFFFF) != 0:
                error = self._lib.pcap_geterr(handle).decode(errors="replace")
                self._lib.pcap_close(handle)
                raise InputError(f"bad filter {self.expression!r}: {error}")
            self._lib.pcap_close(handle)
            self._programs[linktype] = program
        return program

    def _open_handle(self, linktype: int) -> int:
        order = "<" if self.byte_order == "little" else ">"
        header = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype)
        with tempfile.NamedTemporaryFile(suffix=".pcap") as file:
            file.write(header)
            file.flush()
            errbuf = ctypes.create_string_buffer(256)
            handle = self._lib.pcap_open_offline(file.name.encode(), errbuf)
        if not handle:
            raise InputError(f"cannot compile filter for link type {linktype}: "
                             f"{errbuf.value.decode(errors='replace')}")
        return handle

    def matches(self, frame: Frame) -> bool:
        header = self._header
        header.caplen = len(frame.data)
        header.len = frame.wirelen
        program = self.compile(frame.linktype)
        return bool(self._lib.pcap_offline_filter(ctypes.byref(program), ctypes.byref(header),
                                                  frame.data))
