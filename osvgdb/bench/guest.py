"""Booting the kernel once per configuration with bench-crossings, and reading its lines.

A configuration is a kernel FS protocol (`counter`, today's and the default; `compare`,
`lazy`: the kernel option --fs-protocol=NAME), the way the kernel writes FS (`wrfsbase`,
or `wrmsr` with --no-fsgsbase and FSGSBASE hidden from the CPU model), the number of
CPUs, and the accelerator.  Under TCG QEMU runs with

    -icount shift=0,align=off,sleep=off

so the guest's clock advances one ns per guest instruction and rdtsc counts guest
instructions: every tick bench-crossings reports is an instruction, the same on every
machine and in every run (the counts do not depend on the host's load).  Under KVM the
guest runs on the hardware and rdtsc counts TSC cycles: only then are ns costs.

The counter kernel's boot also measures `none` (the program measures first with a thread
that never set its FS, then calls arch_prctl(ARCH_SET_FS)), so `none` is the default
kernel with an app that never asked for TLS.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from osvgdb import initrd
from osvgdb.bench.measure import Output, ParseError, parse_output
from osvgdb.qemu import Qemu
from osvgdb.run import Ending, Guest, QemuFailed, kernel_cmdline, qemu_ended

ICOUNT = ["-icount", "shift=0,align=off,sleep=off"]
PROGRAM = "bench-crossings"
DEFAULT_PROTOCOL = "counter"  # the kernel's protocol without --fs-protocol
KERNEL_REFUSED = 64  # the kernel's status for a command line it cannot follow (EX_USAGE)
# A boot may take BOOT_TIME + RUN_TIME * runs seconds (one takes 1-4 s here under TCG
# at 5 runs): a hung guest costs a minute or so, not the rest of the day.
BOOT_TIME = 60.0
RUN_TIME = 10.0

_REFUSAL = re.compile(r"^osv: (.*)$", re.MULTILINE)


class BenchError(Exception):
    """A configuration could not be measured; the message is one line."""


class KernelRefused(BenchError):
    """The kernel refused its command line: an option it does not have (--fs-protocol on
    a kernel from before the protocols) or a value it does not know."""


class QemuUnusable(BenchError):
    """QEMU exited before it was up: it will for every configuration (the kernel image
    or QEMU itself is at fault), so the matrix stops there."""


class IcountQemu(Qemu):
    """QEMU whose guest clock counts instructions (TCG only)."""

    def command(self, cmdline: str) -> list[str]:
        return [*super().command(cmdline), *ICOUNT]


@dataclass(frozen=True)
class Config:
    """One boot: what kernel, how it writes FS, how many CPUs, which benchmarks."""

    protocol: str  # counter, compare, lazy
    fs_write: str  # wrfsbase, wrmsr
    smp: int
    benches: tuple[str, ...]
    modes: tuple[str, ...] = ("set",)  # what to measure: `none`, `set` or both
    accel: str = "tcg"

    @property
    def fs_modes(self) -> str:
        """bench-crossings' --fs."""
        return "both" if len(set(self.modes)) > 1 else self.modes[0]

    @property
    def kernel_args(self) -> list[str]:
        """--fs-protocol only for the protocols that are not the default, so that the
        default configuration runs on any kernel, with or without the option."""
        return [] if self.protocol == DEFAULT_PROTOCOL else [f"--fs-protocol={self.protocol}"]

    def describe(self) -> str:
        return (
            f"fs_protocol {self.protocol}, fs_write {self.fs_write}, -smp {self.smp}, "
            f"{self.accel}"
        )


def program_args(config: Config, runs: int) -> list[str]:
    return ["--runs", str(runs), "--fs", config.fs_modes, *config.benches]


def boot(
    config: Config, runs: int, *, kernel: Path, program: Path, add: Sequence[tuple[Path, str]] = ()
) -> Output:
    """Boot `kernel` with bench-crossings under `config`; its parsed output.

    BenchError, in one line, when the kernel refuses its command line (an unknown
    --fs-protocol on a kernel without the option), QEMU fails or dies, the guest
    panics, or the program does not finish."""
    fsgsbase = config.fs_write == "wrfsbase"
    cmdline = kernel_cmdline(
        "/" + PROGRAM, program_args(config, runs), fsgsbase=fsgsbase,
        kernel_args=config.kernel_args,
    )  # fmt: skip
    qemu_class = IcountQemu if config.accel == "tcg" else Qemu
    console = io.BytesIO()
    with qemu_class(kernel=kernel, accel=config.accel, smp=config.smp, fsgsbase=fsgsbase) as vm:
        members = [initrd.Member(PROGRAM, program, mode=initrd.EXECUTABLE_MODE)]
        for host, where in add:  # --add: whatever else the guest is to hold
            members += initrd.host_members(host, where)
        initrd.write_initrd(vm.initrd, members)
        vm.start(cmdline)
        try:
            guest = Guest.adopt(vm, console=console)
        except QemuFailed as failure:
            stderr = "; ".join(failure.outcome.qemu_stderr[-2:])
            raise QemuUnusable(f"{config.describe()}: {failure} ({stderr})") from None
        timeout = BOOT_TIME + RUN_TIME * runs
        with guest:
            outcome = guest.wait(timeout)
    text = console.getvalue().decode(errors="replace")
    where = config.describe()
    if outcome.kind == Ending.EXITED and outcome.exit_status == KERNEL_REFUSED:
        refusals = _REFUSAL.findall(text)
        why = refusals[-1] if refusals else "no reason on the console"
        raise KernelRefused(
            f"{where}: the kernel refused its command line ({why}); its rows are left out"
        )
    if outcome.kind == Ending.PANIC:
        raise BenchError(f"{where}: kernel panic")
    if outcome.kind == Ending.TIMEOUT:
        raise BenchError(f"{where}: no exit within {timeout:g} s; QEMU killed")
    if outcome.kind in (Ending.QEMU_DIED, Ending.QEMU_FAILED, Ending.QEMU_STUCK):
        stderr = "; ".join(outcome.qemu_stderr[-2:])
        detail = f" ({stderr})" if stderr else ""
        if outcome.kind == Ending.QEMU_STUCK:
            what = f"stopped the guest ({outcome.run_state}); killed,"
        else:
            what = qemu_ended(outcome.qemu_status)
        raise BenchError(f"{where}: QEMU {what} before the program finished{detail}")
    return finished_output(where, PROGRAM, text, outcome.exit_status)


def finished_output(where: str, program: str, text: str, status: int | None) -> Output:
    """bench-crossings' output, guest or host, once it ran to its end: else one line why."""
    try:
        output = parse_output(text)
    except ParseError as error:
        raise BenchError(f"{where}: {error}") from None
    if output.error is not None:
        raise BenchError(f"{where}: {program} gave up: {output.error}")
    if status != 0 or not output.done:
        raise BenchError(f"{where}: {program} exited with status {status}")
    return output
