"""pwrite64, pwritev, preadv, sendfile, mremap, getrusage and times against the same
binary on the host (kernel/apps/morecalls.c prints each raw result or a check of it), at
-smp 1 and 2; --strace names the same calls as the host's strace."""

from __future__ import annotations

from pathlib import Path

import pytest
from guest import app, assert_runs_as_on_the_host, host_strace_names, osvgdb_run

CALLS = ("pwrite64", "pwritev", "preadv", "sendfile", "mremap", "getrusage", "times")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_more_calls_answer_as_on_linux(variant: str, smp: int) -> None:
    assert_runs_as_on_the_host(app("morecalls", variant), "--smp", str(smp))


@pytest.mark.usefixtures("kernel")
def test_strace_names_them_as_the_host(tmp_path: Path) -> None:
    exe = app("morecalls", "musl")
    host = host_strace_names(exe, CALLS, tmp_path)
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe))
    assert run.status == 0, run
    assert [name for name in run.strace_names if name in CALLS] == host, run
