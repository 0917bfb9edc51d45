"""Backtraces of every kernel thread, through the entry crossing into the app, without GDB.

Pure: memory, vCPU registers and kernel symbols come through the model's
Target (osvgdb.model.target, via a `Kernel`), code knowledge from the ELF
files (osvgdb.model.symbols.ElfImage: symbols, DWARF lines, CFI), so the same
code gives the same backtrace over a live GDB target and over a QEMU dump
(DumpTarget). Nothing here writes to the target or changes a register.

    unwind_registers(kernel, images, registers)  from a register dict (a vCPU)
    unwind_switched(kernel, images, kernel_rsp)  a thread off CPU, from what
                                                 switch_context saved
    backtraces(kernel, app_image)                every thread: {tid: Backtrace}

The engine is a DWARF CFI unwinder (.eh_frame / .debug_frame rows, with the
DWARF expressions CFI uses evaluated: DW_OP_breg*, DW_OP_deref, constants,
arithmetic). entry.S's CFI marks syscall_entry and trap_common as signal
frames once they have built struct syscall_frame / struct trap_frame and says,
with DW_CFA_expression rules, where every interrupted register was saved: the
crossing from the kernel into the app (or into the kernel code an interrupt
hit) is plain CFI. That frame is the crossing frame (kind "crossing"), named
as the GDB extension names it: `<syscall futex>` (the number from the saved
frame, names from the model's syscall table), `<interrupt 32 timer>`,
`<page fault at 0x...>` (CR2 from the vCPU) or `<exception 13 general-protection>`
(kernel.vectors).

Frames. `address` is the frame's pc: the register's rip for the innermost
frame and for the frame a crossing interrupted, else the return address.  A
return address is one past the call, which may already be the next function
(a call to a noreturn function at the end of one), so symbol, line and CFI are
looked up at `lookup` = address - 1 for those frames (as GDB does; the
`offset` is still address - start of that symbol).

From an entry stub's handler return on (syscall_exit's pops, syscall_return,
the end of trap_common) the CFI ends the backtrace on purpose (GDB would call a
stop inside a signal frame "<signal handler called>"); there, as the GDB
extension's unwinder does, decode/frames.py's analysis of the stub's
instructions (their lengths decoded here, `instruction_length`) says where the
frame is, and the crossing is `<syscall write returning 18>` (the call's name
from the thread's history record, struct thread's syscall_record).

A thread off CPU starts with switch_context (switch.S) where it will resume,
its first pop: the six callee-saved registers and the return address into
schedule_locked are at thread.kernel_rsp.

Where it stops. `complete` is True when the outermost frame is one nothing
called: the CFI marks it (rip undefined: the app's `_start`, glibc's clone for
a new thread, the kernel's thread_trampoline for a thread that never ran), its
return address is 0 (an AP's first code), or it is the boot CPU's entry
(KERNEL_OUTERMOST, boot.S without CFI). Otherwise `stopped` says why: no
unwind information at a pc (musl's libc, the 256 vector stubs before
trap_common), unreadable memory, an entry stub before its frame is complete
(syscall_entry's first instructions), a loop or a stack going the wrong way,
or the depth limit (64 frames).

A signal handler's caller is libc's sa_restorer, __restore_rt (`mov $15, %rax;
syscall`: rt_sigreturn). As GDB's own amd64-linux sigtramp unwinder does, a frame
at those bytes is the crossing `<signal handler called>`, and the code the signal
interrupted comes next, its registers from the rt_sigframe's ucontext at rsp
(kernel/core/signal.c builds it; no CFI needed, so musl's trampoline works too).

One guess, marked on the frame (`guessed`): a frame interrupted at a pc no FDE
covers, inside a symbol (glibc's syscall wrappers such as clone3 end their FDE
before the `syscall` instruction), is taken for a function without a frame of
its own, as GDB's fallback takes it: the return address at rsp, but only when
that is after a call in code with CFI.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from osvgdb.decode import DecodeError, signed64
from osvgdb.decode import frames as frames_decode
from osvgdb.model import goroutines
from osvgdb.model.symbols import (
    REGISTER_NAMES,
    REGISTER_NUMBERS,
    RIP,
    RSP,
    CfiRow,
    ElfImage,
    SymbolsError,
    app_image,
    evaluate_expression,
)
from osvgdb.model.target import TargetError

MAX_DEPTH = 64
U64 = (1 << 64) - 1
RAX = 0
RBP = 6
FRAME_POINTER_REACH = 1 << 20  # a frame pointer further than this above rsp is not one
CALL_REL32 = 0xE8
SWITCH_SAVED = ("r15", "r14", "r13", "r12", "rbx", "rbp")  # switch.S: lowest address first
# Kernel code without CFI that is the bottom of a stack: boot.S's 64-bit entry, which
# calls kernel_main on the boot stack (the boot thread, tid 0, and the boot CPU's idle).
KERNEL_OUTERMOST = frozenset(["long_mode_start"])
MOV_RSI_RSP = bytes.fromhex("4889f4")  # switch_context's `movq %rsi, %rsp`
SIGRETURN_CODE = bytes.fromhex("48c7c00f0000000f05")  # __restore_rt: mov $15, %rax; syscall
SIGNAL_FRAME_LABEL = "<signal handler called>"
UC_MCONTEXT = 40  # offsetof(struct ucontext, uc_mcontext): the sigcontext
# struct sigcontext's registers, in its order (kernel/include/signal.h)
SIGCONTEXT_REGISTERS = (
    "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip", "eflags",
)  # fmt: skip

__all__ = [
    "MAX_DEPTH",
    "Backtrace",
    "Frame",
    "Images",
    "UnwindError",
    "app_image",
    "backtraces",
    "kernel_image",
    "unwind_registers",
    "unwind_switched",
    "unwind_thread",
    "go_runtime",
    "goroutine_backtrace",
]


STUB_NAMES = {name for _, name in frames_decode.ENTRY_STUBS}


class UnwindError(Exception):
    """What a backtrace needs is missing (no kernel ELF to read symbols from)."""


@dataclass(frozen=True)
class Frame:
    address: int  # the pc: rip of the innermost / interrupted frame, else the return address
    function: str | None  # the symbol (see ElfImage.symbolize); a crossing's label
    offset: int  # address - the symbol's start (0 without a symbol)
    file: str | None  # from DWARF lines at `lookup`, where the ELF has them
    line: int | None
    module: str  # "kernel" | "app"
    kind: str = "frame"  # "frame" | "crossing" (an entry stub's frame: the crossing)
    lookup: int = 0  # where symbol, line and CFI were looked up: address or address - 1
    symbol: str | None = None  # the ELF symbol even for a crossing (syscall_entry, trap_common)
    cfa: int | None = None  # the canonical frame address CFI gave it (None: not unwound past)
    guessed: bool = False  # no CFI here: its caller was taken from [rsp] (see _frameless)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def describe(self) -> str:
        where = f" at {self.file}:{self.line}" if self.file else ""
        if self.kind == "crossing":
            return f"{self.function}{where}"
        name = self.function or "??"
        offset = f"+{self.offset}" if self.function and self.offset else ""
        return f"{self.address:#018x} in {name}{offset} ({self.module}){where}"


@dataclass
class Backtrace:
    frames: list[Frame] = field(default_factory=list)
    complete: bool = False
    stopped: str | None = None  # why it ended early, None when complete
    tid: int | None = None
    source: str = ""  # "vcpu N" or "kernel_rsp" or ""

    def functions(self) -> list[str | None]:
        return [f.function for f in self.frames]

    def signature(self) -> tuple[str, ...]:
        """What a crash triage compares: module:function of each frame, crossings by
        label. Addresses are left out (they move between builds; a name does not)."""
        return tuple(f"{f.module}:{f.function or '??'}" for f in self.frames)

    def format(self) -> list[str]:
        lines = [f"#{i:<2} {frame.describe()}" for i, frame in enumerate(self.frames)]
        if self.stopped:
            lines.append(f"(backtrace stopped: {self.stopped})")
        return lines

    def as_dict(self) -> dict[str, object]:
        return {
            "tid": self.tid,
            "source": self.source,
            "complete": self.complete,
            "stopped": self.stopped,
            "frames": [f.as_dict() for f in self.frames],
        }


class Images:
    """The kernel's ELF image and the app's (None: kernel frames only)."""

    def __init__(self, kernel: ElfImage, app: ElfImage | None = None):
        self.kernel = kernel
        self.app = app

    def find(self, address: int) -> tuple[str, ElfImage | None]:
        if self.kernel.contains(address):
            return "kernel", self.kernel
        if self.app is not None and self.app.contains(address):
            return "app", self.app
        return "app", None


class _Memory:
    """Reads through the target, in aligned chunks kept for one batch of backtraces
    (an unwinder reads many words from the same stack lines)."""

    CHUNK = 256

    def __init__(self, kernel):
        self.kernel = kernel
        self.chunks: dict[int, bytes | None] = {}

    def read(self, address: int, length: int) -> bytes:
        if address < 0 or address + length > 1 << 64:
            raise TargetError(f"cannot read {length} bytes at {address:#x}")
        base = address - address % self.CHUNK
        if address + length <= base + self.CHUNK:
            if base not in self.chunks:
                try:
                    self.chunks[base] = self.kernel.read(base, self.CHUNK)
                except (TargetError, OverflowError, ValueError):
                    self.chunks[base] = None
            chunk = self.chunks[base]
            if chunk is not None:
                return chunk[address - base : address - base + length]
        try:
            return self.kernel.read(address, length)
        except (OverflowError, ValueError):
            raise TargetError(f"cannot read {length} bytes at {address:#x}") from None

    def u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")


# --- instruction lengths, for where an entry stub's frame is ------------------------------------
#
# decode/frames.py's `analyse` needs where each instruction of a stub starts (GDB's
# disassembler says so inside GDB). Here a small x86-64 length decoder does, for the
# instruction forms the entry stubs use (and the common others); anything else raises
# and leaves the exit paths to the CFI (which ends the backtrace there).

_MODRM = frozenset(
    [*range(0x00, 0x04), *range(0x08, 0x0C), *range(0x10, 0x14), *range(0x18, 0x1C),
     *range(0x20, 0x24), *range(0x28, 0x2C), *range(0x30, 0x34), *range(0x38, 0x3C),
     0x63, *range(0x84, 0x8C), 0x8D, 0x8F, *range(0xD0, 0xD4), 0xFE, 0xFF]
)  # fmt: skip
_IMM8 = frozenset([0x04, 0x0C, 0x14, 0x1C, 0x24, 0x2C, 0x34, 0x3C, 0x6A, *range(0x70, 0x80),
                   0xA8, *range(0xB0, 0xB8), 0xEB, 0xCD, *range(0xE0, 0xE4)])  # fmt: skip
_IMMZ = frozenset([0x05, 0x0D, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x68, 0xA9, 0xE8, 0xE9])
_MODRM_IMM8 = frozenset([0x80, 0x82, 0x83, 0xC0, 0xC1, 0xC6, 0x6B])
_MODRM_IMMZ = frozenset([0x81, 0xC7, 0x69])
_PLAIN = frozenset([*range(0x50, 0x60), *range(0x90, 0x9A), 0x9C, 0x9D, 0xC3, 0xC9, 0xCC,
                    0xCF, 0xF4, 0xFA, 0xFB, 0xFC, 0xFD])  # fmt: skip
_0F_PLAIN = frozenset([0x05, 0x0B, 0x30, 0x31, 0x32, 0xA2])
_0F_MODRM = frozenset([0x01, 0x1F, 0x20, 0x22, 0xAE, 0xAF, 0xB6, 0xB7, 0xBE, 0xBF,
                       *range(0x40, 0x50), *range(0x90, 0xA0)])  # fmt: skip


def _modrm_length(code: bytes, i: int) -> int:
    modrm = code[i]
    mod, rm = modrm >> 6, modrm & 7
    length = 1
    if mod == 3:
        return length
    if rm == 4:
        sib = code[i + 1]
        length += 1
        if mod == 0 and sib & 7 == 5:
            length += 4
    elif mod == 0 and rm == 5:
        length += 4
    return length + (1 if mod == 1 else 4 if mod == 2 else 0)


def instruction_length(code: bytes, i: int = 0) -> int:
    """The length of the x86-64 instruction at code[i]; ValueError for a form not known."""
    start = i
    operand16 = False
    while code[i] in (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3):
        operand16 |= code[i] == 0x66
        i += 1
    rex_w = False
    if 0x40 <= code[i] <= 0x4F:
        rex_w = bool(code[i] & 8)
        i += 1
    op = code[i]
    i += 1
    immz = 2 if operand16 else 4
    if op == 0x0F:
        op2 = code[i]
        i += 1
        if op2 in _0F_PLAIN:
            return i - start
        if 0x80 <= op2 <= 0x8F:
            return i + 4 - start
        if op2 in _0F_MODRM:
            return i + _modrm_length(code, i) - start
        raise ValueError(f"unknown instruction 0f {op2:02x}")
    if op in _PLAIN:
        return i - start
    if op in _IMM8:
        return i + 1 - start
    if op in _IMMZ:
        return i + (4 if op in (0xE8, 0xE9) else immz) - start
    if 0xB8 <= op <= 0xBF:
        return i + (8 if rex_w else immz) - start
    if op in _MODRM:
        return i + _modrm_length(code, i) - start
    if op in _MODRM_IMM8:
        return i + _modrm_length(code, i) + 1 - start
    if op in _MODRM_IMMZ:
        return i + _modrm_length(code, i) + immz - start
    if op in (0xF6, 0xF7):
        extension = (code[i] >> 3) & 7
        immediate = (1 if op == 0xF6 else immz) if extension in (0, 1) else 0
        return i + _modrm_length(code, i) + immediate - start
    raise ValueError(f"unknown instruction {op:02x}")


def _instructions(start: int, code: bytes) -> list[tuple[int, bytes]]:
    result = []
    i = 0
    while i < len(code):
        length = instruction_length(code, i)
        result.append((start + i, code[i : i + length]))
        i += length
    return result


def _after_call(before: bytes) -> bool:
    """Whether the 5 bytes before a return address end with a call: rel32 (e8), or an
    indirect call (ff /2) through a register or memory of 2 or 3 bytes."""
    if before[0] == CALL_REL32:
        return True
    return any(before[i] == 0xFF and (before[i + 1] >> 3) & 7 == 2 for i in (2, 3))


class _Stop(Exception):
    """Unwinding cannot go on: the reason, for Backtrace.stopped."""


def kernel_image(kernel) -> ElfImage:
    """The kernel ELF the target was opened with: a DumpTarget's ElfKernel, GDB's
    kernel objfile, or an attribute `kernel_path` / `elf_path` on the target."""
    target = kernel.target
    for path in (
        getattr(getattr(target, "elf", None), "path", None),
        getattr(getattr(target, "objfile", None), "filename", None),
        getattr(target, "kernel_path", None),
        getattr(target, "elf_path", None),
    ):
        if path:
            return ElfImage(path, 0, name="kernel")
    raise UnwindError("the target does not say which kernel ELF it is: pass kernel_image")


def _registers_by_number(registers: dict[str, int]) -> dict[int, int | None]:
    result: dict[int, int | None] = {}
    for name, value in registers.items():
        number = REGISTER_NUMBERS.get(name)
        if number is not None and value is not None:
            result[number] = int(value) & U64
    return result


class _Unwinder:
    def __init__(
        self,
        kernel,
        images: Images,
        memory: _Memory | None = None,
        thread_address: int | None = None,
        stack_switch: Callable[[str], tuple[int, dict[int, int]] | None] | None = None,
    ):
        self.kernel = kernel
        self.images = images
        self.memory = memory or _Memory(kernel)
        self.thread_address = thread_address  # whose backtrace: names a returning syscall
        # A Go thread on its g0 stack: where the goroutine it works for goes on
        # (osvgdb.model.goroutines.GoRuntime.stack_switch), asked once per backtrace.
        self.stack_switch = stack_switch

    def stubs(self) -> list[frames_decode.Stub]:
        """Where the frame is at each pc of syscall_entry and trap_common (decode/frames.py's
        analysis of their instructions), kept with the kernel's ELF file."""
        file = self.images.kernel.file
        cached = getattr(file, "_entry_stubs", None)
        if cached is None:
            cached = []
            for kind, function in frames_decode.ENTRY_STUBS:
                extent = self.kernel.function_range(function)
                if extent is None:
                    continue
                start, end = extent
                code = self.images.kernel.read(start, end - start)
                try:
                    if code is None:
                        code = self.kernel.read(start, end - start)
                    cached.append(
                        frames_decode.analyse(kind, start, end, _instructions(start, code))
                    )
                except (TargetError, ValueError, IndexError):
                    continue
            file._entry_stubs = cached
        return cached

    def _returning_call(self) -> str:
        """The syscall the thread returns from (rax holds its result now), from the history
        record its struct thread points at, as the GDB extension names it."""
        kernel, thread = self.kernel, self.thread_address
        if not thread:
            return "?"
        try:
            record = kernel.thread_call(thread)
            if record is not None:
                return kernel.syscalls.name(record.nr)
            if not kernel.thread_syscall_seq(thread):
                return "clone-child"  # a new thread's first return: the call was its parent's
        except (TargetError, DecodeError):
            pass
        return "?"

    def _exit_path(self, pc: int, regs: dict[int, int | None]) -> tuple[str, dict[str, int]] | None:
        """From an entry stub's handler return on (its exit path, where its CFI ends the
        backtrace): the crossing's label and the interrupted registers, from the frame
        the stub built, where rsp and the stub's instructions say it is."""
        stub = next((s for s in self.stubs() if s.contains(pc)), None)
        if stub is None or pc not in stub.offsets:
            return None
        offset = stub.offsets[pc]
        if offset != frames_decode.RETURNED and pc <= stub.call_return:
            return None  # up to the handler's return the CFI says it all
        rsp = self._value(regs, RSP)
        if offset == frames_decode.RETURNED:  # syscall_return: the app's registers already
            registers = {
                REGISTER_NAMES[n]: v
                for n, v in regs.items()
                if v is not None and n in REGISTER_NAMES
            }
            registers["rip"] = self._value(regs, 2)  # rcx
            result = signed64(self._value(regs, RAX))
            return f"<syscall {self._returning_call()} returning {result}>", registers
        address = (rsp - offset) & U64
        kernel = self.kernel
        try:
            if stub.kind == "syscall":
                layout = kernel.syscall_frame_layout
                frame = frames_decode.decode_syscall_frame(
                    self.memory.read(address, layout.size), layout, address
                )
                return (
                    f"<syscall {self._returning_call()} returning {frame.ret}>",
                    frame.app_registers(),
                )
            layout = kernel.trap_frame_layout
            trap = frames_decode.decode_trap_frame(
                self.memory.read(address, layout.size), layout, address
            )
        except DecodeError as error:
            raise _Stop(f"the entry frame at {address:#x} cannot be decoded: {error}") from None
        return kernel.vectors.label(trap.vector, None), trap.interrupted_registers()

    # --- one step --------------------------------------------------------------------------

    def _value(self, regs: dict[int, int | None], number: int) -> int:
        value = regs.get(number)
        if value is None:
            name = REGISTER_NAMES.get(number, f"r{number}")
            raise _Stop(f"the CFI needs {name}, which is not known in this frame")
        return value

    def _cfa(self, row: CfiRow, regs: dict[int, int | None]) -> int:
        kind, argument = row.cfa
        if kind == "register":
            register, offset = argument  # type: ignore[misc]
            return (self._value(regs, register) + offset) & U64
        return evaluate_expression(
            argument,
            lambda n: self._value(regs, n),
            self.memory.read,  # type: ignore[arg-type]
        )

    def _caller(self, row: CfiRow, regs: dict[int, int | None], cfa: int) -> dict[int, int | None]:
        caller = dict(regs)
        caller[RSP] = cfa
        for register, (kind, argument) in row.rules.items():
            if kind == "undefined":
                caller[register] = None
            elif kind == "same":
                caller[register] = regs.get(register)
            elif kind == "offset":
                caller[register] = self.memory.u64((cfa + argument) & U64)  # type: ignore[operator]
            elif kind == "val_offset":
                caller[register] = (cfa + argument) & U64  # type: ignore[operator]
            elif kind == "register":
                caller[register] = regs.get(argument)  # type: ignore[arg-type]
            else:
                value = evaluate_expression(
                    argument,  # type: ignore[arg-type]
                    lambda n: self._value(regs, n),
                    self.memory.read,
                    push=[cfa],
                )
                caller[register] = value if kind == "val_expression" else self.memory.u64(value)
        caller[RIP] = caller.get(row.return_register)
        return caller

    def _frameless(self, regs: dict[int, int | None]) -> dict[int, int | None] | None:
        """A frame no FDE covers, at the exact pc where it was interrupted: glibc's
        syscall wrappers end their FDE before the `syscall` instruction (clone3 does, so
        that a new thread's unwinding stops), so a thread in such a syscall is at a pc
        without CFI. As GDB's fallback does, take it for a function without a frame of
        its own: the return address at rsp. Only when that lands after a call in code
        that has CFI; the frame is marked `guessed`."""
        rsp = regs.get(RSP)
        if rsp is None:
            return None
        try:
            ret = self.memory.u64(rsp)
        except TargetError:
            return None
        _, image = self.images.find((ret - 1) & U64)
        if image is None or image.cfi((ret - 1) & U64) is None:
            return None
        caller = dict(regs)
        caller[RIP], caller[RSP] = ret, (rsp + 8) & U64
        return caller

    def _frame_pointer(self, regs: dict[int, int | None]) -> dict[int, int | None] | None:
        """A frame without CFI whose code keeps frame pointers (Go's always does): the
        caller's rbp and return address are at rbp, as GDB's amd64 fallback reads them.
        Only when rbp points into the stack above rsp and the return address lands after
        a call in code that has a symbol; the frame is marked `guessed`."""
        rsp, rbp = regs.get(RSP), regs.get(RBP)
        if rsp is None or not rbp or not rsp <= rbp < rsp + FRAME_POINTER_REACH:
            return None
        try:
            saved_rbp, ret = self.memory.u64(rbp), self.memory.u64(rbp + 8)
            before = self.memory.read((ret - 5) & U64, 5)
        except TargetError:
            return None
        _, image = self.images.find((ret - 1) & U64)
        if image is None or image.symbolize((ret - 1) & U64)[0] is None:
            return None
        if not _after_call(before):
            return None  # not after a call: rbp is not a frame pointer here
        caller = dict(regs)
        caller[RIP], caller[RSP], caller[RBP] = ret, (rbp + 16) & U64, saved_rbp
        return caller

    # --- crossings -------------------------------------------------------------------------

    def _signal_frame(self, pc: int, regs: dict[int, int | None]) -> dict[int, int | None] | None:
        """At libc's sigreturn trampoline: the registers the signal interrupted, from the
        ucontext at rsp; None anywhere else."""
        rsp = regs.get(RSP)
        if rsp is None:
            return None
        try:
            if self.memory.read(pc, len(SIGRETURN_CODE)) != SIGRETURN_CODE:
                return None
            saved = self.memory.read(rsp + UC_MCONTEXT, 8 * len(SIGCONTEXT_REGISTERS))
        except TargetError:
            return None
        values = struct.unpack(f"<{len(SIGCONTEXT_REGISTERS)}Q", saved)
        return _registers_by_number(dict(zip(SIGCONTEXT_REGISTERS, values, strict=True)))

    def _crossing_label(self, pc: int, frame_address: int, cr2: int | None) -> str | None:
        """The label of an entry stub's frame whose struct syscall_frame / trap_frame is
        at frame_address (the stub's rsp at its call of the handler)."""
        kernel = self.kernel
        stubs = frames_decode.ENTRY_STUBS
        syscalls = [kernel.function_range(name) for kind, name in stubs if kind == "syscall"]
        try:
            if any(extent and extent[0] <= pc < extent[1] for extent in syscalls):
                layout = kernel.syscall_frame_layout
                frame = frames_decode.decode_syscall_frame(
                    self.memory.read(frame_address, layout.size), layout, frame_address
                )
                return f"<syscall {kernel.syscalls.name(frame.nr)}>"
            layout = kernel.trap_frame_layout
            trap = frames_decode.decode_trap_frame(
                self.memory.read(frame_address, layout.size), layout, frame_address
            )
            page_fault = trap.vector == frames_decode.PAGE_FAULT
            return kernel.vectors.label(trap.vector, cr2 if page_fault else None)
        except (TargetError, DecodeError):
            return None

    def _in_entry_stub(self, pc: int) -> str | None:
        for _, name in frames_decode.ENTRY_STUBS:
            extent = self.kernel.function_range(name)
            if extent and extent[0] <= pc < extent[1]:
                return name
        if self.kernel.has("trap_stubs"):
            start = self.kernel.address("trap_stubs")
            if start <= pc < start + 256 * 16:
                return "trap_stubs"
        return None

    # --- the walk ---------------------------------------------------------------------------

    def run(
        self,
        regs: dict[int, int | None],
        *,
        exact: bool = True,
        frames: list[Frame] | None = None,
        cr2: int | None = None,
        max_depth: int = MAX_DEPTH,
    ) -> Backtrace:
        trace = Backtrace(frames=list(frames or []))
        seen: set[tuple[int, int]] = set()
        previous_cfa: int | None = None
        previous_signal = True
        while True:
            pc = regs.get(RIP)
            if pc is None:
                trace.stopped = "no return address"
                return trace
            if len(trace.frames) >= max_depth:
                trace.stopped = f"depth limit {max_depth}"
                return trace
            lookup = pc if exact else (pc - 1) & U64
            module, image = self.images.find(lookup)
            name, start_offset = image.symbolize(lookup) if image else (None, 0)
            offset = start_offset + (pc - lookup) if name else 0
            source = image.source(lookup) if image else None
            try:
                row = image.cfi(lookup) if image else None
            except (SymbolsError, IndexError, struct.error) as error:
                row = None
                trace.stopped = f"bad unwind information at {pc:#x}: {error}"
            interrupted = self._signal_frame(pc, regs) if module == "app" else None
            if interrupted is not None:
                trace.frames.append(
                    Frame(pc, SIGNAL_FRAME_LABEL, 0, None, None, module, "crossing", lookup,
                          name, cfa=regs.get(RSP))
                )  # fmt: skip
                regs = interrupted
                exact, previous_signal = True, True  # the interrupted pc is exact
                continue
            stub = self._in_entry_stub(pc) if module == "kernel" else None
            if stub in STUB_NAMES:
                try:
                    exit_path = self._exit_path(pc, regs)
                except (_Stop, TargetError) as error:
                    exit_path = None
                    exit_error = f"in {stub}'s exit path: {error}"
                else:
                    exit_error = None
                if exit_error is not None:
                    trace.frames.append(
                        Frame(pc, name, offset, source[0] if source else None,
                              source[1] if source else None, module, "frame", lookup, name)
                    )  # fmt: skip
                    trace.stopped = exit_error
                    return trace
                if exit_path is not None:
                    label, registers = exit_path
                    trace.frames.append(
                        Frame(
                            address=pc,
                            function=label,
                            offset=offset,
                            file=source[0] if source else None,
                            line=source[1] if source else None,
                            module=module,
                            kind="crossing",
                            lookup=lookup,
                            symbol=name,
                            cfa=registers.get("rsp"),
                        )
                    )
                    regs = _registers_by_number(registers)
                    exact, previous_signal = True, True
                    continue
            kind, function = "frame", name
            cfa = None
            caller = None
            failure = None
            if row is not None:
                try:
                    cfa = self._cfa(row, regs)
                    caller = self._caller(row, regs, cfa)
                except _Stop as stop:
                    failure = str(stop)
                except TargetError as error:
                    failure = f"unreadable memory unwinding {name or '??'} at {pc:#x}: {error}"
                except (SymbolsError, IndexError, struct.error) as error:
                    failure = f"bad unwind information at {pc:#x}: {error}"
            guessed = False
            if (
                row is None
                and image is not None
                and name is not None
                and exact
                and not trace.stopped
            ):
                caller = self._frameless(regs)
                if caller is not None:
                    guessed, cfa = True, caller[RSP]
            if row is None and caller is None and image is not None and not trace.stopped:
                caller = self._frame_pointer(regs)
                if caller is not None:
                    guessed, cfa = True, caller[RSP]
            switched = None
            if module == "app" and name in goroutines.STACK_SWITCHES and self.stack_switch:
                switched, self.stack_switch = self.stack_switch(name), None
            if (
                stub
                and row is not None
                and row.signal
                and caller is not None
                and caller.get(RIP) is not None
            ):
                label = self._crossing_label(pc, self._value(regs, RSP), cr2)
                kind, function = "crossing", label or f"<{stub}>"
            trace.frames.append(
                Frame(
                    address=pc,
                    function=function,
                    offset=offset,
                    file=source[0] if source else None,
                    line=source[1] if source else None,
                    module=module,
                    kind=kind,
                    lookup=lookup,
                    symbol=name,
                    cfa=cfa,
                    guessed=guessed,
                )
            )
            if image is None:
                trace.stopped = f"pc {pc:#x} is in neither the kernel nor the app"
                return trace
            if switched is not None:
                goid, regs = switched
                trace.frames.append(
                    Frame(pc, f"<goroutine {goid}'s stack>", 0, None, None, module, "crossing",
                          lookup, name, cfa=regs[RSP])
                )  # fmt: skip
                exact, previous_signal, previous_cfa = False, True, None  # sched.pc: a return
                continue
            if guessed:
                assert caller is not None
                exact, previous_signal, previous_cfa = False, False, cfa
                regs = caller
                continue
            if row is None:
                if module == "kernel" and name in KERNEL_OUTERMOST and not trace.stopped:
                    trace.complete = True  # the boot CPU's first code: nothing called it
                else:
                    trace.stopped = (
                        trace.stopped or f"no unwind information at {pc:#x} ({name or '??'})"
                    )
                return trace
            if failure is not None:
                trace.stopped = failure
                return trace
            assert caller is not None and cfa is not None
            if caller.get(RIP) is None or caller.get(RIP) == 0:
                if stub and caller.get(RIP) is None:
                    trace.stopped = (
                        f"in {stub} outside its complete frame: the interrupted registers "
                        f"are not where its CFI could say"
                    )
                else:
                    trace.complete = True  # the CFI marks the outermost frame
                return trace
            key = (pc, cfa)
            if key in seen:
                trace.stopped = f"loop: the frame at {pc:#x} with CFA {cfa:#x} again"
                return trace
            seen.add(key)
            if (
                previous_cfa is not None
                and not previous_signal
                and not row.signal
                and module == "kernel"
                and cfa <= previous_cfa
            ):
                trace.stopped = f"the stack goes the wrong way at {pc:#x} (CFA {cfa:#x})"
                return trace
            previous_cfa, previous_signal = cfa, row.signal
            exact = row.signal  # the frame a signal frame interrupted is at its exact pc
            regs = caller

    def switched(self, kernel_rsp: int, max_depth: int = MAX_DEPTH) -> Backtrace:
        """A thread off CPU: switch_context pushed rbp, rbx, r12..r15 on its stack under
        the return address into its caller and stored rsp in thread.kernel_rsp (switch.S).
        Frame 0 is switch_context where the thread resumes (its first pop)."""
        saved = self.memory.read(kernel_rsp, 8 * (len(SWITCH_SAVED) + 1))
        values = struct.unpack("<7Q", saved)
        regs = _registers_by_number(dict(zip(SWITCH_SAVED, values[:6], strict=True)))
        regs[RIP] = values[6]
        regs[RSP] = (kernel_rsp + 8 * 7) & U64
        kernel = self.kernel
        extent = kernel.function_range("switch_context")
        start = (
            extent[0]
            if extent
            else (kernel.address("switch_context") if kernel.has("switch_context") else 0)
        )
        resume = start
        if extent:
            code = self.images.kernel.read(extent[0], extent[1] - extent[0]) or b""
            found = code.find(MOV_RSI_RSP)
            if found >= 0:
                resume = extent[0] + found + len(MOV_RSI_RSP)
        image = self.images.kernel
        name, offset = image.symbolize(resume) if start else (None, 0)
        source = image.source(resume) if start else None
        first = Frame(
            address=resume,
            function=name,
            offset=offset,
            file=source[0] if source else None,
            line=source[1] if source else None,
            module="kernel",
            lookup=resume,
            symbol=name,
            cfa=regs[RSP],
        )
        # A thread that never ran "returns" to thread_trampoline's first instruction
        # (thread_set_start_stack put its address there, no call did): exact.
        trampoline = (
            kernel.address("thread_trampoline") if kernel.has("thread_trampoline") else None
        )
        return self.run(regs, exact=values[6] == trampoline, frames=[first], max_depth=max_depth)


