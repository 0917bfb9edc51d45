"""Dumps of a real guest: osv-dump in an osvgdb debug session (real QEMU, real GDB),
read back through osvgdb.dump and through `osvgdb debug --core` against what GDB
read live from the stopped guest. The levels, compression and what a dump left out:
test_dump_levels.py."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import INSPECT_VIEWS, KERNEL, ROOT, app, inspected, osvgdb_command

from osvgdb.dump import Dump, kernel_build_id, read_metadata

TIMEOUT = 120
MAX_DUMP = 16 << 20  # hello's dump of a 2 GiB guest, apparent size
LIVE_REGISTERS = (
    "rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 r12 r13 r14 r15 rip eflags "
    "cs ss ds es fs gs fs_base gs_base cr0 cr2 cr3 cr4"
).split()


def live_registers(gdb) -> dict[str, int]:
    """`info registers` of the selected thread, by name (eflags as rflags)."""
    values = {}
    for line in gdb.run("info registers " + " ".join(LIVE_REGISTERS)).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in LIVE_REGISTERS:
            values["rflags" if parts[0] == "eflags" else parts[0]] = int(parts[1], 16)
    assert len(values) == len(LIVE_REGISTERS), values
    return values


def live_bytes(gdb, address: int, length: int) -> bytes:
    text = gdb.run(
        f"python print(gdb.selected_inferior().read_memory({address}, {length}).tobytes().hex())"
    )
    return bytes.fromhex(text.strip())


def value(gdb, expression: str) -> int:
    return int(gdb.run(f"output/d {expression}").strip())


def debug_core(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        osvgdb_command("debug", *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def hello_dump(kernel: None, tmp_path_factory: pytest.TempPathFactory):
    """hello-glibc stopped in its write's dispatch, dumped by osv-dump, and what GDB
    read live there."""
    directory = tmp_path_factory.mktemp("dump")
    path = directory / "hello.dump"
    debugged = Debugged(app("hello", "glibc"))
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall write")
        assert "write(1" in gdb.run("continue")
        gdb.run("tbreak dispatch")
        gdb.run("continue")
        live = {"registers": live_registers(gdb), "socket": str(debugged.session.qmp_socket)}
        live["osv_dump"] = gdb.run(f"osv-dump {path}")
        live["again"] = gdb.run(f"osv-dump {path}")
        # What a writer killed before its rename leaves: a sidecar without its dump.
        stale = directory / "stale.dump"
        Path(str(stale) + ".json").write_text("{half")
        live["stale"] = (stale, gdb.run(f"osv-dump {stale}"))
        live["show_socket"] = gdb.run("show osv-qmp-socket")
        live["usage"] = gdb.run("osv-dump")
        live["help"] = gdb.run("help osv-dump")
        write = gdb.json("osv-syscalls -n 1 --json")["records"][-1]
        history = value(gdb, "&syscall_history")
        cpu0 = value(gdb, "&cpus[0]")
        gdb.run("frame function main")
        main_rsp = value(gdb, "$rsp")
        live["reads"] = {
            "syscall_history": (history, live_bytes(gdb, history, 4096)),
            "cpus[0]": (cpu0, live_bytes(gdb, cpu0, 512)),
            "main's stack": (main_rsp, live_bytes(gdb, main_rsp, 256)),
            "write's buffer": (write["args"][1], live_bytes(gdb, write["args"][1], 18)),
            "the kernel's text": (0x40200000, live_bytes(gdb, 0x40200000, 64)),
        }
        gdb.run("frame 0")
        live["unset"] = gdb.run(f"with osv-qmp-socket -- osv-dump {directory / 'x.dump'}")
        live["no_ram"] = gdb.run(f"with osv-guest-ram -- osv-dump {directory / 'x.dump'}")
        yield path, live
    finally:
        debugged.close()
        shutil.rmtree(directory, ignore_errors=True)


def test_osv_dump_writes_the_dump_and_says_so(hello_dump) -> None:
    path, live = hello_dump
    escaped = re.escape(str(path))
    first, *rest = live["osv_dump"].strip().splitlines()
    size = re.fullmatch(
        rf"osv-dump: wrote {escaped} \(([0-9.]+) (KiB|MiB), level used, 1 vCPU, [0-9.]+ s\) "
        rf"and {escaped}\.json",
        first,
    )
    assert size, live["osv_dump"]
    # The apparent size, as printed and on disk: a few MiB of a 2 GiB guest, not sparse.
    printed = float(size.group(1)) * (1 << 10 if size.group(2) == "KiB" else 1 << 20)
    assert abs(printed - path.stat().st_size) <= 0.05 * (1 << 20) and printed <= MAX_DUMP
    assert path.stat().st_blocks * 512 <= MAX_DUMP + (1 << 20)
    assert len(rest) == 1 and re.fullmatch(
        r"osv-dump: left out \d+ KiB of the initrd \(a copy of the files the guest booted with\)",
        rest[0],
    ), rest
    assert live["again"].strip() == f"osv-dump: {path} exists (--force replaces it)"
    stale, output = live["stale"]
    assert output.startswith(f"osv-dump: wrote {stale} ") and read_metadata(stale).level == "used"
    assert live["socket"] in live["show_socket"]
    assert live["usage"].strip() == (
        "osv-dump: the following arguments are required: PATH (usage: osv-dump [-h] [--force] "
        "[--level {full,used,stacks}] [--compress] [--json] PATH)"
    )
    assert live["help"].strip().startswith("Dump the stopped guest's memory and vCPUs to PATH")
    assert live["unset"].strip() == (
        "osv-dump: osv-qmp-socket is not set (osvgdb debug sets it to QEMU's QMP socket)"
    )
    assert live["no_ram"].strip() == (
        "osv-dump: osv-guest-ram is not set (osvgdb debug sets it to the guest's RAM, which "
        "QEMU shares with it)"
    )


def test_sidecar_says_what_reading_the_dump_needs(hello_dump) -> None:
    path, _live = hello_dump
    metadata = read_metadata(path)
    assert metadata is not None
    assert metadata.kernel_path == str(KERNEL)
    assert metadata.kernel_build_id == kernel_build_id(KERNEL) is not None
    assert metadata.app_path == str(app("hello", "glibc"))
    assert metadata.qemu_version.startswith("7.2.")
    assert metadata.vcpus == 1
    assert metadata.level == "used" and set(metadata.left_out) == {"initrd"}
    taken = datetime.datetime.fromisoformat(metadata.time)
    assert abs(datetime.datetime.now(datetime.UTC) - taken) < datetime.timedelta(hours=1)


def test_dump_reads_what_gdb_read_live(hello_dump) -> None:
    path, live = hello_dump
    with Dump(path) as dump:
        (registers,) = dump.vcpus
        for name, expected in live["registers"].items():
            assert registers[name] == expected, name
        for what, (address, expected) in live["reads"].items():
            assert dump.memory(address, len(expected)) == expected, what
        assert dump.read_physical(0x40200000, 64) == live["reads"]["the kernel's text"][1]


def test_debug_core_backtrace_threads_and_memory(hello_dump) -> None:
    path, live = hello_dump
    history, expected = live["reads"]["syscall_history"]
    stack, expected_stack = live["reads"]["main's stack"]
    read = "python print(gdb.selected_inferior().read_memory({}, {}).tobytes().hex())"
    result = debug_core(
        "--core", str(path), "--batch",
        "-ex", "bt",
        "-ex", "info threads",
        "-ex", "info registers rip fs_base gs_base",
        "-ex", read.format(history, len(expected)),
        "-ex", read.format(stack, len(expected_stack)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    crossing = next(i for i, line in enumerate(lines) if "<syscall write> ()" in line)
    assert any(" in main () at " in line for line in lines[crossing:]), result.stdout
    threads = [line for line in lines if re.match(r"^\*? +\d+ +LWP ", line)]
    assert len(threads) == 1 and "dispatch" in threads[0], result.stdout
    registers = live["registers"]
    for name in ("rip", "fs_base", "gs_base"):
        (line,) = [line for line in lines if line.startswith(name + " ")]
        assert int(line.split()[1], 16) == registers[name], line
    assert expected.hex() in lines and expected_stack.hex() in lines
    assert "Traceback" not in result.stdout + result.stderr
    assert not Path(str(path) + ".core").exists()  # GDB loaded the dump as it is
    assert result.stderr == (
        f"osvgdb debug: {path}: a used dump; it left out the initrd (a copy of the files the "
        "guest booted with): GDB cannot access memory there\n"
    )


def test_debug_core_refuses_another_kernel_build(hello_dump) -> None:
    path, _live = hello_dump
    subprocess.run(["make", "-s", "-C", str(ROOT / "kernel"), "broken-fs"], check=True)
    other = ROOT / "build" / "kernel-broken-fs.elf"
    this, theirs = kernel_build_id(KERNEL), kernel_build_id(other)
    assert this != theirs
    result = debug_core("--core", str(path), "--kernel", str(other), "--batch", "-ex", "bt")
    assert result.returncode == 2
    assert result.stderr == (
        f"osvgdb debug: {path} was taken with another kernel build "
        f"(build id {this}, this kernel {theirs})\n"
    )
    assert result.stdout == ""


def test_bad_dumps_are_one_line_and_status_2(hello_dump, tmp_path: Path) -> None:
    path, _live = hello_dump
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # the memory cut
    (tmp_path / "empty.dump").write_bytes(b"")
    (tmp_path / "random.dump").write_bytes(bytes(range(256)) * 64)
    cases = {
        tmp_path / "empty.dump": "empty file, not a dump",
        tmp_path / "random.dump": "not an ELF file",
        KERNEL: "not a core file (ELF type ET_EXEC)",
        truncated: "truncated in the memory (physical 0x",
    }
    for bad, message in cases.items():
        result = debug_core("--core", str(bad), "--batch", "-ex", "bt")
        assert result.returncode == 2, (bad, result.stderr)
        assert result.stderr.startswith(f"osvgdb debug: {bad}: {message}"), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_debug_core_without_a_sidecar_warns_and_goes_on(hello_dump, tmp_path: Path) -> None:
    path, _live = hello_dump
    bare = tmp_path / "bare.dump"
    bare.symlink_to(path)  # the same dump, no bare.dump.json beside it
    result = debug_core("--core", str(bare), "--app", str(app("hello", "glibc")), "--batch",
                        "-ex", "bt")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"osvgdb debug: warning: {bare}.json: no such file, the dump is not checked "
        "against the kernel"
    )
    assert " in main () at " in result.stdout


@pytest.mark.usefixtures("kernel")
def test_smp_dump_of_threads(tmp_path: Path) -> None:
    """threads-glibc on two vCPUs, both running it: each vCPU's registers in the
    dump as GDB saw them live, one CR3 for both, two threads under --core, and
    osvgdb inspect's views equal to the live commands'."""
    path = tmp_path / "threads.dump"
    debugged = Debugged(app("threads", "glibc"), smp=2)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall clock_nanosleep nanosleep")
        for _ in range(40):
            gdb.run("continue")
            if value(gdb, "nr_cpus") == 2:
                break
        else:
            pytest.fail("the second CPU never started")
        live = []
        for thread in (1, 2):
            gdb.run(f"thread {thread}")
            live.append(live_registers(gdb))
        views = {view: gdb.json(command) for view, command in INSPECT_VIEWS.items()}
        assert "2 vCPUs" in gdb.run(f"osv-dump {path}")
    finally:
        debugged.close()
    try:
        with Dump(path) as dump:
            assert len(dump.vcpus) == 2
            for registers, expected in zip(dump.vcpus, live, strict=True):
                for name in ("rip", "rsp", "rflags", "fs_base", "gs_base", "cr0", "cr3"):
                    assert registers[name] == expected[name], name
            assert dump.vcpus[0]["cr3"] == dump.vcpus[1]["cr3"]  # one page table for all
            assert dump.metadata is not None and dump.metadata.vcpus == 2
        result = debug_core("--core", str(path), "--batch", "-ex", "info threads")
        assert result.returncode == 0, result.stderr
        threads = [line for line in result.stdout.splitlines() if re.search(r" LWP \d ", line)]
        assert [re.search(r"LWP (\d)", line).group(1) for line in threads] == ["1", "2"]
        # osvgdb inspect, without GDB, shows what the commands showed live.
        assert len(views["tcb"]["cpus"]) == 2 and len(views["tcb"]["threads"]) > 2
        for view, data in views.items():
            assert inspected(path, view) == data, view
    finally:
        for leftover in tmp_path.glob("threads.dump*"):
            leftover.unlink()
