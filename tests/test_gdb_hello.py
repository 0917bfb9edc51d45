"""The extension on the bundled hello, stopped inside its write syscall, in real
QEMU under real GDB, checked against oracles nobody here wrote: the host's
strace of the same binary and QEMU's own `info registers` through QMP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import app

from osvgdb.monitor import Monitor, segment_bases

ARCH_SET_FS = 0x1002


@pytest.fixture(scope="module")
def stopped_in_write(kernel: None) -> Debugged:
    debugged = Debugged(app("hello", "glibc"))
    try:
        debugged.gdb.run("osv-break syscall write")
        stop = debugged.gdb.run("continue")
        assert 'write(1, "Hello from C code\\n", 18)' in stop, stop
        debugged.syscalls_at_entry = debugged.gdb.json("osv-syscalls -n 2 --json")
        debugged.syscalls_at_entry_text = debugged.gdb.run("osv-syscalls -n 2")
        # On to the dispatch, where the kernel's history holds the call in flight.
        debugged.gdb.run("tbreak dispatch")
        debugged.gdb.run("continue")
        debugged.tcb_at_write = debugged.gdb.json("osv-tcb --json")
        debugged.syscalls_at_write = debugged.gdb.json("osv-syscalls -n 0 --json")
        yield debugged
    finally:
        debugged.close()


def _current_thread(tcb: dict) -> dict:
    (cpu,) = [c for c in tcb["cpus"] if c["index"] == 0]
    (thread,) = [t for t in tcb["threads"] if t["tid"] == cpu["current_tid"]]
    return thread


def host_strace_names(exe: Path, tmp_path: Path) -> list[str]:
    """The syscalls the host's Linux sees, stdout a character device as the console is."""
    log = tmp_path / "strace.log"
    with open("/dev/null", "wb") as devnull:
        subprocess.run(
            ["strace", "-f", "-qq", "-o", str(log), str(exe)], stdout=devnull, check=True
        )
    names = [line.split("(", 1)[0].split()[-1] for line in log.read_text().splitlines()]
    assert names[0] == "execve", names
    return names[1:]


def test_the_call_stopped_at_its_entry_is_listed_as_entering(stopped_in_write: Debugged) -> None:
    """At osv-break's stop the handler has not recorded the call yet: osv-syscalls
    lists it apart, decoded from the vCPU's syscall frame; at the dispatch it has a
    record and is no longer entering."""
    report = stopped_in_write.syscalls_at_entry
    assert all(r["name"] != "write" for r in report["records"])
    (call,) = report["entering"]
    assert (call["name"], call["cpu"], call["vcpu"], call["state"]) == ("write", 0, 1, "entering")
    assert call["text"] == 'write(1, "Hello from C code\\n", 18)'
    assert call["tid"] == _current_thread(stopped_in_write.tcb_at_write)["tid"]
    assert call["fs_base"] == _current_thread(stopped_in_write.tcb_at_write)["app_tcb"]
    last = stopped_in_write.syscalls_at_entry_text.splitlines()[-1]
    assert last == f' entering cpu0 tid{call["tid"]} write(1, "Hello from C code\\n", 18)'
    assert stopped_in_write.syscalls_at_write["entering"] == []


def test_in_flight_write_is_decoded_and_marked(stopped_in_write: Debugged) -> None:
    last = stopped_in_write.syscalls_at_write["records"][-1]
    assert last["name"] == "write"
    assert last["state"] == "in-flight"
    assert last["strings"]["1"] == "Hello from C code\n"
    assert last["text"] == 'write(1, "Hello from C code\\n", 18) = ? <in flight>'
    assert stopped_in_write.syscalls_at_write["errors"] == []


def test_syscall_names_match_host_strace(stopped_in_write: Debugged, tmp_path: Path) -> None:
    guest = [r["name"] for r in stopped_in_write.syscalls_at_write["records"]]
    host = host_strace_names(app("hello", "glibc"), tmp_path)
    assert guest == host[: host.index("write") + 1]


