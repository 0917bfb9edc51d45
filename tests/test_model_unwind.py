"""The pure backtrace engine (osvgdb.model.unwind, osvgdb.model.symbols) without QEMU or
GDB: the real ELF files from build/ with stacks this test builds byte by byte, fake
images with hand-made CFI, and pyelftools (its own CFI decoder) and addr2line as
oracles for what symbols.py reads from the files."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from guest import APPS, KERNEL, ROOT

from osvgdb.decode import frames as frames_decode
from osvgdb.model import unwind
from osvgdb.model.elf_target import ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.model.symbols import (
    RIP,
    RSP,
    STB_GLOBAL,
    STB_LOCAL,
    STB_WEAK,
    STT_FUNC,
    CfiRow,
    ElfFile,
    ElfImage,
    _Symbol,
    app_image,
    evaluate_expression,
)
from osvgdb.model.target import TargetError

PIE_BASE = 0x555555554000
KERNEL_STACK = 0xFFFF800000400000
APP_STACK = 0x7FFFF0000000
SYSCALL_FUTEX = 202


class Memory:
    """Target memory: little regions of bytes; the rest is unreadable."""

    def __init__(self) -> None:
        self.regions: dict[int, bytearray] = {}

    def region(self, address: int, size: int) -> None:
        self.regions[address] = bytearray(size)

    def write(self, address: int, data: bytes) -> None:
        for start, buf in self.regions.items():
            if start <= address and address + len(data) <= start + len(buf):
                buf[address - start : address - start + len(data)] = data
                return
        raise AssertionError(f"no region for {address:#x}")

    def u64(self, address: int, value: int) -> None:
        self.write(address, struct.pack("<Q", value))

    def read(self, address: int, length: int) -> bytes:
        for start, buf in self.regions.items():
            if start <= address and address + length <= start + len(buf):
                return bytes(buf[address - start : address - start + length])
        raise TargetError(f"cannot read {length} bytes at {address:#x}")


class ElfMemoryTarget:
    """The model's target: the real kernel ELF's symbols and layouts, memory from Memory."""

    def __init__(self, elf: ElfKernel, memory: Memory):
        self.elf = elf
        self.memory = memory

    def __getattr__(self, name: str):
        return getattr(self.elf, name)  # has, address, symbol_size, function_range, layout, enum

    def read(self, address: int, length: int) -> bytes:
        return self.memory.read(address, length)

    def vcpus(self) -> list:
        return []

    def vcpu_count(self) -> int:
        return 0


@pytest.fixture(scope="module")
def elf(kernel: None) -> ElfKernel:
    return ElfKernel(KERNEL)


def machine(elf: ElfKernel) -> tuple[Kernel, Memory]:
    memory = Memory()
    return Kernel(ElfMemoryTarget(elf, memory)), memory


def images(app: str = "threads-glibc", bias: int = 0) -> unwind.Images:
    return unwind.Images(ElfImage(KERNEL, 0, "kernel"), ElfImage(APPS / app, bias, "app"))


# --- symbols --------------------------------------------------------------------------------


def test_alias_rule_global_weak_local_then_underscores_then_length() -> None:
    def pick(*symbols: tuple[str, int]) -> str:
        candidates = [_Symbol(0x1000, 16, name, binding, STT_FUNC, 1) for name, binding in symbols]
        return min(candidates, key=_Symbol.rank).name

    assert pick(("write", STB_WEAK), ("__libc_write", STB_GLOBAL)) == "__libc_write"
    assert pick(("__GI_raise", STB_LOCAL), ("raise", STB_GLOBAL), ("gsignal", STB_WEAK)) == "raise"
    assert pick(("__write", STB_GLOBAL), ("write", STB_GLOBAL)) == "write"
    assert pick(("gsignal", STB_GLOBAL), ("raise", STB_GLOBAL)) == "raise"  # shorter
    assert pick(("b_x", STB_GLOBAL), ("a_x", STB_GLOBAL)) == "a_x"  # then alphabetical
    assert pick(("__x", STB_LOCAL), ("_y", STB_LOCAL)) == "_y"


@pytest.mark.usefixtures("apps")
def test_symbolize_follows_the_rule_on_static_glibc() -> None:
    from elftools.elf.elffile import ELFFile

    image = ElfImage(APPS / "threads-glibc")
    with open(image.path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        by_address: dict[int, list] = {}
        for s in symtab.iter_symbols():
            if s["st_info"]["type"] == "STT_FUNC" and s["st_size"]:
                by_address.setdefault(s["st_value"], []).append(s)
    ranks = {"STB_GLOBAL": 0, "STB_WEAK": 1, "STB_LOCAL": 2}
    checked = 0
    for address, symbols in by_address.items():
        if len(symbols) < 2:
            continue
        expected = min(
            symbols,
            key=lambda s: (
                ranks[s["st_info"]["bind"]],
                len(s.name) - len(s.name.lstrip("_")),
                len(s.name),
                s.name,
            ),
        )
        assert image.symbolize(address + 1) == (expected.name, 1), [s.name for s in symbols]
        assert set(image.aliases(address)) >= {s.name for s in symbols}
        checked += 1
    assert checked > 100  # static glibc is full of aliases
    write = image.address_of("write")
    assert image.symbolize(write)[0] in image.aliases(write) and "write" in image.aliases(write)


@pytest.mark.usefixtures("kernel")
def test_labels_without_size_and_addresses_no_symbol_covers() -> None:
    image = ElfImage(KERNEL)
    syscall_entry = image.address_of("syscall_entry")
    exit_label = image.address_of("syscall_exit")
    # syscall_entry's .size covers its exit path: the sized symbol wins, as in GDB.
    assert image.symbolize(exit_label + 2) == ("syscall_entry", exit_label + 2 - syscall_entry)
    assert image.symbolize(0x1000) == (None, 0)
    assert not image.contains(0x1000) and image.contains(syscall_entry)


@pytest.mark.usefixtures("apps")
def test_a_static_pie_at_its_load_bias() -> None:
    file_image = ElfImage(APPS / "threads-pie")
    worker = file_image.address_of("worker")
    loaded = ElfImage(APPS / "threads-pie", PIE_BASE)
    assert loaded.address_of("worker") == PIE_BASE + worker
    assert loaded.symbolize(PIE_BASE + worker + 3) == ("worker", 3)
    assert loaded.source(PIE_BASE + worker) == file_image.source(worker)
    assert loaded.cfi(PIE_BASE + worker) == file_image.cfi(worker)
    assert not loaded.contains(worker) and loaded.contains(PIE_BASE + worker)

    class Process:
        def process(self, names):
            assert names == ("load_base",)
            return {"load_base": PIE_BASE}

    assert app_image(Process(), APPS / "threads-pie").bias == PIE_BASE
    assert app_image(Process(), APPS / "threads-glibc").bias == 0  # ET_EXEC: at its link address


@pytest.mark.usefixtures("apps")
def test_files_are_parsed_once() -> None:
    assert ElfFile.open(APPS / "hello-glibc") is ElfFile.open(str(APPS / "hello-glibc"))
    first = ElfImage(APPS / "hello-pie", 0)
    assert ElfImage(APPS / "hello-pie", PIE_BASE).file is first.file


def _addr2line(path, address: int) -> tuple[str, int]:
    out = subprocess.run(
        ["addr2line", "-e", str(path), f"{address:#x}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    file, line = out.rsplit(":", 1)
    return file, int(line.split()[0])


@pytest.mark.usefixtures("kernel")
def test_source_lines_agree_with_addr2line() -> None:
    kernel = ElfImage(KERNEL)
    app = ElfImage(APPS / "threads-glibc")
    for image, names in (
        (kernel, ("syscall_handler", "schedule", "futex_wait")),
        (app, ("worker", "main")),
    ):
        for name in names:
            start = image.address_of(name)
            for address in (start, start + 9, start + 40):
                file, line = image.source(address)
                expected_file, expected_line = _addr2line(image.path, address)
                assert line == expected_line, (name, hex(address))
                assert expected_file.endswith(file), (file, expected_file)
    assert app.source(app.address_of("start_thread")) is None  # Debian's libc.a has no lines


# --- call frame information -------------------------------------------------------------------


def _pyelftools_rows(path, every: int = 1):
    """(address, CFA rule, register rules) for the rows of every `every`th FDE, from
    pyelftools' own decoder of .eh_frame."""
    for _start, _size, table in _fdes(path)[::every]:
        for row in table:
            yield row["pc"], row["cfa"], {k: v for k, v in row.items() if isinstance(k, int)}


