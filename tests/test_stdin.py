"""The host's stdin reaches the guest's fd 0 (osvgdb/stdin.py, kernel/core/console.c's
"Console input"): a pipe or file gives its bytes, binary ones too, then end of file;
an empty or closed stdin is end of file at once; poll and select on fd 0 wait for input;
a terminal is interactive. kernel/apps/stdin.c on the host, fed the same bytes, is the
oracle."""

from __future__ import annotations

import os
import random
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from guest import ROOT, RUN_TIMEOUT, app, osvgdb_command, osvgdb_run
from tmuxdriver import Tmux

from osvgdb.stdin import quote, stdin_mode

BUSYBOX = Path("/bin/busybox")


def lines_of_bytes(seed: int, count: int) -> bytes:
    """`count` lines of random bytes, with the line's own two control bytes among them."""
    rng = random.Random(seed)
    lines = [bytes(rng.randrange(256) for _ in range(rng.randrange(150))) for _ in range(count)]
    body = b"\n".join(line.replace(b"\n", b"") for line in lines)
    return b"\x04\x16\x16\x04 start\n" + body + b"\n"


def host_output(exe: Path, *args: str, data: bytes) -> list[str]:
    host = subprocess.run([str(exe), *args], input=data, capture_output=True, check=True)
    return host.stdout.decode().splitlines()


def test_quote_escapes_the_two_control_bytes() -> None:
    assert quote(b"a\x04b\x16c") == b"a\x16\x04b\x16\x16c"
    assert quote(b"plain\n") == b"plain\n"


def test_stdin_mode_tells_pipes_from_devnull_and_closed_fds(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(write_end)
    assert stdin_mode(read_end) == "pipe"
    os.close(read_end)
    assert stdin_mode(read_end) == "none"
    assert stdin_mode(None) == "none"
    (tmp_path / "file").write_bytes(b"x")
    with open(tmp_path / "file", "rb") as file, open(os.devnull, "rb") as devnull:
        assert stdin_mode(file.fileno()) == "pipe"
        assert stdin_mode(devnull.fileno()) == "none"


@pytest.mark.usefixtures("kernel")
def test_busybox_cat_prints_piped_input() -> None:
    run = osvgdb_run("--accel", "tcg", str(BUSYBOX), "cat", input=b"hi\n")
    assert run.status == 0, run
    assert run.app_lines == ["hi"], run


@pytest.mark.usefixtures("kernel")
def test_busybox_wc_counts_piped_words() -> None:
    run = osvgdb_run("--accel", "tcg", str(BUSYBOX), "wc", "-w", input=b"a b c\n")
    assert run.status == 0, run
    assert [line.strip() for line in run.app_lines] == ["3"], run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("how", ["read", "fread"])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_reads_of_piped_bytes_match_the_host(variant: str, how: str) -> None:
    data = lines_of_bytes(12, 60)
    exe = app("stdin", variant)
    run = osvgdb_run("--accel", "tcg", str(exe), how, input=data)
    assert run.status == 0, run
    assert run.app_lines == host_output(exe, how, data=data), run


@pytest.mark.usefixtures("kernel")
def test_reads_on_another_cpu_than_the_interrupts() -> None:
    """The UART's interrupt goes to the boot CPU; the reader may sleep on any."""
    data = lines_of_bytes(5, 40)
    exe = app("stdin", "glibc")
    run = osvgdb_run("--accel", "tcg", "--smp", "2", str(exe), "read", input=data)
    assert run.status == 0, run
    assert run.app_lines == host_output(exe, "read", data=data), run


@pytest.mark.usefixtures("kernel")
def test_a_file_larger_than_the_kernels_ring_arrives_whole(tmp_path: Path) -> None:
    """40 KiB through a 4 KiB ring: QEMU holds back what the guest has no room for."""
    data = random.Random(7).randbytes(40000)
    (tmp_path / "input").write_bytes(data)
    exe = app("stdin", "musl")
    argv = osvgdb_command("run", "--timeout", str(RUN_TIMEOUT), "--accel", "tcg", str(exe), "read")
    with open(tmp_path / "input", "rb") as stdin:
        result = subprocess.run(
            argv, stdin=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-2:] == host_output(exe, "read", data=data), result


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("stdin", ["devnull", "empty-pipe", "closed"])
def test_no_input_is_end_of_file_at_once(stdin: str) -> None:
    exe = app("stdin", "glibc")
    argv = osvgdb_command("run", "--timeout", str(RUN_TIMEOUT), "--accel", "tcg", str(exe), "read")
    kwargs: dict = {
        "devnull": {"stdin": subprocess.DEVNULL},
        "empty-pipe": {"input": ""},
        "closed": {"stdin": subprocess.DEVNULL, "preexec_fn": lambda: os.close(0)},
    }[stdin]
    started = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, **kwargs)
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-2:] == [
        "read after EOF: 0",
        "read: 0 bytes, 0 lines, fnv1a cbf29ce484222325",
    ], result
    assert time.monotonic() - started < 20


