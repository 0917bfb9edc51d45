"""The pure backtrace engine (osvgdb.model.unwind) against GDB, live and over a dump:
real QEMU, real GDB, the threads app at -smp 2.

At one stop, inside GDB: GDB's own backtrace of each vCPU (its CFI unwinder with
entry.S's signal frames and the extension's entry unwinder: the oracle nobody here
wrote for the unwinding itself) and the pure engine's backtraces of every thread
over the live target (osvgdb.gdb.target). Then osv-dump, and the same engine over
the dump, offline. The engine must equal GDB for the threads on a vCPU, give the
same backtraces live and offline, and take the threads that are not on a CPU
from the kernel through the futex crossing into the app's pthread functions, the
thread function in threads.c and start_thread/clone. hello-pie, stopped in its
write, checks the static-pie load bias the same way."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import KERNEL, ROOT, app

from osvgdb.dump import Dump
from osvgdb.model import unwind
from osvgdb.model.elf_target import DumpTarget, ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.model.symbols import ElfImage, app_image

MAX_STOPS = 80
WANTED_BLOCKED = 2  # threads blocked in a futex wait from worker() at the stop

# Runs inside GDB: GDB's frames for each vCPU, without the frames GDB makes up from
# DWARF that are on no stack (inline functions; callers that tail-called, from
# DW_TAG_call_site: protect_user's `jmp update_range`), which the engine does not show,
# each vCPU's full register set, and the pure engine over the live target with them.
GDB_SCRIPT = r"""
import json
import gdb
# pyelftools (symbols.py reads DWARF lines with it) is in the test's virtualenv, not in
# the system Python GDB embeds: the same Python version, a pure-Python package.
if PURELIB not in sys.path:
    sys.path.append(PURELIB)
from osvgdb.gdb.target import Kernel as _GdbKernel
from osvgdb.model import unwind as _unwind

_NAMES = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15", "rax", "rcx", "rdx",
          "rsi", "rdi", "r8", "r9", "r10", "r11", "eflags", "cr2", "fs_base", "gs_base")


def _osv_unwind_report(app_path):
    selected = gdb.selected_thread()
    vcpus = []
    for thread in sorted(gdb.selected_inferior().threads(), key=lambda t: t.num):
        thread.switch()
        newest = gdb.newest_frame()
        registers = {}
        for name in _NAMES:
            try:
                registers[name] = int(newest.read_register(name)) & (2**64 - 1)
            except (ValueError, gdb.error):
                pass
        frames = []
        frame = newest
        while frame is not None and len(frames) < 100:
            if frame.type() not in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME):
                frames.append([int(frame.pc()), frame.name(), frame.type() == gdb.SIGTRAMP_FRAME])
            try:
                frame = frame.older()
            except gdb.error:
                break
        vcpus.append({"num": thread.num, "registers": registers, "frames": frames})
    selected.switch()
    kernel = _GdbKernel.get()
    traces = _unwind.backtraces(
        kernel, app_path, vcpu_registers={v["num"]: v["registers"] for v in vcpus}
    )
    threads = {t.tid: t.state for t in kernel.threads()}
    names = {t.tid: t.name for t in kernel.threads()}
    report = {
        "vcpus": vcpus,
        "threads": threads,
        "names": names,
        "backtraces": {tid: trace.as_dict() for tid, trace in traces.items()},
        "currents": {c.vcpu: c.current_tid for c in kernel.cpus()},
    }
    print("UNWIND-REPORT " + json.dumps(report))
