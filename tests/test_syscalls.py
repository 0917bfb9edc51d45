"""Syscalls beyond start-up: initrd files, uname, getrandom, clocks, nanosleep; and
the kernel's --strace lines for memory calls against the host's strace."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from guest import VARIANTS, app, osvgdb_run

MEMORY_CALLS = ("mmap", "mprotect", "munmap")


@pytest.mark.usefixtures("apps")
@pytest.mark.parametrize("variant", VARIANTS)
def test_syscalls_on_host_linux(variant: str) -> None:
    result = subprocess.run([str(app("syscalls", variant))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1] == "syscalls ok"


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", VARIANTS)
def test_syscalls_in_guest(variant: str) -> None:
    run = osvgdb_run("--accel", "tcg", str(app("syscalls", variant)))
    assert run.status == 0, run
    assert run.app_lines[-1] == "syscalls ok", run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", VARIANTS)
def test_nanosleep_in_guest(variant: str) -> None:
    # glibc's nanosleep() is the clock_nanosleep syscall; musl's is nanosleep.
    run = osvgdb_run("--accel", "tcg", str(app("sleep", variant)), "1")
    assert run.status == 0, run
    assert run.app_lines == ["sleep start 1", "sleep done"], run


def _memory_calls(lines: list[str]) -> list[str]:
    """strace lines (`name(args) = result`) of the memory calls from the first mmap
    on, what precedes it being start-up that differs between the two systems. Each
    address an mmap returned is ADDRn, in the result and the calls using it, so two
    address spaces compare."""
    addresses: dict[str, str] = {}
    calls = []
    for line in lines:
        call, _, result = line.rpartition(" = ")
        call, result = call.strip(), result.strip()
        name = call.split("(", 1)[0]
        if name not in MEMORY_CALLS or not (calls or name == "mmap"):
            continue
        call = re.sub(r"0x[0-9a-f]+", lambda m: addresses.get(m.group(), m.group()), call)
        if name == "mmap":
            result = addresses.setdefault(result, f"ADDR{len(addresses)}")
        calls.append(f"{call} = {result}")
    return calls


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", VARIANTS)
def test_strace_of_memory_calls_is_the_hosts(variant: str, tmp_path: Path) -> None:
    """mmap's fd -1 and offset, PROT_NONE and the MAP_ flags as strace prints them."""
    exe = app("mmap", variant)
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-qq", "-o", str(log), str(exe)], check=True)
    host = _memory_calls(log.read_text().splitlines())
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe))
    assert run.status == 0, run
    guest = _memory_calls([line[3:] for line in run.lines if line.startswith("-> ")])
    assert guest == host, run
    assert host[0] == "mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = ADDR0"
    assert "mmap(NULL, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE, 3, 0x1000) = ADDR1" in host
