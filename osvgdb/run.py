"""Booting the kernel with one executable, and what came of it.

`Guest` is the one boot path of `osvgdb run`, `osvgdb debug` and the tools
built on them: it builds the kernel if needed, packs the executable into an
initrd, starts QEMU with the guest stopped, checks over QMP that QEMU is up,
copies the guest's three outputs (the app's stdout and stderr, the kernel's
own console) to file objects byte for byte as they arrive, and resumes the
guest (or leaves that to GDB).  It prints nothing: `wait()` and `outcome()`
return a `BootOutcome` for the front end to report (`osvgdb run` maps it to
its exit status with `exit_status`).

The exit protocol with the kernel:

- On exit the kernel writes the line `osv-exit: status=N` to the debugcon
  port 0xe9 (a file in QEMU's private directory), then writes N to the
  isa-debug-exit port 0xf4, so QEMU exits with ((N << 1) | 1) & 0xff.  The
  debugcon line is what we trust: it carries N whole, while QEMU's own exit
  status cannot tell a guest's status from QEMU failing.
- On a panic the kernel writes `osv-exit: panic` and halts forever so that a
  debugger could attach; a plain run kills QEMU instead.
- The loader's rejections are ordinary exits: 126 for an executable it cannot
  run, 127 for one that is not in the initrd (the shell's conventions).
- When the app did not end by its own exit (a fatal signal, the loader's
  refusal, a command line the kernel refused), the kernel first writes
  `osv-reason: TEXT`, the line its console says why with.

QEMU's own view comes over QMP: a STOP into a run state QEMU never leaves by
itself (a KVM internal error) ends the run at once, and a SHUTDOWN event says
why QEMU exited when the kernel reported nothing (`guest-reset`: a triple
fault, which -no-reboot turns into an exit).
"""

from __future__ import annotations

import array
import enum
import fcntl
import os
import re
import select
import shlex
import signal
import stat
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, TextIO

from osvgdb import build, initrd
from osvgdb.qemu import MEMORY, Qemu, QemuError
from osvgdb.stdin import StdinForwarder, stdin_mode

if TYPE_CHECKING:
    from osvgdb.monitor import Monitor
    from osvgdb.record import Recorder

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
  {EXIT_NO_STATUS}    no exit status: the kernel build failed, or QEMU failed, exited or
         stopped the guest for good before the kernel reported one (QEMU's
         stderr is shown)
  128+N  osvgdb was stopped by signal N (e.g. 130 for ^C); QEMU killed
"""

POLL_INTERVAL = 0.05  # seconds between looks at the debugcon file and QMP's events
EXIT_GRACE = 5.0  # seconds QEMU may take to exit after the kernel reported status
PANIC_REPORT_TIME = 2.0  # seconds to wait for the copier to hand on a panic's report
CONSOLE_DRAIN_TIME = 2.0  # seconds to copy what QEMU left in the console pipe
QEMU_UP_TIME = 30.0  # seconds QEMU may take to answer on QMP after it started
QEMU_EXIT_TIME = 1.0  # seconds a QEMU that hung up on QMP may take to exit

# Run states QEMU never leaves by itself (query-status), e.g. after a KVM
# internal error: waiting on would only end at the timeout.
STUCK_STATES = frozenset({"internal-error", "io-error", "guest-panicked", "shutdown"})

_EXIT_LINE = re.compile(r"^osv-exit: (?:status=(\d+)|(panic))$")
_REASON_LINE = re.compile(r"^osv-reason: (.*)$", re.MULTILINE)
CONSOLE_TAIL = 64 * 1024  # bytes of the kernel's console a BootOutcome keeps

# The sink for an app stream that goes where the kernel's console goes.
WITH_CONSOLE = "with-console"


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


def exit_reason(text: str) -> str | None:
    """The kernel's `osv-reason:` line in the debugcon output, if it wrote one."""
    match = _REASON_LINE.search(text)
    return match.group(1).rstrip("\r") if match else None


