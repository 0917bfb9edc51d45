"""poll, ppoll, select and pselect6 (kernel/core/poll.c) against the same binary on the
host: kernel/apps/polls.c prints each raw result and the events, timeouts and wake-ups
by another thread, at -smp 1 and 2; --strace names the same calls as the host's strace;
the decoder shows their pollfd arrays and fd sets as strace does."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from guest import app, assert_runs_as_on_the_host, host_strace_names, osvgdb_run

from osvgdb.decode.args import CallFormatter

WAITS = ("poll", "ppoll", "select", "pselect6")


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_polls_answer_as_on_linux(variant: str, smp: int) -> None:
    assert_runs_as_on_the_host(app("polls", variant), "--smp", str(smp))


@pytest.mark.usefixtures("kernel")
def test_strace_names_the_waits_as_the_host(tmp_path: Path) -> None:
    exe = app("polls", "musl")
    host = host_strace_names(exe, WAITS, tmp_path)
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe))
    assert run.status == 0, run
    assert [name for name in run.strace_names if name in WAITS] == host, run


def test_decoder_shows_pollfds_and_fd_sets_as_strace() -> None:
    memory = {
        0x1000: struct.pack("<ihhihh", 3, 0x1, 0, 4, 0x4 | 0x100, 0),
        0x2000: (1 << 0 | 1 << 3 | 1 << 9).to_bytes(8, "little"),
    }

    def read(address: int, length: int) -> bytes | None:
        data = memory.get(address)
        return data[:length] if data is not None else None

    formatter = CallFormatter(read)
    shown, _ = formatter.arguments("poll", (0x1000, 2, 0), 1, live_is_call_time=True)
    assert shown == ["[{fd=3, events=POLLIN}, {fd=4, events=POLLOUT|POLLWRNORM}]", "2", "0"]
    shown, _ = formatter.arguments("select", (4, 0x2000, 0, 0x3000, 0), 1, live_is_call_time=True)
    assert shown == ["4", "[0 3]", "NULL", "0x3000", "NULL"]
