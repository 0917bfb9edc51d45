"""One ELF file's symbols, source lines and call frame information, at a load bias.

`ElfImage(path, bias)` answers, for an address as the target sees it (the file's
address + `bias`: 0 for the kernel and ET_EXEC apps, the kernel's
`process.load_base` for a static-pie):

    symbolize(address) -> (function name or None, offset from its start)
    source(address)    -> (file, line) or None, from the DWARF line programs
    cfi(address)       -> the unwind row (CFA rule, register rules) or None,
                          from .eh_frame (through .eh_frame_hdr's sorted table
                          when the file has one) or else .debug_frame
    contains(address)  -> whether a PT_LOAD of the file covers it

Nothing here imports gdb.  What a file holds is parsed once per process and
kept while the file is the same (path, mtime and size), whatever its bias:
the symbol table with `struct` straight from the section's bytes, the FDE index
from .eh_frame_hdr (or one pass over .eh_frame's entry headers when there is no
header, as in a non-pie static glibc program), FDEs and CIEs decoded only when
an address in them is asked for, and line programs only for the compile unit
.debug_aranges says covers the address (pyelftools).

Aliases.  Static glibc has several names at one address (`raise`, `gsignal`,
`__GI_raise`...).  `symbolize` takes the innermost symbol that contains the
address (the greatest start among sized FUNC/IFUNC/NOTYPE symbols whose
[start, start + size) holds it); when several names share that start it picks,
in this order: a GLOBAL over a WEAK over a LOCAL binding, a FUNC/IFUNC over a
NOTYPE, the fewest leading underscores, the shortest name, then the
alphabetically first.  An address no sized symbol contains takes the nearest
preceding size-0 label in the same executable section (entry.S's
`syscall_exit`), as GDB's minimal symbols do.  `aliases(address)` lists every
name at the chosen symbol's start.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

U64 = (1 << 64) - 1

# ELF constants
SHT_SYMTAB = 2
SHF_EXECINSTR = 0x4
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC = 0, 1, 2, 10
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
PT_LOAD = 1
ET_DYN = 3
BINDING_RANK = {STB_GLOBAL: 0, STB_WEAK: 1, STB_LOCAL: 2}

# DWARF register numbers (x86-64 psABI) and our register names.
DWARF_REGISTERS = (
    "rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip",
)  # fmt: skip
RIP = 16
RSP = 7
RFLAGS = 49
REGISTER_NAMES = {number: name for number, name in enumerate(DWARF_REGISTERS)} | {RFLAGS: "eflags"}
REGISTER_NUMBERS = {name: number for number, name in REGISTER_NAMES.items()} | {"rflags": RFLAGS}


class SymbolsError(Exception):
    """A file that is not a readable ELF, or malformed unwind information."""


# --- little readers -------------------------------------------------------------------------


def uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def sleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos


# DW_EH_PE_* value formats: (struct format, size)
_EH_FORMATS = {
    0x00: ("<Q", 8), 0x02: ("<H", 2), 0x03: ("<I", 4), 0x04: ("<Q", 8),
    0x0A: ("<h", 2), 0x0B: ("<i", 4), 0x0C: ("<q", 8),
}  # fmt: skip
DW_EH_PE_omit = 0xFF
DW_EH_PE_pcrel = 0x10
DW_EH_PE_datarel = 0x30


def read_encoded(
    data: bytes, pos: int, encoding: int, section_address: int, datarel: int = 0
) -> tuple[int, int]:
    """A DW_EH_PE_-encoded pointer at data[pos]; (value, next position)."""
    if encoding == DW_EH_PE_omit:
        return 0, pos
    form = encoding & 0x0F
    start = pos
    if form == 0x01:
        value, pos = uleb(data, pos)
    elif form == 0x09:
        value, pos = sleb(data, pos)
    elif form in _EH_FORMATS:
        fmt, size = _EH_FORMATS[form]
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += size
    else:
        raise SymbolsError(f"unsupported pointer encoding {encoding:#x}")
    application = encoding & 0x70
    if application == DW_EH_PE_pcrel:
        value += section_address + start
    elif application == DW_EH_PE_datarel:
        value += datarel
    elif application:
        raise SymbolsError(f"unsupported pointer application {encoding:#x}")
    return value & U64, pos


# --- call frame information -----------------------------------------------------------------

# Register rules: (kind, argument). kinds: "undefined", "same", "offset" (saved at
# CFA + N), "val_offset" (is CFA + N), "register" (in register N), "expression"
# (saved at the address the expression computes), "val_expression" (is its value).
# The CFA rule: ("register", (reg, offset)) or ("expression", bytes).


@dataclass
class CfiRow:
    """The unwind rules in effect at one address."""

    cfa: tuple[str, object]
    rules: dict[int, tuple[str, object]]
    return_register: int = RIP
    signal: bool = False  # the CIE's augmentation has 'S': an interrupted context
    start: int = 0  # the FDE's range, as the target sees it
    end: int = 0


@dataclass
class _Cie:
    code_align: int
    data_align: int
    return_register: int
    fde_encoding: int
    augmented: bool
    signal: bool
    instructions: bytes
    initial: tuple[tuple[str, object], dict[int, tuple[str, object]]] | None = None


@dataclass
class _FrameSection:
    """One of .eh_frame / .debug_frame: the bytes and a sorted index of its FDEs."""

    data: bytes
    address: int  # the section's link address (.debug_frame: 0)
    eh: bool  # .eh_frame's CIE pointers and ids differ from .debug_frame's
    starts: list[int] = field(default_factory=list)  # FDE pc_begin, sorted
    offsets: list[int] = field(default_factory=list)  # the FDE's offset in data
    cies: dict[int, _Cie] = field(default_factory=dict)

    def _length(self, offset: int) -> tuple[int, int]:
        (length,) = struct.unpack_from("<I", self.data, offset)
        if length == 0xFFFFFFFF:
            (length,) = struct.unpack_from("<Q", self.data, offset + 4)
            return length, offset + 12
        return length, offset + 4

    def _id_size(self, offset: int) -> int:
        (length,) = struct.unpack_from("<I", self.data, offset)
        return 8 if length == 0xFFFFFFFF else 4

    def is_cie(self, offset: int) -> tuple[bool, int, int, int]:
        """(is a CIE, the CIE's offset if an FDE, where the body starts, where it ends)."""
        length, body = self._length(offset)
        end = body + length
        size = self._id_size(offset)
        cie_id = int.from_bytes(self.data[body : body + size], "little")
        if self.eh:
            return cie_id == 0, body - cie_id, body + size, end
        return cie_id == (1 << (8 * size)) - 1, cie_id, body + size, end

    def cie(self, offset: int) -> _Cie:
        if offset in self.cies:
            return self.cies[offset]
        data = self.data
        is_cie, _, pos, end = self.is_cie(offset)
        if not is_cie:
            raise SymbolsError(f"no CIE at frame section offset {offset:#x}")
        version = data[pos]
        pos += 1
        nul = data.index(b"\0", pos)
        augmentation = data[pos:nul].decode("ascii", "replace")
        pos = nul + 1
        if "eh" in augmentation:
            pos += 8
        if not self.eh and version >= 4:
            pos += 2  # address_size, segment_selector_size
        code_align, pos = uleb(data, pos)
        data_align, pos = sleb(data, pos)
        if version == 1:
            return_register, pos = data[pos], pos + 1
        else:
            return_register, pos = uleb(data, pos)
        fde_encoding = 0x00  # absolute 8-byte pointers (.debug_frame)
        augmented = augmentation.startswith("z")
        if augmented:
            length, pos = uleb(data, pos)
            after = pos + length
            for char in augmentation[1:]:
                if char == "R":
                    fde_encoding, pos = data[pos], pos + 1
                elif char == "L":
                    pos += 1
                elif char == "P":
                    encoding, pos = data[pos], pos + 1
                    _, pos = read_encoded(data, pos, encoding & 0x7F, self.address)
            pos = after
        cie = _Cie(
            code_align,
            data_align,
            return_register,
            fde_encoding,
            augmented,
            "S" in augmentation,
            data[pos:end],
        )
        self.cies[offset] = cie
        return cie

    def fde_header(self, offset: int) -> tuple[_Cie, int, int, int, int] | None:
        """(CIE, pc_begin, pc_end, instructions start, end) of the FDE at offset, or None
        for a CIE."""
        is_cie, cie_offset, pos, end = self.is_cie(offset)
        if is_cie:
            return None
        cie = self.cie(cie_offset)
        begin, pos = read_encoded(self.data, pos, cie.fde_encoding, self.address)
        size, pos = read_encoded(self.data, pos, cie.fde_encoding & 0x0F, self.address)
        if cie.augmented:
            length, pos = uleb(self.data, pos)
            pos += length
        return cie, begin, begin + size, pos, end

    def scan(self) -> None:
        """Index every FDE by its start (one pass over the entries' headers)."""
        entries = []
        offset = 0
        data = self.data
        while offset + 4 <= len(data):
            length, body = self._length(offset)
            if length == 0:
                if self.eh:
                    break  # .eh_frame's terminator
                offset = body
                continue
            header = self.fde_header(offset)
            if header is not None and header[2] > header[1]:
                entries.append((header[1], offset))
            offset = body + length
        entries.sort()
        self.starts = [start for start, _ in entries]
        self.offsets = [offset for _, offset in entries]

    def find(self, address: int) -> tuple[_Cie, int, int, int, int] | None:
        index = bisect.bisect_right(self.starts, address) - 1
        while index >= 0:
            header = self.fde_header(self.offsets[index])
            if header is not None and header[1] <= address < header[2]:
                return header
            if (
                header is not None
                and header[2] <= address
                and index
                and self.starts[index - 1] == self.starts[index]
            ):
                index -= 1  # a zero-length or overlapping FDE at the same start
                continue
            return None
        return None


def execute_cfi(
    instructions: bytes,
    cie: _Cie,
    address: int | None,
    start: int,
    cfa: tuple[str, object],
    rules: dict[int, tuple[str, object]],
    initial: dict[int, tuple[str, object]] | None = None,
) -> tuple[tuple[str, object], dict[int, tuple[str, object]]]:
    """Run DW_CFA_ instructions from `start` until the row for `address` (None: all of
    them, a CIE's initial instructions); returns the CFA rule and register rules."""
    data = instructions
    pos = 0
    loc = start
    stack: list[tuple[tuple[str, object], dict[int, tuple[str, object]]]] = []
    code_align, data_align = cie.code_align, cie.data_align
    initial = initial or {}
    while pos < len(data):
        op = data[pos]
        pos += 1
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:  # advance_loc
            loc += low * code_align
            if address is not None and loc > address:
                break
            continue
        if high == 0x80:  # offset
            value, pos = uleb(data, pos)
            rules[low] = ("offset", value * data_align)
            continue
        if high == 0xC0:  # restore
            rules.pop(low, None)
            if low in initial:
                rules[low] = initial[low]
            continue
        if op in (0x02, 0x03, 0x04, 0x01):  # advance_loc1/2/4, set_loc
            if op == 0x01:
                loc, pos = read_encoded(data, pos, cie.fde_encoding & 0x0F, 0)
            else:
                size = {0x02: 1, 0x03: 2, 0x04: 4}[op]
                loc += int.from_bytes(data[pos : pos + size], "little") * code_align
                pos += size
            if address is not None and loc > address:
                break
        elif op == 0x00:  # nop
            pass
        elif op in (0x05, 0x11, 0x14, 0x15):  # offset_extended(_sf), val_offset(_sf)
            register, pos = uleb(data, pos)
            if op in (0x05, 0x14):
                value, pos = uleb(data, pos)
            else:
                value, pos = sleb(data, pos)
            kind = "offset" if op in (0x05, 0x11) else "val_offset"
            rules[register] = (kind, value * data_align)
        elif op == 0x06:  # restore_extended
            register, pos = uleb(data, pos)
            rules.pop(register, None)
            if register in initial:
                rules[register] = initial[register]
        elif op == 0x07:  # undefined
            register, pos = uleb(data, pos)
            rules[register] = ("undefined", None)
        elif op == 0x08:  # same_value
            register, pos = uleb(data, pos)
            rules[register] = ("same", None)
        elif op == 0x09:  # register
            register, pos = uleb(data, pos)
            other, pos = uleb(data, pos)
            rules[register] = ("register", other)
        elif op == 0x0A:  # remember_state
            stack.append((cfa, dict(rules)))
        elif op == 0x0B:  # restore_state
            if stack:
                cfa, rules = stack.pop()
        elif op in (0x0C, 0x12):  # def_cfa, def_cfa_sf
            register, pos = uleb(data, pos)
            if op == 0x0C:
                offset, pos = uleb(data, pos)
            else:
                offset, pos = sleb(data, pos)
                offset *= data_align
            cfa = ("register", (register, offset))
        elif op == 0x0D:  # def_cfa_register
            register, pos = uleb(data, pos)
            old = cfa[1] if cfa[0] == "register" else (register, 0)
            cfa = ("register", (register, old[1]))  # type: ignore[index]
        elif op in (0x0E, 0x13):  # def_cfa_offset, def_cfa_offset_sf
            if op == 0x0E:
                offset, pos = uleb(data, pos)
            else:
                offset, pos = sleb(data, pos)
                offset *= data_align
            register = cfa[1][0] if cfa[0] == "register" else RSP  # type: ignore[index]
            cfa = ("register", (register, offset))
        elif op == 0x0F:  # def_cfa_expression
            length, pos = uleb(data, pos)
            cfa = ("expression", data[pos : pos + length])
            pos += length
        elif op in (0x10, 0x16):  # expression, val_expression
            register, pos = uleb(data, pos)
            length, pos = uleb(data, pos)
            kind = "expression" if op == 0x10 else "val_expression"
            rules[register] = (kind, data[pos : pos + length])
            pos += length
        elif op == 0x2E:  # GNU_args_size
            _, pos = uleb(data, pos)
        elif op == 0x2F:  # GNU_negative_offset_extended
            register, pos = uleb(data, pos)
            value, pos = uleb(data, pos)
            rules[register] = ("offset", -value * data_align)
        else:
            raise SymbolsError(f"unsupported call frame instruction {op:#x}")
    return cfa, rules


def evaluate_expression(expression: bytes, register, memory, push: list[int] | None = None) -> int:
    """A DWARF expression's value (a location description's address): register(n) gives
    DWARF register n's value, memory(address, size) reads. The operations CFI uses:
    constants, DW_OP_breg*/bregx, DW_OP_deref(_size), arithmetic and stack ops."""
    stack = list(push or [])
    data = expression
    pos = 0

    def pop() -> int:
        if not stack:
            raise SymbolsError("DWARF expression stack underflow")
        return stack.pop()

    while pos < len(data):
        op = data[pos]
        pos += 1
        if 0x30 <= op <= 0x4F:
            stack.append(op - 0x30)
        elif 0x70 <= op <= 0x8F:
            offset, pos = sleb(data, pos)
            stack.append((register(op - 0x70) + offset) & U64)
        elif op == 0x92:
            number, pos = uleb(data, pos)
            offset, pos = sleb(data, pos)
            stack.append((register(number) + offset) & U64)
        elif 0x50 <= op <= 0x6F:
            stack.append(register(op - 0x50))
        elif op == 0x03:
            stack.append(struct.unpack_from("<Q", data, pos)[0])
            pos += 8
        elif op in (0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F):
            size = {0x08: 1, 0x09: 1, 0x0A: 2, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8, 0x0F: 8}[op]
            signed = op & 1 == 1
            stack.append(int.from_bytes(data[pos : pos + size], "little", signed=signed) & U64)
            pos += size
        elif op == 0x10:
            value, pos = uleb(data, pos)
            stack.append(value)
        elif op == 0x11:
            value, pos = sleb(data, pos)
            stack.append(value & U64)
        elif op == 0x06:
            stack.append(int.from_bytes(memory(pop(), 8), "little"))
        elif op == 0x94:
            size = data[pos]
            pos += 1
            stack.append(int.from_bytes(memory(pop(), size), "little"))
        elif op == 0x12:
            stack.append(stack[-1])
        elif op == 0x13:
            pop()
        elif op == 0x14:
            stack.append(stack[-2])
        elif op == 0x15:
            stack.append(stack[-1 - data[pos]])
            pos += 1
        elif op == 0x16:
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == 0x17:
            stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
        elif op == 0x23:
            value, pos = uleb(data, pos)
            stack.append((pop() + value) & U64)
        elif op in _BINARY:
            b, a = pop(), pop()
            stack.append(_BINARY[op](a, b) & U64)
        elif op == 0x1F:
            stack.append(-pop() & U64)
        elif op == 0x20:
            stack.append(~pop() & U64)
        elif op == 0x19:
            value = pop()
            stack.append(value if value < 1 << 63 else (-value) & U64)
        elif op == 0x2F:
            (skip,) = struct.unpack_from("<h", data, pos)
            pos += 2 + skip
        elif op == 0x28:
            (skip,) = struct.unpack_from("<h", data, pos)
            pos += 2
            if pop():
                pos += skip
        elif op == 0x96:
            pass
        else:
            raise SymbolsError(f"unsupported DWARF expression operation {op:#x}")
    if not stack:
        raise SymbolsError("DWARF expression left nothing on its stack")
    return stack[-1]


def _signed(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


_BINARY = {
    0x1A: lambda a, b: a & b,
    0x1B: lambda a, b: int(_signed(a) / _signed(b)) if b else 0,
    0x1C: lambda a, b: a - b,
    0x1D: lambda a, b: a % b if b else 0,
    0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b,
    0x22: lambda a, b: a + b,
    0x24: lambda a, b: a << b if b < 64 else 0,
    0x25: lambda a, b: a >> b,
    0x26: lambda a, b: _signed(a) >> b,
    0x27: lambda a, b: a ^ b,
    0x29: lambda a, b: int(a == b),
    0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)),
    0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)),
    0x2E: lambda a, b: int(a != b),
}


