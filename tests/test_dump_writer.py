"""osvgdb.dump_writer and osvgdb.guestram on memory built here: the guest's RAM is a
memfd holding page tables and pages this test wrote (the writer reads a memfd of the
same kind from QEMU), the core it writes is read back by pyelftools (an independent
parser) and by osvgdb.dump, zstd-compressed or not; the range arithmetic against a
set of pages."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import zstandard
from elftools.elf.elffile import ELFFile
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dump import NX, P, Memory, core, paging_vcpu

from osvgdb import dump_writer, guestram
from osvgdb.dump import LEFT_OUT, Dump, DumpError, gdb_core_for, left_out_notice
from osvgdb.guestram import GuestRam

PAGE = 0x1000
RAM = 0x400000


@pytest.fixture
def ram():
    """4 MiB of RAM in a memfd: page tables from 0x1000 (test_dump.Memory), two app
    pages, a 2 MiB kernel page at 0x40200000 -> 0x200000 and a direct map of it all;
    data on some pages, others all zeros, most never written (holes)."""
    memory = Memory(RAM)
    memory.map(0x400000, 0x100000)
    memory.map(0x401000, 0x300000, flags=P | NX)
    memory.map(0x40200000, 0x200000, page=0x200000)
    memory.map(0xFFFF800000000000, 0, page=0x200000)
    memory.map(0xFFFF800000200000, 0x200000, page=0x200000)
    memory.put(0x100FF8, b"ABCDEFGH")  # an app page, kept
    memory.put(0x300000, b"IJKLMNOP")  # the other app page, left out below
    memory.put(0x212345, b"kernel")
    fd = guestram.create()
    os.ftruncate(fd, RAM)
    # Written page by page, skipping zero pages: those stay holes, as in a guest.
    for page in range(0, RAM, PAGE):
        chunk = bytes(memory.data[page : page + PAGE])
        if chunk != bytes(PAGE):
            os.pwrite(fd, chunk, page)
    os.pwrite(fd, bytes(PAGE), 0x380000)  # written, but zeros: data, not a hole
    with GuestRam(guestram.ram_path(fd)) as opened:
        yield opened, memory
    os.close(fd)


def test_layout_of_microvm_ram() -> None:
    assert guestram.layout(0x8000_0000) == [guestram.RamRange(0, 0x8000_0000, 0)]
    big = guestram.layout(0x1_0000_0000)
    assert big == [
        guestram.RamRange(0, 0xE000_0000, 0),
        guestram.RamRange(0x1_0000_0000, 0x2000_0000, 0xE000_0000),
    ]


def test_guest_ram_reads_pages_and_finds_what_was_touched(ram) -> None:
    opened, memory = ram
    assert opened.read_physical(0x100FF8, 8) == b"ABCDEFGH"
    assert opened.read_physical(0x390000, 16) == bytes(16)  # a hole reads as zeros
    runs = opened.data_runs()
    assert (0x380000, 0x381000) in runs and all(s % PAGE == 0 and e % PAGE == 0 for s, e in runs)
    touched = {page for start, end in runs for page in range(start, end, PAGE)}
    assert {0x100000, 0x300000, 0x212000, memory.cr3} <= touched and 0x390000 not in touched
    with pytest.raises(DumpError, match="physical address 0x400000 is not guest RAM"):
        opened.read_physical(RAM - 8, 16)
    assert opened.read_virtual(memory.cr3, 0x400FF8, 8) == b"ABCDEFGH"
    with pytest.raises(DumpError, match="is empty"):
        fd = guestram.create()
        try:
            GuestRam(guestram.ram_path(fd))
        finally:
            os.close(fd)


def test_nonzero_pages_leave_out_zero_pages_touched_or_not(ram) -> None:
    opened, memory = ram
    found = dump_writer.nonzero_pages(opened)
    pages = {page for start, end in found for page in range(start, end, PAGE)}
    assert {0x100000, 0x300000, 0x212000, memory.cr3} <= pages
    assert 0x380000 not in pages and 0x390000 not in pages


def plan_of(opened: GuestRam, memory: Memory, level: str = "stacks") -> dump_writer.Plan:
    """What the writer would plan if the app page at 0x300000 were left out."""
    nonzero = dump_writer.nonzero_pages(opened)
    left = [(0x300000, 0x301000)]
    kept = dump_writer.subtract(nonzero, left)
    ram_ranges = [(0, RAM)]
    zero = dump_writer.subtract(ram_ranges, nonzero)
    stored = sorted([(s, e, True) for s, e in kept] + [(s, e, False) for s, e in zero])
    loads = dump_writer._loads([list(opened.mappings(memory.cr3))], stored)
    return dump_writer.Plan(level, ram_ranges, kept, zero, [(0x300000, 0x301000, "frames")], loads)


def cpus_of(memory: Memory) -> dump_writer.CpuState:
    """The vCPU as cpu_state reads it: from a QEMU dump of one page (built here)."""
    notes = Dump.from_bytes(core([(0, bytes(PAGE))], [paging_vcpu(memory.cr3, rip=0x400FF8)]))
    return dump_writer.CpuState(notes.vcpus, notes._qemu_notes, "7.2.0")


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "zstd"])
def test_the_core_holds_what_was_kept_and_says_what_was_left_out(ram, tmp_path: Path, compress: bool) -> None:
    opened, memory = ram
    plan = plan_of(opened, memory)
    path = tmp_path / "x.dump"
    size = dump_writer._write_core(path, plan, opened, cpus_of(memory), compress)
    assert size == path.stat().st_size and not list(tmp_path.glob(".*.tmp"))
    data = path.read_bytes()
    if compress:
        assert data[:4] == b"\x28\xb5\x2f\xfd"
        data = zstandard.ZstdDecompressor().decompress(data)
    # What pyelftools sees: every PT_LOAD at its virtual address, the stored part in
    # the file, the zeros after it described only.
    elf = ELFFile(io.BytesIO(data))
    loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
    for segment in loads:
        stored = segment.data()
        assert len(stored) == segment["p_filesz"] <= segment["p_memsz"]
        assert stored == memory.data[segment["p_paddr"] : segment["p_paddr"] + segment["p_filesz"]]
        zeros = memory.data[segment["p_paddr"] + segment["p_filesz"] : segment["p_paddr"] + segment["p_memsz"]]
        assert zeros == bytes(len(zeros))
    covered = {
        page
        for s in loads
        if s["p_vaddr"] >> 47 == 0x1FFFF
        for page in range(s["p_paddr"], s["p_paddr"] + s["p_memsz"], PAGE)
    }
    assert 0x300000 not in covered and {0x100000, 0x212000, 0x390000} <= covered
    assert len(data) < 0x40000  # 4 MiB of RAM, a few pages of data
    # What osvgdb.dump reads: the same bytes, zeros where the guest had zeros, and one
    # line naming the level and the reason where the page was left out.
    with Dump(path) as dump:
        assert dump.compressed == compress and dump.contents is not None
        assert dump.contents.level == "stacks" and dump.vcpus[0]["rip"] == 0x400FF8
        assert dump.memory(0x400FF8, 8) == b"ABCDEFGH"
        assert dump.memory(0x40212345, 6) == b"kernel"
        assert dump.memory(0xFFFF800000390000, 8) == bytes(8)
        with pytest.raises(DumpError) as caught:
            dump.memory(0x401000, 8)
        assert str(caught.value) == (
            "0x401000 is not in this dump: level stacks left out app memory (physical 0x300000)"
        )
        with pytest.raises(DumpError, match="physical address 0x300000 is not in this dump: level stacks left out app memory"):
            dump.read_physical(0x300000, 1)
        notice = left_out_notice(path, dump.contents)
        assert notice == f"{path}: a stacks dump; it left out {LEFT_OUT['frames']}: GDB cannot access memory there"
        core = gdb_core_for(dump, tmp_path)
        assert core == (tmp_path / "x.dump.core" if compress else path)
        if compress:
            assert core.read_bytes() == data


def test_a_failed_write_leaves_nothing_that_looks_whole(ram, tmp_path: Path) -> None:
    opened, memory = ram
    plan = plan_of(opened, memory)
    plan.kept.append((RAM + PAGE, RAM + 2 * PAGE))  # past the RAM: the read fails mid-way
    path = tmp_path / "x.dump"
    with pytest.raises(DumpError, match="not guest RAM"):
        dump_writer._write_core(path, plan, opened, cpus_of(memory), False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 2], "truncated zstd data: the compressed dump ends early"),
        (lambda data: data[:20] + bytes(200) + data[220:], "corrupt zstd data"),
    ],
    ids=["truncated", "corrupt"],
)
def test_damaged_compressed_dumps_are_one_line(ram, tmp_path: Path, damage, message: str) -> None:
    opened, memory = ram
    path = tmp_path / "x.dump"
    dump_writer._write_core(path, plan_of(opened, memory), opened, cpus_of(memory), True)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DumpError) as caught:
        Dump(path)
    assert str(caught.value).startswith(f"{path}: {message}") and "\n" not in str(caught.value)


# --- ranges ----------------------------------------------------------------------------

page_ranges = st.lists(st.tuples(st.integers(0, 64), st.integers(0, 64)), max_size=8).map(
    lambda pairs: [(a * PAGE, b * PAGE) for a, b in pairs]
)


def as_pages(ranges) -> set[int]:
    return {page for start, end in ranges for page in range(start, end, PAGE)}


@settings(max_examples=300, deadline=None)
@given(page_ranges, page_ranges)
def test_range_arithmetic_is_set_arithmetic(a, b) -> None:
    ma, mb = dump_writer.merged(a), dump_writer.merged(b)
    for result in (ma, mb):
        assert all(s < e for s, e in result)
        assert all(e1 < s2 for (_, e1), (s2, _) in zip(result, result[1:]))
    assert as_pages(ma) == as_pages(a)
    assert as_pages(dump_writer.subtract(ma, mb)) == as_pages(a) - as_pages(b)
    assert as_pages(dump_writer.intersect(ma, mb)) == as_pages(a) & as_pages(b)
    assert dump_writer.total(ma) == len(as_pages(a)) * PAGE


def test_pages_round_outwards() -> None:
    assert dump_writer.pages([(0x1010, 0x1020)]) == [(0x1000, 0x2000)]
    assert dump_writer.pages([(0x2FFF, 0x3001)]) == [(0x2000, 0x4000)]
