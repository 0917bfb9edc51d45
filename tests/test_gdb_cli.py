"""`osvgdb debug` from the command line: --batch, -ex, exit status, no leftovers."""

from __future__ import annotations

import os
import subprocess

import pytest
from guest import BANNER, app, osvgdb_command

TIMEOUT = 60


def debug(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        osvgdb_command("debug", "--accel", "tcg", *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def _our_qemus() -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"qemu-system-x86_64") and any(b"osvgdb-" in a for a in argv):
            pids.add(int(entry))
    return pids


@pytest.mark.usefixtures("kernel")
def test_batch_stops_in_write_and_shows_it() -> None:
    before = _our_qemus()
    result = debug(
        "--batch",
        "-ex",
        "osv-break syscall write",
        "-ex",
        "continue",
        "-ex",
        "tbreak dispatch",
        "-ex",
        "continue",
        "-ex",
        "osv-syscalls -n 1",
        "-ex",
        "osv-tcb --cpu 0",
        str(app("hello", "glibc")),
    )
    assert result.returncode == 0, result.stderr
    assert 'write(1, "Hello from C code\\n", 18) = ? <in flight>' in result.stdout
    assert "CPU 0 (GDB thread 1): syscall, consistent" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert _our_qemus() <= before


@pytest.mark.usefixtures("kernel")
def test_connecting_says_where_the_guest_is() -> None:
    result = debug("--batch", "-ex", "info threads", str(app("hello", "glibc")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "osvgdb: connected, the guest is stopped before its first instruction"
    assert "?? ()" not in lines[0] and "Remote debugging using" not in result.stdout


@pytest.mark.usefixtures("kernel")
def test_batch_exit_status_is_gdbs() -> None:
    # Were the guest resumed when GDB exits (a detach does that), it would boot,
    # and this app exit, before QEMU is killed.
    result = debug("--batch", "-ex", "osv-tcb --bogus", str(app("exit", "glibc")), "3")
    assert result.returncode != 0
    assert "osv-tcb: unrecognized arguments: --bogus" in result.stderr
    assert BANNER not in result.stdout


def test_usage_error() -> None:
    result = debug("--batch")
    assert result.returncode == 2
    assert result.stderr == "osvgdb: error: debug: missing EXE\n"
