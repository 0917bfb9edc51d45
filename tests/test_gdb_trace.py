"""osv-trace and osv-break under real QEMU and GDB, one and two CPUs.

Oracles: the kernel's own --strace lines printed on the console in the same run
(the issue names it), QEMU's vCPU numbering (GDB thread N is vCPU N-1), and the
kernel's syscall history rings, which record each call's CPU and tid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import app

BUSYBOX = Path("/bin/busybox")


def _trace_lines(output: str) -> list[str]:
    return [line.split("] ", 1)[1] for line in output.splitlines() if line.startswith("[cpu")]


def _name_and_result(text: str) -> tuple[str, str]:
    name = text.split("(", 1)[0]
    return name, text.rsplit(" = ", 1)[1] if " = " in text else "?"


def _traced_and_strace(
    exe: Path, args: list[str], batch: int | None = None
) -> tuple[list[str], list[str], str]:
    """osv-trace's calls, the kernel's --strace lines and GDB's output of one run to
    process_exit, checked to name the same calls with the same results in order."""
    debugged = Debugged(exe, args, strace=True)
    try:
        gdb = debugged.gdb
        option = f" --batch {batch}" if batch else ""
        assert "osv-trace: tracing every syscall" in gdb.run("osv-trace syscalls -s 64" + option)
        gdb.run("break process_exit")
        output = gdb.run("continue", timeout=120)
        assert "process_exit" in output
        # The console reaches us through a pipe and a copying thread: wait for the
        # kernel's last line, printed before process_exit was reached.
        console = debugged.console.wait_for("-> exit_group(", timeout=30)
    finally:
        debugged.close()
    traced = _trace_lines(output)
    kernel = [line[3:] for line in console.splitlines() if line.startswith("-> ")]
    assert len(kernel) > 3
    assert [_name_and_result(t) for t in traced] == [_name_and_result(k) for k in kernel]
    return traced, kernel, output


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "args", [["echo", "hi"], ["md5sum", "/busybox"]], ids=["echo", "md5sum"]
)
def test_trace_of_busybox_applets_matches_the_kernels_strace(args: list[str]) -> None:
    """Debian's busybox-static (scripts/bootstrap installs it): a real third-party
    program; md5sum reads its own 2 MB file, so several batches are read (--batch 64)."""
    traced, _, _ = _traced_and_strace(BUSYBOX, args, batch=64)
    assert len(traced) > (100 if args[0] == "md5sum" else 5)


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_trace_prints_the_same_sequence_as_the_kernels_strace(variant: str) -> None:
    traced, kernel, output = _traced_and_strace(app("hello", variant), [])
    write = "writev" if variant == "musl" else "write"
    (ours,) = [t for t in traced if t.startswith(write + "(")]
    (theirs,) = [k for k in kernel if k.startswith(write + "(")]
    assert "Hello from C code" in ours and ours.endswith(" = 18")
    if variant == "glibc":
        assert ours == theirs
    assert all(line.startswith("[cpu0 tid1] ") for line in output.splitlines() if "[cpu" in line)


@pytest.mark.usefixtures("kernel")
def test_trace_and_break_attribute_cpu_and_thread_under_smp2() -> None:
    debugged = Debugged(app("threads", "glibc"), smp=2)
    try:
        gdb = debugged.gdb
        # Breakpoints: each stop names the CPU whose vCPU stopped and the thread the
        # kernel's history has in flight there.
        gdb.run("osv-break syscall nanosleep clock_nanosleep --exit")
        seen = []
        for _ in range(6):
            stop = gdb.run("continue")
            (line,) = [x for x in stop.splitlines() if x.startswith("osv: CPU")]
            cpu, tid = int(line.split()[2]), int(line.split()[4])
            assert int(gdb.run("output $_thread").strip()) == cpu + 1, line
            assert int(gdb.run("output $osv_current()->tid").strip()) == tid
            records = gdb.json(f"osv-syscalls --tid {tid} -n 1 --json")["records"]
            assert records[-1]["name"] in ("nanosleep", "clock_nanosleep"), records
            seen.append((cpu, tid))
        gdb.run("delete")
        # Trace every call from here, then compare with the history at the end.
        before = gdb.json("osv-syscalls -n 0 --json")["records"]
        gdb.run("osv-trace syscalls --json")
        gdb.run("break process_exit")
        output = gdb.run("continue", timeout=120)
        assert "process_exit" in output
        history = gdb.json("osv-syscalls -n 0 --json")["records"]
    finally:
        debugged.close()
    assert len({tid for _, tid in seen}) > 1, seen
    events = [json.loads(line) for line in output.splitlines() if line.startswith('{"where"')]
    calls = [e for e in events if e["where"] == "history"]
    # Nothing lost, nothing out of order: this run's rings never wrap between reads.
    assert [e for e in events if e["where"] != "history"] == []
    assert len(calls) > 50
    # Each call's CPUs come from its record: where it entered (its ring) and returned.
    assert {e["cpu"] for e in calls} == {0, 1}
    assert all(e["entry_cpu"] == e["ring"] for e in calls)
    # In the order the calls returned (exit/exit_group at their entry), each once.
    keys = [(e["tsc_exit"] if e["ret"] is not None else e["tsc_entry"]) for e in calls]
    assert keys == sorted(keys)
    assert len({e["seq"] for e in calls}) == len(calls)

    def ended(r: dict) -> bool:
        return r["state"] == "done" or (r["state"] == "in-flight" and r["name"] in ("exit", "exit_group"))

    # Exactly the calls that returned (or ended) between the two looks at the history,
    # as the history has them: osv-trace read the rings at the final stop too, and a
    # record still being written then (torn) is neither. The history keeps each ring's
    # last 1024 records: compare within them.
    shown_before = {r["seq"] for r in before if ended(r)}
    expected = {
        r["seq"]: (r["name"], r["args"], r["ret"] if r["state"] == "done" else None, r["tid"], r["cpu"])
        for r in history
        if ended(r) and r["seq"] not in shown_before
    }
    oldest = {ring: min(r["seq"] for r in history if r["ring"] == ring) for ring in (0, 1)}
    traced = {
        e["seq"]: (e["name"], e["args"], e["ret"], e["tid"], e["entry_cpu"])
        for e in calls
        if e["seq"] >= oldest[e["ring"]]
    }
    differ = sorted(seq for seq in traced.keys() | expected.keys() if traced.get(seq) != expected.get(seq))
    assert not differ, [(seq, traced.get(seq), expected.get(seq)) for seq in differ[:8]]
    assert len({e["tid"] for e in calls}) > 2


@pytest.mark.usefixtures("kernel")
def test_trace_reports_records_lost_to_ring_wrap() -> None:
    """A batch far beyond the ring's 1024 slots: callcost's 15000 getppid/write/pread64
    calls overwrite records before osv-trace reads them. Every call is either printed or
    counted as lost, and the two add up to the kernel's own count (syscall_seq)."""
    debugged = Debugged(app("callcost", "glibc"), args=["5000"])
    try:
        gdb = debugged.gdb
        gdb.run("osv-trace syscalls --batch 1000000")
        gdb.run("break process_exit")
        output = gdb.run("continue", timeout=120)
        assert "process_exit" in output
        total = int(gdb.run("output syscall_seq").strip())
        status = gdb.run("osv-trace status")
    finally:
        debugged.close()
    lost = [line for line in output.splitlines() if "lost:" in line]
    # Lost while the ring wrapped, or (a call in flight at a read) before it returned.
    assert any("the ring wrapped before osv-trace read it" in line for line in lost), lost
    assert all("ring wrapped" in line or "before it returned" in line for line in lost), lost
    count = sum(int(line.split("<", 1)[1].split()[0]) for line in lost)
    printed = len([line for line in _trace_lines(output) if not line.startswith("<")])
    assert count > 1000
    assert printed + count == total, (printed, count, total)
    assert f"{count} lost" in status


@pytest.mark.usefixtures("kernel")
def test_trace_refuses_filters_that_never_match() -> None:
    debugged = Debugged(app("hello", "glibc"), smp=2)
    try:
        gdb = debugged.gdb
        cpu = gdb.run("osv-trace syscalls --cpu 99")
        tid = gdb.run("osv-trace syscalls --tid -1")
        number = gdb.run("osv-trace syscalls 99999")
        accepted = gdb.run("osv-trace syscalls write --tid 1 --cpu 1")
        status = gdb.run("osv-trace status")
    finally:
        debugged.close()
    assert cpu.strip() == "osv-trace: --cpu 99: the guest has CPUs 0-1", cpu
    assert "--tid -1" in tid and "osv-trace: tracing" not in tid
    assert "syscall 99999 is beyond the syscall table" in number
    assert "osv-trace: tracing write --tid 1 --cpu 1 (osv-trace off to stop)" in accepted
    assert status.strip().startswith("osv-trace: on")