# --- the public functions ---------------------------------------------------------------------


def unwind_registers(
    kernel,
    images: Images,
    registers: dict[str, int],
    *,
    cr2: int | None = None,
    max_depth: int = MAX_DEPTH,
    memory: _Memory | None = None,
    thread_address: int | None = None,
    stack_switch: Callable[[str], tuple[int, dict[int, int]] | None] | None = None,
) -> Backtrace:
    """The backtrace from a register set (GDB's names: rip, rsp, rbp, rbx, r12..r15,
    rax.., eflags; unknown registers may be left out): a vCPU's, or any other state
    where execution stands at rip."""
    unwinder = _Unwinder(kernel, images, memory, thread_address, stack_switch)
    if cr2 is None:
        cr2 = registers.get("cr2")
    return unwinder.run(_registers_by_number(registers), exact=True, cr2=cr2, max_depth=max_depth)


def unwind_switched(
    kernel,
    images: Images,
    kernel_rsp: int,
    *,
    max_depth: int = MAX_DEPTH,
    memory: _Memory | None = None,
    stack_switch: Callable[[str], tuple[int, dict[int, int]] | None] | None = None,
) -> Backtrace:
    """The backtrace of a thread that is not on a CPU, from its thread.kernel_rsp."""
    unwinder = _Unwinder(kernel, images, memory, stack_switch=stack_switch)
    try:
        return unwinder.switched(kernel_rsp, max_depth)
    except TargetError as error:
        return Backtrace(stopped=f"unreadable saved context at {kernel_rsp:#x}: {error}")