# --- one file's contents, parsed once ---------------------------------------------------------


@dataclass(frozen=True)
class _Symbol:
    start: int
    size: int
    name: str
    binding: int
    type: int
    section: int

    def rank(self) -> tuple:
        """Which alias names the function: lower is preferred (see the module's doc)."""
        return (
            BINDING_RANK.get(self.binding, 3),
            0 if self.type in (STT_FUNC, STT_GNU_IFUNC) else 1,
            len(self.name) - len(self.name.lstrip("_")),
            len(self.name),
            self.name,
        )


class ElfFile:
    """What one ELF file holds, parsed lazily and kept for the life of the process
    (`ElfFile.open` caches by path, mtime and size)."""

    _cache: dict[tuple[str, int, int], ElfFile] = {}

    @classmethod
    def open(cls, path: str | os.PathLike) -> ElfFile:
        resolved = os.path.realpath(path)
        try:
            stat = os.stat(resolved)
        except OSError as error:
            raise SymbolsError(f"{path}: {error.strerror}") from None
        key = (resolved, stat.st_mtime_ns, stat.st_size)
        cached = cls._cache.get(key)
        if cached is None:
            for old in [k for k in cls._cache if k[0] == resolved]:
                del cls._cache[old]
            cached = cls._cache[key] = cls(Path(resolved))
        return cached

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as error:
            raise SymbolsError(f"{path}: {error.strerror}") from None
        data = self.data
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SymbolsError(f"{path}: not a 64-bit little-endian ELF file")
        (self.type,) = struct.unpack_from("<H", data, 16)
        phoff, shoff = struct.unpack_from("<QQ", data, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 54)
        self.loads: list[tuple[int, int]] = []
        self._contents: list[tuple[int, int, int]] = []  # (vaddr, file offset, file size)
        for i in range(phnum):
            p_type, _flags, offset, vaddr, _paddr, filesz, memsz, _align = struct.unpack_from(
                "<IIQQQQQQ", data, phoff + i * phentsize
            )
            if p_type == PT_LOAD and memsz:
                self.loads.append((vaddr, vaddr + memsz))
                self._contents.append((vaddr, offset, filesz))
        self.sections: dict[str, tuple[int, int, int, int, int, int]] = {}
        self._section_list = []
        raw = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
        names = raw[shstrndx] if shnum else None
        for header in raw:
            name_offset, sh_type, flags, address, offset, size, link = header[:7]
            name = ""
            if names is not None:
                start = names[4] + name_offset
                name = data[start : data.index(b"\0", start)].decode("ascii", "replace")
            entry = (sh_type, flags, address, offset, size, link)
            self._section_list.append(entry)
            self.sections.setdefault(name, entry)
        self._symbols: list[_Symbol] | None = None
        self._frames: list[_FrameSection] | None = None
        self._dwarf = None
        self._aranges = None
        self._lines: dict[int, tuple[list[int], list[tuple[str | None, int, bool]]]] = {}
        self._all_lines = None
        self._rows: dict[int, CfiRow | None] = {}
        self._sources: dict[int, tuple[str, int] | None] = {}
        self._inflated: dict[str, bytes] = {}
        self._objects: dict[str, tuple[int, int]] | None = None

    def read(self, address: int, length: int) -> bytes | None:
        """The file's bytes at a file address (a PT_LOAD's contents), or None."""
        for vaddr, offset, size in self._contents:
            if vaddr <= address and address + length <= vaddr + size:
                start = offset + address - vaddr
                return self.data[start : start + length]
        return None

    def section_bytes(self, name: str) -> tuple[int, bytes] | None:
        """(link address, contents) of a section, uncompressed: Go's linker compresses
        its DWARF (.debug_frame, .debug_line...) with zlib (SHF_COMPRESSED, an Elf64_Chdr
        before the data)."""
        entry = self.sections.get(name)
        if entry is None or entry[0] == 8:  # SHT_NOBITS
            return None
        _, flags, address, offset, size, _ = entry
        data = self.data[offset : offset + size]
        if flags & SHF_COMPRESSED:
            if name not in self._inflated:
                self._inflated[name] = _inflate(self.path, name, data)
            data = self._inflated[name]
        return address, data

    @property
    def build_id(self) -> str | None:
        note = self.section_bytes(".note.gnu.build-id")
        if note is None:
            return None
        namesz, descsz, _ = struct.unpack_from("<III", note[1], 0)
        start = 12 + (namesz + 3) // 4 * 4
        return note[1][start : start + descsz].hex()

    # --- symbols --------------------------------------------------------------------------

    @property
    def symbols(self) -> list[_Symbol]:
        if self._symbols is None:
            self._symbols = self._read_symbols()
        return self._symbols

    def _read_symbols(self) -> list[_Symbol]:
        symtab = next((s for s in self._section_list if s[0] == SHT_SYMTAB), None)
        if symtab is None:
            return []
        _, _, _, offset, size, link = symtab
        strtab = self._section_list[link]
        strings = self.data[strtab[3] : strtab[3] + strtab[4]]
        executable = {i for i, s in enumerate(self._section_list) if s[1] & SHF_EXECINSTR}
        result = []
        for name_offset, info, _other, shndx, value, sym_size in struct.iter_unpack(
            "<IBBHQQ", self.data[offset : offset + size]
        ):
            kind = info & 0xF
            if kind not in (STT_NOTYPE, STT_FUNC, STT_GNU_IFUNC) or shndx not in executable:
                continue
            if not name_offset:
                continue
            end = strings.index(b"\0", name_offset)
            name = strings[name_offset:end].decode("utf-8", "replace")
            if not name or name.startswith(".L") or name in ("$x", "$d"):
                continue
            result.append(_Symbol(value, sym_size, name, info >> 4, kind, shndx))
        result.sort(key=lambda s: (s.start, s.rank()))
        self._starts = [s.start for s in result]
        self._sized = sorted((s for s in result if s.size), key=lambda s: (s.start, s.rank()))
        self._sized_starts = [s.start for s in self._sized]
        self._max_size = max((s.size for s in self._sized), default=0)
        return result

    def symbol_at(self, address: int) -> _Symbol | None:
        """The symbol that names `address` (file addresses): see the module's doc."""
        symbols = self.symbols
        if not symbols:
            return None
        index = bisect.bisect_right(self._sized_starts, address) - 1
        best = None
        while index >= 0:
            symbol = self._sized[index]
            if address - symbol.start >= self._max_size:
                break
            if symbol.start <= address < symbol.start + symbol.size:
                if (
                    best is None
                    or symbol.start > best.start
                    or (symbol.start == best.start and symbol.rank() < best.rank())
                ):
                    best = symbol
                if best.start > symbol.start:
                    break
            index -= 1
        if best is not None:
            return best
        # No sized symbol holds it: the nearest preceding label, when it is in the same
        # section and no sized symbol ends between it and the address.
        index = bisect.bisect_right(self._starts, address) - 1
        if index < 0:
            return None
        label_start = symbols[index].start
        candidates = [s for s in symbols if s.start == label_start and not s.size]
        if not candidates:
            return None
        label = min(candidates, key=_Symbol.rank)
        section = self._section_list[label.section]
        if not section[2] <= address < section[2] + section[4]:
            return None
        sized_before = bisect.bisect_right(self._sized_starts, address) - 1
        if sized_before >= 0:
            previous = self._sized[sized_before]
            if label.start < previous.start + previous.size <= address:
                return None
        return label

    def names_at(self, start: int) -> list[str]:
        symbols = self.symbols  # parses the table (and _starts) the first time
        low = bisect.bisect_left(self._starts, start)
        high = bisect.bisect_right(self._starts, start)
        return [s.name for s in sorted(symbols[low:high], key=_Symbol.rank)]

    def symbol_address(self, name: str) -> int | None:
        return next((s.start for s in self.symbols if s.name == name), None)

    def object_symbol(self, name: str) -> tuple[int, int] | None:
        """(address, size) of a data symbol (STT_OBJECT): the Go runtime's tables."""
        if self._objects is None:
            self._objects = {}
            symtab = next((s for s in self._section_list if s[0] == SHT_SYMTAB), None)
            if symtab is not None:
                _, _, _, offset, size, link = symtab
                strtab = self._section_list[link]
                strings = self.data[strtab[3] : strtab[3] + strtab[4]]
                for name_offset, info, _o, _s, value, sym_size in struct.iter_unpack(
                    "<IBBHQQ", self.data[offset : offset + size]
                ):
                    if info & 0xF == STT_OBJECT and name_offset:
                        end = strings.index(b"\0", name_offset)
                        self._objects[strings[name_offset:end].decode("utf-8", "replace")] = (
                            value, sym_size
                        )
        return self._objects.get(name)

    # --- call frame information --------------------------------------------------------------

    @property
    def frame_sections(self) -> list[_FrameSection]:
        if self._frames is None:
            self._frames = self._read_frame_sections()
        return self._frames

    def _read_frame_sections(self) -> list[_FrameSection]:
        found = []
        eh = self.section_bytes(".eh_frame")
        if eh is not None and eh[1]:
            section = _FrameSection(eh[1], eh[0], eh=True)
            header = self.section_bytes(".eh_frame_hdr")
            if header is None or not self._index_from_header(section, *header):
                section.scan()
            found.append(section)
        debug = self.section_bytes(".debug_frame")
        if debug is not None and debug[1]:
            section = _FrameSection(debug[1], 0, eh=False)
            section.scan()
            found.append(section)
        return found

    @staticmethod
    def _index_from_header(section: _FrameSection, address: int, header: bytes) -> bool:
        """.eh_frame_hdr's binary search table, when it is the usual one (datarel sdata4
        pairs): FDE starts and offsets without reading .eh_frame."""
        if len(header) < 4 or header[0] != 1:
            return False
        eh_ptr_enc, count_enc, table_enc = header[1], header[2], header[3]
        try:
            eh_frame, pos = read_encoded(header, 4, eh_ptr_enc, address)
            count, pos = read_encoded(header, pos, count_enc, address)
        except SymbolsError:
            return False
        if table_enc != 0x3B or eh_frame != section.address:
            return False
        table = struct.unpack_from(f"<{2 * count}i", header, pos)
        section.starts = [(address + table[i]) & U64 for i in range(0, 2 * count, 2)]
        section.offsets = [address + table[i] - section.address for i in range(1, 2 * count, 2)]
        return True

    def cfi(self, address: int) -> CfiRow | None:
        """The unwind row at a file address, or None where no FDE covers it (cached)."""
        if address in self._rows:
            return self._rows[address]
        row = self._rows[address] = self._cfi(address)
        return row

    def _cfi(self, address: int) -> CfiRow | None:
        for section in self.frame_sections:
            header = section.find(address)
            if header is None:
                continue
            cie, begin, end, start, stop = header
            if cie.initial is None:
                cie.initial = execute_cfi(
                    cie.instructions, cie, None, 0, ("register", (RSP, 8)), {}
                )
            cfa, rules = cie.initial
            initial = dict(rules)
            cfa, rules = execute_cfi(
                section.data[start:stop], cie, address, begin, cfa, dict(rules), initial
            )
            return CfiRow(cfa, rules, cie.return_register, cie.signal, begin, end)
        return None

    # --- source lines ----------------------------------------------------------------------------

    def _dwarf_info(self):
        if self._dwarf is None:
            from io import BytesIO

            from elftools.elf.elffile import ELFFile

            self._elf = ELFFile(BytesIO(self.data))
            self._dwarf = self._elf.get_dwarf_info() if self._elf.has_dwarf_info() else False
        return self._dwarf

    def _cu_offsets(self) -> tuple[list[int], list[tuple[int, int]]] | None:
        """.debug_aranges as sorted (start, (end, CU offset)), or None without it."""
        if self._aranges is None:
            dwarf = self._dwarf_info()
            ranges = []
            aranges = dwarf.get_aranges() if dwarf else None
            if aranges is None:
                self._aranges = False
            else:
                for entry in aranges.entries:
                    if entry.length:
                        ranges.append(
                            (entry.begin_addr, entry.begin_addr + entry.length, entry.info_offset)
                        )
                ranges.sort()
                self._aranges = ([r[0] for r in ranges], [(r[1], r[2]) for r in ranges])
        return self._aranges or None

    def _cu_lines(self, cu_offset: int):
        if cu_offset not in self._lines:
            dwarf = self._dwarf_info()
            cu = dwarf.get_CU_at(cu_offset)
            self._lines[cu_offset] = _line_table(dwarf, cu)
        return self._lines[cu_offset]

    def functions_at_line(self, path: str, line: int) -> list[str]:
        """The functions whose code the line programs place at `path`:`line` (a path as
        a panic message prints it: its file name, maybe a directory or two before it),
        lowest address first: where a runtime's report names a line and nothing else."""
        dwarf = self._dwarf_info()
        if not dwarf or not path:
            return []
        suffix = "/" + path.replace("\\", "/").lstrip("/")
        name = suffix.rsplit("/", 1)[-1].encode()
        found: list[int] = []
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            header = program.header
            directories = [d if isinstance(d, bytes) else str(d).encode() for d in header["include_directory"]]
            wanted = set()
            for index, entry in enumerate(header["file_entry"]):
                entry_name = entry.name if isinstance(entry.name, bytes) else str(entry.name).encode()
                if entry_name.rsplit(b"/", 1)[-1] != name:
                    continue
                d = entry.dir_index if header["version"] >= 5 else entry.dir_index - 1
                directory = directories[d] if 0 <= d < len(directories) else b""
                full = (directory + b"/" + entry_name).decode("utf-8", "replace")
                if ("/" + full).endswith(suffix) or ("/" + entry_name.decode("utf-8", "replace")).endswith(suffix):
                    wanted.add(index if header["version"] >= 5 else index + 1)
            if not wanted:
                continue
            for entry in program.get_entries():
                state = entry.state
                if state is not None and state.line == line and state.file in wanted and not state.end_sequence:
                    found.append(state.address)
        names = []
        for address in sorted(found):
            symbol = self.symbol_at(address)
            if symbol is not None and symbol.name not in names:
                names.append(symbol.name)
        return names

    def source(self, address: int) -> tuple[str, int] | None:
        """(file, line) of a file address from the DWARF line programs (cached)."""
        if address not in self._sources:
            self._sources[address] = self._source(address)
        return self._sources[address]

    def _source(self, address: int) -> tuple[str, int] | None:
        if ".debug_line" not in self.sections:
            return None
        dwarf = self._dwarf_info()
        if not dwarf:
            return None
        aranges = self._cu_offsets()
        if aranges is not None:
            starts, rest = aranges
            index = bisect.bisect_right(starts, address) - 1
            tables = []
            while index >= 0 and starts[index] <= address:
                end, offset = rest[index]
                if address < end:
                    tables.append(self._cu_lines(offset))
                    break
                index -= 1
        else:
            if self._all_lines is None:
                self._all_lines = [_line_table(dwarf, cu) for cu in dwarf.iter_CUs()]
            tables = self._all_lines
        for addresses, rows in tables:
            index = bisect.bisect_right(addresses, address) - 1
            if index >= 0:
                file, line, end_sequence = rows[index]
                if not end_sequence and file is not None and line:
                    return file, line
        return None


