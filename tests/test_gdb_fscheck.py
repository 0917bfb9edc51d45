"""osv-fscheck in real QEMU under real GDB: silent over a correct multi-threaded run on
two CPUs, and stopping with the right explanation on the deliberately broken kernel
(`make -C kernel broken-fs`: trap exits forget to load app_tcb)."""

from __future__ import annotations

import re
import signal
import subprocess
import time

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
@pytest.mark.parametrize("protocol", ["counter", "compare", "lazy"])
def test_fscheck_is_silent_over_a_whole_threaded_run_on_two_cpus(protocol: str) -> None:
    """Every crossing of the whole run, under each FS protocol (--fs-protocol): the
    kernel's rules follow the one that runs. The timer runs at 100 Hz (--hz=100), as
    the guest's clock runs on while GDB holds it at the breakpoints set here."""
    debugged = Debugged(
        app("threads", "glibc"), smp=2, kernel_args=["--hz=100"], fs_protocol=protocol
    )
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
    (explanation, stopped) = [line for line in output.splitlines() if line.startswith("osv-fscheck:")]
    assert stopped == "osv-fscheck: stopped at trap_return, the crossing's last instruction"
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert where == trap_return, output
    assert explanation.startswith(
        "osv-fscheck: FS-base rule return-fs broken at trap_return on CPU 0, tid 1 (main)"
    ), explanation
    # The first trap from app code after ARCH_SET_FS: a timer tick, or (now that the
    # watchdog no longer slows the guest) the page fault of the first touch of a page.
    assert re.search(r"(interrupt 32 timer|exception 14 page-fault) returning to app code", explanation)
    assert "disagreement" not in explanation
    assert f"not the thread's app_tcb {main['app_tcb']:#x} (counter 0)" in explanation
    assert "Last syscalls of tid 1: " in explanation
    assert f"arch_prctl(ARCH_SET_FS, {main['app_tcb']:#x}) = 0" in explanation
    assert "spin ok" not in debugged.console.text()


@pytest.mark.usefixtures("kernel")
def test_fscheck_watches_a_whole_32_mib_program() -> None:
    """lazy-glibc: 4 threads fault in 32 MiB of fresh memory (~8k page faults) and the
    timer ticks on; the kernel's watchdog checks every crossing without stopping."""
    debugged = Debugged(app("lazy", "glibc"), smp=2)
    try:
        output, status = _silent_until_exit(debugged)
        console = debugged.console.wait_for("lazy ok 4", timeout=30)
    finally:
        debugged.close()
    assert "process_exit (status=0)" in output and "osv-fscheck:" not in output, output
    assert "lazy ok 4" in console
    assert status["violations"] == 0 and status["crossings"] > 2 * 8192, status
    assert set(status["crossings_by_cpu"]) == {"0", "1"}, status


@pytest.mark.usefixtures("kernel")
def test_interrupt_stops_the_guest_while_the_watchdog_runs() -> None:
    """^C (SIGINT to GDB) while spin-glibc computes for 60 s under osv-fscheck: the guest
    stops at once and GDB answers."""
    debugged = Debugged(app("spin", "glibc"), ["60"])
    try:
        gdb = debugged.gdb
        gdb.run("osv-fscheck on")
        gdb.start("continue")
        debugged.console.wait_for("Cmdline:", timeout=30)
        time.sleep(1.0)
        gdb.process.send_signal(signal.SIGINT)
        output = gdb.wait(timeout=20)
        status = gdb.json("osv-fscheck status --json")
    finally:
        debugged.close()
    assert "SIGINT" in output or "interrupt" in output.lower(), output
    assert status["on"] and status["violations"] == 0 and status["crossings"] > 100, status
    assert "spin ok" not in debugged.console.text()


@pytest.mark.usefixtures("kernel")
def test_fscheck_watches_lazys_fast_syscalls() -> None:
    """callcost-glibc's 300 raw getppid calls under --fs-protocol=lazy take the fast path
    (FS never switched, only the return checked) among ordinary calls: the watchdog stays
    silent, and the history holds them all, with the app's FS at entry and counter 0."""
    debugged = Debugged(app("callcost", "glibc"), ["300"], fs_protocol="lazy")
    try:
        output, status = _silent_until_exit(debugged)
        fast = debugged.gdb.run("output/d syscall_fast[110]").strip()  # __NR_getppid
        tcb = debugged.gdb.json("osv-tcb --json")
        calls = debugged.gdb.json("osv-syscalls --name getppid -n 1000 --json")["records"]
    finally:
        debugged.close()
    assert "process_exit (status=0)" in output and "osv-fscheck:" not in output, output
    assert status["violations"] == 0 and status["crossings"] > 900, status
    assert fast == "1", fast
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert len(calls) == 300, len(calls)
    entry_states = {(c["fs_base"], c["kernel_tcb_counter"]) for c in calls}
    assert entry_states == {(main["app_tcb"], 0)}, calls[0]


@pytest.mark.usefixtures("kernel")
def test_fscheck_watches_lazys_fast_timer_ticks() -> None:
    """spin-glibc's busy loop under --fs-protocol=lazy: its ticks take trap_fast_path (FS
    left on the app's TCB, only the return checked); the watchdog stays silent."""
    debugged = Debugged(app("spin", "glibc"), ["0.5"], fs_protocol="lazy")
    try:
        output, status = _silent_until_exit(debugged)
        fast = int(debugged.gdb.run("output cpus[0].fast_ticks").strip())
    finally:
        debugged.close()
    assert "process_exit (status=0)" in output and "osv-fscheck:" not in output, output
    assert status["violations"] == 0 and status["crossings"] > fast > 100, (status, fast)
