"""The pure side of the entry paths: frame decoding, vectors, the FS-base rules and
the stub analysis the unwinder uses, on bytes and instruction lists built here."""

from __future__ import annotations

import struct

import pytest

from osvgdb.decode import DecodeError, frames
from osvgdb.decode.layout import Field, Layout


def _layout(name: str, names: tuple[str, ...]) -> Layout:
    fields = {
        n: Field(n, 8 * i, 8, "int" if n == "kernel_tcb_counter" else "uint")
        for i, n in enumerate(names)
    }
    return Layout(name, 8 * len(names), fields)


SYSCALL = _layout("syscall_frame", frames.SYSCALL_FRAME_FIELDS)
TRAP = _layout("trap_frame", frames.TRAP_FRAME_FIELDS)


def test_syscall_frame_decodes_the_call_and_the_apps_registers() -> None:
    values = dict.fromkeys(frames.SYSCALL_FRAME_FIELDS, 0)
    values.update(
        fs_base=0x4AC380,
        kernel_tcb_counter=0,
        rax=1,
        rdi=1,
        rsi=0x4AD1D0,
        rdx=18,
        r10=7,
        rflags=0x202,
        rip=0x4308B0,
        rsp=0x7FFFFFFFEBB8,
    )
    data = struct.pack("<18Q", *(values[n] for n in frames.SYSCALL_FRAME_FIELDS))
    frame = frames.decode_syscall_frame(data, SYSCALL, 0x1000)
    assert (frame.nr, frame.args[:4], frame.rip, frame.rsp) == (
        1,
        (1, 0x4AD1D0, 18, 7),
        0x4308B0,
        0x7FFFFFFFEBB8,
    )
    regs = frame.app_registers()
    assert regs["rcx"] == 0x4308B0 and regs["r11"] == 0x202 and regs["eflags"] == 0x202
    assert regs["fs_base"] == 0x4AC380 and frame.counter == 0
    values["rax"] = (1 << 64) - 38  # -ENOSYS at syscall_exit
    frame = frames.decode_syscall_frame(
        struct.pack("<18Q", *(values[n] for n in frames.SYSCALL_FRAME_FIELDS)), SYSCALL, 0
    )
    assert frame.ret == -38
    with pytest.raises(DecodeError):
        frames.decode_syscall_frame(data[:40], SYSCALL, 0)


def test_trap_frame_decodes_vector_error_and_cpu_frame() -> None:
    values = dict.fromkeys(frames.TRAP_FRAME_FIELDS, 0)
    values.update(
        vector=14,
        error_code=6,
        rip=0x401000,
        rsp=0x7FFF0000,
        rflags=0x246,
        kernel_tcb_counter=(1 << 64) - 1,
    )
    data = struct.pack(f"<{len(values)}Q", *(values[n] for n in frames.TRAP_FRAME_FIELDS))
    trap = frames.decode_trap_frame(data, TRAP, 0)
    assert (trap.vector, trap.error_code, trap.rip, trap.counter) == (14, 6, 0x401000, -1)
    assert "cs" not in trap.interrupted_registers()


# The kernel's enum interrupt_vector (kernel/arch/x64/arch.h) as DWARF gives it.
INTERRUPT_VECTOR = [
    ("TIMER_VECTOR", 32),
    ("IPI_RESCHEDULE_VECTOR", 0xF1),
    ("IPI_TLB_VECTOR", 0xF2),
    ("SPURIOUS_VECTOR", 0xFF),
]
VECTORS = frames.Vectors(frames.interrupt_names(INTERRUPT_VECTOR))


def test_interrupt_names_from_the_kernels_enum() -> None:
    assert frames.interrupt_names([*INTERRUPT_VECTOR, ("NOT_A_VECTOR", 300)]) == {
        32: ("timer", "timer"),
        0xF1: ("reschedule", "reschedule"),
        0xF2: ("tlb", "tlb-shootdown"),
        0xFF: ("spurious", "spurious"),
    }
    assert VECTORS.names(exceptions=False) == [
        "reschedule",
        "spurious",
        "timer",
        "tlb",
        "tlb-shootdown",
    ]
    assert [VECTORS.name(v) for v in (0xF1, 0xF2, 0x41, 14, 15)] == [
        "reschedule",
        "tlb-shootdown",
        "interrupt 0x41",
        "page-fault",
        "exception 15",
    ]
    assert frames.Vectors({}).name(32) == "interrupt 0x20"  # a kernel without the enum