def _same_rule(ours: tuple[str, object] | None, theirs) -> bool:
    kind = theirs.type.lower()
    if kind == "undefined":
        return ours is not None and ours[0] == "undefined"
    if kind in ("offset", "val_offset", "register"):
        return ours == (kind, theirs.arg)
    if kind in ("expression", "val_expression"):
        return ours is not None and ours[0] == kind and bytes(ours[1]) == bytes(theirs.arg)
    if kind == "same_value":
        return ours is None or ours[0] == "same"
    return True


@pytest.mark.parametrize(
    ("name", "every"), [("kernel", 1), ("threads-glibc", 7), ("threads-pie", 7)]
)
def test_cfi_rows_agree_with_pyelftools(kernel: None, name: str, every: int) -> None:
    path = KERNEL if name == "kernel" else APPS / name
    image = ElfImage(path)
    rows = 0
    for address, cfa, rules in _pyelftools_rows(path, every):
        row = image.cfi(address)
        assert row is not None, hex(address)
        if cfa.expr is not None:
            assert row.cfa[0] == "expression", hex(address)
        else:
            assert row.cfa == ("register", (cfa.reg, cfa.offset)), hex(address)
        for register, rule in rules.items():
            assert _same_rule(row.rules.get(register), rule), (hex(address), register, rule)
        rows += 1
    assert rows > 50


