"""`osvgdb debug`: boot an executable stopped under QEMU's gdbstub and attach GDB.

QEMU starts paused (-S) with its gdbstub and QMP monitor on unix sockets in
its private 0700 directory (osvgdb.run.Guest with a gdbstub); GDB starts on
build/kernel.elf with gdbinit.py, `osv-app-path` set to the executable (so
app symbols load when the kernel enters it) and connected.  The guest
console is copied to our stdout by a thread.  While GDB runs we ignore ^C
(GDB uses it to interrupt the guest); when GDB exits, QEMU is killed.  With
--batch GDB runs the -ex commands and exits.  `debug()` returns how the
session ended (a DebugOutcome, printed by the CLI); `exit_status` maps it to
EXIT_STATUS_HELP: the app's status when the kernel reported its exit on
debugcon (as for `osvgdb run`), else GDB's own.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from osvgdb import build, dump
from osvgdb.qemu import QemuError, die_with_parent
from osvgdb.run import (
    EXIT_CANNOT_EXECUTE,
    EXIT_NO_STATUS,
    EXIT_PANIC,
    EXIT_USAGE,
    BootOutcome,
    Ending,
    Guest,
    QemuFailed,
    RunOptions,
)
from osvgdb.run import exit_status as run_exit_status

if TYPE_CHECKING:
    from osvgdb.record import Recorder

GDB = "gdb"
EXIT_STATUS_HELP = f"""\
exit status, the first that applies (each but GDB's own also said on stderr):
  128+N  GDB died of signal N
  0-255  the app's exit status, once it has exited
  {EXIT_PANIC}     kernel panic (the report is on the console)
  {EXIT_NO_STATUS}    QEMU exited, or was killed, before the app did; or the build or QEMU
         failed to start
  other  GDB's: with --batch, non-zero when the last command failed
  {EXIT_CANNOT_EXECUTE}    (before anything starts) EXE has no execute permission
  {EXIT_USAGE}      (before anything starts) bad osvgdb arguments
"""
# `make -C kernel` installs kernel/kernel.elf-gdb.py beside the kernel, where GDB
# auto-loads it once the path is allowed (add-auto-load-safe-path, see README).
AUTOLOAD_NAME = "kernel.elf-gdb.py"


@dataclass
class DebugOptions:
    run: RunOptions
    batch: bool = False
    commands: list[str] = field(default_factory=list)
    gdb: str = GDB
    gdb_args: list[str] = field(default_factory=list)
    recording: Recorder | None = None  # --record DIR (osvgdb.record)

# GDB may not write the guest's memory or registers while it is recorded or replayed:
# the write would not be in the recording, and the replay would go another way.
NO_WRITES = ["set may-write-memory off", "set may-write-registers off"]


class DebugSession(Guest):
    """QEMU stopped at its first instruction under its gdbstub, and the GDB command line.

    Use as a context manager (a Guest with a gdbstub: `outcome()`, `vm`,
    `gdb_socket`, `qmp_socket`); the console goes to `console` (our stdout
    by default) through a copying thread. Without `shared_ram` the guest's RAM
    is QEMU's own and osv-dump cannot work (scripts/benchmark_dump's baseline).
    With a `recording` the run is recorded (osvgdb.record) and GDB may not write
    the guest's memory or registers.
    """

    def __init__(
        self,
        options: RunOptions,
        *,
        console: BinaryIO | None = None,
        shared_ram: bool = True,
        recording: Recorder | None = None,
    ):
        super().__init__(
            options,
            console=console if console is not None else sys.stdout.buffer,
            gdbstub=True,
            shared_ram=shared_ram,
            recording=recording,
        )
        self.options: RunOptions = options
        self.root = build.repo_root()

    @property
    def kernel(self) -> Path:
        assert self.vm is not None
        return self.vm.kernel

    @property
    def autoload(self) -> Path:
        return self.kernel.with_name(AUTOLOAD_NAME)

    def gdb_argv(
        self,
        commands: list[str],
        *,
        batch: bool = False,
        gdb: str = GDB,
        extra: list[str] | None = None,
    ) -> list[str]:
        """GDB on the kernel with the extension, the app's path, connected, then commands."""
        argv = [gdb, "-q", *(extra or [])]
        argv += ["-iex", f"add-auto-load-safe-path {self.autoload}"]
        argv += ["-x", str(self.root / "gdbinit.py")]
        if batch:
            argv += ["-ex", "set pagination off", "-ex", "set confirm off"]
        for command in self.setup_commands():
            argv += ["-ex", command]
        for command in commands:
            argv += ["-ex", command]
        if batch:
            argv.append("--batch")
        argv.append(str(self.kernel))
        return argv

    def setup_commands(self) -> list[str]:
        """What GDB runs before the user's commands: the app's path, the sockets, the
        guest's RAM, connecting, and the greeting."""
        commands = [f"set osv-app-path {self.options.exe.resolve()}"]
        commands.append(f"set osv-qmp-socket {self.qmp_socket}")
        if self.ram_path is not None:
            commands.append(f"set osv-guest-ram {self.ram_path}")
        if self.recording is not None:
            commands += NO_WRITES
        # Quietly: osvgdb.gdb.debug_session says what GDB's stop line would.
        commands.append(f"with suppress-cli-notifications on -- target remote {self.gdb_socket}")
        commands.append("python import osvgdb.gdb; osvgdb.gdb.debug_session()")
        return commands


