"""The TUI without a terminal: keys from a pipe, the screen read back as text.

For the tests, the transcript recorder and the benchmark. prompt_toolkit
renders into its Screen buffer whatever the output is; with a DummyOutput
nothing is written anywhere, and `text()` reads the characters of the last
rendered screen. `resize()` does what a SIGWINCH does.

    async with Headless(make_screen, columns=80, rows=24) as ui:
        ui.press(":")
        ...
        await ui.settle()
        print(ui.text())
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prompt_toolkit.application import create_app_session
from prompt_toolkit.data_structures import Size
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from osvgdb.tui.app import Screen

RENDER_WAIT = 0.01


class SizedOutput(DummyOutput):
    """A DummyOutput of a size the caller sets."""

    def __init__(self, columns: int, rows: int):
        super().__init__()
        self.size = Size(rows=rows, columns=columns)

    def get_size(self) -> Size:
        return self.size


class Headless:
    """Runs the Screen `make_screen(input, output)` builds on the current loop."""

    def __init__(self, make_screen: Callable[..., Screen], *, columns: int = 80, rows: int = 24,
                 pre_run: Callable[[], None] | None = None):  # fmt: skip
        self.make_screen = make_screen
        self.output = SizedOutput(columns, rows)
        self.pre_run = pre_run
        self.screen: Screen | None = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Headless:
        self._pipe_context = create_pipe_input()
        self.pipe = self._pipe_context.__enter__()
        self._session = create_app_session(input=self.pipe, output=self.output)
        self._session.__enter__()
        self.screen = self.make_screen(self.pipe, self.output)
        self._task = asyncio.get_running_loop().create_task(
            self.screen.app.run_async(pre_run=self.pre_run)
        )
        while not self.screen.app.is_running:
            await asyncio.sleep(RENDER_WAIT)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.screen is not None and self._task is not None
        if not self._task.done():
            self.screen.app.exit()
        try:
            await asyncio.wait_for(self._task, 5)
        finally:
            self._session.__exit__(None, None, None)
            self._pipe_context.__exit__(None, None, None)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def press(self, *keys: str) -> None:
        """Send text or escape sequences as a terminal would (\\t is Tab, \\r Enter)."""
        for key in keys:
            self.pipe.send_text(key)

    async def settle(self, rounds: int = 3) -> None:
        """Let the keys be read, the fetches finish and the screen render again."""
        assert self.screen is not None
        for _ in range(rounds):
            await asyncio.sleep(RENDER_WAIT)
            await self.screen.inspector.settle()
            self.screen.invalidate()
            await asyncio.sleep(RENDER_WAIT)

    def resize(self, columns: int, rows: int) -> None:
        assert self.screen is not None
        self.output.size = Size(rows=rows, columns=columns)
        self.screen.app._on_resize()  # what prompt_toolkit's SIGWINCH handler calls

    def text(self) -> str:
        """The last rendered screen, one line per row, trailing spaces dropped."""
        assert self.screen is not None
        rendered = self.screen.app.renderer._last_screen
        if rendered is None:
            return ""
        size = self.output.get_size()
        rows = []
        for y in range(size.rows):
            row = rendered.data_buffer[y]
            rows.append("".join(row[x].char for x in range(size.columns)).rstrip())
        return "\n".join(rows)
