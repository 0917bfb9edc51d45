"""Which memory the kernel uses, and where each thread keeps its state: what a compact
dump keeps (osvgdb.dump_writer), read through the model's target like every other view.

The allocator (kernel/core/mm.c) keeps no per-page state: a page of RAM is in use
unless it lies in `free_ranges[]` (never handed out) or on the free list (handed
back: each free frame's first word is the physical address of the next, read
through the direct map at `mm_direct_map`). `mm_reserved[]` says what was taken out
before the allocator started, and why (`enum mm_reserved_kind`: boot, kernel,
initrd, heap). `kernel_memory(kernel)` reads all three.

`minidump_regions(kernel)` lists the virtual ranges a minidump keeps (osv-dump
--level stacks), each with why: the kernel image (its code, data, the CPUs and
their IST stacks, the syscall rings), and for every thread its struct thread, TCB
and TLS block, FPU area, the live part of its kernel stacks, its app TCB and the
app stack around where it entered the kernel; the app's initial stack (argv, envp,
auxv) and writable segments; and the pages around every vCPU register that
points into memory. Ranges are as the kernel sees them: some may not be mapped
(a register holding a number), which the caller passes over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from osvgdb.decode import DecodeError
from osvgdb.decode.tcb import ThreadInfo
from osvgdb.model.kernel import Kernel
from osvgdb.model.target import TargetError

PAGE = 4096
POINTER = 8
# The free list is cut short (the rest counted in use) past this many frames more
# than nr_free_frames says, or at a link that cannot be a frame.
FREE_LIST_SLACK = 16
# Around a stack pointer: the red zone and a little more below it, and above it what
# the innermost frames use (the unwinder's own reads reach the outer ones).
BELOW_SP = 512
KERNEL_STACK_TOP = 8 * 1024  # a kernel stack's entry frames, when no sp is known
APP_STACK_ABOVE_SP = 32 * 1024
AROUND_REGISTER = PAGE // 2
# Registers that never hold a virtual address (CR3 holds a physical one).
NOT_POINTERS = frozenset({"cr0", "cr3", "cr4", "eflags", "rflags", "gdt_limit", "idt_limit"})
USER_MIN = 0x10000
PT_LOAD, PF_W = 1, 2
ELF64_PHDR = struct.Struct("<IIQQQQQQ")


@dataclass(frozen=True)
class Reserved:
    """Physical [start, end) the kernel took out before its allocator started, and why."""

    start: int
    end: int
    kind: str  # boot, kernel, initrd, heap: mm_reserved_kind without its prefix


@dataclass
class KernelMemory:
    """Physical memory as the allocator sees it."""

    free_ranges: list[tuple[int, int]]  # never handed out
    free_frames: list[int]  # handed back (the free list), in list order
    reserved: list[Reserved]
    problems: list[str] = field(default_factory=list)  # where the state could not be read whole

    def free(self) -> list[tuple[int, int]]:
        """Every free page as sorted, merged [start, end) ranges."""
        pieces = sorted(self.free_ranges + [(pa, pa + PAGE) for pa in self.free_frames])
        merged: list[tuple[int, int]] = []
        for start, end in pieces:
            if start >= end:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged


def kernel_memory(kernel: Kernel, ram_end: int) -> KernelMemory:
    """The allocator's state; `ram_end`: the end of physical RAM, beyond which no frame
    can be. TargetError when the kernel has none of it (an older kernel)."""
    layout = kernel.target.layout("range")
    count = min(kernel.read_int("nr_free_ranges"), kernel.target.symbol_size("free_ranges") // layout.size)
    data = kernel.read(kernel.address("free_ranges"), count * layout.size)
    ranges = [(r["start"], r["end"]) for r in layout.codec(("start", "end")).unpack_array(data, count)]
    reserved = _reserved(kernel)
    memory = KernelMemory(free_ranges=[(s, e) for s, e in ranges if s < e], free_frames=[], reserved=reserved)
    _walk_free_list(kernel, memory, ram_end)
    return memory


def _reserved(kernel: Kernel) -> list[Reserved]:
    layout = kernel.target.layout("mm_reserved")
    count = min(kernel.read_int("nr_mm_reserved"), kernel.target.symbol_size("mm_reserved") // layout.size)
    data = kernel.read(kernel.address("mm_reserved"), count * layout.size)
    kinds = {
        value: name.removeprefix("MM_RESERVED_").lower()
        for name, value in kernel.target.enum("mm_reserved_kind").items()
    }
    return [
        Reserved(r["start"], r["end"], kinds.get(r["kind"], f"kind {r['kind']}"))
        for r in layout.codec(("start", "end", "kind")).unpack_array(data, count)
    ]


def _walk_free_list(kernel: Kernel, memory: KernelMemory, ram_end: int) -> None:
    """Follow the free list from `free_list`. A link that cannot be a frame (not page
    aligned, past RAM, seen before) or cannot be read ends the walk: the frames not
    reached count as in use, which keeps them in a dump, and a problem says so."""
    direct = kernel.read_int("mm_direct_map")
    expected = kernel.read_int("nr_free_frames")
    frame = kernel.read_int("free_list")
    seen: set[int] = set()
    while frame:
        if frame % PAGE or frame >= ram_end or frame in seen or len(seen) > expected + FREE_LIST_SLACK:
            memory.problems.append(
                f"the free list is cut short at {frame:#x} after {len(seen)} of {expected} frames"
            )
            return
        seen.add(frame)
        memory.free_frames.append(frame)
        try:
            frame = int.from_bytes(kernel.read(direct + frame, POINTER), "little")
        except TargetError as error:
            memory.problems.append(f"the free list ends unreadable after {len(seen)} frames: {error}")
            return


@dataclass(frozen=True)
class Region:
    """Virtual [start, end) in the kernel's address space, and why a minidump keeps it."""

    start: int
    end: int
    what: str


