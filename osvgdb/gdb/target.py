"""The kernel model over GDB: the target interface (osvgdb.model.target) answered by
GDB, on a live gdbstub or a core file.

Symbols come from the kernel objfile (found by a symbol only the kernel defines),
struct layouts and enums from its DWARF through GDB's types, looked up in the scope
of core/syscall.c (which includes every header the model reads), so an app's
symbol file with a `struct thread` of its own never confuses them; memory through
the selected inferior; vCPUs are GDB's threads.  `Kernel.get()` is the model over
this target, cached until the kernel objfile goes away (a `clear_objfiles` event,
or the objfile becoming invalid); it adds the GDB types the convenience functions
and pretty-printers cast to.
"""

from __future__ import annotations

from functools import cached_property

import gdb

from osvgdb.decode.layout import Field, Layout
from osvgdb.model.kernel import Kernel as KernelModel
from osvgdb.model.target import TargetError, Vcpu

U64 = (1 << 64) - 1
KERNEL_MARKER = "syscall_history"  # a symbol only the kernel objfile defines
TYPE_SCOPE = "syscall_handler"  # its file, core/syscall.c, includes every header we read
# rdi: at syscall_handler's entry, the struct syscall_frame (osv-syscalls' entering calls)
VCPU_REGISTERS = ("rip", "rsp", "rdi", "fs_base", "gs_base", "cr3")

__all__ = ["Kernel", "TargetError", "Vcpu", "read", "reader", "u64", "vcpu_registers", "vcpus"]


def _scalar_kind(t: gdb.Type) -> str | None:
    code = t.code
    if code in (gdb.TYPE_CODE_PTR, gdb.TYPE_CODE_BOOL):
        return "uint"
    if code in (gdb.TYPE_CODE_INT, gdb.TYPE_CODE_ENUM, gdb.TYPE_CODE_CHAR):
        try:
            return "int" if t.is_signed else "uint"
        except (ValueError, AttributeError):
            return "uint"
    return None


def _add_members(t: gdb.Type, prefix: str, base: int, fields: dict[str, Field]) -> None:
    for f in t.fields():
        if not f.name or not hasattr(f, "bitpos") or f.bitsize:
            continue
        member_type = f.type.strip_typedefs()
        name = prefix + f.name
        offset = base + f.bitpos // 8
        kind = _scalar_kind(member_type)
        count = 1
        if kind is None and member_type.code == gdb.TYPE_CODE_ARRAY:
            element = member_type.target().strip_typedefs()
            element_kind = _scalar_kind(element)
            low, high = member_type.range()
            if element_kind is not None and element.sizeof in (2, 4, 8):
                kind, count = element_kind, high - low + 1
        if kind is None and member_type.code == gdb.TYPE_CODE_STRUCT:
            kind = "struct"
            _add_members(member_type, name + ".", offset, fields)
        fields[name] = Field(name, offset, member_type.sizeof, kind or "bytes", count)


def layout_of(t: gdb.Type) -> Layout:
    """A Layout from a GDB struct type: offsets from DWARF's bit positions."""
    t = t.strip_typedefs()
    fields: dict[str, Field] = {}
    _add_members(t, "", 0, fields)
    return Layout(t.tag or str(t), t.sizeof, fields)


def read(address: int, length: int) -> bytes:
    """One read of guest memory; TargetError when any of it is unreadable."""
    try:
        return gdb.selected_inferior().read_memory(address, length).tobytes()
    except gdb.MemoryError as error:
        raise TargetError(f"cannot read {length} bytes at {address:#x}") from error


def reader(address: int, length: int) -> bytes | None:
    """`read` for decoders: None instead of an exception."""
    try:
        return gdb.selected_inferior().read_memory(address, length).tobytes()
    except (gdb.MemoryError, gdb.error, OverflowError, ValueError):
        return None


def u64(value: gdb.Value) -> int:
    return int(value) & U64


def _registers(frame: gdb.Frame, names: tuple[str, ...]) -> dict[str, int]:
    registers = {}
    for name in names:
        try:
            registers[name] = u64(frame.read_register(name))
        except (ValueError, gdb.error):
            continue  # a core file without control registers (cr2, cr3)
    return registers


def vcpu_registers(names: tuple[str, ...] = VCPU_REGISTERS) -> dict[int, dict[str, int]]:
    """Every vCPU's registers NAMES (those it has), by GDB thread number, read from its
    newest frame; GDB's selected thread and frame are left as they were."""
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        raise TargetError("no target: connect first (target remote ...)")
    original_thread = gdb.selected_thread()
    try:
        original_frame = gdb.selected_frame()
    except gdb.error:
        original_frame = None
    result = {}
    try:
        for thread in sorted(inferior.threads(), key=lambda t: t.num):
            thread.switch()
            result[thread.num] = _registers(gdb.newest_frame(), names)
    finally:
        if original_thread is not None and original_thread.is_valid():
            original_thread.switch()
            if original_frame is not None and original_frame.is_valid():
                original_frame.select()
    return result


