"""`osvgdb inspect DUMP tcb|syscalls|auxv` against the live commands at the stop the dump
was taken: real QEMU, real GDB, then no GDB at all. Stopped in hello's write (glibc and
static-pie) and in a kernel panic (the threads program at -smp 2: test_dump_live.py); and the one line
for a dump that cannot be read.

Every field is compared: nothing the live commands show is unknown offline (registers
come from the dump's notes, memory through the kernel's page tables, symbols and layouts
from the kernel ELF's DWARF)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import INSPECT_VIEWS, ROOT, app, inspected, osvgdb_command, osvgdb_inspect

TIMEOUT = 120


def dumped(debugged: Debugged, path: Path, views: tuple[str, ...] = tuple(INSPECT_VIEWS)) -> dict:
    """The live views at this stop, then the dump."""
    live = {view: debugged.gdb.json(INSPECT_VIEWS[view]) for view in views}
    assert "osv-dump: wrote" in debugged.gdb.run(f"osv-dump {path}")
    return live


@pytest.fixture(scope="module")
def in_write(kernel: None, tmp_path_factory: pytest.TempPathFactory):
    """hello (glibc and static-pie) stopped in its write's dispatch: live views, dumps."""
    directory = tmp_path_factory.mktemp("inspect")
    stops = {}
    try:
        for variant in ("glibc", "pie"):
            debugged = Debugged(app("hello", variant))
            try:
                debugged.gdb.run("osv-break syscall write")
                assert "write(1" in debugged.gdb.run("continue")
                debugged.gdb.run("tbreak dispatch")
                debugged.gdb.run("continue")
                path = directory / f"hello-{variant}.dump"
                stops[variant] = (path, dumped(debugged, path))
            finally:
                debugged.close()
        yield stops
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("variant", ["glibc", "pie"])
@pytest.mark.parametrize("view", list(INSPECT_VIEWS))
def test_inspect_equals_the_live_command(in_write, variant: str, view: str) -> None:
    path, live = in_write[variant]
    assert inspected(path, view) == live[view]
    if view == "syscalls":
        assert live[view]["records"][-1]["text"] == 'write(1, "Hello from C code\\n", 18) = ? <in flight>'


def test_inspect_text_is_the_commands_text(in_write) -> None:
    path, live = in_write["glibc"]
    text = osvgdb_inspect(path, "tcb").stdout
    assert "CPU 0 (GDB thread 1): syscall, consistent" in text
    # the rip named from the ELF's symbols, as GDB names it live
    (rip,) = [c["rip"] for c in live["tcb"]["cpus"]]
    assert re.search(rf"rip {rip:#x} <\w+(\+\d+)?>, rsp", text), text
    syscalls = osvgdb_inspect(path, "syscalls", "--name", "write").stdout
    assert 'write(1, "Hello from C code\\n", 18) = ? <in flight>' in syscalls


def test_the_core_gives_the_live_verdicts(in_write) -> None:
    path, live = in_write["glibc"]
    result = subprocess.run(
        osvgdb_command("debug", "--core", str(path), "--batch", "-ex", "osv-tcb --json"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("{")  # osv-tcb --json's object, after GDB's own lines
    core = json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0]
    assert core == live["tcb"]


@pytest.mark.usefixtures("kernel")
def test_a_panic_offline(tmp_path: Path) -> None:
    """--test-panic: the kernel writes to address 0 in kernel code. Offline, the CPU is in
    osv_panic_halt, panicked, and the panic's own registers are there."""
    path = tmp_path / "panic.dump"
    debugged = Debugged(app("hello", "glibc"), kernel_args=["--test-panic"])
    try:
        debugged.gdb.run("break osv_panic_halt")
        assert "osv_panic_halt" in debugged.gdb.run("continue")
        live = dumped(debugged, path, ("tcb", "syscalls"))
    finally:
        debugged.close()
    try:
        tcb = inspected(path, "tcb")
        assert tcb == live["tcb"]
        (cpu,) = tcb["cpus"]
        assert cpu["where"] == "panicked" and cpu["problems"] == []
        panic = tcb["panic"]
        assert (panic["cpu"], panic["vector"], panic["cr2"]) == (0, 14, 0)
        assert panic["message"] == "page fault" and panic["error_code"] & 2  # a write
        assert inspected(path, "syscalls") == live["syscalls"]
        text = osvgdb_inspect(path, "tcb").stdout
        assert text.startswith("kernel panic on CPU 0: page fault\n")
        assert "<osv_panic_halt>" in text
        # The panic came before the app was loaded: osv-auxv's own line, offline too.
        auxv = osvgdb_inspect(path, "auxv")
        assert auxv.returncode == 2
        assert auxv.stderr.strip() == (
            "osvgdb inspect: the app is not loaded yet (process.initial_stack is 0)"
        )
    finally:
        for leftover in tmp_path.glob("panic.dump*"):
            leftover.unlink()


def test_bad_dumps_are_one_line(in_write, tmp_path: Path) -> None:
    path, _ = in_write["glibc"]
    sidecar = Path(str(path) + ".json").read_text()
    head = path.open("rb").read(1 << 16)
    cases = {
        "empty": b"",
        "random": bytes(range(256)) * 64,
        "truncated-header": head[:40],
        "truncated-notes": head[:2000],
        "truncated-memory": head,
    }
    for name, data in cases.items():
        bad = tmp_path / f"{name}.dump"
        bad.write_bytes(data)
        Path(str(bad) + ".json").write_text(sidecar)
        result = osvgdb_inspect(bad, "tcb")
        assert result.returncode == 2, (name, result)
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, (name, result)
        assert result.stderr.startswith("osvgdb inspect: ") and "Traceback" not in result.stderr
    subprocess.run(["make", "-s", "-C", str(ROOT / "kernel"), "broken-fs"], check=True)
    other = osvgdb_inspect(path, "--kernel", str(ROOT / "build" / "kernel-broken-fs.elf"), "tcb")
    assert other.returncode == 2
    assert "was taken with another kernel build" in other.stderr


@pytest.mark.usefixtures("kernel")
def test_inspect_knows_the_protocol_at_a_lazy_fast_syscall(tmp_path: Path) -> None:
    """A dump taken inside lazy's fast getppid (FS still the app's TCB): offline, the
    protocol is read from the kernel's memory and the verdict accepts it, as live."""
    debugged = Debugged(app("callcost", "glibc"), ["20"], fs_protocol="lazy")
    try:
        debugged.gdb.run("osv-break syscall getppid -t")
        assert "getppid()" in debugged.gdb.run("continue")
        path = tmp_path / "lazy.dump"
        live = dumped(debugged, path, ("tcb",))
    finally:
        debugged.close()
    offline = inspected(path, "tcb")
    assert offline == live["tcb"]
    (cpu,) = offline["cpus"]
    assert offline["fs_protocol"] == "lazy" and cpu["fast_path"] == "syscall", cpu
    assert cpu["verdict"] == "consistent", cpu
