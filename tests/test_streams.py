"""`osvgdb run`'s stdout and stderr are the app's fds 1 and 2, byte for byte, and
nothing else: the kernel's banner and messages are on its own console, which reaches
stderr only with --verbose (or a file with --log). The host running the same binary,
and gzip/gunzip, are the oracles."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest
from guest import BANNER, RUN_TIMEOUT, app, osvgdb_command

pytestmark = pytest.mark.usefixtures("kernel")

BUSYBOX = Path("/bin/busybox")


def run(*args: str, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    """`osvgdb run --accel tcg ARGS...`, bytes in and out."""
    return subprocess.run(
        osvgdb_command("run", "--accel", "tcg", "--timeout", str(RUN_TIMEOUT), *args),
        stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=RUN_TIMEOUT * 2,
    )  # fmt: skip


@pytest.fixture(scope="module")
def mebibyte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 MiB of binary data, every byte value in it (gzip can hardly shrink it)."""
    path = tmp_path_factory.mktemp("data") / "F"
    path.write_bytes(random.Random(22).randbytes(1 << 20))
    return path


def test_gzip_of_a_binary_mebibyte_comes_back_whole(mebibyte: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.gz"
    with open(mebibyte, "rb") as stdin, open(out, "wb") as stdout:
        done = run(str(BUSYBOX), "gzip", "-c", stdin=stdin, stdout=stdout)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    back = subprocess.run(["gunzip", "-c", str(out)], capture_output=True, check=True)
    assert back.stdout == mebibyte.read_bytes()


def test_a_reader_that_waits_loses_nothing(mebibyte: Path) -> None:
    """osvgdb's stdout a pipe nobody reads for a while: the guest waits (no byte dropped
    in QEMU), and its last bytes are out before it exits."""
    with open(mebibyte, "rb") as stdin:
        process = subprocess.Popen(
            osvgdb_command("run", "--accel", "tcg", str(BUSYBOX), "gzip", "-c"),
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(2)
        compressed, errors = process.communicate(timeout=RUN_TIMEOUT)
    assert process.returncode == 0, errors
    back = subprocess.run(["gunzip", "-c"], input=compressed, capture_output=True, check=True)
    assert back.stdout == mebibyte.read_bytes()


def test_an_error_goes_to_stderr_alone(tmp_path: Path) -> None:
    host = subprocess.run([str(BUSYBOX), "ls", "/missing"], capture_output=True)
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "wb") as stdout:
        done = run(str(BUSYBOX), "ls", "/missing", stdout=stdout)
    err.write_bytes(done.stderr)
    assert out.read_bytes() == b""
    assert err.read_bytes() == host.stderr == b"ls: /missing: No such file or directory\n"
    assert done.returncode == host.returncode == 1


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_stdout_and_stderr_in_turns_are_the_hosts(variant: str) -> None:
    exe = app("streams", variant)
    host = subprocess.run([str(exe)], capture_output=True, check=True)
    done = run(str(exe))
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout == host.stdout
    assert done.stderr == host.stderr


def test_the_kernels_console_only_when_asked(tmp_path: Path) -> None:
    hello = str(app("hello", "glibc"))
    quiet = run(hello)
    assert (quiet.stdout, quiet.stderr) == (b"Hello from C code\n", b"")
    verbose = run("--verbose", hello)
    assert verbose.stdout == b"Hello from C code\n"
    assert verbose.stderr.startswith(BANNER.encode()), verbose.stderr
    assert b"osv: exit status 0 after " in verbose.stderr  # the kernel's --verbose too
    log = tmp_path / "console"
    logged = run("--log", str(log), "--strace", hello)
    assert (logged.stdout, logged.stderr) == (b"Hello from C code\n", b"")
    text = log.read_text()
    assert text.startswith(BANNER) and '-> write(1, "Hello from C code\\n", 18) = 18' in text


def test_why_the_app_died_is_said_on_stderr() -> None:
    """As a shell says "Illegal instruction": osvgdb says what the kernel saw, after
    the app's own output."""
    done = run(str(app("crash", "glibc")))
    assert done.returncode == 128 + 4, done.stderr
    assert done.stdout == b"crash: executing ud2\n"
    (line,) = done.stderr.decode().splitlines()
    assert line.startswith("osvgdb: /crash-glibc: invalid opcode at rip 0x"), line


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_fd_1_is_what_the_hosts_is_or_a_terminal_with_t(tty: bool) -> None:
    script = "[ -t 1 ] && echo 1-tty || echo 1-pipe; [ -t 2 ] && echo 2-tty || echo 2-pipe"
    host = subprocess.run([str(BUSYBOX), "sh", "-c", script], capture_output=True, check=True)
    done = run(*(["-t"] if tty else []), str(BUSYBOX), "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    expected = b"1-tty\n2-tty\n" if tty else host.stdout
    assert host.stdout == b"1-pipe\n2-pipe\n" and done.stdout == expected


def test_dev_stdin_stdout_stderr_are_the_apps_own_streams() -> None:
    """/dev/stdin, /dev/stdout, /dev/stderr and /proc/self/fd/N open what the fd is open
    on (a pipe, the terminal), as on Linux: a script's `> /dev/stderr` goes to stderr."""
    script = ("echo to-stderr > /dev/stderr; echo via-fd-1 > /proc/self/fd/1; "
              "read -r x < /dev/stdin; echo \"read $x\"; echo appended >> /dev/stdout; "
              "[ -p /dev/stdin ] && echo stdin-is-a-pipe")
    bash = "/bin/bash-static"
    host = subprocess.run([bash, "-c", script], input=b"piped in\n", capture_output=True, check=True)
    done = subprocess.run(
        osvgdb_command("run", "--accel", "tcg", "--timeout", str(RUN_TIMEOUT), bash, "-c", script),
        input=b"piped in\n", capture_output=True, timeout=RUN_TIMEOUT * 2,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (host.stdout, host.stderr)
