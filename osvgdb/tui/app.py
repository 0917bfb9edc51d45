"""The TUI's screen: prompt_toolkit's layout, keys and styles over an Inspector.

The layout depends on the terminal's size. Wide (>= WIDE_COLUMNS columns and
>= TALL_ROWS rows): vCPUs, threads, backtrace and source on the left,
syscalls and one "flex" pane on the right. Narrow (down to 80x24): vCPUs,
syscalls, backtrace and the flex pane. The flex pane is the last one Tab
focused among those the layout has no fixed place for (the console at
first). Only the panes on the screen fetch at a stop (Inspector.visible).

Each pane is a title line (reverse video when focused) over a window whose
content `osvgdb.tui.panes` renders; the window keeps the pane's cursor line
in view. prompt_toolkit redraws only the cells that changed, so a stop does
not flicker, and a resize only lays the same state out again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prompt_toolkit.application import Application
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.data_structures import Point
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.layout import (
    BufferControl,
    ConditionalContainer,
    DynamicContainer,
    Float,
    FloatContainer,
    HSplit,
    Layout,
    UIContent,
    UIControl,
    VSplit,
    Window,
)
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.styles import Style

from osvgdb.tui.inspector import PANES, Inspector, Selection
from osvgdb.tui.panes import RENDERERS, Fragments

WIDE_COLUMNS = 120
TALL_ROWS = 36
FIXED_WIDE = ("vcpus", "threads", "backtrace", "source", "syscalls")
FIXED_NARROW = ("vcpus", "syscalls", "backtrace")

STYLE = Style.from_dict(
    {
        "ok": "ansigreen bold",
        "bad": "ansired bold",
        "warn": "ansiyellow",
        "inflight": "ansiyellow bold",
        "stale": "ansibrightblack italic",
        "error": "ansired",
        "dim": "ansibrightblack",
        "head": "ansicyan",
        "selected": "reverse",
        "title": "bg:ansiblue ansiwhite",
        "title.focused": "bg:ansiwhite ansiblack bold",
        "status": "bg:ansiblack ansiwhite",
        "banner": "bg:ansired ansiwhite bold",
        "footer": "bg:ansibrightblack ansiblack",
        "prompt": "ansiyellow bold",
        "help": "bg:ansiblack ansiwhite",
    }
)

KEYS = [
    ("c", "continue"),
    ("s", "step"),
    ("n", "next"),
    ("S", "stepi"),
    ("f", "finish"),
    ("C N F P R", "in a replay: reverse continue, next, finish, step, stepi"),
    ("i, ^C", "interrupt"),
    ("b", "break on syscalls (osv-break syscall NAMES)"),
    ("t", "toggle osv-trace"),
    ("Tab/S-Tab", "next/previous pane"),
    ("Up/Down PgUp/PgDn", "move/scroll in the pane (frames in the backtrace)"),
    ("Home/End", "top / follow the newest"),
    ("Enter", "select the vCPU or thread"),
    ("/", "filter syscalls: tid=T cpu=N NAME..."),
    (":", "a GDB or osv-* command"),
    ("?", "this help"),
    ("q", "quit (asks first; QEMU and GDB end)"),
]
FOOTER = " c cont  s/n/S step  f finish  i intr  b break  t trace  Tab pane  Enter select  / filter  : cmd  ? help  q quit"
REPLAY_FOOTER = " c/s/n/S/f forward  C/N/F/P/R back  b break  : cmd (osv-last-write X)  Tab pane  ? help  q quit"

# What a pane's rows are, for Up/Down and Enter: the vCPU and thread panes move a row
# cursor over their items; the backtrace moves the selected frame; the rest scroll.
ITEM_PANES = ("vcpus", "threads")


class PaneControl(UIControl):
    """One pane's content, rendered at each redraw, its cursor line kept in view."""

    def __init__(self, screen: Screen, name: str):
        self.screen = screen
        self.name = name
        self.offset: int | None = None  # the user's line, None: the pane's own cursor

    def is_focusable(self) -> bool:
        return True

    def create_content(self, width: int, height: int | None) -> UIContent:
        title, lines, cursor = self.screen.rendered(self.name)
        if self.offset is not None and lines:
            self.offset = max(0, min(self.offset, len(lines) - 1))
            cursor = self.offset
        lines = lines or [[("", "")]]
        row = max(0, min(cursor or 0, len(lines) - 1))
        return UIContent(
            get_line=lambda i: lines[i], line_count=len(lines), cursor_position=Point(0, row)
        )


