"""osv-dump's levels on real guests (real QEMU, real GDB): hello-glibc stopped in its
write, threads-glibc at -smp 2 and the Go program stopped in futex calls, each dumped
at full, used and stacks. The oracles: what osv-tcb, osv-syscalls and osv-auxv showed
live, GDB's own backtraces, and the `full` dump (every page of RAM) for what the
smaller levels must still answer. Then what a level left out, compressed dumps and
damaged ones: one line each, never a silent zero. And the RAM QEMU shares with us: a
memfd, gone with the session however it ends."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import INSPECT_VIEWS, KERNEL, app, inspected, osvgdb_command, osvgdb_inspect
from processes import alive, children, cmdline

from osvgdb.dump import LEFT_OUT, Dump
from osvgdb.model import unwind
from osvgdb.model.elf_target import DumpTarget, ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.run import QEMU_UP_TIME

TIMEOUT = 120
PAGE = 4096
MAX_USED = 16 << 20
MAX_STACKS_HELLO = 1 << 20
LEVELS = ("full", "used", "stacks")
MAX_STOPS = 60
# Where a vCPU's backtrace ends, in GDB, when it reaches the start of its thread (main: GDB
# stops there unless `set backtrace past-main`).
OUTERMOST = {
    "long_mode_start", "ap_entry", "main", "_start", "__clone3", "clone3", "start_thread",
}  # fmt: skip


def dump_levels(debugged: Debugged, directory: Path, name: str) -> dict[str, Path]:
    paths = {}
    for level in LEVELS:
        path = directory / f"{name}-{level}.dump"
        out = debugged.gdb.run(f"osv-dump --level {level} {path}")
        assert f"osv-dump: wrote {path} (" in out and f"level {level}," in out, out
        paths[level] = path
    compressed = directory / f"{name}-used.dump.zst"
    out = debugged.gdb.run(f"osv-dump --compress --json {compressed}")
    written = json.loads(out[out.index("{") :])
    assert written["compressed"] and written["size"] == compressed.stat().st_size
    paths["zst"] = compressed
    return paths


def live_views(debugged: Debugged) -> dict:
    return {view: debugged.gdb.json(command) for view, command in INSPECT_VIEWS.items()}


def offline_backtraces(path: Path, exe: Path) -> dict[int, dict]:
    with Dump(path) as dump:
        kernel = Kernel(DumpTarget(ElfKernel(KERNEL), dump))
        return {tid: t.as_dict() for tid, t in unwind.backtraces(kernel, exe).items()}


def debug_core(path: Path, *commands: str) -> subprocess.CompletedProcess[str]:
    argv = ["--core", str(path), "--batch"]
    for command in commands:
        argv += ["-ex", command]
    return subprocess.run(
        osvgdb_command("debug", *argv), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip


def gdb_backtraces(path: Path) -> str:
    result = debug_core(path, "thread apply all bt")
    assert result.returncode == 0, result.stderr
    return result.stdout[result.stdout.index("\nThread ") :]


@pytest.fixture(scope="module")
def hello(kernel: None, tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("levels")
    debugged = Debugged(app("hello", "glibc"))
    try:
        debugged.gdb.run("osv-break syscall write")
        assert "write(1" in debugged.gdb.run("continue")
        debugged.gdb.run("tbreak dispatch")
        debugged.gdb.run("continue")
        live = live_views(debugged)
        paths = dump_levels(debugged, directory, "hello")
    finally:
        debugged.close()
    return paths, live


def test_each_level_is_smaller_and_answers_the_views_as_live(hello) -> None:
    paths, live = hello
    sizes = {level: paths[level].stat().st_size for level in LEVELS}
    assert sizes["stacks"] < sizes["used"] < sizes["full"]
    assert sizes["used"] <= MAX_USED and sizes["stacks"] <= MAX_STACKS_HELLO, sizes
    for level in (*LEVELS, "zst"):
        for view, data in live.items():
            assert inspected(paths[level], view) == data, (level, view)
    assert paths["zst"].stat().st_size < sizes["used"]


def test_each_level_gives_the_same_backtraces(hello) -> None:
    paths, _live = hello
    exe = app("hello", "glibc")
    full = offline_backtraces(paths["full"], exe)
    assert full and all(t["complete"] for t in full.values())
    for level in ("used", "stacks", "zst"):
        assert offline_backtraces(paths[level], exe) == full, level
    frames = gdb_backtraces(paths["full"])
    assert " in main () at " in frames
    for level in ("used", "stacks", "zst"):
        assert gdb_backtraces(paths[level]) == frames, level


def test_what_a_level_left_out_is_one_line_never_zeros(hello) -> None:
    paths, _live = hello
    with Dump(paths["stacks"]) as dump:
        heap = next(start for start, _end, why in dump.contents.left_out if why == "heap")
    address = 0xFFFF800000000000 + heap  # the kernel heap, through the direct map
    with Dump(paths["full"]) as full:
        assert full.memory(address, 4096) != bytes(4096)  # the guest had data there
    shown = osvgdb_inspect(paths["stacks"], "memory", hex(address), "16")
    assert shown.returncode == 2 and shown.stdout == ""
    assert shown.stderr == (
        f"osvgdb inspect: {address:#x} is not in this dump: level stacks left out "
        f"{LEFT_OUT['heap']} (physical {heap:#x})\n"
    )
    assert osvgdb_inspect(paths["used"], "memory", hex(address), "16").returncode == 0
    result = debug_core(paths["stacks"], f"x/2gx {address:#x}")
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"osvgdb debug: {paths['stacks']}: a stacks dump; it left out ")
    assert LEFT_OUT["heap"] in errors[0] and errors[1:] == [f"Cannot access memory at address {address:#x}"]
    # The initrd is left out from `used` on: a copy of the files on the host.
    with Dump(paths["used"]) as dump:
        assert {why for _s, _e, why in dump.contents.left_out} == {"initrd"}
    with Dump(paths["full"]) as dump:
        assert dump.contents.left_out == []


def test_damaged_dumps_are_one_line_and_status_2(hello, tmp_path: Path) -> None:
    paths, _live = hello
    compressed = paths["zst"].read_bytes()
    plain = paths["used"].read_bytes()
    cases = {
        "cut.dump.zst": (compressed[: len(compressed) // 2], "truncated zstd data"),
        "bad.dump.zst": (compressed[:64] + bytes(512) + compressed[576:], "corrupt zstd data"),
        "cut.dump": (plain[: len(plain) // 2], "truncated in the memory"),
    }
    for name, (data, message) in cases.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        for result, who in ((osvgdb_inspect(bad, "tcb"), "inspect"), (debug_core(bad, "bt"), "debug")):
            assert result.returncode == 2, (name, result.stderr)
            assert result.stderr.startswith(f"osvgdb {who}: {bad}: {message}"), result.stderr
            assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def stop_with_blocked_threads(exe: Path, directory: Path, name: str, smp: int = 2):
    """EXE stopped at a futex call with at least two threads off the vCPUs; the live
    views and the three levels' dumps."""
    debugged = Debugged(exe, smp=smp)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall futex")
        for _ in range(MAX_STOPS):
            assert "Breakpoint" in gdb.run("continue")
            tcb = gdb.json("osv-tcb --json")
            blocked = [t for t in tcb["threads"] if t["state"] == "blocked"]
            if len(blocked) >= 2 and len(tcb["cpus"]) == smp:
                break
        else:
            pytest.fail(f"no stop with two blocked threads in {MAX_STOPS}")
        return live_views(debugged), dump_levels(debugged, directory, name)
    finally:
        debugged.close()


