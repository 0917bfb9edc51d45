"""osv-syscalls: the merged per-CPU syscall history, strace-style (osvgdb.model.syscalls)."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb.command import OsvCommand, add_filter_arguments, check_filters, int_arg, print_json
from osvgdb.gdb.target import Kernel
from osvgdb.model.syscalls import HistoryFilter, format_history, history_report

DEFAULT_COUNT = 50


class OsvSyscalls(OsvCommand):
    NAME = "osv-syscalls"
    SUMMARY = "Show the kernel's syscall history, strace-style, merged across CPUs."
    DETAILS = (
        "Reads every CPU's syscall_history ring (one read each) and prints the records in\n"
        "global sequence order: seq, cpu, tid, the FS base at entry, then the call as\n"
        "strace shows it, with its result, errno name and duration. A call still running is\n"
        "marked <in flight>; a record being written is <torn>, an inconsistent one <garbage>.\n"
        "Strings and buffers are the bytes the kernel captured when the call entered (inputs)\n"
        "or returned (outputs), up to 64 bytes each; bytes beyond what it kept are read from\n"
        "memory as it is now and marked /* memory now */."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-n",
            type=int_arg,
            default=DEFAULT_COUNT,
            metavar="N",
            help=f"show the last N records (default {DEFAULT_COUNT}; 0: all)",
        )
        add_filter_arguments(parser, cpu="only CPU N's ring", tid="only thread T's calls")
        parser.add_argument(
            "--name", action="append", metavar="NAME", help="only syscalls named NAME (repeatable)"
        )
        parser.add_argument(
            "--since", type=int_arg, metavar="SEQ", help="only records with seq >= SEQ"
        )
        parser.add_argument(
            "-s",
            "--string-limit",
            type=int_arg,
            default=32,
            metavar="N",
            help="show at most N bytes of strings and buffers (default 32)",
        )
        parser.add_argument(
            "--raw", action="store_true", help="arguments and results as raw hex, nothing decoded"
        )
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def complete_value(self, option: str, word: str) -> list[str] | None:
        if option == "--name":
            return sorted(n for n in Kernel.get().syscalls.numbers if n.startswith(word))
        return None

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-syscalls returns)."""
        if args.n < 0 or args.string_limit < 0:
            raise gdb.GdbError("osv-syscalls: -n and --string-limit take numbers >= 0")
        kernel = Kernel.get()
        numbers = set()
        for name in args.name or ():
            number = kernel.syscalls.number(name)
            if number is None:
                raise gdb.GdbError(f"osv-syscalls: unknown syscall name {name!r}")
            numbers.add(number)
        check_filters(args.cpu, args.tid, numbers)
        wanted = HistoryFilter(
            count=args.n,
            cpu=args.cpu,
            tid=args.tid,
            numbers=numbers,
            since=args.since,
            string_limit=args.string_limit,
            raw=args.raw,
        )
        return history_report(kernel, wanted)

    def run(self, args: argparse.Namespace) -> None:
        report = self.data(args)
        if args.json:
            print_json(report)
        else:
            gdb.write("\n".join(format_history(report)) + "\n")
