"""The guest's RAM, shared with QEMU: what a dump is written from, without QEMU copying it.

A guest that may be dumped (one with a gdbstub: osvgdb.run.Guest) gets its RAM
from a memfd we create (`create`): QEMU opens it by `ram_path`
(/proc/OUR_PID/fd/N) as `-object memory-backend-file,...,share=on`, sizes it and
maps it shared, so every byte the guest writes is in the memfd, readable from
here (and from GDB, our child, by the same path) while QEMU holds the guest
stopped. A memfd has no name in any file system: nothing under /dev/shm or
/tmp can be left behind however the run ends, and its memory is freed when the
last of QEMU, GDB and us has closed it.

Only pages the guest touched take memory: `data_runs()` (SEEK_DATA/SEEK_HOLE)
finds them in well under a millisecond; a hole is a page nobody wrote, zero.
Reads use pread, which returns zeros for a hole without allocating it (a read
through a shared mapping would give the memfd a page).

Physical layout, as QEMU 7.2's microvm lays RAM out (hw/i386/microvm.c): the
first min(RAM, MICROVM_BELOW_4G) bytes are at physical 0, the rest at 4 GiB.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from osvgdb.paging import DumpError, PhysicalMemory

MICROVM_BELOW_4G = 0xE000_0000  # QEMU's MICROVM_MAX_BELOW_4G
FOUR_GIB = 1 << 32
NAME = "osvgdb-guest-ram"


def create() -> int:
    """A new, empty memfd for QEMU to back the guest's RAM with (close-on-exec: QEMU
    opens it by ram_path, so no child inherits the descriptor itself)."""
    return os.memfd_create(NAME, os.MFD_CLOEXEC)


def ram_path(fd: int) -> str:
    """The path by which QEMU and GDB, our children, open our memfd `fd`."""
    return f"/proc/{os.getpid()}/fd/{fd}"


@dataclass(frozen=True)
class RamRange:
    """Guest physical [paddr, paddr + size) is the file's [offset, offset + size)."""

    paddr: int
    size: int
    offset: int

    @property
    def end(self) -> int:
        return self.paddr + self.size


def layout(size: int) -> list[RamRange]:
    """Where microvm puts `size` bytes of RAM in physical memory."""
    below = min(size, MICROVM_BELOW_4G)
    ranges = [RamRange(0, below, 0)]
    if size > below:
        ranges.append(RamRange(FOUR_GIB, size - below, below))
    return ranges


class GuestRam(PhysicalMemory):
    """The guest's RAM, opened read-only by its path (ram_path). Use as a context manager."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as error:
            raise DumpError(f"the guest's RAM ({path}): {error.strerror}") from None
        self.size = os.fstat(self._fd).st_size
        if not self.size:
            os.close(self._fd)
            raise DumpError(f"the guest's RAM ({path}) is empty: QEMU has not sized it yet")
        self.ranges = layout(self.size)
        self._starts = [r.paddr for r in self.ranges]

    def __enter__(self) -> GuestRam:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _read_run(self, run: RamRange, paddr: int, length: int) -> bytes:
        data = os.pread(self._fd, length, run.offset + paddr - run.paddr)
        if len(data) != length:
            raise DumpError(f"the guest's RAM ended at physical {paddr + len(data):#x}")
        return data

    def _physical_miss(self, paddr: int) -> str:
        return f"physical address {paddr:#x} is not guest RAM"

    def data_runs(self) -> list[tuple[int, int]]:
        """Physical [start, end) of every run of pages the guest touched (SEEK_DATA /
        SEEK_HOLE), in address order; everything else reads as zeros."""
        runs = []
        for found in self.ranges:
            position, end = found.offset, found.offset + found.size
            while position < end:
                try:
                    data = os.lseek(self._fd, position, os.SEEK_DATA)
                except OSError as error:
                    if error.errno == errno.ENXIO:  # no data after position
                        break
                    raise DumpError(f"the guest's RAM: {error.strerror}") from None
                if data >= end:
                    break
                hole = min(os.lseek(self._fd, data, os.SEEK_HOLE), end)
                runs.append((found.paddr + data - found.offset, found.paddr + hole - found.offset))
                position = hole
        return runs
