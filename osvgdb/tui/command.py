"""`osvgdb tui`: the interactive inspector, on a boot, a running gdbstub or a dump.

    osvgdb tui [run's options] [--gdb PATH] [--record FILE] EXE [ARGS...]
    osvgdb tui --attach SOCKET|HOST:PORT --kernel ELF [--app EXE] [--record FILE]
    osvgdb tui --core DUMP [--kernel ELF] [--app EXE] [--record FILE]
    osvgdb replay DIR --tui

A boot is `osvgdb debug`'s: QEMU stopped at its first instruction under its
gdbstub on a private unix socket, GDB on the kernel with the extension
loaded, the app's symbols loading when the kernel enters it; here GDB talks
MI (`--interpreter=mi3`, `mi-async on` before it connects, so the screen
can interrupt a running guest) and a breakpoint on osv_panic_halt stops a
panicking kernel where the report was made. `--attach` connects to a gdbstub
someone else started (on quit GDB disconnects: their QEMU is not killed and the
guest stays stopped for the next debugger); `--core` opens a
dump read-only (nothing resumes); `osvgdb replay DIR --tui` opens a recording
at its end (osvgdb.replay), with keys to go back. `--record FILE` writes every MI command,
its answer and latency, and every event, one JSON object per line (the
transcript the tests replay). Quitting ends GDB and QEMU; so do SIGTERM,
SIGHUP, and our death (they die with us).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from osvgdb import build, dump, record
from osvgdb.debug import AUTOLOAD_NAME, NO_WRITES, start_gdb
from osvgdb.mi import CommandError, Mi, MiError, MiTimeout, Record, console_command, quote
from osvgdb.run import Ending, Guest, QemuFailed, RunOptions, qemu_ended
from osvgdb.tui.app import KEYS, Screen
from osvgdb.tui.backend import MiBackend, MiLog
from osvgdb.tui.inspector import Inspector, source_excerpt

CONNECT_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
QEMU_POLL = 0.25  # seconds between looks at QEMU's process
CONSOLE_REPAINT = 0.05  # at most this often the console pane repaints for new output
# The CPU that made the report, not the others the panic stops (triage's condition).
PANIC_CONDITION = "((struct arch_cpu *)$gs_base)->id == panic_report.cpu"

USAGE = (
    "osvgdb tui [run's options] [--gdb PATH] [--record FILE] EXE [ARGS...]\n"
    "       osvgdb tui --attach SOCKET|HOST:PORT --kernel ELF [--app EXE] [--record FILE]\n"
    "       osvgdb tui --core DUMP [--kernel ELF] [--app EXE] [--record FILE]"
)

KEYS_HELP = "keys (also ? in the TUI):\n" + "\n".join(f"  {key:<18} {what}" for key, what in KEYS)


class TuiError(Exception):
    """A TUI that cannot start: one line for the user."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--attach",
        metavar="SOCKET|HOST:PORT",
        help="attach to a running gdbstub (a unix socket or host:port) instead of booting",
    )
    parser.add_argument(
        "--core", type=Path, metavar="DUMP", help="open a dump osv-dump or triage wrote, read-only"
    )
    parser.add_argument(
        "--app", type=Path, metavar="EXE", help="with --attach or --core: the app, for its symbols"
    )
    parser.add_argument(
        "--gdb", default="gdb", metavar="PATH", help="the GDB to run (default: gdb)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write the MI transcript (commands, answers, latencies, events) as JSON lines",
    )