def _inflate(path: Path, name: str, data: bytes) -> bytes:
    """A SHF_COMPRESSED section's contents (Elf64_Chdr: type, reserved, size, align)."""
    import zlib

    if len(data) < 24:
        raise SymbolsError(f"{path}: {name}: compressed section shorter than its header")
    kind, _, size, _ = struct.unpack_from("<IIQQ", data, 0)
    if kind != ELFCOMPRESS_ZLIB:
        raise SymbolsError(f"{path}: {name}: compression type {kind} (only zlib is known)")
    try:
        inflated = zlib.decompress(data[24:])
    except zlib.error as error:
        raise SymbolsError(f"{path}: {name}: {error}") from None
    if len(inflated) != size:
        raise SymbolsError(f"{path}: {name}: {len(inflated)} bytes inflated, header says {size}")
    return inflated


def _line_table(dwarf, cu) -> tuple[list[int], list[tuple[str | None, int, bool]]]:
    """A CU's line program as sorted rows: address -> (file, line, end of sequence)."""
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return [], []
    header = program.header
    version = header["version"]
    directories = [
        d.decode("utf-8", "replace") if isinstance(d, bytes) else str(d)
        for d in header["include_directory"]
    ]
    files = []
    for entry in header["file_entry"]:
        name = (
            entry.name.decode("utf-8", "replace")
            if isinstance(entry.name, bytes)
            else str(entry.name)
        )
        directory_index = entry.dir_index
        if version < 5:
            directory = (
                directories[directory_index - 1] if 0 < directory_index <= len(directories) else ""
            )
        else:
            directory = directories[directory_index] if directory_index < len(directories) else ""
        files.append(
            name if os.path.isabs(name) or not directory else os.path.join(directory, name)
        )
    rows = []
    for entry in program.get_entries():
        state = entry.state
        if state is None:
            continue
        index = state.file if version >= 5 else state.file - 1
        file = files[index] if 0 <= index < len(files) else None
        rows.append((state.address, file, state.line, state.end_sequence))
    # Sorted by address; at equal addresses the last row wins (bisect_right - 1), and an
    # end_sequence row at an address where another sequence starts must not.
    rows.sort(key=lambda r: (r[0], not r[3]))
    return [r[0] for r in rows], [(r[1], r[2], r[3]) for r in rows]