def poll_session(argv: list[str]) -> tuple[list[str], bool]:
    """Runs stdin's poll mode: once it says "waiting", checks that nothing more comes
    for a second (the poll blocks), then sends a line and, once poll and select have
    seen it, ends the input. Returns its output lines (its stdout: osvgdb run's is the
    app's alone), and whether the program stayed quiet while it waited."""
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    output = b""

    def read_until(needle: bytes) -> None:
        nonlocal output
        deadline = time.monotonic() + RUN_TIMEOUT
        while needle not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                output += os.read(process.stdout.fileno(), 65536)

    try:
        read_until(b"waiting\n")
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        quiet = not ready
        process.stdin.write(b"x\n")
        process.stdin.flush()
        read_until(b"select: ")
        process.stdin.close()
        output += process.stdout.read()
        assert process.wait(RUN_TIMEOUT) == 0, output
    finally:
        process.kill()
        process.wait()
    return output.decode(errors="replace").replace("\r\n", "\n").splitlines(), quiet


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_poll_and_select_on_stdin_wait_for_input(variant: str) -> None:
    exe = app("stdin", variant)
    host, host_quiet = poll_session([str(exe), "poll"])
    guest, guest_quiet = poll_session(
        osvgdb_command("run", "--timeout", str(RUN_TIMEOUT), "--accel", "tcg", str(exe), "poll")
    )
    assert host_quiet and guest_quiet, (host, guest)
    # The end of the input is a pipe's POLLHUP on the host, POLLIN on the console.
    assert "poll at EOF: 1 revents 0x10" in host
    assert guest == [line.replace("revents 0x10", "revents 0x1") for line in host]
    assert "poll: 1 revents 0x1" in guest


@pytest.mark.usefixtures("kernel")
def test_busybox_sh_in_a_terminal_runs_what_is_typed() -> None:
    # --verbose: the kernel's console on the terminal too, to see that the guest is up.
    term = Tmux(osvgdb_command("run", "--verbose", "--accel", "tcg", str(BUSYBOX), "sh"), cwd=ROOT)
    try:
        term.wait_for("Cmdline: --stdin=tty --verbose /busybox sh", "/ #")
        term.type("echo typed-$((6*7))")
        term.keys("Enter")
        screen = term.wait_for("typed-42")
        # busybox's own line editing echoes; the terminal itself does not echo again.
        assert screen.count("echo typed-$((6*7))") == 1, screen
        term.type("exit 3")
        term.keys("Enter")
        term.wait_for("EXITED 3")
        assert term.left_behind() == []
    finally:
        term.close()


@pytest.mark.usefixtures("kernel")
def test_a_terminal_edits_lines_in_the_guest_and_ctrl_d_ends_the_input() -> None:
    """busybox cat reads in canonical mode: the kernel echoes and edits the line
    (backspace, ^U), ^D at a line's start is end of file; the terminal's own modes
    are back when the run ends."""
    run = shlex.join(osvgdb_command("run", "--verbose", "--accel", "tcg", str(BUSYBOX), "cat"))
    script = (
        f'saved=$(stty -g); {run}; status=$?; [ "$(stty -g)" = "$saved" ] && echo MODES-BACK;'
        " exit $status"
    )
    term = Tmux(["sh", "-c", script], cwd=ROOT)
    try:
        term.wait_for("Cmdline: --stdin=tty --verbose /busybox cat")
        term.type("helxo")
        term.keys("BSpace", "BSpace")
        term.type("lo")
        term.keys("Enter")
        term.type("thrown away")
        term.keys("C-u")
        term.type("kept")
        term.keys("Enter")
        screen = term.wait_for("hello\nhello", "kept\nkept")
        assert "thrown" not in screen, screen
        term.keys("C-d")
        term.wait_for("MODES-BACK", "EXITED 0")
        assert term.left_behind() == []
    finally:
        term.close()
