"""Signal handlers under real GDB, on kernel/apps/signals.c at -smp 2: osv-tcb names the
signal a thread's handler runs for, with the CPU's verdict consistent (a handler is app
code: FS = app_tcb, counter 0); GDB's own backtrace goes from the handler through the
rt_sigframe (`<signal handler called>`, found from __restore_rt) into the interrupted
code, and so does osv-bt's own unwinder (from the ucontext at __restore_rt, glibc's and
musl's alike); osv-fscheck stays silent over the whole run, handlers, faults and
sigreturns too."""

from __future__ import annotations

import pytest
from gdbdriver import Debugged
from guest import app

SIGUSR1, SIGUSR2 = 10, 12


def _stop_in(debugged: Debugged, function: str) -> tuple[dict, dict, str]:
    """Continue to FUNCTION: (the thread running it, its CPU, GDB's backtrace)."""
    gdb = debugged.gdb
    gdb.run(f"tbreak {function}")
    assert function in gdb.run("continue")
    tcb = gdb.json("osv-tcb --json")
    pc = int(gdb.run("output/x $pc").strip().split()[0], 16)
    (cpu,) = [c for c in tcb["cpus"] if c["rip"] == pc]
    (thread,) = [t for t in tcb["threads"] if t["tid"] == cpu["current_tid"]]
    return thread, cpu, gdb.run("bt")


@pytest.fixture(scope="module")
def debugged(kernel: None):
    debugged = Debugged(app("signals", "glibc"), smp=2)
    try:
        debugged.gdb.run("tbreak dispatch")  # the app's symbols are loaded by its first call
        debugged.gdb.run("continue")
        yield debugged
    finally:
        debugged.close()


def test_handler_on_the_app_tcb_seen_by_osv_tcb_and_bt(debugged: Debugged) -> None:
    thread, cpu, bt = _stop_in(debugged, "on_usr1")
    assert cpu["where"] == "app" and cpu["verdict"] == "consistent", cpu
    assert cpu["fs_base"] == thread["app_tcb"] != 0 and cpu["counter"] == 0, (cpu, thread)
    assert thread["name"] == "main" and thread["in_signal"] == SIGUSR1, thread
    assert thread["signal_frame"] == cpu["rsp"], (thread, cpu)  # at entry: rsp = &pretcode
    frames = [line for line in bt.splitlines() if line.startswith("#")]
    assert "on_usr1" in frames[0] and "<signal handler called>" in frames[1], bt
    assert any(" raise " in f for f in frames) and " main (" in frames[-1], bt
    assert "signal_in_handler" in bt, bt
    text = debugged.gdb.run("osv-tcb")
    assert f"tid {thread['tid']}: in a SIGUSR1 handler" in text, text
    # signal_in_handler is inlined into main: osv-bt names the function the code is in
    _osv_bt_through_the_handler(debugged, thread["tid"], "on_usr1", "main")
    # osv-syscalls: the handler's installation and the raise, decoded from the history's
    # captures (the call-time bytes: no "memory now")
    handler = int(debugged.gdb.run("output/x (long)&on_usr1").strip(), 16)
    calls = debugged.gdb.run("osv-syscalls -n 40")
    installed = (
        f"rt_sigaction(SIGUSR1, {{sa_handler={handler:#x}, sa_mask=[], "
        "sa_flags=SA_RESTORER|SA_SIGINFO, sa_restorer=0x"
    )
    assert installed in calls, calls
    assert f"tgkill({thread['tid']}, {thread['tid']}, SIGUSR1) = 0" in calls, calls
    assert "memory now" not in "".join(line for line in calls.splitlines() if "rt_sig" in line)


def _osv_bt_through_the_handler(debugged: Debugged, tid: int, handler: str, caller: str) -> None:
    """osv-bt's frames: the handler, the signal crossing, then the interrupted code,
    the same functions GDB's unwinder gives."""
    (trace,) = debugged.gdb.json(f"osv-bt --tid {tid} --json")["backtraces"]
    frames = trace["frames"]
    assert frames[0]["function"] == handler, frames
    assert frames[1]["function"] == "<signal handler called>", frames
    assert frames[1]["kind"] == "crossing", frames
    assert caller in [f.get("function") for f in frames[2:]], frames


def test_handler_in_another_thread(debugged: Debugged) -> None:
    """pthread_kill to a worker spinning in app code: the IPI's exit delivers there."""
    thread, cpu, bt = _stop_in(debugged, "on_usr2_thread")
    assert cpu["where"] == "app" and cpu["verdict"] == "consistent", cpu
    assert thread["name"] != "main" and thread["in_signal"] == SIGUSR2, thread
    assert cpu["fs_base"] == thread["app_tcb"], (cpu, thread)
    frames = [line for line in bt.splitlines() if line.startswith("#")]
    assert "<signal handler called>" in frames[1] and "worker" in frames[2], bt
    tcb = debugged.gdb.json("osv-tcb --json")
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert not main["in_signal"], main  # its handlers returned, or were left by siglongjmp
    _osv_bt_through_the_handler(debugged, thread["tid"], "on_usr2_thread", "worker")


@pytest.mark.usefixtures("kernel")
def test_musl_handler_backtraces() -> None:
    """musl's __restore_rt has no CFI: both unwinders know it by its instructions. musl's
    raise takes the signal on the way out of the rt_sigprocmask that unblocks it again
    (__restore_sigs); musl has no unwind tables, so the backtraces end soon after."""
    debugged = Debugged(app("signals", "musl"), smp=2)
    try:
        debugged.gdb.run("tbreak dispatch")
        debugged.gdb.run("continue")
        thread, cpu, bt = _stop_in(debugged, "on_usr1")
        assert thread["in_signal"] == SIGUSR1 and cpu["verdict"] == "consistent", (thread, cpu)
        frames = [line for line in bt.splitlines() if line.startswith("#")]
        assert "<signal handler called>" in frames[1] and "__restore_sigs" in frames[2], bt
        _osv_bt_through_the_handler(debugged, thread["tid"], "on_usr1", "__restore_sigs")
    finally:
        debugged.close()


@pytest.mark.usefixtures("kernel")
def test_fscheck_is_silent_over_the_signals_run() -> None:
    debugged = Debugged(app("signals", "musl"), smp=2, kernel_args=["--hz=100"])
    try:
        gdb = debugged.gdb
        assert "osv-fscheck: on" in gdb.run("osv-fscheck on")
        gdb.run("break process_exit")
        output = gdb.run("continue", timeout=1800)
        status = gdb.json("osv-fscheck status --json")
    finally:
        debugged.close()
    assert "process_exit (status=0)" in output and "osv-fscheck:" not in output, output
    assert status["violations"] == 0 and status["crossings"] > 100, status
    assert "signals done" in debugged.console.text()