@pytest.mark.parametrize(
    "program, thread_functions",
    [
        (app("threads", "glibc"), {"main": "_start", "worker": "start_thread"}),
        (app("goroutines", "go"), {}),
    ],
    ids=["threads-glibc", "goroutines-go"],
)
def test_smp_programs_at_each_level(kernel: None, tmp_path: Path, program: Path, thread_functions: dict) -> None:
    live, paths = stop_with_blocked_threads(program, tmp_path, program.name)
    for level in ("used", "zst"):
        for view, data in live.items():
            assert inspected(paths[level], view) == data, (level, view)
    # Every thread's backtrace from the minidump is the one the whole RAM gives.
    full = offline_backtraces(paths["full"], program)
    assert len(full) >= 4
    assert offline_backtraces(paths["stacks"], program) == full
    for trace in full.values():
        names = [f["function"] for f in trace["frames"]]
        for inner, outer in thread_functions.items():
            if inner in names:
                assert trace["complete"] and outer in names[names.index(inner) :], names
    if thread_functions:
        reached = {inner for t in full.values() for inner in thread_functions
                   if inner in [f["function"] for f in t["frames"]]}  # fmt: skip
        assert reached == set(thread_functions)
    # GDB's backtrace of each vCPU, from the minidump as from all of RAM: where GDB's
    # unwinding ends is GDB's (for Go, past runtime.systemstack it names runtime.g0),
    # the minidump must not end it sooner. For C, that is where the thread started: the
    # kernel's entry (boot or AP) for an idle vCPU, else the app's thread function.
    frames = gdb_backtraces(paths["full"])
    assert gdb_backtraces(paths["stacks"]) == frames
    for thread in frames.split("\nThread ")[1:]:
        named = re.findall(r"^#\d+ +(?:0x[0-9a-f]+ in )?([\w.]+) \(", thread, re.MULTILINE)
        assert named and (named[-1] in OUTERMOST or not thread_functions), thread


