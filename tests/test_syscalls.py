"""Syscalls beyond start-up: initrd files, uname, getrandom, clocks, nanosleep."""

from __future__ import annotations

import subprocess

import pytest
from guest import VARIANTS, app, osvgdb_run


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