@pytest.mark.usefixtures("apps")
def test_eh_frame_hdr_index_equals_a_full_scan() -> None:
    file = ElfFile(APPS / "threads-pie")  # a fresh, uncached one
    (section,) = [s for s in file.frame_sections if s.eh]
    starts, offsets = list(section.starts), list(section.offsets)
    section.scan()
    assert (starts, offsets) == (section.starts, section.offsets) and len(starts) > 100


@pytest.mark.usefixtures("kernel")
def test_entry_stubs_are_signal_frames_with_expressions() -> None:
    image = ElfImage(KERNEL)
    start, end = ElfKernel(KERNEL).function_range("syscall_entry")
    assert image.cfi(start).signal and image.cfi(start).rules[RIP] == ("undefined", None)
    stub = _syscall_stub()
    row = image.cfi(stub.call_return - 1)
    assert row.signal and row.cfa == ("expression", bytes([0x77, 17 * 8 & 0x7F | 0x80, 1, 0x06]))
    assert row.rules[RIP][0] == "expression"


def test_dwarf_expressions() -> None:
    memory = {0x1000: (0x2000).to_bytes(8, "little")}
    registers = {RSP: 0x0F00, 6: 0x3000}

    def value(expression: bytes, push=None) -> int:
        return evaluate_expression(
            expression, registers.__getitem__, lambda a, n: memory[a][:n], push
        )

    assert value(bytes([0x77, 0x80, 0x02, 0x06])) == 0x2000  # DW_OP_breg7 256; DW_OP_deref
    assert value(bytes([0x76, 0x10])) == 0x3010  # DW_OP_breg6 16
    assert value(bytes([0x08, 5, 0x08, 3, 0x1C])) == 2  # const1u 5, const1u 3, minus
    assert value(bytes([0x35, 0x23, 0x10])) == 21  # lit5, plus_uconst 16
    assert value(bytes([0x23, 0x08]), push=[0x100]) == 0x108  # the CFA pushed first
    assert value(bytes([0x11, 0x7F, 0x31, 0x22])) == 0  # consts -1, lit1, plus


