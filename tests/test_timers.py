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
