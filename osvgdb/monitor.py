"""QEMU's QMP monitor, through qemu.qmp's synchronous client.

What osvgdb and the tools built on it ask QEMU directly, behind GDB's back:
any QMP command (`execute`, e.g. `dump-guest-memory`), HMP commands such as
`info registers -a` (`hmp`), the run state (`status`), and the events QEMU
sends (`poll_events`, `wait_event`: SHUTDOWN, RESET, STOP, RESUME,
GUEST_PANICKED, ...).  Every failure, whether QEMU refused a command, could
not be reached or is gone, is one `MonitorError` with a one-line message.

qemu.qmp is pinned (pyproject.toml): from 0.0.4 on `cmd()` returns the
command's value, before that the whole reply.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from qemu.qmp import ExecuteError, QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

from osvgdb.qemu import QemuError

COMMAND_TIMEOUT = 30.0  # seconds a command may take; a synchronous dump of 2 GiB needs more


class MonitorError(QemuError):
    """QEMU refused a QMP command (`error_class` says how), or is unreachable or gone."""

    def __init__(self, message: str, error_class: str | None = None):
        super().__init__(message)
        self.error_class = error_class


class Monitor:
    """One QMP connection to one QEMU, on its unix socket.

    Use as a context manager, or close() it.  Only one client at a time is
    served on a QMP socket: a second one waits until the first has closed.
    Events that arrive while a command runs are kept for `poll_events`.
    """

    def __init__(self, socket: Path, *, timeout: float | None = COMMAND_TIMEOUT):
        self.socket = socket
        self._qmp = QEMUMonitorProtocol(str(socket))
        self._qmp.settimeout(timeout)
        try:
            self._qmp.connect()
        except (QMPError, OSError) as error:
            raise MonitorError(f"QMP: cannot connect to {socket}: {error}") from error

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect; never raises (QEMU may have exited already)."""
        try:
            self._qmp.close()
        except Exception:
            # EOFError when QEMU hung up first, or whatever a ^C inside a command
            # left behind: the connection is closed all the same, and close() runs
            # during cleanup, where it must not hide the error that is unwinding.
            pass

    def execute(self, name: str, **arguments: object) -> object:
        """Run QMP command `name` and return its value (QMP's "return").

        Arguments whose names have dashes go in as `**{"command-line": ...}`.
        """
        try:
            return self._qmp.cmd(name, **arguments)
        except ExecuteError as error:
            raise MonitorError(f"QMP {name}: {error}", error.error_class) from error
        except TimeoutError as error:
            raise MonitorError(f"QMP {name}: QEMU gave no answer in time") from error
        except (QMPError, OSError, EOFError) as error:
            # StateError once the reader saw QEMU hang up; EOFError/OSError mid-command.
            raise MonitorError(f"QMP {name}: QEMU is gone") from error

    def hmp(self, command_line: str) -> str:
        """A human monitor command's output, e.g. `info registers -a`.

        HMP's own complaints (`unknown command: ...`) are output too, as
        QEMU returns them."""
        return str(self.execute("human-monitor-command", **{"command-line": command_line}))

    def status(self) -> str:
        """The VM's run state (query-status): "running", "prelaunch", "debug"
        (stopped by the gdbstub), "paused", "internal-error", "guest-panicked",
        "shutdown", ..."""
        reply = self.execute("query-status")
        assert isinstance(reply, dict)
        return str(reply["status"])

    def poll_events(self) -> list[dict]:
        """The events received and not yet returned, oldest first, without
        waiting.  Those QEMU sent before it exited are still there."""
        events = []
        while (event := self._next_event(0.0)) is not None:
            events.append(event)
        return events

    def wait_event(self, *names: str, timeout: float) -> tuple[dict | None, list[dict]]:
        """Wait up to `timeout` seconds for an event named one of `names`.

        Returns that event, or None if none came in time, and the other
        events received meanwhile, in order.  A QEMU that exits without
        sending one ends the wait only at the timeout: whoever owns the
        process should watch it too.
        """
        others: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(deadline - time.monotonic(), 0.0)
            event = self._next_event(remaining)
            if event is None:
                if remaining == 0.0:
                    return None, others
            elif event["event"] in names:
                return event, others
            else:
                others.append(event)

    def _next_event(self, wait: float) -> dict | None:
        # pull_event() takes False for "do not wait" and only a float as a
        # timeout (an int other than 0 means forever); at the timeout it raises.
        try:
            return self._qmp.pull_event(wait=float(wait) if wait > 0 else False)
        except TimeoutError:
            return None


_CPU = re.compile(r"^CPU#(\d+)", re.MULTILINE)
_SEGMENT = re.compile(r"^(FS|GS) =\w+ ([0-9a-f]{16})", re.MULTILINE)


def segment_bases(info_registers: str) -> dict[int, dict[str, int]]:
    """{cpu: {"FS": base, "GS": base}} from HMP `info registers -a` text."""
    result: dict[int, dict[str, int]] = {}
    parts = _CPU.split(info_registers)
    # split() gives ["", "0", text0, "1", text1, ...]; a single CPU may have no header.
    if len(parts) == 1:
        parts = ["", "0", info_registers]
    for index in range(1, len(parts) - 1, 2):
        bases = {m.group(1): int(m.group(2), 16) for m in _SEGMENT.finditer(parts[index + 1])}
        result[int(parts[index])] = bases
    return result
