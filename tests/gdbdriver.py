"""Drive a real GDB against a real kernel booted by osvgdb.debug.DebugSession.

`GdbDriver` feeds GDB commands on stdin and reads its output up to a marker
echoed after each command, so a test can run a command, look at QEMU through
QMP while GDB holds the guest stopped, and go on.  Output that is JSON (from
an osv-* --json command) is parsed by `json()`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from io import BytesIO
from pathlib import Path

from osvgdb.debug import DebugSession, start_gdb
from osvgdb.run import RunOptions

COMMAND_TIMEOUT = 60.0


class LockedConsole(BytesIO):
    """Where the copying thread puts the guest console."""

    def text(self) -> str:
        return self.getvalue().decode(errors="replace")

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} never appeared on the console:\n{self.text()}")
            time.sleep(0.02)
        return self.text()


class GdbDriver:
    def __init__(self, session: DebugSession, setup: list[str] | None = None):
        argv = session.gdb_argv(
            ["set pagination off", "set confirm off", "set width 0", *(setup or [])],
            extra=["-nx"],
        )
        self.process = start_gdb(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.counter = 0
        self.startup = self.run("echo")

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one command; its output (stdout and stderr, in order)."""
        self.counter += 1
        marker = f"@@osvgdb-done-{self.counter}@@"
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command}\necho {marker}\\n\n".encode())
        self.process.stdin.flush()
        fd = self.process.stdout.fileno()
        output = b""
        deadline = time.monotonic() + timeout
        while marker.encode() not in output:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"GDB gave no answer to {command!r} in {timeout} s:\n"
                    + output.decode(errors="replace")
                )
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"GDB exited during {command!r}:\n{output.decode()}")
                output += chunk
        # GDB prints its prompt even when stdin is a pipe; it is noise here.
        return output.decode(errors="replace").split(marker)[0].replace("(gdb) ", "")

    def json(self, command: str) -> dict:
        text = self.run(command)
        start = text.find("{")
        assert start >= 0, f"no JSON from {command!r}:\n{text}"
        return json.JSONDecoder().raw_decode(text[start:])[0]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class Debugged:
    """A booted kernel stopped under GDB: session, console, driver; close() ends all."""

    def __init__(
        self,
        exe: Path,
        args: list[str] | None = None,
        *,
        smp: int = 1,
        env: list[tuple[str, str]] | None = None,
        strace: bool = False,
        kernel: Path | None = None,
        kernel_args: list[str] | None = None,
    ):
        self.console = LockedConsole()
        options = RunOptions(
            exe=exe,
            args=list(args or []),
            accel="tcg",
            smp=smp,
            env=list(env or []),
            strace=strace,
            kernel=kernel,
            kernel_args=list(kernel_args or []),
        )
        self.session = DebugSession(options, console=self.console)
        self.session.__enter__()
        try:
            self.gdb = GdbDriver(self.session)
        except BaseException:
            self.session.__exit__(None, None, None)
            raise

    def close(self) -> None:
        try:
            self.gdb.close()
        finally:
            self.session.__exit__(None, None, None)
