"""osv-tcb's report: every vCPU's FS/GS state with its verdict, and every thread's TCB.

`tcb_report` is the data (osv-tcb --json, MI's -osv-tcb, the TUI's panes, triage);
`format_tcb` its text, with `symbolize(pc)` naming code addresses where the front
end can (GDB's format_address; nothing offline without symbols).
"""

from __future__ import annotations

from collections.abc import Callable

from osvgdb.decode.tcb import CpuInfo, ThreadInfo
from osvgdb.model.kernel import Kernel
from osvgdb.model.target import TargetError

Symbolize = Callable[[int], str]


def tcb_report(
    kernel: Kernel, cpu: int | None = None, tid: int | None = None
) -> tuple[list[CpuInfo], list[ThreadInfo], list[ThreadInfo]]:
    """(the CPUs shown, the threads shown, every thread): --cpu N shows cpus[N] only,
    --tid T thread T and the CPU it runs on. TargetError for a CPU or tid not there."""
    everyone = kernel.threads()
    cpus = kernel.cpus(everyone)
    threads = everyone
    if cpu is not None:
        cpus = [c for c in cpus if c.index == cpu]
        if not cpus:
            raise TargetError(f"no CPU {cpu}")
    if tid is not None:
        threads = [t for t in everyone if t.tid == tid]
        if not threads:
            raise TargetError(f"no thread with tid {tid}")
        if cpu is None:
            cpus = [c for c in cpus if c.current_tid == tid]
    return cpus, threads, everyone


def tcb_data(cpus: list[CpuInfo], threads: list[ThreadInfo]) -> dict[str, object]:
    return {"cpus": [c.as_dict() for c in cpus], "threads": [t.as_dict() for t in threads]}


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def format_cpu(cpu: CpuInfo, threads: list[ThreadInfo], symbolize: Symbolize) -> list[str]:
    name = f"CPU {cpu.index}" if cpu.index is not None else "vCPU ?"
    head = f"{name} (GDB thread {cpu.vcpu}): {cpu.where}, {cpu.verdict}"
    if cpu.index is None:
        return [head, f"  GS base {_hex(cpu.gs_base)}: no CPU's tcb_data", ""]
    by_tid = {t.tid: t for t in threads}
    owner = by_tid.get(cpu.kernel_tcb_owner) if cpu.kernel_tcb_owner is not None else None
    owner_text = f"tid {owner.tid} {owner.name}" if owner else "no thread's TCB"
    current = by_tid.get(cpu.current_tid) if cpu.current_tid is not None else None
    current_text = f"tid {current.tid} {current.name}" if current else _hex(cpu.current)
    counter = "-" if cpu.counter is None else str(cpu.counter)
    return [
        head,
        f"  GS base    {cpu.gs_base:#x} = &cpus[{cpu.index}].tcb_data, current {current_text}",
        f"  kernel_tcb {_hex(cpu.kernel_tcb)} ({owner_text}), kernel_tcb_counter {counter}",
        f"  FS base    {cpu.fs_base:#x}: {cpu.fs_owner}",
        f"  rip {cpu.rip:#x}{symbolize(cpu.rip)}, rsp {cpu.rsp:#x}",
        "",
    ]


THREAD_COLUMNS = (
    "TID",
    "NAME",
    "STATE",
    "CPU",
    "TCB",
    "SELF",
    "TLS_BASE",
    "APP_TCB",
    "COUNT",
    "SYSCALL STACK",
)


def format_threads(threads: list[ThreadInfo]) -> list[str]:
    rows = [THREAD_COLUMNS]
    notes = []
    for t in threads:
        if t.tcb_self is None:
            self_check = "?"
        else:
            self_check = "ok" if t.tcb_self == t.tcb else "BAD"
        stack = (
            f"{t.syscall_stack_low:#x}-{t.syscall_stack_high:#x}" if t.syscall_stack_low else "-"
        )
        rows.append(
            (
                str(t.tid),
                t.name,
                t.state,
                str(t.cpu),
                _hex(t.tcb),
                self_check,
                _hex(t.tls_base),
                _hex(t.app_tcb) if t.app_tcb else "-",
                "-" if t.counter is None else str(t.counter),
                stack,
            )
        )
        notes += [f"  tid {t.tid}: {problem}" for problem in t.problems]
    widths = [max(len(row[i]) for row in rows) for i in range(len(THREAD_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines + notes


def format_tcb(
    cpus: list[CpuInfo], threads: list[ThreadInfo], everyone: list[ThreadInfo], symbolize: Symbolize
) -> list[str]:
    lines = []
    for cpu in cpus:
        lines += format_cpu(cpu, everyone, symbolize)
    return lines + format_threads(threads)
