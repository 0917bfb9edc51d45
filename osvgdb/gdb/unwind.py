"""Backtraces through the entry paths into the app: a gdb.unwinder and a frame decorator.

Once entry.S has built struct syscall_frame or struct trap_frame, its CFI
describes where every app register was saved and marks the stub a signal
frame, so GDB's own unwinder continues `bt` from the handler into the app. A
Python unwinder could not do that part: its frames are normal ones, and GDB
ends a backtrace at a normal frame whose stack lies below (is inner to) that
of the normal frame it returns to, as the app's stack lies below the handler's.
From the handler's return on (the exit path's pops, syscall_return,
trap_return) this unwinder gives GDB the registers the stub saved. Either way
`frame N` / `info registers` in an app frame show its registers as saved at the
crossing, and the frame decorator names the crossing: `<syscall write>`,
`<interrupt 32 timer>`, `<page fault at 0x...>`.

A signal handler returns into libc's sa_restorer, __restore_rt (`mov $15, %rax;
syscall`). glibc's has CFI that marks it a signal frame; musl's has none, and GDB's
DWARF unwinder then takes the function before it for the trampoline's. So this
unwinder takes every frame at those bytes: the interrupted registers are in the
rt_sigframe's ucontext at rsp (kernel/core/signal.c), the same code osv-bt's
unwinder reads (model/unwind.py), and the frame filter calls it
`<signal handler called>`, as GDB names its own signal frames.

Where in a stub the frame is, from its instructions' encodings (GDB's
disassembler only says where each starts; cached with the kernel's symbols):
from its last push before `call` to the end, rsp is the frame plus what the
exit path popped so far; at syscall_return (after `pop %rsp`) the registers
already are the app's, with rip in rcx.  During the pushes the frame is
incomplete and the CFI ends the backtrace as before.
"""

from __future__ import annotations

import gdb
from gdb.FrameDecorator import FrameDecorator
from gdb.unwinder import Unwinder, register_unwinder

from osvgdb.decode import DecodeError, signed64
from osvgdb.decode import frames as frames_decode
from osvgdb.decode.frames import ENTRY_STUBS, RETURNED, Stub, analyse
from osvgdb.gdb.target import Kernel, TargetError, read, u64
from osvgdb.model.unwind import (
    SIGCONTEXT_REGISTERS,
    SIGNAL_FRAME_LABEL,
    SIGRETURN_CODE,
    UC_MCONTEXT,
)

NAME = "osv-entry"
SMALL_REGISTERS = ("eflags", "cs", "ss")  # 32 bits in GDB's amd64 description
_stubs: dict[int, list[Stub]] = {}


def stubs(kernel: Kernel) -> list[Stub]:
    key = id(kernel)
    if key not in _stubs:
        _stubs.clear()
        found = []
        architecture = gdb.selected_inferior().architecture()
        for kind, function in ENTRY_STUBS:
            extent = kernel.function_range(function)
            if extent is None:
                continue
            start, end = extent
            code = read(start, end - start)
            # Only where each instruction starts: the text follows `set disassembly-flavor`.
            instructions = [
                (insn["addr"], code[insn["addr"] - start : insn["addr"] - start + insn["length"]])
                for insn in architecture.disassemble(start, end - 1)
            ]
            found.append(analyse(kind, start, end, instructions))
        _stubs[key] = found
    return _stubs[key]


def _value(name: str, number: int) -> gdb.Value:
    kernel = Kernel.get()
    if name in SMALL_REGISTERS:
        return gdb.Value(number & 0xFFFFFFFF).cast(gdb.lookup_type("unsigned int"))
    return gdb.Value(number & ((1 << 64) - 1)).cast(kernel.u64_type)


class _FrameId:
    def __init__(self, sp: int, pc: int):
        self.sp = _value("rsp", sp)
        self.pc = _value("rip", pc)


# Labels of the crossings unwound since the last stop, by (pc, sp) of the stub frame.
_labels: dict[tuple[int, int], str] = {}


def _forget_labels(_event: object = None) -> None:
    _labels.clear()


def _returning_call(kernel: Kernel, gs_base: int) -> str:
    """The name of the syscall this CPU's current thread returns from (the number is
    gone from the frame: rax holds the result), from the history record its struct
    thread points at; `?` when that cannot tell, which leaves the unwinding alone."""
    try:
        cpu = kernel.cpu_index(gs_base)
        current = int(kernel.read_cpu(cpu)["current"] or 0) if cpu is not None else 0
        if not current:
            return "?"
        record = kernel.thread_call(current)
        if record is not None:
            return kernel.syscalls.name(record.nr)
        codec = kernel.thread_layout.codec(("syscall_seq",))
        if not codec.unpack(read(current, codec.size))["syscall_seq"]:
            return "clone-child"  # a new thread's first return: the call was its parent's
    except (TargetError, DecodeError):
        pass
    return "?"  # e.g. newer calls on that CPU have reused the record's ring slot


def _returning_label(kernel: Kernel, pending: gdb.PendingFrame, ret: int) -> str:
    name = _returning_call(kernel, u64(pending.read_register("gs_base")))
    return f"<syscall {name} returning {ret}>"


