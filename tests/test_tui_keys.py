"""Every key of the TUI, on the screen replaying a real session (tests/data/tui/hello.jsonl):
what it sends to GDB (the MI log is the witness), what it changes on the screen."""

from __future__ import annotations

import pytest
from tuireplay import backend, replay

from osvgdb.mi import Record

UP, DOWN, PGUP, PGDN, HOME, END = "\x1b[A", "\x1b[B", "\x1b[5~", "\x1b[6~", "\x1b[H", "\x1b[F"
SHIFT_TAB = "\x1b[Z"


def sent(ui) -> list[str]:
    return [entry.command for entry in ui.screen.inspector.backend.log.entries]


async def press(ui, *keys: str) -> None:
    ui.press(*keys)
    await ui.settle()


@pytest.mark.parametrize(
    "key, command",
    [
        ("c", "-exec-continue"),
        ("s", "-exec-step --thread 1"),
        ("n", "-exec-next --thread 1"),
        ("S", "-exec-step-instruction --thread 1"),
        ("f", "-exec-finish --thread 1"),
    ],
)
def test_resuming_keys(key: str, command: str) -> None:
    async def drive(ui):
        await press(ui, key)
        return sent(ui)

    assert replay("hello", drive)[-1] == command


def test_interrupt_only_while_running() -> None:
    async def drive(ui):
        await press(ui, "i")
        refused = ui.screen.inspector.message
        ui.screen.inspector.backend.emit(Record("exec", "running", {"thread-id": "all"}))
        await press(ui, "i")
        again = ui.screen.inspector.message
        await press(ui, "c")  # resuming while it runs is refused, not sent
        return refused, again, ui.screen.inspector.message, sent(ui)

    refused, again, resumed, commands = replay(
        "hello", drive, answers={"-exec-interrupt --all": {}}
    )
    assert refused == "the guest is not running"
    assert again is None and commands[-1] == "-exec-interrupt --all"
    assert resumed == "the guest is running: -exec-continue needs a stop"


def test_b_breaks_on_the_named_syscalls() -> None:
    async def drive(ui):
        await press(ui, "b")
        prompt = ui.text()
        await press(ui, "read write\r")
        return prompt, sent(ui)

    prompt, commands = replay("hello", drive)
    assert "break on syscalls:" in prompt
    assert commands[-1] == '-interpreter-exec console "osv-break syscall read write"'


def test_t_toggles_osv_trace_only_when_gdb_agrees() -> None:
    async def drive(ui):
        await press(ui, "t")
        return ui.screen.inspector.tracing, ui.screen.inspector.message

    tracing, message = replay("hello", drive)  # the transcript has no osv-trace: ^error
    assert not tracing and message.startswith("Undefined MI command")


def test_t_toggles_osv_trace() -> None:
    async def drive(ui):
        await press(ui, "t")
        on = sent(ui)[-1], ui.screen.inspector.message
        await press(ui, "t")
        return on, (sent(ui)[-1], ui.screen.inspector.message)

    on, off = replay("hello", drive, answers={'-interpreter-exec console "osv-trace syscalls"': {},
                                              '-interpreter-exec console "osv-trace off"': {}})  # fmt: skip
    assert on == (
        '-interpreter-exec console "osv-trace syscalls"',
        "osv-trace on: calls print in the output pane",
    )
    assert off == ('-interpreter-exec console "osv-trace off"', "osv-trace off")


def test_tab_and_shift_tab_go_through_every_pane() -> None:
    async def drive(ui):
        order = [ui.screen.focused]
        for _ in range(10):
            await press(ui, "\t")
            order.append(ui.screen.focused)
        await press(ui, SHIFT_TAB)
        return order, ui.screen.focused, ui.text()

    order, back, text = replay("hello", drive)
    assert order == ["vcpus", "threads", "syscalls", "backtrace", "source", "console", "output",
                     "auxv", "breakpoints", "milog", "vcpus"]  # fmt: skip
    assert back == "milog" and "MI log (" in text  # the flex pane shows what has the focus


def test_arrows_move_the_frame_and_a_failed_fetch_stays_in_its_pane() -> None:
    async def drive(ui):
        await press(ui, "\t\t\t")  # the backtrace
        await press(ui, DOWN, DOWN)
        frame = ui.screen.inspector.frame
        source = ui.screen.inspector.panes["source"]
        # Frame 2 (libc's write) has no source: its disassembly is asked for, which the
        # transcript never recorded: the source pane says so, nothing else changes.
        return frame, source.error, ui.text()

    frame, error, text = replay("hello", drive)
    assert frame == 2
    assert error.startswith("-data-disassemble: Undefined MI command")
    assert ">#2  0x00000000004308b0 write" in text
    assert "vCPU 1 cpus[0] syscall   consistent" in text