# --- the engine over hand-made CFI ------------------------------------------------------------


class FakeImage:
    """An image whose CFI rows, names and extent the test gives."""

    def __init__(
        self, start: int, end: int, rows: dict[tuple[int, int], CfiRow], names: dict[int, str]
    ):
        self.start, self.end, self.rows, self.names = start, end, rows, names
        self.file = self

    def contains(self, address: int) -> bool:
        return self.start <= address < self.end

    def symbolize(self, address: int):
        starts = [s for s in self.names if s <= address < s + 0x100]
        return (self.names[max(starts)], address - max(starts)) if starts else (None, 0)

    def source(self, address: int):
        return None

    def cfi(self, address: int):
        return next((row for (lo, hi), row in self.rows.items() if lo <= address < hi), None)

    def read(self, address: int, length: int):
        return None


class FakeKernel:
    def __init__(self, memory: Memory):
        self.memory = memory

    def read(self, address: int, length: int) -> bytes:
        return self.memory.read(address, length)

    def function_range(self, name: str):
        return None

    def has(self, name: str) -> bool:
        return False


def frame_row(cfa_offset: int) -> CfiRow:
    """A function after `push %rbp`-less prologue: CFA = rsp + N, return address at CFA - 8."""
    return CfiRow(("register", (RSP, cfa_offset)), {RIP: ("offset", -8)})


OUTERMOST = CfiRow(("register", (RSP, 8)), {RIP: ("undefined", None)})


def fake(rows, names) -> tuple[FakeKernel, unwind.Images, Memory]:
    memory = Memory()
    memory.region(APP_STACK, 0x1000)
    app = FakeImage(0x400000, 0x500000, rows, names)
    kernel_image = FakeImage(0x40000000, 0x40100000, {}, {})
    return FakeKernel(memory), unwind.Images(kernel_image, app), memory


def test_fake_cfi_chain_ends_where_rip_is_undefined() -> None:
    rows = {(0x401000, 0x401100): frame_row(24), (0x402000, 0x402100): frame_row(8),
            (0x403000, 0x403100): OUTERMOST}  # fmt: skip
    kernel, images, memory = fake(rows, {0x401000: "leaf", 0x402000: "middle", 0x403000: "_start"})
    memory.u64(APP_STACK + 16, 0x402010)  # leaf's return address, at CFA - 8
    memory.u64(APP_STACK + 24, 0x403005)  # middle's
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401004, "rsp": APP_STACK})
    assert trace.complete and trace.stopped is None
    assert [(f.function, f.address, f.lookup, f.offset) for f in trace.frames] == [
        ("leaf", 0x401004, 0x401004, 4),
        ("middle", 0x402010, 0x40200F, 0x10),
        ("_start", 0x403005, 0x403004, 5),
    ]
    assert all(f.module == "app" and f.kind == "frame" for f in trace.frames)
    assert [f.cfa for f in trace.frames] == [APP_STACK + 24, APP_STACK + 32, APP_STACK + 40]