class EntryUnwinder(Unwinder):
    """Unwinds syscall_entry and trap_common frames into the code they interrupted."""

    def __init__(self) -> None:
        super().__init__(NAME)

    def __call__(self, pending_frame: gdb.PendingFrame) -> gdb.UnwindInfo | None:
        try:
            kernel = Kernel.get()
            pc = u64(pending_frame.read_register("rip"))
            if not kernel.ranges.in_kernel(pc):
                return self._signal_frame(pending_frame, pc)
            if not kernel.ranges.in_entry_stub(pc):
                return None
            stub = next((s for s in stubs(kernel) if s.contains(pc)), None)
            if stub is None or pc not in stub.offsets:
                return None
            return self._unwind(kernel, pending_frame, stub, pc)
        except (TargetError, DecodeError, gdb.error, gdb.MemoryError):
            return None

    def _signal_frame(self, pending: gdb.PendingFrame, pc: int) -> gdb.UnwindInfo | None:
        """App code at the sigreturn trampoline: the registers the signal interrupted."""
        if read(pc, len(SIGRETURN_CODE)) != SIGRETURN_CODE:
            return None
        rsp = u64(pending.read_register("rsp"))
        saved = read(rsp + UC_MCONTEXT, 8 * len(SIGCONTEXT_REGISTERS))
        registers = {
            name: int.from_bytes(saved[8 * i : 8 * i + 8], "little")
            for i, name in enumerate(SIGCONTEXT_REGISTERS)
        }
        # As for an exit path's frame below: the id's sp is where this frame returns to.
        info = pending.create_unwind_info(_FrameId(registers["rsp"], pc))
        for name, number in registers.items():
            try:
                info.add_saved_register(name, _value(name, number))
            except (ValueError, gdb.error):
                continue
        _labels[(pc, rsp)] = SIGNAL_FRAME_LABEL
        return info

    def _unwind(
        self, kernel: Kernel, pending: gdb.PendingFrame, stub: Stub, pc: int
    ) -> gdb.UnwindInfo | None:
        rsp = u64(pending.read_register("rsp"))
        offset = stub.offsets[pc]
        if offset == RETURNED:  # syscall_return: rcx holds the app's rip, rsp is the app's
            info = pending.create_unwind_info(_FrameId(rsp, stub.start))
            info.add_saved_register("rip", _value("rip", u64(pending.read_register("rcx"))))
            info.add_saved_register("rsp", _value("rsp", rsp))
            ret = signed64(u64(pending.read_register("rax")))
            _labels[(pc, rsp)] = _returning_label(kernel, pending, ret)
            return info
        address = rsp - offset
        if stub.kind == "syscall":
            layout = kernel.syscall_frame_layout
            frame = frames_decode.decode_syscall_frame(read(address, layout.size), layout, address)
            registers = frame.app_registers()
            if pc > stub.call_return:
                _labels[(pc, rsp)] = _returning_label(kernel, pending, frame.ret)
            else:
                _labels[(pc, rsp)] = f"<syscall {kernel.syscalls.name(frame.nr)}>"
        else:
            layout = kernel.trap_frame_layout
            trap = frames_decode.decode_trap_frame(read(address, layout.size), layout, address)
            registers = trap.interrupted_registers()
            cr2 = None
            if trap.vector == frames_decode.PAGE_FAULT:
                try:
                    cr2 = u64(pending.read_register("cr2"))
                except ValueError:
                    cr2 = None  # a core written from a dump has no control registers
            _labels[(pc, rsp)] = kernel.vectors.label(trap.vector, cr2)
        if pc <= stub.call_return:
            # The handler's caller: entry.S's CFI describes this frame as a signal frame,
            # which GDB lets return to the app's stack below the handler's. Only the
            # label is ours.
            return None
        # From the handler's return on. GDB ends a backtrace at a normal frame whose id
        # is inner to (below) that of the normal frame newer than it: like the signal
        # frame's CFA, the id's sp is the stack pointer this frame returns to, so the
        # frames of the code it returns to lie at or above it.
        info = pending.create_unwind_info(_FrameId(registers["rsp"], stub.start))
        for name, number in registers.items():
            try:
                info.add_saved_register(name, _value(name, number))
            except (ValueError, gdb.error):
                continue  # a register this GDB's description lacks
        return info


class EntryFrameDecorator(FrameDecorator):
    """A frame as `bt` shows it: an entry stub's frame by the crossing's label, a
    frame no symbol covers as `??`, like GDB without frame filters. (FrameDecorator
    gives GDB such a frame's pc to look up, and GDB prints a failed lookup as `in  ()`.)"""

    def __init__(self, base: object, label: str | None):
        super().__init__(base)
        self.label = label

    def function(self) -> str | int:
        if self.label:
            return self.label
        function = super().function()
        if isinstance(function, int) and self.inferior_frame().name() is None:
            return "??"
        return function


class EntryFrameFilter:
    """Labels the entry-stub frames the unwinder unwound, and names unknown frames `??`."""

    def __init__(self) -> None:
        self.name = NAME
        self.priority = 100
        self.enabled = True
        gdb.frame_filters[self.name] = self

    def filter(self, frames):
        return map(self._decorate, frames)

    @staticmethod
    def _decorate(decorator: FrameDecorator) -> FrameDecorator:
        try:
            frame = decorator.inferior_frame()
            key = (u64(frame.pc()), u64(frame.read_register("rsp")))
        except (gdb.error, RuntimeError):
            return decorator
        return EntryFrameDecorator(decorator, _labels.get(key))


def register() -> None:
    register_unwinder(None, EntryUnwinder(), replace=True)
    EntryFrameFilter()
    gdb.events.cont.connect(_forget_labels)
