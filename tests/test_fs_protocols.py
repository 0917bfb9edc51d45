"""The kernel's --fs-protocol=counter|compare|lazy (kernel/arch/x64/entry.S): the option is
really in effect, the debugger knows which protocol runs and its verdicts follow it.

Oracles: the kernel's own state read at a stop (FS base register, the TCBs), and what
each protocol promises: counter switches FS at a syscall and counts; compare has no
counter (it stays 0); lazy's getppid runs on the app's FS, in syscall_fast_handler.
"""

from __future__ import annotations

import pytest
from gdbdriver import Debugged
from guest import ROOT, app, osvgdb_run

from osvgdb.decode.tcb import FS_PROTOCOLS
from osvgdb.run import kernel_cmdline

pytestmark = pytest.mark.usefixtures("kernel")


def test_kernel_cmdline_names_a_protocol_only_when_not_the_default() -> None:
    assert kernel_cmdline("/tls", []) == "/tls"
    assert kernel_cmdline("/tls", [], fs_protocol="counter") == "/tls"
    assert kernel_cmdline("/tls", [], fs_protocol="lazy") == "--fs-protocol=lazy /tls"


def test_an_unknown_protocol_is_refused_by_the_kernel_in_one_line() -> None:
    exe = str(app("hello", "glibc"))
    run = osvgdb_run("--accel", "tcg", "--kernel-arg=--fs-protocol=eager", exe)
    assert run.status == 64, run
    assert "osv: --fs-protocol wants counter, compare or lazy, not eager" in run.lines, run
    assert "Hello" not in run.stdout


def test_an_unknown_protocol_is_refused_by_osvgdb() -> None:
    run = osvgdb_run("--accel", "tcg", "--fs-protocol", "eager", str(app("hello", "glibc")))
    assert run.status == 2, run
    assert "invalid choice: 'eager'" in run.stderr, run


@pytest.mark.parametrize("protocol", FS_PROTOCOLS)
def test_the_banner_names_the_protocol(protocol: str) -> None:
    run = osvgdb_run("--accel", "tcg", "--fs-protocol", protocol, str(app("hello", "glibc")))
    assert run.status == 0, run
    assert run.lines[0].endswith(f", FS protocol {protocol}"), run


def _stop_in(debugged: Debugged, call: str) -> tuple[str, dict]:
    gdb = debugged.gdb
    gdb.run(f"osv-break syscall {call} -t")
    output = gdb.run("continue")
    return output, gdb.json("osv-tcb --json")


@pytest.mark.parametrize("protocol", FS_PROTOCOLS)
def test_osv_tcb_shows_the_protocol_and_its_verdicts_hold(protocol: str) -> None:
    """At hello's write: FS is the kernel TCB under every protocol (write is no fast
    call); the counter is 1 under counter and lazy (the app set FS: 0, plus this
    entry), 0 under compare, for every thread."""
    debugged = Debugged(app("hello", "glibc"), fs_protocol=protocol)
    try:
        output, tcb = _stop_in(debugged, "write")
        text = debugged.gdb.run("osv-tcb")
    finally:
        debugged.close()
    assert "write(1, " in output, output
    assert tcb["fs_protocol"] == protocol
    assert text.startswith(f"FS-base protocol: {protocol} ("), text
    (cpu,) = [c for c in tcb["cpus"] if c["index"] is not None]
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert cpu["verdict"] == "consistent", cpu
    assert cpu["where"] == "syscall" and cpu["fast_path"] is None, cpu
    assert cpu["fs_base"] == cpu["kernel_tcb"] == main["tcb"], cpu
    assert main["app_tcb"], main
    if protocol == "compare":
        assert {t["counter"] for t in tcb["threads"]} == {0}, tcb["threads"]
    else:
        assert cpu["counter"] == main["counter"] == 1, (cpu, main)
    assert all(not t["problems"] for t in tcb["threads"]), tcb["threads"]


