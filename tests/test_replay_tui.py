"""`osvgdb replay DIR --tui` end to end, in tmux: the title says where the replay is, the
reverse keys go back, osv-last-write runs from `:`, the console pane shows what the guest
had printed at that point (never twice), the backtrace names a syscall crossing as the
CLI's bt does; after `q` no QEMU or GDB is left."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from guest import APPS, osvgdb_command
from test_tui_live import STOP_TIMEOUT, quit_and_check, section
from tmuxdriver import Tmux

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is missing: run scripts/bootstrap"
)


def console_pane(screen: str) -> str:
    """The right column from the console pane's title down."""
    right = [line.split("│", 1)[1] if "│" in line else "" for line in screen.splitlines()]
    start = next(i for i, line in enumerate(right) if line.startswith(" console"))
    return "\n".join(right[start:])


def command(term: Tmux, line: str) -> None:
    """A `:` command, as typed."""
    term.type(":")
    term.wait_for(" c/s/n/S/f forward")  # the prompt line is up, the replay's footer under it
    term.type(line)
    term.keys("Enter")


def test_going_back_in_the_tui(kernel: None, tmp_path: Path) -> None:
    directory = tmp_path / "recording"
    recorded = subprocess.run(
        osvgdb_command("run", "--accel", "tcg", "--record", str(directory), "--tty", str(APPS / "lastwrite-glibc")),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=300,
    )  # fmt: skip
    assert recorded.returncode == 139, recorded.stderr
    end = json.loads((directory / "manifest.json").read_text())["end"]["icount"]
    term = Tmux(osvgdb_command("replay", str(directory), "--tui"), cwd=tmp_path)
    try:
        screen = term.wait_for(f"replay, {end} of {end}, the end", timeout=STOP_TIMEOUT)
        assert "segmentation fault at 0x8" in screen  # the whole console, at the end
        term.keys("c")
        term.wait_for("the end of the recording: nothing runs after it")
        term.keys("R")
        term.wait_for(f"replay, {end - 1} of {end}; stop 2:", timeout=STOP_TIMEOUT)

        command(term, "osv-break syscall write")
        term.wait_for(":osv-break syscall write: ")
        term.keys("C")
        screen = term.wait_for("; stop 3: breakpoint hit", timeout=STOP_TIMEOUT)
        screen = term.wait_for("console (as of instruction", "more bytes come later", timeout=30)
        backtrace = section(screen, "backtrace", "source")
        assert re.search(r"#1 +0x[0-9a-f]+ <syscall write>", backtrace), backtrace
        assert "signal handler called" not in backtrace
        # At the second printf's write: its line is not on the console yet, the first is, once.
        console = console_pane(screen)
        assert console.count("lastwrite: defaults, 3 retries") == 1, console
        assert "lastwrite: worked" not in console and "more bytes come later" in console, console

        command(term, "osv-last-write config")
        term.wait_for("forget_config at", timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + 30
        while True:  # until the backtrace pane has fetched this stop's frames
            backtrace = section(term.screen(), "backtrace", "source")
            if "(fetching)" not in backtrace and "main at" in backtrace or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert re.search(r"#0 +0x[0-9a-f]+ forget_config at .*lastwrite\.c:\d+", backtrace), backtrace
        assert re.search(r"#1 +0x[0-9a-f]+ main at .*lastwrite\.c:\d+", backtrace), backtrace
        for _ in range(6):  # Tab to the output pane: what osv-last-write said
            term.keys("Tab")
        term.wait_for("osv-last-write: the last change of config", "in forget_config () at")
        quit_and_check(term)
    finally:
        term.close()
