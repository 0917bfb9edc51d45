"""Drive a real GDB against a real kernel booted by osvgdb.debug.DebugSession.

`GdbDriver` runs GDB on its machine interface through osvgdb.mi, the transport
the TUI and triage use: each CLI command goes as `-interpreter-exec console`,
and its output is the text of the stream records up to its end, so a test can
run a command, look at QEMU through QMP while GDB holds the guest stopped, and
go on. Output that is JSON (from an osv-* --json command) is parsed by `json()`.
"""

from __future__ import annotations

import json
import subprocess
import time
from io import BytesIO
from pathlib import Path

from osvgdb.debug import DebugSession, start_gdb
from osvgdb.mi import (
    CommandError,
    GdbExited,
    Mi,
    MiTimeout,
    Record,
    console_command,
    is_stop,
    stream_text,
)
from osvgdb.run import RunOptions

COMMAND_TIMEOUT = 60.0
# Answered only once GDB has printed all it had to say before (GDB reads its
# commands in order), without output of its own.
BARRIER = "-list-features"


def _run_ended(record: Record) -> bool:
    """The end of a command that resumed the guest: it stopped, or it is gone."""
    return is_stop(record) or (record.kind == "notify" and record.cls == "thread-group-exited")


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
            extra=["-nx", "--interpreter=mi3"],
        )
        self.process = start_gdb(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.mi = Mi(self.process)
        self._started: tuple[int, str] | None = None
        self.startup = self.run("echo")

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> str:
        """Run one CLI command; its output (console, target and log streams, and
        stderr, in order), up to the stop when it resumes the guest."""
        self.start(command)
        return self.wait(timeout)

    def start(self, command: str) -> None:
        """Send one CLI command without waiting for it; wait() gives its output."""
        assert self._started is None, f"{self._started[1]!r} was started and not waited for"
        self._started = (self.mi.send(console_command(command)), command)

    def wait(self, timeout: float = COMMAND_TIMEOUT) -> str:
        """The output of the command start() sent, as run() gives it, and of
        anything GDB printed since the previous command ended."""
        assert self._started is not None, "no command was started"
        token, command = self._started
        self._started = None
        deadline = time.monotonic() + timeout
        records: list[Record] = []
        error = ""
        try:
            try:
                if self.mi.wait_result(token, timeout).cls == "running":
                    records += self.mi.wait_for(_run_ended, deadline - time.monotonic())
            except CommandError as refused:
                error = refused.message
            self.mi.execute(BARRIER, max(deadline - time.monotonic(), 1.0))
        except MiTimeout:
            output = stream_text(records + self.mi.take_events())
            raise AssertionError(f"GDB gave no answer to {command!r} in {timeout} s:\n{output}")
        except GdbExited as exited:
            output = stream_text(records + self.mi.take_events())
            raise AssertionError(f"{exited} ({command!r}):\n{output}") from None
        output = stream_text(records + self.mi.take_events())
        # GDB logs a CLI command's error before its ^error; say it if it did not.
        if error and error not in output:
            output += error + "\n"
        return output

    def json(self, command: str) -> dict:
        text = self.run(command)
        start = text.find("{")
        assert start >= 0, f"no JSON from {command!r}:\n{text}"
        return json.JSONDecoder().raw_decode(text[start:])[0]

    def close(self) -> None:
        self.mi.close(timeout=0)


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
        fs_protocol: str = "counter",
        add: list[tuple[Path, str]] | None = None,
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
            fs_protocol=fs_protocol,
            add=list(add or []),
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
