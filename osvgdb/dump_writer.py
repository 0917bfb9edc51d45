"""Compact dumps of the stopped guest, written from its shared RAM: what `osv-dump`
and `osvgdb triage` write, at one of three levels (makedumpfile's -d, by name):

    full    all of the guest's RAM
    used    what the kernel uses: its image, the pages its allocator handed out
            (the kernel heap, page tables, the app's pages); not its free pages, nor
            the initrd (a copy of host files)
    stacks  a minidump, as crash reporters keep: the kernel image (code, data, the
            CPUs, the syscall rings), the page tables, every thread's struct, TCB,
            TLS block, FPU area and the live part of its kernel stacks, its app TCB
            and app stack, the app's initial stack and writable segments, the pages
            around every register that points into memory (osvgdb.model.memory),
            and whatever osv-tcb, osv-syscalls, osv-auxv and every thread's
            backtrace read (they are run over the guest first, their reads noted)

What is in use comes from the kernel itself, through the model (the allocator's
free ranges and free list, its reserved regions: osvgdb.model.memory), never
from guessing at addresses. At every level a page that holds only zeros is
described, not stored (a PT_LOAD's p_memsz past its p_filesz: GDB and
osvgdb.dump read zeros there, which is what the guest had); a page with data
that the level leaves out has no PT_LOAD at all, so a read of it fails: GDB says
"Cannot access memory at address ...", osvgdb.dump names the level and what it
left out, from the dump's OSVGDB note, which lists every such run and why.

The file is an ELF core at the guest's virtual addresses, which GDB loads as it
is: one PT_LOAD per run of virtual pages the page tables map (the kernel window,
the direct map, the app), p_paddr the physical address, the stored pages packed
once in physical order, however many virtual addresses map them. Notes: one
NT_PRSTATUS per vCPU, QEMU's CPU state notes, the OSVGDB note. Nothing is copied
through QEMU: the pages come from the RAM QEMU shares (osvgdb.guestram), found
with SEEK_DATA/SEEK_HOLE; the registers from a QEMU dump-guest-memory of one page
(`cpu_state`), which takes a few milliseconds.

The dump is written under a temporary name and renamed, after its sidecar: a
killed writer leaves no file that looks whole. With `compress` the file is one
zstd frame (with its size and a checksum) of that core; osvgdb.dump.Dump opens
either.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from osvgdb.decode import DecodeError
from osvgdb.dump import (
    CONTENTS_FORMAT,
    CONTENTS_NOTE_NAME,
    CONTENTS_VERSION,
    NT_CONTENTS,
    PF_R,
    PF_W,
    PF_X,
    Dump,
    DumpMetadata,
    core_memory_offset,
    core_prefix,
    free_parts,
    load_header,
    note,
    vcpu_notes,
    write_metadata,
)
from osvgdb.guestram import GuestRam
from osvgdb.model.elf_target import MemoryTarget
from osvgdb.model.kernel import Kernel
from osvgdb.model.auxv import auxv_report
from osvgdb.model.memory import kernel_memory, minidump_regions
from osvgdb.model.symbols import ElfImage, SymbolsError, app_image
from osvgdb.model.syscalls import HistoryFilter, history_report
from osvgdb.model.target import TargetError
from osvgdb.model.tcb import tcb_report
from osvgdb.model.unwind import UnwindError, backtraces
from osvgdb.paging import CR0_PG, PAGE_SIZE, DumpError, canonical

LEVELS = ("full", "used", "stacks")
DEFAULT_LEVEL = "used"
LEVEL_HELP = (
    "full: all guest RAM; used (default): what the kernel uses (its image, the pages its "
    "allocator handed out); stacks: a minidump (every thread's stacks, TCB and TLS, "
    "the syscall rings, the kernel's data, the app's writable data)"
)
SCAN_CHUNK = 1 << 20
LARGE_PAGE = 1 << 21  # the most one page table covers: a range needs its tables every 2 MiB
ZERO_CHUNK = bytes(SCAN_CHUNK)
ZERO_PAGE = bytes(PAGE_SIZE)
COMPRESSION_LEVEL = 3  # zstd's default: ~0.3 of the size at ~400 MB/s here
Ranges = list[tuple[int, int]]


# --- the registers, from QEMU -----------------------------------------------------------


@dataclass(frozen=True)
class CpuState:
    """Every vCPU's registers (Dump.vcpus' form), QEMU's CPU state notes as it wrote
    them, and QEMU's version."""

    vcpus: list[dict[str, int]]
    qemu_notes: list[bytes]
    qemu_version: str


