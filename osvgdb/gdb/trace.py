"""osv-trace: print each syscall and its result as the guest runs, like strace.

Two shared silent breakpoints (syscall_handler and syscall_exit, see
osvgdb.gdb.events) whose stop() returns False: the guest never stops for them,
each call costs two breakpoint round trips.  A call prints when it returns, as
the kernel's own --strace does; exit and exit_group (which never return) print
at their entry with `= ?`.
"""

from __future__ import annotations

import argparse
import json

import gdb

from osvgdb.gdb import events
from osvgdb.gdb.api import syscall_numbers
from osvgdb.gdb.command import OsvCommand, int_arg
from osvgdb.gdb.events import Event, SyscallEvent
from osvgdb.gdb.target import TargetError

NAME = "osv-trace"


class SyscallTrace:
    """The filters and output of one `osv-trace syscalls`."""

    def __init__(
        self,
        numbers: set[int],
        tid: int | None,
        cpu: int | None,
        limit: int,
        raw: bool,
        as_json: bool,
    ):
        self.numbers, self.tid, self.cpu = numbers, tid, cpu
        self.limit, self.raw, self.as_json = limit, raw, as_json
        self.count = 0
        self.tokens: list[int] = []

    def start(self) -> None:
        events.need_entries()
        self.tokens = [
            events.hub.subscribe("syscall-entry", self.on_entry),
            events.hub.subscribe("syscall-exit", self.on_exit),
        ]

    def stop(self) -> None:
        for token in self.tokens:
            events.hub.unsubscribe(token)
        if self.tokens:
            events.release_entries()
        self.tokens = []

    def wanted(self, event: SyscallEvent) -> bool:
        if event.nr is None or (self.numbers and event.nr not in self.numbers):
            return False
        if self.cpu is not None and event.cpu != self.cpu:
            return False
        return self.tid is None or event.tid == self.tid

    def on_entry(self, event: Event) -> bool:
        assert isinstance(event, SyscallEvent)
        if event.name in events.NO_RETURN and self.wanted(event):
            self.show(event)
        return False

    def on_exit(self, event: Event) -> bool:
        assert isinstance(event, SyscallEvent)
        if self.wanted(event):
            self.show(event)
        return False

    def show(self, event: SyscallEvent) -> None:
        self.count += 1
        text = event.call_text(self.limit, self.raw)
        if self.as_json:
            data = event.as_dict()
            data["text"] = text
            line = json.dumps(data)
        else:
            cpu = f"{event.entry_cpu}" if event.entry_cpu is not None else "?"
            if event.cpu != event.entry_cpu:
                cpu += f">{event.cpu}"
            line = f"[cpu{cpu} tid{event.tid}] {text}"
        gdb.write(line + "\n")
        gdb.flush()


_active: SyscallTrace | None = None


class OsvTrace(OsvCommand):
    NAME = NAME
    SUMMARY = "Print each syscall and its result as the guest runs (strace, live)."
    DETAILS = (
        "osv-trace syscalls [NAME...] [--tid T] [--cpu N] [-s N] [--raw] [--json]\n"
        "    from now on, print `[cpuC tidT] name(args) = result` as each call returns\n"
        "    (exit/exit_group at their entry); `cpuA>B` when the call entered on A and\n"
        "    returned on B. The guest does not stop; ^C interrupts it as usual.\n"
        "osv-trace off       stop tracing\n"
        "osv-trace status    what is traced\n"
        "Each traced call costs two breakpoint round trips (scripts/benchmark measures\n"
        "them); osv-syscalls reads the kernel's own history at no cost to the guest."
    )
    COMMAND_CLASS = gdb.COMMAND_RUNNING

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        what = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
        syscalls = what.add_parser("syscalls", help="trace syscalls", prog=f"{NAME} syscalls")
        syscalls.add_argument("names", nargs="*", metavar="NAME", help="only these syscalls")
        syscalls.add_argument("--tid", type=int_arg, metavar="T", help="only thread T")
        syscalls.add_argument("--cpu", type=int_arg, metavar="N", help="only calls on CPU N")
        syscalls.add_argument(
            "-s",
            "--string-limit",
            type=int_arg,
            default=events.STRING_LIMIT,
            metavar="N",
            help=f"show at most N bytes of strings and buffers (default {events.STRING_LIMIT})",
        )
        syscalls.add_argument("--raw", action="store_true", help="arguments as raw hex")
        syscalls.add_argument("--json", action="store_true", help="one JSON object per call")
        what.add_parser("off", help="stop tracing", prog=f"{NAME} off")
        status = what.add_parser("status", help="what is traced", prog=f"{NAME} status")
        status.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> None:
        global _active
        if args.what == "off":
            if _active is None:
                gdb.write("osv-trace: not tracing\n")
                return
            _active.stop()
            gdb.write(f"osv-trace: off after {_active.count} calls\n")
            _active = None
            return
        if args.what == "status":
            data = {
                "tracing": _active is not None,
                "calls": _active.count if _active else 0,
                "names": sorted(_active.numbers) if _active else [],
            }
            if args.json:
                gdb.write(json.dumps(data) + "\n")
            else:
                state = f"on, {data['calls']} calls so far" if _active else "off"
                gdb.write(f"osv-trace: {state}\n")
            return
        if args.string_limit < 0:
            raise gdb.GdbError(f"{NAME}: -s takes a number >= 0")
        try:
            numbers = syscall_numbers(args.names)
        except TargetError as error:
            raise gdb.GdbError(f"{NAME}: {error}") from None
        if _active is not None:
            _active.stop()
        _active = SyscallTrace(numbers, args.tid, args.cpu, args.string_limit, args.raw, args.json)
        _active.start()
        what = ", ".join(args.names) if args.names else "every syscall"
        gdb.write(f"osv-trace: tracing {what} (osv-trace off to stop)\n")