def thread_kernel_rsp(kernel, thread_address: int) -> int:
    codec = kernel.thread_layout.codec(("kernel_rsp",))
    return int(codec.unpack(kernel.read(thread_address, codec.size))["kernel_rsp"] or 0)


def unwind_thread(
    kernel,
    images: Images,
    thread,
    vcpu=None,
    *,
    memory: _Memory | None = None,
    go: goroutines.GoRuntime | None = None,
) -> Backtrace:
    """One thread (a ThreadInfo): from its vCPU's registers when `vcpu` (a model Vcpu)
    runs it, else from its saved kernel_rsp. `go`: the app's Go runtime, whose
    goroutine a thread on its g0 stack works for (see goroutines.stack_switch)."""
    switch = (lambda name: go.stack_switch(thread.app_tcb, name)) if go is not None else None
    if vcpu is not None:
        trace = unwind_registers(
            kernel, images, vcpu.registers, memory=memory, thread_address=thread.address,
            stack_switch=switch,
        )  # fmt: skip
        trace.source = f"vcpu {vcpu.num}"
    else:
        try:
            rsp = thread_kernel_rsp(kernel, thread.address)
        except (TargetError, DecodeError) as error:
            return Backtrace(tid=thread.tid, stopped=f"cannot read the thread: {error}")
        if not rsp:
            trace = Backtrace(stopped="no saved context (kernel_rsp is 0)")
        else:
            trace = unwind_switched(kernel, images, rsp, memory=memory, stack_switch=switch)
        trace.source = "kernel_rsp"
    trace.tid = thread.tid
    return trace