def test_fake_cfi_failures_say_why() -> None:
    rows = {(0x401000, 0x401100): frame_row(8), (0x402000, 0x402100): frame_row(0x10000)}
    kernel, images, memory = fake(rows, {0x401000: "f", 0x402000: "g"})
    # No CFI for the caller's pc.
    memory.u64(APP_STACK, 0x404000)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401000, "rsp": APP_STACK})
    assert not trace.complete and trace.stopped == "no unwind information at 0x404000 (??)"
    assert [f.address for f in trace.frames] == [0x401000, 0x404000]
    # A pc in no image at all.
    memory.u64(APP_STACK, 0x900000)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401000, "rsp": APP_STACK})
    assert trace.stopped == "pc 0x900000 is in neither the kernel nor the app"
    # Memory the CFI points at that cannot be read.
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x402000, "rsp": APP_STACK})
    assert trace.stopped.startswith("unreadable memory unwinding g at 0x402000")
    assert len(trace.frames) == 1
    # A register the CFI needs and the caller did not give.
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401000})
    assert trace.stopped == "the CFI needs rsp, which is not known in this frame"


def test_a_frame_without_cfi_interrupted_in_a_syscall_wrapper() -> None:
    """glibc's clone3 ends its FDE before `syscall`: at that exact pc the frame is taken
    for a frameless one (the return address at rsp), when that lands after a call in
    code with CFI; a return address without CFI, or a caller frame (not interrupted
    there) without CFI, ends the backtrace."""
    rows = {(0x402000, 0x402100): frame_row(8), (0x403000, 0x403100): OUTERMOST}
    names = {0x401000: "clone3", 0x402000: "pthread_create", 0x403000: "_start"}
    kernel, images, memory = fake(rows, names)
    memory.u64(APP_STACK, 0x402010)
    memory.u64(APP_STACK + 8, 0x403004)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401019, "rsp": APP_STACK})
    assert trace.complete and [f.function for f in trace.frames] == [
        "clone3",
        "pthread_create",
        "_start",
    ]
    assert [f.guessed for f in trace.frames] == [True, False, False]
    memory.u64(APP_STACK, 0x401050)  # "returns" into code without CFI: no guess
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401019, "rsp": APP_STACK})
    assert trace.stopped == "no unwind information at 0x401019 (clone3)"
    # A return address into clone3: the caller frame has no CFI and is no guess.
    memory.u64(APP_STACK, 0x401019)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x402000, "rsp": APP_STACK})
    assert trace.stopped == "no unwind information at 0x401019 (clone3)" and len(trace.frames) == 2


def test_fake_cfi_loops_and_depth_limit() -> None:
    # A function that "returns" to itself with the same CFA: a loop.
    loop = CfiRow(("register", (RSP, 0)), {RIP: ("offset", 0)})
    kernel, images, memory = fake({(0x401000, 0x401100): loop}, {0x401000: "spin"})
    memory.u64(APP_STACK, 0x401001)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401001, "rsp": APP_STACK})
    assert trace.stopped.startswith("loop: the frame at 0x401001")
    # Endless recursion down a long stack: the depth limit.
    kernel, images, memory = fake({(0x401000, 0x401100): frame_row(8)}, {0x401000: "recurse"})
    for i in range(0x1000 // 8):
        memory.u64(APP_STACK + 8 * i, 0x401010)
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401010, "rsp": APP_STACK})
    assert trace.stopped == "depth limit 64" and len(trace.frames) == unwind.MAX_DEPTH


def test_a_return_address_of_zero_ends_the_stack() -> None:
    kernel, images, memory = fake({(0x401000, 0x401100): frame_row(8)}, {0x401000: "entry"})
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401000, "rsp": APP_STACK})
    assert trace.complete and [f.function for f in trace.frames] == ["entry"]


# --- the engine over the real ELF files --------------------------------------------------------


def _syscall_stub() -> frames_decode.Stub:
    elf = ElfKernel(KERNEL)
    kernel = Kernel(ElfMemoryTarget(elf, Memory()))
    return unwind._Unwinder(kernel, images()).stubs()[0]


def _pyelftools_row(path, address: int):
    """pyelftools' CFA rule and register rules at address (for the stack the test builds)."""
    for pc_rows in _fde_rows(path, address):
        return pc_rows
    raise AssertionError(f"pyelftools has no FDE for {address:#x}")


_FDES: dict[str, list] = {}