def qemu_version(reply: object) -> str:
    """QMP query-version's answer as `7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)`."""
    reply = reply if isinstance(reply, dict) else {}
    qemu = reply.get("qemu", {})
    version = f"{qemu.get('major')}.{qemu.get('minor')}.{qemu.get('micro')}"
    package = str(reply.get("package", "")).strip()
    return f"{version} ({package})" if package else version


def cpu_state(monitor) -> CpuState:
    """The vCPUs as QEMU sees them (osvgdb.monitor.Monitor): its dump of one page, in
    a private directory, for the notes. MonitorError when QEMU refuses."""
    version = qemu_version(monitor.execute("query-version"))
    with tempfile.TemporaryDirectory(prefix="osvgdb-cpus-") as directory:
        path = Path(directory) / "cpus.core"
        monitor.execute(
            "dump-guest-memory",
            paging=False,
            protocol=f"file:{path}",
            begin=0,
            length=PAGE_SIZE,
            format="elf",
        )
        notes = Dump.from_bytes(path.read_bytes(), "QEMU's CPU state")
    return CpuState(notes.vcpus, notes._qemu_notes, version)


# --- ranges of addresses: sorted, disjoint [start, end) ---------------------------------


def merged(ranges) -> Ranges:
    result: Ranges = []
    for start, end in sorted(ranges):
        if start >= end:
            continue
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(result[-1][1], end))
        else:
            result.append((start, end))
    return result


def subtract(ranges: Ranges, cut: Ranges) -> Ranges:
    result: Ranges = []
    for start, end in ranges:
        result += free_parts(cut, start, end)
    return result


def intersect(a: Ranges, b: Ranges) -> Ranges:
    result: Ranges = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            result.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return result


def pages(ranges) -> Ranges:
    """The whole pages the ranges touch, merged."""
    return merged(
        (start & ~(PAGE_SIZE - 1), (end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)) for start, end in ranges
    )


def total(ranges) -> int:
    return sum(r[1] - r[0] for r in ranges)


# --- what to keep ------------------------------------------------------------------------


