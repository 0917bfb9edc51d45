"""getcwd, umask, dup/dup2/dup3, fcntl, prctl's thread name, clock_getres, sysinfo, time and
getpeername on the kernel, against the same binary run on the host (from "/", umask 022):
kernel/apps/fdcalls.c prints each raw result, so the host's Linux is the oracle."""

from __future__ import annotations

import os
import subprocess

import pytest
from guest import VARIANTS, app, osvgdb_run

GUEST_ONLY = [
    "getpgrp-is-pid yes",
    "socket -97",  # EAFNOSUPPORT: no network
    "fork -38",  # ENOSYS, with the kernel's console line FORK_LINE
]
FORK_LINE = "osv: /fdcalls-{variant}: fork: this kernel runs one process and does not fork"


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_fd_and_process_calls_answer_as_linux(variant: str) -> None:
    assert variant in VARIANTS
    exe = app("fdcalls", variant)
    host = subprocess.run(
        [str(exe)], cwd="/", capture_output=True, text=True, check=True,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    run = osvgdb_run("--accel", "tcg", str(exe), "guest")
    assert run.status == 0, run
    expected = host.stdout.splitlines() + [line.format(variant=variant) for line in GUEST_ONLY]
    assert run.app_lines == expected, run
    assert FORK_LINE.format(variant=variant) in run.lines, run
