"""`osvgdb run`: boot one static executable and exit with its status.

The exit protocol with the kernel:

- The guest console (serial port) is copied to our stdout byte for byte as it
  arrives.
- On exit the kernel writes the line `osv-exit: status=N` to the debugcon
  port 0xe9 (a file in QEMU's private directory), then writes N to the
  isa-debug-exit port 0xf4, so QEMU exits with ((N << 1) | 1) & 0xff.  The
  debugcon line is what we trust: it carries N whole, while QEMU's own exit
  status cannot tell a guest's status from QEMU failing.
- On a panic the kernel writes `osv-exit: panic` and halts forever so that a
  debugger could attach; a plain run kills QEMU instead.
- The loader's rejections are ordinary exits: 126 for an executable it cannot
  run, 127 for one that is not in the initrd (the shell's conventions).
"""

from __future__ import annotations

import os
import re
import select
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from osvgdb import build, initrd
from osvgdb.qemu import Qemu

EXIT_USAGE = 2
EXIT_PANIC = 70  # EX_SOFTWARE
EXIT_TIMEOUT = 124  # as timeout(1)
EXIT_NO_STATUS = 125  # as timeout(1) and env(1) when they themselves fail
EXIT_CANNOT_EXECUTE = 126  # the kernel's loader rejected the executable
EXIT_NOT_FOUND = 127  # the kernel's loader found no such file in the initrd

EXIT_STATUS_HELP = f"""\
exit status:
  0-255  the app's exit status, as the kernel reported it; the kernel's loader
         uses two of them:
  {EXIT_CANNOT_EXECUTE}    the loader rejected the executable (the console says why); or,
         before anything started, EXE has no execute permission
  {EXIT_NOT_FOUND}    no such executable in the initrd
  {EXIT_USAGE}      bad osvgdb arguments (nothing was run)
  {EXIT_PANIC}     kernel panic (QEMU killed; the panic report is on the console)
  {EXIT_TIMEOUT}    --timeout expired (QEMU killed)
  {EXIT_NO_STATUS}    no exit status: the kernel build failed, or QEMU failed or
         exited before the kernel reported one (QEMU's stderr is shown)
  128+N  osvgdb was stopped by signal N (e.g. 130 for ^C); QEMU killed
"""

POLL_INTERVAL = 0.05  # seconds between looks at the debugcon file
EXIT_GRACE = 5.0  # seconds QEMU may take to exit after the kernel reported status

_EXIT_LINE = re.compile(r"^osv-exit: (?:status=(\d+)|(panic))$")


@dataclass(frozen=True)
class KernelExit:
    """What the kernel reported on debugcon: a status, or a panic (status None)."""

    status: int | None

    @property
    def panic(self) -> bool:
        return self.status is None


def parse_debugcon(text: str, *, final: bool = False) -> KernelExit | None:
    """Find the kernel's exit report in the debugcon output.

    Only complete lines count while QEMU runs (`status=1` may still become
    `status=12`); once QEMU has exited (`final`) a last unterminated line
    counts too.
    """
    lines = text.split("\n")
    if not final:
        lines = lines[:-1]
    for line in lines:
        match = _EXIT_LINE.match(line.rstrip("\r"))
        if match and match.group(2):
            return KernelExit(status=None)
        if match and 0 <= int(match.group(1)) <= 255:
            return KernelExit(status=int(match.group(1)))
    return None


def kernel_cmdline(
    path: str,
    args: Sequence[str],
    *,
    strace: bool = False,
    env: Sequence[tuple[str, str]] = (),
    fsgsbase: bool = True,
    kernel_args: Sequence[str] = (),
) -> str:
    """The kernel command line: kernel options, then the app's path and args.

    The kernel splits it on whitespace with POSIX shell quoting (single and
    double quotes, backslash), so shlex.join keeps every word whole.
    """
    options = ["--strace"] if strace else []
    options += [f"--env={name}={value}" for name, value in env]
    # Under nested KVM the guest sees the host's CPUID whatever -cpu says, so
    # hiding FSGSBASE from the CPU model is not enough: the kernel is told too.
    options += [] if fsgsbase else ["--no-fsgsbase"]
    options += kernel_args
    return shlex.join([*options, path, *args])


@dataclass
class RunOptions:
    exe: Path
    args: list[str] = field(default_factory=list)
    accel: str = "tcg"
    smp: int = 1
    strace: bool = False
    fsgsbase: bool = True
    timeout: float = 60.0
    env: list[tuple[str, str]] = field(default_factory=list)
    kernel_args: list[str] = field(default_factory=list)
    kernel: Path | None = None  # None: build/kernel.elf, rebuilt by make if needed


