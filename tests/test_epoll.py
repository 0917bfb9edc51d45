"""epoll and eventfd (kernel/core/epoll.c, eventfd.c) against the same binaries on the
host: kernel/apps/epoll.c prints each raw result and errno of epoll_create/create1/ctl/
wait/pwait, level- and edge-triggered and one-shot reports, a pipe's EPOLLOUT/EPOLLERR/
EPOLLHUP, a wait woken by another thread, a timeout, EINTR under SA_RESTART;
kernel/apps/eventfd.c the counter's reads and writes, EFD_SEMAPHORE, EAGAIN, its poll
and epoll readiness, blocking reads woken by a thread; at -smp 1 and 2. --strace names
the same calls as the host's strace (glibc and musl reach them by different syscalls);
the decoder shows epoll_ctl's event, epoll_wait's events and eventfd2's flags as strace
does."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from guest import app, assert_runs_as_on_the_host, host_strace_names, osvgdb_run

from osvgdb.decode.args import CallFormatter

CALLS = ("epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd",
         "eventfd2")  # fmt: skip


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
@pytest.mark.parametrize("program", ["epoll", "eventfd"])
def test_answers_as_on_linux(program: str, variant: str, smp: int) -> None:
    assert_runs_as_on_the_host(app(program, variant), "--smp", str(smp))


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
@pytest.mark.parametrize("program", ["epoll", "eventfd"])
def test_strace_names_the_calls_as_the_host(program: str, variant: str, tmp_path: Path) -> None:
    exe = app(program, variant)
    # strace's lines also show the SIGUSR1 that interrupts a wait: only the calls count
    host = [name for name in host_strace_names(exe, CALLS, tmp_path) if name in CALLS]
    run = osvgdb_run("--accel", "tcg", "--strace", str(exe))
    assert run.status == 0, run
    assert [name for name in run.strace_names if name in CALLS] == host, run


def test_decoder_shows_epoll_events_as_strace() -> None:
    memory = {
        0x1000: struct.pack("<IQ", 0x1 | 1 << 31, 5727376),
        0x2000: struct.pack("<IQ", 0x1, 42) + struct.pack("<IQ", 0x4 | 0x8, 1 << 33),
    }

    def read(address: int, length: int) -> bytes | None:
        data = memory.get(address)
        return data[:length] if data is not None else None

    formatter = CallFormatter(read)
    shown, _ = formatter.arguments("epoll_ctl", (3, 1, 4, 0x1000), 0, live_is_call_time=True)
    event = "{events=EPOLLIN|EPOLLET, data={u32=5727376, u64=5727376}}"
    assert shown == ["3", "EPOLL_CTL_ADD", "4", event]
    args = (3, 0x2000, 128, 19, 0, 0)
    shown, _ = formatter.arguments("epoll_pwait", args, 2, live_is_call_time=True)
    events = (
        "[{events=EPOLLIN, data={u32=42, u64=42}},"
        " {events=EPOLLOUT|EPOLLERR, data={u32=0, u64=8589934592}}]"
    )
    assert shown == ["3", events, "128", "19", "NULL", "0"]
    shown, _ = formatter.arguments("epoll_wait", (3, 0x2000, 128, 0), 0, live_is_call_time=True)
    assert shown[1] == "[]"
    shown, _ = formatter.arguments("epoll_create1", (0x80000,), 3, live_is_call_time=True)
    assert shown == ["EPOLL_CLOEXEC"]
    shown, _ = formatter.arguments("eventfd2", (0, 0x80800), 3, live_is_call_time=True)
    assert shown == ["0", "EFD_CLOEXEC|EFD_NONBLOCK"]
    shown, _ = formatter.arguments("eventfd2", (3, 0x801), 3, live_is_call_time=True)
    assert shown == ["3", "EFD_SEMAPHORE|EFD_NONBLOCK"]
