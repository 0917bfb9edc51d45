"""osv-trace: print each syscall and its result as the guest runs, like strace.

The kernel records every call in its per-CPU history rings anyway
(kernel/include/syscall_history.h); osv-trace reads them in batches instead of
stopping the guest at every entry and exit.  It writes syscall_trace_batch and
syscall_trace_ticks into the guest and keeps one silent breakpoint on
syscall_trace_flush(), which a CPU calls when its ring has that many new
entries or returns, when that many timer ticks passed with some, and before the
app ends.  Every other stop of the guest reads the rings too, so the trace is
complete whenever the user looks.

At each read, every ring's new slots come in one read (two when the range
wraps) and the slots of calls still in flight, or being written by their CPU,
are read again; the calls that returned since print in the order they
returned, as the kernel's --strace prints them; exit and exit_group, which
never return, print at once with `= ?`.  Which record is which, and what is
kept for the next read, is osvgdb.decode.history.RingFollower's (pure, tested
on recorded ring bytes).  Nothing is hidden: records the ring overwrote before
they were read, a call overwritten before it returned, a garbage record, and
calls that returned before calls already printed (clocks that disagree) each
print a line saying so.
"""

from __future__ import annotations

import argparse
import json

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode import history as history_decode
from osvgdb.decode.args import CallFormatter
from osvgdb.decode.history import SyscallRecord
from osvgdb.gdb.api import syscall_numbers
from osvgdb.gdb.command import (
    OsvCommand,
    add_filter_arguments,
    check_filters,
    int_arg,
    report_internal_error,
)
from osvgdb.gdb.target import Kernel, TargetError, reader
from osvgdb.model.syscalls import NO_RETURN, call_text, describe

NAME = "osv-trace"
STRING_LIMIT = 32
DEFAULT_BATCH = 256  # records: a quarter of a ring, so a busy CPU never wraps between reads
MAX_BATCH = 1 << 24
INTERVAL_MS = 50  # a CPU with new records is read at least this often (guest time)


def _write_u32(kernel: Kernel, name: str, value: int) -> None:
    gdb.selected_inferior().write_memory(kernel.address(name), value.to_bytes(4, "little"))


