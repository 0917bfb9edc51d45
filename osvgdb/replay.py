"""`osvgdb replay DIR`: a recording (osvgdb.record) replayed under GDB, from its end.

QEMU replays DIR's event log with the kernel, initrd and command line DIR holds,
on the machine the recording ran on (`Recording.check_machine` refuses another),
its gdbstub and two QMP monitors on unix sockets in its private 0700 directory.
Before GDB connects, osvgdb takes the replay to the end of the recording over its
QMP monitor: the first replay of DIR runs it from the start, taking a snapshot
every --snapshot-interval seconds of replay on the way (osvgdb.record.take_snapshots,
cached in DIR); a later one loads the last snapshot and replays only from there.
GDB then connects to a guest stopped at the recording's last instruction, with
the extension, the app's symbols, the recording (`osv-recording`, for osv-when,
osv-seek and osv-last-write) and the other QMP monitor; it may not write the
guest's memory or registers (the replay would go another way).

The outputs (the kernel's console, the app's stdout and stderr): while the replay
goes to the end, what the guest writes to each is checked byte for byte against the
recording's (`ReplayConsole`, one per output); once there, the recording's outputs
are printed, as far as the guest's own counts (osvgdb.record.STREAMS) say it wrote
them, in the order they came when it was recorded, and whatever QEMU writes again
(reverse execution replays from a snapshot, and the guest's output with it) is
dropped: the console is printed once.

A QEMU hung in replay (QEMU 7.2 can deadlock loading a snapshot; osvgdb.record
says how the machine avoids the case we met) stops answering on QMP: a watchdog
thread asks it how it is every WATCH_INTERVAL seconds, and one that stays silent
HANG_TIMEOUT seconds is killed (SIGKILL: it ignores SIGTERM), GDB sees its
connection close, and `osvgdb replay` says so in one line, exit status 125.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from osvgdb import record
from osvgdb.debug import NO_WRITES, DebugOutcome, DebugSession, run_gdb
from osvgdb.debug import exit_status as debug_exit_status
from osvgdb.monitor import Monitor, MonitorError
from osvgdb.qemu import Qemu, QemuError
from osvgdb.run import EXIT_NO_STATUS, QemuFailed

WATCH_INTERVAL = 1.0  # seconds between the watchdog's questions
HANG_TIMEOUT = record.STEP_TIMEOUT  # seconds of QMP silence after which QEMU counts as hung
SETTLE_TIME = 2.0  # seconds for the console copy to catch up with what the guest wrote


class ReplayError(Exception):
    """A replay that cannot go on: one line for the user."""


@dataclass
class ReplayOptions:
    directory: Path
    batch: bool = False
    commands: list[str] = field(default_factory=list)
    gdb: str = "gdb"
    snapshot_interval: float = record.SNAPSHOT_INTERVAL


class ReplayConsole:
    """Where the copying thread writes what the replayed guest writes to one output:
    until `settle()` each byte is checked against the recording's at its offset
    (`start_at` when the replay began at a snapshot); afterwards everything is what a
    reverse step replays again. Nothing is shown from here: what is shown is the
    recording's own bytes, in the order they came live (ReplaySession)."""

    def __init__(self, recorded: bytes):
        self.recorded = recorded
        self.offset = 0
        self.diverged_at: int | None = None
        self.settled = False
        self._lock = threading.Lock()

    def start_at(self, offset: int) -> None:
        with self._lock:
            self.offset = offset

    def write(self, data: bytes) -> int:
        with self._lock:
            if self.settled:
                return len(data)
            expected = self.recorded[self.offset : self.offset + len(data)]
            if self.diverged_at is None and data != expected:
                same = next(
                    (i for i, (a, b) in enumerate(zip(data, expected)) if a != b),
                    min(len(data), len(expected)),
                )
                self.diverged_at = self.offset + same
            self.offset += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def settle(self, written: int | None, deadline: float) -> None:
        """The replay is at the end: wait until the copy has the `written` bytes the
        guest wrote (its own count), at most until `deadline`, then drop what comes after."""
        while written is not None and self.offset < written and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            self.settled = True
            if written is not None and self.offset != written and self.diverged_at is None:
                self.diverged_at = min(self.offset, written)


