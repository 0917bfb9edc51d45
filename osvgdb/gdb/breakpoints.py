"""osv-break-syscall: stop inside the kernel when the app makes given syscalls.

GDB's `catch syscall` cannot see a kernel behind QEMU's gdbstub, so this
breaks on the kernel's dispatch path instead, where the call's history record
is already entered (in flight).  stop() reads that record, the newest in this
CPU's ring (two small reads), and stops only for the wanted numbers, so
breakpoint conditions never depend on optimized-out arguments.
"""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb.command import OsvCommand, report_internal_error
from osvgdb.gdb.target import Kernel, TargetError, selected_vcpu

# Where a syscall's record is entered and its handler not yet run (kernel/core/syscall.c).
DISPATCH_LOCATIONS = ("dispatch",)


class SyscallBreakpoint(gdb.Breakpoint):
    def __init__(self, location: str, numbers: set[int], names: list[str], temporary: bool):
        super().__init__(location, gdb.BP_BREAKPOINT, temporary=temporary)
        self.numbers = numbers
        self.names = names

    def stop(self) -> bool:
        try:
            kernel = Kernel.get()
            index = kernel.cpu_index(selected_vcpu().gs_base)
            record = kernel.newest_record(index) if index is not None else None
        except TargetError:
            return False
        except Exception as error:
            gdb.write(f"{report_internal_error('osv-break-syscall', error)}\n")
            return True
        if record is None or record.state != "in-flight":
            return False
        if self.numbers and record.nr not in self.numbers:
            return False
        name = kernel.syscalls.name(record.nr)
        gdb.write(f"osv: CPU {index} tid {record.tid} in syscall {name} (seq {record.seq})\n")
        return True


class OsvBreakSyscall(OsvCommand):
    NAME = "osv-break-syscall"
    SUMMARY = "Stop in the kernel when the app makes one of the named syscalls (all if none)."
    DETAILS = (
        "A breakpoint on the kernel's syscall dispatch that stops only when this CPU's newest\n"
        "history record is in flight with one of the given syscalls: osv-syscalls then shows\n"
        "that call <in flight>. Delete it like any breakpoint."
    )
    COMMAND_CLASS = gdb.COMMAND_BREAKPOINTS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("names", nargs="*", metavar="NAME", help="syscall names or numbers")
        parser.add_argument("-t", "--temporary", action="store_true", help="stop once only")

    def complete(self, text: str, word: str | None) -> list[str]:
        try:
            names = Kernel.get().syscalls.numbers
        except TargetError:
            return []
        return sorted(n for n in names if n.startswith(word or ""))

    def run(self, args: argparse.Namespace) -> None:
        kernel = Kernel.get()
        numbers = set()
        for name in args.names:
            number = kernel.syscalls.number(name)
            if number is None:
                raise gdb.GdbError(f"osv-break-syscall: unknown syscall {name!r}")
            numbers.add(number)
        bp = None
        for location in DISPATCH_LOCATIONS:
            try:
                bp = SyscallBreakpoint(location, numbers, args.names, args.temporary)
            except gdb.error:
                continue
            if not bp.pending:
                break
            bp.delete()
            bp = None
        if bp is None:
            raise gdb.GdbError("osv-break-syscall: the kernel has no syscall dispatch function")
        what = ", ".join(args.names) if args.names else "any syscall"
        gdb.write(f"osv: breakpoint {bp.number} stops on {what}\n")