@pytest.mark.parametrize(
    "text, exceptions, vector",
    [
        ("page-fault", True, 14),
        ("pf", True, 14),
        ("GP", True, 13),
        ("0xe", True, 14),
        ("timer", False, 32),
        ("reschedule", False, 0xF1),
        ("tlb_shootdown", False, 0xF2),
        ("255", False, 255),
    ],
)
def test_parse_vector(text: str, exceptions: bool, vector: int) -> None:
    assert VECTORS.parse(text, exceptions=exceptions) == vector


@pytest.mark.parametrize(
    "text, exceptions, message",
    [
        ("timer", True, "unknown exception 'timer'"),
        ("32", True, "is an interrupt"),
        ("14", False, "is an exception"),
        ("300", False, "not 0..255"),
    ],
)
def test_parse_vector_errors(text: str, exceptions: bool, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        VECTORS.parse(text, exceptions=exceptions)


def test_labels_and_origin() -> None:
    assert VECTORS.label(32) == "<interrupt 32 timer>"
    assert VECTORS.label(14, 0x1234) == "<page fault at 0x1234>"
    assert VECTORS.label(13) == "<exception 13 general-protection>"
    assert VECTORS.label(0xF1) == "<interrupt 241 reschedule>"
    kernel = (0x40000000, 0x41000000)
    assert frames.came_from(0x401000, 0, kernel, (0x5000, 0x6000)) == "app"
    assert frames.came_from(0x40001000, 0x5800, kernel, (0x5000, 0x6000)) == "syscall"
    assert frames.came_from(0x40001000, 0x9000, kernel, (0x5000, 0x6000)) == "kernel"
    # The idle thread runs kernel code on its own stack: neither a syscall nor the app.
    assert frames.came_from(0x40001000, 0x5800, kernel, (0x5000, 0x6000), idle=True) == "idle"
    assert frames.came_from(0x401000, 0x5800, kernel, (0x5000, 0x6000), idle=True) == "app"


KTCB, APP = 0xFFFF800000152410, 0x4AC380


def test_entry_rules() -> None:
    good = frames.FsState(fs_base=KTCB, kernel_tcb=KTCB, counter=1, app_tcb=APP, entry_counter=0)
    assert frames.check_entry(good) == []
    bad = frames.FsState(fs_base=APP, kernel_tcb=KTCB, counter=0, app_tcb=APP, entry_counter=-1)
    assert [v.rule for v in frames.check_entry(bad)] == ["entry-fs", "entry-count", "entry-count"]


def test_return_rules() -> None:
    to_app = frames.FsState(fs_base=APP, kernel_tcb=KTCB, counter=0, app_tcb=APP)
    assert frames.check_return(to_app, to_app=True) == []
    never_set = frames.FsState(fs_base=KTCB, kernel_tcb=KTCB, counter=1, app_tcb=0)
    assert frames.check_return(never_set, to_app=True) == []
    # The broken kernel's trap exit: FS left on the kernel TCB, counter still raised.
    broken = frames.FsState(fs_base=KTCB, kernel_tcb=KTCB, counter=1, app_tcb=APP)
    (violation,) = frames.check_return(broken, to_app=True)
    assert violation.rule == "return-count"
    assert "did not run" in violation.what and f"not app_tcb {APP:#x}" in violation.what
    wrong_fs = frames.FsState(fs_base=KTCB, kernel_tcb=KTCB, counter=0, app_tcb=APP)
    assert [v.rule for v in frames.check_return(wrong_fs, to_app=True)] == ["return-fs"]
    to_kernel = frames.FsState(fs_base=APP, kernel_tcb=KTCB, counter=0, app_tcb=APP)
    assert {v.rule for v in frames.check_return(to_kernel, to_app=False)} == {"kernel-fs"}


def test_explanation_is_one_paragraph_naming_rule_place_thread_and_calls() -> None:
    crossing = frames.Crossing(
        "trap_return",
        0,
        1,
        "main",
        0x401000,
        "interrupt 32 timer",
        ["arch_prctl(ARCH_SET_FS, 0x4ac380) = 0"],
    )
    text = frames.explain(crossing, [frames.Violation("return-count", "counter 1")])
    assert "\n" not in text
    assert text.startswith(
        "osv-fscheck: FS-base rule return-count broken at trap_return on "
        "CPU 0, tid 1 (main), rip 0x401000, interrupt 32 timer: counter 1."
    )
    assert text.endswith("Last syscalls of tid 1: arch_prctl(ARCH_SET_FS, 0x4ac380) = 0.")


# syscall_entry's shape, in the encodings the assembler gives it (objdump -d).
STUB = [
    ("push %rax", "50"),
    ("push %rbx", "53"),
    ("mov %rsp,%rdi", "48 89 e7"),
    ("call syscall_handler", "e8 00 10 00 00"),
    ("mov %rax,0x70(%rsp)", "48 89 44 24 70"),
    ("cli", "fa"),
    ("add $0x10,%rsp", "48 83 c4 10"),
    ("pop %r15", "41 5f"),
    ("popf", "9d"),
    ("pop %rcx", "59"),
    ("pop %rsp", "5c"),
    ("jmp *%rcx", "ff e1"),
]


def _instructions(stub: list[tuple[str, str]]) -> list[tuple[int, bytes]]:
    return [(0x100 + 4 * i, bytes.fromhex(code)) for i, (_, code) in enumerate(stub)]


def test_stub_analysis_follows_rsp_through_the_exit_path() -> None:
    stub = frames.analyse("syscall", 0x100, 0x100 + 4 * len(STUB), _instructions(STUB))
    offsets = [stub.offsets.get(0x100 + 4 * i) for i in range(len(STUB))]
    assert offsets == [None, None, 0, 0, 0, 0, 0, 16, 24, 32, 40, frames.RETURNED]
    assert stub.call_return == 0x110


@pytest.mark.parametrize(
    "asm, code, effect",
    [
        ("pushq 0x28(%rax)", "ff 70 28", ("push", -8)),
        ("push $0x20", "6a 20", ("push", -8)),
        ("pop %r12", "41 5c", ("pop", 8)),  # REX.B: not pop %rsp
        ("pop %rsp", "5c", ("pop-rsp", 0)),
        ("sub $0x8,%rsp", "48 83 ec 08", ("adjust", -8)),
        ("add $0x200,%rsp", "48 81 c4 00 02 00 00", ("adjust", 0x200)),
        ("add $0x10,%r12", "49 83 c4 10", ("other", 0)),
        ("mov %gs:0x0,%rax", "65 48 8b 04 25 00 00 00 00", ("other", 0)),
        ("mov (%rsp),%r11", "4c 8b 1c 24", ("other", 0)),
        ("mov 0x18(%rax),%rsp", "48 8b 60 18", ("moves-rsp", 0)),
        ("mov %rdi,%rsp", "48 89 fc", ("moves-rsp", 0)),
        ("lea 0x10(%rsp),%rsp", "48 8d 64 24 10", ("moves-rsp", 0)),
        ("call *%rax", "ff d0", ("call", 0)),
        ("iretq", "48 cf", ("moves-rsp", 0)),
        ("wrfsbase %rax", "f3 48 0f ae d0", ("other", 0)),
    ],
)
def test_stack_effect_from_the_encoding(asm: str, code: str, effect: tuple[str, int]) -> None:
    assert frames.stack_effect(bytes.fromhex(code)) == effect, asm


def test_stub_analysis_stops_at_a_write_of_rsp_it_cannot_follow() -> None:
    stub = list(STUB)
    stub[7] = ("mov %rdi,%rsp", "48 89 fc")
    analysed = frames.analyse("syscall", 0x100, 0x100 + 4 * len(stub), _instructions(stub))
    assert max(analysed.offsets) == 0x100 + 4 * 7 and analysed.offsets[0x11C] == 16
