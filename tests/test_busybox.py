"""A static program nobody here wrote: Debian's busybox-static (scripts/bootstrap
installs it), run by `osvgdb run` and by the host, each applet's output compared."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from guest import osvgdb_run

BUSYBOX = Path("/bin/busybox")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    "applet",
    [
        ["echo", "hi"],
        ["seq", "3"],
        # Reads a file: the only one in the initrd is busybox itself, /busybox there.
        ["md5sum", "/busybox"],
        # getcwd: "/" on both sides (the host runs from "/")
        ["pwd"],
        # printf asks fcntl(1, F_GETFL) before it writes
        ["printf", "%s-%d\\n", "abc", "42"],
        # the wall clock starts from the RTC: the host's year
        ["date", "+%Y"],
        # an argument with a newline in it: the kernel's Cmdline echo stays one line
        ["printf", "%s|%s\n", "one\ttab", "two"],
    ],
    ids=lambda applet: applet[0],
)
def test_busybox_applet_prints_what_it_prints_on_the_host(applet: list[str]) -> None:
    if not BUSYBOX.is_file():
        pytest.fail(f"{BUSYBOX} is missing: run scripts/bootstrap", pytrace=False)
    run = osvgdb_run("--accel", "tcg", str(BUSYBOX), *applet)
    assert run.status == 0, run
    host_args = [str(BUSYBOX) if arg == "/busybox" else arg for arg in applet]
    host = subprocess.run([str(BUSYBOX), *host_args], capture_output=True, text=True, check=True, cwd="/")
    expected = host.stdout.replace(str(BUSYBOX), "/busybox").splitlines()
    assert run.app_lines == expected, run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    ("applet", "expected", "errors"),
    [
        # "/" holds the initrd's files, busybox alone here, and dev, proc and tmp.
        (["ls", "/"], ["busybox", "dev", "proc", "tmp"], []),
        (["ls", "-1a", "/"], [".", "..", "busybox", "dev", "proc", "tmp"], []),
        (["sh", "-c", "cd / && pwd; cd /busybox; cd /nonexistent"], ["/"], [
            "sh: cd: line 0: can't cd to /busybox: Not a directory",
            "sh: cd: line 0: can't cd to /nonexistent: No such file or directory",
        ]),
    ],
    ids=["ls", "ls-a", "cd"],
)
def test_busybox_sees_the_root_directory(
    applet: list[str], expected: list[str], errors: list[str]
) -> None:
    if not BUSYBOX.is_file():
        pytest.fail(f"{BUSYBOX} is missing: run scripts/bootstrap", pytrace=False)
    run = osvgdb_run("--accel", "tcg", str(BUSYBOX), *applet)
    assert run.app_lines == expected, run
    assert run.stderr.splitlines() == errors, run


@pytest.mark.usefixtures("kernel")
def test_busybox_sort_of_piped_lines_is_the_hosts() -> None:
    data = b"pear\napple\nfig 10\nfig 9\nBanana\n\n"
    run = osvgdb_run("--accel", "tcg", str(BUSYBOX), "sort", input=data)
    host = subprocess.run([str(BUSYBOX), "sort"], input=data, capture_output=True, check=True)
    assert run.status == 0, run
    assert run.app_lines == host.stdout.decode().splitlines(), run
