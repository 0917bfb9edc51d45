"""osv-tcb: per-CPU FS/GS state and every thread's TCB, with a verdict."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.decode.tcb import VERDICT_RULES, CpuInfo, ThreadInfo
from osvgdb.gdb.command import OsvCommand, int_arg, print_json
from osvgdb.gdb.target import Kernel


def _hex(value: int | None) -> str:
    return "-" if value is None else f"{value:#x}"


def _symbol(pc: int) -> str:
    """<function+offset> from kernel or app symbols (minimal symbols too), or nothing."""
    try:
        text = gdb.format_address(pc)
    except (gdb.error, RuntimeError, AttributeError):
        return ""
    start = text.find(" <")
    return text[start:] if start >= 0 else ""


def format_cpu(cpu: CpuInfo, threads: list[ThreadInfo]) -> list[str]:
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
        f"  rip {cpu.rip:#x}{_symbol(cpu.rip)}, rsp {cpu.rsp:#x}",
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


class OsvTcb(OsvCommand):
    NAME = "osv-tcb"
    SUMMARY = "Show each CPU's GS/FS base and thread control block, and every thread's TCB."
    DETAILS = (
        "For every CPU: GS base and which cpus[i] it is, tcb_data.kernel_tcb and whose it is,\n"
        "the FS base register and whose TCB it is, kernel_tcb_counter, where the CPU is\n"
        "(app, syscall, interrupt, entry, idle, kernel, panicked), and a verdict.\n"
        "Then every thread: tid, name, state, cpu, TCB, self check, tls_base, app_tcb,\n"
        "counter and syscall stack.\n\n" + VERDICT_RULES
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cpu", type=int_arg, metavar="N", help="only CPU N (cpus[N])")
        parser.add_argument("--tid", type=int_arg, metavar="T", help="only thread T")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def data(self, args: argparse.Namespace) -> dict:
        """What --json prints (and -osv-tcb answers)."""
        _, cpus, threads = self._selected(args)
        return {"cpus": [c.as_dict() for c in cpus], "threads": [t.as_dict() for t in threads]}

    def _selected(self, args: argparse.Namespace) -> tuple[Kernel, list[CpuInfo], list[ThreadInfo]]:
        kernel = Kernel.get()
        threads = kernel.threads()
        cpus = kernel.cpus(threads)
        if args.cpu is not None:
            cpus = [c for c in cpus if c.index == args.cpu]
            if not cpus:
                raise gdb.GdbError(f"osv-tcb: no CPU {args.cpu}")
        if args.tid is not None:
            threads = [t for t in threads if t.tid == args.tid]
            if not threads:
                raise gdb.GdbError(f"osv-tcb: no thread with tid {args.tid}")
            if args.cpu is None:
                cpus = [c for c in cpus if c.current_tid == args.tid]
        return kernel, cpus, threads

    def run(self, args: argparse.Namespace) -> None:
        if args.json:
            print_json(self.data(args))
            return
        kernel, cpus, threads = self._selected(args)
        everyone = kernel.threads() if args.tid is not None else threads
        lines = []
        for cpu in cpus:
            lines += format_cpu(cpu, everyone)
        lines += format_threads(threads)
        gdb.write("\n".join(lines) + "\n")
