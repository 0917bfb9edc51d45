"""Signal delivery (kernel/core/signal.c) against the same binary on the host:
kernel/apps/signals.c has handlers read the app's __thread data, a SIGSEGV handler on a
sigaltstack siglongjmp out with the fault's address, pthread_kill reach another thread's
handler with that thread's TLS, and a blocking pipe read end in EINTR or go on with
SA_RESTART; every line must be the host's, at -smp 1 and 2, with the kernel's own TLS
checks clean throughout (a failed one panics)."""

from __future__ import annotations

import subprocess

import pytest
from guest import app, osvgdb_run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    ("variant", "smp"), [("glibc", 2), ("musl", 2), ("pie", 1), ("glibc", 1)]
)
def test_signals_as_on_linux(variant: str, smp: int) -> None:
    exe = app("signals", variant)
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30)
    run = osvgdb_run("--accel", "tcg", "--smp", str(smp), "--kernel-arg=--verbose", str(exe))
    assert run.status == 0, run
    lines = [line for line in run.app_lines if not line.startswith("osv: ")]
    assert lines == host.stdout.splitlines(), run
    assert any("kernel TLS checked" in line for line in run.lines), run


@pytest.mark.usefixtures("kernel")
def test_wrmsr_kernel_delivers_too() -> None:
    """Without FSGSBASE the FS base is written by wrmsr on every crossing, handlers too."""
    exe = app("signals", "musl")
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30)
    run = osvgdb_run("--accel", "tcg", "--smp", "2", "--no-fsgsbase", str(exe))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run


@pytest.mark.usefixtures("kernel")
def test_strace_names_the_signal_calls() -> None:
    run = osvgdb_run("--accel", "tcg", "--strace", str(app("signals", "musl")))
    assert run.status == 0, run
    names = set(run.strace_names)
    for name in ("rt_sigaction", "rt_sigreturn", "rt_sigpending", "sigaltstack", "tkill",
                 "rt_sigtimedwait", "rt_sigsuspend"):
        assert name in names, run
    assert "-> rt_sigsuspend(0x" in run.stdout, run
    assert any("ERESTARTSYS" in line for line in run.lines), run
