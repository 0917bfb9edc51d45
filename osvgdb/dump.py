"""Guest memory dumps: QEMU's dump-guest-memory ELF cores, read without GDB.

`osv-dump PATH` (osvgdb/gdb/dump.py) has QEMU write PATH with
`dump-guest-memory` (paging=false, format elf) and writes the metadata
sidecar PATH.json beside it.  Such a dump holds physical memory only: each
PT_LOAD's p_paddr is where its bytes were in the guest (its p_vaddr means
nothing to us).  The notes hold, per vCPU in order, an NT_PRSTATUS ("CORE",
Linux's struct elf_prstatus: the general registers, FS and GS bases) and then
a "QEMU" note (QEMU's QEMUCPUState: segment bases, GDT/IDT, CR0-CR4).  There
is no EFER, KERNEL_GS_BASE or FPU state.

`Dump(path)` validates the file (every problem is one `DumpError` line naming
the file and what is wrong), then gives the physical memory
(`read_physical`), the vCPUs' registers (`vcpus`, a plain dict each), and
virtual memory through the guest's own x86-64 4-level page tables
(`read_virtual(cr3, vaddr, length)`, `reader(cr3)`, `memory`).

GDB cannot use physical addresses, so `write_gdb_core(dump, out)` writes an ELF
core that GDB loads beside build/kernel.elf: one PT_LOAD per run of virtual
pages the guest's page tables map (the kernel image, the direct map at
0xffff800000000000, the app's pages), all pointing into one copy of the
physical memory, and one NT_PRSTATUS per vCPU.

Nothing here imports gdb: the same code serves `osvgdb debug --core`, an
inspector outside GDB, and unit tests that build dumps as bytes.
"""

from __future__ import annotations

import bisect
import datetime
import json
import mmap
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# --- ELF ---------------------------------------------------------------------------------

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB = 1
ET_CORE = 4
EM_X86_64 = 62
PT_LOAD, PT_NOTE = 1, 4
PF_X, PF_W, PF_R = 1, 2, 4
PN_XNUM = 0xFFFF
NT_PRSTATUS = 1
ELF_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
SHDR = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
NHDR = struct.Struct("<III")  # Elf64_Nhdr: namesz, descsz, type

# Linux's struct elf_prstatus on x86-64: pr_pid at 32, pr_reg (struct
# user_regs_struct, 27 longs) at 112, pr_fpvalid and padding to 336 bytes.
PRSTATUS_SIZE = 336
PRSTATUS_PID = 32
PRSTATUS_REGS = 112
USER_REGS = (
    "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8",
    "rax", "rcx", "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "rflags",
    "rsp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs",
)  # fmt: skip
USER_REGS_STRUCT = struct.Struct(f"<{len(USER_REGS)}Q")

# QEMU's QEMUCPUState (target/i386/arch_dump.c, version 1): version, size, 18
# registers (the same values as the PRSTATUS), ten segments {selector, limit,
# flags, pad, base}, cr[5].
QEMU_NOTE_NAME = b"QEMU"
QEMU_STATE_HEADER = struct.Struct("<II")
QEMU_SEGMENT = struct.Struct("<IIIIQ")
QEMU_SEGMENTS = ("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt")
QEMU_SEGMENTS_OFFSET = 8 + 18 * 8
QEMU_CR_OFFSET = QEMU_SEGMENTS_OFFSET + len(QEMU_SEGMENTS) * QEMU_SEGMENT.size
QEMU_STATE_SIZE = QEMU_CR_OFFSET + 5 * 8

# --- x86-64 paging -----------------------------------------------------------------------

PAGE_SIZE = 4096
CR0_PG = 1 << 31
PTE_P, PTE_W, PTE_PS = 1 << 0, 1 << 1, 1 << 7
PTE_NX = 1 << 63
ADDRESS_BITS = 0x000F_FFFF_FFFF_F000  # bits 51:12 of an entry or of CR3
# More pages than any real address space of ours (16 GiB of 4 KiB pages): past it a
# walk is going round page tables that point back at themselves.
MAX_LEAVES = 1 << 22
# (shift, name, a large page at this level if PS): PML4 -> PDPT -> PD -> PT.
LEVELS = (
    (39, "PML4", None),
    (30, "PDPT", 1 << 30),
    (21, "page directory", 1 << 21),
    (12, "page table", None),
)

