"""The TUI over a recorded MI transcript (tests/data/tui/NAME.jsonl, written by
scripts/record-tui-transcripts from a real kernel under a real GDB), headless.

`replay(name, drive, columns=, rows=)` runs the screen, delivers the recorded
events in order (each stop followed by the fetches it causes, answered from the
transcript), then awaits `drive(ui)`; it returns what drive returned.
"""

from __future__ import annotations

import asyncio
import difflib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from osvgdb.mi import is_stop
from osvgdb.tui.app import Screen
from osvgdb.tui.backend import CONSOLE_EVENT, ReplayBackend, read_transcript, rooted
from osvgdb.tui.headless import Headless
from osvgdb.tui.inspector import Inspector

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "tui"
# Where the replayed session's checkout was, whatever this one's path: screens cut lines
# at the pane's width, so a path of another length would move what the snapshot shows.
# Its sources come from the transcript, never from here.
REPLAY_ROOT = Path("/src/osvgdb")


def backend(name: str) -> ReplayBackend:
    return ReplayBackend(rooted(read_transcript(DATA / f"{name}.jsonl"), REPLAY_ROOT))


async def deliver(ui: Headless, replay: ReplayBackend) -> None:
    inspector = ui.screen.inspector
    for record in replay.events():
        if record.kind == CONSOLE_EVENT:
            inspector.console_text(record.payload)
            continue
        replay.emit(record)
        if is_stop(record):
            await ui.settle()
    await ui.settle()


def replay(
    source: str | ReplayBackend,
    drive: Callable[[Headless], Awaitable[object]],
    *,
    columns: int = 200,
    rows: int = 60,
    read_only: bool = False,
    answers: dict[str, dict] | None = None,
    events: bool = True,
):
    """Run the screen over SOURCE (a transcript's name, or a ReplayBackend a test has
    changed), deliver its recorded events unless not EVENTS, then return drive(ui).
    ANSWERS: ^done payloads for commands the recording never sent (a key's own)."""
    replayed = backend(source) if isinstance(source, str) else source
    for command, payload in (answers or {}).items():
        replayed.answers[command] = deque(
            [{"command": command, "class": "done", "payload": payload}]
        )

    def make(input, output):  # noqa: A002
        inspector = Inspector(
            replayed,
            kernel_dir=REPLAY_ROOT / "kernel",
            read_only=read_only,
            read_source=replayed.read_source,
        )
        return Screen(inspector, target=f"replay of {source if isinstance(source, str) else 'a transcript'}",
                      input=input, output=output)  # fmt: skip

    async def run():
        async with Headless(make, columns=columns, rows=rows) as ui:
            if events:
                await deliver(ui, replayed)
            return await drive(ui)

    return asyncio.run(run())


def check_snapshot(text: str, name: str) -> None:
    """TEXT against tests/data/tui/NAME.txt (OSVGDB_UPDATE_SNAPSHOTS=1 rewrites it)."""
    path = DATA / f"{name}.txt"
    if os.environ.get("OSVGDB_UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text + "\n")
        if not os.environ.get("OSVGDB_UPDATE_SNAPSHOTS"):
            raise AssertionError(f"{path} did not exist: written, look at it and run again")
        return
    expected = path.read_text().rstrip("\n")
    if text != expected:
        diff = "\n".join(
            difflib.unified_diff(
                expected.splitlines(), text.splitlines(), "stored", "now", lineterm=""
            )
        )
        raise AssertionError(f"the screen differs from {path.name}:\n{diff}")
