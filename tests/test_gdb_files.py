"""osv-files on a real kernel under real GDB: busybox cat stopped in its sendfile of a file
given with --add, the fd table as the kernel has it: the terminal's fds 0-2 and the
file cat opened, whose flags are what osv-syscalls shows cat passed to openat and whose
size is the host file's."""

from __future__ import annotations

from pathlib import Path

import pytest
from gdbdriver import Debugged

BUSYBOX = Path("/bin/busybox")


@pytest.mark.usefixtures("kernel")
def test_osv_files_shows_the_fd_table(tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("some data\n" * 123)
    debugged = Debugged(BUSYBOX, ["cat", "/data.txt"], add=[(data, "/data.txt")])
    try:
        debugged.gdb.run("osv-break syscall sendfile")
        debugged.gdb.run("continue")
        report = debugged.gdb.json("osv-files --json")
        text = debugged.gdb.run("osv-files")
        calls = debugged.gdb.json("osv-syscalls -n 0 --json")
    finally:
        debugged.close()
    by_fd = {item["fd"]: item for item in report["fds"]}
    assert sorted(by_fd)[:4] == [0, 1, 2, 3], report
    assert [by_fd[fd]["kind"] for fd in (0, 1, 2)] == ["tty", "tty", "tty"], report
    opened = by_fd[3]
    assert opened["kind"] == "tmpfs" and opened["offset"] == 0, opened
    assert opened["inode"]["type"] == "file" and opened["inode"]["size"] == data.stat().st_size
    (openat,) = [c for c in calls["records"] if c["name"] == "openat" and c.get("ret") == 3]
    assert opened["flags_text"].split("|")[0] == "O_RDONLY", opened
    assert "O_RDONLY" in openat["text"], openat
    assert "  3  tmpfs" in text and "size 1230" in text, text
