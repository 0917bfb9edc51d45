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
from osvgdb.decode import frames as frames_decode
from osvgdb.gdb import conditions
from osvgdb.gdb.api import SyscallHook, TrapHook, syscall_numbers
from osvgdb.gdb.command import OsvCommand, add_filter_arguments, check_filters
from osvgdb.gdb.events import Event, SyscallEvent, TrapEvent
from osvgdb.gdb.target import Kernel, TargetError

NAME = "osv-break"


class _Announce:
    """Shared by both hook kinds: the --if condition and the stop line (or JSON object)."""

    condition = None
    as_json = False
    label = NAME  # with the breakpoint's number once it has one: `osv-break 2`

    def _announce(self, event: Event) -> bool:
        try:
            wanted = self.condition is None or self.condition(event)
        except conditions.ConditionError as error:
            # The user's mistake, not ours: say so, and stop so it is seen (as GDB
            # stops when a breakpoint condition cannot be evaluated).
            gdb.write(f"{self.label}: {error}\n", gdb.STDERR)
            wanted = True
        if not wanted:
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
        "read(addr, n). A hit where that expression raises stops, with one line naming it\n"
        "(osv-break 2: --if 'args[9] == 1': IndexError: ...), as GDB stops when it cannot\n"
        "evaluate a condition. Filters that could never match (a CPU the guest lacks, a\n"
        "tid below 0, or 1 for syscalls, a number past the syscall table) are refused.\n"
        "Each is an ordinary breakpoint: `info breakpoints`, `delete N`."
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
            add_filter_arguments(sub, cpu="only on CPU N", tid="only thread T")
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
            numbers = _syscall_numbers(args.names)
            check_filters(args.cpu, args.tid, numbers)
            hook = BreakSyscall(*numbers, entry=not args.exit, exit=args.exit, **common)
            table = Kernel.get().syscalls
            words = [table.name(n) for n in numbers]
        else:
            exceptions = args.kind == "exception"
            try:
                vectors = [Kernel.get().vectors.parse(n, exceptions=exceptions) for n in args.names]
            except (DecodeError, TargetError) as error:
                raise gdb.GdbError(f"{NAME}: {error}") from None
            check_filters(args.cpu, args.tid)
            words = [_vector_word(v) for v in vectors]
            if not vectors:
                vectors = list(range(32)) if exceptions else list(range(32, 256))
            hook = BreakTrap(*vectors, **common)
        hook.condition = condition
        hook.as_json = args.json
        hook.label = f"{NAME} {', '.join(str(n) for n in hook.numbers)}"
        gdb.write(f"{hook.label}: {_command_text(args, words)}\n")


def _syscall_numbers(names: list[str]) -> list[int]:
    """Each name's number, in the order given (TargetError names an unknown one)."""
    numbers: list[int] = []
    for name in names:
        (number,) = syscall_numbers([name])
        if number not in numbers:
            numbers.append(number)
    return numbers


def _vector_word(vector: int) -> str:
    """A vector as osv-break takes it back: its name, or its number if it has none."""
    vectors = Kernel.get().vectors
    named = vector in frames_decode.EXCEPTIONS or vector in vectors.interrupts
    return vectors.name(vector) if named else str(vector)


def _command_text(args: argparse.Namespace, words: list[str]) -> str:
    """What the breakpoint stops on, as the osv-break arguments that say it:
    `syscall write --exit --tid 1 --cpu 0 --if 'args[0] == 1'`."""
    parts = [args.kind, *(words or ["(any)"])]
    if getattr(args, "exit", False):
        parts.append("--exit")
    if args.tid is not None:
        parts.append(f"--tid {args.tid}")
    if args.cpu is not None:
        parts.append(f"--cpu {args.cpu}")
    if args.condition is not None:
        parts.append(conditions.option_text(args.condition))
    if args.temporary:
        parts.append("-t")
    if args.json:
        parts.append("--json")
    return " ".join(parts)
