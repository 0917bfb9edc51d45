"""Where an interrupt came from, as osv-break interrupt reports it: a timer tick that
lands while the CPU runs its idle thread (the app asleep in nanosleep) is `from idle`,
never `from syscall`, though the idle thread runs on a kernel stack as syscalls do."""

from __future__ import annotations

import pytest
from gdbdriver import Debugged
from guest import app


@pytest.mark.usefixtures("kernel")
def test_a_tick_on_the_idle_thread_is_from_idle() -> None:
    # --hz=10: ticks 100 ms apart, so none piles up while GDB holds the guest.
    debugged = Debugged(app("sleep", "glibc"), ["2"], kernel_args=["--hz=10"])
    try:
        gdb = debugged.gdb
        gdb.run("osv-break interrupt timer --if \"came_from != 'app'\"")
        debugged_lines = []
        # Ticks in main's own syscalls come first; the app soon sleeps and the CPU idles.
        while sum(idle == "1" for _, idle in debugged_lines) < 2 and len(debugged_lines) < 40:
            stop = gdb.run("continue")
            (line,) = [x for x in stop.splitlines() if x.startswith("osv: CPU")]
            idle = gdb.run("output cpus[0].current == cpus[0].idle_thread").strip()
            debugged_lines.append((line, idle))
    finally:
        debugged.close()
    for line, idle in debugged_lines:
        # Not idle: the app's thread in kernel code (its nanosleep), from syscall.
        assert line.endswith("from idle" if idle == "1" else "from syscall"), (line, idle)
    assert any(idle == "1" for _, idle in debugged_lines), debugged_lines
