"""The kernel's symbols, layouts and enums read from its ELF file with pyelftools: the
half of a target that needs no GDB (osvgdb.model.target.Target).

`ElfKernel` answers has/address/symbol_size/function_range/layout/enum from the
kernel ELF; a target adds memory and vCPUs to it (a QEMU dump: osvgdb.dump; the
model's unit tests: bytes they built).  Struct layouts are read from DWARF once,
all the model uses in one pass (~0.1 s for our kernel).
"""

from __future__ import annotations

import bisect
from functools import cached_property
from pathlib import Path

from osvgdb.decode.layout import Layout, enums_from_elf, layouts_from_elf
from osvgdb.paging import CR0_PG, DumpError
from osvgdb.model.target import TargetError, Vcpu

# Every struct and enum the model reads: one DWARF pass each.
STRUCTS = [
    "arch_cpu",
    "thread",
    "thread_control_block",
    "syscall_history",
    "syscall_record",
    "process",
    "syscall_frame",
    "trap_frame",
    "fscheck_state",
    "panic_report",
    "range",
    "mm_reserved",
]
ENUMS = [
    "thread_state",
    "interrupt_vector",
    "fscheck_rule",
    "fscheck_where",
    "syscall_record_flags",
    "mm_reserved_kind",
]


class ElfKernel:
    def __init__(self, path: Path):
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                symtab = elf.get_section_by_name(".symtab")
                if symtab is None:
                    raise TargetError(f"{self.path}: no symbol table")
                self.symbols = {
                    s.name: (s["st_value"], s["st_size"]) for s in symtab.iter_symbols() if s.name
                }
                note = elf.get_section_by_name(".note.gnu.build-id")
                self.build_id = next(
                    (n["n_desc"] for n in note.iter_notes() if n["n_type"] == "NT_GNU_BUILD_ID"),
                    None,
                ) if note is not None else None
        except (OSError, ELFError) as error:
            raise TargetError(f"{self.path}: not a readable kernel ELF ({error})") from None

    def has(self, name: str) -> bool:
        return name in self.symbols

    @cached_property
    def _functions(self) -> list[tuple[int, int, str]]:
        return sorted((a, size, n) for n, (a, size) in self.symbols.items() if size)

    def symbolize(self, pc: int) -> str:
        """` <function+offset>` for an address inside a sized symbol, else nothing."""
        index = bisect.bisect_right(self._functions, (pc, 1 << 64, "")) - 1
        if index >= 0:
            start, size, name = self._functions[index]
            if start <= pc < start + size:
                return f" <{name}+{pc - start}>" if pc > start else f" <{name}>"
        return ""

    def address(self, name: str) -> int:
        try:
            return self.symbols[name][0]
        except KeyError:
            raise TargetError(f"the kernel has no symbol {name}") from None

    def symbol_size(self, name: str) -> int:
        if name not in self.symbols:
            raise TargetError(f"the kernel has no symbol {name}")
        return self.symbols[name][1]

    def function_range(self, name: str) -> tuple[int, int] | None:
        if name not in self.symbols or not self.symbols[name][1]:
            return None
        start, size = self.symbols[name]
        return start, start + size

    @cached_property
    def _layouts(self) -> dict[str, Layout]:
        return layouts_from_elf(self.path, STRUCTS)

    @cached_property
    def _enums(self) -> dict[str, dict[str, int]]:
        return enums_from_elf(self.path, ENUMS)

    def layout(self, struct: str) -> Layout:
        layouts = self._layouts if struct in STRUCTS else layouts_from_elf(self.path, [struct])
        if struct not in layouts:
            raise TargetError(f"the kernel has no struct {struct}")
        return layouts[struct]

    def enum(self, name: str) -> dict[str, int]:
        enums = self._enums if name in ENUMS else enums_from_elf(self.path, [name])
        if name not in enums:
            raise TargetError(f"the kernel has no enum {name}")
        return enums[name]


class ElfSymbolsTarget:
    """The half of a target that the kernel ELF answers: symbols, layouts, enums.
    A target whose memory and registers come from elsewhere (a dump, GDB's MI)
    adds read, vcpus and vcpu_count."""

    def __init__(self, elf: ElfKernel):
        self.elf = elf

    def has(self, name: str) -> bool:
        return self.elf.has(name)

    def address(self, name: str) -> int:
        return self.elf.address(name)

    def symbol_size(self, name: str) -> int:
        return self.elf.symbol_size(name)

    def function_range(self, name: str) -> tuple[int, int] | None:
        return self.elf.function_range(name)

    def layout(self, struct: str) -> Layout:
        return self.elf.layout(struct)

    def enum(self, name: str) -> dict[str, int]:
        return self.elf.enum(name)


class DumpTarget(ElfSymbolsTarget):
    """The model's target over a QEMU dump (osvgdb.dump.Dump) and the kernel ELF it
    was taken with: memory through the kernel's page tables, vCPUs from the notes."""

    def __init__(self, elf: ElfKernel, dump):
        super().__init__(elf)
        self.dump = dump

    def read(self, address: int, length: int) -> bytes:
        from osvgdb.dump import DumpError

        try:
            return self.dump.memory(address, length)
        except DumpError as error:
            raise TargetError(str(error)) from None

    def vcpus(self) -> list[Vcpu]:
        return [Vcpu(index + 1, dict(registers)) for index, registers in enumerate(self.dump.vcpus)]

    def vcpu_count(self) -> int:
        return len(self.dump.vcpus)


class MemoryTarget:
    """The model's target over guest physical memory read through the kernel's page
    tables (an osvgdb.paging.PhysicalMemory: the live guest's RAM, shared with QEMU,
    while the guest is stopped), the vCPUs' registers as QEMU gave them, and the
    symbols, layouts and enums of another target (the kernel ELF's, or GDB's);
    `kernel_path`, the kernel ELF, for the unwinder."""

    def __init__(self, symbols, memory, vcpus: list[dict[str, int]], *, kernel_path=None):
        self.symbols = symbols
        self.kernel_path = kernel_path
        self.memory = memory
        self._vcpus = vcpus
        self.cr3 = next(
            (r["cr3"] for r in vcpus if r.get("cr0", 0) & CR0_PG and "cr3" in r), None
        )
        if self.cr3 is None:
            raise TargetError("no vCPU has paging on: the kernel has not started")

    def has(self, name: str) -> bool:
        return self.symbols.has(name)

    def address(self, name: str) -> int:
        return self.symbols.address(name)

    def symbol_size(self, name: str) -> int:
        return self.symbols.symbol_size(name)

    def function_range(self, name: str) -> tuple[int, int] | None:
        return self.symbols.function_range(name)

    def layout(self, struct: str) -> Layout:
        return self.symbols.layout(struct)

    def enum(self, name: str) -> dict[str, int]:
        return self.symbols.enum(name)

    def read(self, address: int, length: int) -> bytes:
        try:
            return self.memory.read_virtual(self.cr3, address, length)
        except DumpError as error:
            raise TargetError(str(error)) from None

    def vcpus(self) -> list[Vcpu]:
        return [Vcpu(index + 1, dict(registers)) for index, registers in enumerate(self._vcpus)]

    def vcpu_count(self) -> int:
        return len(self._vcpus)