def minidump_regions(
    kernel: Kernel, threads: list[ThreadInfo] | None = None
) -> tuple[list[Region], list[str]]:
    """What a minidump keeps (see the module's doc), and the problems met reading it."""
    problems: list[str] = []
    regions = [Region(kernel.address("kernel_start"), kernel.address("kernel_end"), "kernel image")]
    if threads is None:
        threads = kernel.threads()
    vcpus = kernel.target.vcpus()
    running: dict[int, int] = {}  # struct thread -> the rsp of the vCPU running it
    try:
        for cpu in kernel.cpus(threads):
            vcpu = next((v for v in vcpus if v.num == cpu.vcpu), None)
            if cpu.current and vcpu is not None:
                running[cpu.current] = vcpu.rsp
    except (TargetError, DecodeError) as error:
        problems.append(f"CPUs: {error}")
    for thread in threads:
        if thread.tid < 0:
            continue
        try:
            regions += _thread_regions(kernel, thread, running.get(thread.address))
        except (TargetError, DecodeError) as error:
            problems.append(f"thread {thread.tid}: {error}")
    try:
        regions += _process_regions(kernel)
    except (TargetError, DecodeError) as error:
        problems.append(f"the process: {error}")
    for vcpu in vcpus:
        for name, value in vcpu.registers.items():
            if name in ("rsp", "rbp"):
                regions.append(Region(value - BELOW_SP, value + APP_STACK_ABOVE_SP, f"vCPU {vcpu.num} {name}"))
            elif value >= USER_MIN and name not in NOT_POINTERS:
                regions.append(
                    Region(value - AROUND_REGISTER, value + AROUND_REGISTER, f"vCPU {vcpu.num} {name}")
                )
    return [r for r in regions if 0 <= r.start < r.end <= 1 << 64], problems


def _thread_regions(kernel: Kernel, thread: ThreadInfo, vcpu_rsp: int | None) -> list[Region]:
    tid = thread.tid
    layout = kernel.thread_layout
    regions = [Region(thread.address, thread.address + layout.size, f"thread {tid}")]
    fields = layout.codec(("tls_block", "fpu_block", "fpu_state", "kernel_rsp")).unpack(
        kernel.read(thread.address, layout.size)
    )
    if thread.tcb:
        start = fields["tls_block"] or thread.tcb
        regions.append(Region(start, thread.tcb + kernel.tcb_layout.size, f"thread {tid} TCB and TLS"))
    if fields["fpu_block"]:
        end = (fields["fpu_state"] or fields["fpu_block"]) + PAGE
        regions.append(Region(fields["fpu_block"], end, f"thread {tid} FPU state"))
    sps = [sp for sp in (vcpu_rsp, fields["kernel_rsp"] if vcpu_rsp is None else None) if sp]
    for low, high, what in (
        (thread.syscall_stack_low, thread.syscall_stack_high, "syscall stack"),
        (thread.exception_stack_low, thread.exception_stack_high, "exception stack"),
    ):
        if not low or not high:
            continue
        inside = [sp for sp in sps if low <= sp <= high]
        start = max(low, min(inside) - BELOW_SP) if inside else max(low, high - KERNEL_STACK_TOP)
        regions.append(Region(start, high, f"thread {tid} {what}"))
    if thread.app_tcb:
        regions.append(Region(thread.app_tcb - PAGE, thread.app_tcb + PAGE, f"thread {tid} app TCB"))
    caller = _caller_stack_pointer(kernel, thread)
    if caller and caller >= USER_MIN:
        regions.append(Region(caller - BELOW_SP, caller + APP_STACK_ABOVE_SP, f"thread {tid} app stack"))
    return regions


def _caller_stack_pointer(kernel: Kernel, thread: ThreadInfo) -> int | None:
    """The app's rsp where the thread last entered the kernel by syscall (its TCB)."""
    if not thread.tcb or not kernel.tcb_layout.has("syscall_caller_stack_pointer"):
        return None
    offset = kernel.tcb_layout.offset("syscall_caller_stack_pointer")
    data = kernel.reader(thread.tcb + offset, POINTER)
    return int.from_bytes(data, "little") if data else None


def _process_regions(kernel: Kernel) -> list[Region]:
    """The app's initial stack (argv, envp, auxv) and its writable segments, from its
    own program headers as loaded (process.phdr: AT_PHDR)."""
    process = kernel.process(("app_started", "initial_stack", "stack_high", "load_base", "phdr", "phnum"))
    regions = []
    if process["initial_stack"] and process["stack_high"]:
        regions.append(Region(process["initial_stack"], process["stack_high"], "the app's initial stack"))
    if process["phdr"] and process["phnum"]:
        data = kernel.read(process["phdr"], process["phnum"] * ELF64_PHDR.size)
        base = process["load_base"] or 0
        for p_type, flags, _offset, vaddr, _paddr, _filesz, memsz, _align in ELF64_PHDR.iter_unpack(data):
            if p_type == PT_LOAD and flags & PF_W:
                regions.append(Region(base + vaddr, base + vaddr + memsz, "the app's writable segment"))
    return regions