def _fdes(path) -> list:
    """pyelftools' FDEs of a file's .eh_frame, decoded once per test run."""
    from elftools.dwarf.callframe import FDE
    from elftools.elf.elffile import ELFFile

    key = str(path)
    if key not in _FDES:
        with open(path, "rb") as f:
            entries = ELFFile(f).get_dwarf_info().EH_CFI_entries()
            _FDES[key] = [
                (e.header["initial_location"], e.header["address_range"], e.get_decoded().table)
                for e in entries
                if isinstance(e, FDE)
            ]
    return _FDES[key]


def _fde_rows(path, address: int):
    for start, size, table in _fdes(path):
        if start <= address < start + size:
            rows = [r for r in table if r["pc"] <= address]
            yield rows[-1], table


def build_syscall_stack(elf: ElfKernel, app: str = "threads-glibc", bias: int = 0):
    """A thread in syscall_handler's first instruction, called by syscall_entry for a
    futex from the app's worker (at its first instruction), called from start_thread,
    called from clone3's child part (rip undefined there). Return (kernel, registers,
    the pcs)."""
    kernel, memory = machine(elf)
    app_path = APPS / app
    app_img = ElfImage(app_path, bias)
    stub = _syscall_stub()
    layout = kernel.syscall_frame_layout
    memory.region(KERNEL_STACK - 0x1000, 0x1000)
    memory.region(APP_STACK, 0x1000)
    handler_rsp = KERNEL_STACK - layout.size - 8
    frame = handler_rsp + 8
    memory.u64(handler_rsp, stub.call_return)
    worker = app_img.address_of("worker")
    app_rsp = APP_STACK + 0x100
    values = {name: 0x1111 * (i + 1) for i, name in enumerate(frames_decode.SYSCALL_FRAME_FIELDS)}
    values.update(rip=worker, rsp=app_rsp, rax=SYSCALL_FUTEX, rflags=0x202, kernel_tcb_counter=0)
    for name, value in values.items():
        memory.u64(frame + layout.offset(name), value)
    # worker's first instruction: CFA = rsp + 8. Its caller: a pc in start_thread past the
    # prologue, whose CFA offset pyelftools says.
    start_thread = app_img.address_of("start_thread")
    (row, table) = _pyelftools_row(app_path, start_thread - bias + 40)
    return_in_start_thread = start_thread + 41
    memory.u64(app_rsp, return_in_start_thread)
    assert row["cfa"].reg == RSP
    caller_rsp = app_rsp + 8
    cfa = caller_rsp + row["cfa"].offset
    # clone3's child part (an FDE of its own in glibc): where the return address is undefined.
    clone3 = app_img.address_of("__clone3") - bias
    return_in_clone3 = None
    for offset in range(0, 0x40):
        for row, _table in _fde_rows(app_path, clone3 + offset):
            if row.get(RIP) is not None and row[RIP].type == "UNDEFINED":
                return_in_clone3 = row["pc"] + bias + 1
        if return_in_clone3:
            break
    assert return_in_clone3, "no outermost row in clone3"
    memory.u64(cfa - 8, return_in_clone3)
    registers = {"rip": elf.address("syscall_handler"), "rsp": handler_rsp, "rbp": 0x5A5A}
    return (
        kernel,
        memory,
        registers,
        (stub.call_return, worker, return_in_start_thread, return_in_clone3),
    )


