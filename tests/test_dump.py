"""osvgdb.dump on dumps built here as bytes: the ELF and note parsing, the page
walker (4 KiB, 2 MiB and 1 GiB pages, entries not present), the sidecar, the
build-id check, and the core written for GDB read back by an independent parser
(pyelftools)."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.dump import (
    Dump,
    DumpError,
    DumpMetadata,
    NotMapped,
    check_kernel,
    gdb_core_for,
    kernel_build_id,
    read_metadata,
    write_gdb_core,
    write_metadata,
)

P, W, PS, NX = 1, 2, 0x80, 1 << 63
REGISTERS = (
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs rflags "
    "rsp ss fs_base gs_base ds es fs gs"
).split()


# --- building dumps as QEMU writes them ------------------------------------------------


def _note(name: bytes, n_type: int, desc: bytes) -> bytes:
    name += b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), n_type) + pad(name) + pad(desc)


def prstatus(registers: dict[str, int], pid: int) -> bytes:
    desc = bytearray(336)
    struct.pack_into("<I", desc, 32, pid)
    struct.pack_into("<27Q", desc, 112, *(registers.get(r, 0) for r in REGISTERS))
    return _note(b"CORE", 1, bytes(desc))


def qemu_state(cr: dict[str, int], bases: dict[str, int] | None = None) -> bytes:
    """QEMUCPUState version 1: header, 18 registers, 10 segments, cr[5]."""
    bases = bases or {}
    desc = struct.pack("<II", 1, 432) + bytes(18 * 8)
    for name in ("cs", "ds", "es", "fs", "gs", "ss", "ldt", "tr", "gdt", "idt"):
        desc += struct.pack("<IIIIQ", 0, 0xFFF if name in ("gdt", "idt") else 0, 0, 0,
                            bases.get(name, 0))  # fmt: skip
    desc += struct.pack("<5Q", cr.get("cr0", 0), 0, cr.get("cr2", 0), cr.get("cr3", 0),
                        cr.get("cr4", 0))  # fmt: skip
    return _note(b"QEMU", 0, desc)


def core(
    loads: list[tuple[int, bytes]],
    vcpus: list[dict[str, int]],
    *,
    qemu_notes: bool = True,
    e_type: int = 4,
    machine: int = 62,
    elf_class: int = 2,
    xnum: bool = False,
) -> bytes:
    """An ELF core laid out as QEMU's dump-guest-memory writes one."""
    notes = b"".join(prstatus(regs, i + 1) for i, regs in enumerate(vcpus))
    if qemu_notes:
        notes += b"".join(qemu_state(regs, {"gdt": 0x1000}) for regs in vcpus)
    phnum = 1 + len(loads)
    shoff = 64 + phnum * 56 if xnum else 0
    header = struct.pack(
        "<16sHHIQQQIHHHHHH",
        b"\x7fELF" + bytes([elf_class, 1, 1]) + bytes(9),
        e_type, machine, 1, 0, 64, shoff, 0, 64, 56,
        0xFFFF if xnum else phnum, 64 if xnum else 0, 1 if xnum else 0, 0,
    )  # fmt: skip
    section = struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0) if xnum else b""
    offset = 64 + phnum * 56 + len(section)
    phdrs = struct.pack("<IIQQQQQQ", 4, 0, offset, 0, 0, len(notes), len(notes), 0)
    offset += len(notes)
    body = b""
    for paddr, data in loads:
        phdrs += struct.pack("<IIQQQQQQ", 1, 0, offset + len(body), paddr, paddr,
                             len(data), len(data), 0)  # fmt: skip
        body += data
    return header + phdrs + section + notes + body