class SyscallTrace:
    """The filters, the read position in each ring and the output of one `osv-trace`."""

    def __init__(
        self,
        numbers: set[int],
        tid: int | None,
        cpu: int | None,
        limit: int,
        raw: bool,
        as_json: bool,
        batch: int,
    ):
        self.numbers, self.tid, self.cpu = numbers, tid, cpu
        self.as_json, self.batch = as_json, batch
        self.formatter = CallFormatter(reader, limit=limit, raw=raw)
        self.count = 0
        self.lost = 0
        self.late = 0
        self.reads = 0
        self.follower: history_decode.RingFollower | None = None
        self.breakpoint: gdb.Breakpoint | None = None

    # --- starting and stopping ---------------------------------------------------------

    def start(self) -> None:
        kernel = Kernel.get()
        try:
            hz = kernel.read_int("timer_hz")
        except TargetError:
            hz = 1000
        _write_u32(kernel, "syscall_trace_ticks", max(1, hz * INTERVAL_MS // 1000))
        _write_u32(kernel, "syscall_trace_batch", self.batch)
        table = kernel.syscalls
        self.follower = history_decode.RingFollower(table.number(name) for name in NO_RETURN)
        for ring in self._rings(kernel):
            self.follower.start(ring, kernel.ring_header(ring), self._slots(kernel, ring))
        self.breakpoint = _FlushBreakpoint(self)
        gdb.events.stop.connect(self._on_stop)

    def stop(self) -> None:
        """Print what is still unread, then leave the guest as it was."""
        gdb.events.stop.disconnect(self._on_stop)
        try:
            self.read_rings()
        except (TargetError, DecodeError, gdb.error):
            pass
        try:
            _write_u32(Kernel.get(), "syscall_trace_batch", 0)
        except (TargetError, gdb.error, gdb.MemoryError):
            pass  # no target any more: nothing to switch off
        if self.breakpoint is not None and self.breakpoint.is_valid():
            self.breakpoint.delete()
        self.breakpoint = None

    def _on_stop(self, _event: object) -> None:
        try:
            self.read_rings()
        except (TargetError, DecodeError, gdb.error):
            pass  # the target went away: nothing more to read
        except Exception as error:
            gdb.write(f"{report_internal_error(NAME, error)}\n", gdb.STDERR)

    # --- reading the rings ---------------------------------------------------------------

    @staticmethod
    def _rings(kernel: Kernel) -> range:
        count = max(kernel.nr_cpus(), len(gdb.selected_inferior().threads()))
        return range(min(count, kernel.array_lengths["syscall_history"]))

    @staticmethod
    def _slots(kernel: Kernel, ring: int) -> history_decode.SlotReader:
        return lambda first, count: kernel.ring_slots(ring, first, count)

    def read_rings(self) -> None:
        """Print every call that returned since the last read, in the order they returned."""
        kernel = Kernel.get()
        self.reads += 1
        ready: list[SyscallRecord] = []
        for ring in self._rings(kernel):
            calls, gaps = self.follower.read(ring, kernel.ring_header(ring), self._slots(kernel, ring))
            ready += calls
            for gap in gaps:
                self._report_lost(gap)
        records, late = self.follower.order(ready)
        if late:
            self._report_late(late)
        tsc_per_ms = kernel.tsc_per_ms() if self.as_json else 0
        for record in records:
            self.show(kernel, record, tsc_per_ms)
        gdb.flush()

    # --- output ----------------------------------------------------------------------------

    def wanted(self, record: SyscallRecord) -> bool:
        if self.numbers and record.nr not in self.numbers:
            return False
        exit_cpu = record.exit_cpu if record.exit_cpu is not None else record.cpu
        if self.cpu is not None and exit_cpu != self.cpu:
            return False
        return self.tid is None or record.tid == self.tid

    def show(self, kernel: Kernel, record: SyscallRecord, tsc_per_ms: int) -> None:
        if not self.wanted(record):
            return
        self.count += 1
        exit_cpu = record.exit_cpu if record.exit_cpu is not None else record.cpu
        if self.as_json:
            data = describe(record, kernel, self.formatter, tsc_per_ms)
            data.pop("captures", None)
            line = {"where": "history", **data, "entry_cpu": record.cpu, "cpu": exit_cpu}
            line["ret"] = record.ret if record.returned else None  # exit, exit_group
            gdb.write(json.dumps(line) + "\n")
            return
        text = call_text(record, kernel.syscalls.name(record.nr), self.formatter).text
        cpu = f"{record.cpu}" + (f">{exit_cpu}" if exit_cpu != record.cpu else "")
        gdb.write(f"[cpu{cpu} tid{record.tid}] {text}\n")

    def _report_lost(self, gap: history_decode.Gap) -> None:
        self.lost += gap.count
        if self.as_json:
            line = {"where": "lost", "ring": gap.ring, "lost": gap.count, "why": gap.why}
            gdb.write(json.dumps(line) + "\n")
        else:
            gdb.write(f"[cpu{gap.ring}] <{gap.count} syscall record(s) lost: {gap.why}>\n")

    def _report_late(self, count: int) -> None:
        """Calls that returned before some already printed: the CPUs' TSCs disagree."""
        self.late += count
        why = "returned before calls printed earlier (the CPUs' clocks disagree)"
        if self.as_json:
            gdb.write(json.dumps({"where": "out-of-order", "count": count, "why": why}) + "\n")
        else:
            gdb.write(f"<{count} call(s) below {why}>\n")


class _FlushBreakpoint(gdb.Breakpoint):
    """syscall_trace_flush(): read the rings and let the guest go on."""

    def __init__(self, trace: SyscallTrace):
        super().__init__("syscall_trace_flush", gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.trace = trace

    def stop(self) -> bool:
        try:
            self.trace.read_rings()
        except (TargetError, DecodeError, gdb.error):
            return False
        except Exception as error:
            gdb.write(f"{report_internal_error(NAME, error)}\n", gdb.STDERR)
            return True
        return False


_active: SyscallTrace | None = None


class OsvTrace(OsvCommand):
    NAME = NAME
    SUMMARY = "Print each syscall and its result as the guest runs (strace, live)."
    DETAILS = (
        "osv-trace syscalls [NAME...] [--tid T] [--cpu N] [-s N] [--raw] [--batch N] [--json]\n"
        "    from now on, print `[cpuC tidT] name(args) = result` as calls return, in the\n"
        "    order they returned (exit/exit_group with `= ?`); `cpuA>B` when the call\n"
        "    entered on A and returned on B. The guest does not stop; ^C interrupts it.\n"
        "osv-trace off       print what is left and stop tracing\n"
        "osv-trace status    what is traced\n"
        "It reads the kernel's syscall history in batches: one silent stop when a CPU's\n"
        f"ring has N new records (--batch, default {DEFAULT_BATCH}), when {INTERVAL_MS} ms of "
        "guest time\npassed with some, before the app ends, and at every other stop. "
        "Strings and buffers are\nwhat the kernel captured as the call ran (see "
        "osv-syscalls). Records a ring overwrote\nbefore they were read are reported as "
        "lost, with their number; calls printed\nout of the order they returned (CPU clocks "
        "that disagree) are said to be."
    )
    COMMAND_CLASS = gdb.COMMAND_RUNNING

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        what = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
        syscalls = what.add_parser("syscalls", help="trace syscalls", prog=f"{NAME} syscalls")
        syscalls.add_argument("names", nargs="*", metavar="NAME", help="only these syscalls")
        add_filter_arguments(syscalls, cpu="only calls returning on CPU N", tid="only thread T")
        syscalls.add_argument(
            "-s",
            "--string-limit",
            type=int_arg,
            default=STRING_LIMIT,
            metavar="N",
            help=f"show at most N bytes of strings and buffers (default {STRING_LIMIT})",
        )
        syscalls.add_argument("--raw", action="store_true", help="arguments as raw hex")
        syscalls.add_argument(
            "--batch",
            type=int_arg,
            default=DEFAULT_BATCH,
            metavar="N",
            help=f"read a CPU's ring once it has N new records (default {DEFAULT_BATCH})",
        )
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
            gdb.write(f"osv-trace: off after {_active.count} calls, {_active.lost} lost\n")
            _active = None
            return
        if args.what == "status":
            data = {
                "tracing": _active is not None,
                "calls": _active.count if _active else 0,
                "lost": _active.lost if _active else 0,
                "out_of_order": _active.late if _active else 0,
                "waiting": _active.follower.waiting() if _active else 0,
                "reads": _active.reads if _active else 0,
                "names": sorted(_active.numbers) if _active else [],
            }
            if args.json:
                gdb.write(json.dumps(data) + "\n")
            else:
                state = (
                    f"on, {data['calls']} calls so far, {data['lost']} lost, "
                    f"{data['waiting']} in flight or being written, "
                    f"{data['reads']} reads of the rings"
                    if _active
                    else "off"
                )
                gdb.write(f"osv-trace: {state}\n")
            return
        if args.string_limit < 0:
            raise gdb.GdbError(f"{NAME}: -s takes a number >= 0")
        if not 1 <= args.batch <= MAX_BATCH:
            raise gdb.GdbError(f"{NAME}: --batch takes a number from 1 to {MAX_BATCH}")
        try:
            numbers = syscall_numbers(args.names)
        except TargetError as error:
            raise gdb.GdbError(f"{NAME}: {error}") from None
        check_filters(args.cpu, args.tid, numbers)
        if _active is not None:
            _active.stop()
            _active = None
        trace = SyscallTrace(
            numbers, args.tid, args.cpu, args.string_limit, args.raw, args.json, args.batch
        )
        trace.start()
        _active = trace
        table = Kernel.get().syscalls
        what = ", ".join(table.name(n) for n in sorted(numbers)) if numbers else "every syscall"
        filters = "".join(
            f" {flag} {value}" for flag, value in (("--tid", args.tid), ("--cpu", args.cpu)) if value is not None
        )
        gdb.write(f"osv-trace: tracing {what}{filters} (osv-trace off to stop)\n")
