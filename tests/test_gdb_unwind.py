"""Backtraces through the entry paths at every stop, in real QEMU under real GDB: at
osv-break --exit stops and at each instruction of the syscall and interrupt exit
paths, `bt` goes through the crossing into the app and reaches main (or the thread's
function). Oracle: the app's own symbols."""

from __future__ import annotations

import errno
import re

import pytest
from gdbdriver import Debugged, GdbDriver
from guest import app
from test_gdb_break import _symbol_extent

STEP_LIMIT = 60  # instructions from a handler's return to the app: about 30 today
SLOW_TIMER = "--hz=100"  # fewer timer interrupts while GDB holds the guest
STOP_LINE = re.compile(r"osv: CPU \d+ tid (\d+) \(\w+\): \w+\(.*\) = (-?\d+)")  # tid, result


def backtrace(gdb: GdbDriver) -> list[str]:
    return [line for line in gdb.run("bt").splitlines() if line.startswith("#")]


def function_of(frame: str) -> str:
    """`#3  0x... in puts ()` and `#7  main (argc=1) at ...` -> puts, main."""
    match = re.match(r"#\d+\s+(?:0x[0-9a-f]+ in )?(.*?) \(", frame)
    assert match, frame
    return match.group(1)


def assert_reaches(frames: list[str], function: str) -> None:
    assert function in [function_of(frame) for frame in frames], "\n".join(frames)


def pc(gdb: GdbDriver) -> int:
    return int(gdb.run("output/x $pc").strip(), 16)


def label_address(gdb: GdbDriver, name: str) -> int:
    return int(gdb.run(f"output/x (unsigned long)&{name}").strip(), 16)


def step_to_the_app(gdb: GdbDriver, crossing: str, function: str) -> list[int]:
    """stepi until frame 0 is no longer the crossing, checking at every instruction
    that `bt` starts at the crossing and reaches `function`; the pcs stepped."""
    visited = []
    for _ in range(STEP_LIMIT):
        frames = backtrace(gdb)
        if crossing not in frames[0]:
            assert_reaches(frames, function)
            return visited
        assert_reaches(frames, function)
        visited.append(pc(gdb))
        gdb.run("stepi")
    raise AssertionError(f"still at {crossing} after {STEP_LIMIT} instructions")


@pytest.fixture
def backtraces_past_main():
    """Debugged programs with `set backtrace past-main on`, closed after the test."""
    opened = []

    def start(exe, args=None, **options) -> Debugged:
        debugged = Debugged(exe, args, **options)
        opened.append(debugged)
        debugged.gdb.run("set backtrace past-main on")
        return debugged

    yield start
    for debugged in opened:
        debugged.close()


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "pie"])
def test_bt_at_a_write_return_reaches_main(backtraces_past_main, variant: str) -> None:
    gdb = backtraces_past_main(app("hello", variant)).gdb
    gdb.run("osv-break syscall write --exit")
    gdb.run("continue")
    frames = backtrace(gdb)
    assert frames[0].startswith("#0  <syscall write returning 18> ("), frames
    assert function_of(frames[1]) == "write", frames
    assert_reaches(frames, "main")
    # The app frame is a real frame: its registers are the app's at its syscall.
    gdb.run("frame 1")
    assert "write" in gdb.run("info symbol $pc")


@pytest.mark.usefixtures("kernel")
def test_bt_at_futex_returns_reaches_each_threads_function(backtraces_past_main) -> None:
    gdb = backtraces_past_main(app("threads", "glibc"), smp=2).gdb
    gdb.run("osv-break syscall futex --exit")
    threads = set()
    for _ in range(4):
        stop = gdb.run("continue")
        tid, ret = STOP_LINE.search(stop).groups()
        frames = backtrace(gdb)
        label = re.match(r"#0  <syscall futex returning (-?\d+)> \(", frames[0])
        assert label, frames
        raw = int(label.group(1))  # the raw result; the stop line shows strace's -1 ENAME
        if int(ret) >= 0:
            assert raw == int(ret), (stop, frames[0])
        else:
            assert raw < 0 and f"= -1 {errno.errorcode[-raw]} " in stop, (stop, frames[0])
        assert_reaches(frames, "main" if tid == "1" else "worker")
        threads.add(tid)
    assert threads - {"1"}, "no worker thread returned from a futex call"


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("flavor", ["att", "intel"])
def test_bt_at_every_instruction_of_the_syscall_exit_path(backtraces_past_main, flavor) -> None:
    gdb = backtraces_past_main(app("hello", "glibc")).gdb
    # The unwinder's stub analysis reads encodings, not the disassembler's text.
    gdb.run(f"set disassembly-flavor {flavor}")
    gdb.run("osv-break syscall write --exit")
    gdb.run("continue")
    visited = step_to_the_app(gdb, "<syscall write returning 18>", "main")
    assert visited[0] == label_address(gdb, "syscall_exit")
    assert visited[-1] == label_address(gdb, "syscall_return")


@pytest.mark.usefixtures("kernel")
def test_bt_at_every_instruction_of_the_interrupt_exit_path(backtraces_past_main) -> None:
    debugged = backtraces_past_main(app("spin", "glibc"), ["0.3"], kernel_args=[SLOW_TIMER])
    gdb = debugged.gdb
    start, size = _symbol_extent(app("spin", "glibc"), "main")  # its busy loop
    gdb.run(f'osv-break interrupt timer --if "{start} <= rip < {start + size}" -t')
    gdb.run("continue")
    gdb.run("finish")  # back from trap_handler, at the instruction after its call
    visited = step_to_the_app(gdb, "<interrupt 32 timer>", "main")
    assert visited[-1] == label_address(gdb, "trap_return")


@pytest.mark.usefixtures("kernel")
def test_frames_no_symbol_covers_print_as_gdb_prints_them(backtraces_past_main) -> None:
    gdb = backtraces_past_main(app("hello", "glibc")).gdb
    gdb.run("set osv-app-path")  # no app symbols: no app frame has a function
    gdb.run("osv-break syscall write --exit")
    gdb.run("continue")
    frames = backtrace(gdb)
    unfiltered = [line for line in gdb.run("bt -no-filters").splitlines() if line.startswith("#")]
    assert frames[0].startswith("#0  <syscall write returning 18> ("), frames
    assert frames[1:] == unfiltered[1:] and " in ?? ()" in frames[1], frames


@pytest.mark.usefixtures("kernel")
def test_interrupt_names_come_from_the_kernels_enum(backtraces_past_main) -> None:
    gdb = backtraces_past_main(app("threads", "glibc"), smp=2).gdb
    known = gdb.run("osv-break interrupt no-such-interrupt")
    known_names = "(known: reschedule, signal, spurious, timer, tlb, tlb-shootdown, virtio)"
    assert known_names in known, known
    # An idle CPU is woken by the reschedule IPI when a thread becomes ready for it.
    assert ": interrupt reschedule -t" in gdb.run("osv-break interrupt reschedule -t")
    stop = gdb.run("continue")
    assert ": interrupt 241 reschedule, error code 0x0" in stop, stop
    assert "<interrupt 241 reschedule>" in backtrace(gdb)[1]