class Memory:
    """Physical memory with x86-64 page tables built in it (tables from 0x1000 up)."""

    def __init__(self, size: int = 0x400000):
        self.data = bytearray(size)
        self.next_table = 0x1000
        self.cr3 = self.table()

    def table(self) -> int:
        address = self.next_table
        self.next_table += 0x1000
        return address

    def _entry(self, table: int, index: int) -> int:
        return struct.unpack_from("<Q", self.data, table + index * 8)[0]

    def _set(self, table: int, index: int, value: int) -> None:
        struct.pack_into("<Q", self.data, table + index * 8, value)

    def map(self, vaddr: int, paddr: int, page: int = 0x1000, flags: int = P | W) -> None:
        """Map one page of `page` bytes (4 KiB, 2 MiB or 1 GiB) at vaddr."""
        leaf_shift = {0x1000: 12, 0x200000: 21, 0x40000000: 30}[page]
        table = self.cr3
        for shift in (39, 30, 21):
            if shift == leaf_shift:
                break
            index = (vaddr >> shift) & 511
            entry = self._entry(table, index)
            if not entry & P:
                entry = self.table() | P | W
                self._set(table, index, entry)
            table = entry & 0x000F_FFFF_FFFF_F000
        self._set(table, (vaddr >> leaf_shift) & 511, paddr | flags | (PS if page > 0x1000 else 0))

    def put(self, paddr: int, data: bytes) -> None:
        self.data[paddr : paddr + len(data)] = data


def paging_vcpu(cr3: int, **registers: int) -> dict[str, int]:
    return {"rip": 0x40201000, "rsp": 0xFFFF800000100000, "cr0": 0x80010033, "cr3": cr3,
            "cr4": 0x506A0, **registers}  # fmt: skip


@pytest.fixture
def walked() -> Dump:
    """4 KiB pages of an app, a 2 MiB page of a kernel window, a direct map of the
    first 4 MiB in 2 MiB pages and a 1 GiB page (the dump holds only 12 KiB of what
    that page covers: a second PT_LOAD)."""
    memory = Memory()
    memory.map(0x400000, 0x100000)  # two app pages, frames not contiguous
    memory.map(0x401000, 0x300000, flags=P | NX)
    memory.put(0x100FF8, b"ABCDEFGH")
    memory.put(0x300000, b"IJKLMNOP")
    memory.map(0x40200000, 0x200000, page=0x200000)
    memory.put(0x212345, b"kernel")
    memory.map(0xFFFF800000000000, 0, page=0x200000)
    memory.map(0xFFFF800000200000, 0x200000, page=0x200000)
    memory.map(0xFFFF800040000000, 0x40000000, page=0x40000000)
    high = bytearray(0x3000)
    high[0x2000:0x2004] = b"high"
    data = core([(0, bytes(memory.data)), (0x40000000, bytes(high))], [paging_vcpu(memory.cr3)])
    return Dump.from_bytes(data, "walked.dump")


# --- the page walker -------------------------------------------------------------------


def test_4k_pages_across_a_page_boundary(walked: Dump) -> None:
    cr3 = walked.vcpus[0]["cr3"]
    assert walked.read_virtual(cr3, 0x400FF8, 16) == b"ABCDEFGHIJKLMNOP"
    assert walked.translate(cr3, 0x401004) == (0x300004, 0xFFC)


def test_2m_page(walked: Dump) -> None:
    assert walked.memory(0x40212345, 6) == b"kernel"
    assert walked.translate(walked.vcpus[0]["cr3"], 0x40212345) == (0x212345, 0x1EDCBB)


def test_1g_page_reaches_a_second_pt_load(walked: Dump) -> None:
    assert walked.memory(0xFFFF800040002000, 4) == b"high"
    with pytest.raises(DumpError, match="physical address 0x40003000 is not in the dump"):
        walked.memory(0xFFFF800040003000, 1)


