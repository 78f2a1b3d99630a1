"""BPF capture filters (`-f`) on frames read from files, through libpcap.

libpcap compiles the expression once per link type and runs it on each frame, exactly as
tcpdump and tshark would; live capture hands the same program to the kernel instead.

libpcap's compiler is not linear in the size of the expression: `port 1 or port 2 or ...
or port 3000` held 3.5 GB and ran for minutes in its optimizer (tcpdump's too: it is the
same library), and it is a C call that Ctrl-C cannot interrupt. So the cost is bounded:

- a short expression (at most INLINE_CONNECTIVES and/or/not) is compiled here, which
  takes milliseconds;
- a longer one is compiled by a child process (`python -m analyzer.capture.bpf`) within
  COMPILE_SECONDS and COMPILE_MEMORY_MIB; past either the filter is refused with one line
  (InputError), and Ctrl-C ends the child with us;
- in the child, a flat sequence of terms joined by `or`/`and` whose terms each start with a
  primitive's keyword, or are a bare ID that takes the qualifiers of the term before it
  (the `2` of `port 1 or 2`: given them, `port 2`), is compiled a few terms at a time,
  and the programs are chained into
  one (`chain_programs`): each piece's accept or reject becomes a jump to the piece that
  decides next, as a short-circuit evaluation would. Any other expression is compiled
  whole, within the same limits.
"""

from __future__ import annotations

import ctypes
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from analyzer.capture.frame import Frame
from analyzer.errors import InputError

INLINE_CONNECTIVES = 24  # libpcap compiles this many and/or/not in well under 0.1 s
CHUNK_TERMS = 16  # terms compiled together in the child (the optimizer is fast at this size)
COMPILE_SECONDS = 15.0
COMPILE_MEMORY_MIB = 1024  # the child's address space: Python, libpcap and the compiler
BPF_MAXINSNS = 4096  # the most instructions a Linux socket filter may have

# Classic BPF opcodes (linux/filter.h, pcap/bpf.h) that chaining writes or recognizes.
BPF_LD_IMM = 0x00  # A = k
BPF_LDX_IMM = 0x01  # X = k
BPF_JA = 0x05  # pc += k
BPF_RET_K = 0x06  # return k (0: reject the packet; else keep up to k bytes)
BPF_RET = 0x06  # class bits of every return
BPF_CLASS_MASK = 0x07
ACCEPT_ALL = 262144  # what libpcap's programs return to keep a packet: its snapshot length
INSTRUCTION = struct.Struct("=HBBI")  # struct bpf_insn / sock_filter: code, jt, jf, k


