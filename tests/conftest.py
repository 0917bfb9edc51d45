"""Session fixtures: the kernel and the test programs, built once per run."""

from __future__ import annotations

import os
import subprocess

import pytest
from guest import ROOT

from osvgdb.qemu import hardware_virtualization, kvm_usable


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
