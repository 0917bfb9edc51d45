"""The crashes and hangs a triage must classify, each booted once in real QEMU: the
kernel's injected faults (--inject=NAME, and the kernel variants of `make -C kernel
variants`), the crash programs of kernel/apps, and the kernel's fatal_report and
process.app_started as a debugger finds them at process_exit."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest
from gdbdriver import Debugged
from guest import ROOT, Run, app, osvgdb_run

from osvgdb.run import EXIT_NO_STATUS, EXIT_TIMEOUT

pytestmark = pytest.mark.usefixtures("kernel")

SIGSEGV = 128 + signal.SIGSEGV
SIGABRT = 128 + signal.SIGABRT
EXIT_USAGE = 64  # the kernel refused its command line
HANG_TIMEOUT = "3"  # seconds: every hang case has printed its line well before


@pytest.fixture(scope="module")
def variants() -> None:
    """build/kernel-NAME.elf for every kernel variant."""
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), "variants"], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"make variants failed:\n{result.stdout}{result.stderr}", pytrace=False)


def variant(name: str) -> str:
    return str(ROOT / "build" / f"kernel-{name}.elf")


def segfault_line(run: Run, exe: str, address: str) -> str:
    """The kernel's one line for the app's page fault at `address`."""
    lines = [line for line in run.lines if line.startswith(f"osv: /{exe}: ")]
    assert len(lines) == 1, run
    assert f"segmentation fault at {address}, rip 0x" in lines[0], run
    return lines[0]


# ---- --inject=NAME ----


def test_tcgets60_smashes_glibcs_stack() -> None:
    """TCGETS writes 60 bytes into tcgetattr's 36-byte buffer: glibc's stack protector
    catches it before stdout's first write and aborts. (glibc asks TCGETS of a terminal
    only: -t makes stdout one.)"""
    run = osvgdb_run("--accel", "tcg", "-t", "--kernel-arg=--inject=tcgets60",
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status == SIGABRT, run
    assert "*** stack smashing detected ***: terminated" in run.err_lines, run
    assert "Hello from C code" not in run.stdout


def test_no_at_random_crashes_glibcs_startup() -> None:
    """glibc's start-up copies its stack-protector canary from AT_RANDOM's address: NULL."""
    run = osvgdb_run("--accel", "tcg", "--kernel-arg=--inject=no-at-random",
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status == SIGSEGV, run
    segfault_line(run, "hello-glibc", "0x0")
    assert "Hello from C code" not in run.stdout


def test_rdx_garbage_crashes_at_exit() -> None:
    """glibc registers rdx with atexit: the app runs, then exit() calls 0xdeadbeef
    (before stdio's flush: -t keeps stdout line-buffered, so the line is out)."""
    run = osvgdb_run("--accel", "tcg", "-t", "--kernel-arg=--inject=rdx-garbage",
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status == SIGSEGV, run
    assert "Hello from C code" in run.app_lines, run
    line = segfault_line(run, "hello-glibc", "0xdeadbeef")
    assert "rip 0xdeadbeef " in line, run


def test_lost_wake_hangs_the_threads() -> None:
    run = osvgdb_run("--accel", "tcg", "--smp", "2", "--timeout", HANG_TIMEOUT,
                     "--kernel-arg=--inject=lost-wake", str(app("threads", "glibc")))  # fmt: skip
    assert run.status == EXIT_TIMEOUT, run
    assert "threads ok" not in run.stdout


def test_triple_fault_resets_the_guest_at_the_apps_exit() -> None:
    run = osvgdb_run("--accel", "tcg", "--kernel-arg=--inject=triple-fault",
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status == EXIT_NO_STATUS, run
    assert "Hello from C code" in run.app_lines, run
    assert "the guest reset itself" in run.stderr, run


# ---- kernel variants: faults in entry.S ----


def test_broken_fs_trap_exit(variants: None) -> None:
    """Trap exits leave FS on the kernel TCB until the next syscall exit: which of
    glibc's TLS reads meets it first depends on the timer, hence two endings."""
    run = osvgdb_run("--accel", "tcg", "--kernel", variant("broken-fs"), str(app("hello", "glibc")))
    assert run.status in (SIGABRT, SIGSEGV), run
    if run.status == SIGABRT:
        assert "*** stack smashing detected ***: terminated" in run.err_lines, run
    else:
        segfault_line(run, "hello-glibc", "0x0")


def test_syscall_fs_exit(variants: None) -> None:
    """Back from a syscall on the kernel TCB: glibc's first TLS pointer (the ctype
    tables, in __ctype_init) reads the kernel's zeroed TLS and is NULL. Unless a timer
    interrupt came in between, whose exit (not broken here) put app_tcb back: then a
    later syscall's return breaks it again where a stack canary (%fs:0x28) is checked,
    hence two endings, as for broken-fs."""
    run = osvgdb_run("--accel", "tcg", "--kernel", variant("syscall-fs"),
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status in (SIGABRT, SIGSEGV), run
    if run.status == SIGABRT:
        assert "*** stack smashing detected ***: terminated" in run.err_lines, run
    else:
        segfault_line(run, "hello-glibc", "0x0")


def test_counter_leak_on_the_page_fault_exit(variants: None) -> None:
    run = osvgdb_run("--accel", "tcg", "--kernel", variant("counter-leak"),
                     str(app("hello", "glibc")))  # fmt: skip
    assert run.status == SIGSEGV, run
    segfault_line(run, "hello-glibc", "0x0")


# ---- the crash programs ----


def test_nullthread() -> None:
    # -t: stdout line-buffered, as on a terminal; into a pipe the line would die unwritten.
    run = osvgdb_run("--accel", "tcg", "-t", "--smp", "2", str(app("nullthread", "glibc")))
    assert run.status == SIGSEGV, run
    assert "nullthread: worker storing its result" in run.app_lines, run
    assert "(page fault, error 0x2)" in segfault_line(run, "nullthread-glibc", "0x0"), run


def test_assert() -> None:
    run = osvgdb_run("--accel", "tcg", str(app("assert", "glibc")))
    assert run.status == SIGABRT, run
    assert any(
        line.endswith("check_balance: Assertion `balance >= 0' failed.") for line in run.err_lines
    ), run


def test_recurse_ends_as_a_stack_overflow() -> None:
    run = osvgdb_run("--accel", "tcg", str(app("recurse", "glibc")))
    assert run.status == SIGSEGV, run
    (line,) = [line for line in run.lines if line.startswith("osv: /recurse-glibc: ")]
    assert re.fullmatch(
        r"osv: /recurse-glibc: stack overflow: segmentation fault at 0x7fffff7f\w{4}, rip 0x\w+, "
        r"below the 8 MiB stack \(page fault, error 0x\w+\)",
        line,
    ), run


@pytest.mark.parametrize("name, line", [
    ("deadlock", "deadlock: two threads taking two locks in opposite orders"),
    ("busy", "busy: spinning for ever"),
])  # fmt: skip
def test_hang(name: str, line: str) -> None:
    run = osvgdb_run("--accel", "tcg", "-t", "--smp", "2", "--timeout", HANG_TIMEOUT,
                     str(app(name, "glibc")))  # fmt: skip
    assert run.status == EXIT_TIMEOUT, run
    assert line in run.app_lines, run


def test_race_ends_either_way() -> None:
    """Whether it crashes is up to timing (about half the runs at -smp 2): either the
    NULL dereference in read_quantity or a clean exit, never anything else."""
    run = osvgdb_run("--accel", "tcg", "--smp", "2", str(app("race", "glibc")))
    assert run.status in (0, SIGSEGV), run
    if run.status == 0:
        assert run.app_lines[-1].startswith("race: no crash ("), run
    else:
        segfault_line(run, "race-glibc", "0x0")


# ---- what a debugger reads at process_exit ----


def stop_at_process_exit(debugged: Debugged) -> str:
    gdb = debugged.gdb
    gdb.run("break process_exit")
    return gdb.run("continue")


def value(debugged: Debugged, expression: str) -> str:
    output = debugged.gdb.run(f"output {expression}")
    return output.strip()


def test_fatal_report_of_an_exception() -> None:
    debugged = Debugged(app("nullthread", "glibc"))
    try:
        output = stop_at_process_exit(debugged)
        assert f"process_exit (status=status@entry={SIGSEGV})" in output, output
        assert value(debugged, "process.app_started") == "true"
        assert value(debugged, "fatal_report.cause") == "FATAL_EXCEPTION"
        for field, expected in [("sig", "11"), ("vector", "14"), ("error_code", "2"),
                                ("cr2", "0"), ("syscall_nr", "-1"), ("tid", "2")]:  # fmt: skip
            assert value(debugged, f"fatal_report.{field}") == expected, field
        assert value(debugged, "fatal_report.trap_frame->rip == fatal_report.rip") == "1"
        assert value(debugged, "fatal_report.trap_frame->rsp == fatal_report.rsp") == "1"
        assert value(debugged, "fatal_report.syscall_frame == 0") == "1"
        assert "store_result" in debugged.gdb.run("info symbol fatal_report.rip")
    finally:
        debugged.close()


def test_fatal_report_of_a_signal_the_app_sent() -> None:
    debugged = Debugged(app("assert", "glibc"))
    try:
        output = stop_at_process_exit(debugged)
        assert f"process_exit (status=status@entry={SIGABRT})" in output, output
        assert value(debugged, "fatal_report.cause") == "FATAL_SIGNAL_SENT"
        # glibc's abort() raises SIGABRT with tgkill (234).
        for field, expected in [("sig", "6"), ("vector", "-1"), ("tid", "1"),
                                ("syscall_nr", "234")]:  # fmt: skip
            assert value(debugged, f"fatal_report.{field}") == expected, field
        assert value(debugged, "fatal_report.syscall_frame->rip == fatal_report.rip") == "1"
        assert value(debugged, "fatal_report.trap_frame == 0") == "1"
    finally:
        debugged.close()


def test_refused_command_line_never_starts_the_app() -> None:
    """An unknown --inject is a bad command line (status 64), and the app never started."""
    debugged = Debugged(app("hello", "glibc"), kernel_args=["--inject=no-such-fault"])
    try:
        output = stop_at_process_exit(debugged)
        assert f"process_exit (status=status@entry={EXIT_USAGE})" in output, output
        # The console reaches us through a copying thread: wait for the kernel's line,
        # printed before process_exit was reached.
        debugged.console.wait_for("osv: --inject: no such fault to inject: no-such-fault", timeout=30)
        assert value(debugged, "process.app_started") == "false"
        assert value(debugged, "fatal_report.cause") == "FATAL_NONE"
    finally:
        debugged.close()