def run_gdb(argv: list[str]) -> int:
    """GDB's command line, until GDB exits: its status. ^C is GDB's then (it interrupts
    the guest), not ours; GDB is gone on return, whatever happens."""
    if os.environ.get("OSVGDB_SHOW_GDB"):
        print("osvgdb: " + shlex.join(argv), file=sys.stderr)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    process = None
    try:
        process = start_gdb(argv)
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def start_gdb(argv: list[str], **popen: object) -> subprocess.Popen:
    """GDB as our child that dies with us (PR_SET_PDEATHSIG)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def child_setup() -> None:
        die_with_parent(prctl, parent, set())
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # we ignore it; GDB must not

    try:
        return subprocess.Popen(argv, preexec_fn=child_setup, **popen)
    except FileNotFoundError as error:
        raise QemuError(f"{argv[0]} not found (run scripts/bootstrap)") from error


@dataclass(frozen=True)
class DebugOutcome:
    """How a session ended: GDB's exit status (-N when signal N killed it;
    None when QEMU failed before GDB could start) and the boot's outcome
    as GDB left it (RUNNING: the app had not exited and QEMU still ran)."""

    gdb_status: int | None
    boot: BootOutcome


def debug(options: DebugOptions) -> DebugOutcome:
    """Run GDB on the booted kernel until it exits; QEMU is gone on return."""
    # A recorded guest's RAM is QEMU's own: the snapshot QEMU takes at the start reads
    # every page, which would fill all of a shared memfd (osvgdb.record), so osv-dump
    # has no RAM to read there.
    shared_ram = options.recording is None
    try:
        with DebugSession(options.run, recording=options.recording, shared_ram=shared_ram) as session:
            argv = session.gdb_argv(
                options.commands, batch=options.batch, gdb=options.gdb, extra=options.gdb_args
            )
            return DebugOutcome(run_gdb(argv), session.outcome())
    except QemuFailed as failure:
        return DebugOutcome(None, failure.outcome)


def exit_status(outcome: DebugOutcome) -> int:
    """The first of EXIT_STATUS_HELP that applies."""
    gdb_status = outcome.gdb_status
    if gdb_status is not None and gdb_status < 0:
        return 128 - gdb_status
    if outcome.boot.kind == Ending.RUNNING:
        assert gdb_status is not None
        return gdb_status
    return run_exit_status(outcome.boot)


@dataclass
class CoreOptions:
    """`osvgdb debug --core DUMP`: GDB on a dump osv-dump wrote, no QEMU."""

    dump: Path
    app: Path | None = None
    kernel: Path | None = None
    batch: bool = False
    commands: list[str] = field(default_factory=list)
    gdb: str = GDB


def debug_core(options: CoreOptions) -> int:
    """GDB on the kernel and the dump's GDB core (osvgdb.dump.gdb_core_for); GDB's
    exit status, 128+N if it died of signal N, EXIT_USAGE for a dump we refuse."""
    root = build.repo_root()
    kernel = options.kernel if options.kernel is not None else build.build_kernel(root)
    with tempfile.TemporaryDirectory(prefix="osvgdb-core-") as scratch:
        try:
            with dump.Dump(options.dump) as guest:
                if guest.metadata is None:
                    print(
                        f"osvgdb debug: warning: {dump.metadata_path(options.dump)}: no such "
                        "file, the dump is not checked against the kernel",
                        file=sys.stderr,
                    )
                else:
                    dump.check_kernel(options.dump, guest.metadata, kernel)
                if guest.contents is not None and guest.contents.left_out:
                    print(f"osvgdb debug: {dump.left_out_notice(options.dump, guest.contents)}", file=sys.stderr)
                core = dump.gdb_core_for(guest, scratch)
                app = options.app or (guest.metadata and guest.metadata.app_path)
        except dump.DumpError as error:
            print(f"osvgdb debug: {error}", file=sys.stderr)
            return EXIT_USAGE
        # Not the live session's forced i386:x86-64 (for its 32-bit entry): with the
        # architecture from the core, GDB reads fs_base and gs_base from NT_PRSTATUS.
        argv = [options.gdb, "-q"]
        argv += ["-iex", f"add-auto-load-safe-path {kernel.with_name(AUTOLOAD_NAME)}"]
        argv += ["-x", str(root / "gdbinit.py")]
        if options.batch:
            argv += ["-ex", "set pagination off", "-ex", "set confirm off"]
        argv += ["-ex", "python gdb.execute('set architecture auto', to_string=True)"]
        argv += ["-ex", f"core-file {core}"]
        if app:
            argv += ["-ex", f"set osv-app-path {Path(app).resolve()}"]
        for command in options.commands:
            argv += ["-ex", command]
        if options.batch:
            argv.append("--batch")
        argv.append(str(kernel))
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            status = start_gdb(argv).wait()
        finally:
            signal.signal(signal.SIGINT, previous)
    if status < 0:
        signum = -status
        print(
            f"osvgdb debug: GDB died of signal {signum} ({signal.strsignal(signum)})",
            file=sys.stderr,
        )
        return 128 + signum
    return status


def run_script_standalone(script: str, *commands: str, exe: str = "hello-glibc") -> int:
    """For example scripts run by themselves: `osvgdb debug --batch` on build/apps/EXE
    that sources SCRIPT, continues, then runs COMMANDS; GDB's exit status."""
    root = build.repo_root()
    argv = [sys.executable, "-m", "osvgdb", "debug", "--batch", "-ex", f"source {script}"]
    argv += ["-ex", "continue"]
    for command in commands:
        argv += ["-ex", command]
    return subprocess.call([*argv, str(root / "build" / "apps" / exe)])