class BpfInstruction(ctypes.Structure):
    # struct sock_filter (linux/filter.h), laid out as libpcap's struct bpf_insn
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _PktHdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long),
                ("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class Program:
    """A compiled filter: its instructions in memory we own, and the `bpf_program` that
    libpcap's and the kernel's interfaces take."""

    def __init__(self, instructions: bytes) -> None:
        count = len(instructions) // INSTRUCTION.size
        self.instructions = (BpfInstruction * count).from_buffer_copy(instructions)
        self.length = count
        self.header = _BpfProgram(count, ctypes.addressof(self.instructions))


def libpcap() -> ctypes.CDLL:
    import ctypes.util  # here: it imports subprocess and shutil (~4 ms of every start)

    name = ctypes.util.find_library("pcap")
    if name is None:
        raise InputError("-f needs libpcap (Debian package libpcap0.8), which is not installed")
    lib = ctypes.CDLL(name)
    lib.pcap_open_offline.restype = ctypes.c_void_p
    lib.pcap_open_offline.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
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
    order, which a `pcap_open_dead` handle does not. `linktype` is compiled at once, so a
    bad expression is reported before anything is read.
    """

    def __init__(self, expression: str, byte_order: str = "little", linktype: int = 1) -> None:
        self.expression = expression
        self.byte_order = byte_order
        self._lib = libpcap()
        self._programs: dict[int, Program] = {}
        self._header = _PktHdr()
        self.compile(linktype)

    def compile(self, linktype: int) -> Program:
        program = self._programs.get(linktype)
        if program is None:
            if connective_count(tokenize(self.expression)) <= INLINE_CONNECTIVES:
                code = compile_with_libpcap(self._lib, self.expression, linktype,
                                            self.byte_order)
            else:
                code = _compile_in_child(self.expression, linktype, self.byte_order)
            program = self._programs[linktype] = Program(code)
        return program

    def matches(self, frame: Frame) -> bool:
        return run_program(self._lib, self.compile(frame.linktype), frame, self._header)


def run_program(lib: ctypes.CDLL, program: Program, frame: Frame,
                header: _PktHdr | None = None) -> bool:
    """libpcap's verdict on the frame (`header`: one to reuse)."""
    if header is None:
        header = _PktHdr()
    header.caplen = len(frame.data)
    header.len = frame.wirelen
    return bool(lib.pcap_offline_filter(ctypes.byref(program.header), ctypes.byref(header),
                                        frame.data))


class _Handle:
    """A libpcap handle for compiling: opened from a pcap header (see FrameFilter)."""

    def __init__(self, lib: ctypes.CDLL, linktype: int, byte_order: str) -> None:
        self.lib = lib
        order = "<" if byte_order == "little" else ">"
        header = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, ACCEPT_ALL, linktype)
        with tempfile.NamedTemporaryFile(suffix=".pcap") as file:
            file.write(header)
            file.flush()
            errbuf = ctypes.create_string_buffer(256)
            handle = lib.pcap_open_offline(file.name.encode(), errbuf)
        if not handle:
            raise InputError(f"cannot compile filter for link type {linktype}: "
                             f"{errbuf.value.decode(errors='replace')}")
        self.handle: int = handle

    def compile(self, expression: str, shown: str, piece: bool = False) -> bytes:
        """The program's instructions, packed; `shown` names the filter in errors. A
        `piece` of a longer expression may reject every packet (`tcp and icmp` in
        `(tcp and icmp) or udp`), which libpcap's optimizer refuses as an error."""
        program = _BpfProgram()
        # the bytes the user typed (argv keeps undecodable ones as surrogates)
        if self.lib.pcap_compile(self.handle, ctypes.byref(program),
                                 expression.encode(errors="surrogateescape"),
                                 1, 0xFFFFFFFF) != 0:
            error = self.lib.pcap_geterr(self.handle).decode(errors="replace")
            if piece and "rejects all packets" in error:
                return INSTRUCTION.pack(BPF_RET_K, 0, 0, 0)
            if "alloc" in error:  # "malloc: Cannot allocate memory", under our limit
                raise MemoryError(error)
            raise InputError(f"bad filter {shown!r}: {error}")
        try:
            return ctypes.string_at(program.bf_insns, program.bf_len * INSTRUCTION.size)
        finally:
            self.lib.pcap_freecode(ctypes.byref(program))

    def close(self) -> None:
        self.lib.pcap_close(self.handle)


def compile_with_libpcap(lib: ctypes.CDLL, expression: str, linktype: int,
                         byte_order: str) -> bytes:
    """The whole expression compiled by libpcap here, however long that takes."""
    handle = _Handle(lib, linktype, byte_order)
    try:
        return handle.compile(expression, shorten(expression))
    finally:
        handle.close()


def compile_in_pieces(lib: ctypes.CDLL, expression: str, linktype: int,
                      byte_order: str) -> bytes:
    """The expression compiled a few terms at a time and chained (see the module
    docstring) where its shape allows, else whole."""
    handle = _Handle(lib, linktype, byte_order)
    try:
        return _compile_part(handle, expression, shorten(expression))
    finally:
        handle.close()


def _compile_part(handle: _Handle, expression: str, shown: str, piece: bool = False) -> bytes:
    if connective_count(tokenize(expression)) > INLINE_CONNECTIVES:
        split = split_terms(expression)
        if split is not None:
            negated, pieces = split
            programs = [_compile_part(handle, text, shown, True) for text, _ in pieces]
            chained = chain_programs(programs, [joiner for _, joiner in pieces])
            if chained is not None and negated:
                chained = negate_program(chained)
            if chained is not None:
                return chained
    return handle.compile(expression, shown, piece)


