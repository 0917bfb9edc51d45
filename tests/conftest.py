"""Session fixtures: the kernel and the test programs, built once per run."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from guest import ROOT

from osvgdb.qemu import hardware_virtualization, kvm_usable


def pytest_configure(config: pytest.Config) -> None:
    """Every program the tests start begins with SIGINT, SIGQUIT and SIGHUP as from a
    terminal, whatever started pytest.

    A shell without job control starts a background command (`scripts/test &`, a CI
    runner's) with SIGINT and SIGQUIT ignored, nohup SIGHUP, and every child inherits
    that: osvgdb rightly keeps an inherited SIG_IGN, so `osvgdb run` outlived the SIGINT
    test_run_exit sends it; and the host's zsh, test_strace_names' oracle, skipped
    installing its SIGHUP handler (one rt_sigaction fewer than the guest's zsh, which
    starts with every signal at its default)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGQUIT, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


def _make(directory: str) -> None:
    result = subprocess.run(
        ["make", "-s", "-C", str(ROOT / directory)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"make -C {directory} failed:\n{result.stdout}{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def apps() -> None:
    """build/apps/: the test programs, static executables built on the host."""
    _make("kernel/apps")


@pytest.fixture(scope="session")
def kernel(apps: None) -> None:
    """build/kernel.elf and the test programs: everything a guest run needs."""
    _make("kernel")


@pytest.fixture(params=["tcg", "kvm"])
def accel(request: pytest.FixtureRequest) -> str:
    """Each accelerator.  kvm runs only where KVM uses hardware virtualization
    (see osvgdb.qemu.hardware_virtualization), or when OSVGDB_TEST_KVM=1
    forces it onto whatever /dev/kvm there is."""
    if request.param == "kvm":
        if not kvm_usable():
            pytest.skip("/dev/kvm cannot be opened read-write")
        if not hardware_virtualization() and os.environ.get("OSVGDB_TEST_KVM") != "1":
            pytest.skip(
                "no vmx/svm in /proc/cpuinfo: this /dev/kvm emulates guests and cannot run "
                "SSE code (set OSVGDB_TEST_KVM=1 to try anyway)"
            )
    return request.param
