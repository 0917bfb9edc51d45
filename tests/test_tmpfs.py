"""The writable filesystem behaves as Linux's tmpfs: kernel/apps/tmpfs.c makes every call
a program makes on files and directories (create, write, append, truncate, rename,
unlink, mkdir, rmdir, symlink, readlink, link, utimensat, fsync, chmod, chown, access,
getdents) and each error case, and prints what it got. The host runs it in a fresh
directory on its own tmpfs (/dev/shm), the guest in /tmp: the host's Linux is the oracle,
line for line, for glibc and musl."""

from __future__ import annotations

import subprocess
import tempfile

import pytest
from guest import app, osvgdb_run

ERRNOS = ("ENOENT", "EEXIST", "ENOTDIR", "EISDIR", "ENOTEMPTY", "EXDEV", "EINVAL", "ELOOP")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_tmpfs_answers_as_the_hosts(variant: str) -> None:
    exe = app("tmpfs", variant)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        host = subprocess.run([str(exe), f"{scratch}/t"], capture_output=True, text=True, check=True)
    assert "f_type 0x1021994" in host.stdout, "the host's /dev/shm is no tmpfs: no oracle"
    for name in ERRNOS:
        assert f": -1 {name}\n" in host.stdout, f"the program never met {name}"
    run = osvgdb_run("--accel", "tcg", str(exe), "/tmp/t")
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run