@pytest.mark.parametrize("protocol", ["counter", "lazy"])
def test_a_getppid_stop_under_lazy_is_on_the_apps_fs_and_consistent(protocol: str) -> None:
    """callcost-glibc's raw getppid loop. Under lazy the stop is in syscall_fast_handler
    with FS still the app's TCB and the counter 0 (no switch, no count): the verdict
    accepts it. Under counter the same stop is in syscall_handler on the kernel TCB."""
    debugged = Debugged(app("callcost", "glibc"), ["20"], fs_protocol=protocol)
    try:
        output, tcb = _stop_in(debugged, "getppid")
        function = debugged.gdb.run("output $pc").strip()
        entering = debugged.gdb.json("osv-syscalls -n 0 --json")["entering"]
        exit_output = debugged.gdb.run("osv-break syscall getppid --exit -t")
        returned = debugged.gdb.run("continue")
        history = debugged.gdb.json("osv-syscalls --name getppid --json")
    finally:
        debugged.close()
    assert "getppid()" in output, output
    (cpu,) = [c for c in tcb["cpus"] if c["index"] is not None]
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert cpu["verdict"] == "consistent", cpu
    assert cpu["where"] == "syscall", cpu
    assert [c["name"] for c in entering] == ["getppid"], entering  # no record yet
    if protocol == "lazy":
        assert "syscall_fast_handler" in function, function
        assert cpu["fast_path"] == "syscall", cpu
        assert cpu["fs_base"] == main["app_tcb"] != cpu["kernel_tcb"], (cpu, main)
        assert cpu["counter"] == 0, cpu
    else:
        assert "syscall_handler" in function, function
        assert cpu["fast_path"] is None, cpu
        assert cpu["fs_base"] == cpu["kernel_tcb"] == main["tcb"], cpu
        assert cpu["counter"] == 1, cpu
    # One breakpoint each for the slow and the fast path's return: `osv-break 3, 4: ...`
    assert "osv-break 3, 4: syscall getppid --exit" in exit_output, exit_output
    assert "getppid() = 0" in returned, returned
    assert history, "the history has the fast getppid calls"


