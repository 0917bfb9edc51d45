"""The guest's x86-64 4-level page tables, walked over any copy of its physical memory.

A dump (osvgdb.dump.Dump) and the live guest's RAM that QEMU shares with us
(osvgdb.guestram.GuestRam) are both `PhysicalMemory`: they give
`read_physical(paddr, length)`, and this class gives the rest, the same way for
both: virtual memory through the page tables at a CR3 (`translate`,
`read_virtual`, `reader`), every present mapping (`mappings`) and the page
tables a translation reads (`tables_on_path`).

Every problem is one `DumpError` line; an address the page tables do not map is a
`NotMapped` naming the address and the level whose entry is not present.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

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


class DumpError(Exception):
    """A dump or sidecar that cannot be used, guest memory a dump cannot be made
    of, or memory it does not hold: one line."""


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


class PhysicalMemory:
    """Guest physical memory, and virtual memory through the guest's page tables.

    A subclass sets `ranges` (sorted, non-overlapping runs with `paddr` and `end`, and
    `_starts`, their paddrs) and gives `_read_run`, the bytes of part of one run;
    `read_physical` raises DumpError with `_physical_miss`'s words between runs."""

    ranges: list
    _starts: list[int]

    def read_physical(self, paddr: int, length: int) -> bytes:
        """length bytes of guest physical memory from paddr."""
        if length < 0 or paddr < 0:
            raise DumpError(f"bad physical read of {length} bytes at {paddr:#x}")
        parts = []
        address, remaining = paddr, length
        while remaining:
            index = bisect.bisect_right(self._starts, address) - 1
            if index < 0 or address >= self.ranges[index].end:
                raise DumpError(self._physical_miss(address))
            found = self.ranges[index]
            take = min(remaining, found.end - address)
            parts.append(self._read_run(found, address, take))
            address += take
            remaining -= take
        return b"".join(parts)

    def _read_run(self, run, paddr: int, length: int) -> bytes:
        raise NotImplementedError

    def _physical_miss(self, paddr: int) -> str:
        return f"physical address {paddr:#x} is not in guest memory"

    def _error(self, what: str) -> DumpError:
        return DumpError(what)

    def translate(self, cr3: int, vaddr: int) -> tuple[int, int]:
        """(physical address, bytes left in its page) of vaddr under the page tables at cr3."""
        if not canonical(vaddr):
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
            raise self._table_miss(vaddr, level, table) from None

    def _table_miss(self, vaddr: int, level: str, table: int) -> DumpError:
        """What a translation of vaddr raises when the memory lacks its page table."""
        return DumpError(f"virtual address {vaddr:#x}: its {level} at physical {table:#x} is not in the dump")

    def read_virtual(self, cr3: int, vaddr: int, length: int) -> bytes:
        """length bytes from vaddr in the address space of the page tables at cr3."""
        if length < 0 or not 0 <= vaddr <= (1 << 64) - max(length, 1):
            raise DumpError(f"bad virtual read of {length} bytes at {vaddr:#x}")
        parts = []
        address, remaining = vaddr, length
        while remaining:
            paddr, in_page = self.translate(cr3, address)
            take = min(remaining, in_page)
            try:
                parts.append(self.read_physical(paddr, take))
            except DumpError as error:
                raise self._virtual_miss(address, paddr, error) from None
            address += take
            remaining -= take
        return b"".join(parts)

    def _virtual_miss(self, vaddr: int, paddr: int, error: DumpError) -> DumpError:
        """What a read of vaddr (at paddr) that the physical memory lacks raises."""
        return error

    def reader(self, cr3: int) -> Callable[[int, int], bytes]:
        """read(address, length) -> bytes in the address space of the page tables at cr3."""

        def read(address: int, length: int) -> bytes:
            return self.read_virtual(cr3, address, length)

        return read

    def mappings(self, cr3: int) -> Iterator[Mapping]:
        """Every present mapping of the page tables at cr3, in address order, adjacent
        pages with contiguous frames and one protection joined.  A table outside the
        memory is passed over (its addresses stay unmapped)."""
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
            vaddr = sign_extend(base | (index << shift))
            w = writable and bool(entry & PTE_W)
            x = executable and not entry & PTE_NX
            if shift == 12 or (large and entry & PTE_PS):
                page = 1 << shift
                yield Mapping(vaddr, entry & ADDRESS_BITS & ~(page - 1), page, w, x)
            else:
                yield from self._leaves(entry & ADDRESS_BITS, depth + 1, vaddr, w, x)

    def tables_on_path(self, cr3: int, vaddr: int) -> list[int]:
        """The physical address of each page table a translation of vaddr reads, as
        far as the entries are present: what a dump must keep for a reader to
        translate vaddr again."""
        tables = []
        table = cr3 & ADDRESS_BITS
        for shift, _level, large in LEVELS:
            tables.append(table)
            try:
                (entry,) = struct.unpack("<Q", self.read_physical(table + ((vaddr >> shift) & 511) * 8, 8))
            except DumpError:
                break
            if not entry & PTE_P or shift == 12 or (large and entry & PTE_PS):
                break
            table = entry & ADDRESS_BITS
        return tables


def sign_extend(vaddr: int) -> int:
    return vaddr | 0xFFFF_0000_0000_0000 if vaddr & (1 << 47) else vaddr


def canonical(vaddr: int) -> bool:
    top = vaddr >> 47
    return top == 0 or top == (1 << 17) - 1