class ElfImage:
    """One ELF file as loaded at `bias` (target address = file address + bias)."""

    def __init__(self, path: str | os.PathLike, bias: int = 0, name: str | None = None):
        self.file = ElfFile.open(path)
        self.path = self.file.path
        self.bias = bias
        self.name = name or self.path.name

    def __repr__(self) -> str:
        return f"ElfImage({str(self.path)!r}, bias={self.bias:#x})"

    @property
    def is_pie(self) -> bool:
        return self.file.type == ET_DYN

    @property
    def build_id(self) -> str | None:
        return self.file.build_id

    def contains(self, address: int) -> bool:
        address -= self.bias
        return any(start <= address < end for start, end in self.file.loads)

    def symbolize(self, address: int) -> tuple[str | None, int]:
        symbol = self.file.symbol_at(address - self.bias)
        if symbol is None:
            return None, 0
        return symbol.name, address - self.bias - symbol.start

    def aliases(self, address: int) -> list[str]:
        """Every name of the symbol `symbolize` picks for address, preferred first."""
        symbol = self.file.symbol_at(address - self.bias)
        return self.file.names_at(symbol.start) if symbol else []

    def read(self, address: int, length: int) -> bytes | None:
        """What the file loads at address (code, read-only data), or None."""
        return self.file.read(address - self.bias, length)

    def address_of(self, name: str) -> int | None:
        address = self.file.symbol_address(name)
        return None if address is None else address + self.bias

    def source(self, address: int) -> tuple[str, int] | None:
        return self.file.source(address - self.bias)

    def cfi(self, address: int) -> CfiRow | None:
        """The unwind row at address (its start and end as the file has them)."""
        return self.file.cfi(address - self.bias)


def app_image(kernel, path: str | os.PathLike) -> ElfImage:
    """The app's ELF file at the address the kernel loaded it: a static-pie at the
    kernel model's process.load_base, an ET_EXEC at its link address."""
    file = ElfFile.open(path)
    bias = 0
    if file.type == ET_DYN:
        bias = int(kernel.process(("load_base",))["load_base"] or 0)
    return ElfImage(path, bias, name="app")
