"""The bundled hello boots and exits 0; --strace shows what Linux's strace shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from guest import BANNER, VARIANTS, app, osvgdb_run

pytestmark = pytest.mark.usefixtures("kernel")


@pytest.mark.parametrize("variant", VARIANTS)
def test_hello(variant: str, accel: str) -> None:
    run = osvgdb_run("--accel", accel, str(app("hello", variant)))
    assert run.status == 0, run
    assert run.lines[0].startswith(BANNER), run
    assert any(re.fullmatch(r"Booted up in [0-9.]+ ms", line) for line in run.lines), run
    # The test's pipes are the app's stdout and stderr: pipes in the guest too.
    assert f"Cmdline: --stdout=pipe --stderr=pipe /hello-{variant}" in run.lines, run
    assert run.app_lines == ["Hello from C code"], run


def host_strace_names(exe: Path, tmp_path: Path) -> list[str]:
    """Syscall names from the host's `strace -f`, with stdout a pipe, as the
    guest's is when osvgdb run's is (so neither makes glibc's TCGETS probe)."""
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-f", "-o", str(log), str(exe)], capture_output=True, check=True)
    names = []
    for line in log.read_text().splitlines():
        match = re.match(r"(?:\d+\s+)?([a-z_0-9]+)\(", line)
        if match:
            names.append(match.group(1))
    # The first call is strace's own execve of the program, which under our
    # kernel is the loader, not a syscall.
    assert names[0] == "execve", names
    return names[1:]


@pytest.mark.parametrize("variant", VARIANTS)
def test_strace_names_match_linux(variant: str, accel: str, tmp_path: Path) -> None:
    exe = app("hello", variant)
    expected = host_strace_names(exe, tmp_path)
    run = osvgdb_run("--accel", accel, "--strace", str(exe))
    assert run.status == 0, run
    # No justified difference so far: the same calls in the same order.
    assert run.strace_names == expected, run
    assert any(line.startswith("-> exit_group(0) = ?") for line in run.lines), run
