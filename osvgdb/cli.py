"""The `osvgdb` command.

Errors are one line on stderr (`osvgdb: error: ...`), never a traceback;
set OSVGDB_TRACEBACK=1 to see the traceback of an unexpected error.  What
`osvgdb run` and `osvgdb debug` came to is said here too, from the outcome
the boot path returns (osvgdb.run.BootOutcome, osvgdb.debug.DebugOutcome).
"""

from __future__ import annotations

import argparse
import errno
import os
import posixpath
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from osvgdb import run
from osvgdb.build import BuildError
from osvgdb.initrd import ArchiveError
from osvgdb.decode.tcb import FS_PROTOCOLS
from osvgdb.qemu import QemuError, choose_accel
from osvgdb.run import BootOutcome, Ending, qemu_ended

if TYPE_CHECKING:
    from osvgdb import debug

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class UsageError(Exception):
    """Bad arguments: reported in one line, exit status 2."""


class CannotExecute(Exception):
    """An EXE that Linux's execve would refuse: one line in a shell's form
    (`osvgdb run: ./x: Permission denied`), exit status 126 as for what the
    kernel's loader rejects."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Terminated(BaseException):
    """Raised by the SIGTERM/SIGHUP handler so cleanup runs as for ^C. A BaseException,
    as KeyboardInterrupt: the `except Exception` that keeps one failed triage step
    from ending a report (or one run of --repeat from ending the rest) must not
    swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of CPUs from 1 to 64, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not _ENV_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


