"""`osvgdb tui` end to end, in tmux, as a person would use it: the real kernel in real
QEMU under a real GDB, keys typed into the terminal, the screen read back; after `q`
and `y` no QEMU or GDB is left. Also `--core` (the same panes as live) and `--attach`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from guest import APPS, ROOT, osvgdb_command
from processes import cmdline
from tmuxdriver import Tmux

from osvgdb.debug import DebugSession
from osvgdb.run import RunOptions

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is missing: run scripts/bootstrap"
)

STOP_TIMEOUT = 90.0


def tui(tmp_path: Path, *args: str) -> Tmux:
    return Tmux(osvgdb_command("tui", *args), cwd=tmp_path)


def quit_and_check(term: Tmux) -> None:
    assert term.seen, "nothing ran under the pane"
    term.keys("q")
    term.wait_for("quit? QEMU and GDB end with the TUI (y/n)")
    term.keys("y")
    term.wait_for("EXITED 0", timeout=30)
    assert term.left_behind() == []


def break_on(term: Tmux, names: str) -> None:
    term.type(":")
    term.wait_for(" c cont")  # the prompt line is up
    term.type(f"osv-break syscall {names}")
    term.keys("Enter")
    term.wait_for(f":osv-break syscall {names}: ")


def section(screen: str, title: str, end: str) -> str:
    """The left column's lines from TITLE to END (the wide layout's left half)."""
    left = [line.split("│")[0] for line in screen.splitlines()]
    start = next(i for i, line in enumerate(left) if line.startswith(f" {title}"))
    stop = next(i for i, line in enumerate(left) if i > start and line.startswith(f" {end}"))
    return "\n".join(left[start:stop])


def test_hello_write_in_flight_consistent_and_the_backtrace_into_main(
    kernel: None, tmp_path: Path
) -> None:
    term = tui(tmp_path, "--accel", "tcg", str(APPS / "hello-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        break_on(term, "write")
        term.keys("c")
        screen = term.wait_for(
            'write(1, "Hello from C code\\n", 18)', "in flight", timeout=STOP_TIMEOUT
        )
        assert "[stop 2: breakpoint hit, vCPU 1, syscall_handler" in screen
        # Each pane fills once the TUI has fetched it after that stop.
        term.wait_match(r"vCPU 1 cpus\[0\] syscall +consistent", timeout=STOP_TIMEOUT)
        screen = term.wait_match(r"#\d+ +0x[0-9a-f]+ main at .*hello\.c:6", timeout=STOP_TIMEOUT)
        backtrace = section(screen, "backtrace", "source")
        assert re.search(r"#\d+ +0x[0-9a-f]+ main at .*hello\.c:6", backtrace), backtrace
        kinds = " ".join(cmdline(p) for p in term.seen)
        assert "qemu-system-x86_64" in kinds and "--interpreter=mi3" in kinds
        quit_and_check(term)
    finally:
        term.close()


def test_threads_at_smp_2_with_a_thread_selected(kernel: None, tmp_path: Path) -> None:
    term = tui(tmp_path, "--accel", "tcg", "--smp", "2", str(APPS / "threads-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        break_on(term, "clock_nanosleep")
        term.keys("c")
        term.wait_for("[stop 2: breakpoint hit", timeout=STOP_TIMEOUT)
        # On until some worker is blocked in a syscall: its backtrace crosses into the app.
        # (One on a vCPU may be running app code, with no crossing to show; one ready may
        # never have run yet, its stack switch_context <- thread_trampoline and nothing
        # of the app's: seen once in a loaded run; so may one a clone on the other vCPU
        # is still making, which the model calls new, not blocked: 3 in 15 runs before.)
        for stop in range(3, 20):
            term.keys("c")
            screen = term.wait_for(f"[stop {stop}: breakpoint hit", timeout=STOP_TIMEOUT)
            threads = section(screen, "threads", "backtrace").splitlines()[2:]
            rows = [i for i, line in enumerate(threads) if " thread " in line and " blocked " in line]
            if rows:
                break
        assert re.search(r"vCPU 1 cpus\[0\]", screen) and re.search(r"vCPU 2 cpus\[1\]", screen)
        # The threads pane: Tab to it, Down to that worker, Enter.
        term.keys("Tab")
        row = rows[0]
        tid = int(threads[row].lstrip(">").split()[0])
        for _ in range(row):
            term.keys("Down")
        term.keys("Enter")
        screen = term.wait_for(f"backtrace of thread {tid} (", timeout=30)
        backtrace = section(screen, "backtrace", "source")
        assert re.search(rf">\s*{tid} thread ", section(screen, "threads", "backtrace"))
        # Through its crossing: the syscall it blocks in.
        assert "worker" in backtrace and re.search(r"<syscall ", backtrace), backtrace
        quit_and_check(term)
    finally:
        term.close()


def test_a_dump_shows_the_same_panes_as_live(kernel: None, tmp_path: Path) -> None:
    dump = tmp_path / "hello.core"
    term = tui(tmp_path, "--accel", "tcg", str(APPS / "hello-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        break_on(term, "write")
        term.keys("c")
        term.wait_for('write(1, "Hello from C code\\n", 18)', timeout=STOP_TIMEOUT)
        # The backtrace pane fills after the syscalls pane: down to main, this stop's.
        live = term.wait_match(r"#\d+ +0x[0-9a-f]+ main ", timeout=STOP_TIMEOUT)
        term.type(":")
        term.type(f"osv-dump {dump}")
        term.keys("Enter")
        term.wait_for("osv-dump: wrote", timeout=60)
        quit_and_check(term)
    finally:
        term.close()
    term = tui(tmp_path, "--core", str(dump))
    try:
        core = term.wait_for(
            "[stop 1: core", "(read-only)", 'write(1, "Hello from C code', timeout=60
        )
        for title, end in (("vCPUs", "threads"), ("threads", "backtrace")):
            assert section(core, title, end) == section(live, title, end)
        live_calls = [
            line.split("│", 1)[1] for line in live.splitlines() if "│" in line and " cpu0 " in line
        ]
        core_calls = [
            line.split("│", 1)[1] for line in core.splitlines() if "│" in line and " cpu0 " in line
        ]
        assert core_calls == live_calls and core_calls
        live_frames = re.findall(r"#\d+ +0x[0-9a-f]+ \S+", section(live, "backtrace", "source"))
        core_frames = re.findall(r"#\d+ +0x[0-9a-f]+ \S+", section(core, "backtrace", "source"))
        assert core_frames[-1] == live_frames[-1] and "main" in core_frames[-1]
        term.keys("c")
        term.wait_for("a dump is read-only: nothing runs")
        quit_and_check(term)
    finally:
        term.close()


def test_attach_to_a_running_gdbstub(kernel: None, tmp_path: Path) -> None:
    options = RunOptions(exe=APPS / "hello-glibc", args=[], accel="tcg")
    with DebugSession(options, console=open(tmp_path / "console", "wb")) as session:
        term = tui(tmp_path, "--attach", str(session.gdb_socket), "--kernel", str(session.kernel),
                   "--app", str(APPS / "hello-glibc"))  # fmt: skip
        try:
            term.wait_for(f"attached to {session.gdb_socket}", "[stop 1:", timeout=STOP_TIMEOUT)
            break_on(term, "write")
            term.keys("c")
            screen = term.wait_for('write(1, "Hello from C code\\n", 18)', timeout=STOP_TIMEOUT)
            assert re.search(r"vCPU 1 cpus\[0\] syscall +consistent", screen)
            quit_and_check(term)
            assert session.vm.poll() is None  # not ours: left running
        finally:
            term.close()


def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    for args, message in (
        (["--attach", "/nonexistent"], "osvgdb: error: --attach needs --kernel ELF (the kernel the stub runs)"),
        (["--core", str(tmp_path / "none")], f"osvgdb: error: {tmp_path / 'none'}: no such file"),
        (["--app", str(ROOT / "README.md"), str(APPS / "hello-glibc")],
         "osvgdb: error: --app: only with --attach or --core (a boot's app is EXE)"),
    ):  # fmt: skip
        done = subprocess.run(
            osvgdb_command("tui", *args), capture_output=True, text=True, timeout=60
        )
        assert (done.returncode, done.stderr.strip()) == (2, message)
    garbage = tmp_path / "garbage.core"
    garbage.write_bytes(b"not an ELF core at all")
    done = subprocess.run(
        osvgdb_command("tui", "--core", str(garbage)), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_banners_for_a_panic_and_for_the_app_s_exit(kernel: None, tmp_path: Path) -> None:
    term = tui(tmp_path, "--accel", "tcg", "--kernel-arg=--test-panic", str(APPS / "hello-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        term.keys("c")
        screen = term.wait_for("KERNEL PANIC", timeout=STOP_TIMEOUT)
        assert "osv_panic_halt" in screen  # stopped where the report was made, state readable
        # The CPU pane fills once the TUI has fetched it after that stop.
        term.wait_match(r"vCPU 1 cpus\[0\] \S+ ", timeout=STOP_TIMEOUT)
        quit_and_check(term)
    finally:
        term.close()
    term = tui(tmp_path, "--accel", "tcg", str(APPS / "hello-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        break_on(term, "write")
        term.keys("c")
        term.wait_for('write(1, "Hello from C code\\n", 18)', timeout=STOP_TIMEOUT)
        term.keys("c")
        screen = term.wait_for("the app exited with status 0", "the last state stays readable", timeout=60)
        assert "Hello from C code" in screen  # the console pane, live until the end
        assert "(as of stop 2)" in screen
        quit_and_check(term)
    finally:
        term.close()


def test_a_gdb_that_dies_says_why_in_the_banner(kernel: None, tmp_path: Path) -> None:
    """A GDB that aborts mid-session (GDB 13.1 did once, in a soak): the banner says how
    it ended, the line GDB said why on its log stream and the command it died in, the
    panes stay readable, and q ends QEMU with nothing left behind."""
    term = tui(tmp_path, "--accel", "tcg", str(APPS / "hello-glibc"))
    try:
        term.wait_for("[stop 1:", timeout=STOP_TIMEOUT)
        term.wait_for("vCPU 1 cpus[?] not started", timeout=STOP_TIMEOUT)  # the panes filled
        term.type(":")
        term.wait_for(" c cont")
        term.type("python import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.abort()")
        term.keys("Enter")
        screen = term.wait_for(
            "GDB is gone (GDB died of signal 6 (Aborted): Fatal signal: Aborted; it was running "
            '-interpreter-exec console "python import os, resource; re...);',
            "the last state stays readable", timeout=30,
        )  # fmt: skip
        assert "vCPU 1 cpus[?] not started" in screen  # still readable
        term.keys("q")
        term.keys("y")
        term.wait_for("EXITED 0", timeout=30)
        assert term.left_behind() == []
    finally:
        term.close()
    assert not any(path.name.startswith("core") for path in tmp_path.iterdir())