"""


def live_report(gdb, app_path: Path) -> dict:
    text = gdb.run(f"python _osv_unwind_report({str(app_path)!r})")
    assert "UNWIND-REPORT " in text, text
    report = json.loads(text.split("UNWIND-REPORT ", 1)[1].splitlines()[0])
    report["threads"] = {int(k): v for k, v in report["threads"].items()}
    report["names"] = {int(k): v for k, v in report["names"].items()}
    report["backtraces"] = {int(k): v for k, v in report["backtraces"].items()}
    report["currents"] = {int(k): v for k, v in report["currents"].items()}
    return report


def start(exe: Path, tmp_path: Path, smp: int) -> Debugged:
    script = tmp_path / "unwind_report.py"
    script.write_text(GDB_SCRIPT.replace("PURELIB", repr(sysconfig.get_paths()["purelib"])))
    debugged = Debugged(exe, smp=smp)
    debugged.gdb.run("set backtrace past-main on")
    debugged.gdb.run(f"source {script}")
    return debugged


def functions(trace: dict) -> list[str | None]:
    return [frame["function"] for frame in trace["frames"]]


def blocked_in_worker_futex(report: dict) -> list[int]:
    tids = []
    for tid, trace in report["backtraces"].items():
        # (A thread marked blocked may still be on its CPU, on its way into schedule.)
        off_cpu = trace["source"] == "kernel_rsp"
        if report["threads"].get(tid) == "blocked" and off_cpu and trace["complete"]:
            names = functions(trace)
            if "<syscall futex>" in names and "worker" in names:
                tids.append(tid)
    return tids


def same_function(gdb_name: str | None, frame: dict, image: ElfImage | None) -> bool:
    """GDB names a function from DWARF (kernel, our apps) or its minimal symbols, whose
    choice among aliases differs from the engine's rule: the same function is the same
    symbol address under any of its names. gcc's clones (`f.constprop.0`) are `f` in DWARF."""
    if frame["kind"] == "crossing":
        return gdb_name == frame["symbol"]
    ours = frame["function"]
    if gdb_name == ours or gdb_name is None and ours is None:
        return True
    if gdb_name is None or ours is None:
        return False
    if ours.split(".", 1)[0] == gdb_name:
        return True
    return image is not None and gdb_name in image.aliases(frame["lookup"])


def compare_with_gdb(report: dict, images: unwind.Images) -> int:
    """Every vCPU's current thread: the engine's frames are GDB's (pc and function)."""
    compared = 0
    for vcpu in report["vcpus"]:
        tid = report["currents"].get(vcpu["num"])
        if tid is None:
            continue
        trace = report["backtraces"][tid]
        assert trace["source"] == f"vcpu {vcpu['num']}"
        expected = list(vcpu["frames"])
        while expected and expected[-1][0] == 0:
            expected.pop()  # GDB shows the zero pc an idle thread's stack ends with
        ours = trace["frames"]
        gdb_lines = [f"  {pc:#x} {name}" for pc, name, _ in expected]
        our_lines = [f"  {f['address']:#x} {f['function']}" for f in ours]
        shown = "\n".join(["GDB:", *gdb_lines, "ours:", *our_lines])
        assert len(ours) <= len(expected), shown
        # The boot code under kernel_main has no CFI: the engine ends there (the boot
        # stack's bottom, unwind.KERNEL_OUTERMOST) where GDB's heuristics go on.
        at_boot = ours and ours[-1]["function"] in unwind.KERNEL_OUTERMOST
        if trace["complete"] and not at_boot:
            assert len(ours) == len(expected), shown
        for frame, (pc, name, signal) in zip(ours, expected, strict=False):
            assert frame["address"] == pc, (frame, shown)
            _, image = images.find(frame["lookup"])
            assert same_function(name, frame, image), (frame, name, shown)
            if signal and frame["kind"] != "crossing":
                # A stop in an entry stub before its frame is built (CFI: a signal frame
                # whose caller is undefined): where both backtraces end.
                assert frame is ours[-1] and not trace["complete"], (frame, shown)
                assert frame["symbol"] in ("syscall_entry", "trap_common"), (frame, shown)
            elif frame is ours[0] and frame["kind"] == "crossing" and not signal:
                # A vCPU stopped in an exit path once its frame is partly popped (TCG ends a
                # block after popfq, so stops land there): the extension's Python unwinder
                # unwinds it, and GDB gives a Python-unwound frame NORMAL_FRAME, never
                # SIGTRAMP_FRAME. It is still the crossing, under the same symbol.
                assert name == frame["symbol"] and frame["symbol"] in ("syscall_entry", "trap_common"), (
                    frame,
                    shown,
                )
            else:
                assert (frame["kind"] == "crossing") == signal, (frame, shown)
        compared += 1
    return compared