class Screen:
    """The prompt_toolkit Application over one Inspector."""

    def __init__(
        self,
        inspector: Inspector,
        *,
        target: str,
        on_quit: Callable[[], None] = lambda: None,
        input=None,
        output=None,
    ):  # noqa: A002  (prompt_toolkit's names)
        self.inspector = inspector
        self.target = target
        self.on_quit = on_quit
        inspector.visible = self.visible
        inspector.changed = self.invalidate
        self.controls = {name: PaneControl(self, name) for name in PANES}
        self.windows = {
            name: Window(self.controls[name], wrap_lines=False, always_hide_cursor=True)
            for name in PANES
        }
        self.flex = "console"
        self.focused = "vcpus"
        self.rows = {"vcpus": 0, "threads": 0}  # the item cursor of ITEM_PANES
        self.help_shown = False
        self.prompt: tuple[str, Callable[[str], None]] | None = None  # (label, what Enter does)
        self.confirming = False
        # One input line per question, each with its own history (Up/Down).
        self.inputs = {
            kind: Buffer(multiline=False, history=InMemoryHistory(), accept_handler=self._accept)
            for kind in (":", "/", "b")
        }
        self.input = self.inputs[":"]
        self.input_windows = {
            kind: Window(BufferControl(buffer), height=1) for kind, buffer in self.inputs.items()
        }
        self.paints: list[float] = []  # stop -> painted, seconds, one per stop (the benchmark's)
        self._painted_stop = 0
        self.app = Application(
            layout=Layout(self._root()),
            key_bindings=self._keys(),
            style=STYLE,
            full_screen=True,
            mouse_support=False,
            after_render=self._after_render,
            input=input,
            output=output,
        )

    # --- layout --------------------------------------------------------------------------

    def size(self) -> tuple[int, int]:
        size = self.app.output.get_size() if hasattr(self, "app") else None
        return (size.columns, size.rows) if size else (80, 24)

    def wide(self) -> bool:
        columns, rows = self.size()
        return columns >= WIDE_COLUMNS and rows >= TALL_ROWS

    def visible(self) -> set[str]:
        return set(FIXED_WIDE if self.wide() else FIXED_NARROW) | {self.flex}

    def _pane(self, name: str, height: Dimension | None = None) -> HSplit:
        def title() -> Fragments:
            style = "class:title.focused" if self.focused == name else "class:title"
            return [(style, f" {self.rendered(name)[0]} ".ljust(400))]

        return HSplit([Window(_Text(title), height=1), self.windows[name]], height=height)

    def _body(self) -> HSplit | VSplit:
        cpus = len(self.inspector.panes["vcpus"].data or []) or 1
        vcpus_height = Dimension(min=3, preferred=3 * cpus + 1, max=3 * cpus + 1)
        flex = self._pane(self.flex, Dimension(weight=2))
        if self.wide():
            left = HSplit(
                [
                    self._pane("vcpus", vcpus_height),
                    self._pane("threads", Dimension(weight=2)),
                    self._pane("backtrace", Dimension(weight=2)),
                    self._pane("source", Dimension(weight=3)),
                ]
            )
            right = HSplit([self._pane("syscalls", Dimension(weight=3)), flex])
            return VSplit([left, Window(width=1, char="│", style="class:dim"), right])
        return HSplit(
            [
                self._pane(
                    "vcpus", Dimension(min=3, preferred=min(3 * cpus + 1, 7), max=3 * cpus + 1)
                ),
                self._pane("syscalls", Dimension(weight=2)),
                self._pane("backtrace", Dimension(weight=2)),
                flex,
            ]
        )

    def _root(self) -> FloatContainer:
        status = Window(_Text(self._status), height=1)
        banner = ConditionalContainer(
            Window(
                _Text(lambda: [("class:banner", f" {self.inspector.status.banner} ".ljust(400))]),
                height=1,
            ),
            Condition(lambda: self.inspector.status.banner is not None),
        )
        message = Window(_Text(self._message), height=1)
        line = ConditionalContainer(
            VSplit(
                [
                    Window(
                        _Text(lambda: [("class:prompt", self.prompt[0] if self.prompt else "")]),
                        width=lambda: len(self.prompt[0]) if self.prompt else 1,
                        dont_extend_width=True,
                    ),
                    DynamicContainer(
                        lambda: self.input_windows[self.prompt[0][0] if self.prompt else ":"]
                    ),
                ]
            ),
            Condition(lambda: self.prompt is not None),
        )
        footer = Window(_Text(lambda: [("class:footer", self._footer().ljust(400))]), height=1)
        root = HSplit([status, banner, DynamicContainer(self._body), message, line, footer])
        help_window = ConditionalContainer(
            Window(_Text(self._help), width=64, height=len(KEYS) + 3, style="class:help"),
            Condition(lambda: self.help_shown),
        )
        return FloatContainer(root, floats=[Float(help_window)])

    def _footer(self) -> str:
        return REPLAY_FOOTER if self.inspector.recorded_console is not None else FOOTER

    def _status(self) -> Fragments:
        status = self.inspector.status
        if status.state == "stopped":
            frame = status.frame
            where = frame.get("func") or frame.get("addr", "?")
            if frame.get("file"):
                where += f" at {frame['file']}:{frame.get('line')}"
            reason = status.reason.replace("-", " ") or "stopped"
            state = f"stop {status.stops}: {reason}, vCPU {status.thread}, {where}"
        else:
            state = status.state
        replay = self.inspector.replay
        if replay and "icount" in replay:  # first: a long stop line must not cut it off
            end = ", the end" if replay["at_end"] else ""
            state = f"replay, {replay['icount']} of {replay['end']}{end}; {state}"
        return [("class:status", f" osvgdb tui  {self.target}  [{state}] ".ljust(400))]

    def _message(self) -> Fragments:
        if self.confirming:
            return [("class:prompt", "quit? QEMU and GDB end with the TUI (y/n)")]
        return [("class:warn", self.inspector.message or "")]

    def _help(self) -> Fragments:
        lines = [("class:head", " keys (any key closes this)\n\n")]
        lines += [("", f" {key:<18} {what}\n") for key, what in KEYS]
        return lines

    def rendered(self, name: str):
        return RENDERERS[name](self.inspector)

    def invalidate(self) -> None:
        self.app.invalidate()

    def _after_render(self, _app: Application) -> None:
        inspector = self.inspector
        stop = inspector.status.stops
        if (
            stop != self._painted_stop
            and inspector.refreshed_at is not None
            and inspector.refreshed_at >= inspector.status.stopped_at
        ):
            self._painted_stop = stop
            self.paints.append(time.monotonic() - inspector.status.stopped_at)

    # --- focus and selection ---------------------------------------------------------------

    def focus(self, name: str) -> None:
        fixed = FIXED_WIDE if self.wide() else FIXED_NARROW
        if name not in fixed:
            self.flex = name
            self.inspector.pane_shown(name)
        self.focused = name
        self.app.layout.focus(self.windows[name])  # the body is laid out anew with it

    def cycle(self, step: int) -> None:
        self.focus(PANES[(PANES.index(self.focused) + step) % len(PANES)])

    def move(self, delta: int) -> None:
        name = self.focused
        inspector = self.inspector
        if name in ITEM_PANES:
            count = len(inspector.panes[name].data or [])
            self.rows[name] = max(0, min(count - 1, self.rows[name] + delta)) if count else 0
            self.controls[name].offset = self._item_line(name)
        elif name == "backtrace":
            inspector.select_frame(delta)
        else:
            control = self.controls[name]
            _, lines, cursor = self.rendered(name)
            base = control.offset if control.offset is not None else (cursor or 0)
            control.offset = max(0, min(len(lines) - 1, base + delta))
        self.invalidate()

    def _item_line(self, name: str) -> int:
        """The line of the row cursor's item (vCPUs take three lines; threads a header)."""
        row = self.rows[name]
        return 3 * row if name == "vcpus" else 1 + row

    def choose(self) -> None:
        """Enter: the row under the cursor becomes the selection."""
        name = self.focused
        items = self.inspector.panes[name].data or [] if name in ITEM_PANES else []
        if not items:
            return
        item = items[min(self.rows[name], len(items) - 1)]
        if name == "vcpus":
            self.inspector.select(Selection("vcpu", int(item.get("vcpu", 1))))
        else:
            self.inspector.select(Selection("thread", int(item.get("tid", 0))))

    # --- the input line ------------------------------------------------------------------

    def ask(self, label: str, action: Callable[[str], None]) -> None:
        self.prompt = (label, action)
        self.input = self.inputs[label[0]]
        self.input.reset()
        self.app.layout.focus(self.input)

    def _accept(self, buffer: Buffer) -> bool:
        if self.prompt is not None:
            _, action = self.prompt
            self._close_prompt()
            action(buffer.text)
        return False

    def _close_prompt(self) -> None:
        self.prompt = None
        self.app.layout.focus(self.windows[self.focused])

    # --- keys ----------------------------------------------------------------------------

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()
        idle = Condition(
            lambda: self.prompt is None and not self.confirming and not self.help_shown
        )
        inspector = self.inspector

        def bind(key: str, action: Callable[[], None], *, filter=idle) -> None:  # noqa: A002
            @keys.add(key, filter=filter)
            def _(_event: KeyPressEvent) -> None:
                inspector.message = None
                action()

        bind("c", lambda: inspector.resume("-exec-continue"))
        bind("s", lambda: inspector.resume("-exec-step"))
        bind("n", lambda: inspector.resume("-exec-next"))
        bind("S", lambda: inspector.resume("-exec-step-instruction"))
        bind("f", lambda: inspector.resume("-exec-finish"))
        bind("C", lambda: inspector.resume("-exec-continue", reverse=True))
        bind("N", lambda: inspector.resume("-exec-next", reverse=True))
        bind("F", lambda: inspector.resume("-exec-finish", reverse=True))
        bind("P", lambda: inspector.resume("-exec-step", reverse=True))
        bind("R", lambda: inspector.resume("-exec-step-instruction", reverse=True))
        bind("i", inspector.interrupt)
        bind("c-c", inspector.interrupt)  # as in GDB
        bind("b", lambda: self.ask("break on syscalls: ", inspector.break_on_syscalls))
        bind("t", inspector.toggle_trace)
        bind("/", lambda: self.ask("/", self._filter))
        bind(":", lambda: self.ask(":", inspector.cli))
        bind("?", self._show_help)
        bind("q", self._confirm_quit)
        bind("tab", lambda: self.cycle(1))
        bind("s-tab", lambda: self.cycle(-1))
        bind("up", lambda: self.move(-1))
        bind("down", lambda: self.move(1))
        bind("pageup", lambda: self.move(-self._page()))
        bind("pagedown", lambda: self.move(self._page()))
        bind("home", lambda: self.move(-1_000_000))
        bind("end", self._follow)
        bind("enter", self.choose)
        bind("c-l", self.invalidate)

        @keys.add("<any>", filter=Condition(lambda: self.help_shown))
        def _(_event: KeyPressEvent) -> None:
            self.help_shown = False
            self.invalidate()

        @keys.add("<any>", filter=Condition(lambda: self.confirming))
        def _(event: KeyPressEvent) -> None:
            self.confirming = False
            if event.data in ("y", "Y"):
                self.on_quit()
                self.app.exit()
            self.invalidate()

        @keys.add("escape", filter=Condition(lambda: self.prompt is not None), eager=True)
        @keys.add("c-c", filter=Condition(lambda: self.prompt is not None))
        def _(_event: KeyPressEvent) -> None:
            self._close_prompt()

        return keys

    def _filter(self, text: str) -> None:
        self.inspector.set_filter(text)
        self.controls["syscalls"].offset = None

    def _page(self) -> int:
        info = self.windows[self.focused].render_info
        return max(1, (info.window_height if info else 10) - 1)

    def _follow(self) -> None:
        self.controls[self.focused].offset = None
        self.invalidate()

    def _show_help(self) -> None:
        self.help_shown = True
        self.invalidate()

    def _confirm_quit(self) -> None:
        self.confirming = True
        self.invalidate()


class _Text(UIControl):
    """A one-line (or fixed) text from a function, re-read at each redraw."""

    def __init__(self, text: Callable[[], Fragments]):
        self.text = text

    def create_content(self, width: int, height: int | None) -> UIContent:
        lines: list[Fragments] = [[]]
        for style, text in self.text():
            parts = text.split("\n")
            for i, part in enumerate(parts):
                if i:
                    lines.append([])
                if part:
                    lines[-1].append((style, part))
        return UIContent(get_line=lambda i: lines[i], line_count=len(lines))
