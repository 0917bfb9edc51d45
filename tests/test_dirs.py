""""/": stat, statx, getdents64, openat and newfstatat from a directory fd, chdir and
fchdir. kernel/apps/dirs.c looks at the directory it is given; the host runs it on a fresh
directory (on tmpfs, as the guest's) holding a copy of the program and the guest's other
entries of "/", empty directories dev, proc and tmp: the oracle for the guest's "/"."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from guest import app, osvgdb_run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_root_directory_answers_as_a_linux_directory(variant: str) -> None:
    exe = app("dirs", variant)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        copy = Path(scratch) / "root" / exe.name
        for name in ("dev", "proc", "tmp"):
            (copy.parent / name).mkdir(parents=True)
        shutil.copy2(exe, copy)
        host = subprocess.run([str(copy), str(copy.parent)], capture_output=True, text=True, check=True)
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe), "/")
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run
    for name in ("statx", "getdents64", "chdir", "fchdir"):
        assert name in run.strace_names, run
