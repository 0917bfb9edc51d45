"""osv-tcb's report: every vCPU's FS/GS state with its verdict, and every thread's TCB.

`tcb_report` is the data (osv-tcb --json, MI's -osv-tcb, the TUI's panes, triage);
`format_tcb` its text, with `symbolize(pc)` naming code addresses where the front
end can (GDB's format_address; nothing offline without symbols).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from osvgdb.decode.args import signal_name
from osvgdb.decode.tcb import CpuInfo, ThreadInfo
from osvgdb.model.kernel import Kernel
from osvgdb.model.target import TargetError

Symbolize = Callable[[int], str]
PROTOCOL_TEXT = {
    "counter": "counter (the seed's kernel_tcb_counter)",
    "compare": "compare (OSv's merged design: %fs:0 against the kernel TCB, no counter)",
    "lazy": "lazy (counter, but getpid, getppid, gettid, clock_gettime leave FS alone)",
}


@dataclass
class TcbReport:
    cpus: list[CpuInfo]  # the CPUs shown
    threads: list[ThreadInfo]  # the threads shown
    everyone: list[ThreadInfo]  # every thread (to name a CPU's owner)
    panic: dict[str, object] | None  # the kernel's panic_report, if it panicked
    protocol: str = "counter"  # the FS-base protocol the kernel runs (--fs-protocol)


def tcb_report(kernel: Kernel, cpu: int | None = None, tid: int | None = None) -> TcbReport:
    """--cpu N shows cpus[N] only, --tid T thread T and the CPU it runs on.
    TargetError for a CPU or tid not there."""
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
    return TcbReport(cpus, threads, everyone, kernel.panic(), kernel.fs_protocol())


def tcb_data(report: TcbReport) -> dict[str, object]:
    """What --json prints: {"fs_protocol": "counter", "cpus": [...], "threads": [...],
    "panic": {...} after a panic}."""
    data: dict[str, object] = {
        "fs_protocol": report.protocol,
        "cpus": [c.as_dict() for c in report.cpus],
        "threads": [t.as_dict() for t in report.threads],
    }
    if report.panic is not None:
        data["panic"] = report.panic
    return data


def format_panic(panic: dict[str, object], symbolize: Symbolize) -> list[str]:
    """The kernel's own account of its panic, as the console printed it."""
    lines = [f"kernel panic on CPU {panic['cpu']}: {panic['message']}"]
    if "registers" in panic:
        registers: dict = panic["registers"]  # type: ignore[assignment]
        rip = registers["rip"]
        lines.append(
            f"  vector {panic['vector']} ({panic['vector_name']}), error {panic['error_code']:#x}, "
            f"rip {rip:#x}{symbolize(rip)}, rsp {registers['rsp']:#x}, cr2 {panic['cr2']:#x}"
        )
        lines.append(
            f"  fs_base {panic['fs_base']:#x}, kernel_tcb_counter {panic['kernel_tcb_counter']}"
        )
    return lines + [""]


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def format_cpu(cpu: CpuInfo, threads: list[ThreadInfo], symbolize: Symbolize) -> list[str]:
    name = f"CPU {cpu.index}" if cpu.index is not None else "vCPU ?"
    where = f"{cpu.where} (lazy's fast path, FS the app's)" if cpu.fast_path else cpu.where
    head = f"{name} (GDB thread {cpu.vcpu}): {where}, {cpu.verdict}"
    if cpu.index is None:
        return [head, f"  GS base {_hex(cpu.gs_base)}: no CPU's tcb_data", ""]
    by_tid = {t.tid: t for t in threads}
    owner = by_tid.get(cpu.kernel_tcb_owner) if cpu.kernel_tcb_owner is not None else None
    owner_text = f"tid {owner.tid} {owner.name}" if owner else "no thread's TCB"
    current = by_tid.get(cpu.current_tid) if cpu.current_tid is not None else None
    current_text = f"tid {current.tid} {current.name}" if current else _hex(cpu.current)
    counter = "-" if cpu.counter is None else str(cpu.counter)
    # Said only when non-zero: in app code, or a CPU idle, that is a bug.
    preempt = [f"  preempt_count {cpu.preempt_count}: spin_lock held, no preemption"] if cpu.preempt_count else []
    return [
        head,
        f"  GS base    {cpu.gs_base:#x} = &cpus[{cpu.index}].tcb_data, current {current_text}",
        f"  kernel_tcb {_hex(cpu.kernel_tcb)} ({owner_text}), kernel_tcb_counter {counter}",
        f"  FS base    {cpu.fs_base:#x}: {cpu.fs_owner}",
        *preempt,
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
        if t.in_signal:
            notes.append(
                f"  tid {t.tid}: in a {signal_name(t.in_signal)} handler "
                f"(signal frame {_hex(t.signal_frame)})"
            )
        notes += [f"  tid {t.tid}: {problem}" for problem in t.problems]
    widths = [max(len(row[i]) for row in rows) for i in range(len(THREAD_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines + notes


def format_tcb(report: TcbReport, symbolize: Symbolize) -> list[str]:
    lines = format_panic(report.panic, symbolize) if report.panic is not None else []
    lines.append(f"FS-base protocol: {PROTOCOL_TEXT.get(report.protocol, report.protocol)}")
    lines.append("")
    for cpu in report.cpus:
        lines += format_cpu(cpu, report.everyone, symbolize)
    return lines + format_threads(report.threads)
