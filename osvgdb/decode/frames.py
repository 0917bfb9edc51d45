"""The entry paths' frames, interrupt vectors, and the FS-base rules at each crossing.

kernel/include/trap.h defines what the entry stubs save (lowest address first):

    struct syscall_frame  fs_base, kernel_tcb_counter, r15..rbx, r9, r8, r10, rdx,
                          rsi, rdi, rax (number in, result out), rflags, rip, rsp
    struct trap_frame     fs_base, kernel_tcb_counter, r15..rax, vector, error_code,
                          then what the CPU pushed: rip, cs, rflags, rsp, ss

fs_base and kernel_tcb_counter are the values the entry found, before its switch.
Everything here is pure: bytes + Layout in, plain records out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from osvgdb.decode import DecodeError, signed64
from osvgdb.decode.layout import Layout

U64 = (1 << 64) - 1

# The order the syscall ABI passes arguments in.
SYSCALL_ARG_REGISTERS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
GENERAL_REGISTERS = (
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r12",
    "r13",
    "r14",
    "r15",
)
SYSCALL_FRAME_FIELDS = (
    "fs_base",
    "kernel_tcb_counter",
    "r15",
    "r14",
    "r13",
    "r12",
    "rbp",
    "rbx",
    "r9",
    "r8",
    "r10",
    "rdx",
    "rsi",
    "rdi",
    "rax",
    "rflags",
    "rip",
    "rsp",
)
TRAP_FRAME_FIELDS = (
    "fs_base",
    "kernel_tcb_counter",
    *GENERAL_REGISTERS[::-1],
    "vector",
    "error_code",
    "rip",
    "cs",
    "rflags",
    "rsp",
    "ss",
)

# Exceptions, the architecture's vectors 0..31: short names (Intel's mnemonics without
# '#') and long names (as the kernel's trap.c prints them, hyphenated). The kernel's own
# interrupts come from its DWARF: `interrupt_names`.
EXCEPTIONS = {
    0: ("de", "divide-error"),
    1: ("db", "debug"),
    2: ("nmi", "nmi"),
    3: ("bp", "breakpoint"),
    4: ("of", "overflow"),
    5: ("br", "bound-range"),
    6: ("ud", "invalid-opcode"),
    7: ("nm", "device-not-available"),
    8: ("df", "double-fault"),
    9: ("cso", "coprocessor-overrun"),
    10: ("ts", "invalid-tss"),
    11: ("np", "segment-not-present"),
    12: ("ss", "stack-fault"),
    13: ("gp", "general-protection"),
    14: ("pf", "page-fault"),
    16: ("mf", "x87-error"),
    17: ("ac", "alignment-check"),
    18: ("mc", "machine-check"),
    19: ("xm", "simd-error"),
    20: ("ve", "virtualization"),
    21: ("cp", "control-protection"),
}
PAGE_FAULT = 14
FIRST_INTERRUPT = 32
# Enumerator names that abbreviate what the interrupt is known by.
INTERRUPT_LONG_NAMES = {"tlb": "tlb-shootdown"}


@dataclass(frozen=True)
class EntryFrame:
    """What entry.S saved at `address`: registers, and the FS base and counter the entry found."""

    address: int
    registers: dict[str, int]
    fs_base: int
    counter: int

    @property
    def rip(self) -> int:
        return self.registers["rip"]

    @property
    def rsp(self) -> int:
        return self.registers["rsp"]


@dataclass(frozen=True)
class SyscallFrame(EntryFrame):
    """A struct syscall_frame: the app's registers at its syscall."""

    @property
    def nr(self) -> int:
        """The syscall number; after the handler ran (syscall_exit), its result."""
        return self.registers["rax"]

    @property
    def ret(self) -> int:
        """rax as a signed result (meaningful at syscall_exit)."""
        return signed64(self.registers["rax"])

    @property
    def args(self) -> tuple[int, ...]:
        return tuple(self.registers[r] for r in SYSCALL_ARG_REGISTERS)

    def app_registers(self) -> dict[str, int]:
        """The app's registers as Linux's pt_regs shows them: rcx and r11 hold rip and
        rflags (the syscall instruction put them there)."""
        regs = dict(self.registers)
        regs["rcx"], regs["r11"] = regs["rip"], regs["rflags"]
        regs["eflags"] = regs.pop("rflags")
        regs["fs_base"] = self.fs_base
        return regs


