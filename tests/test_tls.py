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
