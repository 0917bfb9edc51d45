"""The stopped kernel as GDB sees it: symbols, layouts, memory and vCPU registers.

Everything about the kernel's types is learned from the kernel objfile's DWARF
the first time it is needed and cached until that objfile goes away (a
`clear_objfiles` event, or the objfile becoming invalid).  Types are reached
through the kernel's own symbols (`cpus`, `all_threads`, `syscall_history`,
`process`), so an app's symbol file with a `struct thread` of its own never
confuses them.

Memory is read in bulk (one read per ring, per array, per struct) and handed
to the pure decoders in osvgdb.decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.decode import history as history_decode
from osvgdb.decode import tcb as tcb_decode
from osvgdb.decode.syscalls import SyscallTable, host_table
from osvgdb.layout import Field, Layout

U64 = (1 << 64) - 1
KERNEL_MARKER = "syscall_history"  # a symbol only the kernel objfile defines
TRAP_STUB_BYTES = 256 * 16  # entry.S: 256 stubs, 16 bytes apart


class TargetError(Exception):
    """The kernel cannot be inspected (no symbols, no target, unreadable memory)."""


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


@dataclass(frozen=True)
class Vcpu:
    """One QEMU vCPU (a GDB thread) and the registers that place it."""

    num: int
    gs_base: int
    fs_base: int
    rip: int
    rsp: int


def vcpus() -> list[Vcpu]:
    """Every vCPU's GS/FS base, rip and rsp, leaving GDB's selection as it was."""
    inferior = gdb.selected_inferior()
    if inferior.pid == 0:
        raise TargetError("no target: connect first (target remote ...)")
    original_thread = gdb.selected_thread()
    try:
        original_frame = gdb.selected_frame()
    except gdb.error:
        original_frame = None
    result = []
    try:
        for thread in sorted(inferior.threads(), key=lambda t: t.num):
            thread.switch()
            frame = gdb.newest_frame()
            registers = [u64(frame.read_register(r)) for r in ("gs_base", "fs_base", "rip", "rsp")]
            result.append(Vcpu(thread.num, *registers))
    finally:
        if original_thread is not None and original_thread.is_valid():
            original_thread.switch()
            if original_frame is not None and original_frame.is_valid():
                original_frame.select()
    return result


def selected_vcpu() -> Vcpu:
    thread = gdb.selected_thread()
    if thread is None:
        raise TargetError("no thread selected: connect first (target remote ...)")
    frame = gdb.newest_frame()
    registers = [u64(frame.read_register(r)) for r in ("gs_base", "fs_base", "rip", "rsp")]
    return Vcpu(thread.num, *registers)


class Kernel:
    """The kernel objfile's symbols and layouts, looked up once and cached."""

    _cached: Kernel | None = None

    @classmethod
    def get(cls) -> Kernel:
        kernel = cls._cached
        if kernel is None or not kernel.objfile.is_valid():
            cls._cached = kernel = cls(cls._find_objfile())
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

    def __init__(self, objfile: gdb.Objfile):
        self.objfile = objfile
        self._symbols: dict[str, gdb.Symbol | None] = {}
        self._labels: dict[str, int | None] = {}

    # --- symbols -------------------------------------------------------------------------

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
            self.symbol(name)
        except TargetError:
            return False
        return True

    def address(self, name: str) -> int:
        return u64(self.symbol(name).value().address.cast(self.u64_type))

    def value(self, name: str) -> gdb.Value:
        return self.symbol(name).value()

    def read_int(self, name: str) -> int:
        symbol = self.symbol(name)
        return int.from_bytes(read(self.address(name), symbol.type.sizeof), "little")

    def label(self, name: str) -> int:
        """The address of a code label, also one with no debug info (entry.S's
        syscall_exit, trap_return): from the ELF symbol table."""
        if name not in self._labels:
            try:
                self._labels[name] = u64(gdb.parse_and_eval(f"(unsigned long)&{name}"))
            except gdb.error:
                self._labels[name] = None
        address = self._labels[name]
        if address is None:
            raise TargetError(f"the kernel has no label {name}")
        return address

    def function_range(self, name: str) -> tuple[int, int] | None:
        if not self.has(name):
            return None
        block = gdb.block_for_pc(self.address(name))
        while block is not None and block.function is None:
            block = block.superblock
        return (block.start, block.end) if block is not None else None

    # --- types and layouts -------------------------------------------------------------

    @cached_property
    def u64_type(self) -> gdb.Type:
        return gdb.lookup_type("unsigned long")

    @cached_property
    def cpu_type(self) -> gdb.Type:
        return self.symbol("cpus").type.strip_typedefs().target()

    @cached_property
    def thread_type(self) -> gdb.Type:
        return self.symbol("all_threads").type.strip_typedefs().target().target()

    @cached_property
    def tcb_type(self) -> gdb.Type:
        return self.thread_type["tcb"].type.strip_typedefs().target()

    @cached_property
    def history_type(self) -> gdb.Type:
        return self.symbol("syscall_history").type.strip_typedefs().target()

    @cached_property
    def record_type(self) -> gdb.Type:
        return self.history_type["records"].type.strip_typedefs().target()

    @cached_property
    def cpu_layout(self) -> Layout:
        return layout_of(self.cpu_type)

    @cached_property
    def thread_layout(self) -> Layout:
        return layout_of(self.thread_type)

    @cached_property
    def tcb_layout(self) -> Layout:
        return layout_of(self.tcb_type)

    @cached_property
    def history_layout(self) -> Layout:
        return layout_of(self.history_type)

    @cached_property
    def record_layout(self) -> Layout:
        return layout_of(self.record_type)

    @cached_property
    def process_layout(self) -> Layout:
        return layout_of(self.symbol("process").type)

    def _parameter_target(self, function: str) -> gdb.Type:
        """The struct a function's first (pointer) parameter points at."""
        return self.symbol(function).type.fields()[0].type.strip_typedefs().target()

    @cached_property
    def syscall_frame_layout(self) -> Layout:
        return layout_of(self._parameter_target("syscall_handler"))

    @cached_property
    def trap_frame_layout(self) -> Layout:
        return layout_of(self._parameter_target("trap_handler"))

    def enum_values(self, name: str) -> dict[str, int]:
        """An enum's enumerators from the kernel's DWARF: {name: value}."""
        try:
            enum = gdb.lookup_type(f"enum {name}", self._any_block())
        except gdb.error as error:
            raise TargetError(f"the kernel has no enum {name}") from error
        return {f.name: f.enumval for f in enum.fields()}

    def _any_block(self) -> gdb.Block:
        """A block of the kernel objfile, so type lookups never find an app's types."""
        return gdb.block_for_pc(self.address("syscall_handler")).global_block

    def parameter_layout(self, function: str, index: int) -> Layout:
        """The struct a function's (pointer) parameter `index` points at."""
        parameter = self.symbol(function).type.fields()[index]
        return layout_of(parameter.type.strip_typedefs().target())

    @cached_property
    def state_names(self) -> dict[int, str]:
        state_type = self.thread_type["state"].type.strip_typedefs()
        if state_type.code != gdb.TYPE_CODE_ENUM:
            return {}
        return {f.enumval: f.name.removeprefix("THREAD_").lower() for f in state_type.fields()}

    @cached_property
    def vectors(self) -> frames_decode.Vectors:
        """Vector names: the exceptions, and the kernel's enum interrupt_vector (kept
        in DWARF for this), looked up in trap.c, which handles them."""
        try:
            block = self.symbol("trap_handler").symtab.static_block()
            enum = gdb.lookup_type("enum interrupt_vector", block)
        except (TargetError, gdb.error):
            return frames_decode.Vectors({})  # a kernel without the enum: numbers only
        enumerators = ((f.name, f.enumval) for f in enum.fields())
        return frames_decode.Vectors(frames_decode.interrupt_names(enumerators))

    @cached_property
    def array_lengths(self) -> dict[str, int]:
        lengths = {}
        for name in ("cpus", "all_threads", "syscall_history"):
            low, high = self.symbol(name).type.strip_typedefs().range()
            lengths[name] = high - low + 1
        return lengths

    @cached_property
    def ring_capacity(self) -> int:
        low, high = self.history_type["records"].type.strip_typedefs().range()
        return high - low + 1

    @cached_property
    def ranges(self) -> tcb_decode.CodeRanges:
        stubs = [r for r in map(self.function_range, ("syscall_entry", "trap_common")) if r]
        if self.has("trap_stubs"):
            start = self.address("trap_stubs")
            stubs.append((start, start + TRAP_STUB_BYTES))
        idle = [r for r in map(self.function_range, ("sched_idle_loop",)) if r]
        return tcb_decode.CodeRanges(
            kernel=(self.address("kernel_start"), self.address("kernel_end")),
            entry_stubs=tuple(stubs),
            panic_halt=self.function_range("osv_panic_halt"),
            idle=tuple(idle),
        )

    @cached_property
    def syscalls(self) -> SyscallTable:
        table = host_table()
        return table if table is not None else self._kernel_syscall_table()

    def _kernel_syscall_table(self) -> SyscallTable:
        """The kernel's own `syscall_names` array, when the host has no header."""
        names = {}
        try:
            array = self.value("syscall_names")
            low, high = array.type.strip_typedefs().range()
            for nr in range(low, high + 1):
                if int(array[nr]) != 0:
                    names[nr] = array[nr].string()
        except (TargetError, gdb.error):
            pass
        return SyscallTable(names)

    # --- per-CPU state -----------------------------------------------------------------

    def cpu_index(self, gs_base: int) -> int | None:
        """Which cpus[i] a GS base points into (at its tcb_data), or None."""
        base = self.address("cpus")
        size = self.cpu_layout.size
        offset = gs_base - base - self.cpu_layout.offset("tcb_data")
        if offset < 0 or offset % size or offset // size >= self.array_lengths["cpus"]:
            return None
        return offset // size

    def cpu_address(self, index: int) -> int:
        return self.address("cpus") + index * self.cpu_layout.size

    def read_cpu(self, index: int) -> dict[str, object]:
        codec = self.cpu_layout.codec(tcb_decode.CPU_FIELDS)
        return codec.unpack(read(self.cpu_address(index), codec.size))

    def ist_ranges(self, index: int) -> list[tuple[int, int]]:
        if not self.cpu_layout.has("ist_stack"):
            return []
        member = self.cpu_layout.fields["ist_stack"]
        start = self.cpu_address(index) + member.offset
        return [(start, start + member.size)]

    def nr_cpus(self) -> int:
        try:
            count = self.read_int("nr_cpus")
        except TargetError:
            count = 1
        return max(1, min(count, self.array_lengths["cpus"]))

    # --- threads -------------------------------------------------------------------------

    def thread_pointers(self) -> list[int]:
        count = min(self.read_int("nr_threads"), self.array_lengths["all_threads"])
        data = read(self.address("all_threads"), 8 * count)
        return [int.from_bytes(data[i : i + 8], "little") for i in range(0, 8 * count, 8)]

    def thread(self, address: int) -> tcb_decode.ThreadInfo:
        thread_bytes = read(address, self.thread_layout.size)
        tcb = self.thread_layout.codec(["tcb"]).unpack(thread_bytes)["tcb"]
        tcb_bytes = reader(tcb, self.tcb_layout.size) if tcb else None
        return tcb_decode.decode_thread(
            address, thread_bytes, self.thread_layout, tcb_bytes, self.tcb_layout, self.state_names
        )

    def threads(self) -> list[tcb_decode.ThreadInfo]:
        threads = []
        for address in self.thread_pointers():
            if not address:
                continue
            try:
                threads.append(self.thread(address))
            except (TargetError, DecodeError) as error:
                threads.append(
                    tcb_decode.ThreadInfo(address, -1, "?", "?", -1, 0, problems=[str(error)])
                )
        return threads

    def cpus(self, threads: list[tcb_decode.ThreadInfo] | None = None) -> list[tcb_decode.CpuInfo]:
        """Every vCPU with its verdict; threads get their per-thread problems too."""
        if threads is None:
            threads = self.threads()
        by_address = {t.address: t for t in threads}
        by_tcb = {t.tcb: t for t in threads if t.tcb}
        result = []
        for vcpu in vcpus():
            info = tcb_decode.CpuInfo(
                index=self.cpu_index(vcpu.gs_base),
                vcpu=vcpu.num,
                gs_base=vcpu.gs_base,
                fs_base=vcpu.fs_base,
                rip=vcpu.rip,
                rsp=vcpu.rsp,
            )
            thread = None
            if info.index is not None:
                values = self.read_cpu(info.index)
                info.kernel_tcb = values["tcb_data.kernel_tcb"]
                info.current = values["current"]
                info.idle_thread = values["idle_thread"]
                thread = by_address.get(info.current)
                owner = by_tcb.get(info.kernel_tcb)
                info.current_tid = thread.tid if thread else None
                info.kernel_tcb_owner = owner.tid if owner else None
                if owner is not None:
                    info.counter = owner.counter
                elif info.kernel_tcb:
                    counter = reader(
                        info.kernel_tcb + self.tcb_layout.offset("kernel_tcb_counter"), 8
                    )
                    info.counter = tcb_decode.signed64(
                        int.from_bytes(counter, "little") if counter else None
                    )
                info.fs_owner = tcb_decode.fs_owner(info.fs_base, info.kernel_tcb, threads)
                info.where = tcb_decode.where(
                    info, thread, self.ranges, self.ist_ranges(info.index)
                )
            else:
                info.where = "not started" if vcpu.gs_base == 0 else "unknown"
            info.problems = tcb_decode.cpu_verdict(info, thread)
            result.append(info)
        currents = {c.current for c in result if c.current}
        for t in threads:
            t.problems = tcb_decode.thread_problems(t, currents)
        return result

    # --- syscall history -------------------------------------------------------------------

    def ring_address(self, index: int) -> int:
        return self.address("syscall_history") + index * self.history_layout.size

    def ring_header(self, index: int) -> history_decode.RingHeader:
        records_offset = self.history_layout.offset("records")
        data = read(self.ring_address(index), records_offset)
        header_layout = Layout(
            self.history_layout.name,
            records_offset,
            {k: v for k, v in self.history_layout.fields.items() if v.offset < records_offset},
        )
        return history_decode.decode_header(
            data, header_layout, capacity=self.ring_capacity, record_layout=self.record_layout
        )

    def ring(self, index: int, max_seq: int | None) -> list[history_decode.SyscallRecord]:
        """One CPU's used records: the header, then all used slots in one read."""
        header = self.ring_header(index)
        if header.used == 0:
            return []
        start = self.ring_address(index) + self.history_layout.offset("records")
        data = read(start, header.used * self.record_layout.size)
        return history_decode.decode_ring(
            data, self.record_layout, ring=index, count=header.used, max_seq=max_seq
        )

    def ring_slots(self, index: int, first: int, count: int) -> list[history_decode.SyscallRecord]:
        """Slots first..first+count-1 of CPU `index`'s ring (wrapping round), in one or two
        reads; the used ones, with their slot numbers."""
        size = self.ring_capacity
        start = self.ring_address(index) + self.history_layout.offset("records")
        stride = self.record_layout.size
        records = []
        while count > 0:
            chunk = min(count, size - first)
            data = read(start + first * stride, chunk * stride)
            for record in history_decode.decode_ring(data, self.record_layout, ring=index, count=chunk):
                record.slot += first
                records.append(record)
            first, count = 0, count - chunk
        return records

    def history(
        self, cpus: list[int] | None = None
    ) -> tuple[list[history_decode.SyscallRecord], list[str]]:
        """Every ring's records merged in sequence order, and one error line per
        ring that could not be decoded."""
        max_seq = self.read_int("syscall_seq") if self.has("syscall_seq") else None
        count = max(self.nr_cpus(), len(gdb.selected_inferior().threads()))
        indexes = range(min(count, self.array_lengths["syscall_history"]))
        rings, errors = [], []
        for index in indexes:
            if cpus is not None and index not in cpus:
                continue
            try:
                rings.append(self.ring(index, max_seq))
            except (TargetError, DecodeError) as error:
                errors.append(f"CPU {index} ring: {error}")
        return history_decode.merge(rings), errors

    def thread_call(self, thread_address: int) -> history_decode.SyscallRecord | None:
        """The history record of the syscall a thread is in or made last (struct
        thread's syscall_record and syscall_seq), or None: no call yet, or its ring
        slot has since been reused by a newer call."""
        codec = self.thread_layout.codec(("syscall_record", "syscall_seq"))
        fields = codec.unpack(read(thread_address, codec.size))
        address, seq = fields["syscall_record"], fields["syscall_seq"]
        if not address or not seq:
            return None
        records_offset = self.history_layout.offset("records")
        ring, within = divmod(address - self.address("syscall_history"), self.history_layout.size)
        slot, rest = divmod(within - records_offset, self.record_layout.size)
        if not 0 <= ring < self.array_lengths["syscall_history"] or rest or slot < 0:
            raise TargetError(f"thread {thread_address:#x}: syscall_record {address:#x} is not a slot")
        records = history_decode.decode_ring(
            read(address, self.record_layout.size), self.record_layout, ring=ring, count=1
        )
        if not records or records[0].seq != seq:
            return None
        records[0].slot = slot
        return records[0]

    def thread_syscall_seq(self, thread_address: int) -> int:
        """The seq of the syscall a thread is in or made last; 0: none yet."""
        codec = self.thread_layout.codec(("syscall_seq",))
        return int(codec.unpack(read(thread_address, codec.size))["syscall_seq"] or 0)

    def tsc_per_ms(self) -> int:
        try:
            return self.read_int("tsc_per_ms")
        except TargetError:
            return 0

    # --- the process -------------------------------------------------------------------------

    def process(self, names: tuple[str, ...]) -> dict[str, object]:
        codec = self.process_layout.codec(names)
        return codec.unpack(read(self.address("process"), codec.size))
