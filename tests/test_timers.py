"""POSIX timers (kernel/core/timer.c): timer_create with SIGEV_SIGNAL, SIGEV_THREAD_ID,
no sigevent, and libc's SIGEV_THREAD built on them; timer_settime (relative, periodic,
TIMER_ABSTIME on CLOCK_REALTIME), timer_gettime, overruns, timer_delete and their
EINVALs. kernel/apps/timers.c prints facts, not times: the host's output is the oracle."""

from __future__ import annotations

import pytest
from guest import app, assert_runs_as_on_the_host


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_timers_answer_as_on_linux(variant: str, smp: int) -> None:
    assert_runs_as_on_the_host(app("timers", variant), "--smp", str(smp))


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("protocol", ["compare", "lazy"])
def test_timers_under_each_fs_protocol(protocol: str) -> None:
    """lazy's fast timer tick must hand a due timer to the ordinary path, or a thread that
    only computes would never get its signal: at -smp 1 every tick lands in it."""
    assert_runs_as_on_the_host(app("timers", "glibc"), "--smp", "1", f"--fs-protocol={protocol}")
