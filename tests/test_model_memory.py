"""osvgdb.model.memory in plain Python: the real kernel ELF's symbols and DWARF layouts,
and the allocator's state built here byte by byte (free ranges, a free list linked
through the direct map, the reserved regions). The model must give back what was
built, and cut a free list that cannot be one short, counting the rest in use."""

from __future__ import annotations

import struct

import pytest
from guest import KERNEL
from test_model import BytesTarget

from osvgdb.model.elf_target import ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.model.memory import PAGE, Reserved, kernel_memory

DIRECT = 0xFFFF800000000000
RAM_END = 0x8000_0000


@pytest.fixture(scope="module")
def elf(kernel: None) -> ElfKernel:
    return ElfKernel(KERNEL)


def allocator(elf: ElfKernel, links: dict[int, int], first: int, count: int) -> Kernel:
    """Two free ranges, the free list first -> links[first] -> ..., and the reserved
    regions mm_init records; nr_free_frames says `count`."""
    target = BytesTarget(elf, [])
    for name in ("nr_free_ranges", "free_list", "nr_free_frames", "nr_mm_reserved", "mm_direct_map"):
        target.region(elf.address(name), elf.symbol_size(name))
    ranges, reserved = elf.layout("range"), elf.layout("mm_reserved")
    target.region(elf.address("free_ranges"), elf.symbol_size("free_ranges"))
    target.region(elf.address("mm_reserved"), elf.symbol_size("mm_reserved"))
    for index, (start, end) in enumerate([(0x4200000, 0x40200000), (0x41F00000, 0x7FF00000)]):
        target.put(elf.address("free_ranges") + index * ranges.size, ranges, {"start": start, "end": end})
    target.write(elf.address("nr_free_ranges"), struct.pack("<I", 2))
    kinds = elf.enum("mm_reserved_kind")
    regions = [
        (0, 0x100000, "MM_RESERVED_BOOT"),
        (0x40200000, 0x41E40000, "MM_RESERVED_KERNEL"),
        (0x7FF00000, 0x80000000, "MM_RESERVED_INITRD"),
        (0x100000, 0x4100000, "MM_RESERVED_HEAP"),
    ]
    for index, (start, end, kind) in enumerate(regions):
        target.put(elf.address("mm_reserved") + index * reserved.size, reserved,
                   {"start": start, "end": end, "kind": kinds[kind]})  # fmt: skip
    target.write(elf.address("nr_mm_reserved"), struct.pack("<I", len(regions)))
    target.write(elf.address("mm_direct_map"), struct.pack("<Q", DIRECT))
    target.write(elf.address("free_list"), struct.pack("<Q", first))
    target.write(elf.address("nr_free_frames"), struct.pack("<Q", count))
    for frame, following in links.items():
        target.region(DIRECT + frame, 8)
        target.write(DIRECT + frame, struct.pack("<Q", following))
    return Kernel(target)


def test_the_allocator_as_built(elf: ElfKernel) -> None:
    frames = {0x4101000: 0x4105000, 0x4105000: 0x4102000, 0x4102000: 0}
    memory = kernel_memory(allocator(elf, frames, 0x4101000, 3), RAM_END)
    assert memory.free_ranges == [(0x4200000, 0x40200000), (0x41F00000, 0x7FF00000)]
    assert memory.free_frames == [0x4101000, 0x4105000, 0x4102000]
    assert memory.problems == []
    assert memory.reserved == [
        Reserved(0, 0x100000, "boot"),
        Reserved(0x40200000, 0x41E40000, "kernel"),
        Reserved(0x7FF00000, 0x80000000, "initrd"),
        Reserved(0x100000, 0x4100000, "heap"),
    ]
    assert memory.free() == [
        (0x4101000, 0x4103000),
        (0x4105000, 0x4105000 + PAGE),
        (0x4200000, 0x40200000),
        (0x41F00000, 0x7FF00000),
    ]


@pytest.mark.parametrize(
    "links, problem",
    [
        ({0x4101000: 0x4102000, 0x4102000: 0x4101000}, "cut short at 0x4101000 after 2 of 2 frames"),
        ({0x4101000: 0x4102008}, "cut short at 0x4102008 after 1 of 2 frames"),
        ({0x4101000: RAM_END}, f"cut short at {RAM_END:#x} after 1 of 2 frames"),
        ({0x4101000: 0x4109000}, "the free list ends unreadable after 2 frames"),
    ],
    ids=["loop", "misaligned", "past-ram", "unreadable"],
)
def test_a_list_that_cannot_be_one_is_cut_short(elf: ElfKernel, links: dict, problem: str) -> None:
    """What it could not follow counts as in use: a dump keeps it rather than lose it."""
    memory = kernel_memory(allocator(elf, links, 0x4101000, 2), RAM_END)
    (found,) = memory.problems
    assert problem in found, found
    assert memory.free_frames[0] == 0x4101000 and len(memory.free_frames) <= 2
