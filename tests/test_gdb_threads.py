"""osv-tcb on the multi-threaded program (kernel/apps/threads.c) on two CPUs.

The oracle is the app's own view of its threads: each worker stores
&tls_counter, an address its libc computes from its FS base, in
tls_addresses[id].  Under TLS variant II that is FS base minus one constant
offset for every thread, so once all workers have stored theirs, the workers'
app_tcbs minus those addresses must be one and the same number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import app

NTHREADS = 8
MAX_STOPS = 80


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("protocol", ["counter", "compare", "lazy"])
def test_every_thread_has_its_own_correct_app_tcb(protocol: str) -> None:
    """Under each FS protocol (--fs-protocol): the verdicts follow the one that runs."""
    exe = app("threads", "glibc")
    if not exe.exists():
        pytest.skip(f"{exe} is not built (threads arrive with kernel issue 3)")
    debugged = Debugged(exe, smp=2, fs_protocol=protocol)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall clock_nanosleep nanosleep")
        for _ in range(MAX_STOPS):
            assert "sleep(" in gdb.run("continue")
            addresses = [int(a) for a in gdb.run("output tls_addresses").strip("{} \n").split(",")]
            if all(addresses):
                break
        else:
            pytest.fail(f"not every worker stored its TLS address: {addresses}")
        tcb = gdb.json("osv-tcb --json")
    finally:
        debugged.close()
    app_threads = [t for t in tcb["threads"] if t["app_tcb"]]
    main = [t for t in app_threads if t["name"] == "main"]
    workers = [t for t in app_threads if t["name"] != "main"]
    assert len(main) == 1 and len(workers) == NTHREADS, tcb["threads"]
    app_tcbs = sorted(t["app_tcb"] for t in workers)
    offsets = {tcb_ - tls for tcb_, tls in zip(app_tcbs, sorted(addresses), strict=True)}
    assert len(offsets) == 1 and 0 < offsets.pop() < 4096, (app_tcbs, addresses)
    assert len({t["app_tcb"] for t in app_threads}) == NTHREADS + 1
    assert all(not t["problems"] and t["tcb_self"] == t["tcb"] for t in tcb["threads"])
    started = [c for c in tcb["cpus"] if c["index"] is not None]
    assert sorted(c["index"] for c in started) == [0, 1], tcb["cpus"]
    assert all(c["verdict"] == "consistent" for c in started), started
    assert tcb["fs_protocol"] == protocol
    if protocol == "compare":
        assert {t["counter"] for t in tcb["threads"]} == {0}, tcb["threads"]


@pytest.mark.usefixtures("kernel")
def test_a_cpu_holding_a_spin_lock_says_so() -> None:
    """Stopped where open makes its file (file_open: fs_lock held, by spin_lock), the CPU
    there holds at least that lock, by the lock's own record of its holder; no CPU in
    app code has a preempt_count."""
    debugged = Debugged(Path("/bin/busybox"), ["cat", "/proc/interrupts"], smp=2)
    try:
        gdb = debugged.gdb
        gdb.run("break file_open")
        assert "file_open" in gdb.run("continue")
        holder = int(gdb.run("output fs_lock.cpu"))
        locked = int(gdb.run("output fs_lock.locked"))
        tcb = gdb.json("osv-tcb --json")
        text = gdb.run("osv-tcb")
    finally:
        debugged.close()
    assert locked == 1 and holder in (0, 1), (locked, holder)
    (cpu,) = [c for c in tcb["cpus"] if c["index"] == holder]
    assert cpu["preempt_count"] >= 1, cpu
    assert f"  preempt_count {cpu['preempt_count']}: spin_lock held, no preemption" in text, text
    assert all(not c["preempt_count"] or c["where"] != "app" for c in tcb["cpus"]), tcb["cpus"]
