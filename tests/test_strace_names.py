"""Real programs nobody here wrote (Debian's busybox-static, bash-static, zsh-static) and
musl's stdio: the syscalls `osvgdb run --strace` names, against the host's `strace -f`
of the same binary with the same arguments, stdin and environment. Every place where the
two sequences differ must be one this file explains; anything else fails the test with
the differing stretch and its neighbours.

The host run is made as like the guest's as a host allows: stdin a pipe with the same
bytes, stdout a terminal (the guest's is the console), an empty environment (the
guest's), working directory "/", and the guest's "/" a directory holding its file and the
directories dev, proc and tmp."""

from __future__ import annotations

import difflib
import os
import pty
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from guest import APPS, osvgdb_run
from test_shells import INPUT, SCRIPT

BUSYBOX = Path("/bin/busybox")

# (what the difference is, the names that differ): "insert" is in the guest only,
# "delete" on the host only.
EXPLAINED: dict[tuple[str, tuple[str, ...]], str] = {
    ("insert", ("time",)): "the host answers time() from the vDSO; this kernel has none",
    ("insert", ("gettimeofday",)): "the host answers gettimeofday() from the vDSO",
    ("insert", ("ioctl",)): (
        "glibc's stdio asks TCGETS before the first write to a character device that is "
        "not a pty: the guest's stdout is /dev/console (5, 1), the host's a pty"
    ),
    ("delete", ("connect", "close")): (
        "bash's NSS tries nscd's unix socket; the guest has no sockets (socket() fails "
        "EAFNOSUPPORT), so it never connects"
    ),
    ("delete", ("newfstatat", "read", "read", "newfstatat", "close")): (
        "the host has /etc/nsswitch.conf and reads it; the initrd has no /etc"
    ),
    ("delete", ("newfstatat", "lseek", "read", "close")): (
        "the host has /etc/passwd (bash's getpwuid) and reads it; the initrd has no /etc"
    ),
}

# What an explained insertion's --strace line must also say, where its name alone is not
# enough: TCGETS on stdout or stderr only (fd 0 fed by a pipe is a pipe, as on the host).
INSERTED_LINE = {
    ("insert", ("ioctl",)): re.compile(r"-> ioctl\([12], 0x5401, "),
}

CASES = {
    "busybox-sort": ([str(BUSYBOX), "sort"], b"b\na\nc\n", {}),
    "busybox-ls": ([str(BUSYBOX), "ls", "/"], b"", {}),
    "busybox-pwd": ([str(BUSYBOX), "pwd"], b"", {}),
    # TZ names no zone file on either side: both try it, fail and use the rule.
    "busybox-date": ([str(BUSYBOX), "date", "+%Y"], b"", {"TZ": "UTC0"}),
    "busybox-md5sum": ([str(BUSYBOX), "md5sum", "/busybox"], b"", {}),
    "busybox-printf": ([str(BUSYBOX), "printf", "%s-%d\\n", "abc", "42"], b"", {}),
    "busybox-cat": ([str(BUSYBOX), "cat"], b"hi\n", {}),
    "busybox-wc": ([str(BUSYBOX), "wc", "-w"], b"one two\nthree\n", {}),
    "bash": (["/bin/bash-static", "-c", SCRIPT], INPUT, {}),
    "zsh": (["/bin/zsh-static", "-c", SCRIPT], INPUT, {}),
    "musl-fread": ([str(APPS / "readback-musl")], b"", {}),
}


def host_calls(argv: list[str], data: bytes, env: dict[str, str], tmp_path: Path) -> list[str]:
    """The host's strace lines for argv (after execve), as the guest runs it: the
    guest's "/", holding /NAME and the directories dev, proc and tmp, is on the host a
    directory holding NAME and three directories of those names."""
    root = tmp_path / "root"
    for name in ("dev", "proc", "tmp"):
        (root / name).mkdir(parents=True)
    exe = root / Path(argv[0]).name
    shutil.copy(argv[0], exe)
    argv = [str(exe)] + [str(exe) if a == f"/{exe.name}" else str(root) if a == "/" else a for a in argv[1:]]
    log = tmp_path / "strace.log"
    leader, terminal = pty.openpty()
    try:
        subprocess.run(
            ["strace", "-f", "-qq", "-o", str(log), *argv],
            input=data, stdout=terminal, stderr=terminal, cwd="/", env=env, timeout=60,
        )  # fmt: skip
    finally:
        os.close(terminal)
        os.close(leader)
    lines = [re.sub(r"^\d+\s+", "", line) for line in log.read_text().splitlines()]
    assert lines[0].startswith("execve(")  # the guest's kernel loads the program itself
    return lines[1:]


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("case", list(CASES))
def test_strace_names_equal_the_hosts_or_are_explained(case: str, tmp_path: Path) -> None:
    argv, data, env = CASES[case]
    if not Path(argv[0]).exists():
        pytest.fail(f"{argv[0]} is missing: run scripts/bootstrap", pytrace=False)
    host_lines = host_calls(argv, data, env, tmp_path)
    host = [line.split("(", 1)[0] for line in host_lines]
    options = [f"--env={name}={value}" for name, value in env.items()]
    # -t: the app's stdout and stderr terminals, as the host's pty.
    run = osvgdb_run("--accel", "tcg", "-t", "--strace", *options, *argv, input=data)
    guest = run.strace_names
    guest_lines = [line for line in run.lines if line.startswith("-> ")]
    assert guest and guest[-1] in ("exit_group", "exit"), run
    unexplained = []
    matcher = difflib.SequenceMatcher(a=host, b=guest, autojunk=False)
    for tag, h1, h2, g1, g2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        # A replace is a stretch of the host's calls where the guest has others: both
        # halves must be explained.
        keys = [("insert", tuple(guest[g1:g2]))] if tag != "delete" else []
        keys += [("delete", tuple(host[h1:h2]))] if tag != "insert" else []
        pattern = INSERTED_LINE.get(("insert", tuple(guest[g1:g2])))
        lines_ok = pattern is None or all(pattern.match(line) for line in guest_lines[g1:g2])
        if any(key not in EXPLAINED for key in keys) or not lines_ok:
            unexplained.append(
                f"{tag}: host {host[max(0, h1 - 2) : h2 + 2]} guest {guest[max(0, g1 - 2) : g2 + 2]}"
                + "".join(f"\n    host  {line}" for line in host_lines[max(0, h1 - 2) : h2 + 2])
                + "".join(f"\n    guest {line}" for line in guest_lines[max(0, g1 - 2) : g2 + 2])
            )
    assert not unexplained, "\n".join(unexplained)
