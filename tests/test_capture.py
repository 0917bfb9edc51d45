"""Syscall buffers as the call saw them (kernel/include/syscall_history.h's captures),
checked against the host's strace of the same binary: a program that read()s its own
file and then overwrites the buffer, and stdio programs (glibc's read, musl's readv)
that reuse one buffer for every read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from gdbdriver import Debugged
from guest import app


def host_strace(exe: Path, args: list[str], names: str, tmp_path: Path) -> list[str]:
    """The host's strace lines for these syscalls, stdout on /dev/null."""
    log = tmp_path / "strace.log"
    with open("/dev/null", "wb") as devnull:
        subprocess.run(
            ["strace", "-qq", "-e", f"trace={names}", "-o", str(log), str(exe), *args],
            stdout=devnull,
            check=True,
        )
    # strace pads short lines to put " = result" in a column
    return [re.sub(r"\)\s+= ", ") = ", line) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def overwritten(kernel: None) -> Debugged:
    """readback-glibc stopped at the getppid after it overwrote the read buffer."""
    debugged = Debugged(app("readback", "glibc"))
    try:
        debugged.gdb.run("osv-break syscall getppid")
        stop = debugged.gdb.run("continue")
        assert "getppid()" in stop, stop
        yield debugged
    finally:
        debugged.close()


def test_read_then_overwrite_shows_the_bytes_read(overwritten: Debugged, tmp_path: Path) -> None:
    (host,) = host_strace(app("readback", "glibc"), [], "read", tmp_path)
    (record,) = overwritten.gdb.json("osv-syscalls -n 0 --name read --json")["records"]
    assert record["text"] == host == 'read(3, "\\177ELF\\2\\1\\1\\3\\0\\0\\0\\0\\0\\0\\0\\0", 16) = 16'
    assert record["memory_now"] == []
    # The buffer in memory now holds the program's Z's: the record does not.
    dump = overwritten.gdb.run(f"x/16xb {record['args'][1]}")
    values = [v for line in dump.splitlines() if ":" in line for v in line.split(":", 1)[1].split()]
    assert values == ["0x5a"] * 16, dump


def test_raw_shows_nothing_decoded(overwritten: Debugged) -> None:
    (record,) = overwritten.gdb.json("osv-syscalls -n 0 --name read --raw --json")["records"]
    assert '"' not in record["text"]


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_stdio_reads_match_host_strace(kernel: None, variant: str, tmp_path: Path) -> None:
    exe = app("readback", variant)
    name = "read" if variant == "glibc" else "readv"
    host = host_strace(exe, ["stdio"], name, tmp_path)
    debugged = Debugged(exe, ["stdio"])
    try:
        debugged.gdb.run("osv-break syscall exit_group")
        debugged.gdb.run("continue")
        records = debugged.gdb.json(f"osv-syscalls -n 0 --name {name} --json")["records"]
        ours = [r["text"] for r in records]
        assert len(ours) == len(host) > 3
        assert ours == host
        assert all(not r["memory_now"] for r in records)
        # Beyond the 64 bytes the kernel keeps of each buffer, memory now is marked.
        first = debugged.gdb.json(f"osv-syscalls -n 0 --name {name} -s 100 --json")["records"][0]
        assert "/* memory now */" in first["text"], first["text"]
        assert first["memory_now"] == [1]
    finally:
        debugged.close()


def test_exit_event_shows_the_bytes_read(kernel: None, tmp_path: Path) -> None:
    """The API's exit event: its text and arg_buffer come from the record's capture."""
    script = tmp_path / "reads.py"
    script.write_text(
        "from osvgdb.gdb.api import on_syscall\n"
        "@on_syscall('read', exit=True)\n"
        "def show(event):\n"
        "    print('EVENT', event.text, event.arg_buffer(1, 4).hex())\n"
        "    return True\n"
    )
    (host,) = host_strace(app("readback", "glibc"), [], "read", tmp_path)
    debugged = Debugged(app("readback", "glibc"))
    try:
        debugged.gdb.run(f"source {script}")
        stop = debugged.gdb.run("continue")
        assert f"EVENT {host} 7f454c46" in stop, stop
    finally:
        debugged.close()


def test_trace_shows_the_bytes_read(kernel: None, tmp_path: Path) -> None:
    """osv-trace prints each call from its record after the program changed the buffer:
    the line is host strace's."""
    (host,) = host_strace(app("readback", "glibc"), [], "read", tmp_path)
    debugged = Debugged(app("readback", "glibc"))
    try:
        debugged.gdb.run("osv-trace syscalls read")
        debugged.gdb.run("osv-break syscall exit_group")
        output = debugged.gdb.run("continue")
    finally:
        debugged.close()
    assert f"[cpu0 tid1] {host}" in output.splitlines(), output