def backtraces(
    kernel,
    app: ElfImage | str | os.PathLike | None,
    *,
    kernel_elf: ElfImage | None = None,
    vcpu_registers: dict[int, dict[str, int]] | None = None,
    threads: list | None = None,
    cpus: list | None = None,
) -> dict[int, Backtrace]:
    """Every kernel thread's backtrace, by tid: a thread some vCPU runs (the model's
    Kernel.cpus(): cpus[i].current) from that vCPU's registers, every other one
    from its kernel_rsp. `app`: the app's ElfImage, or its path (opened at
    process.load_base when it is a static-pie). `vcpu_registers` replaces the
    target's registers of a vCPU (by GDB's thread number), for a target that
    gives fewer than the unwinder needs. `threads` and `cpus`: the model's
    Kernel.threads() and Kernel.cpus() when the caller has read them already."""
    if kernel_elf is None:
        kernel_elf = kernel_image(kernel)
    if app is not None and not isinstance(app, ElfImage):
        app = app_image(kernel, app)
    images = Images(kernel_elf, app)
    memory = _Memory(kernel)
    if threads is None:
        threads = kernel.threads()
    vcpus = {v.num: v for v in kernel.target.vcpus()}
    if vcpu_registers:
        from osvgdb.model.target import Vcpu

        for num, registers in vcpu_registers.items():
            vcpus[num] = Vcpu(num, dict(registers))
    running = {}
    for cpu in cpus if cpus is not None else kernel.cpus(threads):
        if cpu.current and cpu.vcpu in vcpus:
            running[cpu.current] = vcpus[cpu.vcpu]
    go = go_runtime(kernel, app)
    result = {}
    for thread in threads:
        if thread.tid < 0:
            continue
        result[thread.tid] = unwind_thread(
            kernel, images, thread, running.get(thread.address), memory=memory, go=go
        )
    return result