class LiveConsole:
    """Where Guest's copying thread writes the guest console; the screen is told
    on its own loop, at most every CONSOLE_REPAINT seconds."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._lock = threading.Lock()
        self._notify: Callable[[], None] | None = None
        self._scheduled = False

    def write(self, data: bytes) -> int:
        with self._lock:
            self._data += data
            notify, self._scheduled = (self._notify, True) if not self._scheduled else (None, True)
        if notify is not None:
            notify()
        return len(data)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        with self._lock:
            self._scheduled = False
            return self._data.decode(errors="replace")

    def deliver_to(self, loop: asyncio.AbstractEventLoop, inspector: Inspector) -> None:
        def later() -> None:
            loop.call_later(CONSOLE_REPAINT, lambda: inspector.console_text(self.text()))

        def notify() -> None:
            try:
                loop.call_soon_threadsafe(later)
            except RuntimeError:
                pass  # the loop has closed: the screen is gone, nobody to tell

        self._notify = notify
        inspector.console_text(self.text())


def _gdb_base(gdb: str, kernel: Path) -> list[str]:
    root = build.repo_root()
    return [
        gdb,
        "-q",
        "-nx",
        "--interpreter=mi3",
        "-iex",
        f"add-auto-load-safe-path {kernel.with_name(AUTOLOAD_NAME)}",
        "-x",
        str(root / "gdbinit.py"),
    ]


def _start(argv: list[str]) -> Mi:
    return Mi(
        start_gdb(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    )


def _connect(
    mi: Mi, where: str, session: str = "osvgdb.gdb.debug_session()"
) -> Record | None:
    """Connect with mi-async on (it must come first); the stop connecting reports.
    Frame filters on: MI leaves them off, and the backtrace pane would call an entry
    stub's frame <signal handler called> (GDB's name for a signal frame) where the
    CLI's bt says <syscall futex>."""
    for command in (
        "-gdb-set pagination off",
        "-gdb-set confirm off",
        "-gdb-set width 0",
        "-gdb-set mi-async on",
        "-enable-frame-filters",
    ):
        mi.execute(command)
    try:
        mi.execute(f"-target-select remote {where}", CONNECT_TIMEOUT)
    except CommandError as error:
        raise TuiError(f"cannot attach to {where}: {error.message}") from None
    try:
        stop = mi.wait_for_stop(STOP_TIMEOUT)[-1]
    except MiTimeout:
        stop = None  # a stub whose target runs: *stopped comes when it stops
    # As `osvgdb debug`: when GDB exits it drops the connection, without the kill
    # (QEMU would exit) or the detach (the guest would run on) of a plain quit; an
    # attached stub's guest stays stopped for the next debugger.
    mi.execute(console_command(f"python import osvgdb.gdb; {session}"))
    mi.take_events()
    return stop


def _panic_breakpoint(mi: Mi) -> None:
    try:
        mi.execute(f"-break-insert -c {quote(PANIC_CONDITION)} osv_panic_halt")
    except CommandError:
        pass  # a kernel without osv_panic_halt (not ours): its panic is just a stop