# --- the sidecar -------------------------------------------------------------------------

METADATA_SUFFIX = ".json"
METADATA_FORMAT = "osvgdb dump metadata"
METADATA_VERSION = 1


class DumpError(Exception):
    """A dump or sidecar that cannot be used, or memory it does not hold: one line."""


class NotMapped(DumpError):
    """A virtual address the guest's page tables do not map (a not-present entry)."""

    def __init__(self, message: str, address: int):
        super().__init__(message)
        self.address = address


@dataclass(frozen=True)
class Mapping:
    """A run of virtual pages mapped to contiguous physical memory, with one protection."""

    vaddr: int
    paddr: int
    size: int
    writable: bool
    executable: bool


@dataclass(frozen=True)
class DumpMetadata:
    """What the sidecar PATH.json says about the dump PATH beside it."""

    kernel_path: str
    kernel_build_id: str | None
    app_path: str | None
    qemu_version: str
    time: str
    vcpus: int


def metadata_path(dump_path: str | os.PathLike) -> Path:
    return Path(str(dump_path) + METADATA_SUFFIX)


def now() -> str:
    """The time for a sidecar: UTC, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_metadata(dump_path: str | os.PathLike, metadata: DumpMetadata) -> Path:
    path = metadata_path(dump_path)
    data = {"format": METADATA_FORMAT, "format_version": METADATA_VERSION, **asdict(metadata)}
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def read_metadata(dump_path: str | os.PathLike) -> DumpMetadata | None:
    """The sidecar of dump_path; None when there is none."""
    path = metadata_path(dump_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise DumpError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DumpError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != METADATA_FORMAT:
        raise DumpError(f"{path}: not an osvgdb dump sidecar")
    version = data.get("format_version")
    if not isinstance(version, int) or version > METADATA_VERSION:
        raise DumpError(
            f"{path}: format version {version!r}, this osvgdb reads up to {METADATA_VERSION}"
        )
    types = {
        "kernel_path": str,
        "kernel_build_id": (str, type(None)),
        "app_path": (str, type(None)),
        "qemu_version": str,
        "time": str,
        "vcpus": int,
    }
    for name, wanted in types.items():
        if not isinstance(data.get(name), wanted):
            raise DumpError(f"{path}: {name} is missing or not of the right type")
    known = {f.name for f in fields(DumpMetadata)}
    return DumpMetadata(**{k: v for k, v in data.items() if k in known})


def kernel_build_id(path: str | os.PathLike) -> str | None:
    """The hex GNU build id of an ELF file (its .note.gnu.build-id), None without one."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection

    try:
        with open(path, "rb") as f:
            for section in ELFFile(f).iter_sections():
                if not isinstance(section, NoteSection):
                    continue
                for note in section.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return str(note["n_desc"])
    except OSError as error:
        raise DumpError(f"{path}: {error.strerror}") from None
    except (ELFError, struct.error, ValueError) as error:
        raise DumpError(f"{path}: not an ELF file ({error})") from None
    return None


def check_kernel(
    dump_path: str | os.PathLike, metadata: DumpMetadata, kernel: str | os.PathLike
) -> None:
    """Refuse a kernel ELF other than the one the dump was taken with (by build id)."""
    taken_with = metadata.kernel_build_id
    this = kernel_build_id(kernel)
    if taken_with is not None and this is not None and taken_with != this:
        raise DumpError(
            f"{dump_path} was taken with another kernel build "
            f"(build id {taken_with}, this kernel {this})"
        )


# --- reading a dump ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Range:
    """Physical memory [paddr, paddr + size) stored at file offset `offset`."""

    paddr: int
    size: int
    offset: int

    @property
    def end(self) -> int:
        return self.paddr + self.size