def kernel_cmdline(
    path: str,
    args: Sequence[str],
    *,
    strace: bool = False,
    env: Sequence[tuple[str, str]] = (),
    fsgsbase: bool = True,
    fs_protocol: str = "counter",
    kernel_args: Sequence[str] = (),
    stdin: str = "none",
    stdout: str = "tty",
    stderr: str = "tty",
    exports: Sequence[str] = (),
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
    options += [] if fs_protocol == "counter" else [f"--fs-protocol={fs_protocol}"]
    options += [] if stdin == "none" else [f"--stdin={stdin}"]
    options += [] if stdout == "tty" else [f"--stdout={stdout}"]
    options += [] if stderr == "tty" else [f"--stderr={stderr}"]
    options += [f"--export={path}" for path in exports]
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
    fs_protocol: str = "counter"  # the kernel's --fs-protocol (decode/tcb.py's FS_PROTOCOLS)
    timeout: float = 60.0
    env: list[tuple[str, str]] = field(default_factory=list)
    kernel_args: list[str] = field(default_factory=list)
    kernel: Path | None = None  # None: build/kernel.elf, rebuilt by make if needed
    memory: str = MEMORY  # QEMU's -m: guest RAM, which is also a dump's size
    stdin: int | None = None  # a host fd forwarded to the guest's fd 0; None: EOF at once
    # What the app's fds 1 and 2 look like, as the host's do: tty or pipe (a pipe or a file)
    stdout_mode: str = "tty"
    stderr_mode: str = "tty"
    # --add HOST[:GUEST]: host files and trees put at absolute guest paths
    add: list[tuple[Path, str]] = field(default_factory=list)
    # --export GUEST:HOST: guest trees copied to the host when the app ends (not a panic)
    export: list[tuple[str, Path]] = field(default_factory=list)


def initrd_members(options: RunOptions) -> list[initrd.Member]:
    """The initrd's members: the executable at /BASENAME, then each --add's.
    ArchiveError for a name two of them would give different files."""
    exe = options.exe
    st = exe.stat()
    members = [initrd.Member(exe.name, exe, mode=st.st_mode, mtime=int(st.st_mtime),
                             uid=st.st_uid, gid=st.st_gid)]  # fmt: skip
    for host, guest in options.add:
        members += initrd.host_members(host, guest)
    seen: dict[str, initrd.Member] = {}
    for member in members:
        other = seen.setdefault(member.name, member)
        both_dirs = stat.S_ISDIR(member.mode) and stat.S_ISDIR(other.mode)
        if other is not member and not both_dirs:
            raise initrd.ArchiveError(f"/{member.name} is given twice")
    return members


def export_destination(guest: str, host: Path, guest_is_dir: bool) -> Path:
    """Where --export GUEST:HOST puts GUEST, by docker cp's rules: into HOST when it is
    a directory (as HOST/BASENAME, or its contents for a GUEST ending in "/."), else at
    HOST. ArchiveError for a directory onto a file."""
    if host.is_dir():
        return host if guest.endswith("/.") else host / PurePosixPath(guest).name
    if guest_is_dir and host.exists():
        raise initrd.ArchiveError(f"{host}: a file; the export {guest} is a directory")
    return host


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


class Ending(enum.StrEnum):
    """How a boot ended (or that it has not): `BootOutcome.kind`."""

    EXITED = "exited"  # the kernel reported the app's exit status (the loader's 126/127 too)
    PANIC = "panic"  # the kernel reported a panic; it halts, QEMU runs on
    TIMEOUT = "timeout"  # nothing ended within the time asked for
    QEMU_FAILED = "qemu-failed"  # QEMU exited before it was up (before QMP answered)
    QEMU_DIED = "qemu-died"  # QEMU exited, or was killed, before the kernel reported an exit
    QEMU_STUCK = "qemu-stuck"  # QEMU stopped the guest in a state it never leaves by itself
    RUNNING = "running"  # nothing has ended yet (from outcome(), never from wait())


@dataclass(frozen=True)
class BootOutcome:
    """What came of one boot, for a front end to report: no text in here is
    meant for the user except QEMU's own stderr."""

    kind: Ending
    exit_status: int | None = None  # EXITED: the app's status as the kernel reported it
    qemu_status: int | None = None  # QEMU's exit status if it had exited, -N: killed by signal N
    qemu_stderr: tuple[str, ...] = ()  # the end of what QEMU wrote on stderr
    run_state: str | None = None  # QEMU_STUCK: QMP's run state, e.g. "internal-error"
    shutdown_reason: str | None = None  # QMP's SHUTDOWN reason, when QEMU said why it ended
    qemu_lingered: bool = False  # EXITED: QEMU did not exit within EXIT_GRACE after the report
    timeout: float | None = None  # TIMEOUT: the seconds waited
    duration: float = 0.0  # seconds since the guest was resumed (or QEMU started, under GDB)
    events: tuple[dict, ...] = ()  # every QMP event osvgdb's own connection received
    reason: str | None = None  # why the app ended when not by its own exit (`osv-reason:`)
    console_tail: str = ""  # the end of the kernel's own console (CONSOLE_TAIL bytes)
    export_errors: tuple[str, ...] = ()  # EXITED: each --export that could not be done, why


def exit_status(outcome: BootOutcome) -> int:
    """`osvgdb run`'s exit status for an outcome (EXIT_STATUS_HELP)."""
    if outcome.kind == Ending.EXITED:
        assert outcome.exit_status is not None
        return outcome.exit_status
    if outcome.kind == Ending.PANIC:
        return EXIT_PANIC
    if outcome.kind == Ending.TIMEOUT:
        return EXIT_TIMEOUT
    return EXIT_NO_STATUS


class QemuFailed(QemuError):
    """QEMU exited before it was up; `outcome` (QEMU_FAILED) says how."""

    def __init__(self, outcome: BootOutcome):
        super().__init__(f"QEMU {qemu_ended(outcome.qemu_status)} before it was up")
        self.outcome = outcome


def qemu_ended(status: int | None) -> str:
    """How QEMU ended, for a sentence: `exited with status 1`, `was killed by signal 9 (Killed)`."""
    if status is not None and status < 0:
        return f"was killed by signal {-status} ({signal.strsignal(-status)})"
    return f"exited with status {status}"


class _OutputCopier(threading.Thread):
    """Copies each of the guest's outputs to its sink until QEMU closes them all.

    One thread, one poll over the channels: bytes go out in the order they
    become readable.  A failed write (our reader went away) stops the copying
    to that sink but not the reading, so QEMU never blocks on a full channel;
    the first error is kept for the main thread to raise.  The kernel's
    console's last CONSOLE_TAIL bytes are kept for the outcome."""

    def __init__(self, sinks: dict[int, tuple[str, BinaryIO | None]]):
        super().__init__(name="osvgdb-output", daemon=True)
        self.sinks = sinks  # fd: (channel, sink)
        self.busy = False  # between taking bytes from a channel and handing them on
        self.last_output = time.monotonic()
        self.error: OSError | ValueError | None = None
        self.console_tail = bytearray()
        self._failed: set[int] = set()

    def run(self) -> None:
        open_fds = set(self.sinks)
        poller = select.poll()
        for fd in open_fds:
            poller.register(fd, select.POLLIN)
        while open_fds:
            for fd, _ in poller.poll():
                self.busy = True
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""  # the channel was closed under us: QEMU is gone
                if not data:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    self.busy = False
                    continue
                self.last_output = time.monotonic()
                self._deliver(fd, data)
                self.busy = False

    def caught_up(self, fd: int) -> bool:
        """Everything channel `fd` holds now has been handed on: nothing unread in it,
        nothing between read and delivery. (busy is set before each read, so a read that
        emptied the channel is still busy until its bytes are delivered.)"""
        unread = array.array("i", [0])
        try:
            fcntl.ioctl(fd, termios.FIONREAD, unread)
        except OSError:
            return True  # closed: QEMU is gone, the copying is over
        return unread[0] == 0 and not self.busy

    def _deliver(self, fd: int, data: bytes) -> None:
        channel, sink = self.sinks[fd]
        if channel == "console":
            self.console_tail += data
            del self.console_tail[:-CONSOLE_TAIL]
        if sink is None or fd in self._failed:
            return
        try:
            sink.write(data)
            sink.flush()
        except (OSError, ValueError) as error:
            self._failed.add(fd)
            if self.error is None:
                self.error = error


class Guest:
    """One boot of the kernel with one executable in QEMU.

        with Guest(options, console=sys.stdout.buffer) as guest:
            outcome = guest.wait(timeout=60)

    Entering boots: it builds the kernel if needed, writes the initrd, starts
    QEMU with the guest stopped, starts copying the kernel's console to
    `console` (sys.stdout.buffer streams it, an io.BytesIO captures it, None
    drops it), and the app's stdout and stderr to `stdout` and `stderr`, by
    default to `console` as well (WITH_CONSOLE: one console, as the kernel's
    own terminal would show them, for osvgdb debug, the TUI, tests); then it
    waits until QEMU answers on QMP (QemuFailed, with a QEMU_FAILED outcome, if
    QEMU exits first).  Without `gdbstub`, the Guest keeps that
    QMP connection (`monitor`) and resumes the guest.  With `gdbstub`, the
    guest stays stopped at its first instruction for GDB (`gdb_socket`), and
    the QMP socket (`qmp_socket`) is left free for whoever wants it, unless
    `keep_monitor` keeps it (triage: its events and dumps while GDB runs the
    guest).  `pause_on_reset`: a triple fault pauses QEMU with its state kept.
    A guest with a gdbstub can be dumped: its RAM is shared with us (`ram_path`,
    osvgdb.guestram), unless `shared_ram` says otherwise.
    With a `recording` (osvgdb.record.Recorder) the run is recorded for a replay: a
    reset pauses it (as for every recording), each output goes into the recording
    too, and leaving ends the recording where the guest is.

    Leaving the context (or close()) kills QEMU if it still runs, after which
    the whole console has been copied, and removes QEMU's directory.
    """

    def __init__(
        self,
        options: RunOptions | None,
        *,
        console: BinaryIO | None = None,
        stdout: BinaryIO | str | None = WITH_CONSOLE,
        stderr: BinaryIO | str | None = WITH_CONSOLE,
        gdbstub: bool = False,
        keep_monitor: bool = False,
        pause_on_reset: bool = False,
        shared_ram: bool | None = None,
        recording: Recorder | None = None,
    ):
        self.options = options
        self.shared_ram = gdbstub if shared_ram is None else shared_ram
        self.outputs: dict[str, BinaryIO | None] = {
            "console": console,
            "stdout": console if stdout == WITH_CONSOLE else stdout,  # type: ignore[dict-item]
            "stderr": console if stderr == WITH_CONSOLE else stderr,  # type: ignore[dict-item]
            "export": None,
        }
        self.gdbstub = gdbstub
        self.keep_monitor = keep_monitor
        self.pause_on_reset = pause_on_reset
        self.recording = recording
        if recording is not None:
            self.pause_on_reset = True
            for name in ("console", "stdout", "stderr"):
                self.outputs[name] = recording.tee(name, self.outputs[name])  # type: ignore[assignment]
        self.vm: Qemu | None = None
        self.monitor: Monitor | None = None
        self._copier: _OutputCopier | None = None
        self._exports = tempfile.TemporaryFile() if options and options.export else None
        self._exported: tuple[str, ...] | None = None
        self._forwarder: StdinForwarder | None = None
        self._debugcon: Debugcon | None = None
        self._events: list[dict] = []
        self._stopped = False  # a STOP event not yet looked into
        self._resumed_at = 0.0

    @classmethod
    def adopt(cls, vm: Qemu, *, console: BinaryIO | None = None) -> Guest:
        """A Guest for a Qemu its caller has started itself (its own initrd and
        command line), resumed unless it has a gdbstub; the Guest owns it now
        (use it as a context manager).  Every output goes to `console`."""
        guest = cls(None, console=console, gdbstub=vm.gdb_socket is not None)
        guest.vm = vm
        try:
            guest._come_up()
        except BaseException:
            guest.close()
            raise
        return guest

    def __enter__(self) -> Guest:
        if self.vm is not None:
            return self  # adopted: already up
        options = self.options
        assert options is not None
        kernel = kernel_image(options, build.repo_root())
        # A recorded app's stdin is empty: its terminal is UARTs, output only (osvgdb.qemu).
        input_mode = "none" if self.recording is not None else stdin_mode(options.stdin)
        cmdline = kernel_cmdline(
            "/" + options.exe.name,
            options.args,
            strace=options.strace,
            env=options.env,
            fsgsbase=options.fsgsbase,
            fs_protocol=options.fs_protocol,
            kernel_args=options.kernel_args,
            stdin=input_mode,
            stdout=options.stdout_mode,
            stderr=options.stderr_mode,
            exports=[guest for guest, _ in options.export],
        )
        self.vm = Qemu(
            kernel=kernel,
            accel=options.accel,
            smp=options.smp,
            fsgsbase=options.fsgsbase,
            gdbstub=self.gdbstub,
            memory=options.memory,
            pause_on_reset=self.pause_on_reset,
            shared_ram=self.shared_ram,
            record_replay=self.recording.arguments() if self.recording is not None else (),
        )
        try:
            initrd.write_initrd(self.vm.initrd, initrd_members(options))
            self.vm.start(cmdline)
            if self.recording is not None:
                self.recording.started(self.vm, cmdline)
            if input_mode != "none":
                assert options.stdin is not None
                self._forwarder = StdinForwarder(options.stdin, self.vm.stdin, mode=input_mode)
                self._forwarder.start()
            self._come_up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _come_up(self) -> None:
        """Start copying the outputs, wait until QEMU is up, resume the guest
        unless GDB will."""
        vm = self.vm
        assert vm is not None
        self._debugcon = Debugcon(vm.debugcon)
        self.outputs["export"] = self._exports
        self._copier = _OutputCopier(
            {fd: (name, self.outputs[name]) for name, fd in vm.outputs.items()}
        )
        self._copier.start()
        self._resumed_at = time.monotonic()
        from osvgdb.monitor import MonitorError  # QMP's library only for a boot (osvgdb --help)

        monitor = self._connect_monitor()
        if monitor is None:
            raise QemuFailed(self._outcome(Ending.QEMU_FAILED))
        if self.gdbstub and not self.keep_monitor:
            monitor.close()  # the socket serves one client at a time: leave it free
            return
        self.monitor = monitor
        if self.gdbstub:
            return  # GDB resumes the guest; we keep QMP for its events
        self._resumed_at = time.monotonic()
        try:
            monitor.execute("cont")
        except MonitorError:
            if vm.wait(QEMU_EXIT_TIME) is None:
                raise
            # QEMU died at once: wait() and outcome() say so.

    def _connect_monitor(self) -> Monitor | None:
        """A QMP connection once QEMU has answered a command, None if QEMU exits first.

        QEMU runs QMP commands in its main loop, which it enters only once
        the machine is set up (the kernel loaded) and every socket listens:
        after the answer GDB can connect too.  Until QEMU listens the
        connection fails: its socket file may not exist yet, or exist
        before QEMU's listen() (ECONNREFUSED)."""
        from osvgdb.monitor import Monitor, MonitorError

        vm = self.vm
        assert vm is not None
        deadline = time.monotonic() + QEMU_UP_TIME
        while True:
            try:
                monitor = Monitor(vm.qmp_socket)
                break
            except MonitorError:
                if vm.wait(0.01) is not None:
                    return None
                if time.monotonic() > deadline:
                    raise QemuError(f"QEMU gave no QMP answer within {QEMU_UP_TIME:g} s") from None
        try:
            monitor.status()
        except MonitorError:
            monitor.close()
            if vm.wait(QEMU_EXIT_TIME) is None:
                raise
            return None
        return monitor

    @property
    def gdb_socket(self) -> Path:
        assert self.vm is not None and self.vm.gdb_socket is not None
        return self.vm.gdb_socket

    @property
    def qmp_socket(self) -> Path:
        assert self.vm is not None
        return self.vm.qmp_socket

    @property
    def ram_path(self) -> str | None:
        """Where the guest's RAM can be read while QEMU runs (with a gdbstub), or None."""
        return None if self.vm is None else self.vm.ram_path

    def outcome(self) -> BootOutcome:
        """What has come of the boot so far, without waiting: RUNNING while
        the app runs and QEMU has not given up on it."""
        assert self.vm is not None and self._debugcon is not None
        qemu_status = self.vm.poll()
        report = self._debugcon.poll(final=qemu_status is not None)
        self._take_events()
        if report is not None and report.panic:
            return self._outcome(Ending.PANIC)
        if report is not None:
            return self._outcome(Ending.EXITED, exit_status=report.status)
        if qemu_status is not None:
            return self._outcome(Ending.QEMU_DIED)
        if (state := self._stuck_state()) is not None:
            return self._outcome(Ending.QEMU_STUCK, run_state=state)
        return self._outcome(Ending.RUNNING)

    def wait(self, timeout: float | None = None) -> BootOutcome:
        """Wait until the boot ends (any outcome but RUNNING), or `timeout`
        seconds (None or 0: no limit) since the guest was resumed.

        QEMU is left as it is (a panicked kernel halts, QEMU runs on, for a
        look over `monitor` or GDB); leaving the context kills it.  Once QEMU
        has exited, every output has been copied.  Raises the error that
        stopped a copy (BrokenPipeError: our reader went away).
        """
        assert self.vm is not None and self._copier is not None
        reported_at: float | None = None
        while True:
            if self._copier.error is not None:
                raise self._copier.error
            outcome = self.outcome()
            now = time.monotonic()
            if outcome.kind == Ending.PANIC:
                self._wait_for_output(("console",))
                return outcome
            if outcome.kind == Ending.EXITED and self.recording is not None:
                # A recorded kernel halts after its report (no isa-debug-exit): it is over.
                self._wait_for_output(("console", "stdout", "stderr"))
                return outcome
            if outcome.kind == Ending.EXITED and self.vm.poll() is None:
                # QEMU exits at once after the report; give the console time to end.
                reported_at = reported_at or now
                if now - reported_at > EXIT_GRACE:
                    return self._outcome(
                        Ending.EXITED, exit_status=outcome.exit_status, qemu_lingered=True
                    )
            elif outcome.kind != Ending.RUNNING:
                if self.vm.poll() is not None:
                    self._copier.join(CONSOLE_DRAIN_TIME)
                return outcome
            elif timeout and now - self._resumed_at > timeout:
                return self._outcome(Ending.TIMEOUT, timeout=timeout)
            self.vm.wait(POLL_INTERVAL)  # a look every POLL_INTERVAL, at once when QEMU ends

    def _wait_for_output(self, names: Sequence[str]) -> None:
        """Until the copier has handed on all that the outputs `names` held when the
        kernel reported its end: the kernel flushes its UART and its ports before it
        writes to debugcon, so the whole panic report is in the console's pipe by then,
        and a kill must not cut it short (nor may the outcome's console_tail lack it)."""
        assert self._copier is not None and self.vm is not None
        fds = [self.vm.outputs[name] for name in names]
        deadline = time.monotonic() + PANIC_REPORT_TIME
        while not all(self._copier.caught_up(fd) for fd in fds):
            if time.monotonic() > deadline or not self._copier.is_alive():
                return
            time.sleep(0.01)

    def _take_events(self) -> None:
        if self.monitor is None:
            return
        for event in self.monitor.poll_events():
            self._events.append(event)
            self._stopped |= event["event"] == "STOP"

    def _stuck_state(self) -> str | None:
        """The run state after a STOP, if QEMU will never leave it by itself."""
        if not self._stopped or self.monitor is None:
            return None
        from osvgdb.monitor import MonitorError

        self._stopped = False
        try:
            state = self.monitor.status()
        except MonitorError:
            return None  # QEMU is gone: the next look sees its exit
        if state in STUCK_STATES:
            self._stopped = True  # still stuck at the next look
            return state
        return None

    def _outcome(self, kind: Ending, **fields: object) -> BootOutcome:
        assert self.vm is not None and self._debugcon is not None
        shutdowns = [e for e in self._events if e["event"] == "SHUTDOWN"]
        tail = self._copier.console_tail if self._copier is not None else b""
        if kind == Ending.EXITED and self.vm.poll() is not None:
            fields.setdefault("export_errors", self._export())
        return BootOutcome(
            kind=kind,
            qemu_status=self.vm.poll(),
            qemu_stderr=tuple(self.vm.stderr_tail()),
            shutdown_reason=shutdowns[-1].get("data", {}).get("reason") if shutdowns else None,
            duration=time.monotonic() - self._resumed_at,
            events=tuple(self._events),
            reason=exit_reason(self._debugcon.text),
            console_tail=bytes(tail).decode(errors="replace"),
            **fields,  # type: ignore[arg-type]
        )

    def _export(self) -> tuple[str, ...]:
        """Once, after QEMU exited and its outputs were copied: each --export's archive
        put at its host path. What could not be done, one line each."""
        if self._exported is not None or self._exports is None:
            return self._exported or ()
        assert self.options is not None and self._copier is not None
        self._copier.join(CONSOLE_DRAIN_TIME)
        self._exports.seek(0)
        errors = (export_one(self._exports, guest, host) for guest, host in self.options.export)
        self._exported = tuple(error for error in errors if error)
        return self._exported

    def close(self) -> None:
        """Kill QEMU, finish copying the outputs, remove QEMU's directory."""
        if self.vm is None:
            return
        if self._forwarder is not None:
            self._forwarder.restore()
        if self.recording is not None:
            self._end_recording()
        self.vm.kill()
        if self._copier is not None:
            self._copier.join(CONSOLE_DRAIN_TIME)
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None
        if self._exports is not None:
            self._exports.close()
        self.vm.close()

    def _end_recording(self) -> None:
        """Close the recording where the guest is (osvgdb.record.Recorder), once the
        outputs have all of it."""
        assert self.vm is not None and self.recording is not None
        if self._debugcon is None:  # QEMU failed before it was up: its debugcon says nothing
            self._debugcon = Debugcon(self.vm.debugcon)
            outcome = self._outcome(Ending.QEMU_FAILED)
        else:
            outcome = self.outcome()
        self.recording.close_log(self.vm, self.monitor)
        if self._copier is not None:
            self._copier.join(CONSOLE_DRAIN_TIME)
        self.recording.finish(self.vm, outcome)


def export_one(stream: BinaryIO, guest: str, host: Path) -> str | None:
    """One --export's archive from the stream (the kernel wrote them in order) put at
    its place on the host; None, or why it could not be, in one line."""
    try:
        entries = list(initrd.read_archive(stream))
    except initrd.ArchiveError as error:
        return f"--export {guest}: {error}"
    if not entries:
        return f"--export {guest}: not in the guest when the app ended"
    try:
        initrd.extract(entries, export_destination(guest, host, stat.S_ISDIR(entries[0].mode)))
    except (initrd.ArchiveError, OSError) as error:
        return f"--export {guest}: {error}"
    return None


def run(
    options: RunOptions,
    *,
    console: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    recording: Recorder | None = None,
) -> BootOutcome:
    """`osvgdb run`: boot, stream the app's stdout and stderr to `stdout` and
    `stderr` (ours by default) and the kernel's console to `console` (None:
    nowhere, but the outcome keeps its tail), and wait up to options.timeout;
    QEMU is gone on return. With a `recording` (osvgdb.record.Recorder) the run
    is recorded too."""
    try:
        with Guest(
            options,
            console=console,
            stdout=stdout or sys.stdout.buffer,
            stderr=stderr or sys.stderr.buffer,
            recording=recording,
        ) as guest:
            return guest.wait(options.timeout)
    except QemuFailed as failure:
        return failure.outcome


def watch(vm: Qemu, *, timeout: float, out: BinaryIO, err: TextIO) -> int:
    """`osvgdb run`'s watch on a Qemu its caller started itself: run's exit
    status, its messages on `err`.  QEMU is gone on return.

    Kept only for tests/test_bad_exe.py; new code uses Guest.adopt(vm) and
    reports the outcome itself."""
    from osvgdb.cli import report_run  # the CLI imports this module

    try:
        guest = Guest.adopt(vm, console=out)
    except QemuFailed as failure:
        return report_run(failure.outcome, err)
    with guest:
        outcome = guest.wait(timeout)
    return report_run(outcome, err)