# -- the expression's top level ---------------------------------------------------------

_TOKEN = re.compile(r"\(|\)|&&|\|\||!=|!|&|\||[^\s()!&|]+")
_CONNECTIVES = {"and": "and", "&&": "and", "or": "or", "||": "or"}
_NEGATIONS = {"not", "!"}
OFFSET_KEYWORDS = frozenset({"vlan", "mpls", "pppoes", "geneve"})
# Words that begin a primitive (pcap-filter(7)): a term starting with one takes no
# qualifier from the term before it. Anything else (a bare host, number, net) may.
PRIMITIVE_KEYWORDS = frozenset("""
    dst src host net port portrange proto protochain gateway less greater len broadcast
    multicast inbound outbound ifindex pppoed
    ether fddi tr wlan ppp slip link arp rarp ip ip6 tcp udp sctp icmp icmp6 igmp igrp
    pim vrrp carp ah esp atalk aarp decnet lat sca moprc mopdl iso esis es-is isis is-is
    l1 l2 iih lsp snp csnp psnp clnp stp ipx netbeui llc type subtype dir
""".split())


# The qualifiers a bare ID takes from the primitive before it (libpcap's grammar.y:
# `pqual`, `dqual`, `aqual` and `ndaqual`), spelled as libpcap's scanner knows them.
QUALIFIERS = frozenset("""
    link ether ppp slip fddi tr wlan ip ip6 arp rarp sctp tcp udp icmp icmp6 igmp igrp
    pim vrrp carp ah esp atalk aarp decnet lat sca moprc mopdl iso esis es-is isis is-is
    l1 l2 iih lsp snp csnp psnp clnp stp ipx netbeui radio
    src dst addr1 addr2 addr3 addr4 ra ta host net port portrange gateway proto protochain
""".split())
# the qualifiers that need an ID after them (a direction, or what the ID is)
_ADDRESS_QUALIFIERS = frozenset("""
    src dst addr1 addr2 addr3 addr4 ra ta host net port portrange gateway proto protochain
""".split())
KEYWORDS = PRIMITIVE_KEYWORDS | QUALIFIERS | frozenset(
    {"and", "or", "not", "mask", "less", "greater", "len"})
# What a bare ID may look like: a number, address, network, name or port range (no
# operator, bracket or quote, which would make it something else).
_BARE_ID = re.compile(r"[\w.:/-]+")


def shorten(expression: str) -> str:
    """The expression as error messages show it: a long one by its start and length."""
    if len(expression) <= 80:
        return expression
    return f"{expression[:60]}... ({len(expression)} characters)"


def tokenize(expression: str) -> list[str]:
    return _TOKEN.findall(expression)


def connective_count(tokens: Sequence[str]) -> int:
    return sum(1 for token in tokens
               if token.lower() in _CONNECTIVES or token.lower() in _NEGATIONS)