class Dump:
    """A QEMU dump-guest-memory ELF core (paging=false), checked and indexed.

    `vcpus`: one dict of registers per vCPU, in QEMU's order (rip, rsp, rax..r15,
    rflags, the cs..gs selectors, fs_base and gs_base; with the QEMU note also
    cr0, cr2, cr3, cr4, the segment bases cs_base..ss_base, ldt_base, tr_base,
    gdt_base/gdt_limit and idt_base/idt_limit).  `metadata`: the sidecar, or None.
    Use as a context manager, or close(), to unmap the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except OSError as error:
            raise DumpError(f"{self.path}: {error.strerror}") from None
        try:
            self._load(buffer)
            self.metadata = read_metadata(self.path)
        except DumpError:
            self.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> Dump:
        dump = cls.__new__(cls)
        dump.path = name
        dump._load(data)
        dump.metadata = None
        return dump

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if isinstance(getattr(self, "_buffer", None), mmap.mmap):
            self._buffer.close()

    def _error(self, what: str) -> DumpError:
        return DumpError(f"{self.path}: {what}")

    def _load(self, buffer: bytes | mmap.mmap) -> None:
        self._buffer = buffer
        self.file_size = len(buffer)
        self._parse_header()
        notes: list[tuple[int, int]] = []
        loads: list[tuple[int, int, int]] = []
        for index in range(self._phnum):
            (p_type, _flags, offset, _vaddr, paddr, filesz, _memsz, _align) = PHDR.unpack_from(
                buffer, self._phoff + index * PHDR.size
            )
            if p_type == PT_NOTE:
                self._need(offset, filesz, f"the notes (PT_NOTE of {filesz} bytes at {offset:#x})")
                notes.append((offset, filesz))
            elif p_type == PT_LOAD and filesz:
                self._need(
                    offset,
                    filesz,
                    f"the memory (physical {paddr:#x}-{paddr + filesz:#x} at file offset "
                    f"{offset:#x})",
                )
                loads.append((paddr, filesz, offset))
        self._index_memory(loads)
        self._parse_notes(notes)

    def _need(self, offset: int, length: int, what: str) -> None:
        if offset + length > self.file_size:
            raise self._error(
                f"truncated in {what}: the file ends at {self.file_size:#x}, "
                f"{offset + length - self.file_size} bytes short"
            )

    def _parse_header(self) -> None:
        buffer = self._buffer
        if not self.file_size:
            raise self._error("empty file, not a dump")
        head = bytes(buffer[:4])
        if head != ELF_MAGIC[: len(head)]:
            raise self._error("not an ELF file")
        if self.file_size < 18:
            raise self._error(f"truncated in the ELF header ({self.file_size} bytes)")
        if buffer[5] != ELFDATA2LSB:
            raise self._error("not a little-endian ELF file")
        (e_type,) = struct.unpack_from("<H", buffer, 16)
        if e_type != ET_CORE:
            raise self._error(f"not a core file (ELF type {ELF_TYPES.get(e_type, e_type)})")
        if buffer[4] == ELFCLASS32:
            raise self._error(
                "a 32-bit core: QEMU writes one when the first vCPU is not in long mode "
                "yet (dump once the kernel runs)"
            )
        if buffer[4] != ELFCLASS64:
            raise self._error(f"unknown ELF class {buffer[4]}")
        self._need(0, EHDR.size, "the ELF header")
        (_ident, _type, machine, _version, _entry, phoff, shoff, _flags, _ehsize, phentsize,
         phnum, shentsize, _shnum, _shstrndx) = EHDR.unpack_from(buffer)  # fmt: skip
        if machine != EM_X86_64:
            raise self._error(f"not an x86-64 core (ELF machine {machine})")
        if phnum == PN_XNUM:
            # More than 65534 program headers: the count is section header 0's sh_info.
            if shentsize != SHDR.size:
                raise self._error("PN_XNUM program headers but no section header to count them")
            self._need(shoff, SHDR.size, "the section header that counts the program headers")
            phnum = SHDR.unpack_from(buffer, shoff)[7]
        if phnum and phentsize != PHDR.size:
            raise self._error(f"program headers of {phentsize} bytes, not {PHDR.size}")
        self._need(phoff, phnum * PHDR.size, f"the program headers ({phnum} at {phoff:#x})")
        self._phoff, self._phnum = phoff, phnum

    def _index_memory(self, loads: list[tuple[int, int, int]]) -> None:
        """Sorted, non-overlapping ranges.  Where PT_LOADs overlap (a core written by
        write_gdb_core maps the same physical memory at several virtual addresses),
        each physical byte is taken from the first range that covers it."""
        ranges: list[_Range] = []
        for paddr, size, offset in sorted(loads, key=lambda load: (load[0], -load[1])):
            start = max(paddr, ranges[-1].end) if ranges else paddr
            if start < paddr + size:
                ranges.append(_Range(start, paddr + size - start, offset + start - paddr))
        if not ranges:
            raise self._error("no memory (no PT_LOAD segment with contents)")
        self.ranges = ranges
        self._starts = [r.paddr for r in ranges]
        self.physical_size = sum(r.size for r in ranges)

    def _iter_notes(self, notes: list[tuple[int, int]]) -> Iterator[tuple[bytes, int, int, int]]:
        """(name, type, desc offset, desc size) of each note."""
        for start, size in notes:
            position, end = start, start + size
            while position < end:
                if position + NHDR.size > end:
                    raise self._error(f"a note header at {position:#x} runs past its PT_NOTE")
                namesz, descsz, n_type = NHDR.unpack_from(self._buffer, position)
                name_at = position + NHDR.size
                desc_at = name_at + _align4(namesz)
                if desc_at + descsz > end:
                    raise self._error(f"the note at {position:#x} runs past its PT_NOTE")
                name = bytes(self._buffer[name_at : name_at + namesz]).rstrip(b"\0")
                yield name, n_type, desc_at, descsz
                position = desc_at + _align4(descsz)

    def _parse_notes(self, notes: list[tuple[int, int]]) -> None:
        prstatus: list[int] = []
        qemu: list[int] = []
        self._qemu_notes: list[bytes] = []
        for name, n_type, at, size in self._iter_notes(notes):
            if name == b"CORE" and n_type == NT_PRSTATUS:
                if size < PRSTATUS_REGS + USER_REGS_STRUCT.size:
                    raise self._error(f"an NT_PRSTATUS note of {size} bytes is too short")
                prstatus.append(at)
            elif name == QEMU_NOTE_NAME and n_type == 0:
                if size < QEMU_STATE_SIZE:
                    raise self._error(f"a QEMU CPU state note of {size} bytes is too short")
                qemu.append(at)
                self._qemu_notes.append(bytes(self._buffer[at : at + size]))
        if not prstatus:
            raise self._error("no NT_PRSTATUS note: no vCPU registers in this core")
        if qemu and len(qemu) != len(prstatus):
            raise self._error(
                f"{len(prstatus)} NT_PRSTATUS notes but {len(qemu)} QEMU CPU state notes"
            )
        self.vcpus = [self._prstatus(at) for at in prstatus]
        # A QEMU note's FS and GS bases are its PRSTATUS's, which has the last word.
        for registers, at in zip(self.vcpus, qemu):  # noqa: B905 (counts checked above)
            registers.update({k: v for k, v in self._qemu_state(at).items() if k not in registers})

    def _prstatus(self, at: int) -> dict[str, int]:
        values = USER_REGS_STRUCT.unpack_from(self._buffer, at + PRSTATUS_REGS)
        registers = dict(zip(USER_REGS, values, strict=True))
        del registers["orig_rax"]  # QEMU writes 0; not a register
        return registers

    def _qemu_state(self, at: int) -> dict[str, int]:
        version, _size = QEMU_STATE_HEADER.unpack_from(self._buffer, at)
        if version != 1:
            raise self._error(f"QEMU CPU state note version {version}, this osvgdb reads 1")
        registers: dict[str, int] = {}
        for index, name in enumerate(QEMU_SEGMENTS):
            _selector, limit, _flags, _pad, base = QEMU_SEGMENT.unpack_from(
                self._buffer, at + QEMU_SEGMENTS_OFFSET + index * QEMU_SEGMENT.size
            )
            registers[f"{name}_base"] = base
            if name in ("gdt", "idt"):
                registers[f"{name}_limit"] = limit
        cr = struct.unpack_from("<5Q", self._buffer, at + QEMU_CR_OFFSET)
        registers.update(cr0=cr[0], cr2=cr[2], cr3=cr[3], cr4=cr[4])
        return registers

    # --- physical memory ---

    def read_physical(self, paddr: int, length: int) -> bytes:
        """length bytes of guest physical memory from paddr."""
        if length < 0 or paddr < 0:
            raise DumpError(f"bad physical read of {length} bytes at {paddr:#x}")
        parts = []
        address, remaining = paddr, length
        while remaining:
            index = bisect.bisect_right(self._starts, address) - 1
            if index < 0 or address >= self.ranges[index].end:
                raise DumpError(f"physical address {address:#x} is not in the dump")
            found = self.ranges[index]
            take = min(remaining, found.end - address)
            start = found.offset + address - found.paddr
            parts.append(self._buffer[start : start + take])
            address += take
            remaining -= take
        return b"".join(parts)

    # --- virtual memory ---

    def translate(self, cr3: int, vaddr: int) -> tuple[int, int]:
        """(physical address, bytes left in its page) of vaddr under the page tables at cr3."""
        if not _canonical(vaddr):
            raise NotMapped(f"virtual address {vaddr:#x} is not canonical", vaddr)
        table = cr3 & ADDRESS_BITS
        for shift, level, large in LEVELS:
            (entry,) = struct.unpack("<Q", self._entry_bytes(table, vaddr, shift, level))
            if not entry & PTE_P:
                raise NotMapped(
                    f"virtual address {vaddr:#x} is not mapped (its {level} entry is not "
                    f"present; CR3 {cr3:#x})",
                    vaddr,
                )
            if shift == 12 or (large and entry & PTE_PS):
                page = 1 << shift
                base = entry & ADDRESS_BITS & ~(page - 1)
                offset = vaddr & (page - 1)
                return base + offset, page - offset
            table = entry & ADDRESS_BITS
        raise AssertionError("unreachable")

    def _entry_bytes(self, table: int, vaddr: int, shift: int, level: str) -> bytes:
        address = table + ((vaddr >> shift) & 511) * 8
        try:
            return self.read_physical(address, 8)
        except DumpError:
            raise DumpError(
                f"virtual address {vaddr:#x}: its {level} at physical {table:#x} is not in the dump"
            ) from None

    def read_virtual(self, cr3: int, vaddr: int, length: int) -> bytes:
        """length bytes from vaddr in the address space of the page tables at cr3."""
        if length < 0 or not 0 <= vaddr <= (1 << 64) - max(length, 1):
            raise DumpError(f"bad virtual read of {length} bytes at {vaddr:#x}")
        parts = []
        address, remaining = vaddr, length
        while remaining:
            paddr, in_page = self.translate(cr3, address)
            take = min(remaining, in_page)
            parts.append(self.read_physical(paddr, take))
            address += take
            remaining -= take
        return b"".join(parts)

    def reader(self, cr3: int) -> Callable[[int, int], bytes]:
        """read(address, length) -> bytes in the address space of the page tables at cr3."""

        def read(address: int, length: int) -> bytes:
            return self.read_virtual(cr3, address, length)

        return read

    @property
    def kernel_cr3(self) -> int | None:
        """The CR3 of the first vCPU with paging on (the kernel shares one page table
        among its CPUs); None when no vCPU had paging on or the dump has no CR3s."""
        for registers in self.vcpus:
            if registers.get("cr0", 0) & CR0_PG and "cr3" in registers:
                return registers["cr3"]
        return None

    @property
    def memory(self) -> Callable[[int, int], bytes]:
        """read(address, length) as the kernel sees memory: through kernel_cr3's page
        tables, or physical memory when no vCPU had paging on."""
        cr3 = self.kernel_cr3
        return self.read_physical if cr3 is None else self.reader(cr3)

    def mappings(self, cr3: int) -> Iterator[Mapping]:
        """Every present mapping of the page tables at cr3, in address order, adjacent
        pages with contiguous frames and one protection joined.  A table outside the
        dump is passed over (its addresses stay unmapped)."""
        pending: Mapping | None = None
        for count, leaf in enumerate(self._leaves(cr3 & ADDRESS_BITS, 0, 0, True, True)):
            if count == MAX_LEAVES:
                raise self._error(
                    f"the page tables at CR3 {cr3:#x} map more than {MAX_LEAVES} pages: "
                    "tables that point back at themselves?"
                )
            if (
                pending is not None
                and pending.vaddr + pending.size == leaf.vaddr
                and pending.paddr + pending.size == leaf.paddr
                and (pending.writable, pending.executable) == (leaf.writable, leaf.executable)
            ):
                pending = Mapping(
                    pending.vaddr, pending.paddr, pending.size + leaf.size,
                    pending.writable, pending.executable,
                )  # fmt: skip
                continue
            if pending is not None:
                yield pending
            pending = leaf
        if pending is not None:
            yield pending

    def _leaves(
        self, table: int, depth: int, base: int, writable: bool, executable: bool
    ) -> Iterator[Mapping]:
        shift, _level, large = LEVELS[depth]
        try:
            entries = struct.unpack("<512Q", self.read_physical(table, PAGE_SIZE))
        except DumpError:
            return
        for index, entry in enumerate(entries):
            if not entry & PTE_P:
                continue
            vaddr = _sign_extend(base | (index << shift))
            w = writable and bool(entry & PTE_W)
            x = executable and not entry & PTE_NX
            if shift == 12 or (large and entry & PTE_PS):
                page = 1 << shift
                yield Mapping(vaddr, entry & ADDRESS_BITS & ~(page - 1), page, w, x)
            else:
                yield from self._leaves(entry & ADDRESS_BITS, depth + 1, vaddr, w, x)

    def mapped_pieces(self, mapping: Mapping) -> Iterator[tuple[int, int, int]]:
        """(vaddr, paddr, size) of the parts of a mapping whose memory the dump holds."""
        for found in self.ranges:
            start = max(found.paddr, mapping.paddr)
            end = min(found.end, mapping.paddr + mapping.size)
            if start < end:
                yield mapping.vaddr + start - mapping.paddr, start, end - start


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _sign_extend(vaddr: int) -> int:
    return vaddr | 0xFFFF_0000_0000_0000 if vaddr & (1 << 47) else vaddr


def _canonical(vaddr: int) -> bool:
    top = vaddr >> 47
    return top == 0 or top == (1 << 17) - 1


# --- a core GDB can load -----------------------------------------------------------------

COPY_CHUNK = 1 << 20


def virtual_segments(dump: Dump) -> list[tuple[int, int, int, int]]:
    """(vaddr, paddr, size, flags) for GDB's core: what the vCPUs' page tables map,
    where the dump holds the memory.  Distinct CR3s are walked in vCPU order and a
    virtual page keeps its first mapping; without paging, memory is identity mapped."""
    cr3s = []
    for registers in dump.vcpus:
        cr3 = registers.get("cr3")
        if registers.get("cr0", 0) & CR0_PG and cr3 is not None and cr3 not in cr3s:
            cr3s.append(cr3)
    if not cr3s:
        rwx = PF_R | PF_W | PF_X
        return [(r.paddr, r.paddr, r.size, rwx) for r in dump.ranges]
    taken: list[tuple[int, int]] = []  # sorted, disjoint virtual [start, end)
    segments = []
    for cr3 in cr3s:
        claimed = []
        for mapping in dump.mappings(cr3):
            flags = PF_R | (PF_W if mapping.writable else 0) | (PF_X if mapping.executable else 0)
            for vaddr, paddr, size in dump.mapped_pieces(mapping):
                for start, end in _free_parts(taken, vaddr, vaddr + size):
                    segments.append((start, paddr + start - vaddr, end - start, flags))
                    claimed.append((start, end))
        taken = sorted(taken + claimed)
    return sorted(segments)


def _free_parts(taken: list[tuple[int, int]], start: int, end: int) -> Iterator[tuple[int, int]]:
    """The parts of [start, end) outside the sorted, disjoint intervals `taken`."""
    index = max(0, bisect.bisect_right(taken, (start, start)) - 1)
    for t_start, t_end in taken[index:]:
        if t_start >= end:
            break
        if t_end <= start:
            continue
        if t_start > start:
            yield start, t_start
        start = max(start, t_end)
    if start < end:
        yield start, end


def prstatus_note(registers: dict[str, int], pid: int) -> bytes:
    """An NT_PRSTATUS note ("CORE") with these registers, as Linux writes one."""
    desc = bytearray(PRSTATUS_SIZE)
    struct.pack_into("<I", desc, PRSTATUS_PID, pid)
    values = [registers.get(name, 0) & ((1 << 64) - 1) for name in USER_REGS]
    USER_REGS_STRUCT.pack_into(desc, PRSTATUS_REGS, *values)
    return note(b"CORE", NT_PRSTATUS, bytes(desc))


def note(name: bytes, n_type: int, desc: bytes) -> bytes:
    name = name + b"\0"
    return (
        NHDR.pack(len(name), len(desc), n_type)
        + name.ljust(_align4(len(name)), b"\0")
        + desc.ljust(_align4(len(desc)), b"\0")
    )


def write_gdb_core(dump: Dump, out_path: str | os.PathLike) -> Path:
    """Write an ELF core of dump's memory at its virtual addresses, for GDB.

    The physical memory is copied once (zero runs left as holes of a sparse file);
    each PT_LOAD points into that copy at its virtual address, p_paddr its physical
    one.  One NT_PRSTATUS per vCPU (pr_pid = its number + 1, as QEMU numbers them),
    then the dump's QEMU CPU state notes, so `Dump` reads this core as well (where
    the page tables map all of memory, as the kernel's direct map does).
    Written to a temporary name and renamed: out_path is whole or absent.
    """
    segments = virtual_segments(dump)
    notes = b"".join(prstatus_note(regs, index + 1) for index, regs in enumerate(dump.vcpus))
    notes += b"".join(note(QEMU_NOTE_NAME, 0, state) for state in dump._qemu_notes)
    phnum = 1 + len(segments)
    extended = phnum >= PN_XNUM
    headers_end = EHDR.size + phnum * PHDR.size + (SHDR.size if extended else 0)
    notes_offset = headers_end
    memory_offset = _page_align(notes_offset + len(notes))
    # Where each physical range of the dump lands in the core.
    copies, position = [], memory_offset
    for found in dump.ranges:
        copies.append((found, position))
        position = _page_align(position + found.size)
    total = position

    starts = [found.paddr for found, _ in copies]

    def file_offset(paddr: int) -> int:
        found, at = copies[bisect.bisect_right(starts, paddr) - 1]
        return at + paddr - found.paddr

    shoff = EHDR.size + phnum * PHDR.size if extended else 0
    header = EHDR.pack(
        ELF_MAGIC + bytes([ELFCLASS64, ELFDATA2LSB, 1]) + bytes(9),
        ET_CORE, EM_X86_64, 1, 0, EHDR.size, shoff, 0, EHDR.size, PHDR.size,
        PN_XNUM if extended else phnum, SHDR.size if extended else 0, 1 if extended else 0, 0,
    )  # fmt: skip
    phdrs = [PHDR.pack(PT_NOTE, 0, notes_offset, 0, 0, len(notes), len(notes), 4)]
    for vaddr, paddr, size, flags in segments:
        offset = file_offset(paddr)
        align = PAGE_SIZE if (offset - vaddr) % PAGE_SIZE == 0 else 1
        phdrs.append(PHDR.pack(PT_LOAD, flags, offset, vaddr, paddr, size, size, align))
    section = SHDR.pack(0, 0, 0, 0, 0, 0, 0, phnum, 0, 0) if extended else b""

    out_path = Path(out_path)
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(header + b"".join(phdrs) + section + notes)
            zero = bytes(COPY_CHUNK)
            for found, at in copies:
                for start in range(0, found.size, COPY_CHUNK):
                    end = min(found.size, start + COPY_CHUNK)
                    chunk = dump._buffer[found.offset + start : found.offset + end]
                    if chunk != zero[: len(chunk)]:
                        out.seek(at + start)
                        out.write(chunk)
            out.truncate(total)
        os.replace(temporary, out_path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out_path


def _page_align(n: int) -> int:
    return (n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


CORE_SUFFIX = ".core"


def gdb_core_for(dump: Dump, scratch: str | os.PathLike) -> Path:
    """dump's GDB core, DUMP.core beside it: written by write_gdb_core unless one
    newer than the dump is there; in the directory scratch instead when the dump's
    own directory is not writable."""
    beside = Path(dump.path + CORE_SUFFIX)
    try:
        if beside.stat().st_mtime_ns >= os.stat(dump.path).st_mtime_ns:
            return beside
    except FileNotFoundError:
        pass
    target = beside if os.access(beside.parent, os.W_OK) else Path(scratch) / beside.name
    try:
        return write_gdb_core(dump, target)
    except OSError as error:
        raise DumpError(f"{target}: {error.strerror}") from None
