"""A minimal synchronous QMP client over QEMU's unix socket (standard library only).

Enough for what osvgdb asks QEMU directly, behind GDB's back: `query-status`
and HMP commands such as `info registers -a` through `human-monitor-command`.
Events QEMU sends meanwhile are kept in `events`, never lost and never mixed
up with replies.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path


class QmpError(Exception):
    """QEMU answered with an error, or the connection failed."""


class QmpClient:
    def __init__(self, path: Path, *, timeout: float = 10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as error:
            self.sock.close()
            raise QmpError(f"cannot connect to QMP at {path}: {error}") from error
        self.file = self.sock.makefile("rb")
        self.events: list[dict] = []
        greeting = self._receive()
        if "QMP" not in greeting:
            raise QmpError(f"not a QMP greeting: {greeting}")
        self.command("qmp_capabilities")

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def _receive(self) -> dict:
        line = self.file.readline()
        if not line:
            raise QmpError("QEMU closed the QMP connection")
        return json.loads(line)

    def command(self, name: str, **arguments: object) -> object:
        message = {"execute": name, **({"arguments": arguments} if arguments else {})}
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._receive()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                raise QmpError(f"{name}: {reply['error'].get('desc', reply['error'])}")
            elif "return" in reply:
                return reply["return"]

    def hmp(self, command_line: str) -> str:
        return str(self.command("human-monitor-command", **{"command-line": command_line}))


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