@pytest.mark.parametrize(
    "vaddr, level",
    [
        (0x0000_7F00_0000_0000, "PML4"),
        (0x0000_0000_8000_0000, "PDPT"),
        (0x0000_0000_4000_0000, "page directory"),
        (0x0000_0000_0040_2000, "page table"),
    ],
)
def test_not_present_entry_names_the_address(walked: Dump, vaddr: int, level: str) -> None:
    with pytest.raises(NotMapped) as caught:
        walked.memory(vaddr, 8)
    assert caught.value.address == vaddr
    assert str(caught.value) == (
        f"virtual address {vaddr:#x} is not mapped (its {level} entry is not present; "
        f"CR3 {walked.vcpus[0]['cr3']:#x})"
    )


def test_a_read_fails_at_the_first_unmapped_byte(walked: Dump) -> None:
    with pytest.raises(NotMapped, match="0x402000 is not mapped"):
        walked.memory(0x401FF0, 32)


def test_non_canonical_and_bad_reads(walked: Dump) -> None:
    with pytest.raises(NotMapped, match="0x800000000000 is not canonical"):
        walked.memory(0x8000_0000_0000, 1)
    with pytest.raises(DumpError, match="bad virtual read"):
        walked.memory(0x400000, -1)
    with pytest.raises(DumpError, match="bad virtual read"):
        walked.memory((1 << 64) - 4, 8)
    assert walked.memory(0x400000, 0) == b""


def test_page_table_outside_the_dump() -> None:
    memory = Memory(0x10000)
    struct.pack_into("<Q", memory.data, memory.cr3, 0x7000000 | P | W)  # PML4[0] -> nowhere
    dump = Dump.from_bytes(core([(0, bytes(memory.data))], [paging_vcpu(memory.cr3)]))
    with pytest.raises(DumpError, match="0x1000: its PDPT at physical 0x7000000 is not in"):
        dump.memory(0x1000, 1)
    assert list(dump.mappings(memory.cr3)) == []


def test_mappings_join_contiguous_pages_of_one_protection(walked: Dump) -> None:
    found = [(m.vaddr, m.paddr, m.size, m.writable, m.executable)
             for m in walked.mappings(walked.vcpus[0]["cr3"])]  # fmt: skip
    assert found == [
        (0x400000, 0x100000, 0x1000, True, True),
        (0x401000, 0x300000, 0x1000, False, False),  # read-only, NX
        (0x40200000, 0x200000, 0x200000, True, True),
        (0xFFFF800000000000, 0, 0x400000, True, True),  # sign-extended, two pages joined
        (0xFFFF800040000000, 0x40000000, 0x40000000, True, True),
    ]
    memory = Memory()
    for page in range(3):
        memory.map(0x600000 + page * 0x1000, 0x200000 + page * 0x1000)
    dump = Dump.from_bytes(core([(0, bytes(memory.data))], [paging_vcpu(memory.cr3)]))
    (joined,) = dump.mappings(memory.cr3)
    assert (joined.vaddr, joined.paddr, joined.size) == (0x600000, 0x200000, 0x3000)


def test_without_paging_memory_is_physical() -> None:
    data = bytearray(0x2000)
    data[0x1234:0x1238] = b"phys"
    dump = Dump.from_bytes(core([(0, bytes(data))], [{"rip": 0xFFF0, "cr0": 0x10}]))
    assert dump.kernel_cr3 is None
    assert dump.memory(0x1234, 4) == b"phys"


# --- physical memory and registers -----------------------------------------------------


def test_read_physical_across_adjacent_loads_and_gaps() -> None:
    dump = Dump.from_bytes(core([(0, b"a" * 16), (16, b"b" * 16), (64, b"c" * 16)], [{}]))
    assert dump.read_physical(12, 8) == b"aaaabbbb"
    assert dump.physical_size == 48
    with pytest.raises(DumpError, match="physical address 0x20 is not in the dump"):
        dump.read_physical(28, 8)