def split_terms(expression: str) -> tuple[bool, list[tuple[str, str | None]]] | None:
    """The top-level terms of the expression grouped in pieces of up to CHUNK_TERMS, each
    with the connective that joins it to what comes before (None for the first); or for
    `not TERM`, (True, TERM's pieces). None when the expression is not a flat sequence of
    self-contained terms, or uses a primitive that changes how the rest of the filter
    reads the packet (`vlan`, `mpls`, `pppoes`, `geneve`: libpcap moves the offsets of
    every primitive after it).

    pcap-filter's `and` and `or` have equal precedence and group left to right, so
    `a or b and c` is `(a or b) and c`: a run of terms joined by the connective that
    joined the run to its left may be grouped (`x or a or b` = `x or (a or b)`)."""
    tokens = list(_TOKEN.finditer(expression))
    if any(token[0] in OFFSET_KEYWORDS for token in tokens):
        return None
    negated = False
    while tokens:
        if tokens[0][0] == "(" and _closing(tokens) == len(tokens) - 1:
            tokens = tokens[1:-1]  # `(A or B)` is `A or B`
        elif tokens[0][0] in _NEGATIONS and len(tokens) > 1 and tokens[1][0] == "(" \
                and _closing(tokens[1:]) == len(tokens) - 2:
            tokens = tokens[2:-1]  # `not (A or B)`: A or B, its verdict reversed
            negated = not negated
        else:
            break
    terms: list[list[re.Match[str]]] = [[]]
    joiners: list[str | None] = [None]
    depth = 0
    for token in tokens:
        text = token[0]
        lowered = text.lower()
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth < 0:
                return None
        elif lowered in _CONNECTIVES or lowered in _NEGATIONS:
            if text not in _CONNECTIVES and text not in _NEGATIONS:
                return None  # `OR`: leave the verdict on such spelling to libpcap
            if depth == 0 and text in _CONNECTIVES:
                terms.append([])
                joiners.append(_CONNECTIVES[text])
                continue
        terms[-1].append(token)
    if depth != 0 or len(terms) < 2:
        return None
    texts = _term_texts(expression, terms)
    if texts is None:
        return None
    pieces: list[tuple[str, str | None]] = []
    start = 0
    while start < len(terms):
        # the first piece is a prefix, grouped whatever its connective
        joiner = joiners[start] if start else joiners[1]
        end = start + 1
        budget = INLINE_CONNECTIVES - connective_count(tokenize(texts[start]))
        while end < len(terms) and end - start < CHUNK_TERMS and joiners[end] == joiner:
            budget -= 1 + connective_count(tokenize(texts[end]))
            if budget < 0:
                break
            end += 1
        pieces.append((f" {joiner} ".join(f"({text})" for text in texts[start:end]),
                       joiners[start]))
        start = end
    return negated, pieces


def _closing(tokens: Sequence[re.Match[str]]) -> int:
    """Where the parenthesis opened by tokens[0] closes (-1: nowhere)."""
    depth = 0
    for index, token in enumerate(tokens):
        depth += 1 if token[0] == "(" else -1 if token[0] == ")" else 0
        if depth == 0:
            return index
    return -1


def _term_texts(expression: str, terms: Sequence[Sequence[re.Match[str]]]
                ) -> list[str] | None:
    """Each term's text, a bare one (`2` in `port 1 or 2`, `not 2`) given the qualifiers
    it takes from the term before it (pcap-filter(7): "port 1 or 2" is "port 1 or port
    2"), so that it can be compiled apart; None when a term is neither self-contained
    nor such a bare one, or its qualifiers are not plain words (libpcap decides then)."""
    texts = []
    qualifiers: list[str] | None = None  # what a bare term takes: the last ones named
    for term in terms:
        text = expression[term[0].start():term[-1].end()]
        words = [token[0] for token in term]
        if _self_contained(term):
            named = [word for word in words if word not in _NEGATIONS]
            if all(word in QUALIFIERS for word in named) and \
                    any(word in _ADDRESS_QUALIFIERS for word in named):
                return None  # `src` of `src or dst port 1`: not a term of its own
            qualifiers = _qualifiers(words)
        else:
            negations = 0
            while negations < len(words) and words[negations] in _NEGATIONS:
                negations += 1
            if qualifiers is None or len(words) != negations + 1 or \
                    not _BARE_ID.fullmatch(words[-1]) or words[-1].lower() in KEYWORDS:
                return None
            text = " ".join([*words[:negations], *qualifiers, words[-1]])
        texts.append(text)
    return texts


def _qualifiers(words: Sequence[str]) -> list[str] | None:
    """The qualifiers of a primitive `[not] QUALIFIER... ID` (`tcp dst port 80`), which
    a bare term after it takes; None for any other shape (`tcp`, `less 100`, `(...)`)."""
    start = 0
    while start < len(words) and words[start] in _NEGATIONS:
        start += 1
    end = start
    while end < len(words) and words[end] in QUALIFIERS:
        end += 1
    if end == start or len(words) != end + 1 or not _BARE_ID.fullmatch(words[end]):
        return None
    return list(words[start:end])