class Session:
    """GDB (and QEMU, for a boot) for one TUI: `mi`, `target`, `first_stop`,
    `describe_end()`, `qemu_status()`; leaving the ExitStack ends them."""

    def __init__(self, stack: ExitStack):
        self.stack = stack
        self.mi: Mi | None = None
        self.target = ""
        self.first_stop: Record | None = None
        self.guest: Guest | None = None
        self.console: LiveConsole | None = None
        self.kernel_dir = build.repo_root() / "kernel"
        self.read_only = False
        # A replay's outputs as recorded (osvgdb replay --tui): osvgdb.record.Recording.console
        self.recorded_console: Callable[[dict[str, int] | None], bytes] | None = None

    def _gdb(self, argv: list[str]) -> Mi:
        self.mi = _start(argv)
        self.stack.callback(self.mi.close, 0.5)
        return self.mi

    def boot(self, options: RunOptions, gdb: str) -> None:
        self.console = LiveConsole()
        self.guest = Guest(options, console=self.console, gdbstub=True)  # type: ignore[arg-type]
        try:
            self.stack.enter_context(self.guest)
        except QemuFailed as failure:
            raise TuiError(
                f"QEMU {qemu_ended(failure.outcome.qemu_status)} before it was up: "
                + " ".join(failure.outcome.qemu_stderr[-2:])
            ) from None
        assert self.guest.vm is not None
        kernel = self.guest.vm.kernel
        argv = _gdb_base(gdb, kernel)
        argv += ["-ex", f"set osv-app-path {options.exe.resolve()}"]
        argv += ["-ex", f"set osv-qmp-socket {self.guest.qmp_socket}"]
        argv += ["-ex", f"set osv-guest-ram {self.guest.ram_path}", str(kernel)]
        mi = self._gdb(argv)
        self.first_stop = _connect(mi, str(self.guest.gdb_socket))
        _panic_breakpoint(mi)
        self.target = f"{options.exe.name} (smp {options.smp}, {options.accel})"

    def replay(self, options) -> None:
        """A recording (osvgdb.replay.ReplayOptions' directory), replayed to its end."""
        from osvgdb.replay import ReplayError, ReplaySession

        recording = record.open_recording(options.directory)
        self.console = LiveConsole()
        session = ReplaySession(
            recording,
            console=self.console,  # type: ignore[arg-type]
            snapshot_interval=options.snapshot_interval,
            say=lambda message: print(f"osvgdb replay: {message}", file=sys.stderr),
        )
        try:
            self.guest = self.stack.enter_context(session)
        except ReplayError as error:
            raise TuiError(str(error)) from None
        except QemuFailed as failure:
            raise TuiError(
                f"QEMU {qemu_ended(failure.outcome.qemu_status)} before it was up: "
                + " ".join(failure.outcome.qemu_stderr[-2:])
            ) from None
        assert session.vm is not None and session.vm.gdb_qmp_socket is not None
        session.watch()
        kernel = recording.kernel
        argv = _gdb_base(options.gdb, kernel)
        argv += ["-ex", f"set osv-app-path {recording.app.resolve()}"]
        argv += ["-ex", f"set osv-qmp-socket {session.vm.gdb_qmp_socket}"]
        if session.ram_path is not None:
            argv += ["-ex", f"set osv-guest-ram {session.ram_path}"]
        argv += ["-ex", f"set osv-recording {recording.directory.resolve()}"]
        for command in NO_WRITES:
            argv += ["-ex", command]
        mi = self._gdb([*argv, str(kernel)])
        self.first_stop = _connect(
            mi, str(session.gdb_socket), "osvgdb.gdb.replay_session(cli=False)"
        )
        self.recorded_console = recording.console
        self.target = f"{recording.app.name} (replay of {recording.directory.name})"

    def attach(self, where: str, kernel: Path, app: Path | None, gdb: str) -> None:
        argv = _gdb_base(gdb, kernel)
        if app is not None:
            argv += ["-ex", f"set osv-app-path {app.resolve()}"]
        mi = self._gdb([*argv, str(kernel)])
        self.first_stop = _connect(mi, where)
        _panic_breakpoint(mi)
        self.target = f"attached to {where}"

    def core(self, path: Path, kernel: Path | None, app: Path | None, gdb: str) -> None:
        if kernel is None:
            kernel = build.build_kernel(build.repo_root())
        scratch = self.stack.enter_context(tempfile.TemporaryDirectory(prefix="osvgdb-tui-"))
        try:
            with dump.Dump(path) as guest:
                if guest.metadata is not None:
                    dump.check_kernel(path, guest.metadata, kernel)
                core = dump.gdb_core_for(guest, scratch)
                app = app or (
                    Path(guest.metadata.app_path)
                    if guest.metadata and guest.metadata.app_path
                    else None
                )
        except dump.DumpError as error:
            raise TuiError(str(error)) from None
        argv = _gdb_base(gdb, kernel)
        # As `osvgdb debug --core`: the architecture from the core, so GDB reads fs_base
        # and gs_base from its NT_PRSTATUS notes.
        argv += ["-ex", "python gdb.execute('set architecture auto', to_string=True)"]
        argv += ["-ex", f"core-file {core}"]
        if app is not None:
            argv += ["-ex", f"set osv-app-path {app.resolve()}"]
        mi = self._gdb([*argv, str(kernel)])
        for command in ("-gdb-set pagination off", "-gdb-set confirm off", "-gdb-set width 0"):
            mi.execute(command)
        frame = mi.execute("-stack-info-frame").payload.get("frame", {})
        mi.take_events()
        self.first_stop = Record(
            "exec", "stopped", {"reason": "core", "thread-id": "1", "frame": frame}
        )
        self.target = f"dump {path.name} (read-only)"
        self.read_only = True

    def describe_end(self) -> str | None:
        if self.guest is None or self.guest.vm is None:
            return None
        outcome = self.guest.outcome()
        if outcome.kind == Ending.EXITED:
            return f"the app exited with status {outcome.exit_status}"
        if outcome.kind == Ending.PANIC:
            return "the kernel panicked"
        if outcome.kind == Ending.QEMU_DIED:
            return f"QEMU {qemu_ended(outcome.qemu_status)}"
        return None

    def qemu_status(self) -> int | None:
        return (
            self.guest.vm.poll() if self.guest is not None and self.guest.vm is not None else None
        )


