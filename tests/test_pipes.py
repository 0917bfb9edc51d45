"""Pipes (kernel/core/pipe.c) against the same binary on the host: kernel/apps/pipes.c
prints each raw result and streams a megabyte between two threads, at -smp 1 and 2;
--strace and the decoder show pipe's fds as strace does."""

from __future__ import annotations

import pytest
from guest import app, assert_runs_as_on_the_host, osvgdb_run

from osvgdb.decode.args import CallFormatter


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_pipes_answer_as_on_linux(variant: str, smp: int) -> None:
    assert_runs_as_on_the_host(app("pipes", variant), "--smp", str(smp))


@pytest.mark.usefixtures("kernel")
def test_strace_shows_the_fds_pipe_made() -> None:
    run = osvgdb_run("--accel", "tcg", "--strace", str(app("pipes", "musl")))
    assert run.status == 0, run
    assert "-> pipe([3, 4]) = 0" in run.lines, run
    assert "-> pipe2([3, 4], 0x80800) = 0" in run.lines, run
    assert '-> write(4, "x", 1) = -1 EPIPE (Broken pipe)' in run.lines, run


def test_decoder_shows_pipe2_as_strace() -> None:
    fds = (3).to_bytes(4, "little") + (4).to_bytes(4, "little")
    formatter = CallFormatter(lambda address, length: fds[:length] if address == 0x1000 else None)
    shown, _ = formatter.arguments("pipe2", (0x1000, 0o2004000), 0, live_is_call_time=True)
    assert shown == ["[3, 4]", "O_NONBLOCK|O_CLOEXEC"]
    shown, _ = formatter.arguments("pipe2", (0x1000, 0), -22, live_is_call_time=True)
    assert shown == ["0x1000", "0"]