def test_app_tcb_is_arch_prctl_argument_and_verdict_consistent(stopped_in_write: Debugged) -> None:
    tcb = stopped_in_write.tcb_at_write
    (set_fs,) = [
        r
        for r in stopped_in_write.syscalls_at_write["records"]
        if r["name"] == "arch_prctl" and r["args"][0] == ARCH_SET_FS
    ]
    thread = _current_thread(tcb)
    assert thread["name"] == "main"
    assert thread["app_tcb"] == set_fs["args"][1] != 0
    (cpu,) = tcb["cpus"]
    assert cpu["verdict"] == "consistent", cpu
    assert cpu["where"] == "syscall"
    assert cpu["fs_base"] == cpu["kernel_tcb"] == thread["tcb"]
    assert all(not t["problems"] for t in tcb["threads"]), tcb["threads"]


def test_app_code_runs_on_app_tcb_as_qemu_reports(stopped_in_write: Debugged) -> None:
    gdb = stopped_in_write.gdb
    app_tcb = _current_thread(stopped_in_write.tcb_at_write)["app_tcb"]
    gdb.run("delete")
    gdb.run("break exit")  # glibc's exit(), from the app symbols loaded at app_start
    assert "exit" in gdb.run("continue")
    tcb = gdb.json("osv-tcb --json")
    (cpu,) = tcb["cpus"]
    assert cpu["where"] == "app" and cpu["verdict"] == "consistent", cpu
    with Monitor(stopped_in_write.session.qmp_socket) as qmp:
        bases = segment_bases(qmp.hmp("info registers -a"))
    assert bases[0]["FS"] == cpu["fs_base"] == app_tcb
    assert bases[0]["GS"] == cpu["gs_base"]
    assert _current_thread(tcb)["counter"] == 0
    # App symbols: GDB names app code.
    assert "in section .text of " + str(app("hello", "glibc")) in gdb.run("info symbol $pc")
    assert "__libc_start_call_main" in gdb.run("bt")


def test_functions_and_printers(stopped_in_write: Debugged) -> None:
    gdb = stopped_in_write.gdb
    thread = _current_thread(stopped_in_write.tcb_at_write)
    assert gdb.run("output $osv_cpu()").strip() == "0"
    assert gdb.run("output $osv_current()->tid").strip() == "1"
    assert gdb.run("output/x $osv_app_tcb(1)").strip() == hex(thread["app_tcb"])
    assert gdb.run("output $osv_thread(0)->name").strip().startswith('"boot"')
    assert "self ok" in gdb.run("print *$osv_kernel_tcb(0)")
    assert "kernel_tcb of tid 1 main" in gdb.run("print cpus[0].tcb_data")
    record = gdb.run("print syscall_history[0].records[2]")
    assert "arch_prctl(ARCH_SET_FS, " in record, record


@pytest.mark.parametrize(
    "command, message",
    [
        ("osv-syscalls --bogus", "osv-syscalls: unrecognized arguments: --bogus (usage: "),
        ("osv-syscalls --name nosuchcall", "osv-syscalls: unknown syscall name 'nosuchcall'"),
        ("osv-tcb --cpu 9", "osv-tcb: no CPU 9"),
        ("osv-tcb --tid 999", "osv-tcb: no thread with tid 999"),
        ("osv-break syscall nosuchcall", "osv-break: unknown syscall 'nosuchcall'"),
        ("osv-break exception nosuch", "osv-break: unknown exception 'nosuch' (known: "),
        ("osv-break syscall write --if 'a ==", "osv-break: --if: "),
        ("osv-break bogus", "osv-break: argument KIND: invalid choice: 'bogus'"),
        ("osv-trace syscalls nosuchcall", "osv-trace: unknown syscall 'nosuchcall'"),
        ("osv-fscheck maybe", "osv-fscheck: argument state: invalid choice: 'maybe'"),
        ("print $osv_app_tcb(999)", "$osv_app_tcb: no thread with tid 999"),
        ("osv-app-symbols /nonexistent", "/nonexistent: No such file or directory"),
    ],
)
def test_errors_are_one_line(stopped_in_write: Debugged, command: str, message: str) -> None:
    output = stopped_in_write.gdb.run(command)
    assert message in output
    assert "Traceback" not in output
    assert len([line for line in output.splitlines() if line.strip("(gdb) ")]) == 1, output


def test_help_summaries(stopped_in_write: Debugged) -> None:
    apropos = stopped_in_write.gdb.run("apropos osv")
    for command in (
        "osv-tcb",
        "osv-syscalls",
        "osv-auxv",
        "osv-app-symbols",
        "osv-break",
        "osv-trace",
        "osv-fscheck",
    ):
        assert f"{command} -- " in apropos
    assert "kernel-fs" in stopped_in_write.gdb.run("help osv-tcb")