def make_screen(session: Session, record: Path | None, **io) -> tuple[Screen, Callable[[], None]]:
    """The Screen over the session's GDB, and what to call once its loop runs."""
    assert session.mi is not None
    log = MiLog()
    if record is not None:
        log.transcript = session.stack.enter_context(open(record, "w"))
    backend = MiBackend(session.mi, log)
    session.stack.callback(backend.close)

    def read_source(path: str, line: int) -> list[tuple[int, str]]:
        lines = source_excerpt(path, line)
        log.source(path, line, lines)
        return lines

    inspector = Inspector(
        backend,
        kernel_dir=session.kernel_dir,
        read_only=session.read_only,
        describe_end=session.describe_end,
        read_source=read_source,
        recorded_console=session.recorded_console,
    )
    screen = Screen(inspector, target=session.target, **io)

    def watch_qemu() -> None:
        status = session.qemu_status()
        if status is not None:
            inspector.qemu_ended(qemu_ended(status))
        else:
            asyncio.get_running_loop().call_later(QEMU_POLL, watch_qemu)

    def started() -> None:
        backend.start()
        if session.console is not None:
            session.console.deliver_to(asyncio.get_running_loop(), inspector)
        if session.guest is not None:
            watch_qemu()
        if session.first_stop is not None:
            log.event(session.first_stop)
            inspector.event(session.first_stop)

    return screen, started


def _run_screen(who: str, start: Callable[[Session], None], transcript: Path | None = None) -> int:
    """The inspector on the session `start` sets up, until q: 0, or 1 (said on stderr
    with `who`) when it cannot start."""
    try:
        with ExitStack() as stack:
            session = Session(stack)
            start(session)
            screen, started = make_screen(session, transcript)
            screen.app.run(pre_run=started)
    except TuiError as error:
        print(f"{who}: {error}", file=sys.stderr)
        return 1
    except MiError as error:
        print(f"{who}: GDB: {error}", file=sys.stderr)
        return 1
    return 0


def replay_main(options) -> int:
    """`osvgdb replay DIR --tui` (osvgdb.replay.ReplayOptions): 0 after q, 1 when it cannot
    start; a directory that is not a recording: osvgdb.record.RecordingError."""
    return _run_screen("osvgdb replay", lambda session: session.replay(options))


def main(
    namespace: argparse.Namespace, parse_run_options, usage_errors: tuple[type[Exception], ...]
) -> int:
    """`osvgdb tui`; its exit status (0 after q; 2 for bad arguments, 1 when it cannot start)."""
    modes = [m for m in ("attach", "core") if getattr(namespace, m)]
    if len(modes) > 1:
        raise usage_errors[0]("--attach and --core: one or the other")
    if modes and namespace.command_line:
        raise usage_errors[0](f"--{modes[0]}: no EXE (--app EXE names the app)")
    if namespace.app is not None and not modes:
        raise usage_errors[0]("--app: only with --attach or --core (a boot's app is EXE)")
    if namespace.attach and namespace.kernel is None:
        raise usage_errors[0]("--attach needs --kernel ELF (the kernel the stub runs)")
    for path in (namespace.core, namespace.app, namespace.kernel):
        if path is not None and not path.is_file():
            raise usage_errors[0](f"{path}: no such file")
    options = parse_run_options(namespace) if not modes else None

    def start(session: Session) -> None:
        if options is not None:
            session.boot(options, namespace.gdb)
        elif namespace.attach:
            session.attach(namespace.attach, namespace.kernel.resolve(), namespace.app, namespace.gdb)
        else:
            session.core(namespace.core, namespace.kernel, namespace.app, namespace.gdb)

    return _run_screen("osvgdb tui", start, namespace.record)
