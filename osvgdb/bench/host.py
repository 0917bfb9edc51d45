"""The host's anchors: bench-crossings itself, run on the host Linux in user mode.

The same loops as in the guest (kernel/apps/bench-crossings.c), with `--host`: getppid,
the futex handoff on one CPU and on two (pinned with sched_setaffinity), the first touch
of a fresh anonymous page (MADV_NOHUGEPAGE: one fault per 4 KiB), and wrfsbase and
rdfsbase in user mode, which Linux allows only when AT_HWCAP2 has HWCAP2_FSGSBASE (the
program reads its auxv and says `unavailable=no-hwcap2-fsgsbase` otherwise).  A tick is
a TSC cycle here; each run's CLOCK_MONOTONIC over its TSC turns it into ns.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from osvgdb.bench.guest import BenchError, finished_output
from osvgdb.bench.matrix import HOST_BENCHES
from osvgdb.bench.measure import Output

HOST_TIMEOUT = 300.0  # seconds; a few on an idle machine


def measure(program: Path, runs: int, benches: tuple[str, ...] = HOST_BENCHES) -> Output:
    """Run `program --host`; its parsed output, or BenchError in one line."""
    command = [str(program), "--host", "--runs", str(runs), "--fs", "none", *benches]
    try:
        result = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors="replace", timeout=HOST_TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise BenchError(f"host anchors: {program.name} took over {HOST_TIMEOUT:g} s") from None
    except OSError as error:
        raise BenchError(f"host anchors: {program}: {error.strerror}") from None
    return finished_output("host anchors", program.name, result.stdout, result.returncode)