def kernel_image(options: RunOptions, root: Path) -> Path:
    """The kernel to boot: --kernel as given, else build/kernel.elf built by make."""
    return options.kernel if options.kernel is not None else build.build_kernel(root)


class Debugcon:
    """Reads the debugcon file incrementally as QEMU appends to it."""

    def __init__(self, path: Path):
        self.path = path
        self.text = ""
        self._offset = 0

    def poll(self, *, final: bool = False) -> KernelExit | None:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        self.text += data.decode(errors="replace")
        return parse_debugcon(self.text, final=final)


def _copy_console(fd: int, out: BinaryIO, *, wait: float) -> bool:
    """Copy what the console has to `out`, waiting up to `wait` seconds for
    it; False at end of file (QEMU closed it: it exited)."""
    ready, _, _ = select.select([fd], [], [], wait)
    if not ready:
        return True
    data = os.read(fd, 65536)
    if data:
        out.write(data)
        out.flush()
    return bool(data)


def _copy_until_quiet(fd: int, out: BinaryIO) -> None:
    """Copy the console until it has been quiet for 0.2 s (at most 2 s), so
    a panic report still being written is not cut short by the kill."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready or not _copy_console(fd, out, wait=0):
            return


def _drain_console(fd: int, out: BinaryIO) -> None:
    """Copy the rest of the console once QEMU is gone (the pipe has an end)."""
    while _copy_console(fd, out, wait=1.0):
        pass


def watch(vm: Qemu, *, timeout: float, out: BinaryIO, err: TextIO) -> int:
    """Stream the console until the app's exit, a panic or the timeout;
    return the osvgdb exit status (see EXIT_STATUS_HELP)."""
    debugcon = Debugcon(vm.debugcon)
    started = time.monotonic()
    reported_at: float | None = None
    console_open = True
    while True:
        if console_open:
            console_open = _copy_console(vm.console, out, wait=POLL_INTERVAL)
        else:
            time.sleep(POLL_INTERVAL)
        exited = vm.poll() is not None
        report = debugcon.poll(final=exited)
        now = time.monotonic()

        if report is not None and report.panic:
            _copy_until_quiet(vm.console, out)
            vm.kill()
            _drain_console(vm.console, out)
            print("osvgdb: kernel panic (report above); QEMU killed", file=err)
            return EXIT_PANIC
        if not exited and vm.stuck():
            vm.kill()
            _drain_console(vm.console, out)
            return _no_status(vm, err)
        if exited and not console_open:
            break
        if exited:
            continue  # the console still has output for us
        if report is not None:
            reported_at = reported_at or now
            if now - reported_at > EXIT_GRACE:
                vm.kill()
                print(f"osvgdb: QEMU did not exit after status {report.status}; killed", file=err)
                return report.status
        if timeout and now - started > timeout:
            vm.kill()
            _drain_console(vm.console, out)
            print(f"osvgdb: timeout: no exit within {timeout:g} s; QEMU killed", file=err)
            return EXIT_TIMEOUT

    report = debugcon.poll(final=True)
    if report is not None:
        return report.status
    return _no_status(vm, err)


def _no_status(vm: Qemu, err: TextIO) -> int:
    status = vm.poll()
    lines = vm.stderr_tail()
    if status == 0 and not lines:
        why = " (with -no-reboot, a triple fault looks like this)"
    else:
        why = ":" if lines else ""
    what = f"exited with status {status}" if status is not None and status >= 0 else "failed"
    print(f"osvgdb: error: QEMU {what} before the kernel reported an exit{why}", file=err)
    print_qemu_stderr(vm, err)
    return EXIT_NO_STATUS


def print_qemu_stderr(vm: Qemu, err: TextIO) -> None:
    """The end of what QEMU said on stderr, indented, each line marked as QEMU's."""
    for line in vm.stderr_tail():
        print(f"  qemu: {line}", file=err)


def run(options: RunOptions, *, out: BinaryIO | None = None, err: TextIO | None = None) -> int:
    """Build the kernel, pack the executable into an initrd, boot and watch."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr
    root = build.repo_root()
    kernel = kernel_image(options, root)
    name = options.exe.name
    cmdline = kernel_cmdline(
        "/" + name,
        options.args,
        strace=options.strace,
        env=options.env,
        fsgsbase=options.fsgsbase,
        kernel_args=options.kernel_args,
    )
    with Qemu(kernel=kernel, accel=options.accel, smp=options.smp, fsgsbase=options.fsgsbase) as vm:
        initrd.write_initrd(
            vm.initrd, [initrd.Member(name, options.exe, mode=initrd.EXECUTABLE_MODE)]
        )
        vm.start(cmdline)
        return watch(vm, timeout=options.timeout, out=out, err=err)
