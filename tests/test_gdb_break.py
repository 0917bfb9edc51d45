"""osv-break, the Python API and the entry-frame unwinder on the bundled programs, in
real QEMU under real GDB. Oracles: the host's strace of the same binaries, and the
app's own symbols (its busy loop is in main)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import ROOT, app
from test_gdb_hello import host_strace_names

HELLO = 'write(1, "Hello from C code\\n", 18)'


@pytest.fixture
def hello(kernel: None) -> Debugged:
    debugged = Debugged(app("hello", "glibc"))
    yield debugged
    debugged.close()


def _stops(gdb, limit: int = 20) -> list[str]:
    """Continue until the guest is gone; the osv: lines of each stop."""
    stops = []
    for _ in range(limit):
        output = gdb.run("continue")
        stops += [line for line in output.splitlines() if line.startswith("osv: CPU")]
        if "Remote connection closed" in output or "exited" in output:
            return stops
    raise AssertionError(f"the guest never finished: {stops}")


def test_break_write_stops_once_per_write_with_the_string(hello: Debugged, tmp_path: Path) -> None:
    created = hello.gdb.run("osv-break syscall write")
    assert "osv-break 1: syscall write\n" in created
    stops = _stops(hello.gdb)
    writes = host_strace_names(app("hello", "glibc"), tmp_path).count("write")
    assert stops == [f"osv: CPU 0 tid 1 (main): {HELLO}"] * writes


def test_break_stop_names_its_own_breakpoint_beside_internal_ones(hello: Debugged) -> None:
    # osv-trace's internal breakpoint (a negative number) is at syscall_handler first.
    hello.gdb.run("osv-trace syscalls")
    assert "osv-break 1: syscall write\n" in hello.gdb.run("osv-break syscall write")
    stop = hello.gdb.run("continue")
    assert f"osv: CPU 0 tid 1 (main): {HELLO}" in stop
    assert "\nBreakpoint 1, syscall_handler (f=0x" in stop
    assert "Breakpoint -" not in stop
    assert "It stopped at breakpoint 1." in hello.gdb.run("info program")


def test_break_exit_shows_the_result(hello: Debugged) -> None:
    hello.gdb.run("osv-break syscall write --exit")
    stop = hello.gdb.run("continue")
    assert f"osv: CPU 0 tid 1 (main): {HELLO} = 18" in stop
    assert "syscall_exit" in stop or "syscall_entry" in stop
    hello.console.wait_for("Hello from C code")  # the write ran


def test_break_json_stop_is_one_object(hello: Debugged) -> None:
    hello.gdb.run("osv-break syscall write --exit --json")
    stop = hello.gdb.run("continue")
    (line,) = [x for x in stop.splitlines() if x.startswith("{")]
    event = json.loads(line)
    assert (event["name"], event["ret"], event["tid"], event["cpu"]) == ("write", 18, 1, 0)
    assert event["args"][2] == 18 and event["text"] == f"{HELLO} = 18"


def test_break_if_filters(hello: Debugged, tmp_path: Path) -> None:
    hello.gdb.run("osv-break syscall brk --if 'args[0] != 0 and tid == 1'")
    stops = _stops(hello.gdb)
    # glibc's static startup: brk(NULL) queries, the others move the break
    host = host_strace_names(app("hello", "glibc"), tmp_path)
    assert len(stops) == host.count("brk") - 2
    assert all(": brk(0x" in stop for stop in stops), stops


def test_break_echoes_the_filters_it_accepted_and_applies_them(hello: Debugged) -> None:
    created = hello.gdb.run("osv-break syscall 1 --exit --tid 1 --cpu 0 --if 'args[0] == 1'")
    assert "osv-break 1: syscall write --exit --tid 1 --cpu 0 --if 'args[0] == 1'\n" in created
    assert f"osv: CPU 0 tid 1 (main): {HELLO} = 18" in hello.gdb.run("continue")


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("args[9] == 1", "IndexError: tuple index out of range"),
        ("nosuch == 1", "NameError: name 'nosuch' is not defined"),
        ("args[0] / 0", "ZeroDivisionError: division by zero"),
    ],
)
def test_break_if_that_raises_is_the_users_error_and_stops(
    hello: Debugged, expression: str, error: str
) -> None:
    hello.gdb.run(f"osv-break syscall brk --if '{expression}'")
    stop = hello.gdb.run("continue")
    assert f"osv-break 1: --if '{expression}': {error}\n" in stop
    assert "internal error" not in stop and "Traceback" not in stop
    # It stopped there, once, showing the call the expression failed on.
    assert "osv: CPU 0 tid 1 (main): brk(NULL)" in stop
    assert "Breakpoint 1, syscall_handler" in stop
    assert stop.count(f"--if '{expression}'") == 1, stop


@pytest.mark.usefixtures("kernel")
def test_break_refuses_filters_that_could_never_match() -> None:
    debugged = Debugged(app("hello", "glibc"), smp=2)
    try:
        gdb = debugged.gdb
        for command, error in [
            ("syscall write --cpu 99", "--cpu 99: the guest has CPUs 0-1"),
            ("interrupt timer --cpu -1", "--cpu -1: the guest has CPUs 0-1"),
            ("syscall write --tid -1", "--tid -1: only app threads make syscalls"),
            ("syscall write --tid 0", "--tid 0: only app threads make syscalls"),
            ("exception page-fault --tid -1", "--tid -1: tids start at 0"),
            ("syscall 99999", "syscall 99999 is beyond the syscall table (0-"),
        ]:
            output = gdb.run(f"osv-break {command}")
            assert output.strip().startswith(f"osv-break: {error}"), output
            assert len(output.strip().splitlines()) == 1, output
        assert "No breakpoints" in gdb.run("info breakpoints")
        # Still at the first instruction, the kernel has counted one CPU (nr_cpus is 1):
        # CPU 1 is QEMU's second vCPU all the same. The boot thread, tid 0, takes faults.
        assert "osv-break 1: syscall write --cpu 1\n" in gdb.run("osv-break syscall write --cpu 1")
        assert "osv-break 2: exception page-fault --tid 0 -t\n" in gdb.run(
            "osv-break exception pf --tid 0 -t"
        )
        assert "osv: CPU 0 tid 0 (boot): exception 14 page-fault" in gdb.run("continue")
    finally:
        debugged.close()


def test_python_hook_stops_after_the_third_brk(hello: Debugged) -> None:
    script = ROOT / "scripts" / "example_third_brk.py"
    hello.gdb.run(f"source {script}")
    stop = hello.gdb.run("continue")
    assert "example: brk call 3 on CPU 0 tid 1 (main): brk(" in stop
    records = hello.gdb.json("osv-syscalls -n 0 --json")["records"]
    # Stopped at syscall_handler's entry: the history holds the first two, done.
    brks = [r for r in records if r["name"] == "brk"]
    assert [r["state"] for r in brks] == ["done", "done"], brks


def test_bt_in_the_write_handler_crosses_into_the_app(hello: Debugged) -> None:
    hello.gdb.run("osv-break syscall write")
    hello.gdb.run("continue")
    frames = [line for line in hello.gdb.run("bt").splitlines() if line.startswith("#")]
    assert "syscall_handler" in frames[0]
    assert "<syscall write>" in frames[1]
    assert " in write ()" in frames[2], frames
    # The app frame holds the app's registers as saved at entry: rip right after its
    # `syscall` instruction (the app's own code says so), FS base its app TCB.
    tcb = hello.gdb.json("osv-tcb --json")
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    # GDB unwinds no FS base (DWARF has no number for it that GDB maps): the crossing
    # frame's struct syscall_frame holds the app's FS base at entry.
    hello.gdb.run("frame 1")
    fs_base = hello.gdb.run("output/x ((struct syscall_frame *)$sp)->fs_base").strip()
    assert fs_base == hex(main["app_tcb"])
    hello.gdb.run("frame 2")
    assert "syscall" in hello.gdb.run("x/i $pc - 2")
    assert hello.gdb.run("output $rax").strip() == "1"  # __NR_write
    assert "write" in hello.gdb.run("info symbol $pc")


def test_bt_in_the_write_handler_reaches_main(hello: Debugged) -> None:
    hello.gdb.run("osv-break syscall write")
    hello.gdb.run("continue")
    hello.gdb.run("set backtrace past-main on")  # GDB stops at main by default
    frames = [line for line in hello.gdb.run("bt").splitlines() if line.startswith("#")]
    assert "syscall_handler" in frames[0] and "<syscall write>" in frames[1], frames
    names = [line.split(" in ")[-1].split(" (")[0] for line in frames[2:]]
    assert "main" in names and "__libc_start_call_main" in names, frames
    assert names.index("__libc_start_call_main") == names.index("main") + 1, frames


@pytest.mark.usefixtures("kernel")
def test_bt_from_a_timer_interrupt_in_the_apps_busy_loop() -> None:
    exe = app("spin", "glibc")
    start, size = _symbol_extent(exe, "main")
    debugged = Debugged(exe, ["0.3"])
    try:
        gdb = debugged.gdb
        condition = f"came_from == 'app' and {start} <= rip < {start + size}"
        created = gdb.run(f'osv-break interrupt timer --if "{condition}" -t')
        # Two breakpoints: trap_handler and lazy's trap_fast_handler (never hit here)
        assert f'osv-break 1, 2: interrupt timer --if "{condition}" -t\n' in created
        stop = gdb.run("continue")
        assert "osv: CPU 0 tid 1 (main): interrupt 32 timer, error code 0x0, rip 0x" in stop
        assert stop.rstrip().splitlines()[-3:] and "from app" in stop, stop
        frames = [line for line in gdb.run("bt").splitlines() if line.startswith("#")]
        assert "trap_handler" in frames[0]
        assert "<interrupt 32 timer>" in frames[1]
        # Then the app: main, or what the compiler inlined into it (atof), then main.
        assert any(" main (" in frame for frame in frames[2:4]), frames
    finally:
        debugged.close()


def _symbol_extent(exe: Path, name: str) -> tuple[int, int]:
    """(address, size) of a symbol, from binutils' nm."""
    output = subprocess.run(
        ["nm", "-S", str(exe)], capture_output=True, text=True, check=True
    ).stdout
    for line in output.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[3] == name:
            return int(fields[0], 16), int(fields[1], 16)
    raise AssertionError(f"{exe} has no symbol {name}")


def test_break_exception_page_fault_shows_cr2_and_origin(hello: Debugged) -> None:
    hello.gdb.run("osv-break exception page-fault -t")
    stop = hello.gdb.run("continue")
    line = next(line for line in stop.splitlines() if line.startswith("osv: CPU"))
    assert ": exception 14 page-fault, error code 0x" in line
    assert ", cr2 0x" in line and line.split(" from ")[-1] in ("app", "syscall", "kernel")
    # The first fault is the kernel's loader on the boot thread (CPU 0's idle thread too).
    assert "(boot)" not in line or line.endswith(" from kernel"), line
    cr2 = int(line.split(", cr2 ")[1].split(",")[0], 16)
    assert hello.gdb.run("output/x $cr2").strip() == hex(cr2)
    assert f"<page fault at {cr2:#x}>" in hello.gdb.run("bt")
