"""osv-syscalls: the merged per-CPU syscall history, strace-style."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gdb

from osvgdb.decode.args import U64, CallFormatter
from osvgdb.decode.history import SyscallRecord
from osvgdb.decode.syscalls import SyscallTable
from osvgdb.gdb.command import OsvCommand, check_filters, int_arg, print_json
from osvgdb.gdb.target import Kernel, reader

DEFAULT_COUNT = 50


@dataclass(frozen=True)
class CallText:
    text: str  # strace's line: write(1, "hi\n", 3) = 3
    shown: list[str]  # each argument as shown
    strings: dict[int, str]  # decoded strings and buffers, by argument
    memory_now: list[int]  # arguments (partly) read from memory as it is now


def call_text(record: SyscallRecord, name: str, formatter: CallFormatter) -> CallText:
    """strace's line for one record, from its captures where they cover the arguments."""
    if record.state in ("torn", "garbage"):
        return CallText(f"{name}(?) <{record.state}: {record.problem}>", [], {}, [])
    ret = record.ret if record.returned else None
    shown, strings = formatter.arguments(name, record.args, ret, captures=record.captures)
    call = f"{name}({', '.join(shown)})"
    if record.returned:
        text = f"{call} = {formatter.result(name, record.ret)}"
    elif name in ("exit", "exit_group"):
        text = f"{call} = ?"
    else:
        text = f"{call} = ? <in flight>"
    return CallText(text, shown, strings, list(formatter.memory_now))


def describe(
    record: SyscallRecord, table: SyscallTable, formatter: CallFormatter, tsc_per_ms: int
) -> dict[str, object]:
    """One record as the command shows it, text and fields."""
    name = table.name(record.nr)
    call = call_text(record, name, formatter)
    data = record.as_dict()
    data.update(
        name=name,
        args=[a & U64 for a in record.args],
        text=call.text,
        shown_args=call.shown,
        strings={str(k): v for k, v in call.strings.items()},
        memory_now=call.memory_now,
        result=formatter.result(name, record.ret) if record.returned else None,
        duration_ms=record.duration_ms(tsc_per_ms) if record.state == "done" else None,
    )
    return data


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    return f" <{ms * 1000:.1f} us>" if ms < 1 else f" <{ms:.3f} ms>"


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
        parser.add_argument("--cpu", type=int_arg, metavar="N", help="only CPU N's ring")
        parser.add_argument("--tid", type=int_arg, metavar="T", help="only thread T's calls")
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

    def data(self, args: argparse.Namespace) -> dict:
        """What --json prints (and -osv-syscalls answers)."""
        if args.n < 0 or args.string_limit < 0:
            raise gdb.GdbError("osv-syscalls: -n and --string-limit take numbers >= 0")
        kernel = Kernel.get()
        table = kernel.syscalls
        numbers = set()
        for name in args.name or ():
            number = table.number(name)
            if number is None:
                raise gdb.GdbError(f"osv-syscalls: unknown syscall name {name!r}")
            numbers.add(number)
        check_filters(args.cpu, args.tid, numbers)
        records, errors = kernel.history([args.cpu] if args.cpu is not None else None)
        if args.tid is not None:
            records = [r for r in records if r.tid == args.tid]
        if numbers:
            records = [r for r in records if r.nr in numbers]
        if args.since is not None:
            records = [r for r in records if r.seq >= args.since]
        if args.n:
            records = records[-args.n :]
        formatter = CallFormatter(reader, limit=args.string_limit, raw=args.raw)
        tsc_per_ms = kernel.tsc_per_ms()
        described = [describe(r, table, formatter, tsc_per_ms) for r in records]
        return {"records": described, "errors": errors}

    def run(self, args: argparse.Namespace) -> None:
        data = self.data(args)
        if args.json:
            print_json(data)
            return
        lines = [f"osv-syscalls: {error}" for error in data["errors"]]
        for d in data["records"]:
            lines.append(
                f"{d['seq']:>6} cpu{d['cpu']} tid{d['tid']} fs={d['fs_base']:#x} "
                f"{d['text']}{_duration(d['duration_ms'])}"
            )
        if not data["records"]:
            lines.append("osv-syscalls: no records")
        gdb.write("\n".join(lines) + "\n")