def _self_contained(term: Sequence[re.Match[str]]) -> bool:
    for token in term:
        if token[0] == "(" or token[0] in _NEGATIONS:
            continue
        return token[0].split("[", 1)[0] in PRIMITIVE_KEYWORDS
    return False


def chain_programs(programs: Sequence[bytes], joiners: Sequence[str | None]) -> bytes | None:
    """One program from pieces evaluated left to right: after piece i, the next piece to
    run is the first later one joined by `and` when i accepted (the `or`s in between are
    already true), the first later one joined by `or` when i rejected; when there is none,
    i's verdict is the answer. Each piece starts with A and X cleared, as a program does.
    None when a piece returns something other than a constant (never seen from libpcap).
    """
    decoded = [list(INSTRUCTION.iter_unpack(code)) for code in programs]
    starts: list[int] = []
    position = 0
    for index, instructions in enumerate(decoded):
        position += 2 if index else 0  # the clearing of A and X
        starts.append(position)
        position += len(instructions)

    def next_joined_by(index: int, joiner: str) -> int | None:
        for later in range(index + 1, len(programs)):
            if joiners[later] == joiner:
                return later
        return None

    out = bytearray()
    for index, instructions in enumerate(decoded):
        if index:
            out += INSTRUCTION.pack(BPF_LD_IMM, 0, 0, 0) + INSTRUCTION.pack(BPF_LDX_IMM, 0, 0, 0)
        on_accept = next_joined_by(index, "and")
        on_reject = next_joined_by(index, "or")
        for offset, (code, jt, jf, k) in enumerate(instructions):
            if code & BPF_CLASS_MASK == BPF_RET:
                if code != BPF_RET_K:
                    return None
                target = on_reject if k == 0 else on_accept
                if target is not None:
                    pc = starts[index] + offset
                    code, jt, jf, k = BPF_JA, 0, 0, starts[target] - 2 - (pc + 1)
            out += INSTRUCTION.pack(code, jt, jf, k)
    return bytes(out)


def negate_program(code: bytes) -> bytes | None:
    """The program with every verdict reversed (reject -> accept the whole packet)."""
    out = bytearray()
    for instruction in INSTRUCTION.iter_unpack(code):
        op, jt, jf, k = instruction
        if op & BPF_CLASS_MASK == BPF_RET:
            if op != BPF_RET_K:
                return None
            k = 0 if k else ACCEPT_ALL
        out += INSTRUCTION.pack(op, jt, jf, k)
    return bytes(out)


# -- the child process ------------------------------------------------------------------

def _compile_in_child(expression: str, linktype: int, byte_order: str) -> bytes:
    """Compile in `python -m analyzer.capture.bpf` within the limits (module docstring)."""
    argv = [sys.executable, "-m", "analyzer.capture.bpf", str(linktype), byte_order]
    try:
        # run() kills the child on any exception here, Ctrl-C included
        done = subprocess.run(argv, input=expression.encode(errors="surrogateescape"),
                              capture_output=True, timeout=COMPILE_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise InputError(f"filter too complex: libpcap did not compile it within "
                         f"{COMPILE_SECONDS:g} s ({connective_count(tokenize(expression))} "
                         "and/or/not; `A or B or ...` whose terms each name their primitive, as in "
                         "`port 1 or port 2` rather than `port 1 or 2`, compiles fast)"
                         ) from None
    if done.returncode == 0:
        return done.stdout
    message = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode == 2 and message:
        raise InputError(message[-1])
    raise InputError(f"filter too complex: libpcap could not compile it within "
                     f"{COMPILE_MEMORY_MIB} MiB of memory")


def _child_main(argv: Sequence[str]) -> int:
    import resource

    limit = COMPILE_MEMORY_MIB << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    expression = sys.stdin.buffer.read().decode(errors="surrogateescape")
    try:
        code = compile_in_pieces(libpcap(), expression, int(argv[0]), argv[1])
    except InputError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MemoryError:
        return 3
    sys.stdout.buffer.write(code)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