@pytest.mark.parametrize(("app", "bias"), [("threads-glibc", 0), ("threads-pie", PIE_BASE)])
def test_across_the_syscall_crossing_into_the_app(elf: ElfKernel, app: str, bias: int) -> None:
    kernel, _memory, registers, pcs = build_syscall_stack(elf, app, bias)
    before = dict(registers)
    trace = unwind.unwind_registers(kernel, images(app, bias), registers)
    assert registers == before
    assert trace.complete, trace.format()
    assert [(f.function, f.module, f.kind) for f in trace.frames] == [
        ("syscall_handler", "kernel", "frame"),
        ("<syscall futex>", "kernel", "crossing"),
        ("worker", "app", "frame"),
        ("start_thread", "app", "frame"),
        (trace.frames[4].function, "app", "frame"),
    ]
    assert trace.frames[4].function in ("clone3", "__clone3")
    assert [f.address for f in trace.frames] == [elf.address("syscall_handler"), *pcs]
    assert trace.frames[1].symbol == "syscall_entry" and trace.frames[1].file == "arch/x64/entry.S"
    # The frame the crossing interrupted is at its exact pc; return addresses are looked up
    # at pc - 1.
    assert [f.address - f.lookup for f in trace.frames] == [0, 1, 0, 1, 1]
    worker = trace.frames[2]
    assert worker.file.endswith("kernel/apps/threads.c") and worker.line == 32
    assert trace.signature()[:3] == (
        "kernel:syscall_handler",
        "kernel:<syscall futex>",
        "app:worker",
    )


def test_a_thread_that_never_ran(elf: ElfKernel) -> None:
    kernel, memory = machine(elf)
    memory.region(KERNEL_STACK - 0x100, 0x100)
    kernel_rsp = KERNEL_STACK - 56
    for i in range(6):
        memory.u64(kernel_rsp + 8 * i, 0)
    memory.u64(kernel_rsp + 48, elf.address("thread_trampoline"))
    trace = unwind.unwind_switched(kernel, images(), kernel_rsp)
    assert trace.complete, trace.format()
    assert [(f.function, f.address - f.lookup) for f in trace.frames] == [
        ("switch_context", 0), ("thread_trampoline", 0)
    ]  # fmt: skip
    switch_context = elf.address("switch_context")
    assert trace.frames[0].address == switch_context + 16  # its first pop: where it resumes
    assert trace.frames[0].file == "arch/x64/switch.S"


def test_a_switched_out_thread_blocked_in_a_syscall(elf: ElfKernel) -> None:
    """switch_context's saved registers and return address, on top of the stack of a
    thread in syscall_handler (as build_syscall_stack made it): the same app part."""
    kernel, memory, registers, pcs = build_syscall_stack(elf)
    kernel_rsp = registers["rsp"] - 56
    for i, name in enumerate(unwind.SWITCH_SAVED):
        memory.u64(kernel_rsp + 8 * i, {"rbp": 0x5A5A}.get(name, 0))
    # As if it called from syscall_handler's first instruction (looked up at pc - 1).
    memory.u64(kernel_rsp + 48, elf.address("syscall_handler") + 1)
    trace = unwind.unwind_switched(kernel, images(), kernel_rsp)
    functions = [f.function for f in trace.frames]
    assert functions[:3] == ["switch_context", "syscall_handler", "<syscall futex>"], trace.format()
    assert trace.complete and trace.frames[3].function == "worker"


def test_unreadable_saved_context(elf: ElfKernel) -> None:
    kernel, _memory = machine(elf)
    trace = unwind.unwind_switched(kernel, images(), 0xFFFF800000999000)
    assert not trace.complete and trace.frames == []
    assert trace.stopped.startswith("unreadable saved context at 0xffff800000999000")


