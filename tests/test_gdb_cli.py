"""`osvgdb debug` from the command line: --batch, -ex, exit status, no leftovers."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from guest import BANNER, app, osvgdb_command
from test_run_exit import qemu_pids

from osvgdb.run import EXIT_NO_STATUS, EXIT_PANIC

TIMEOUT = 60


def debug(*args: str, tmpdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`osvgdb debug ARGS`; with `tmpdir` as its TMPDIR, which QEMU's command line names."""
    return subprocess.run(
        osvgdb_command("debug", "--accel", "tcg", *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None,
    )


@pytest.mark.usefixtures("kernel")
def test_batch_stops_in_write_and_shows_it(tmp_path: Path) -> None:
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
        tmpdir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert 'write(1, "Hello from C code\\n", 18) = ? <in flight>' in result.stdout
    assert "CPU 0 (GDB thread 1): syscall, consistent" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    # Other QEMUs may run on this machine: ours are the ones naming our TMPDIR.
    assert qemu_pids(tmp_path) == [] and list(tmp_path.iterdir()) == []
    assert gdb_pids(tmp_path) == []


@pytest.mark.usefixtures("kernel")
def test_connecting_says_where_the_guest_is() -> None:
    result = debug("--batch", "-ex", "info threads", str(app("hello", "glibc")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "osvgdb: connected, the guest is stopped before its first instruction"
    assert "?? ()" not in lines[0] and "Remote debugging using" not in result.stdout


@pytest.mark.usefixtures("kernel")
def test_batch_exit_status_is_gdbs_while_the_app_runs() -> None:
    # Were the guest resumed when GDB exits (a detach does that), it would boot,
    # and this app could exit with 3 before osvgdb looked.
    result = debug("--batch", "-ex", "osv-tcb --bogus", str(app("exit", "glibc")), "3")
    assert result.returncode == 1, result.stderr
    assert "osv-tcb: unrecognized arguments: --bogus" in result.stderr
    assert "osvgdb debug:" not in result.stderr
    assert BANNER not in result.stdout


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("status", [3, 0])
def test_batch_exit_status_is_the_apps_once_it_exited(status: int) -> None:
    # The last command fails (no live target): the app's exit decides all the same.
    exe = str(app("exit", "glibc"))
    result = debug("--batch", "-ex", "continue", "-ex", "osv-syscalls", exe, str(status))
    assert result.returncode == status, result.stderr
    assert f"osvgdb debug: the app exited with status {status}\n" in result.stderr
    assert "osv-syscalls: no live target" in result.stderr


@pytest.mark.usefixtures("kernel")
def test_batch_exit_status_after_a_kernel_panic() -> None:
    result = debug(
        "--batch", "--kernel-arg=--test-panic", "-ex", "break osv_panic_halt", "-ex", "continue",
        str(app("hello", "glibc")),
    )  # fmt: skip
    assert result.returncode == EXIT_PANIC, result.stderr
    assert "osvgdb debug: kernel panic (the report is on the console)\n" in result.stderr


@pytest.mark.usefixtures("kernel")
def test_batch_exit_status_when_gdb_dies_of_a_signal() -> None:
    # `shell` runs sh as GDB's child: its parent is GDB.
    result = debug("--batch", "-ex", "shell kill -KILL $PPID", str(app("hello", "glibc")))
    assert result.returncode == 128 + signal.SIGKILL, result.stderr
    assert "osvgdb debug: GDB died of signal 9 (Killed)\n" in result.stderr


@pytest.mark.usefixtures("kernel")
def test_batch_exit_status_when_qemu_is_killed(tmp_path: Path) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        osvgdb_command("debug", "--accel", "tcg", "--batch", "-ex", f"shell cat {fifo}",
                       "-ex", "osv-syscalls", str(app("hello", "glibc"))),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # QEMU's command line names it
    )  # fmt: skip
    try:
        go = _open_once_read(fifo, process)  # GDB is connected and waits in `shell cat`
        (qemu,) = qemu_pids(tmp_path)
        os.kill(qemu, signal.SIGKILL)
        os.close(go)
        _, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_NO_STATUS, stderr
    assert "osvgdb debug: QEMU was killed by signal 9 (Killed) before the app exited\n" in stderr
    assert "osv-syscalls: no live target" in stderr
    assert qemu_pids(tmp_path) == [] and gdb_pids(tmp_path) == []


def _open_once_read(fifo: Path, process: subprocess.Popen[str]) -> int:
    """The FIFO opened for writing, once its reader has it open."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: nobody reads it yet
                raise
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "GDB never ran its shell command"
        time.sleep(0.05)


def test_usage_error() -> None:
    result = debug("--batch")
    assert result.returncode == 2
    assert result.stderr == "osvgdb: error: debug: missing EXE\n"


def gdb_pids(marker: Path) -> list[int]:
    """GDB processes whose command line mentions `marker` (the TMPDIR its sockets are in)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name == "gdb" and str(
            marker
        ).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


@pytest.mark.usefixtures("kernel")
def test_qemu_that_never_comes_up(tmp_path: Path) -> None:
    not_a_kernel = tmp_path / "not-a-kernel"
    not_a_kernel.write_text("QEMU cannot boot this\n")
    workdirs = tmp_path / "tmp"
    workdirs.mkdir()
    result = debug("--batch", "--kernel", str(not_a_kernel), str(app("hello", "glibc")),
                   tmpdir=workdirs)  # fmt: skip
    assert result.returncode == EXIT_NO_STATUS, result.stderr
    first, *rest = result.stderr.splitlines()
    assert first == "osvgdb debug: QEMU exited with status 1 before it was up", result.stderr
    assert rest and all(line.startswith("  qemu: ") for line in rest), result.stderr
    assert result.stdout == ""  # GDB never started
    assert qemu_pids(workdirs) == [] and list(workdirs.iterdir()) == []


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_signal_to_osvgdb_debug_leaves_nothing(tmp_path: Path, signum: signal.Signals) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    workdirs = tmp_path / "tmp"
    workdirs.mkdir()
    process = subprocess.Popen(
        osvgdb_command("debug", "--accel", "tcg", "--batch", "-ex", f"shell cat {fifo}",
                       str(app("hello", "glibc"))),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TMPDIR": str(workdirs)},
    )  # fmt: skip
    go = None
    try:
        go = _open_once_read(fifo, process)  # GDB is connected and waits in `shell cat`
        assert qemu_pids(workdirs) != [] and gdb_pids(workdirs) != []
        process.send_signal(signum)
        process.wait(timeout=TIMEOUT)  # `cat` still holds our pipes: no communicate() yet
    finally:
        if process.poll() is None:
            process.kill()
        if go is not None:
            os.close(go)  # `cat` ends
        _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == (128 + signum if signum != signal.SIGKILL else -signum), stderr
    if signum != signal.SIGKILL:
        assert stderr == f"osvgdb: terminated by {signum.name}\n"
    deadline = time.monotonic() + 5  # after a SIGKILL, PR_SET_PDEATHSIG does it
    while (qemu_pids(workdirs) or gdb_pids(workdirs)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qemu_pids(workdirs) == [] and gdb_pids(workdirs) == []
