"""osv-syscalls: the merged per-CPU syscall history, strace-style (osvgdb.model.syscalls)."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb.command import OsvCommand, int_arg, print_json
from osvgdb.gdb.target import Kernel
from osvgdb.model.syscalls import (
    add_history_arguments,
    format_history,
    history_filter,
    history_report,
)


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
        "memory as it is now and marked /* memory now */.\n"
        "A vCPU stopped at a syscall's entry (osv-break syscall) is in a call the history has\n"
        "no record of yet: it is listed after the records as `entering`, its arguments read\n"
        "now (which is what the call will read)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_history_arguments(parser, int_arg)
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def complete_value(self, option: str, word: str) -> list[str] | None:
        if option == "--name":
            return sorted(n for n in Kernel.get().syscalls.numbers if n.startswith(word))
        return None

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-syscalls returns)."""
        kernel = Kernel.get()
        return history_report(kernel, history_filter(kernel, args))

    def run(self, args: argparse.Namespace) -> None:
        report = self.data(args)
        if args.json:
            print_json(report)
        else:
            gdb.write("\n".join(format_history(report)) + "\n")