def test_the_shared_ram_is_a_memfd_that_dies_with_the_session(kernel: None, tmp_path: Path) -> None:
    """QEMU's RAM is osvgdb's memfd, opened by /proc/PID/fd/N: no file under /dev/shm or
    /tmp, and once osvgdb is SIGKILLed, QEMU and GDB die and nothing maps it any more."""
    shm_before = set(Path("/dev/shm").iterdir())
    process = subprocess.Popen(
        osvgdb_command("debug", "--batch", "-ex", "shell sleep 60", str(app("hello", "glibc"))),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 2 * QEMU_UP_TIME
        qemu = gdb = None
        while (qemu is None or gdb is None) and time.monotonic() < deadline:
            for child in children(process.pid):
                line = cmdline(child)
                if "qemu-system" in line and "--version" not in line:
                    qemu = child
                elif line.startswith("gdb "):
                    gdb = child
            time.sleep(0.1)
        assert qemu is not None and gdb is not None, process.stderr.read().decode()[-2000:]
        assert re.search(rf"memory-backend-file,id=ram,size=2G,mem-path=/proc/{process.pid}/fd/\d+,share=on", cmdline(qemu))
        assert "osv-guest-ram /proc/" in cmdline(gdb)
        assert "/memfd:osvgdb-guest-ram" in Path(f"/proc/{qemu}/maps").read_text()
        assert set(Path("/dev/shm").iterdir()) == shm_before
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while (alive(qemu) or alive(gdb)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(qemu) and not alive(gdb)
        assert set(Path("/dev/shm").iterdir()) == shm_before
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.usefixtures("kernel")
def test_free_pages_are_left_out_of_used_not_zeroed(tmp_path: Path) -> None:
    """mmap-glibc at its exit has unmapped pages it wrote: their frames are on the
    allocator's free list with the app's bytes still in them. `used` leaves them out
    and says so; `full` has the bytes."""
    debugged = Debugged(app("mmap", "glibc"))
    try:
        debugged.gdb.run("break process_exit")
        assert "process_exit" in debugged.gdb.run("continue")
        for level in ("used", "full"):
            assert "osv-dump: wrote" in debugged.gdb.run(f"osv-dump --level {level} {tmp_path / level}")
    finally:
        debugged.close()
    with Dump(tmp_path / "used") as used, Dump(tmp_path / "full") as full:
        free = [(start, end) for start, end, why in used.contents.left_out if why == "free"]
        assert free and used.metadata.left_out["free"] == sum(e - s for s, e in free)
        start = free[0][0]
        assert full.read_physical(start, PAGE) != bytes(PAGE)
    address = 0xFFFF800000000000 + start
    shown = osvgdb_inspect(tmp_path / "used", "memory", hex(address), "8")
    assert shown.returncode == 2 and shown.stderr == (
        f"osvgdb inspect: {address:#x} is not in this dump: level used left out "
        f"{LEFT_OUT['free']} (physical {start:#x})\n"
    )
    assert osvgdb_inspect(tmp_path / "full", "memory", hex(address), "8").returncode == 0
