"""osv-fscheck: a watchdog on the FS-base protocol at every kernel crossing.

The kernel checks the rules itself (kernel/include/fscheck.h, core/fscheck.c) at
each syscall and trap entry, after the entry half of the protocol, and at each
return, after the exit half, while `fscheck_enabled` is set in its memory: off,
a crossing costs one predictable branch; on, a few dozen instructions and no
breakpoint, so a program that faults in thousands of pages runs at nearly its
own speed and ^C stops it at once.  A broken rule calls fscheck_violation(),
where this module keeps one breakpoint: it reads the kernel's state there
(struct fscheck_state), checks the same rules in Python
(osvgdb.decode.frames.check_entry/check_return, FSCHECK_RULES), says so if the
two ever disagree, and stops the guest with one paragraph: the rule, where,
the CPU and thread, and the thread's last syscalls.  A broken return stops at
the crossing's last instruction (syscall_return or trap_return), as the app
would go on from there.
"""

from __future__ import annotations

import argparse
import json

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.gdb.command import OsvCommand, report_internal_error
from osvgdb.gdb.target import Kernel, TargetError, read, u64
from osvgdb.model import fscheck as fscheck_model

NAME = "osv-fscheck"
VIOLATION = "fscheck_violation"


def _set_enabled(kernel: Kernel, on: bool) -> None:
    address = kernel.address("fscheck_enabled")
    gdb.selected_inferior().write_memory(address, (1 if on else 0).to_bytes(4, "little"))


class FsCheck:
    def __init__(self) -> None:
        self.violations = 0
        self.disagreements = 0
        self.last_explanation = ""
        self.breakpoint: _ViolationBreakpoint | None = None
        self.baseline: dict[int, int] = {}  # the kernel's counts when this check began

    def start(self) -> None:
        kernel = Kernel.get()
        if not kernel.has("fscheck_enabled"):
            raise TargetError("this kernel has no FS-base watchdog (fscheck_enabled)")
        self.baseline = self.checks_by_cpu()
        _set_enabled(kernel, True)
        self.breakpoint = _ViolationBreakpoint(self)

    def stop(self) -> None:
        try:
            _set_enabled(Kernel.get(), False)
        except (TargetError, gdb.error, gdb.MemoryError):
            pass  # no target any more: nothing to switch off
        if self.breakpoint is not None and self.breakpoint.is_valid():
            self.breakpoint.delete()
        self.breakpoint = None

    def checks_by_cpu(self) -> dict[int, int]:
        """How many crossings each CPU's watchdog checked (cpus[i].fscheck_checks)."""
        kernel = Kernel.get()
        layout = kernel.cpu_layout
        if not layout.has("fscheck_checks"):
            return {}
        offset = layout.offset("fscheck_checks")
        counts = {}
        for index in range(kernel.nr_cpus()):
            data = read(kernel.cpu_address(index) + offset, 8)
            counts[index] = int.from_bytes(data, "little") - self.baseline.get(index, 0)
        return counts

    def explain(self, broken: int, state_address: int) -> tuple[str, str]:
        """The paragraph for one violation, and the crossing's name."""
        frame = gdb.newest_frame()
        explanation = fscheck_model.explain(
            Kernel.get(), broken, state_address, u64(frame.read_register("gs_base"))
        )
        self.disagreements += explanation.disagreement
        return explanation.text, explanation.location


class _ViolationBreakpoint(gdb.Breakpoint):
    """fscheck_violation(broken, state): explain, then stop (a return: at its last
    instruction, through a temporary breakpoint on this vCPU)."""

    def __init__(self, check: FsCheck):
        super().__init__(VIOLATION, gdb.BP_BREAKPOINT, internal=True)
        self.silent = True
        self.check = check

    def stop(self) -> bool:
        try:
            frame = gdb.newest_frame()
            broken = u64(frame.read_register("rdi")) & 0xFFFFFFFF
            text, location = self.check.explain(broken, u64(frame.read_register("rsi")))
        except (TargetError, DecodeError, gdb.error) as error:
            gdb.write(f"{NAME}: a violation, but its state cannot be read: {error}\n", gdb.STDERR)
            return True
        except Exception as error:
            gdb.write(f"{report_internal_error(NAME, error)}\n", gdb.STDERR)
            return True
        self.check.violations += 1
        self.check.last_explanation = text
        gdb.write(text + "\n")
        if location.endswith("_return"):
            _StopAt(location, gdb.selected_thread().num)
            return False
        gdb.write(f"{NAME}: stopped in {VIOLATION}; `up` is {location}\n")
        return True


class _StopAt(gdb.Breakpoint):
    """A one-shot stop at a label on one vCPU, which says where it stopped."""

    def __init__(self, label: str, vcpu: int):
        super().__init__(f"*{Kernel.get().label(label):#x}", internal=True, temporary=True)
        self.silent = True  # GDB would call it "Temporary breakpoint -N"
        self.thread = vcpu
        self.label = label

    def stop(self) -> bool:
        gdb.write(f"{NAME}: stopped at {self.label}, the crossing's last instruction\n")
        return True


_active: FsCheck | None = None


class OsvFscheck(OsvCommand):
    NAME = NAME
    SUMMARY = "Check the FS-base protocol at every kernel entry and exit; stop at a violation."
    DETAILS = (
        "osv-fscheck on|off|status [--json]\n"
        "The kernel checks the rules below itself at every syscall and trap entry and\n"
        "return (kernel/include/fscheck.h) once this sets its fscheck_enabled flag, at a\n"
        "few dozen instructions per crossing and no breakpoint; at the first broken one\n"
        "the guest stops with an explanation: the rule, where, the CPU, the thread, and\n"
        "its last syscalls (a broken return stops at syscall_return or trap_return).\n\n"
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
                check = FsCheck()
                try:
                    check.start()
                except TargetError as error:
                    raise gdb.GdbError(f"{NAME}: {error}") from None
                _active = check
            gdb.write("osv-fscheck: on (the kernel checks every syscall and trap entry and return)\n")
        elif args.state == "off":
            if _active is not None:
                crossings = sum(_active.checks_by_cpu().values())
                _active.stop()
                gdb.write(f"osv-fscheck: off after {crossings} crossings\n")
                _active = None
            else:
                gdb.write("osv-fscheck: already off\n")
        else:
            by_cpu = _active.checks_by_cpu() if _active else {}
            data = {
                "on": _active is not None,
                "crossings": sum(by_cpu.values()),
                "crossings_by_cpu": {str(k): v for k, v in sorted(by_cpu.items())},
                "violations": _active.violations if _active else 0,
                "disagreements": _active.disagreements if _active else 0,
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
