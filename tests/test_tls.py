"""App __thread variables and errno survive the kernel's FS-base switches,
with wrfsbase (FSGSBASE) and with wrmsr (--no-fsgsbase)."""

from __future__ import annotations

import subprocess

import pytest
from guest import VARIANTS, app, osvgdb_run


@pytest.mark.usefixtures("apps")
@pytest.mark.parametrize("variant", VARIANTS)
def test_tls_on_host_linux(variant: str) -> None:
    result = subprocess.run([str(app("tls", variant))], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("tls ok "), result.stdout


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("fsgsbase", [True, False], ids=["wrfsbase", "wrmsr"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_tls_in_guest(variant: str, fsgsbase: bool, accel: str) -> None:
    options = [] if fsgsbase else ["--no-fsgsbase"]
    run = osvgdb_run("--accel", accel, *options, str(app("tls", variant)))
    assert run.status == 0, run
    assert run.app_lines[-1].startswith("tls ok "), run
    # The kernel's banner names the FS-base switch it chose.
    assert f"FS base by {'wrfsbase' if fsgsbase else 'wrmsr'}" in run.lines[0], run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("fsgsbase", [True, False], ids=["wrfsbase", "wrmsr"])
@pytest.mark.parametrize("variant", ["glibc", "musl"])
@pytest.mark.parametrize("protocol", ["compare", "lazy"])
def test_tls_in_guest_under_each_protocol(protocol: str, variant: str, fsgsbase: bool) -> None:
    """The other FS protocols (the default, counter, is the test above): compare's entry
    reads %fs:0 of the app's TCB, lazy's getpid/gettid leave FS on it."""
    options = [] if fsgsbase else ["--no-fsgsbase"]
    exe = str(app("tls", variant))
    run = osvgdb_run("--accel", "tcg", "--fs-protocol", protocol, *options, exe)
    assert run.status == 0, run
    assert run.app_lines[-1].startswith("tls ok "), run
    assert run.lines[0].endswith(f"FS protocol {protocol}"), run
