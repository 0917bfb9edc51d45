"""What the kernel model needs from a target, and nothing more.

A target is anything that can answer these questions about one stopped kernel:
GDB on a live gdbstub or a core file (osvgdb/gdb/target.py), or a QEMU memory
dump read with pyelftools (osvgdb/model/elf_target.py).  Addresses are the
kernel's virtual addresses; `read` raises TargetError for memory it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from osvgdb.decode.layout import Layout


class TargetError(Exception):
    """The kernel cannot be inspected (no symbols, no target, unreadable memory)."""


@dataclass(frozen=True)
class Vcpu:
    """One vCPU (QEMU's; a GDB thread) and its registers by GDB's names: rip, rsp,
    rax.., eflags, fs_base, gs_base, and where known cr0, cr2, cr3, cr4."""

    num: int  # GDB's thread number: QEMU's vCPU index + 1
    registers: dict[str, int] = field(default_factory=dict)

    def register(self, name: str) -> int:
        try:
            return self.registers[name]
        except KeyError:
            raise TargetError(f"vCPU {self.num} has no register {name}") from None

    @property
    def gs_base(self) -> int:
        return self.registers.get("gs_base", 0)

    @property
    def fs_base(self) -> int:
        return self.registers.get("fs_base", 0)

    @property
    def rip(self) -> int:
        return self.registers.get("rip", 0)

    @property
    def rsp(self) -> int:
        return self.registers.get("rsp", 0)


class Target(Protocol):
    def has(self, name: str) -> bool:
        """Whether the kernel has this symbol (a variable, function or label)."""

    def address(self, name: str) -> int:
        """A symbol's address; TargetError when there is none."""

    def symbol_size(self, name: str) -> int:
        """The size of a data symbol in bytes (an array's: all of it)."""

    def function_range(self, name: str) -> tuple[int, int] | None:
        """[start, end) of a function or an assembler routine with a size."""

    def layout(self, struct: str) -> Layout:
        """`struct NAME`'s layout, from the kernel's own DWARF."""

    def enum(self, name: str) -> dict[str, int]:
        """`enum NAME`'s enumerators; TargetError when the kernel has none."""

    def read(self, address: int, length: int) -> bytes:
        """`length` bytes at a virtual address; TargetError if any is unreadable."""

    def vcpus(self) -> list[Vcpu]:
        """Every vCPU with its registers, in QEMU's order."""

    def vcpu_count(self) -> int:
        """How many vCPUs there are (cheaper than vcpus())."""
