"""The syscall history as the debugger shows it, and the one strace-line renderer.

`render_call` is the only place a call becomes strace's line; records of the
history (osv-syscalls, osv-trace, fscheck's explanations) and the events at a
breakpoint (osv-break, the script API) all go through it.  `history_report` is
what osv-syscalls prints, as data (its --json, MI's -osv-syscalls, the TUI's
pane, triage's report); `format_history` is its text.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

from osvgdb.decode.args import U64, CallFormatter, Capture
from osvgdb.decode.frames import decode_syscall_frame
from osvgdb.decode.history import SyscallRecord
from osvgdb.model.filters import FilterError, add_filter_arguments, check_filters, syscall_numbers
from osvgdb.model.kernel import Kernel

NO_RETURN = ("exit", "exit_group")


@dataclass(frozen=True)
class CallText:
    text: str  # strace's line: write(1, "hi\n", 3) = 3
    shown: list[str]  # each argument as shown
    strings: dict[int, str]  # decoded strings and buffers, by argument
    memory_now: list[int]  # arguments (partly) read from memory as it is now


def render_call(
    name: str,
    args: tuple[int, ...],
    formatter: CallFormatter,
    *,
    state: str,
    ret: int | None = None,
    captures: tuple[Capture, ...] = (),
) -> CallText:
    """strace's line for one call.

    state: `returned` (`= RET`), `entering` (a stop at its entry: memory now is what
    the call will see; exit and exit_group get strace's `= ?`) or `in flight` (a
    record of a call that has not returned: `= ? <in flight>`)."""
    shown, strings = formatter.arguments(
        name,
        args,
        ret if state == "returned" else None,
        captures=captures,
        live_is_call_time=state == "entering",
    )
    call = f"{name}({', '.join(shown)})"
    if state == "returned" and ret is not None:
        text = f"{call} = {formatter.result(name, ret)}"
    elif name in NO_RETURN:
        text = f"{call} = ?"
    elif state == "entering":
        text = call
    else:
        text = f"{call} = ? <in flight>"
    return CallText(text, shown, strings, list(formatter.memory_now))


def call_text(record: SyscallRecord, name: str, formatter: CallFormatter) -> CallText:
    """A history record's line, from its captures where they cover the arguments."""
    if record.state in ("torn", "garbage"):
        return CallText(f"{name}(?) <{record.state}: {record.problem}>", [], {}, [])
    state = "returned" if record.returned else "in flight"
    return render_call(
        name, record.args, formatter, state=state, ret=record.ret, captures=record.captures
    )


def describe(
    record: SyscallRecord, kernel: Kernel, formatter: CallFormatter, tsc_per_ms: int
) -> dict[str, object]:
    """One record as osv-syscalls shows it, text and fields."""
    name = kernel.syscalls.name(record.nr)
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


@dataclass
class HistoryFilter:
    """Which records osv-syscalls shows: the last `count` (0: all) that pass."""

    count: int = 50
    cpu: int | None = None
    tid: int | None = None
    numbers: set[int] = field(default_factory=set)
    since: int | None = None
    string_limit: int = 32
    raw: bool = False


DEFAULT_COUNT = 50


def add_history_arguments(parser: argparse.ArgumentParser, number: Callable[[str], int]) -> None:
    """osv-syscalls' options (also `osvgdb inspect DUMP syscalls`'s)."""
    parser.add_argument(
        "-n",
        type=number,
        default=DEFAULT_COUNT,
        metavar="N",
        help=f"show the last N records (default {DEFAULT_COUNT}; 0: all)",
    )
    add_filter_arguments(parser, cpu="only CPU N's ring", tid="only thread T's calls", number=number)
    parser.add_argument(
        "--name", action="append", metavar="NAME", help="only syscalls named NAME (repeatable)"
    )
    parser.add_argument("--since", type=number, metavar="SEQ", help="only records with seq >= SEQ")
    parser.add_argument(
        "-s",
        "--string-limit",
        type=number,
        default=32,
        metavar="N",
        help="show at most N bytes of strings and buffers (default 32)",
    )
    parser.add_argument(
        "--raw", action="store_true", help="arguments and results as raw hex, nothing decoded"
    )