def test_the_syscall_exit_path(elf: ElfKernel) -> None:
    """Past the handler's return entry.S's CFI ends the backtrace; the stub analysis
    (decode/frames.py, over instruction lengths decoded here) finds the frame."""
    kernel, memory, registers, pcs = build_syscall_stack(elf)
    stub = _syscall_stub()
    frame = registers["rsp"] + 8
    memory.u64(frame + kernel.syscall_frame_layout.offset("rax"), 0)  # the result now
    pops = elf.address("syscall_exit")
    after_pop_r15 = next(
        pc for pc, offset in sorted(stub.offsets.items()) if pc > pops and offset == 24
    )
    trace = unwind.unwind_registers(kernel, images(), {"rip": after_pop_r15, "rsp": frame + 24})
    assert [f.function for f in trace.frames][:2] == ["<syscall ? returning 0>", "worker"]
    assert trace.complete and trace.frames[0].kind == "crossing"
    # At syscall_return the registers are the app's already: rip in rcx.
    returning = elf.address("syscall_return")
    app_rsp = APP_STACK + 0x100
    trace = unwind.unwind_registers(
        kernel, images(), {"rip": returning, "rsp": app_rsp, "rcx": pcs[1], "rax": 5}
    )
    assert [f.function for f in trace.frames][:2] == ["<syscall ? returning 5>", "worker"]
    assert [f.address for f in trace.frames][1:3] == list(pcs[1:3])
    # Before the frame is built (syscall_entry's first instruction) nothing says where
    # the app's registers are.
    trace = unwind.unwind_registers(
        kernel, images(), {"rip": elf.address("syscall_entry"), "rsp": app_rsp}
    )
    assert not trace.complete and "syscall_entry outside its complete frame" in trace.stopped


def test_instruction_lengths_of_the_entry_stubs() -> None:
    stub = _syscall_stub()
    returning = ElfKernel(KERNEL).address("syscall_return")
    assert stub.offsets[returning] == frames_decode.RETURNED
    assert stub.call_return and stub.offsets[stub.call_return] == 0
    assert unwind.instruction_length(bytes.fromhex("65488b042500000000")) == 9  # mov %gs:0,%rax
    assert unwind.instruction_length(bytes.fromhex("f6059c0e020001")) == 7  # testb $1,x(%rip)
    assert unwind.instruction_length(bytes.fromhex("f3480faed0")) == 5  # wrfsbase %rax
    assert unwind.instruction_length(bytes.fromhex("48cf")) == 2  # iretq
    with pytest.raises(ValueError):
        unwind.instruction_length(bytes.fromhex("d9e8"))  # x87: not a stub's


def test_the_engine_imports_without_gdb() -> None:
    code = "import sys, osvgdb.model.unwind, osvgdb.model.symbols; assert 'gdb' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_a_signal_frame_from_the_ucontext_at_the_trampoline() -> None:
    """A handler's return address is libc's __restore_rt (`mov $15, %rax; syscall`, no
    CFI needed, as musl's has none): the interrupted registers are in the ucontext at
    rsp (kernel/include/signal.h's rt_sigframe), and the frame they describe is at its
    exact pc."""
    rows = {(0x401000, 0x401100): frame_row(8), (0x403000, 0x403100): OUTERMOST}
    kernel, images, memory = fake(rows, {0x401000: "handler", 0x402000: "__restore_rt",
                                         0x403000: "worker"})  # fmt: skip
    memory.region(0x402000, 0x10)
    memory.write(0x402000, unwind.SIGRETURN_CODE)
    memory.u64(APP_STACK, 0x402000)  # pretcode: where the handler returns
    ucontext = APP_STACK + 8
    interrupted = dict.fromkeys(unwind.SIGCONTEXT_REGISTERS, 0)
    interrupted |= {"rip": 0x403000, "rsp": APP_STACK + 0x800, "rbx": 0x1234}
    for index, name in enumerate(unwind.SIGCONTEXT_REGISTERS):
        memory.u64(ucontext + unwind.UC_MCONTEXT + 8 * index, interrupted[name])
    trace = unwind.unwind_registers(kernel, images, {"rip": 0x401004, "rsp": APP_STACK})
    assert trace.complete and trace.stopped is None, trace.stopped
    assert [(f.function, f.address, f.lookup, f.kind) for f in trace.frames] == [
        ("handler", 0x401004, 0x401004, "frame"),
        ("<signal handler called>", 0x402000, 0x401FFF, "crossing"),
        ("worker", 0x403000, 0x403000, "frame"),  # exact: no call before it
    ]
