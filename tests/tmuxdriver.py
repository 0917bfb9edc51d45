"""A terminal program in tmux, driven as a person would: keys in, the screen read back.

Each Tmux has its own server (`tmux -L NAME`, a private socket under /tmp/tmux-UID/),
so tests never touch a user's tmux. The program runs under `sh -c` that prints
`EXITED <status>` when it ends and keeps the pane open, so the last screen and the
status stay readable. `descendants()` lists every process under the pane (QEMU and
GDB included) so a test can check that none is left behind.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
import uuid
from pathlib import Path

from processes import alive, children, cmdline

TMUX = "tmux"


class Tmux:
    def __init__(self, argv: list[str], *, cwd: Path, columns: int = 200, rows: int = 60):
        self.socket = f"osvgdb-test-{uuid.uuid4().hex[:8]}"
        script = f"{shlex.join(argv)}; echo EXITED $?; sleep 600"
        self._tmux(
            "new-session",
            "-d",
            "-x",
            str(columns),
            "-y",
            str(rows),
            "-c",
            str(cwd),
            "sh",
            "-c",
            script,
        )
        self.pane_pid = int(self._tmux("display-message", "-p", "#{pane_pid}").strip())
        self.seen: set[int] = set()

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            [TMUX, "-L", self.socket, *args], check=True, capture_output=True, text=True
        ).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        """tmux send-keys: key names (Enter, Tab, Down) or, with literal, text."""
        self._tmux("send-keys", *(["-l"] if literal else []), *keys)
        self.descendants()

    def type(self, text: str) -> None:
        self.keys(text, literal=True)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p")

    def wait_for(self, *needles: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            self.descendants()
            if all(n in text for n in needles):
                return text
            if "EXITED" in text or time.monotonic() > deadline:
                missing = [n for n in needles if n not in text]
                raise AssertionError(f"never on the screen: {missing!r}\n{text}")
            time.sleep(0.1)

    def wait_match(self, pattern: str, timeout: float = 60.0) -> str:
        """The screen once `pattern` (a regular expression) matches on it: a pane fills
        after the stop that its banner announces."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text):
                return text
            if "EXITED" in text or time.monotonic() > deadline:
                raise AssertionError(f"never on the screen: /{pattern}/\n{text}")
            time.sleep(0.1)

    def descendants(self) -> list[int]:
        """Every process under the pane now (also remembered in `seen`), the sleep excluded."""
        found, todo = [], [self.pane_pid]
        while todo:
            for child in children(todo.pop()):
                found.append(child)
                todo.append(child)
        found = [p for p in found if not cmdline(p).startswith("sleep")]
        self.seen.update(found)
        return found

    def left_behind(self, timeout: float = 10.0) -> list[str]:
        """The command lines of processes seen under the pane that still live."""
        deadline = time.monotonic() + timeout
        while any(alive(p) for p in self.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [cmdline(p) for p in self.seen if alive(p) and not cmdline(p).startswith("sleep")]

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True)