def test_registers_of_each_vcpu_in_order() -> None:
    first = {name: 0x1000 + i for i, name in enumerate(REGISTERS)}
    first.update(cr0=0x80010033, cr2=0x4AD138, cr3=0x4100000, cr4=0x506A0)
    second = {"rip": 0x40201234, "gs_base": 0x40229000, "cr3": 0x4100000, "cr0": 0x80000011}
    dump = Dump.from_bytes(core([(0, bytes(0x1000))], [first, second]))
    assert len(dump.vcpus) == 2
    registers = dump.vcpus[0]
    for name in REGISTERS:
        if name != "orig_rax":
            assert registers[name] == first[name], name
    assert "orig_rax" not in registers
    assert (registers["cr0"], registers["cr2"], registers["cr3"], registers["cr4"]) == (
        0x80010033, 0x4AD138, 0x4100000, 0x506A0,
    )  # fmt: skip
    assert registers["gdt_base"] == 0x1000 and registers["gdt_limit"] == 0xFFF
    assert {"cs_base", "ss_base", "fs_base", "gs_base", "tr_base", "idt_base"} <= set(registers)
    assert dump.vcpus[1]["rip"] == 0x40201234 and dump.vcpus[1]["gs_base"] == 0x40229000


def test_without_qemu_notes_there_are_no_control_registers() -> None:
    dump = Dump.from_bytes(core([(0, bytes(16))], [{"rip": 1}], qemu_notes=False))
    assert dump.vcpus[0]["rip"] == 1 and "cr3" not in dump.vcpus[0]


def test_pn_xnum_program_header_count() -> None:
    dump = Dump.from_bytes(core([(0, b"x" * 8)], [{"rip": 7}], xnum=True))
    assert dump.read_physical(0, 8) == b"x" * 8 and dump.vcpus[0]["rip"] == 7


# --- what is not a usable dump: one line each ------------------------------------------

VALID = core([(0, bytes(range(256)) * 16)], [{"rip": 0x40201000, "cr3": 0x1000}])


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "x.dump: empty file, not a dump"),
        (b"hello world, no ELF here", "x.dump: not an ELF file"),
        (b"\x7fEL", "x.dump: truncated in the ELF header (3 bytes)"),
        (core([(0, b"")], [{}], e_type=2), "x.dump: not a core file (ELF type ET_EXEC)"),
        (core([(0, b"")], [{}], e_type=3), "x.dump: not a core file (ELF type ET_DYN)"),
        (core([(0, b"")], [{}], machine=3), "x.dump: not an x86-64 core (ELF machine 3)"),
        (core([(0, b"")], [{}], elf_class=1), "x.dump: a 32-bit core: QEMU writes one when"),
        (core([(0, b"m")], []), "x.dump: no NT_PRSTATUS note: no vCPU registers in this core"),
        (core([], [{}]), "x.dump: no memory (no PT_LOAD segment with contents)"),
        (VALID[:40], "x.dump: truncated in the ELF header: the file ends at 0x28"),
        (VALID[:100], "x.dump: truncated in the program headers (2 at 0x40)"),
        (VALID[:250], "x.dump: truncated in the notes (PT_NOTE of 808 bytes at 0xb0)"),
        (VALID[:-1], "x.dump: truncated in the memory (physical 0x0-0x1000 at file offset"),
    ],
)
def test_bad_dumps_are_one_line(data: bytes, message: str) -> None:
    with pytest.raises(DumpError) as caught:
        Dump.from_bytes(data, "x.dump")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_core_truncated_anywhere_is_a_dump_error() -> None:
    for size in range(len(VALID)):
        with pytest.raises(DumpError, match="truncated|empty|no memory|not an ELF"):
            Dump.from_bytes(VALID[:size], "cut.dump")
    Dump.from_bytes(VALID)


def test_a_note_running_past_its_segment() -> None:
    data = bytearray(VALID)
    struct.pack_into("<I", data, 0xB0 + 4, 10_000)  # the first note's descsz
    with pytest.raises(DumpError, match="the note at 0xb0 runs past its PT_NOTE"):
        Dump.from_bytes(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_dump_error(data: bytes) -> None:
    for candidate in (data, VALID[:64] + data, VALID[:0xB0] + data):
        try:
            Dump.from_bytes(candidate)
        except DumpError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8))
