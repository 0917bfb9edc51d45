"""Helpers for tests that boot the real kernel in QEMU through `osvgdb run`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "build" / "apps"
KERNEL = ROOT / "build" / "kernel.elf"
VARIANTS = ("glibc", "pie", "musl")

BANNER = "OSv-style osvgdb kernel"
RUN_TIMEOUT = 60  # osvgdb's own --timeout: a hung guest fails the test, it never hangs it


@dataclass(repr=False)
class Run:
    status: int
    stdout: str  # the app's stdout, all of osvgdb run's stdout
    stderr: str  # the app's stderr, then osvgdb's own words
    console: str  # the kernel's console (osvgdb run --log)

    @property
    def lines(self) -> list[str]:
        """The kernel's console: banner, messages, --strace."""
        return self.console.splitlines()

    @property
    def app_lines(self) -> list[str]:
        """The app's stdout."""
        return self.stdout.splitlines()

    @property
    def err_lines(self) -> list[str]:
        """The app's stderr, with osvgdb's own words at the end."""
        return self.stderr.splitlines()

    @property
    def strace_names(self) -> list[str]:
        """Syscall names from the `-> name(args) = result` lines of --strace."""
        return [line[3:].split("(", 1)[0] for line in self.lines if line.startswith("-> ")]

    def __repr__(self) -> str:
        # Assertion messages show this: the whole run, readable.
        return (
            f"status {self.status}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
            f"--- console\n{self.console}"
        )


def osvgdb_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "osvgdb", *args]


# What `osvgdb inspect DUMP VIEW --json` must equal: the live command's --json.
INSPECT_VIEWS = {
    "tcb": "osv-tcb --json",
    "syscalls": "osv-syscalls -n 0 --json",
    "auxv": "osv-auxv --json",
}


def osvgdb_inspect(dump: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        osvgdb_command("inspect", str(dump), *args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def inspected(dump: Path, view: str) -> dict:
    """`osvgdb inspect DUMP VIEW --json` (all records for syscalls), parsed."""
    extra = ["-n", "0"] if view == "syscalls" else []
    result = osvgdb_inspect(dump, view, *extra, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def osvgdb_run(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> Run:
    """`osvgdb run --timeout RUN_TIMEOUT --log FILE ARGS...`, its output and the kernel's
    console captured; its stdin is a pipe with `input` in it, or /dev/null."""
    with tempfile.TemporaryDirectory(prefix="osvgdb-test-") as scratch:
        log = Path(scratch) / "console"
        result = subprocess.run(
            osvgdb_command("run", "--timeout", str(RUN_TIMEOUT), "--log", str(log), *args),
            **({"input": input} if input is not None else {"stdin": subprocess.DEVNULL}),
            capture_output=True,
            env={**os.environ, **(env or {})},
            timeout=RUN_TIMEOUT * 2,
        )
        console = log.read_bytes() if log.exists() else b""
    return Run(result.returncode, _text(result.stdout), _text(result.stderr), _text(console))


def assert_runs_as_on_the_host(exe: Path, *options: str) -> None:
    """EXE under `osvgdb run --accel tcg OPTIONS...` exits 0 and prints what it prints on
    the host, line for line (the host's Linux is the oracle)."""
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    run = osvgdb_run("--accel", "tcg", *options, str(exe))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), f"the host printed:\n{host.stdout}\n{run!r}"


def host_strace_names(exe: Path, calls: tuple[str, ...], tmp_path: Path) -> list[str]:
    """The names of CALLS, in order, as the host's `strace -f` of EXE sees them."""
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-e", f"trace={','.join(calls)}", "-o", str(log), str(exe)],
        capture_output=True, check=True,
    )  # fmt: skip
    return [re.sub(r"^\d+\s+", "", line).split("(", 1)[0] for line in log.read_text().splitlines()]


def _text(data: bytes) -> str:
    """As subprocess's text=True gives it: decoded, universal newlines."""
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def app(name: str, variant: str) -> Path:
    return APPS / f"{name}-{variant}"