def offline(dump_path: Path, app_path: Path) -> dict[int, dict]:
    with Dump(dump_path) as dump:
        kernel = Kernel(DumpTarget(ElfKernel(KERNEL), dump))
        traces = unwind.backtraces(kernel, app_path)
    return {tid: trace.as_dict() for tid, trace in traces.items()}


@pytest.fixture(scope="module")
def threads_stop(kernel: None, tmp_path_factory: pytest.TempPathFactory):
    """threads-glibc at -smp 2 stopped in a futex syscall with some workers blocked in
    futex waits: the live report (GDB's frames, the engine live) and a dump of that stop."""
    directory = tmp_path_factory.mktemp("unwind")
    exe = app("threads", "glibc")
    dump_path = directory / "threads.dump"
    debugged = start(exe, directory, smp=2)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall futex")
        for _ in range(MAX_STOPS):
            output = gdb.run("continue")
            assert "Breakpoint" in output, output + debugged.console.text()
            report = live_report(gdb, exe)
            on_cpus = [tid for tid in report["currents"].values() if tid and tid > 1]
            if len(blocked_in_worker_futex(report)) >= WANTED_BLOCKED and on_cpus and main_unwinds(report):
                break
        else:
            pytest.fail(f"no stop with {WANTED_BLOCKED} workers blocked in futex (and main's stack whole) "
                        f"in {MAX_STOPS}")
        assert "2 vCPUs" in gdb.run(f"osv-dump {dump_path}")
    finally:
        debugged.close()
    try:
        yield exe, report, dump_path
    finally:
        for leftover in directory.glob("threads.dump*"):
            leftover.unlink()


def test_threads_on_a_vcpu_unwind_as_gdb_does(threads_stop) -> None:
    exe, report, _dump = threads_stop
    images = unwind.Images(ElfImage(KERNEL), ElfImage(exe))
    assert compare_with_gdb(report, images) >= 1
    # The vCPU that hit the breakpoint: in syscall_handler, through the futex crossing.
    hit = [
        trace
        for trace in report["backtraces"].values()
        if trace["source"].startswith("vcpu")
        and functions(trace)[:2] == ["syscall_handler", "<syscall futex>"]
    ]
    assert hit and hit[0]["complete"]


def test_blocked_threads_from_their_saved_context(threads_stop) -> None:
    exe, report, _dump = threads_stop
    worker_lines = range(31, 53)  # threads.c's worker()
    for tid in blocked_in_worker_futex(report):
        trace = report["backtraces"][tid]
        assert trace["source"] == "kernel_rsp" and trace["complete"] and trace["stopped"] is None
        frames = trace["frames"]
        names = functions(trace)
        crossing = names.index("<syscall futex>")
        kernel_part, app_part = frames[:crossing], frames[crossing + 1 :]
        assert names[0] == "switch_context" and frames[0]["file"] == "arch/x64/switch.S"
        kernel_names = [f["function"].split(".", 1)[0] for f in kernel_part]
        assert kernel_names[1] in ("schedule_locked", "schedule"), names
        assert "futex_wait" in kernel_names and kernel_names[-1] == "syscall_handler", names
        assert all(f["module"] == "kernel" for f in kernel_part)
        assert (
            frames[crossing]["kind"] == "crossing" and frames[crossing]["symbol"] == "syscall_entry"
        )
        assert all(f["module"] == "app" for f in app_part), names
        app_names = [f["function"] for f in app_part]
        worker = app_names.index("worker")
        assert any("pthread" in name for name in app_names[:worker]), names
        assert app_names[worker + 1] == "start_thread", names
        assert app_names[-1] in ("clone3", "__clone3"), names
        assert app_part[worker]["file"].endswith("kernel/apps/threads.c")
        assert app_part[worker]["line"] in worker_lines
    # Every thread has a backtrace; those not on a CPU (the kernel's own threads too) end
    # where the CFI or the boot code says the stack ends, or at the trampoline of a
    # thread that never ran, never in an error.
    assert set(report["backtraces"]) == set(report["threads"])
    for tid, trace in report["backtraces"].items():
        assert trace["frames"], (tid, trace)
        if trace["source"] == "kernel_rsp":
            assert trace["complete"], (tid, trace["stopped"], functions(trace))