def go_runtime(kernel, app: ElfImage | None) -> goroutines.GoRuntime | None:
    """The app's Go runtime when it is a Go program whose tables can be read."""
    if not goroutines.is_go(app):
        return None
    assert app is not None
    try:
        return goroutines.GoRuntime(kernel, app)
    except (goroutines.GoError, DecodeError, SymbolsError, OSError):
        return None


def goroutine_backtrace(
    kernel, images: Images, goroutine: goroutines.Goroutine, *, memory: _Memory | None = None,
    max_depth: int = MAX_DEPTH,
) -> Backtrace:
    """A goroutine that is not running, from where it resumes (g.sched: a return
    address into runtime.gopark's caller chain, or where it was preempted)."""
    unwinder = _Unwinder(kernel, images, memory)
    regs: dict[int, int | None] = {RIP: goroutine.pc, RSP: goroutine.sp, RBP: goroutine.bp}
    # A goroutine that never ran resumes at its function's first instruction (newproc
    # put goexit's address under it as the return address): that pc is exact.
    _, image = images.find(goroutine.pc)
    exact = image is not None and image.symbolize(goroutine.pc) == (goroutine.start, 0)
    trace = unwinder.run(regs, exact=exact, max_depth=max_depth)
    trace.source = f"goroutine {goroutine.goid}"
    return trace