def test_corrupted_valid_core_reads_or_raises_dump_error(flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for offset, value in flips:
        data[offset] = value
    try:
        dump = Dump.from_bytes(bytes(data))
    except DumpError:
        return
    for registers in dump.vcpus:
        try:
            dump.read_virtual(registers.get("cr3", 0), registers.get("rip", 0), 16)
        except DumpError:
            pass


def test_file_errors_are_dump_errors(tmp_path: Path) -> None:
    with pytest.raises(DumpError, match="nothing.dump: No such file or directory"):
        Dump(tmp_path / "nothing.dump")
    (tmp_path / "empty.dump").write_bytes(b"")
    with pytest.raises(DumpError, match="empty.dump: empty file, not a dump"):
        Dump(tmp_path / "empty.dump")


# --- the sidecar and the build id ------------------------------------------------------

METADATA = DumpMetadata(
    kernel_path="/k/kernel.elf",
    kernel_build_id="e893f9cf",
    app_path="/a/hello",
    qemu_version="7.2.22",
    time="2026-12-02T07:58:27+00:00",
    vcpus=2,
)


def test_sidecar_round_trip_and_dump_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "x.dump"
    path.write_bytes(VALID)
    written = write_metadata(path, METADATA)
    assert written == tmp_path / "x.dump.json"
    data = json.loads(written.read_text())
    assert data["format"] == "osvgdb dump metadata" and data["format_version"] == 2
    assert read_metadata(path) == METADATA
    with Dump(path) as dump:
        assert dump.metadata == METADATA
    assert read_metadata(tmp_path / "other.dump") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not JSON"),
        ("[]", "not an osvgdb dump sidecar"),
        ('{"format": "osvgdb dump metadata", "format_version": 3}', "format version 3, this"),
        ('{"format": "osvgdb dump metadata", "format_version": 1}', "kernel_path is missing"),
    ],
)
def test_bad_sidecars(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "x.dump.json").write_text(text)
    with pytest.raises(DumpError, match=message):
        read_metadata(tmp_path / "x.dump")


def elf_with_build_id(build_id: bytes | None) -> bytes:
    """A minimal ELF64 executable with section headers: null, a build-id note, shstrtab."""
    names = b"\0.note.gnu.build-id\0.shstrtab\0"
    note = _note(b"GNU", 3, build_id) if build_id is not None else b""
    note_at = 64
    names_at = note_at + len(note)
    shoff = (names_at + len(names) + 7) & ~7
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 2, 62, 1,
                         0x40200000, 0, shoff, 0, 64, 56, 0, 64, 3, 2)  # fmt: skip
    sections = bytes(64)
    sections += struct.pack("<IIQQQQIIQQ", 1, 7, 2, 0, note_at, len(note), 0, 0, 4, 0)
    sections += struct.pack("<IIQQQQIIQQ", 20, 3, 0, 0, names_at, len(names), 0, 0, 1, 0)
    body = header + note + names
    return body + bytes(shoff - len(body)) + sections


def test_kernel_build_id_and_the_refusal(tmp_path: Path) -> None:
    this = tmp_path / "kernel.elf"
    this.write_bytes(elf_with_build_id(bytes.fromhex("0123456789abcdef")))
    assert kernel_build_id(this) == "0123456789abcdef"
    check_kernel("x.dump", DumpMetadata(**{**METADATA.__dict__, "kernel_build_id":
                                            "0123456789abcdef"}), this)  # fmt: skip
    with pytest.raises(DumpError) as caught:
        check_kernel("x.dump", METADATA, this)
    assert str(caught.value) == (
        "x.dump was taken with another kernel build (build id e893f9cf, "
        "this kernel 0123456789abcdef)"
    )
    none = tmp_path / "none.elf"
    none.write_bytes(elf_with_build_id(None))
    assert kernel_build_id(none) is None
    check_kernel("x.dump", METADATA, none)  # nothing to compare: not refused
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(DumpError, match="junk: not an ELF file"):
        kernel_build_id(tmp_path / "junk")