@dataclass(frozen=True)
class TrapFrame(EntryFrame):
    """A struct trap_frame: the interrupted registers and the CPU's frame."""

    vector: int
    error_code: int

    def interrupted_registers(self) -> dict[str, int]:
        regs = {k: v for k, v in self.registers.items() if k not in ("cs", "ss")}
        regs["eflags"] = regs.pop("rflags")
        regs["fs_base"] = self.fs_base
        return regs


def _unpack(buf: bytes, layout: Layout, names: tuple[str, ...]) -> dict[str, int]:
    values = layout.codec(names).unpack(buf)
    missing = [n for n in names if values[n] is None]
    if missing:
        raise DecodeError(f"struct {layout.name} lacks {', '.join(missing)}")
    return {name: int(values[name]) & U64 for name in names}  # type: ignore[arg-type]


def decode_syscall_frame(buf: bytes, layout: Layout, address: int) -> SyscallFrame:
    values = _unpack(buf, layout, SYSCALL_FRAME_FIELDS)
    fs_base, counter = values.pop("fs_base"), signed64(values.pop("kernel_tcb_counter"))
    return SyscallFrame(address, values, fs_base, counter)


def decode_trap_frame(buf: bytes, layout: Layout, address: int) -> TrapFrame:
    values = _unpack(buf, layout, TRAP_FRAME_FIELDS)
    fs_base, counter = values.pop("fs_base"), signed64(values.pop("kernel_tcb_counter"))
    vector, error_code = values.pop("vector"), values.pop("error_code")
    return TrapFrame(address, values, fs_base, counter, vector, error_code)


# --- vectors -----------------------------------------------------------------------------


def interrupt_names(enumerators: Iterable[tuple[str, int]]) -> dict[int, tuple[str, str]]:
    """Short and long names by vector, from the (name, value) pairs of the kernel's
    enum interrupt_vector: TIMER_VECTOR -> timer, IPI_RESCHEDULE_VECTOR -> reschedule,
    IPI_TLB_VECTOR -> tlb and tlb-shootdown. Values outside 32..255 are no interrupt."""
    names = {}
    for enumerator, vector in enumerators:
        if not FIRST_INTERRUPT <= vector <= 255:
            continue
        short = enumerator.lower().removesuffix("_vector").removeprefix("ipi_").replace("_", "-")
        names[vector] = (short, INTERRUPT_LONG_NAMES.get(short, short))
    return names


@dataclass(frozen=True)
class Vectors:
    """The names of the vectors: the exceptions, and a kernel's interrupts (short and
    long names by vector, as `interrupt_names` gives them)."""

    interrupts: dict[int, tuple[str, str]]

    def name(self, vector: int) -> str:
        """`page-fault`, `timer`, `interrupt 0x41`, ..."""
        names = EXCEPTIONS.get(vector) or self.interrupts.get(vector)
        if names:
            return names[1]
        return f"exception {vector}" if vector < FIRST_INTERRUPT else f"interrupt {vector:#x}"

    def _table(self, exceptions: bool) -> dict[int, tuple[str, str]]:
        return EXCEPTIONS if exceptions else self.interrupts

    def parse(self, text: str, *, exceptions: bool) -> int:
        """A vector from a number (0x.. too) or a name: exception names when
        `exceptions`, else interrupt names. DecodeError when neither."""
        text = text.strip().lower().replace("_", "-")
        try:
            vector = int(text, 0)
        except ValueError:
            vector = None
        if vector is None:
            table = {n: v for v, names in self._table(exceptions).items() for n in names}
            if text not in table:
                kind = "exception" if exceptions else "interrupt"
                raise DecodeError(f"unknown {kind} {text!r} (known: {', '.join(sorted(table))})")
            return table[text]
        if not 0 <= vector <= 255:
            raise DecodeError(f"vector {vector} is not 0..255")
        if exceptions and vector >= FIRST_INTERRUPT:
            raise DecodeError(f"vector {vector} is an interrupt, not an exception (0..31)")
        if not exceptions and vector < FIRST_INTERRUPT:
            raise DecodeError(f"vector {vector} is an exception, not an interrupt (32..255)")
        return vector

    def names(self, *, exceptions: bool) -> list[str]:
        return sorted({n for names in self._table(exceptions).values() for n in names})

    def label(self, vector: int, cr2: int | None = None) -> str:
        """How a backtrace names the crossing: `<interrupt 32 timer>`, `<page fault at 0x..>`."""
        if vector == PAGE_FAULT and cr2 is not None:
            return f"<page fault at {cr2:#x}>"
        kind = "exception" if vector < FIRST_INTERRUPT else "interrupt"
        return f"<{kind} {vector} {self.name(vector)}>"


