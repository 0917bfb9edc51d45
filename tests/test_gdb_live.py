"""osv-* commands and $osv_* functions without a live target: one line saying so,
never an answer read from the kernel ELF's zero-initialised tables. Real GDB, and
for a QEMU that dies under GDB, real QEMU killed with SIGKILL."""

from __future__ import annotations

import io
import subprocess

import pytest
from gdbdriver import Debugged
from guest import KERNEL, ROOT, app

from osvgdb.debug import DebugSession
from osvgdb.run import RunOptions

NO_LIVE_TARGET = "no live target (connect with target remote, or QEMU has exited)"

# (command, the name its error line starts with)
COMMANDS = [
    ("osv-syscalls", "osv-syscalls"),
    ("osv-auxv", "osv-auxv"),
    ("osv-app-symbols", "osv-app-symbols"),
    ("osv-tcb", "osv-tcb"),
    ("print $osv_thread(1)", "$osv_thread"),
]


def _batch(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )


@pytest.mark.usefixtures("kernel")
def test_without_a_target_each_command_says_so_and_batch_fails() -> None:
    commands = [c for c, _ in COMMANDS] + [
        "osv-break syscall write",
        "osv-trace status",
        "print $osv_cpu()",
    ]
    argv = ["gdb", "-q", "-nx", "--batch", "-x", str(ROOT / "gdbinit.py")]
    for command in commands:
        argv += ["-ex", command]
    result = _batch([*argv, str(KERNEL)])
    who = [w for _, w in COMMANDS] + ["osv-break", "osv-trace", "$osv_cpu"]
    lines = [line for line in result.stderr.splitlines() if NO_LIVE_TARGET in line]
    assert lines == [f"{w}: {NO_LIVE_TARGET}" for w in who], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "no records" not in result.stdout
    assert result.returncode != 0  # the last command failed


@pytest.mark.usefixtures("kernel")
def test_help_needs_no_target() -> None:
    result = _batch(
        ["gdb", "-q", "-nx", "--batch", "-x", str(ROOT / "gdbinit.py"), "-ex", "osv-tcb --help"]
        + [str(KERNEL)]
    )
    assert result.returncode == 0, result.stderr
    assert "usage: osv-tcb" in result.stdout


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(("command", "who"), COMMANDS, ids=[w for _, w in COMMANDS])
def test_after_qemu_died_each_command_says_so(command: str, who: str) -> None:
    debugged = Debugged(app("hello", "glibc"))
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall write")
        assert "write(1, " in gdb.run("continue")  # tables full of real state
        debugged.session.vm.kill()
        # The first command's read is what finds the connection dead.
        assert gdb.run(command).strip() == f"{who}: {NO_LIVE_TARGET}"
        # From then on GDB has no target at all.
        assert gdb.run("osv-syscalls").strip() == f"osv-syscalls: {NO_LIVE_TARGET}"
    finally:
        debugged.close()


@pytest.mark.usefixtures("kernel")
def test_after_qemu_died_batch_fails() -> None:
    options = RunOptions(exe=app("hello", "glibc"), accel="tcg")
    with DebugSession(options, console=io.BytesIO()) as session:
        assert session.vm is not None and session.vm.process is not None
        pid = session.vm.process.pid
        # `shell` waits for kill(1): QEMU runs no more code once SIGKILL is pending.
        commands = [f"shell kill -KILL {pid}", "osv-syscalls"]
        result = _batch(session.gdb_argv(commands, batch=True, extra=["-nx"]))
    assert f"osv-syscalls: {NO_LIVE_TARGET}" in result.stderr
    assert result.returncode != 0
