"""The kernel as the debugger sees it: CPUs, threads, the syscall history, the process.

`Kernel(target)` learns everything about the kernel's types from its DWARF
through the target the first time it is needed (cached for the life of this
object: one per kernel image), reads memory in bulk (one read per ring, per
array, per struct) and hands the bytes to the pure decoders in osvgdb.decode.
Structs are looked up by their tags in the kernel's own DWARF, so an app's
symbols with a `struct thread` of their own never confuse them.
"""

from __future__ import annotations

from functools import cached_property

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.decode import history as history_decode
from osvgdb.decode import tcb as tcb_decode
from osvgdb.decode.layout import Layout
from osvgdb.decode.syscalls import SyscallTable, host_table
from osvgdb.model.target import Target, TargetError

TRAP_STUB_BYTES = 256 * 16  # entry.S: 256 stubs, 16 bytes apart
POINTER = 8


class Kernel:
    """One stopped kernel, read through `target`."""

    def __init__(self, target: Target):
        self.target = target

    # --- symbols and memory ----------------------------------------------------------------

    def has(self, name: str) -> bool:
        return self.target.has(name)

    def address(self, name: str) -> int:
        return self.target.address(name)

    def label(self, name: str) -> int:
        """A code label's address (entry.S's syscall_exit, trap_return...)."""
        return self.target.address(name)

    def function_range(self, name: str) -> tuple[int, int] | None:
        return self.target.function_range(name)

    def read(self, address: int, length: int) -> bytes:
        return self.target.read(address, length)

    def reader(self, address: int, length: int) -> bytes | None:
        """`read` for decoders that follow pointers: None where unreadable."""
        try:
            return self.target.read(address, length)
        except (TargetError, OverflowError, ValueError):
            return None

    def read_int(self, name: str) -> int:
        """An unsigned integer variable."""
        return int.from_bytes(self.read(self.address(name), self.target.symbol_size(name)), "little")

    # --- layouts and enums --------------------------------------------------------------------

    @cached_property
    def cpu_layout(self) -> Layout:
        return self.target.layout("arch_cpu")

    @cached_property
    def thread_layout(self) -> Layout:
        return self.target.layout("thread")

    @cached_property
    def tcb_layout(self) -> Layout:
        return self.target.layout("thread_control_block")

    @cached_property
    def history_layout(self) -> Layout:
        return self.target.layout("syscall_history")

    @cached_property
    def record_layout(self) -> Layout:
        return self.target.layout("syscall_record")

    @cached_property
    def process_layout(self) -> Layout:
        return self.target.layout("process")

    @cached_property
    def syscall_frame_layout(self) -> Layout:
        return self.target.layout("syscall_frame")

    @cached_property
    def trap_frame_layout(self) -> Layout:
        return self.target.layout("trap_frame")

    @cached_property
    def fscheck_state_layout(self) -> Layout:
        return self.target.layout("fscheck_state")

    def enum_values(self, name: str) -> dict[str, int]:
        return self.target.enum(name)

    @cached_property
    def state_names(self) -> dict[int, str]:
        try:
            states = self.target.enum("thread_state")
        except TargetError:
            return {}
        return {value: name.removeprefix("THREAD_").lower() for name, value in states.items()}

    @cached_property
    def vectors(self) -> frames_decode.Vectors:
        """Vector names: the exceptions, and the kernel's enum interrupt_vector."""
        try:
            enumerators = self.target.enum("interrupt_vector").items()
        except TargetError:
            return frames_decode.Vectors({})  # a kernel without the enum: numbers only
        return frames_decode.Vectors(frames_decode.interrupt_names(enumerators))

    @cached_property
    def array_lengths(self) -> dict[str, int]:
        elements = {
            "cpus": self.cpu_layout.size,
            "all_threads": POINTER,
            "syscall_history": self.history_layout.size,
        }
        return {name: self.target.symbol_size(name) // size for name, size in elements.items()}

    @cached_property
    def ring_capacity(self) -> int:
        return self.history_layout.fields["records"].size // self.record_layout.size

    @cached_property
    def ranges(self) -> tcb_decode.CodeRanges:
        # sigreturn_exit (rt_sigreturn's exit) switches FS as the two entry paths do;
        # lazy's syscall_fast_path and trap_fast_path run on the app's FS until they return
        entry_paths = (
            "syscall_entry", "trap_common", "sigreturn_exit", "syscall_fast_path", "trap_fast_path"
        )  # fmt: skip
        stubs = [r for r in map(self.function_range, entry_paths) if r]
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
        """The kernel's own `syscall_names` array of strings, when the host has no header."""
        names = {}
        try:
            data = self.read(self.address("syscall_names"), self.target.symbol_size("syscall_names"))
        except TargetError:
            return SyscallTable({})
        for nr in range(len(data) // POINTER):
            pointer = int.from_bytes(data[nr * POINTER : (nr + 1) * POINTER], "little")
            text = self.reader(pointer, 64) if pointer else None
            if text:
                names[nr] = text.split(b"\0", 1)[0].decode(errors="replace")
        return SyscallTable(names)

    def fs_protocol(self) -> str:
        """The FS-base protocol the kernel runs (its --fs-protocol): counter, compare or
        lazy, named from its enum fs_protocol; counter for a kernel without the choice."""
        if not self.has("fs_protocol"):
            return "counter"
        try:
            value = self.read_int("fs_protocol")
        except TargetError:
            return "unknown"  # the rules then are counter's, the kernel's default
        try:
            enumerators = self.target.enum("fs_protocol").items()
            names = {v: n.removeprefix("FS_PROTOCOL_").lower() for n, v in enumerators}
        except TargetError:
            names = dict(enumerate(tcb_decode.FS_PROTOCOLS))
        return names.get(value, f"unknown ({value})")

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
        return codec.unpack(self.read(self.cpu_address(index), codec.size))

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
        data = self.read(self.address("all_threads"), 8 * count)
        return [int.from_bytes(data[i : i + 8], "little") for i in range(0, 8 * count, 8)]

    def thread(self, address: int) -> tcb_decode.ThreadInfo:
        thread_bytes = self.read(address, self.thread_layout.size)
        tcb = self.thread_layout.codec(["tcb"]).unpack(thread_bytes)["tcb"]
        tcb_bytes = self.reader(tcb, self.tcb_layout.size) if tcb else None
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
        protocol = self.fs_protocol()
        by_address = {t.address: t for t in threads}
        by_tcb = {t.tcb: t for t in threads if t.tcb}
        result = []
        for vcpu in self.target.vcpus():
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
                info.fast_path = tcb_decode.FAST_PATHS.get(values.get("fast_path") or 0)
                info.preempt_count = values.get("preempt_count")
                thread = by_address.get(info.current)
                owner = by_tcb.get(info.kernel_tcb)
                info.current_tid = thread.tid if thread else None
                info.kernel_tcb_owner = owner.tid if owner else None
                if owner is not None:
                    info.counter = owner.counter
                elif info.kernel_tcb:
                    counter = self.reader(
                        info.kernel_tcb + self.tcb_layout.offset("kernel_tcb_counter"), 8
                    )
                    info.counter = tcb_decode.optional_signed64(
                        int.from_bytes(counter, "little") if counter else None
                    )
                info.fs_owner = tcb_decode.fs_owner(info.fs_base, info.kernel_tcb, threads)
                info.where = tcb_decode.where(
                    info, thread, self.ranges, self.ist_ranges(info.index)
                )
            else:
                info.where = "not started" if vcpu.gs_base == 0 else "unknown"
            info.problems = tcb_decode.cpu_verdict(info, thread, protocol)
            result.append(info)
        currents = {c.current for c in result if c.current}
        for t in threads:
            t.problems = tcb_decode.thread_problems(t, currents, protocol)
        return result

    # --- syscall history -------------------------------------------------------------------

    def ring_address(self, index: int) -> int:
        return self.address("syscall_history") + index * self.history_layout.size

    def ring_header(self, index: int) -> history_decode.RingHeader:
        records_offset = self.history_layout.offset("records")
        data = self.read(self.ring_address(index), records_offset)
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
        data = self.read(start, header.used * self.record_layout.size)
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
            data = self.read(start + first * stride, chunk * stride)
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
        count = max(self.nr_cpus(), self.target.vcpu_count())
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
        fields = codec.unpack(self.read(thread_address, codec.size))
        address, seq = fields["syscall_record"], fields["syscall_seq"]
        if not address or not seq:
            return None
        records_offset = self.history_layout.offset("records")
        ring, within = divmod(address - self.address("syscall_history"), self.history_layout.size)
        slot, rest = divmod(within - records_offset, self.record_layout.size)
        if not 0 <= ring < self.array_lengths["syscall_history"] or rest or slot < 0:
            raise TargetError(f"thread {thread_address:#x}: syscall_record {address:#x} is not a slot")
        records = history_decode.decode_ring(
            self.read(address, self.record_layout.size), self.record_layout, ring=ring, count=1
        )
        if not records or records[0].seq != seq:
            return None
        records[0].slot = slot
        return records[0]

    def thread_syscall_seq(self, thread_address: int) -> int:
        """The seq of the syscall a thread is in or made last; 0: none yet."""
        codec = self.thread_layout.codec(("syscall_seq",))
        return int(codec.unpack(self.read(thread_address, codec.size))["syscall_seq"] or 0)

    def panic(self) -> dict[str, object] | None:
        """The kernel's panic_report (kernel/include/panic.h): None without a panic; else
        the CPU, the message, CR2 and, for a fault in kernel code, the vector, error code
        and the faulting registers from its entry frame."""
        if not self.has("panic_report"):
            return None
        layout = self.target.layout("panic_report")
        codec = layout.codec(("cpu", "frame", "cr2", "message"))
        values = codec.unpack(self.read(self.address("panic_report"), codec.size))
        if values["cpu"] is None or values["cpu"] < 0:
            return None
        report: dict[str, object] = {
            "cpu": values["cpu"],
            "message": tcb_decode.c_string(values["message"] or b""),
            "cr2": values["cr2"],
        }
        frame_address = values["frame"]
        if frame_address:
            layout = self.trap_frame_layout
            try:
                frame = frames_decode.decode_trap_frame(
                    self.read(frame_address, layout.size), layout, frame_address
                )
            except (TargetError, DecodeError) as error:
                report["frame_error"] = str(error)
            else:
                report.update(
                    vector=frame.vector,
                    vector_name=self.vectors.name(frame.vector),
                    error_code=frame.error_code,
                    registers=frame.registers,
                    fs_base=frame.fs_base,
                    kernel_tcb_counter=frame.counter,
                )
        return report

    def tsc_per_ms(self) -> int:
        try:
            return self.read_int("tsc_per_ms")
        except TargetError:
            return 0

    # --- the process -------------------------------------------------------------------------

    def process(self, names: tuple[str, ...]) -> dict[str, object]:
        codec = self.process_layout.codec(names)
        return codec.unpack(self.read(self.address("process"), codec.size))
