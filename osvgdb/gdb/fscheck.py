"""osv-fscheck: a watchdog on the FS-base protocol at every kernel crossing.

Four shared silent breakpoints (osvgdb.gdb.events): after each entry switch
(syscall_handler, trap_handler) and at each final return (syscall_return,
trap_return).  Each hit reads FS base and GS base (registers), this CPU's
tcb_data.kernel_tcb and that TCB's app_tcb and counter (one read each), and at
trap_return the saved frame (one read) to know whether it returns to app code.
The rules are pure (osvgdb.decode.frames.FSCHECK_RULES); at the first broken
one the guest stops with one paragraph: the rule, where, the CPU and thread,
and the thread's last syscalls from the kernel's history.
"""

from __future__ import annotations

import argparse
import json

import gdb

from osvgdb.decode import frames as frames_decode
from osvgdb.decode.args import CallFormatter
from osvgdb.gdb import events
from osvgdb.gdb.command import OsvCommand
from osvgdb.gdb.events import Event, ReturnEvent, SyscallEvent, TrapEvent
from osvgdb.gdb.syscalls import describe
from osvgdb.gdb.target import read, reader

NAME = "osv-fscheck"
LAST_SYSCALLS = 5
LOCATIONS = ("syscall-entry", "trap-entry", "syscall-return", "trap-return")


class FsCheck:
    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.crossings = 0
        self.by_cpu: dict[int, int] = {}
        self.violations = 0
        self.last_explanation = ""

    def start(self) -> None:
        self.tokens = [events.hub.subscribe(where, self.check) for where in LOCATIONS]

    def stop(self) -> None:
        for token in self.tokens:
            events.hub.unsubscribe(token)
        self.tokens = []

    def state(self, event: Event, entry_counter: int | None) -> frames_decode.FsState:
        layout = event.kernel.tcb_layout
        codec = layout.codec(("app_tcb", "kernel_tcb_counter"))
        tcb = codec.unpack(read(event.kernel_tcb, codec.size)) if event.kernel_tcb else {}
        return frames_decode.FsState(
            fs_base=event.register("fs_base"),
            kernel_tcb=event.kernel_tcb,
            counter=frames_decode.signed(int(tcb.get("kernel_tcb_counter") or 0)),
            app_tcb=int(tcb.get("app_tcb") or 0),
            entry_counter=entry_counter,
        )

    def check(self, event: Event) -> bool:
        self.crossings += 1
        if event.cpu is None or not event.kernel_tcb:
            return False  # a CPU not started yet: its GS base is not ours
        self.by_cpu[event.cpu] = self.by_cpu.get(event.cpu, 0) + 1
        if isinstance(event, (SyscallEvent, TrapEvent)):
            violations = frames_decode.check_entry(self.state(event, event.counter))
            detail = event.text if isinstance(event, TrapEvent) else f"syscall {event.name}"
            location = events.LOCATIONS[event.where]
        else:
            assert isinstance(event, ReturnEvent)
            violations = frames_decode.check_return(self.state(event, None), to_app=event.to_app)
            target = "app" if event.to_app else "kernel"
            detail = f"returning to {target} code"
            if event.vector is not None:
                detail = f"{event.kernel.vectors.label(event.vector).strip('<>')} {detail}"
            location = events.LOCATIONS[event.where]
        if not violations:
            return False
        self.violations += 1
        crossing = frames_decode.Crossing(
            location=location,
            cpu=event.cpu,
            tid=event.tid,
            thread_name=event.thread_name,
            rip=event.rip,
            detail=detail,
            last_syscalls=last_syscalls(event),
        )
        self.last_explanation = frames_decode.explain(crossing, violations)
        gdb.write(self.last_explanation + "\n")
        return True


def last_syscalls(event: Event) -> list[str]:
    if event.tid is None:
        return []
    records, _ = event.kernel.history()
    mine = [r for r in records if r.tid == event.tid][-LAST_SYSCALLS:]
    formatter = CallFormatter(reader)
    table = event.kernel.syscalls
    return [str(describe(r, table, formatter, 0)["text"]) for r in mine]


_active: FsCheck | None = None


class OsvFscheck(OsvCommand):
    NAME = NAME
    SUMMARY = "Check the FS-base protocol at every kernel entry and exit; stop at a violation."
    DETAILS = (
        "osv-fscheck on|off|status [--json]\n"
        "Silent breakpoints after each entry switch (syscall_handler, trap_handler) and at\n"
        "each return (syscall_return, trap_return) check the rules below; at the first\n"
        "broken one the guest stops with an explanation: the rule, where, the CPU, the\n"
        "thread, and its last syscalls. Costs one breakpoint round trip per crossing.\n\n"
        + frames_decode.FSCHECK_RULES
    )
    COMMAND_CLASS = gdb.COMMAND_RUNNING

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("state", choices=["on", "off", "status"], help="on, off or status")
        parser.add_argument("--json", action="store_true", help="status as JSON")

    def run(self, args: argparse.Namespace) -> None:
        global _active
        if args.state == "on":
            if _active is None:
                _active = FsCheck()
                _active.start()
            gdb.write("osv-fscheck: on (checking every syscall and trap entry and return)\n")
        elif args.state == "off":
            if _active is not None:
                _active.stop()
                gdb.write(f"osv-fscheck: off after {_active.crossings} crossings\n")
                _active = None
            else:
                gdb.write("osv-fscheck: already off\n")
        else:
            data = {
                "on": _active is not None,
                "crossings": _active.crossings if _active else 0,
                "crossings_by_cpu": {str(k): v for k, v in sorted(_active.by_cpu.items())}
                if _active
                else {},
                "violations": _active.violations if _active else 0,
                "last_explanation": _active.last_explanation if _active else "",
            }
            if args.json:
                gdb.write(json.dumps(data) + "\n")
            else:
                state = "on" if data["on"] else "off"
                gdb.write(
                    f"osv-fscheck: {state}, {data['crossings']} crossings checked, "
                    f"{data['violations']} violations\n"
                )