def test_page_keys_home_and_end_scroll_the_syscalls() -> None:
    async def drive(ui):
        await press(ui, "\t\t")  # the syscalls pane
        control = ui.screen.controls["syscalls"]
        await press(ui, PGUP)
        paged = control.offset
        await press(ui, HOME)
        top = control.offset, ui.text()
        await press(ui, PGDN)
        down = control.offset
        await press(ui, END)
        return paged, top, down, control.offset

    paged, (top, text), down, end = replay("hello", drive, columns=80, rows=24)
    assert paged is not None and paged < 16
    assert top == 0 and "brk(NULL) = 0x4ac000" in text
    assert down > 0
    assert end is None  # following the newest again


def test_enter_selects_a_thread_for_the_backtrace() -> None:
    async def drive(ui):
        await press(ui, "\t", DOWN, DOWN, "\r")
        return ui.screen.inspector.selection, sent(ui)

    selection, commands = replay("hello", drive)
    assert selection.kind == "thread" and selection.number == 1
    assert commands[-1] == "-osv-bt --tid 1"


def test_slash_filters_the_syscalls() -> None:
    async def drive(ui):
        await press(ui, "/", "tid=1 brk\r")
        good = ui.text()
        await press(ui, "/", "size=3\r")
        return good, ui.screen.inspector.message

    text, message = replay("hello", drive, columns=200, rows=60)
    assert "syscalls [tid=1 brk] 5/15" in text
    assert "mprotect" not in text.split("syscalls [")[1].split("backtrace")[0]
    assert message == "filter: not a filter word: 'size=3' (tid=T, cpu=N or a syscall name)"


def test_colon_runs_a_command_with_history() -> None:
    async def drive(ui):
        await press(ui, ":", "info registers rip\r")
        first = sent(ui)[-1]
        await press(ui, ":")
        await press(ui, UP)  # once the line is drawn: it loads its history then
        recalled = ui.screen.input.text
        await press(ui, "\x03")  # ^C leaves the line
        return first, recalled, ui.screen.prompt, ui.screen.inspector.output[-2:]

    first, recalled, prompt, output = replay("hello", drive)
    assert first == '-interpreter-exec console "info registers rip"'
    assert recalled == "info registers rip"
    assert prompt is None
    assert "(gdb) info registers rip" in output[0] and "Undefined MI command" in output[-1]


def test_question_mark_shows_the_keys_and_any_key_closes() -> None:
    async def drive(ui):
        await press(ui, "?")
        shown = ui.text()
        await press(ui, "x")
        return shown, ui.screen.help_shown, sent(ui)

    shown, still, commands = replay("hello", drive)
    assert "keys (any key closes this)" in shown and "toggle osv-trace" in shown
    assert not still and not any(c.startswith("-exec") for c in commands)  # x did nothing else


def test_q_asks_before_quitting() -> None:
    async def drive(ui):
        await press(ui, "q")
        asked = ui.text()
        await press(ui, "n")
        stayed = ui.running
        await press(ui, "q", "y")
        return asked, stayed, ui.running

    asked, stayed, running = replay("hello", drive)
    assert "quit? QEMU and GDB end with the TUI (y/n)" in asked
    assert stayed and not running


def test_a_dump_is_read_only() -> None:
    async def drive(ui):
        await press(ui, "c")
        return ui.screen.inspector.message, sent(ui)

    message, commands = replay("hello", drive, read_only=True)
    assert message == "a dump is read-only: nothing runs"
    assert "-exec-continue" not in commands


def test_a_slow_command_leaves_the_screen_responsive() -> None:
    """-osv-syscalls takes 2 s: its pane says so while keys are served and the other panes
    show their data; then its data comes."""
    import asyncio

    replayed = backend("hello")
    replayed.slow = {"-osv-syscalls": 2.0}

    async def drive(ui):
        replayed.emit(replayed.events()[0])  # the first stop only
        await asyncio.sleep(0.3)
        ui.press("\t")
        await asyncio.sleep(0.3)
        during = ui.text(), ui.screen.focused
        await ui.settle()  # the fetches finish
        return during, ui.text()

    (text, focused), after = replay(replayed, drive, events=False)
    assert "syscalls 0/0 (fetching)" in text and focused == "threads"
    assert "vCPU 1 cpus[?]" in text  # the tcb answered meanwhile
    assert "(fetching)" not in after


def test_a_breakpoint_made_while_the_pane_is_hidden_shows_when_it_is_shown() -> None:
    async def drive(ui):
        for _ in range(8):  # to the breakpoints pane: fetched
            await press(ui, "\t")
        first = sent(ui).count("-break-list")
        await press(ui, "\t")  # away: the MI log
        ui.screen.inspector.backend.emit(
            Record("notify", "breakpoint-created", {"bkpt": {"number": "3"}})
        )
        await ui.settle()
        hidden = sent(ui).count("-break-list")
        await press(ui, SHIFT_TAB)  # back to the breakpoints
        return first, hidden, sent(ui).count("-break-list")

    first, hidden, shown = replay("hello", drive, columns=80, rows=24)
    assert (first, hidden, shown) == (1, 1, 2)
