"""The TUI's panes and screens rendered from recorded MI transcripts (real GDB, real
kernel, recorded by scripts/record-tui-transcripts), against stored snapshots; resizes;
a failing fetch; the marks of stale data; the banner when GDB goes away."""

from __future__ import annotations

import pytest
from tuireplay import backend, check_snapshot, replay

from osvgdb.mi import Record
from osvgdb.tui.inspector import PANES
from osvgdb.tui.panes import RENDERERS, plain


async def panes_text(ui) -> str:
    for _ in PANES:  # as the recording did: each pane shown once (auxv fetches only then)
        ui.press("\t")
        await ui.settle()
    parts = []
    for name in PANES:
        title, lines, _ = RENDERERS[name](ui.screen.inspector)
        parts.append(f"== {title}")
        parts += plain(lines)
    return "\n".join(parts)


def test_every_pane_from_the_hello_transcript() -> None:
    text = replay("hello", panes_text)
    check_snapshot(text, "hello-panes")
    # What a person looks for, whatever the snapshot says:
    assert 'write(1, "Hello from C code\\n", 18)' in text and "in flight" in text
    assert "consistent" in text and "this CPU's kernel TCB (tid 1 main)" in text
    assert "main at " in text and "hello.c:6" in text
    assert "AT_RANDOM" in text and "argv[0] = '/hello-glibc'" in text
    assert "syscall_handler at core/syscall.c" in text  # breakpoints pane: osv-break's


@pytest.mark.parametrize("columns, rows", [(80, 24), (200, 60)])
def test_the_screen_at_its_sizes(columns: int, rows: int) -> None:
    async def screen(ui):
        return ui.text()

    text = replay("hello", screen, columns=columns, rows=rows)
    check_snapshot(text, f"hello-{columns}x{rows}")
    lines = text.splitlines()
    assert len(lines) == rows and all(len(line) <= columns for line in lines)
    assert "vCPU 1 cpus[0] syscall   consistent" in text
    assert "write(1, " in text


def test_resizing_down_and_back_keeps_the_state() -> None:
    async def resize(ui):
        await ui.settle()
        before = ui.text()
        screen = ui.screen
        state = (screen.focused, screen.inspector.selection, len(screen.inspector.syscalls))
        for columns, rows in ((80, 24), (20, 5), (1, 1), (81, 25), (200, 60)):
            ui.resize(columns, rows)
            await ui.settle()
            assert ui.running, f"the screen ended at {columns}x{rows}"
            assert len(ui.text().split("\n")) == rows
        assert (screen.focused, screen.inspector.selection, len(screen.inspector.syscalls)) == state
        return before, ui.text()

    before, after = replay("hello", resize)
    assert after == before


def test_a_failing_fetch_shows_in_its_own_pane() -> None:
    replayed = backend("hello")
    for command, answers in replayed.answers.items():
        if command.startswith("-osv-syscalls"):
            for item in answers:
                item.update(
                    {
                        "class": "error",
                        "payload": {"msg": "osv-syscalls: cannot read cpus[0]'s ring"},
                    }
                )

    async def screen(ui):
        return ui.text()

    text = replay(replayed, screen)
    assert "-osv-syscalls: osv-syscalls: cannot read cpus[0]'s ring" in text
    assert "vCPU 1 cpus[0] syscall   consistent" in text  # the other panes are as they were
    assert "#8  0x0000000000401540 main" in text


def test_data_from_a_stop_is_marked_once_the_guest_runs() -> None:
    async def run(ui):
        ui.screen.inspector.backend.emit(Record("exec", "running", {"thread-id": "all"}))
        await ui.settle()
        return ui.text()

    text = replay("hello", run)
    assert "vCPUs (as of stop 2, guest running)" in text
    assert "syscalls 15/15 (as of stop 2, guest running)" in text
    assert "[running]" in text


def test_gdb_going_away_leaves_a_banner_and_the_last_state() -> None:
    async def run(ui):
        ui.screen.inspector.backend.disconnect("Remote connection closed")
        await ui.settle()
        return ui.text(), ui.running

    text, running = replay("hello", run)
    assert running
    assert "GDB is gone (Remote connection closed); the last state stays readable" in text
    assert "vCPU 1 cpus[0] syscall   consistent" in text and "(as of stop 2)" in text


def test_threads_at_smp_2_with_a_thread_off_cpu_selected() -> None:
    """Two vCPUs apart from the threads; the selected thread is not on a CPU: its
    backtrace comes from its saved context, through the crossing into its function."""

    async def drive(ui):
        await ui.settle()
        ui.press("\t")  # the threads pane
        threads = ui.screen.inspector.panes["threads"].data
        row = next(i for i, t in enumerate(threads) if t["tid"] == "4")
        ui.press(*["\x1b[B"] * row, "\r")
        await ui.settle()
        return ui.text()

    text = replay("threads", drive)
    check_snapshot(text, "threads-200x60")
    assert (
        "vCPU 1 cpus[0] syscall   consistent" in text
        and "vCPU 2 cpus[1] syscall   consistent" in text
    )
    assert ">   4 thread       ready" in text
    assert "backtrace of thread 4 (kernel_rsp)" in text
    trace = text.split("backtrace of thread 4")[1].split(" source ")[0]
    functions = [
        line.split()[2] for line in trace.splitlines()[1:] if line.strip().startswith(("#", ">#"))
    ]
    assert functions[0] == "switch_context"
    assert "<syscall" in trace and "worker" in functions


def test_only_the_visible_panes_fetch() -> None:
    """At 80x24 the narrow layout shows vCPUs, syscalls, backtrace and the console:
    no auxv or breakpoints are asked for, and a stop costs at most four commands."""

    async def drive(ui):
        return [e.command for e in ui.screen.inspector.backend.log.entries]

    commands = replay("hello", drive, columns=80, rows=24)
    assert not any(c.startswith(("-osv-auxv", "-break-list")) for c in commands)
    per_stop = [c for c in commands if not c.startswith("-data-disassemble")]
    assert per_stop == ["-osv-tcb", "-osv-syscalls -n 500", "-stack-list-frames --thread 1"] * 2


def test_gdb_streams_in_pieces_make_whole_lines() -> None:
    """GDB's stream records need not end lines; an open line may grow by a piece with
    no newline at all (that piece once raised IndexError in the event loop)."""
    from osvgdb.tui.inspector import Inspector

    inspector = Inspector(backend("hello"))  # a recorded session: only its event hooks are used
    for piece in ("929\t{", "\n", "a", "b", "c\nd\n"):
        inspector.event(Record("console", None, piece))
    assert inspector.output == ["929\t{", "abc", "d"]