# Each command's line in `osvgdb --help`. A command's own parser, and the modules it
# needs, are built only when that command runs: `osvgdb run` never imports the TUI.
SUMMARIES = {
    "run": "boot one static executable in QEMU and exit with its status",
    "debug": "boot one static executable stopped under QEMU's gdbstub and attach GDB",
    "inspect": "show what osv-tcb, osv-syscalls, osv-auxv or osv-bt showed at a dump's stop, its memory, or a Go program's goroutines, without GDB",
    "triage": "run EXE under GDB and turn a crash, panic or hang into a report, a signature "
    "and JUnit XML",
    "tui": "the interactive inspector: vCPUs, FS-base verdicts, threads, syscalls and "
    "backtraces at a glance, over GDB's MI",
    "bench": "what the FS-base switch costs a syscall, a context switch, a page fault "
    "and an interrupt, per protocol: one table",
    "replay": "replay a recording (--record DIR) under GDB or the TUI, from its end, forward "
    "and backward",
}


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """osvgdb's parser, with `command`'s own parser whole and the others as one line
    of help each (enough for `osvgdb --help` and to name a bad command)."""
    parser = _Parser(
        prog="osvgdb",
        description="Run and debug static Linux executables on the osvgdb unikernel.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        if name == command:
            _COMMAND_PARSERS[name](commands, summary)
        else:
            commands.add_parser(name, help=summary, add_help=False)
    return parser


def _run_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    run_parser = commands.add_parser(
        "run",
        usage="osvgdb run [options] EXE [ARGS...]",
        help=summary,
        description="Build the kernel, pack EXE into an initrd as /BASENAME, boot it in QEMU;\n"
        "the app's stdin, stdout and stderr are osvgdb's, byte for byte, and nothing else is\n"
        "on them: the kernel's own console goes to stderr only with --verbose or --strace,\n"
        "or to a file with --log. Options after EXE belong to the app.",
        epilog=run.EXIT_STATUS_HELP
        + "\nkernel command line: kernel options (--strace, --env=NAME=VALUE, --no-fsgsbase,\n"
        "--fs-protocol=P, "
        "--kernel-arg words), then /BASENAME and ARGS, quoted as a POSIX shell would.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_run_options(run_parser)
    _add_record_option(run_parser)


def _debug_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    from osvgdb import debug

    debug_parser = commands.add_parser(
        "debug",
        usage="osvgdb debug [options] [--batch] [-ex CMD]... EXE [ARGS...]\n"
        "       osvgdb debug --core DUMP [--app EXE] [--kernel PATH] [--batch] [-ex CMD]...",
        help=summary,
        description="Build the kernel, boot EXE in QEMU stopped at its first instruction with\n"
        "the gdbstub on a private unix socket, and start GDB on build/kernel.elf with the\n"
        "osvgdb extension loaded (osv-tcb, osv-syscalls, osv-auxv, ...), the app's symbols\n"
        "set to load when the kernel enters it, and connected. QEMU dies with GDB.",
        epilog=debug.EXIT_STATUS_HELP
        + "\nexample: osvgdb debug --batch -ex 'osv-break syscall write' -ex continue \\\n"
        "           -ex osv-syscalls build/apps/hello-glibc\n"
        "\n--core DUMP: GDB on a dump osv-dump wrote (no QEMU), checked against the kernel's\n"
        "build id; the app's symbols from --app or the dump's DUMP.json. Exit status: GDB's,\n"
        f"or {run.EXIT_USAGE} for a dump that cannot be read or was taken with another kernel.\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    debug_parser.add_argument(
        "--batch", action="store_true", help="run the -ex commands, then exit (GDB's --batch)"
    )
    debug_parser.add_argument(
        "-ex",
        dest="commands",
        action="append",
        default=[],
        metavar="CMD",
        help="a GDB command to run once connected (repeatable)",
    )
    debug_parser.add_argument(
        "--gdb", default="gdb", metavar="PATH", help="the GDB to run (default: gdb)"
    )
    debug_parser.add_argument(
        "--core", type=Path, metavar="DUMP", help="debug a dump written by osv-dump, not a run"
    )
    debug_parser.add_argument(
        "--app", type=Path, metavar="EXE", help="with --core: the app (default: DUMP.json's)"
    )
    _add_run_options(debug_parser, timeout=False)
    _add_record_option(debug_parser)


def _replay_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    replay_parser = commands.add_parser(
        "replay",
        usage="osvgdb replay DIR [--tui] [--batch] [-ex CMD]... [--gdb PATH] [--snapshot-interval S]",
        help=summary,
        description=REPLAY_DESCRIPTION,
        epilog=REPLAY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    replay_parser.add_argument("directory", type=Path, metavar="DIR", help="a recording")
    replay_parser.add_argument(
        "--tui", action="store_true", help="the inspector (osvgdb tui) instead of GDB's CLI"
    )
    replay_parser.add_argument(
        "--batch", action="store_true", help="run the -ex commands, then exit (GDB's --batch)"
    )
    replay_parser.add_argument(
        "-ex", dest="commands", action="append", default=[], metavar="CMD",
        help="a GDB command to run once at the end of the recording (repeatable)",
    )  # fmt: skip
    replay_parser.add_argument(
        "--gdb", default="gdb", metavar="PATH", help="the GDB to run (default: gdb)"
    )
    replay_parser.add_argument(
        "--snapshot-interval", type=_seconds, default=None, metavar="S",
        help="on the first replay of DIR, a snapshot every S seconds of replay "
        "(default 0.5; 0: none, reverse execution then replays from the start)",
    )  # fmt: skip


def _inspect_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    from osvgdb import inspect

    inspect_parser = commands.add_parser(
        "inspect",
        usage="osvgdb inspect DUMP [--kernel ELF] [--app EXE] tcb|syscalls|auxv|memory|bt|goroutines [options] [--json]",
        help=summary,
        description=inspect.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    inspect.add_arguments(inspect_parser)


def _triage_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    from osvgdb.triage import command as triage_command
    from osvgdb.triage import signature as triage_signature

    triage_parser = commands.add_parser(
        "triage",
        usage="osvgdb triage [run's options] [--timeout S] [--repeat K] [--json FILE] "
        "[--markdown FILE]\n"
        "                     [--junit FILE] [--out DIR] [--dump|--no-dump] EXE [ARGS...]\n"
        "       osvgdb triage --core DUMP [--kernel ELF] [--app EXE] [--json FILE] ...",
        help=summary,
        description=triage_command.__doc__,
        epilog=triage_command.EPILOG + "\n\nsignatures: " + triage_signature.__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    triage_command.add_arguments(triage_parser)
    _add_run_options(triage_parser, timeout=False)


def _tui_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    from osvgdb.tui import command as tui_command

    tui_parser = commands.add_parser(
        "tui",
        usage=tui_command.USAGE,
        help=summary,
        description=tui_command.__doc__.split("\n\n", 1)[1],
        epilog=tui_command.KEYS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    tui_command.add_arguments(tui_parser)
    _add_run_options(tui_parser, timeout=False)


def _bench_parser(commands: argparse._SubParsersAction, summary: str) -> None:
    from osvgdb.bench import command as bench_command

    bench_parser = commands.add_parser(
        "bench",
        usage="osvgdb bench [--accel tcg|kvm] [--runs N] [--json] [--bench NAME]...\n"
        "                    [--fs-protocol NAME]... [--fs-write NAME]... [--kernel PATH]\n"
        "                    [--add HOST[:GUEST]]...",
        help=summary,
        description=bench_command.__doc__,
        epilog=bench_command.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    bench_command.add_arguments(bench_parser)
    bench_parser.add_argument(
        "--add",
        type=_add_pair,
        action="append",
        default=[],
        metavar="HOST[:GUEST]",
        help="put a host file or tree in each measured guest too, as run's --add (repeatable)",
    )


_COMMAND_PARSERS = {
    "run": _run_parser,
    "debug": _debug_parser,
    "inspect": _inspect_parser,
    "triage": _triage_parser,
    "tui": _tui_parser,
    "bench": _bench_parser,
    "replay": _replay_parser,
}


REPLAY_DESCRIPTION = """\
Replay a run recorded with `osvgdb run|debug --record DIR` or `osvgdb triage --record`
and open GDB (or, with --tui, the inspector) on it, with the osvgdb extension, stopped
at the end of the recording: where the app exited or crashed, the kernel panicked, or
osvgdb stopped it. Execution goes forward and backward: reverse-stepi, reverse-next,
reverse-finish, reverse-continue to any breakpoint (osv-break's too); osv-last-write
LOCATION goes back to the instruction that last changed it, osv-when says where the
replay is, osv-seek N goes to instruction N. The first replay takes a snapshot every
--snapshot-interval seconds of replay (kept in DIR) so that going back replays little."""

REPLAY_EPILOG = f"""\
exit status: as osvgdb debug's (the app's status once it has exited in the replay, 70
for a kernel panic, else GDB's); {run.EXIT_USAGE} for a directory that is not a recording this
osvgdb and QEMU can replay (incomplete, truncated, changed, recorded with another QEMU);
{run.EXIT_NO_STATUS} when QEMU failed, or hung in the replay and was killed."""


def _add_record_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="record the run under QEMU's deterministic record/replay into DIR (a new "
        "or empty directory), for `osvgdb replay DIR`; one vCPU under TCG only",
    )


def _add_run_options(run_parser: argparse.ArgumentParser, *, timeout: bool = True) -> None:
    run_parser.add_argument(
        "--smp",
        type=_positive_int,
        default=1,
        metavar="N",
        help="number of virtual CPUs (default 1)",
    )
    run_parser.add_argument(
        "--accel",
        choices=["auto", "kvm", "tcg"],
        default="auto",
        help="auto (default): kvm when /dev/kvm opens read-write and the CPU "
        "has VT-x/AMD-V, else tcg",
    )
    run_parser.add_argument(
        "--strace",
        action="store_true",
        help="the kernel prints each syscall as it returns ('-> name(...) = r'), on its "
        "console (osvgdb run: on stderr, as strace(1) writes, or to --log FILE)",
    )
    run_parser.add_argument(
        "--no-fsgsbase",
        dest="fsgsbase",
        action="store_false",
        help="hide FSGSBASE so the kernel switches FS with wrmsr",
    )
    run_parser.add_argument(
        "--fs-protocol",
        choices=FS_PROTOCOLS,
        default="counter",
        help="how the kernel switches FS at each crossing: counter (default, the seed's "
        "kernel_tcb_counter), compare (OSv's merged design) or lazy (getpid, getppid, "
        "gettid, clock_gettime leave FS alone); the kernel's --fs-protocol=",
    )
    if timeout:
        run_parser.add_argument(
            "--timeout",
            type=_seconds,
            default=60.0,
            metavar="S",
            help="kill QEMU after S seconds (default 60; 0: never)",
        )
    if timeout:  # osvgdb run's own: the others show the kernel's console
        run_parser.add_argument(
            "-t",
            "--tty",
            action="store_true",
            help="the app's stdout and stderr are terminals, as docker run -t makes them, "
            "whatever osvgdb's are (line-buffered stdio, ls's columns)",
        )
        run_parser.add_argument(
            "--verbose",
            action="store_true",
            help="copy the kernel's console (banner, messages, statistics at exit) to stderr",
        )
        run_parser.add_argument(
            "--log",
            type=Path,
            metavar="FILE",
            help="write the kernel's console (and --strace's lines) to FILE instead",
        )
    run_parser.add_argument(
        "--env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add to the app's environment (repeatable)",
    )
    run_parser.add_argument(
        "--add",
        type=_add_pair,
        action="append",
        default=[],
        metavar="HOST[:GUEST]",
        help="put the host file or directory tree HOST in the guest at the absolute path "
        "GUEST (default /BASENAME), with its modes, owners and mtimes; the guest's "
        "filesystem is writable, its changes lost unless exported (repeatable)",
    )
    run_parser.add_argument(
        "--export",
        type=_export_pair,
        action="append",
        default=[],
        metavar="GUEST:HOST",
        help="when the app ends (its exit or a fatal signal, not a kernel panic), copy the "
        "guest file or tree GUEST to HOST, as docker cp does: into HOST if it is a "
        "directory, else to HOST (repeatable)",
    )
    run_parser.add_argument(
        "--kernel",
        type=Path,
        metavar="PATH",
        help="boot this kernel ELF instead of build/kernel.elf (which make rebuilds first), "
        "e.g. build/kernel-broken-fs.elf from `make -C kernel broken-fs`",
    )
    run_parser.add_argument(
        "--kernel-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass a word to the kernel before the app's path (repeatable)",
    )
    # One REMAINDER positional, not EXE plus REMAINDER: argparse would drop an
    # app's own "--" from the latter.
    run_parser.add_argument(
        "command_line",
        nargs=argparse.REMAINDER,
        metavar="EXE [ARGS...]",
        help="a static x86-64 Linux executable and its arguments",
    )


def _guest_path(text: str, what: str) -> str:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{what} must be an absolute guest path, not {text!r}")
    return posixpath.normpath(text) + ("/." if text.endswith("/.") else "")


def _add_pair(text: str) -> tuple[Path, str]:
    """--add HOST[:GUEST]: GUEST is what follows the last colon, if it is absolute."""
    host, sep, guest = text.rpartition(":")
    if not sep or not guest.startswith("/"):
        host, guest = text, "/" + Path(text).name
    if not host:
        raise argparse.ArgumentTypeError(f"expected HOST[:GUEST], got {text!r}")
    return Path(host), _guest_path(guest, "GUEST")


def _export_pair(text: str) -> tuple[str, Path]:
    """--export GUEST:HOST, GUEST absolute, split at the first colon."""
    guest, sep, host = text.partition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"expected GUEST:HOST, got {text!r}")
    return _guest_path(guest, "GUEST"), Path(host)


def _check_files(adds: list[tuple[Path, str]], exports: list[tuple[str, Path]]) -> None:
    """What --add brings must be there, what --export writes must have a place: both
    checked before anything boots."""
    for host, _ in adds:
        if not os.path.lexists(host) or not host.exists():
            raise UsageError(f"--add {host}: no such file or directory")
        if not os.access(host, os.R_OK):
            raise UsageError(f"--add {host}: {os.strerror(errno.EACCES)}")
    for guest, host in exports:
        if not host.is_dir() and not host.absolute().parent.is_dir():
            raise UsageError(f"--export {guest}:{host}: {host.absolute().parent} is no directory")


def _check_exe(path: Path, command: str) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file")
    # As execve does: without an execute bit it is EACCES, even for root.
    if not os.access(path, os.X_OK):
        raise CannotExecute(f"osvgdb {command}: {path}: {os.strerror(errno.EACCES)}")
    try:
        path.open("rb").close()
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from error


def parse_run_options(namespace: argparse.Namespace) -> run.RunOptions:
    command_line = list(namespace.command_line)
    if command_line[:1] == ["--"]:
        del command_line[0]
    if not command_line:
        raise UsageError(f"{namespace.command}: missing EXE")
    exe = Path(command_line[0])
    _check_exe(exe, namespace.command)
    _check_files(namespace.add, namespace.export)
    kernel = namespace.kernel
    if kernel is not None:
        if not kernel.is_file():
            raise UsageError(f"--kernel {kernel}: no such file")
        kernel = kernel.resolve()
    recording = getattr(namespace, "record", None) not in (None, False)
    if recording and namespace.accel == "kvm":
        raise UsageError(
            "--record: QEMU records only under TCG (-icount is not allowed with hardware "
            "virtualization); use --accel tcg"
        )
    try:
        # A recording runs under TCG: auto means the best this run can have.
        accel = choose_accel("tcg" if recording and namespace.accel == "auto" else namespace.accel)
    except QemuError as error:
        raise UsageError(str(error)) from error
    return run.RunOptions(
        exe=exe,
        args=command_line[1:],
        accel=accel,
        smp=namespace.smp,
        strace=namespace.strace,
        fsgsbase=namespace.fsgsbase,
        fs_protocol=namespace.fs_protocol,
        timeout=getattr(namespace, "timeout", 0.0),
        env=list(namespace.env),
        kernel_args=list(namespace.kernel_arg),
        kernel=kernel,
        add=list(namespace.add),
        export=list(namespace.export),
    )


def parse_core_options(namespace: argparse.Namespace) -> debug.CoreOptions:
    from osvgdb import debug

    if namespace.command_line:
        raise UsageError("--core: no EXE with a dump (--app EXE names the app)")
    for path in (namespace.core, namespace.app, namespace.kernel):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: no such file")
    return debug.CoreOptions(
        dump=namespace.core,
        app=namespace.app,
        kernel=namespace.kernel.resolve() if namespace.kernel else None,
        batch=namespace.batch,
        commands=list(namespace.commands),
        gdb=namespace.gdb,
    )


def _qemu_stderr(outcome: BootOutcome) -> list[str]:
    """The end of what QEMU said on stderr, indented, each line marked as QEMU's."""
    return [f"  qemu: {line}" for line in outcome.qemu_stderr]


def _why_qemu_ended(outcome: BootOutcome) -> str:
    if outcome.shutdown_reason == "guest-reset":
        return " (the guest reset itself, as a triple fault does; -no-reboot makes that an exit)"
    if outcome.shutdown_reason is not None:
        return f" (QMP: shutdown by {outcome.shutdown_reason})"
    if outcome.qemu_status == 0 and not outcome.qemu_stderr:
        return " (with -no-reboot, a triple fault looks like this)"
    return ""


def report_run(outcome: BootOutcome, err: TextIO, *, console_shown: bool = True) -> int:
    """Say on `err` what came of `osvgdb run` (nothing for a plain exit);
    return its exit status.  Unless the kernel's console was shown
    (`console_shown`), its words that matter are repeated: why the app ended
    when it was not its own exit, and a panic's report."""
    lines = []
    before = "before the kernel reported an exit"
    if outcome.reason is not None and not console_shown:
        lines.append(f"osvgdb: {outcome.reason}")
    lines += [f"osvgdb: {error}" for error in outcome.export_errors]
    if outcome.kind == Ending.EXITED and outcome.qemu_lingered:
        lines.append(f"osvgdb: QEMU did not exit after status {outcome.exit_status}; killed")
    elif outcome.kind == Ending.PANIC and not console_shown:
        lines += panic_report(outcome.console_tail)
        lines.append("osvgdb: kernel panic (the kernel's report above); QEMU killed")
    elif outcome.kind == Ending.PANIC:
        lines.append("osvgdb: kernel panic (report above); QEMU killed")
    elif outcome.kind == Ending.TIMEOUT:
        lines.append(f"osvgdb: timeout: no exit within {outcome.timeout:g} s; QEMU killed")
    elif outcome.kind == Ending.QEMU_FAILED:
        lines.append(f"osvgdb: error: QEMU {qemu_ended(outcome.qemu_status)} before it was up:")
        lines += _qemu_stderr(outcome)
    elif outcome.kind == Ending.QEMU_DIED:
        why = _why_qemu_ended(outcome)
        colon = ":" if outcome.qemu_stderr else ""
        lines.append(f"osvgdb: error: QEMU {qemu_ended(outcome.qemu_status)} {before}{why}{colon}")
        lines += _qemu_stderr(outcome)
    elif outcome.kind == Ending.QEMU_STUCK:
        lines.append(
            f"osvgdb: error: QEMU stopped the guest ({outcome.run_state}) {before}; killed:"
        )
        lines += _qemu_stderr(outcome)
    for line in lines:
        print(line, file=err)
    return run.exit_status(outcome)


def panic_report(console: str) -> list[str]:
    """The kernel's panic report: its console from the `osv: kernel panic` line on."""
    lines = console.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("osv: kernel panic")]
    return lines[starts[0] :] if starts else lines[-20:]


def report_debug(outcome: debug.DebugOutcome, err: TextIO, who: str = "osvgdb debug") -> int:
    """Say on `err` how `osvgdb debug` (or `osvgdb replay`, `who`) ended (nothing when
    GDB's own status is the answer); return its exit status."""
    from osvgdb import debug

    lines = []
    boot = outcome.boot
    if outcome.gdb_status is not None and outcome.gdb_status < 0:
        signum = -outcome.gdb_status
        lines.append(f"{who}: GDB died of signal {signum} ({signal.strsignal(signum)})")
    elif boot.kind == Ending.PANIC:
        lines.append(f"{who}: kernel panic (the report is on the console)")
    elif boot.kind == Ending.EXITED:
        lines.append(f"{who}: the app exited with status {boot.exit_status}")
        lines += [f"{who}: {error}" for error in boot.export_errors]
    elif boot.kind == Ending.QEMU_FAILED:
        lines.append(f"{who}: QEMU {qemu_ended(boot.qemu_status)} before it was up")
        lines += _qemu_stderr(boot)
    elif boot.kind == Ending.QEMU_DIED:
        why = _why_qemu_ended(boot)
        lines.append(f"{who}: QEMU {qemu_ended(boot.qemu_status)} before the app exited{why}")
        lines += _qemu_stderr(boot)
    elif boot.kind == Ending.QEMU_STUCK:
        lines.append(f"{who}: QEMU stopped the guest ({boot.run_state}) before the app exited")
        lines += _qemu_stderr(boot)
    for line in lines:
        print(line, file=err)
    return debug.exit_status(outcome)


def _recorder(namespace: argparse.Namespace, options: run.RunOptions):
    """The --record DIR recorder (osvgdb.record.Recorder), or None without --record."""
    if namespace.record is None:
        return None
    from osvgdb import record

    try:
        return record.Recorder(namespace.record, options, ["osvgdb", *sys.argv[1:]])
    except record.RecordingError as error:
        raise UsageError(str(error)) from None


def report_recording(recorder, err: TextIO) -> None:
    """Where the recording is, or why it cannot be replayed."""
    if recorder is None or recorder.end is None:
        return
    if recorder.complete:
        print(f"osvgdb: recorded in {recorder.directory} (`osvgdb replay {recorder.directory}` "
              "opens it at its end)", file=err)  # fmt: skip
    else:
        print(f"osvgdb: error: the recording in {recorder.directory} is incomplete: QEMU did "
              "not close it", file=err)  # fmt: skip


def _replay(namespace: argparse.Namespace) -> int:
    from osvgdb import replay

    interval = namespace.snapshot_interval
    options = replay.ReplayOptions(
        directory=namespace.directory,
        batch=namespace.batch,
        commands=list(namespace.commands),
        gdb=namespace.gdb,
        snapshot_interval=replay.record.SNAPSHOT_INTERVAL if interval is None else interval,
    )
    try:
        if namespace.tui:
            if options.batch or options.commands:
                raise UsageError("--tui: no --batch or -ex (the TUI takes commands at `:`)")
            from osvgdb.tui import command as tui_command

            return tui_command.replay_main(options)
        outcome = replay.replay(options)
    except replay.record.RecordingError as error:
        print(f"osvgdb replay: {error}", file=sys.stderr)
        return run.EXIT_USAGE
    except replay.ReplayError as error:
        print(f"osvgdb replay: {error}", file=sys.stderr)
        return run.EXIT_NO_STATUS
    if outcome.hung is not None:
        print(f"osvgdb replay: {outcome.hung}", file=sys.stderr)
        return replay.exit_status(outcome)
    assert outcome.debug is not None
    return report_debug(outcome.debug, sys.stderr, who="osvgdb replay")


def _command(argv: Sequence[str]) -> str | None:
    """The command argv names (its first word, if not an option), for _parser."""
    return argv[0] if argv and argv[0] in SUMMARIES else None


def _dispatch(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    namespace = _parser(_command(argv)).parse_args(argv)
    if namespace.command == "replay":
        return _replay(namespace)
    if namespace.command == "triage":
        from osvgdb.triage import command as triage_command

        return triage_command.main(namespace, parse_run_options, (UsageError, CannotExecute))
    if namespace.command == "tui":
        from osvgdb.tui import command as tui_command

        return tui_command.main(namespace, parse_run_options, (UsageError, CannotExecute))
    if namespace.command == "inspect":
        from osvgdb import inspect

        return inspect.inspect(namespace)
    if namespace.command == "bench":
        from osvgdb.bench import command as bench_command

        try:
            _check_files(namespace.add, [])
            return bench_command.main(namespace)
        except bench_command.BenchUsageError as error:
            raise UsageError(str(error)) from None
    if namespace.command == "debug":
        return _debug(namespace)
    return _run(namespace)


def _debug(namespace: argparse.Namespace) -> int:
    from osvgdb import debug

    if namespace.core is not None:
        return debug.debug_core(parse_core_options(namespace))
    if namespace.app is not None:
        raise UsageError("--app: only with --core (a run's app is EXE)")
    run_options = parse_run_options(namespace)
    options = debug.DebugOptions(
        run=run_options,
        batch=namespace.batch,
        commands=list(namespace.commands),
        gdb=namespace.gdb,
        recording=_recorder(namespace, run_options),
    )
    status = report_debug(debug.debug(options), sys.stderr)
    report_recording(options.recording, sys.stderr)
    return status


def _run(namespace: argparse.Namespace) -> int:
    """`osvgdb run`: the app's streams are ours; the kernel's console goes to --log's
    file, or to stderr with --verbose or --strace, or nowhere."""
    options = parse_run_options(namespace)
    options.stdin = _stdin_fd()
    options.stdout_mode = "tty" if namespace.tty else _output_mode(sys.stdout)
    options.stderr_mode = "tty" if namespace.tty else _output_mode(sys.stderr)
    if namespace.verbose:
        options.kernel_args.insert(0, "--verbose")
    recorder = _recorder(namespace, options)
    if namespace.log is not None:
        try:
            log = namespace.log.open("wb")
        except OSError as error:
            raise UsageError(f"--log {namespace.log}: {error.strerror}") from None
        with log:
            outcome = run.run(options, console=log, recording=recorder)
            status = report_run(outcome, sys.stderr, console_shown=False)
    else:
        shown = namespace.verbose or namespace.strace
        console = sys.stderr.buffer if shown else None
        outcome = run.run(options, console=console, recording=recorder)
        status = report_run(outcome, sys.stderr, console_shown=shown)
    report_recording(recorder, sys.stderr)
    return status


def _output_mode(stream: TextIO) -> str:
    """The kernel's --stdout=/--stderr= for our own stream: tty for a terminal, pipe for
    anything else (a pipe, a file, /dev/null)."""
    try:
        return "tty" if os.isatty(stream.fileno()) else "pipe"
    except (OSError, ValueError):  # no fd behind it
        return "pipe"


def _stdin_fd() -> int | None:
    """The fd behind sys.stdin for `osvgdb run` to forward; None when there is none
    (closed, or replaced by an object with no fd, as pytest's capture does)."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None else None
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        return _dispatch(argv)
    except UsageError as error:
        print(f"osvgdb: error: {error}", file=sys.stderr)
        return run.EXIT_USAGE
    except CannotExecute as error:
        print(error, file=sys.stderr)
        return run.EXIT_CANNOT_EXECUTE
    except ArchiveError as error:
        print(f"osvgdb: error: --add: {error}", file=sys.stderr)
        return run.EXIT_USAGE
    except (BuildError, QemuError) as error:
        print(f"osvgdb: error: {error}", file=sys.stderr)
        return run.EXIT_NO_STATUS
    except KeyboardInterrupt:
        print("osvgdb: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except _Terminated as error:
        print(f"osvgdb: terminated by {error}", file=sys.stderr)
        return 128 + error.signum
    except BrokenPipeError:
        # Our reader went away: keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except Exception as error:
        if os.environ.get("OSVGDB_TRACEBACK"):
            raise
        print(
            f"osvgdb: internal error: {type(error).__name__}: {error} "
            "(OSVGDB_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        return run.EXIT_NO_STATUS