def history_filter(kernel: Kernel, args: argparse.Namespace) -> HistoryFilter:
    """The filter add_history_arguments' options ask for; FilterError for one that
    can never match."""
    if args.n < 0 or args.string_limit < 0:
        raise FilterError("-n and --string-limit take numbers >= 0")
    numbers = syscall_numbers(kernel, args.name or ())
    check_filters(kernel, args.cpu, args.tid, numbers)
    return HistoryFilter(
        count=args.n,
        cpu=args.cpu,
        tid=args.tid,
        numbers=numbers,
        since=args.since,
        string_limit=args.string_limit,
        raw=args.raw,
    )


def entering_calls(kernel: Kernel, formatter: CallFormatter) -> list[dict[str, object]]:
    """The calls vCPUs are stopped at the entry of (at syscall_handler's first
    instruction, or lazy's syscall_fast_handler's, where rdi is the struct
    syscall_frame): the history has no record of them yet. Their arguments are read
    now, which is what the call will read."""
    handlers = ("syscall_handler", "syscall_fast_handler")
    entries = {kernel.address(name) for name in handlers if kernel.has(name)}
    layout = kernel.syscall_frame_layout
    calls = []
    for vcpu in kernel.target.vcpus():
        registers = vcpu.registers
        if registers.get("rip") not in entries or "rdi" not in registers:
            continue
        frame = decode_syscall_frame(kernel.read(registers["rdi"], layout.size), layout, registers["rdi"])
        cpu = kernel.cpu_index(registers.get("gs_base", 0))
        current = int(kernel.read_cpu(cpu).get("current") or 0) if cpu is not None else 0
        tid = kernel.thread(current).tid if current else None
        name = kernel.syscalls.name(frame.nr)
        calls.append({
            "state": "entering", "vcpu": vcpu.num, "cpu": cpu, "tid": tid, "nr": frame.nr,
            "name": name, "args": [a & U64 for a in frame.args], "rip": frame.rip,
            "fs_base": frame.fs_base, "counter": frame.counter,
            "text": render_call(name, frame.args, formatter, state="entering").text,
        })  # fmt: skip
    return calls


def history_report(kernel: Kernel, wanted: HistoryFilter) -> dict[str, object]:
    """{"records": [describe(...)...], "errors": [one line per unreadable ring],
    "entering": [the calls vCPUs are stopped at the entry of, that pass the filter]}."""
    records, errors = kernel.history([wanted.cpu] if wanted.cpu is not None else None)
    if wanted.tid is not None:
        records = [r for r in records if r.tid == wanted.tid]
    if wanted.numbers:
        records = [r for r in records if r.nr in wanted.numbers]
    if wanted.since is not None:
        records = [r for r in records if r.seq >= wanted.since]
    if wanted.count:
        records = records[-wanted.count :]
    formatter = CallFormatter(kernel.reader, limit=wanted.string_limit, raw=wanted.raw)
    tsc_per_ms = kernel.tsc_per_ms()
    entering = [
        call
        for call in entering_calls(kernel, formatter)
        if wanted.tid in (None, call["tid"])
        and wanted.cpu in (None, call["cpu"])
        and (not wanted.numbers or call["nr"] in wanted.numbers)
    ]
    return {
        "records": [describe(r, kernel, formatter, tsc_per_ms) for r in records],
        "errors": errors,
        "entering": entering,
    }


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    return f" <{ms * 1000:.1f} us>" if ms < 1 else f" <{ms:.3f} ms>"


def format_history(report: dict[str, object], who: str = "osv-syscalls") -> list[str]:
    lines = [f"{who}: {error}" for error in report["errors"]]  # type: ignore[union-attr]
    for d in report["records"]:  # type: ignore[union-attr]
        lines.append(
            f"{d['seq']:>6} cpu{d['cpu']} tid{d['tid']} fs={d['fs_base']:#x} "
            f"{d['text']}{_duration(d['duration_ms'])}"
        )
    if not report["records"]:
        lines.append(f"{who}: no records")
    for call in report.get("entering", []):  # type: ignore[union-attr]
        lines.append(f" entering cpu{call['cpu']} tid{call['tid']} {call['text']}")
    return lines