class RecordingTarget(MemoryTarget):
    """A MemoryTarget that notes every read that succeeded: what a view needed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads: Ranges = []

    def read(self, address: int, length: int) -> bytes:
        data = super().read(address, length)
        self.reads.append((address, address + length))
        return data


@dataclass
class Plan:
    """What a dump of one level holds: the physical pages stored (`kept`, in this order
    in the file), those that are zeros, those left out with why, and the PT_LOADs
    (vaddr, paddr, filesz, memsz, flags)."""

    level: str
    ram: Ranges
    kept: Ranges
    zero: Ranges
    left_out: list[tuple[int, int, str]]
    loads: list[tuple[int, int, int, int, int]]
    problems: list[str] = field(default_factory=list)

    def left_out_bytes(self) -> dict[str, int]:
        result: dict[str, int] = {}
        for start, end, why in self.left_out:
            result[why] = result.get(why, 0) + end - start
        return result


def nonzero_pages(ram: GuestRam) -> Ranges:
    """The pages of RAM that hold anything but zeros: the touched runs, read a chunk at
    a time, a page at a time where a chunk is not all zeros."""
    found: Ranges = []
    for start, end in ram.data_runs():
        for chunk in range(start, end, SCAN_CHUNK):
            length = min(SCAN_CHUNK, end - chunk)
            data = ram.read_physical(chunk, length)
            if data == ZERO_CHUNK[:length]:
                continue
            for offset in range(0, length, PAGE_SIZE):
                if data[offset : offset + PAGE_SIZE] != ZERO_PAGE:
                    page = chunk + offset
                    if found and found[-1][1] == page:
                        found[-1] = (found[-1][0], page + PAGE_SIZE)
                    else:
                        found.append((page, page + PAGE_SIZE))
    return found


def _physical(per_cr3: list[list], virtual: Ranges) -> Ranges:
    """The physical pages behind virtual ranges (sorted, merged), where a CR3 maps them
    (each CR3's mappings sorted and disjoint, as PhysicalMemory.mappings gives them)."""
    result = []
    for mappings in per_cr3:
        starts = [m.vaddr for m in mappings]
        for start, end in virtual:
            index = max(0, bisect.bisect_right(starts, start) - 1)
            for mapping in mappings[index:]:
                if mapping.vaddr >= end:
                    break
                low, high = max(start, mapping.vaddr), min(end, mapping.vaddr + mapping.size)
                if low < high:
                    result.append((mapping.paddr + low - mapping.vaddr, mapping.paddr + high - mapping.vaddr))
    return pages(result)


def _cr3s(vcpus: list[dict[str, int]]) -> list[int]:
    found = []
    for registers in vcpus:
        cr3 = registers.get("cr3")
        if registers.get("cr0", 0) & CR0_PG and cr3 is not None and cr3 not in found:
            found.append(cr3)
    return found


class _WithoutLines(ElfImage):
    """An ELF image that looks up no source lines: the unwinder's reads are what a
    minidump needs from it, and a large app's DWARF lines take seconds to decode."""

    def source(self, address: int) -> tuple[str, int] | None:
        return None


def _backtraces(kernel: Kernel, kernel_path, app_path: str | None) -> None:
    app = None
    if app_path is not None:
        app = _WithoutLines(app_path, app_image(kernel, app_path).bias, name="app")
    backtraces(kernel, app, kernel_elf=_WithoutLines(kernel_path, 0, name="kernel"))


def _views_read(kernel: Kernel, target: RecordingTarget, app_path: str | None, problems: list[str]) -> None:
    """Run what a minidump must still answer over the guest, so `target` notes its reads."""
    views = {
        "osv-tcb": lambda: tcb_report(kernel),
        "osv-syscalls": lambda: history_report(kernel, HistoryFilter(count=0)),
        "osv-auxv": lambda: auxv_report(kernel, app_path),
        "backtraces": lambda: _backtraces(kernel, target.kernel_path, app_path),
    }
    for name, view in views.items():
        try:
            view()
        except (TargetError, DecodeError, UnwindError, SymbolsError, OSError) as error:
            problems.append(f"{name} over the guest: {error}")


def plan_dump(
    ram: GuestRam,
    cpus: CpuState,
    level: str,
    *,
    symbols,
    kernel_path: str | os.PathLike,
    app_path: str | None,
) -> Plan:
    """What a dump at `level` keeps. `symbols`: a model target for the kernel's symbols,
    layouts and enums (GDB's, or the kernel ELF's)."""
    if level not in LEVELS:
        raise DumpError(f"unknown level {level!r} (full, used or stacks)")
    problems: list[str] = []
    ram_ranges = [(r.paddr, r.end) for r in ram.ranges]
    nonzero = nonzero_pages(ram)
    cr3s = _cr3s(cpus.vcpus)
    if not cr3s:
        raise DumpError("no vCPU has paging on: dump once the kernel runs")
    per_cr3 = [list(ram.mappings(cr3)) for cr3 in cr3s]
    target = RecordingTarget(symbols, ram, cpus.vcpus, kernel_path=kernel_path)
    kernel = Kernel(target)
    classes: dict[str, Ranges] = {}
    try:
        memory = kernel_memory(kernel, ram_ranges[-1][1])
        problems += memory.problems
        classes["free"] = pages(memory.free())
        for kind in ("initrd", "heap", "kernel", "boot"):
            classes[kind] = pages((r.start, r.end) for r in memory.reserved if r.kind == kind)
    except (TargetError, DecodeError) as error:
        problems.append(f"the allocator's state is unreadable ({error}): every page kept")
    if level == "full" or not classes:
        kept = nonzero
    elif level == "used":
        kept = subtract(nonzero, merged(classes["free"] + classes["initrd"]))
    else:
        kept = intersect(nonzero, _minidump(kernel, target, ram, cr3s, per_cr3, classes, app_path, problems))
    out = subtract(nonzero, kept)
    left_out = []
    for why in ("free", "initrd", "heap"):
        part = intersect(out, classes.get(why, []))
        left_out += [(start, end, why) for start, end in part]
        out = subtract(out, part)
    left_out += [(start, end, "frames") for start, end in out]
    kept_or_zero = [(s, e, True) for s, e in kept] + [(s, e, False) for s, e in subtract(ram_ranges, nonzero)]
    loads = _loads(per_cr3, sorted(kept_or_zero))
    return Plan(level, ram_ranges, kept, subtract(ram_ranges, nonzero), sorted(left_out), loads, problems)


def _minidump(kernel, target, ram, cr3s, per_cr3, classes, app_path, problems) -> Ranges:
    """The physical pages a minidump keeps (see the module's doc)."""
    regions, region_problems = minidump_regions(kernel)
    problems += region_problems
    _views_read(kernel, target, app_path, problems)
    virtual = pages([(r.start, r.end) for r in regions] + target.reads)
    tables = [
        (table, table + PAGE_SIZE)
        for cr3 in cr3s
        for start, end in virtual
        for chunk in range(start & ~(LARGE_PAGE - 1), end, LARGE_PAGE)
        if canonical(chunk)
        for table in ram.tables_on_path(cr3, max(chunk, start))
    ]
    return merged(_physical(per_cr3, virtual) + tables + classes.get("kernel", []) + classes.get("boot", []))


def _loads(per_cr3: list[list], stored: list[tuple[int, int, bool]]) -> list[tuple[int, int, int, int, int]]:
    """(vaddr, paddr, filesz, memsz, flags) of the PT_LOADs: each run of virtual pages
    a CR3 maps onto pages that are stored (True) or zeros (False), a stored run and
    the zeros right after it in one. A virtual page keeps the first CR3's mapping."""
    starts = [s for s, _e, _k in stored]
    loads = []
    taken: Ranges = []
    for mappings in per_cr3:
        claimed = []
        for mapping in mappings:
            flags = PF_R | (PF_W if mapping.writable else 0) | (PF_X if mapping.executable else 0)
            for vstart, vend in free_parts(taken, mapping.vaddr, mapping.vaddr + mapping.size):
                claimed.append((vstart, vend))
                pstart = mapping.paddr + vstart - mapping.vaddr
                pend = pstart + vend - vstart
                pending = None  # [vaddr, paddr, filesz, memsz]
                index = max(0, bisect.bisect_right(starts, pstart) - 1)
                for start, end, is_stored in stored[index:]:
                    if start >= pend:
                        break
                    low, high = max(start, pstart), min(end, pend)
                    if low >= high:
                        continue
                    vaddr = vstart + low - pstart
                    if pending is not None and pending[0] + pending[3] == vaddr and not is_stored:
                        pending[3] += high - low
                        continue
                    if pending is not None:
                        loads.append((*pending, flags))
                    size = high - low
                    pending = [vaddr, low, size if is_stored else 0, size]
                if pending is not None:
                    loads.append((*pending, flags))
        taken = merged(taken + claimed)
    return loads


# --- writing -----------------------------------------------------------------------------


@dataclass
class Written:
    """What write_dump wrote: the dump's apparent size, the seconds from asking QEMU
    for the registers to the rename, and what the level kept and left out."""

    path: Path
    sidecar: Path
    level: str
    size: int
    seconds: float
    vcpus: int
    kept: int
    zero: int
    left_out: dict[str, int]
    problems: list[str]
    compressed: bool
    program_headers: int

    def as_dict(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data.update(path=str(self.path), sidecar=str(self.sidecar))
        return data


def _contents_note(plan: Plan) -> bytes:
    data = {
        "format": CONTENTS_FORMAT,
        "version": CONTENTS_VERSION,
        "level": plan.level,
        "ram": plan.ram,
        "kept": total(plan.kept),
        "zero": total(plan.zero),
        "left_out": plan.left_out,
        "problems": plan.problems,
    }
    return note(CONTENTS_NOTE_NAME, NT_CONTENTS, json.dumps(data, separators=(",", ":")).encode())


def write_dump(
    path: str | os.PathLike,
    *,
    monitor,
    ram_path: str,
    symbols,
    kernel_path: str | os.PathLike,
    metadata: DumpMetadata,
    level: str = DEFAULT_LEVEL,
    compress: bool = False,
    sidecar_extra: dict | None = None,
) -> Written:
    """Dump the stopped guest to path at `level`, and its sidecar PATH.json (with
    `sidecar_extra`'s keys too). `monitor`: QMP (osvgdb.monitor.Monitor); `ram_path`:
    the guest's shared RAM (osvgdb.guestram); `symbols`: see plan_dump; `metadata`:
    the sidecar without level and left_out, which this fills in. DumpError, or the
    monitor's MonitorError, when it cannot."""
    started = time.perf_counter()
    path = Path(path)
    cpus = cpu_state(monitor)
    with GuestRam(ram_path) as ram:
        plan = plan_dump(ram, cpus, level, symbols=symbols, kernel_path=kernel_path, app_path=metadata.app_path)
        metadata = dataclasses.replace(
            metadata, qemu_version=cpus.qemu_version, vcpus=len(cpus.vcpus), level=level, left_out=plan.left_out_bytes()
        )
        sidecar = write_metadata(path, metadata, sidecar_extra)
        size = _write_core(path, plan, ram, cpus, compress)
    return Written(
        path=path,
        sidecar=sidecar,
        level=level,
        size=size,
        seconds=time.perf_counter() - started,
        vcpus=len(cpus.vcpus),
        kept=total(plan.kept),
        zero=total(plan.zero),
        left_out=plan.left_out_bytes(),
        problems=plan.problems,
        compressed=compress,
        program_headers=1 + len(plan.loads),
    )


def _write_core(path: Path, plan: Plan, ram: GuestRam, cpus: CpuState, compress: bool) -> int:
    """The core at path (a temporary name, renamed); its size in bytes."""
    notes = vcpu_notes(cpus.vcpus, cpus.qemu_notes) + _contents_note(plan)
    memory_offset = core_memory_offset(len(plan.loads), len(notes))
    starts, offsets, position = [], [], memory_offset
    for start, end in plan.kept:
        starts.append(start)
        offsets.append(position)
        position += end - start
    size = position

    def file_offset(paddr: int) -> int:
        index = bisect.bisect_right(starts, paddr) - 1
        return offsets[index] + paddr - starts[index]

    loads = [
        load_header(vaddr, paddr, file_offset(paddr) if filesz else memory_offset, filesz, memsz, flags)
        for vaddr, paddr, filesz, memsz, flags in plan.loads
    ]
    prefix = core_prefix(loads, notes)
    prefix += bytes(memory_offset - len(prefix))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            sink = out
            if compress:
                sink = _compressor().stream_writer(out, size=size, closefd=False)
            sink.write(prefix)
            for start, end in plan.kept:
                for chunk in range(start, end, SCAN_CHUNK):
                    sink.write(ram.read_physical(chunk, min(SCAN_CHUNK, end - chunk)))
            if compress:
                sink.close()
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DumpError(f"{path}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def _compressor():
    try:
        import zstandard
    except ImportError:
        raise DumpError("zstandard is not installed (run scripts/bootstrap)") from None
    return zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True, write_content_size=True)
