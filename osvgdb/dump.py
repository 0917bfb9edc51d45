"""Guest dumps, read without GDB: what osv-dump and triage write, and QEMU's own.

An osvgdb dump (osvgdb.dump_writer, `osv-dump PATH`) is an ELF core at the guest's
virtual addresses that GDB loads as it is: each PT_LOAD's p_vaddr is where the kernel
saw the memory, p_paddr where it was in physical memory, and past p_filesz up to
p_memsz it is zeros the guest had. Its "OSVGDB" note (JSON) names the level it was
written at and lists every run of physical memory it left out, and why (LEFT_OUT).
A dump written by QEMU's dump-guest-memory (paging=false: osv-dump before dumps had
levels) holds physical memory only (its p_vaddr means nothing to us). Either may be
zstd-compressed. The notes hold, per vCPU in order, an NT_PRSTATUS ("CORE", Linux's
struct elf_prstatus: the general registers, FS and GS bases) and then a "QEMU" note
(QEMU's QEMUCPUState: segment bases, GDT/IDT, CR0-CR4). There is no EFER,
KERNEL_GS_BASE or FPU state. Beside a dump, PATH.json (`read_metadata`): what a
reader needs, the kernel ELF and its build id first.

`Dump(path)` validates the file (every problem is one `DumpError` line naming the
file and what is wrong), then gives the physical memory (`read_physical`), the
vCPUs' registers (`vcpus`, a plain dict each), and virtual memory through the
guest's own x86-64 4-level page tables (osvgdb.paging: `read_virtual(cr3, vaddr,
length)`, `reader(cr3)`, `memory`). A read of memory the dump's level left out is a
DumpError that says so, never zeros.

GDB cannot use a QEMU dump's physical addresses, so `write_gdb_core(dump, out)`
writes an ELF core that GDB loads beside build/kernel.elf: one PT_LOAD per run of
virtual pages the guest's page tables map (the kernel image, the direct map at
0xffff800000000000, the app's pages), all pointing into one copy of the physical
memory, and one NT_PRSTATUS per vCPU. `gdb_core_for` gives GDB's core for any dump.

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
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

# DumpError, NotMapped and Mapping are also this module's: readers import them from here.
from osvgdb.paging import CR0_PG, PAGE_SIZE, DumpError, Mapping, NotMapped, PhysicalMemory  # noqa: F401

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

# What an osvgdb dump (osvgdb.dump_writer) says about itself, in a note of its own:
# JSON with the level, the guest's RAM and every run of it the dump left out, and why.
CONTENTS_NOTE_NAME = b"OSVGDB"
NT_CONTENTS = 0  # as QEMU's own notes: BFD takes a type it knows (1 is NT_PRSTATUS) whatever the name
CONTENTS_FORMAT = "osvgdb dump contents"
CONTENTS_VERSION = 1
# Why a run of the guest's memory was left out, as a reader says it.
LEFT_OUT = {
    "free": "pages the kernel's allocator had free",
    "initrd": "the initrd (a copy of the files the guest booted with)",
    "heap": "the kernel heap",
    "frames": "app memory",
}

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DECOMPRESS_CHUNK = 1 << 20

# --- the sidecar -------------------------------------------------------------------------

METADATA_SUFFIX = ".json"
METADATA_FORMAT = "osvgdb dump metadata"
METADATA_VERSION = 2  # 2: the level and what was left out


@dataclass(frozen=True)
class DumpMetadata:
    """What the sidecar PATH.json says about the dump PATH beside it.  `level` and
    `left_out` (bytes by reason, LEFT_OUT's keys) are None for a whole-RAM QEMU dump."""

    kernel_path: str
    kernel_build_id: str | None
    app_path: str | None
    qemu_version: str
    time: str
    vcpus: int
    level: str | None = None
    left_out: dict[str, int] | None = None


def metadata_path(dump_path: str | os.PathLike) -> Path:
    return Path(str(dump_path) + METADATA_SUFFIX)


def now() -> str:
    """The time for a sidecar: UTC, ISO 8601, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def write_metadata(
    dump_path: str | os.PathLike, metadata: DumpMetadata, extra: dict | None = None
) -> Path:
    """PATH.json, whole or not at all (a temporary name, renamed); `extra`: more keys
    for a reader of its own (triage keeps why the guest stopped)."""
    path = metadata_path(dump_path)
    data = {"format": METADATA_FORMAT, "format_version": METADATA_VERSION, **asdict(metadata)}
    data.update(extra or {})
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
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
        "level": (str, type(None)),
        "left_out": (dict, type(None)),
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
    """Physical memory [paddr, paddr + size) stored at file offset `offset`; zeros
    when offset is None (a PT_LOAD's p_memsz past its p_filesz)."""

    paddr: int
    size: int
    offset: int | None

    @property
    def end(self) -> int:
        return self.paddr + self.size


@dataclass(frozen=True)
class Contents:
    """What an osvgdb dump says it holds (its OSVGDB note): the level it was written
    at, the guest's RAM, and the runs of it left out with why (LEFT_OUT's keys)."""

    level: str
    ram: list[tuple[int, int]]
    left_out: list[tuple[int, int, str]]
    problems: list[str]

    def left_out_at(self, paddr: int) -> str | None:
        """Why the page at paddr was left out; None if it was not."""
        index = bisect.bisect_right(self.left_out, (paddr, 1 << 64, "")) - 1
        if index >= 0 and self.left_out[index][0] <= paddr < self.left_out[index][1]:
            return self.left_out[index][2]
        return None


def left_out_notice(path: str | os.PathLike, contents: Contents) -> str:
    """One line on what a dump left out, for a reader about to read it with GDB."""
    whys = sorted({why for _start, _end, why in contents.left_out})
    return (
        f"{path}: a {contents.level} dump; it left out "
        + ", ".join(LEFT_OUT.get(why, why) for why in whys)
        + ": GDB cannot access memory there"
    )


class Dump(PhysicalMemory):
    """A guest dump, checked and indexed: an osvgdb dump (osvgdb.dump_writer: an ELF
    core at the guest's virtual addresses, p_paddr physical, `contents` saying what it
    left out) or a QEMU dump-guest-memory core (paging=false: physical addresses only,
    `contents` None), either possibly zstd-compressed (`compressed`: read from a
    decompressed copy in an unlinked temporary file).

    `vcpus`: one dict of registers per vCPU, in QEMU's order (rip, rsp, rax..r15,
    rflags, the cs..gs selectors, fs_base and gs_base; with the QEMU note also
    cr0, cr2, cr3, cr4, the segment bases cs_base..ss_base, ldt_base, tr_base,
    gdt_base/gdt_limit and idt_base/idt_limit).  `metadata`: the sidecar, or None.
    Use as a context manager, or close(), to unmap the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.compressed = False
        try:
            with open(self.path, "rb") as f:
                if f.read(len(ZSTD_MAGIC)) == ZSTD_MAGIC:
                    self.compressed = True
                    f.seek(0)
                    buffer = self._decompress(f)
                else:
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

    def _decompress(self, compressed) -> mmap.mmap | bytes:
        """The dump zstd-decompressed into an unlinked temporary file, mapped."""
        try:
            import zstandard
        except ImportError:
            raise self._error(
                "zstd-compressed, and zstandard is not installed (run scripts/bootstrap)"
            ) from None
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        with tempfile.TemporaryFile(prefix="osvgdb-dump-") as out:
            try:
                while chunk := compressed.read(DECOMPRESS_CHUNK):
                    out.write(decompressor.decompress(chunk))
                    if decompressor.eof:
                        break
            except zstandard.ZstdError as error:
                raise self._error(f"corrupt zstd data ({error})") from None
            if not decompressor.eof:
                raise self._error("truncated zstd data: the compressed dump ends early")
            out.flush()
            if not out.tell():
                return b""
            return mmap.mmap(out.fileno(), 0, access=mmap.ACCESS_READ)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> Dump:
        dump = cls.__new__(cls)
        dump.path = name
        dump.compressed = False
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
        loads: list[tuple[int, int, int | None]] = []
        for index in range(self._phnum):
            (p_type, _flags, offset, _vaddr, paddr, filesz, memsz, _align) = PHDR.unpack_from(
                buffer, self._phoff + index * PHDR.size
            )
            if p_type == PT_NOTE:
                self._need(offset, filesz, f"the notes (PT_NOTE of {filesz} bytes at {offset:#x})")
                notes.append((offset, filesz))
            elif p_type == PT_LOAD:
                if filesz:
                    self._need(
                        offset,
                        filesz,
                        f"the memory (physical {paddr:#x}-{paddr + filesz:#x} at file offset "
                        f"{offset:#x})",
                    )
                    loads.append((paddr, filesz, offset))
                if memsz > filesz:  # the rest of the segment: zeros, not in the file
                    loads.append((paddr + filesz, memsz - filesz, None))
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
                at = None if offset is None else offset + start - paddr
                ranges.append(_Range(start, paddr + size - start, at))
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
        self.contents: Contents | None = None
        for name, n_type, at, size in self._iter_notes(notes):
            if name == CONTENTS_NOTE_NAME and n_type == NT_CONTENTS:
                self.contents = self._contents(bytes(self._buffer[at : at + size]))
            elif name == b"CORE" and n_type == NT_PRSTATUS:
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

    def _contents(self, desc: bytes) -> Contents:
        try:
            data = json.loads(desc.rstrip(b"\0"))
            if data["format"] != CONTENTS_FORMAT:
                raise ValueError(f"format {data['format']!r}")
            if data["version"] > CONTENTS_VERSION:
                raise ValueError(f"version {data['version']}, this osvgdb reads {CONTENTS_VERSION}")
            return Contents(
                level=str(data["level"]),
                ram=[(int(s), int(e)) for s, e in data["ram"]],
                left_out=sorted((int(s), int(e), str(why)) for s, e, why in data["left_out"]),
                problems=[str(p) for p in data["problems"]],
            )
        except (ValueError, KeyError, TypeError) as error:
            raise self._error(f"its OSVGDB note is not one this osvgdb reads ({error})") from None

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

    def _read_run(self, run: _Range, paddr: int, length: int) -> bytes:
        if run.offset is None:
            return bytes(length)  # a zero-fill segment: the page was all zeros
        start = run.offset + paddr - run.paddr
        return self._buffer[start : start + length]

    def _physical_miss(self, paddr: int) -> str:
        why = self.contents.left_out_at(paddr) if self.contents else None
        if why is not None:
            return (
                f"physical address {paddr:#x} is not in this dump: level {self.contents.level} "
                f"left out {LEFT_OUT.get(why, why)}"
            )
        return f"physical address {paddr:#x} is not in the dump"

    # --- virtual memory (osvgdb.paging) ---

    def _table_miss(self, vaddr: int, level: str, table: int) -> DumpError:
        why = self.contents.left_out_at(table) if self.contents else None
        if why is None:
            return super()._table_miss(vaddr, level, table)
        return DumpError(
            f"{vaddr:#x} is not in this dump: level {self.contents.level} left out "
            f"{LEFT_OUT.get(why, why)} and the {level} that maps it (physical {table:#x})"
        )

    def _virtual_miss(self, vaddr: int, paddr: int, error: DumpError) -> DumpError:
        why = self.contents.left_out_at(paddr) if self.contents else None
        if why is None:
            return error
        return DumpError(
            f"{vaddr:#x} is not in this dump: level {self.contents.level} left out "
            f"{LEFT_OUT.get(why, why)} (physical {paddr:#x})"
        )

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

    def mapped_pieces(self, mapping: Mapping) -> Iterator[tuple[int, int, int]]:
        """(vaddr, paddr, size) of the parts of a mapping whose memory the dump holds."""
        for found in self.ranges:
            start = max(found.paddr, mapping.paddr)
            end = min(found.end, mapping.paddr + mapping.size)
            if start < end:
                yield mapping.vaddr + start - mapping.paddr, start, end - start


def _align4(n: int) -> int:
    return (n + 3) & ~3


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
                for start, end in free_parts(taken, vaddr, vaddr + size):
                    segments.append((start, paddr + start - vaddr, end - start, flags))
                    claimed.append((start, end))
        taken = sorted(taken + claimed)
    return sorted(segments)


def free_parts(taken: list[tuple[int, int]], start: int, end: int) -> Iterator[tuple[int, int]]:
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


def vcpu_notes(vcpus: list[dict[str, int]], qemu_notes: list[bytes]) -> bytes:
    """One NT_PRSTATUS per vCPU (pr_pid = its number + 1, as QEMU numbers them, so
    GDB's `info threads` shows LWP 1..N), then QEMU's CPU state notes as they were."""
    notes = b"".join(prstatus_note(regs, index + 1) for index, regs in enumerate(vcpus))
    return notes + b"".join(note(QEMU_NOTE_NAME, 0, state) for state in qemu_notes)


def core_memory_offset(loads: int, notes_size: int) -> int:
    """Where a core's memory may start (page aligned): after its ELF header, program
    headers (a PT_NOTE and `loads` PT_LOADs), PN_XNUM's section header and notes."""
    phnum = 1 + loads
    headers = EHDR.size + phnum * PHDR.size + (SHDR.size if phnum >= PN_XNUM else 0)
    return _page_align(headers + notes_size)


def load_header(vaddr: int, paddr: int, offset: int, filesz: int, memsz: int, flags: int) -> bytes:
    """A PT_LOAD: memsz bytes at vaddr (physical paddr), the first filesz of them at
    file offset `offset`, the rest zeros."""
    align = PAGE_SIZE if (offset - vaddr) % PAGE_SIZE == 0 else 1
    return PHDR.pack(PT_LOAD, flags, offset, vaddr, paddr, filesz, memsz, align)


def core_prefix(loads: list[bytes], notes: bytes) -> bytes:
    """An x86-64 ELF core up to its memory: the header, the PT_NOTE and `loads`, the
    section header that counts them past 65534 (PN_XNUM), and the notes."""
    phnum = 1 + len(loads)
    extended = phnum >= PN_XNUM
    notes_offset = EHDR.size + phnum * PHDR.size + (SHDR.size if extended else 0)
    header = EHDR.pack(
        ELF_MAGIC + bytes([ELFCLASS64, ELFDATA2LSB, 1]) + bytes(9),
        ET_CORE, EM_X86_64, 1, 0, EHDR.size, EHDR.size + phnum * PHDR.size if extended else 0,
        0, EHDR.size, PHDR.size, PN_XNUM if extended else phnum, SHDR.size if extended else 0,
        1 if extended else 0, 0,
    )  # fmt: skip
    note_header = PHDR.pack(PT_NOTE, 0, notes_offset, 0, 0, len(notes), len(notes), 4)
    section = SHDR.pack(0, 0, 0, 0, 0, 0, 0, phnum, 0, 0) if extended else b""
    return header + note_header + b"".join(loads) + section + notes


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
    notes = vcpu_notes(dump.vcpus, dump._qemu_notes)
    # Where each physical range of the dump lands in the core.
    copies, position = [], core_memory_offset(len(segments), len(notes))
    for found in dump.ranges:
        copies.append((found, position))
        position = _page_align(position + found.size)
    total = position

    starts = [found.paddr for found, _ in copies]

    def file_offset(paddr: int) -> int:
        found, at = copies[bisect.bisect_right(starts, paddr) - 1]
        return at + paddr - found.paddr

    loads = [
        load_header(vaddr, paddr, file_offset(paddr), size, size, flags)
        for vaddr, paddr, size, flags in segments
    ]
    out_path = Path(out_path)
    temporary = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            out.write(core_prefix(loads, notes))
            zero = bytes(COPY_CHUNK)
            for found, at in copies:
                if found.offset is None:
                    continue  # zeros: a hole of the sparse file
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
    """The core GDB loads for dump: an osvgdb dump itself; else DUMP.core beside it,
    written unless one newer than the dump is there (in the directory scratch
    instead when the dump's own directory is not writable): a compressed dump
    decompressed, a QEMU dump converted by write_gdb_core."""
    if dump.contents is not None and not dump.compressed:
        return Path(dump.path)
    beside = Path(dump.path + CORE_SUFFIX)
    try:
        if beside.stat().st_mtime_ns >= os.stat(dump.path).st_mtime_ns:
            return beside
    except FileNotFoundError:
        pass
    target = beside if os.access(beside.parent, os.W_OK) else Path(scratch) / beside.name
    try:
        if dump.contents is None:
            return write_gdb_core(dump, target)
        return _write_whole(target, dump._buffer)
    except OSError as error:
        raise DumpError(f"{target}: {error.strerror}") from None


def _write_whole(path: Path, data) -> Path:
    """data at path, whole or not at all (a temporary name, renamed)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            for start in range(0, len(data), COPY_CHUNK):
                out.write(data[start : start + COPY_CHUNK])
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
