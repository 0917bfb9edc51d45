"""osv-fscheck in real QEMU under real GDB: silent over a correct multi-threaded run on
two CPUs, and stopping with the right explanation on the deliberately broken kernel
(`make -C kernel broken-fs`: trap exits forget to load app_tcb)."""

from __future__ import annotations

import subprocess

import pytest
from gdbdriver import Debugged
from guest import ROOT, app

BROKEN_KERNEL = ROOT / "build" / "kernel-broken-fs.elf"


@pytest.fixture(scope="module")
def broken_kernel(kernel: None) -> None:
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "kernel"), "broken-fs"], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"make broken-fs failed:\n{result.stdout}{result.stderr}", pytrace=False)


def _silent_until_exit(debugged: Debugged) -> tuple[str, dict]:
    gdb = debugged.gdb
    assert "osv-fscheck: on" in gdb.run("osv-fscheck on")
    gdb.run("break process_exit")
    output = gdb.run("continue", timeout=1800)
    return output, gdb.json("osv-fscheck status --json")


@pytest.mark.usefixtures("kernel")
def test_fscheck_is_silent_over_a_whole_threaded_run_on_two_cpus() -> None:
    """Every crossing of the whole run. Each is a breakpoint round trip (~2.5 ms under
    TCG) while the guest's clock runs on, so the timer runs at 100 Hz (--hz=100), not
    1 kHz: at 1 kHz the ticks that pile up during the stops make it take 15 minutes."""
    debugged = Debugged(app("threads", "glibc"), smp=2, kernel_args=["--hz=100"])
    try:
        output, status = _silent_until_exit(debugged)
    finally:
        debugged.close()
    assert "process_exit (status=0)" in output and "osv-fscheck:" not in output, output
    assert status["violations"] == 0 and status["crossings"] > 500, status


def test_fscheck_explains_the_broken_trap_exit(broken_kernel: None) -> None:
    """The broken kernel's trap exit counts down but never loads app_tcb: the first timer
    interrupt that lands in the busy loop returns to app code on the kernel TCB."""
    debugged = Debugged(app("spin", "glibc"), ["0.5"], kernel=BROKEN_KERNEL)
    try:
        gdb = debugged.gdb
        # On from after arch_prctl(ARCH_SET_FS), so the history has calls to show.
        gdb.run("osv-break syscall set_tid_address -t")
        gdb.run("continue")
        gdb.run("osv-fscheck on")
        output = gdb.run("continue")
        tcb = gdb.json("osv-tcb --json")
        where = gdb.run("output/x $pc").strip()
        trap_return = gdb.run("output/x &trap_return").strip().split()[0]
    finally:
        debugged.close()
    (explanation,) = [line for line in output.splitlines() if line.startswith("osv-fscheck:")]
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert where == trap_return, output
    assert explanation.startswith(
        "osv-fscheck: FS-base rule return-fs broken at trap_return on CPU 0, tid 1 (main)"
    ), explanation
    assert "interrupt 32 timer returning to app code" in explanation
    assert f"not the thread's app_tcb {main['app_tcb']:#x} (counter 0)" in explanation
    assert "Last syscalls of tid 1: " in explanation
    assert f"arch_prctl(ARCH_SET_FS, {main['app_tcb']:#x}) = 0" in explanation
    assert "spin ok" not in debugged.console.text()