class ReplaySession(DebugSession):
    """QEMU replaying a recording, taken to its end, and GDB's command line.

    A context manager, like DebugSession: leaving it kills QEMU."""

    def __init__(
        self,
        recording: record.Recording,
        *,
        console: BinaryIO | None = None,
        snapshot_interval: float = record.SNAPSHOT_INTERVAL,
        say=None,
    ):
        self.out = console if console is not None else sys.stdout.buffer
        self.replay_streams = {
            name: ReplayConsole(recording.stream(name)) for name in record.STREAMS
        }
        super().__init__(recording.run_options(), console=self.replay_streams["console"])  # type: ignore[arg-type]
        self.outputs["stdout"] = self.replay_streams["stdout"]  # type: ignore[assignment]
        self.outputs["stderr"] = self.replay_streams["stderr"]  # type: ignore[assignment]
        self.replaying = recording
        self.keep_monitor = True
        self.snapshot_interval = snapshot_interval
        self.say = say or (lambda message: print(f"osvgdb replay: {message}", file=sys.stderr))
        self.hung: str | None = None
        self._watchdog: threading.Thread | None = None
        self._stop_watching = threading.Event()

    def __enter__(self) -> ReplaySession:
        recording = self.replaying
        options = self.options
        vm = Qemu(
            kernel=recording.kernel,
            accel="tcg",
            smp=1,
            fsgsbase=options.fsgsbase,
            gdbstub=True,
            memory=options.memory,
            pause_on_reset=True,
            shared_ram=recording.shared_ram,
            record_replay=record.qemu_arguments("replay", recording.directory),
        )
        self.vm = vm
        try:
            paths = {str(vm.workdir): "workdir", str(vm.kernel): "kernel",
                     str(recording.directory): "recording"}  # fmt: skip
            if vm.ram_path is not None:
                paths[vm.ram_path] = "ram"
            recording.check_machine(vm.command(recording.cmdline), paths)
            os.symlink(recording.initrd.resolve(), vm.initrd)
            vm.start(recording.cmdline)
            self._come_up()
            self._to_the_end()
        except BaseException:
            self.close()
            raise
        return self

    def _alive(self) -> bool:
        return self.vm is not None and self.vm.poll() is None

    def _written(self) -> dict[str, int] | None:
        """How many bytes the guest has written to each output (its own counts, read by
        QMP pmemsave: the kernel's physical addresses are its virtual ones), or None
        for a kernel without the counters."""
        from osvgdb.model.elf_target import ElfKernel
        from osvgdb.model.target import TargetError

        assert self.vm is not None and self.monitor is not None
        monitor, saved = self.monitor, self.vm.workdir / "counter"

        def read(address: int, size: int) -> bytes:
            monitor.execute("pmemsave", val=address, size=size, filename=str(saved))
            return saved.read_bytes()

        try:
            return record.written_counts(ElfKernel(self.replaying.kernel).address, read)
        except (TargetError, MonitorError, OSError):
            return None

    def _to_the_end(self) -> None:
        """Replay to the recording's last instruction over QMP (snapshots on the way
        the first time), then check the console."""
        recording = self.replaying
        assert self.monitor is not None and self.vm is not None
        # A connection whose silence means a hung QEMU after HANG_TIMEOUT, not 30 s.
        self.monitor.close()
        self.monitor = monitor = Monitor(self.vm.qmp_socket, timeout=HANG_TIMEOUT)
        end = recording.end.icount
        assert end is not None
        try:
            if recording.snapshots_complete:
                snapshot = record.nearest_snapshot(recording.snapshots, end + 1)
                if snapshot is not None:
                    record.load_snapshot(monitor, snapshot.name)
                    self._start_at(snapshot.written)
                if end > 0:
                    record.run_to(monitor, end, self._alive)
            else:
                if self.snapshot_interval > 0:
                    self.say(
                        f"the first replay of {recording.directory}: taking a snapshot every "
                        f"{self.snapshot_interval:g} s of replay on the way to its end (kept there)"
                    )
                record.take_snapshots(
                    monitor,
                    recording,
                    lambda: self._written() or {},
                    self._alive,
                    interval=self.snapshot_interval,
                )
        except QemuError as error:
            raise ReplayError(f"{error}{self._qemu_said()}") from None
        written = self._written()
        self.out.write(recording.console(written))
        self.out.flush()
        deadline = time.monotonic() + SETTLE_TIME
        for name, stream in self.replay_streams.items():
            stream.settle(None if written is None else written[name], deadline)
            if stream.diverged_at is not None:
                self.say(
                    f"warning: the replayed {name} differs from the recorded one from byte "
                    f"{stream.diverged_at} on: the replay is not the recorded run"
                )

    def _start_at(self, written: dict[str, int]) -> None:
        """The replay starts at a snapshot: the checks go on from what each output held by then."""
        for name, stream in self.replay_streams.items():
            stream.start_at(written.get(name, 0))

    def _qemu_said(self) -> str:
        tail = self.vm.stderr_tail(3) if self.vm is not None else []
        return f" (QEMU: {' '.join(tail)})" if tail else ""

    def setup_commands(self) -> list[str]:
        recording = self.replaying
        assert self.vm is not None and self.vm.gdb_qmp_socket is not None
        commands = [f"set osv-app-path {recording.app.resolve()}"]
        commands.append(f"set osv-qmp-socket {self.vm.gdb_qmp_socket}")
        if self.ram_path is not None:
            commands.append(f"set osv-guest-ram {self.ram_path}")
        commands.append(f"set osv-recording {recording.directory.resolve()}")
        commands += NO_WRITES
        commands.append(f"with suppress-cli-notifications on -- target remote {self.gdb_socket}")
        commands.append("python import osvgdb.gdb; osvgdb.gdb.replay_session()")
        return commands

    # --- the watchdog ---------------------------------------------------------------

    def watch(self) -> None:
        """Start asking QEMU how it is, from a thread of our own, until `unwatch()`."""
        monitor = self.monitor
        assert monitor is not None
        monitor.close()
        self.monitor = None  # the watchdog's own connection from here, with its own timeout
        self._watchdog = threading.Thread(target=self._watch, name="osvgdb-replay-watch", daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        assert self.vm is not None
        try:
            monitor = Monitor(self.vm.qmp_socket, timeout=HANG_TIMEOUT)
        except MonitorError:
            return
        with monitor:
            while not self._stop_watching.wait(WATCH_INTERVAL):
                if not self._alive():
                    return
                try:
                    monitor.status()
                except MonitorError:
                    if self._alive() and not self._stop_watching.is_set():
                        self.hung = (
                            f"QEMU stopped answering for {HANG_TIMEOUT:g} s while it replayed "
                            "(hung); killed"
                        )
                        self.vm.kill()
                    return

    def unwatch(self) -> None:
        self._stop_watching.set()
        if self._watchdog is not None:
            self._watchdog.join()
            self._watchdog = None

    def close(self) -> None:
        self.unwatch()
        super().close()


@dataclass(frozen=True)
class ReplayOutcome:
    """How `osvgdb replay` ended: the debug session's outcome, and why QEMU was killed
    if it hung."""

    debug: DebugOutcome | None
    hung: str | None = None


def replay(options: ReplayOptions) -> ReplayOutcome:
    """GDB on the replay until GDB exits; QEMU is gone on return. A directory that is
    not a recording this osvgdb and QEMU can replay: osvgdb.record.RecordingError."""
    recording = record.open_recording(options.directory)
    try:
        with ReplaySession(recording, snapshot_interval=options.snapshot_interval) as session:
            argv = session.gdb_argv(options.commands, batch=options.batch, gdb=options.gdb)
            session.watch()
            gdb_status = run_gdb(argv)
            session.unwatch()
            return ReplayOutcome(DebugOutcome(gdb_status, session.outcome()), hung=session.hung)
    except QemuFailed as failure:
        return ReplayOutcome(DebugOutcome(None, failure.outcome))


def exit_status(outcome: ReplayOutcome) -> int:
    """`osvgdb debug`'s statuses (osvgdb.debug.EXIT_STATUS_HELP); 125 for a QEMU that hung."""
    if outcome.hung is not None or outcome.debug is None:
        return EXIT_NO_STATUS
    return debug_exit_status(outcome.debug)
