"""pwrite64, pwritev, preadv, sendfile, mremap, getrusage and times against the same
binary on the host (kernel/apps/morecalls.c prints each raw result or a check of it), at
-smp 1 and 2; --strace names the same calls as the host's strace."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from guest import app, osvgdb_run

CALLS = ("pwrite64", "pwritev", "preadv", "sendfile", "mremap", "getrusage", "times")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_more_calls_answer_as_on_linux(variant: str, smp: int) -> None:
    exe = app("morecalls", variant)
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    run = osvgdb_run("--accel", "tcg", "--smp", str(smp), str(exe))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run


@pytest.mark.usefixtures("kernel")
def test_strace_names_them_as_the_host(tmp_path: Path) -> None:
    exe = app("morecalls", "musl")
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-qq", "-e", f"trace={','.join(CALLS)}", "-o", str(log), str(exe)],
        capture_output=True, check=True,
    )  # fmt: skip
    host = [line.split("(", 1)[0] for line in log.read_text().splitlines()]
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe))
    assert run.status == 0, run
    # sendfile to stdout leaves "ELF" without a newline: its strace line follows on the same line.
    names = re.findall(r"-> (\w+)\(", run.stdout)
    assert [name for name in names if name in CALLS] == host, run