def test_fast_path_check_rejects_an_fs_access(tmp_path) -> None:
    """check-fastpath.py, the build's proof that lazy's fast path uses no %fs, fails on a
    kernel whose fast path reaches syscall_handler (which reads current_thread)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("check", ROOT / "kernel" / "check-fastpath.py")
    check = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(check)
    elf = str(ROOT / "build" / "kernel.elf")
    functions, image = check.disassemble(elf), check.Image(elf)
    assert check.check(functions, image) == []
    check.ROOTS = ("syscall_fast_handler", "syscall_handler")
    problems = check.check(functions, image)
    assert any(p.startswith("syscall_handler: uses %fs: ") for p in problems), problems


def test_a_timer_stop_under_lazy_is_in_the_fast_path_on_the_apps_fs() -> None:
    """spin-glibc's busy loop: under lazy a tick that reschedules nothing is taken by
    trap_fast_handler, FS still the app's TCB and the counter 0; the verdict accepts it,
    `osv-break interrupt timer` stops there once (-t deletes both its breakpoints), and
    bt goes through the crossing into the app."""
    exe = app("spin", "glibc")
    debugged = Debugged(exe, ["0.5"], fs_protocol="lazy")
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall set_tid_address -t")  # glibc has set its FS by then
        gdb.run("continue")
        created = gdb.run("osv-break interrupt timer --if \"came_from == 'app'\" -t")
        stop = gdb.run("continue")
        function = gdb.run("output $pc").strip()
        tcb = gdb.json("osv-tcb --json")
        frames = [line for line in gdb.run("bt").splitlines() if line.startswith("#")]
        model = gdb.json("osv-bt --json")
        left = gdb.run("info breakpoints")
    finally:
        debugged.close()
    assert "osv-break 2, 3: interrupt timer" in created, created
    assert "interrupt 32 timer" in stop and "from app" in stop, stop
    assert "trap_fast_handler" in function, function
    (cpu, *_) = [c for c in tcb["cpus"] if c["index"] == 0]
    (main,) = [t for t in tcb["threads"] if t["name"] == "main"]
    assert cpu["fast_path"] == "timer" and cpu["where"] == "interrupt", cpu
    assert cpu["fs_base"] == main["app_tcb"] and cpu["counter"] == 0, (cpu, main)
    assert cpu["verdict"] == "consistent", cpu
    assert "trap_fast_handler" in frames[0] and "<interrupt 32 timer>" in frames[1], frames
    assert "No breakpoints" in left, left
    # osv-bt, the model's own unwinder, goes through the fast crossing the same way
    (trace,) = model["backtraces"]
    names = [f["function"] for f in trace["frames"]]
    assert names[:2] == ["trap_fast_handler", "<interrupt 32 timer>"], names


# --- the verdict rules per protocol, on plain snapshots (decode/tcb.py; no QEMU) ---------

KTCB, APP = 0xFFFF800041E8A410, 0x4AE380


def _verdict(protocol: str, where: str, fs_base: int, counter: int, *, app_tcb: int = APP,
             fast_path: str | None = None, preempt_count: int = 0) -> list[str]:  # fmt: skip
    from osvgdb.decode.tcb import CpuInfo, ThreadInfo, cpu_verdict

    thread = ThreadInfo(0x1000, 1, "main", "running", 0, KTCB, tcb_self=KTCB, app_tcb=app_tcb,
                        counter=counter)  # fmt: skip
    cpu = CpuInfo(0, 1, 0x2000, fs_base, 0, 0, kernel_tcb=KTCB, current=0x1000, counter=counter,
                  where=where, fast_path=fast_path, preempt_count=preempt_count)  # fmt: skip
    return [p.split(":")[0] for p in cpu_verdict(cpu, thread, protocol)]


@pytest.mark.parametrize("protocol", FS_PROTOCOLS)
def test_a_spin_lock_held_in_app_code_is_a_broken_rule(protocol: str) -> None:
    """A spinlock's count left on a CPU that went back to the app (a switch or a return
    with one held) stops that CPU's preemption for good: in app code it is a bug, in
    kernel code (a syscall holding a lock) it is not."""
    fs_base, counter = (APP, 0)
    assert _verdict(protocol, "app", fs_base, counter, preempt_count=1) == ["preempt"]
    assert _verdict(protocol, "syscall", KTCB, 0 if protocol == "compare" else 1, preempt_count=2) == []


@pytest.mark.parametrize(
    "protocol, where, fs_base, counter, app_tcb, fast_path, broken",
    [
        # counter: the seed's rules, unchanged
        ("counter", "app", APP, 0, APP, None, []),
        ("counter", "syscall", KTCB, 1, APP, None, []),
        ("counter", "syscall", APP, 0, APP, None, ["kernel-fs", "kernel-count"]),
        # compare: no counter; app code on app_tcb, or on the kernel TCB without one
        ("compare", "app", APP, 0, APP, None, []),
        ("compare", "app", KTCB, 0, 0, None, []),
        ("compare", "app", KTCB, 0, APP, None, ["app-fs"]),
        ("compare", "app", APP, 1, APP, None, ["app-count"]),
        ("compare", "syscall", KTCB, 0, APP, None, []),
        ("compare", "interrupt", KTCB, 1, APP, None, ["kernel-count"]),
        # lazy: a fast syscall or tick runs kernel code on the app's FS; nothing else does
        ("lazy", "syscall", APP, 0, APP, "syscall", []),
        ("lazy", "interrupt", APP, 0, APP, "timer", []),
        ("lazy", "syscall", KTCB, 1, 0, "syscall", []),  # a thread that never set FS
        ("lazy", "syscall", KTCB, 1, APP, "syscall", ["app-count"]),
        ("lazy", "interrupt", KTCB, 1, APP, "syscall", []),  # a page fault inside one
        ("lazy", "syscall", APP, 0, APP, None, ["kernel-fs", "kernel-count"]),
        ("counter", "syscall", APP, 0, APP, "syscall", ["kernel-fs", "kernel-count"]),
    ],
)
def test_verdicts_follow_the_protocol(protocol, where, fs_base, counter, app_tcb, fast_path,
                                      broken) -> None:  # fmt: skip
    verdict = _verdict(protocol, where, fs_base, counter, app_tcb=app_tcb, fast_path=fast_path)
    assert verdict == broken


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("protocol", FS_PROTOCOLS)
def test_an_app_fs_pointing_at_nothing(protocol: str) -> None:
    """arch_prctl(ARCH_SET_FS, 0x1000), then raw syscalls: Linux runs it, and so do counter
    and lazy, which never read the app's FS. compare's syscall entry reads %fs:0 (OSv's
    design): the fault is reported as such, a kernel panic, not a hang or a triple fault."""
    exe = app("badfs", "musl")
    run = osvgdb_run("--accel", "tcg", f"--fs-protocol={protocol}", str(exe))
    if protocol != "compare":
        assert run.status == 0 and run.app_lines == ["getppid with FS at 0x1000 returned"], run
        return
    assert run.status == 70, run
    assert any(
        line.startswith("osv: --fs-protocol=compare: the app's FS base 0x1000 points at no TCB")
        for line in run.lines
    ), run
    assert "osv: kernel panic: page fault (vector 14, error 0x0)" in run.lines, run