def vcpus() -> list[Vcpu]:
    """Every vCPU's registers, leaving GDB's selection as it was."""
    return [Vcpu(num, registers) for num, registers in vcpu_registers().items()]


def selected_vcpu() -> Vcpu:
    thread = gdb.selected_thread()
    if thread is None:
        raise TargetError("no thread selected: connect first (target remote ...)")
    return Vcpu(thread.num, _registers(gdb.newest_frame(), VCPU_REGISTERS))


class GdbTarget:
    """osvgdb.model.target.Target over GDB and the kernel objfile."""

    def __init__(self, objfile: gdb.Objfile):
        self.objfile = objfile
        self._symbols: dict[str, gdb.Symbol | None] = {}
        self._labels: dict[str, int | None] = {}

    def symbol(self, name: str) -> gdb.Symbol:
        if name not in self._symbols:
            self._symbols[name] = self.objfile.lookup_global_symbol(
                name
            ) or self.objfile.lookup_static_symbol(name)
        symbol = self._symbols[name]
        if symbol is None:
            raise TargetError(f"the kernel has no symbol {name}")
        return symbol

    def has(self, name: str) -> bool:
        try:
            self.address(name)
        except TargetError:
            return False
        return True

    def address(self, name: str) -> int:
        """A symbol's address, also a label with no debug info (entry.S's
        syscall_exit, trap_return): those come from the ELF symbol table."""
        if name not in self._labels:
            symbol = self._symbols.get(name) or self._lookup(name)
            if symbol is not None:
                self._labels[name] = u64(symbol.value().address.cast(self.u64_type))
            else:
                try:
                    self._labels[name] = u64(gdb.parse_and_eval(f"(unsigned long)&{name}"))
                except gdb.error:
                    self._labels[name] = None
        address = self._labels[name]
        if address is None:
            raise TargetError(f"the kernel has no symbol {name}")
        return address

    def _lookup(self, name: str) -> gdb.Symbol | None:
        try:
            return self.symbol(name)
        except TargetError:
            return None

    def symbol_size(self, name: str) -> int:
        return self.symbol(name).type.sizeof

    def function_range(self, name: str) -> tuple[int, int] | None:
        if not self.has(name):
            return None
        block = gdb.block_for_pc(self.address(name))
        while block is not None and block.function is None:
            block = block.superblock
        return (block.start, block.end) if block is not None else None

    @cached_property
    def u64_type(self) -> gdb.Type:
        return gdb.lookup_type("unsigned long")

    @cached_property
    def _scope(self) -> gdb.Block:
        return self.symbol(TYPE_SCOPE).symtab.static_block()

    def struct_type(self, struct: str) -> gdb.Type:
        try:
            return gdb.lookup_type(f"struct {struct}", self._scope)
        except gdb.error:
            raise TargetError(f"the kernel has no struct {struct}") from None

    def layout(self, struct: str) -> Layout:
        return layout_of(self.struct_type(struct))

    def enum(self, name: str) -> dict[str, int]:
        try:
            enum = gdb.lookup_type(f"enum {name}", self._scope)
        except gdb.error:
            raise TargetError(f"the kernel has no enum {name}") from None
        return {f.name: f.enumval for f in enum.fields()}

    def read(self, address: int, length: int) -> bytes:
        return read(address, length)

    def vcpus(self) -> list[Vcpu]:
        return vcpus()

    def vcpu_count(self) -> int:
        return len(gdb.selected_inferior().threads())


class Kernel(KernelModel):
    """The kernel model over GDB (one per kernel objfile), with the GDB types that
    expressions and pretty-printers cast to."""

    _cached: Kernel | None = None

    def __init__(self, target: GdbTarget):
        super().__init__(target)
        self.gdb_target = target

    @classmethod
    def get(cls) -> Kernel:
        kernel = cls._cached
        if kernel is None or not kernel.gdb_target.objfile.is_valid():
            cls._cached = kernel = cls(GdbTarget(cls._find_objfile()))
        return kernel

    @classmethod
    def forget(cls, _event: object = None) -> None:
        cls._cached = None

    @staticmethod
    def _find_objfile() -> gdb.Objfile:
        for objfile in gdb.objfiles():
            if objfile.is_valid() and objfile.lookup_global_symbol(KERNEL_MARKER) is not None:
                return objfile
        raise TargetError(
            "no osvgdb kernel symbols: start GDB on build/kernel.elf "
            f"(no objfile defines {KERNEL_MARKER})"
        )

    def symbol(self, name: str) -> gdb.Symbol:
        return self.gdb_target.symbol(name)

    @property
    def u64_type(self) -> gdb.Type:
        return self.gdb_target.u64_type

    @cached_property
    def thread_type(self) -> gdb.Type:
        return self.gdb_target.struct_type("thread")

    @cached_property
    def tcb_type(self) -> gdb.Type:
        return self.gdb_target.struct_type("thread_control_block")
