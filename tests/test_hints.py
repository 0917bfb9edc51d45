"""mmap's address hints (kernel/core/syscall.c place_mapping), as Go's heap needs them:
kernel/apps/hints.c prints what the kernel gave for free, taken, half-taken, unaligned and
too-low hints, a PROT_NONE reservation mapped piecewise with MAP_FIXED, MADV_DONTNEED, a
munmapped hole found again, MAP_FIXED_NOREPLACE; the same binary on the host is the
oracle, for each start-up path (ET_EXEC, static-pie at 0x555555554000, musl)."""

from __future__ import annotations

import pytest
from guest import VARIANTS, app, assert_runs_as_on_the_host


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", VARIANTS)
def test_hints_are_honoured_as_on_linux(variant: str) -> None:
    assert_runs_as_on_the_host(app("hints", variant))