# --- the core for GDB ------------------------------------------------------------------


def test_gdb_core_maps_virtual_addresses_read_back_by_pyelftools(
    walked: Dump, tmp_path: Path
) -> None:
    out = write_gdb_core(walked, tmp_path / "walked.core")
    data = out.read_bytes()
    elf = ELFFile(io.BytesIO(data))
    assert elf["e_type"] == "ET_CORE" and elf["e_machine"] == "EM_X86_64"
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    spans = [(s["p_vaddr"], s["p_memsz"]) for s in loads]
    assert spans == [
        (0x400000, 0x1000),
        (0x401000, 0x1000),
        (0x40200000, 0x200000),
        (0xFFFF800000000000, 0x400000),
        (0xFFFF800040000000, 0x3000),  # the part of the 1 GiB page the dump holds
    ]
    cr3 = walked.vcpus[0]["cr3"]
    for segment in loads:
        vaddr, size = segment["p_vaddr"], segment["p_filesz"]
        assert walked.translate(cr3, vaddr)[0] == segment["p_paddr"]
        assert segment.data() == walked.read_virtual(cr3, vaddr, size)
    assert loads[1]["p_flags"] == 4  # PF_R: read-only and NX
    (notes,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"]
    kinds = [(n["n_name"], n["n_type"]) for n in notes.iter_notes()]
    assert kinds[0] == ("CORE", "NT_PRSTATUS")
    # The core is a dump too: the same registers and memory through the same walk.
    again = Dump(out)
    assert again.vcpus == walked.vcpus
    assert again.memory(0x400FF8, 16) == b"ABCDEFGHIJKLMNOP"
    assert again.memory(0xFFFF800040002000, 4) == b"high"


def test_gdb_core_without_paging_is_identity_mapped(tmp_path: Path) -> None:
    dump = Dump.from_bytes(core([(0x1000, b"z" * 0x1000)], [{"cr0": 0x11}]))
    elf = ELFFile(io.BytesIO(write_gdb_core(dump, tmp_path / "c").read_bytes()))
    (load,) = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert (load["p_vaddr"], load["p_paddr"], load.data()) == (0x1000, 0x1000, b"z" * 0x1000)


def test_second_cr3_adds_only_what_the_first_does_not_map(tmp_path: Path) -> None:
    memory = Memory()
    first = memory.cr3
    memory.map(0x400000, 0x100000)
    second = memory.cr3 = memory.table()
    memory.map(0x400000, 0x200000)  # the same page elsewhere: the first vCPU's wins
    memory.map(0x500000, 0x201000)
    dump = Dump.from_bytes(core([(0, bytes(memory.data))], [paging_vcpu(first),
                                                            paging_vcpu(second)]))  # fmt: skip
    elf = ELFFile(io.BytesIO(write_gdb_core(dump, tmp_path / "c").read_bytes()))
    loads = [(s["p_vaddr"], s["p_paddr"]) for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    assert loads == [(0x400000, 0x100000), (0x500000, 0x201000)]


def test_gdb_core_cache_beside_the_dump(tmp_path: Path) -> None:
    path = tmp_path / "x.dump"
    path.write_bytes(core([(0, b"q" * 0x1000)], [{}]))
    with Dump(path) as dump:
        made = gdb_core_for(dump, tmp_path / "scratch")
        assert made == tmp_path / "x.dump.core"
        stamp = made.stat().st_mtime_ns
        assert gdb_core_for(dump, tmp_path / "scratch") == made
        assert made.stat().st_mtime_ns == stamp  # reused, not written again