# --- where a CPU came from ----------------------------------------------------------------


def came_from(
    rip: int,
    rsp: int,
    kernel: tuple[int, int],
    syscall_stack: tuple[int, int] | None,
    *,
    idle: bool = False,
) -> str:
    """app (rip outside the kernel image), idle (the CPU's idle loop, which runs on a
    kernel stack as syscalls do), syscall (kernel code on an app thread's syscall
    stack) or kernel."""
    if not kernel[0] <= rip < kernel[1]:
        return "app"
    if idle:
        return "idle"
    if syscall_stack is not None and syscall_stack[0] <= rsp <= syscall_stack[1]:
        return "syscall"
    return "kernel"


# --- the FS-base protocol at each crossing ------------------------------------------------

FSCHECK_RULES = """\
Rules checked at each crossing (kernel/arch/x64/entry.S's protocol):
  entry-fs      after the entry switch (syscall_handler, trap_handler), FS is this
                CPU's tcb_data.kernel_tcb
  entry-count   after the entry, kernel_tcb_counter is >= 1, and the counter the entry
                found was >= 0
  return-fs     returning to app code (syscall_return, trap_return; also an interrupt
                that hit syscall_entry's last instructions, after its popfq), FS is the thread's
                app_tcb when its counter is 0, else its kernel TCB (counter 1: the thread
                never set an app TCB)
  return-count  returning to app code, the counter is 0 (app TCB set) or 1 (never set)
  kernel-fs     an interrupt returning to kernel code leaves FS on the kernel TCB and the
                counter >= 1
Under --fs-protocol=compare there is no counter: entry-count, return-count and
kernel-fs want it 0, and return-fs wants the app_tcb if the thread has one, else
its kernel TCB. Under lazy the rules are counter's; its fast syscalls switch
nothing, so only their return is checked, and an exception returning into the fast
path's kernel code returns to the app's side."""


def rule_name(enumerator: str) -> str:
    """The kernel's enum fscheck_rule names a rule FSCHECK_RETURN_FS: return-fs here."""
    return enumerator.removeprefix("FSCHECK_").lower().replace("_", "-")


@dataclass
class Violation:
    rule: str
    what: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.what}"


@dataclass(frozen=True)
class FsState:
    """The FS-relevant state of one CPU at a crossing."""

    fs_base: int
    kernel_tcb: int
    counter: int
    app_tcb: int
    entry_counter: int | None = None  # the counter the entry found (from the frame)
    protocol: str = "counter"  # the kernel's FS protocol (FS_PROTOCOLS in decode/tcb.py)


def check_entry(state: FsState) -> list[Violation]:
    """At syscall_handler / trap_handler: the entry half has run."""
    problems = []
    if state.fs_base != state.kernel_tcb:
        problems.append(
            Violation(
                "entry-fs",
                f"FS base is {state.fs_base:#x}, not this CPU's kernel TCB {state.kernel_tcb:#x}",
            )
        )
    if state.protocol == "compare":
        if state.counter != 0 or state.entry_counter:
            problems.append(
                Violation(
                    "entry-count",
                    f"kernel_tcb_counter is {state.counter} (the entry found "
                    f"{state.entry_counter}) under compare, which keeps it 0",
                )
            )
        return problems
    if state.counter < 1:
        problems.append(
            Violation("entry-count", f"kernel_tcb_counter is {state.counter} after the entry")
        )
    if state.entry_counter is not None and state.entry_counter < 0:
        problems.append(
            Violation("entry-count", f"the entry found kernel_tcb_counter {state.entry_counter}")
        )
    return problems


