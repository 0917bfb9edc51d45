"""A kernel panic: the report on the console, `osv-exit: panic`, and every CPU halted
in osv_panic_halt where a debugger finds it (real QEMU gdbstub, real GDB)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from guest import KERNEL, app, osvgdb_run

from osvgdb.initrd import EXECUTABLE_MODE, Member, write_initrd
from osvgdb.qemu import command_line
from osvgdb.run import EXIT_PANIC

pytestmark = pytest.mark.usefixtures("kernel")


def test_panic_report_and_status() -> None:
    run = osvgdb_run("--kernel-arg=--test-panic", str(app("hello", "glibc")))
    assert run.status == EXIT_PANIC, run
    report = run.console[run.console.index("osv: kernel panic:") :]
    # --test-panic writes to address 0 from kernel code: a page fault, write, not present.
    assert "osv: kernel panic: page fault (vector 14, error 0x2)" in report, run
    assert "cr2 0x0" in report, run
    for field in (
        "rip 0x",
        "fs_base 0x",
        "gs_base 0x",
        "kernel_tcb 0x",
        "tid 0",
        "kernel_tcb_counter 1",
    ):
        assert field in report, (field, run)
    assert "Hello from C code" not in run.stdout


def test_panic_halts_in_osv_panic_halt(tmp_path: Path) -> None:
    initrd = tmp_path / "initrd.cpio"
    exe = app("hello", "glibc")
    write_initrd(initrd, [Member(exe.name, exe, EXECUTABLE_MODE)])
    sock = tmp_path / "gdb.sock"
    debugcon = tmp_path / "debugcon"
    qemu = subprocess.Popen(
        command_line(kernel=KERNEL, initrd=initrd, cmdline=f"--test-panic /{exe.name}", accel="tcg",
                     smp=1, fsgsbase=True, debugcon=debugcon)
        + ["-chardev", f"socket,path={sock},server=on,wait=off,id=gdb0", "-gdb", "chardev:gdb0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while "osv-exit: panic" not in (debugcon.read_text() if debugcon.exists() else ""):
            assert time.monotonic() < deadline, "no panic reported on debugcon"
            assert qemu.poll() is None, "QEMU exited: the kernel must halt after a panic"
            time.sleep(0.05)
        gdb = subprocess.run(
            ["gdb", "-nx", "-batch", "-ex", "set architecture i386:x86-64",
             "-ex", f"target remote {sock}", "-ex", "bt", "-ex", "p cpus[0].id", str(KERNEL)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert gdb.returncode == 0 and "internal-error" not in gdb.stderr, gdb.stdout + gdb.stderr
        assert "osv_panic_halt" in gdb.stdout, gdb.stdout + gdb.stderr
        assert "panic_trap" in gdb.stdout, gdb.stdout + gdb.stderr
    finally:
        qemu.kill()
        qemu.wait()
