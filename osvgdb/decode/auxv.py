"""The app's initial stack (psABI figure 3.9) and its auxiliary vector.

    initial_stack -> argc
                     argv[0] ... argv[argc-1], NULL
                     envp[0] ... NULL
                     auxv pairs (type, value) ... (AT_NULL, 0)

`decode_initial_stack` takes the bytes from argc upwards; `ElfPhdrs` reads
program headers from bytes (the guest's copy at AT_PHDR, or the host file),
for checking AT_PHDR.  Both raise only DecodeError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from osvgdb.decode import DecodeError

AT_NAMES = {
    0: "AT_NULL",
    1: "AT_IGNORE",
    2: "AT_EXECFD",
    3: "AT_PHDR",
    4: "AT_PHENT",
    5: "AT_PHNUM",
    6: "AT_PAGESZ",
    7: "AT_BASE",
    8: "AT_FLAGS",
    9: "AT_ENTRY",
    10: "AT_NOTELF",
    11: "AT_UID",
    12: "AT_EUID",
    13: "AT_GID",
    14: "AT_EGID",
    15: "AT_PLATFORM",
    16: "AT_HWCAP",
    17: "AT_CLKTCK",
    23: "AT_SECURE",
    24: "AT_BASE_PLATFORM",
    25: "AT_RANDOM",
    26: "AT_HWCAP2",
    27: "AT_RSEQ_FEATURE_SIZE",
    28: "AT_RSEQ_ALIGN",
    31: "AT_EXECFN",
    32: "AT_SYSINFO",
    33: "AT_SYSINFO_EHDR",
    51: "AT_MINSIGSTKSZ",
}
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_RANDOM = 0, 3, 4, 5, 25
STRING_TYPES = {15: "AT_PLATFORM", 24: "AT_BASE_PLATFORM", 31: "AT_EXECFN"}
HEX_TYPES = {3, 7, 9, 16, 25, 26, 32, 33}
MAX_WORDS = 1 << 16
PT_LOAD, PT_PHDR = 1, 6
PHDR = struct.Struct("<IIQQQQQQ")  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, ...


def at_name(kind: int) -> str:
    return AT_NAMES.get(kind, f"AT_{kind}")


@dataclass
class InitialStack:
    argc: int
    argv: list[int]
    envp: list[int]
    auxv: list[tuple[int, int]]

    @property
    def size(self) -> int:
        """Bytes from argc to the end of AT_NULL."""
        return 8 * (1 + len(self.argv) + 1 + len(self.envp) + 1 + 2 * len(self.auxv))


def decode_initial_stack(buf: bytes) -> InitialStack:
    """argc, the argv and envp pointers and the auxv pairs, from the bytes at
    initial_stack.  DecodeError when they end before the AT_NULL entry."""
    count = min(len(buf) // 8, MAX_WORDS)
    if count < 1:
        raise DecodeError("initial stack: no argc")
    words = struct.unpack_from(f"<{count}Q", buf)
    argc = words[0]
    if argc >= count:
        raise DecodeError(f"initial stack: argc {argc} does not fit in {count} words")
    argv = list(words[1 : 1 + argc])
    position = 1 + argc
    if words[position] != 0:
        raise DecodeError(f"initial stack: argv[argc] is {words[position]:#x}, not NULL")
    position += 1
    envp = []
    while position < count and words[position] != 0:
        envp.append(words[position])
        position += 1
    if position >= count:
        raise DecodeError("initial stack: envp has no NULL within the bytes read")
    position += 1
    auxv = []
    while position + 1 < count:
        kind, value = words[position], words[position + 1]
        auxv.append((kind, value))
        position += 2
        if kind == AT_NULL:
            return InitialStack(argc, argv, envp, auxv)
    raise DecodeError("initial stack: auxv has no AT_NULL within the bytes read")


@dataclass(frozen=True)
class ProgramHeader:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


def parse_phdrs(buf: bytes, count: int, entsize: int = PHDR.size) -> list[ProgramHeader]:
    if entsize < PHDR.size or count < 0 or len(buf) < count * entsize:
        raise DecodeError(f"program headers: {count} x {entsize} bytes do not fit in {len(buf)}")
    headers = []
    for i in range(count):
        p_type, _flags, offset, vaddr, _paddr, filesz, memsz, _align = PHDR.unpack_from(
            buf, i * entsize
        )
        headers.append(ProgramHeader(p_type, offset, vaddr, filesz, memsz))
    return headers


def elf_phdr_vaddr(file_head: bytes) -> tuple[int, int, int, int]:
    """From an ELF64 file's first bytes: (link-time address of its program
    headers, e_phnum, e_phentsize, e_type).  The address is PT_PHDR's, else
    where the PT_LOAD that maps e_phoff puts it."""
    if len(file_head) < 64 or file_head[:4] != b"\x7fELF" or file_head[4] != 2:
        raise DecodeError("not an ELF64 file")
    e_type = struct.unpack_from("<H", file_head, 16)[0]
    (e_phoff,) = struct.unpack_from("<Q", file_head, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", file_head, 54)
    end = e_phoff + e_phnum * e_phentsize
    if end > len(file_head):
        raise DecodeError("program headers beyond the bytes given")
    headers = parse_phdrs(file_head[e_phoff:end], e_phnum, e_phentsize)
    for header in headers:
        if header.type == PT_PHDR:
            return header.vaddr, e_phnum, e_phentsize, e_type
    for header in headers:
        if header.type == PT_LOAD and header.offset <= e_phoff < header.offset + header.filesz:
            return header.vaddr + e_phoff - header.offset, e_phnum, e_phentsize, e_type
    raise DecodeError("no PT_PHDR and no PT_LOAD maps the program headers")