def check_return(state: FsState, *, to_app: bool) -> list[Violation]:
    """At syscall_return / trap_return: the exit half has run."""
    problems: list[Violation] = []
    compare = state.protocol == "compare"
    if not to_app:
        if state.fs_base != state.kernel_tcb:
            problems.append(
                Violation(
                    "kernel-fs",
                    f"back to kernel code on FS {state.fs_base:#x}, not the kernel TCB "
                    f"{state.kernel_tcb:#x}",
                )
            )
        if state.counter != 0 if compare else state.counter < 1:
            problems.append(
                Violation("kernel-fs", f"back to kernel code with counter {state.counter}")
            )
        return problems
    if compare:
        expected = state.app_tcb or state.kernel_tcb
        if state.fs_base != expected:
            whose = "the thread's app_tcb" if state.app_tcb else "its kernel TCB (no app_tcb)"
            problems.append(
                Violation(
                    "return-fs",
                    f"back to app code on FS {state.fs_base:#x}, not {whose} {expected:#x}",
                )
            )
        if state.counter != 0:
            problems.append(
                Violation(
                    "return-count",
                    f"back to app code with kernel_tcb_counter {state.counter} under compare, "
                    "which keeps it 0",
                )
            )
        return problems
    if state.counter == 0:
        if state.fs_base != state.app_tcb:
            problems.append(
                Violation(
                    "return-fs",
                    f"back to app code on FS {state.fs_base:#x}, not the thread's app_tcb "
                    f"{state.app_tcb:#x} (counter 0)",
                )
            )
    elif state.counter == 1 and not state.app_tcb:
        if state.fs_base != state.kernel_tcb:
            problems.append(
                Violation(
                    "return-fs",
                    f"back to app code on FS {state.fs_base:#x}, not its kernel TCB "
                    f"{state.kernel_tcb:#x} (counter 1, no app TCB)",
                )
            )
    else:
        because = (
            "the exit half of the protocol (counter--, FS := app_tcb at 0) did not run"
            if state.app_tcb
            else "entries and exits are unbalanced"
        )
        fs_note = (
            f"; FS is still {state.fs_base:#x}, the kernel TCB, not app_tcb {state.app_tcb:#x}"
            if state.app_tcb and state.fs_base == state.kernel_tcb
            else f"; FS is {state.fs_base:#x}"
        )
        problems.append(
            Violation(
                "return-count",
                f"back to app code with kernel_tcb_counter {state.counter} "
                f"(app_tcb {state.app_tcb:#x}): {because}{fs_note}",
            )
        )
    return problems


@dataclass
class Crossing:
    """Where a violation was seen, for the explanation."""

    location: str  # syscall_handler, trap_handler, syscall_return, trap_return
    cpu: int | None
    tid: int | None
    thread_name: str
    rip: int
    detail: str = ""  # e.g. "interrupt 32 timer from app code"
    last_syscalls: list[str] = field(default_factory=list)
    protocol: str = "counter"  # the kernel's FS protocol, named when it is not the default


def explain(crossing: Crossing, violations: list[Violation]) -> str:
    """One paragraph: which rule broke, where, and the thread's last syscalls."""
    rules = ", ".join(sorted({v.rule for v in violations}))
    who = f"tid {crossing.tid} ({crossing.thread_name})" if crossing.tid is not None else "?"
    cpu = crossing.cpu if crossing.cpu is not None else "?"
    detail = f", {crossing.detail}" if crossing.detail else ""
    under = f" (under --fs-protocol={crossing.protocol})" if crossing.protocol != "counter" else ""
    text = (
        f"osv-fscheck: FS-base rule {rules} broken at {crossing.location} on CPU {cpu}, "
        f"{who}, rip {crossing.rip:#x}{detail}{under}: "
        + "; ".join(v.what for v in violations)
        + "."
    )
    if crossing.last_syscalls:
        text += f" Last syscalls of tid {crossing.tid}: " + "; ".join(crossing.last_syscalls) + "."
    else:
        text += f" Tid {crossing.tid} made no syscall the history still holds."
    return text


# --- where the frame is, at each instruction of an entry stub ------------------------------

RETURNED = -1  # an offset meaning: the registers are the app's already (syscall_return)
# entry.S's stubs that build a frame and call a handler, by the frame they build: the two
# crossings, and --fs-protocol=lazy's fast paths (their frames are the same structs).
ENTRY_STUBS = (
    ("syscall", "syscall_entry"),
    ("trap", "trap_common"),
    ("syscall", "syscall_fast_path"),
    ("trap", "trap_fast_path"),
)
RSP = 4  # rsp's number in an opcode's or a ModRM byte's register field
LEGACY_PREFIXES = frozenset((0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3))
# Opcodes whose ModRM reg field names the register written, and those whose rm field does
# (the mov, lea and ALU forms a stub could point rsp elsewhere with).
WRITES_REG = frozenset((0x03, 0x0B, 0x13, 0x1B, 0x23, 0x2B, 0x33, 0x8B, 0x8D))
WRITES_RM = frozenset((0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x89, 0xC7))


