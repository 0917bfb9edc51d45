"""osv-break: stop on the kernel's syscall, interrupt and exception entry paths.

GDB's `catch syscall` cannot see a kernel behind QEMU's gdbstub, so these are
breakpoints on syscall_handler / syscall_exit / trap_handler (osvgdb.gdb.events)
whose stop() decodes the frame in one read, applies the filters and prints the
decoded event when it stops.  The same hooks serve Python scripts
(osvgdb.gdb.api).
"""

from __future__ import annotations

import argparse
import json

import gdb

from osvgdb.decode import DecodeError
from osvgdb.gdb import conditions, events
from osvgdb.gdb.api import SyscallHook, TrapHook
from osvgdb.gdb.command import OsvCommand, int_arg
from osvgdb.gdb.events import Event, SyscallEvent, TrapEvent
from osvgdb.gdb.target import Kernel, TargetError

NAME = "osv-break"


class _Announce:
    """Shared by both hook kinds: the --if condition and the stop line (or JSON object)."""

    condition = None
    as_json = False

    def _announce(self, event: Event) -> bool:
        if self.condition is not None and not self.condition(event):
            return False
        if self.as_json:
            gdb.write(json.dumps(event.as_dict()) + "\n")
        else:
            gdb.write(f"osv: {event.who()}: {event.text}\n")
        return True


class BreakSyscall(_Announce, SyscallHook):
    def on_entry(self, event: SyscallEvent) -> bool:
        return self._announce(event)

    def on_exit(self, event: SyscallEvent) -> bool:
        return self._announce(event)


class BreakTrap(_Announce, TrapHook):
    def on_trap(self, event: TrapEvent) -> bool:
        return self._announce(event)


class OsvBreak(OsvCommand):
    NAME = NAME
    SUMMARY = "Stop when the app makes a syscall, or at an interrupt or exception."
    DETAILS = (
        "osv-break syscall NAME|NR... [--exit]  at the call's entry (syscall_handler), or its\n"
        "                                       return (syscall_exit) showing the result\n"
        "osv-break interrupt VECTOR|NAME...     at trap_handler: timer, reschedule, tlb-shootdown\n"
        "osv-break exception NAME|VECTOR...     page-fault (pf), gp, ud, de, ... (0..31)\n"
        "No names: every syscall / interrupt / exception. The stop shows the decoded call\n"
        '(write(1, "hi\\n", 3) = 3) or the vector, error code, rip, CR2 and whether the CPU\n'
        "came from app code, a syscall or the kernel; --json prints it as one JSON object.\n"
        "--if takes a Python expression over the event: nr, name, args, ret, tid, cpu,\n"
        "fs_base, counter, rip, rsp, vector, error_code, cr2, came_from, arg_string(i),\n"
        "read(addr, n). Each is an ordinary breakpoint: `info breakpoints`, `delete N`."
    )
    COMMAND_CLASS = gdb.COMMAND_BREAKPOINTS

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
        for kind, what in (
            ("syscall", "syscall names or numbers"),
            ("interrupt", "vectors (32..255) or the kernel's names: timer, reschedule, ..."),
            ("exception", "vectors (0..31) or names: page-fault/pf, gp, ud, ..."),
        ):
            sub = kinds.add_parser(kind, help=f"stop at {kind}s", prog=f"{NAME} {kind}")
            sub.add_argument("names", nargs="*", metavar="NAME", help=what)
            if kind == "syscall":
                sub.add_argument(
                    "--exit", action="store_true", help="stop at the return, with the result"
                )
            sub.add_argument("--tid", type=int_arg, metavar="T", help="only thread T")
            sub.add_argument("--cpu", type=int_arg, metavar="N", help="only on CPU N")
            sub.add_argument(
                "--if", dest="condition", metavar="PYEXPR", help="only when this is true"
            )
            sub.add_argument("-t", "--temporary", action="store_true", help="stop once only")
            sub.add_argument(
                "--json", action="store_true", help="each stop as one JSON object, not a line"
            )

    def complete(self, text: str, word: str | None) -> list[str]:
        words = text.split()
        if not words or (len(words) == 1 and not text.endswith(" ")):
            return [k for k in ("syscall", "interrupt", "exception") if k.startswith(word or "")]
        if (word or "").startswith("-"):
            return super().complete(text, word)
        kind = words[0]
        if kind == "syscall":
            try:
                names = list(Kernel.get().syscalls.numbers)
            except TargetError:
                return []
        else:
            try:
                names = Kernel.get().vectors.names(exceptions=kind == "exception")
            except TargetError:
                return []
        return sorted(n for n in names if n.startswith(word or ""))

    def run(self, args: argparse.Namespace) -> None:
        condition = None
        if args.condition is not None:
            try:
                condition = conditions.compile_condition(args.condition)
            except SyntaxError as error:
                raise gdb.GdbError(f"{NAME}: --if: {error.msg}: {args.condition!r}") from None
        common = dict(tid=args.tid, cpu=args.cpu, temporary=args.temporary, who=NAME)
        if args.kind == "syscall":
            try:
                hook = BreakSyscall(*args.names, entry=not args.exit, exit=args.exit, **common)
            except TargetError as error:
                raise gdb.GdbError(f"{NAME}: {error}") from None
            what = ", ".join(args.names) if args.names else "any syscall"
            what += " returns" if args.exit else ""
        else:
            exceptions = args.kind == "exception"
            try:
                vectors = [Kernel.get().vectors.parse(n, exceptions=exceptions) for n in args.names]
            except (DecodeError, TargetError) as error:
                raise gdb.GdbError(f"{NAME}: {error}") from None
            if not vectors:
                vectors = list(range(32)) if exceptions else list(range(32, 256))
            hook = BreakTrap(*vectors, **common)
            what = ", ".join(args.names) if args.names else f"any {args.kind}"
        hook.condition = condition
        hook.as_json = args.json
        if args.condition:
            what += f" if {args.condition}"
        numbers = ", ".join(str(n) for n in hook.numbers)
        gdb.write(f"osv: breakpoint {numbers} stops on {what}\n")