def main_unwinds(report: dict) -> bool:
    """Whether main's backtrace at this stop can reach _start: off a CPU always; on a vCPU
    not at the few instructions where no CFI says where the caller is (an entry stub
    before its frame is complete), which the fixture steps over rather than skip the test."""
    (tid,) = [tid for tid, name in report["names"].items() if name == "main"]
    trace = report["backtraces"][tid]
    return trace["source"] == "kernel_rsp" or trace["complete"]


def test_the_main_thread_goes_down_to_start(threads_stop) -> None:
    exe, report, _dump = threads_stop
    (tid,) = [tid for tid, name in report["names"].items() if name == "main"]
    trace = report["backtraces"][tid]
    names = functions(trace)
    shown = "\n".join(unwind.Backtrace([unwind.Frame(**f) for f in trace["frames"]],
                                       stopped=trace["stopped"]).format())  # fmt: skip
    assert names[-1] == "_start" and trace["complete"], shown
    frame = trace["frames"][names.index("main")]
    assert frame["file"].endswith("kernel/apps/threads.c") and frame["line"] in range(54, 72)


def test_the_dump_gives_the_same_backtraces_offline(threads_stop) -> None:
    exe, report, dump_path = threads_stop
    traces = offline(dump_path, exe)
    assert traces == report["backtraces"]
    signatures = {
        tid: tuple(f"{f['module']}:{f['function']}" for f in t["frames"])
        for tid, t in traces.items()
    }
    assert len(set(signatures.values())) >= 2


def test_backtraces_are_the_same_from_warm_caches_and_a_new_model(threads_stop) -> None:
    """The engine caches per model (CFI, symbols, layouts): a second call on the same
    model and a call on a new one give the same backtraces. (What they cost is
    scripts/benchmark_unwind's, against GDB's own bt over the same core.)"""
    exe, _report, dump_path = threads_stop
    with Dump(dump_path) as dump:
        kernel = Kernel(DumpTarget(ElfKernel(KERNEL), dump))
        first = unwind.backtraces(kernel, exe)
        again = unwind.backtraces(kernel, exe)
        other = unwind.backtraces(Kernel(DumpTarget(ElfKernel(KERNEL), dump)), exe)
    assert len(first) >= 3
    assert again == first and other == first


@pytest.mark.usefixtures("kernel")
def test_a_static_pie_stopped_in_write(tmp_path: Path) -> None:
    exe = app("hello", "pie")
    debugged = start(exe, tmp_path, smp=1)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall write")
        assert "write(1" in gdb.run("continue")
        report = live_report(gdb, exe)
        gdb.run("tbreak dispatch")
        gdb.run("continue")
        deeper = live_report(gdb, exe)
        dump_path = tmp_path / "hello.dump"
        assert "1 vCPU" in gdb.run(f"osv-dump {dump_path}")
    finally:
        debugged.close()
    try:
        with Dump(dump_path) as dump:
            kernel = Kernel(DumpTarget(ElfKernel(KERNEL), dump))
            image = app_image(kernel, exe)
            traces = {tid: t.as_dict() for tid, t in unwind.backtraces(kernel, image).items()}
        assert image.bias == 0x555555554000
        assert traces == deeper["backtraces"]
    finally:
        for leftover in tmp_path.glob("hello.dump*"):
            leftover.unlink()
    images = unwind.Images(ElfImage(KERNEL), image)
    for stop in (report, deeper):
        assert compare_with_gdb(stop, images) == 1
    (trace,) = [t for t in deeper["backtraces"].values() if t["source"] == "vcpu 1"]
    names = functions(trace)
    # dispatch() is inlined in syscall_handler: GDB's inline frame, not a frame of the stack.
    assert names[:2] == ["syscall_handler", "<syscall write>"], names
    assert trace["frames"][0]["address"] != report["backtraces"][1]["frames"][0]["address"]
    app_frames = trace["frames"][names.index("<syscall write>") + 1 :]
    assert all(f["address"] >= image.bias for f in app_frames)
    main = next(f for f in app_frames if f["function"] == "main")
    assert main["file"].endswith("kernel/apps/hello.c") and main["line"] == 6
    assert names[-1] == "_start" and trace["complete"]