def stack_effect(code: bytes) -> tuple[str, int]:
    """What one x86-64 instruction, from its encoding, does to rsp: ("push", -8),
    ("pop", 8), ("adjust", n) for an add or sub of an immediate, ("call", 0),
    ("pop-rsp", 0), ("moves-rsp", 0) for any other write of rsp (which the stub
    analysis does not follow), else ("other", 0)."""
    i = 0
    while i < len(code) and code[i] in LEGACY_PREFIXES:
        i += 1
    rex = code[i] if i < len(code) and 0x40 <= code[i] <= 0x4F else 0
    i += 1 if rex else 0
    if i >= len(code):
        return ("other", 0)
    op = code[i]
    modrm = code[i + 1] if i + 1 < len(code) else 0
    extension = (modrm >> 3) & 7  # the reg field, when it extends the opcode
    reg = extension | (rex & 4) << 1
    rm = modrm & 7 | (rex & 1) << 3
    on_rsp = modrm >> 6 == 3 and rm == RSP  # the rm operand is rsp itself, not memory
    if 0x50 <= op <= 0x57 or op in (0x68, 0x6A, 0x9C) or (op == 0xFF and extension == 6):
        return ("push", -8)
    if 0x58 <= op <= 0x5F:
        return ("pop-rsp", 0) if (op - 0x58 | (rex & 1) << 3) == RSP else ("pop", 8)
    if op == 0x8F and extension == 0:
        return ("pop-rsp", 0) if on_rsp else ("pop", 8)
    if op == 0x9D:  # popfq
        return ("pop", 8)
    if op == 0xE8 or (op == 0xFF and extension in (2, 3)):
        return ("call", 0)
    if op in (0x81, 0x83) and on_rsp:
        size = 1 if op == 0x83 else 4
        immediate = int.from_bytes(code[i + 2 : i + 2 + size], "little", signed=True)
        if extension == 0:
            return ("adjust", immediate)
        if extension == 5:
            return ("adjust", -immediate)
        return ("other", 0) if extension == 7 else ("moves-rsp", 0)  # cmp reads only
    if (
        (op in WRITES_REG and reg == RSP)
        or (op in WRITES_RM and on_rsp)
        or (op == 0xFF and extension in (0, 1) and on_rsp)  # inc, dec
        or (0xB8 <= op <= 0xBF and (op - 0xB8 | (rex & 1) << 3) == RSP)  # mov $imm, %rsp
        or op in (0xC3, 0xC9, 0xCF)  # ret, leave, iret
    ):
        return ("moves-rsp", 0)
    return ("other", 0)


@dataclass
class Stub:
    kind: str  # syscall or trap
    start: int
    end: int
    offsets: dict[int, int] = field(default_factory=dict)  # pc -> rsp - frame address
    call_return: int = 0  # after `call HANDLER`: the pc of the handler's caller frame

    def contains(self, pc: int) -> bool:
        return self.start <= pc < self.end


def analyse(kind: str, start: int, end: int, instructions: list[tuple[int, bytes]]) -> Stub:
    """Offsets of rsp from the frame at each pc of a stub, from its instructions'
    encodings (pure: (address, bytes) pairs in order). The frame is complete after
    the last push before the first call; from there on the offset follows the pops
    and adjustments, up to the end or to a write of rsp it cannot follow."""
    stub = Stub(kind, start, end)
    effects = [stack_effect(code) for _, code in instructions]
    calls = [i for i, (effect, _) in enumerate(effects) if effect == "call"]
    if not calls:
        return stub
    call = calls[0]
    pushes = [i for i in range(call) if effects[i][0] == "push"]
    first = pushes[-1] + 1 if pushes else call
    offset = 0
    for i in range(first, len(instructions)):
        address = instructions[i][0]
        stub.offsets[address] = offset
        if i == call + 1:
            stub.call_return = address
        effect, delta = effects[i]
        if i <= call or offset == RETURNED:
            continue
        if effect == "pop-rsp":
            offset = RETURNED
        elif effect == "moves-rsp":
            break
        else:
            offset += delta
    return stub
