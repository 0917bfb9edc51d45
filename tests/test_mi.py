"""osvgdb.mi against a real GDB with no target (gdb -nx --interpreter=mi3): tokens,
errors, the records that are not results kept in order, timeouts, and a GDB that
dies mid-command raising GdbExited instead of hanging."""

from __future__ import annotations

import os
import re
import resource
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from osvgdb.mi import (
    CommandError,
    GdbExited,
    Mi,
    MiTimeout,
    Record,
    console_command,
    last_words,
    parse_line,
    stream_text,
)

GDB = ["gdb", "-nx", "-q", "--interpreter=mi3"]


@pytest.fixture
def mi() -> Iterator[Mi]:
    mi = Mi.launch(GDB)
    try:
        mi.execute("-gdb-version")  # GDB is up
        mi.take_events()
        yield mi
    finally:
        mi.close()
    assert mi.process.returncode is not None


def test_each_answer_is_the_result_with_its_commands_token(mi: Mi) -> None:
    tokens = [mi.send(f"-data-evaluate-expression {n}*{n}") for n in range(1, 6)]
    assert len(set(tokens)) == 5
    # Collected in any order: each waits for its own token.
    for n, token in reversed(list(enumerate(tokens, 1))):
        record = mi.wait_result(token, timeout=10)
        assert (record.kind, record.cls, record.token) == ("result", "done", token)
        assert record.payload == {"value": str(n * n)}
    assert mi.take_events() == []  # awaited results are not events


def test_an_error_is_one_exception_with_gdbs_message(mi: Mi) -> None:
    with pytest.raises(CommandError) as raised:
        mi.execute("-no-such-command")
    assert str(raised.value) == "Undefined MI command: no-such-command"
    assert raised.value.code == "undefined-command"
    assert raised.value.command == "-no-such-command"
    with pytest.raises(CommandError, match=r"^No symbol table is loaded\.  Use the \"file\""):
        mi.execute(console_command("print nosuchvariable"))
    # The same message came as a log stream record too, as GDB logs CLI errors.
    assert "No symbol table is loaded." in stream_text(mi.take_events())
    assert mi.execute("-data-evaluate-expression 2+2").payload == {"value": "4"}


def test_records_that_are_not_results_are_kept_in_order(mi: Mi) -> None:
    mi.execute(console_command("echo one\\n"))
    mi.execute(console_command("set listsize 7"))
    token = mi.send(console_command("break *0x1000"))
    mi.send(console_command("python import gdb; gdb.write('two\\n', gdb.STDERR)"))
    mi.send(console_command("python print('three')"))
    last = mi.send(console_command("python import os; os.write(2, b'on stderr\\n')"))
    mi.wait_result(last, timeout=10)
    mi.poll(0.2)  # stderr is another pipe: its line may come after the last result
    events = mi.take_events()
    # In order within GDB's stdout; stderr's own pipe has no order against it.
    assert [e.text for e in events if e.kind == "stderr"] == ["on stderr\n"]
    events = [e for e in events if e.kind != "stderr"]
    assert [(e.kind, e.cls) for e in events] == [
        ("console", None),
        ("notify", "cmd-param-changed"),
        ("console", None),
        ("notify", "breakpoint-created"),
        ("log", None),
        ("console", None),
    ]
    assert events[0].text == "one\n" and events[1].payload == {"param": "listsize", "value": "7"}
    assert events[2].text.startswith("Breakpoint 1 at 0x1000")
    assert int(events[3].payload["bkpt"]["addr"], 16) == 0x1000
    assert [e.text for e in events[4:]] == ["two\n", "three\n"]
    # The results of the commands nobody waited for stay pending until taken.
    assert mi.take_result(token) is not None and mi.take_events() == []


def test_wait_for_hands_over_the_events_up_to_the_one_awaited(mi: Mi) -> None:
    for value in (1, 2, 3):
        mi.execute(console_command(f"set listsize {value}"))
    mi.execute(console_command("echo after\\n"))

    def is_listsize_2(record: Record) -> bool:
        return record.cls == "cmd-param-changed" and record.payload["value"] == "2"

    taken = mi.wait_for(is_listsize_2, timeout=5)
    assert [r.payload["value"] for r in taken] == ["1", "2"]
    assert [r.text or r.payload["value"] for r in mi.events] == ["3", "after\n"]
    with pytest.raises(MiTimeout):
        mi.wait_for(is_listsize_2, timeout=0.2)
    assert len(mi.events) == 2  # a timeout takes nothing


def test_poll_never_blocks_and_take_result_never_waits(mi: Mi) -> None:
    token = mi.send(console_command("shell sleep 0.3"))
    start = time.monotonic()
    assert mi.poll(0) == 0 and mi.take_result(token) is None
    assert time.monotonic() - start < 0.1
    deadline = time.monotonic() + 10
    while (record := mi.take_result(token)) is None:
        assert time.monotonic() < deadline
        mi.poll(0.05)
    assert record.cls == "done"


def test_a_timeout_leaves_the_command_pending(mi: Mi) -> None:
    token = mi.send(console_command("shell sleep 0.5"))
    start = time.monotonic()
    with pytest.raises(MiTimeout, match="shell sleep 0.5"):
        mi.wait_result(token, timeout=0.1)
    assert time.monotonic() - start < 0.4
    assert mi.wait_result(token, timeout=10).cls == "done"


def test_quoting_keeps_quotes_backslashes_and_newlines(mi: Mi) -> None:
    text = 'a "quoted" back\\slash\tand\nnewline'
    mi.execute(console_command(f"python print({text!r})"))
    assert stream_text(mi.take_events()) == text + "\n"
    with pytest.raises(ValueError):
        mi.send("-gdb-version\n-gdb-version")


def test_a_gdb_killed_mid_command_raises_at_once() -> None:
    mi = Mi.launch(GDB)
    try:
        token = mi.send(console_command("python import os, signal; os.kill(os.getpid(), 9)"))
        start = time.monotonic()
        with pytest.raises(GdbExited, match=r"GDB died of signal 9 \(Killed\)"):
            mi.wait_result(token, timeout=30)
        assert time.monotonic() - start < 5
        assert mi.exited
        with pytest.raises(GdbExited):
            mi.execute("-gdb-version")
    finally:
        mi.close()


def test_a_killed_gdb_whose_child_holds_its_output_raises_too(tmp_path: Path) -> None:
    """GDB's `shell` child inherits its stdout: no end of file comes when GDB dies."""
    pid_file = tmp_path / "sleep.pid"
    mi = Mi.launch(GDB)
    child = None
    try:
        token = mi.send(console_command(f"shell echo $$ > {pid_file}; exec sleep 30"))
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child = int(pid_file.read_text())
        mi.process.kill()
        start = time.monotonic()
        with pytest.raises(GdbExited, match="died of signal 9"):
            mi.wait_result(token, timeout=30)
        assert time.monotonic() - start < 5
    finally:
        if child is not None:
            os.kill(child, signal.SIGKILL)
        mi.close()


def _no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.parametrize(
    "command, ended",
    [
        # GDB's own handler of a fatal signal in itself: what a crash inside GDB says
        ("python import os; os.abort()", r"died of signal 6 \(Aborted\): Fatal signal: Aborted$"),
        # an internal error: GDB answers "quit?" itself with no terminal, and exits
        (
            "maint internal-error osvgdb-test",
            r"exited with status 1: \S+/maint\.c:\d+: internal-error: osvgdb-test$",
        ),
    ],
)
def test_a_gdb_that_dies_says_why(command: str, ended: str, tmp_path: Path) -> None:
    """GDB writes why it dies on its log stream, not as a result: the GdbExited
    message carries it, once, and not the lines around it."""
    mi = Mi.launch(GDB, cwd=tmp_path, preexec_fn=_no_core)
    try:
        mi.execute("-gdb-version")
        token = mi.send(console_command(command))
        with pytest.raises(GdbExited) as raised:
            mi.wait_result(token, timeout=30)
        assert re.search(r"GDB " + ended.rstrip("$") + r" while waiting for ", str(raised.value))
        assert re.fullmatch(ended, mi.ended()), mi.ended()
    finally:
        mi.close()
    assert list(tmp_path.iterdir()) == []  # and it left no core file


def test_last_words_are_the_lines_that_say_why() -> None:
    text = "warning: something\nFatal signal: Aborted\n----- Backtrace -----\nFatal signal: Aborted\n"
    assert last_words(text) == ": Fatal signal: Aborted"
    assert last_words("free(): invalid pointer\nFatal signal: Aborted\n") == (
        ": free(): invalid pointer; Fatal signal: Aborted"
    )
    assert last_words(
        "terminate called after throwing an instance of 'gdb_exception_error'\n  what():  boom\n"
    ) == ": terminate called after throwing an instance of 'gdb_exception_error'; what():  boom"
    assert last_words("Continuing.\n") == ""


def test_close_asks_gdb_to_exit() -> None:
    mi = Mi.launch(GDB)
    mi.execute("-gdb-version")
    mi.close()
    assert mi.process.returncode == 0
    mi.close()  # twice is fine


def test_parse_line_kinds() -> None:
    assert parse_line("(gdb) ") is None
    assert parse_line('12^done,value="1"') == Record("result", "done", {"value": "1"}, 12)
    assert parse_line('*stopped,reason="breakpoint-hit"') == Record(
        "exec", "stopped", {"reason": "breakpoint-hit"}
    )
    assert parse_line('+download,section=".text"') == Record(
        "status", "download", {"section": ".text"}
    )
    assert parse_line("=thread-group-added,id=\"i1\"").kind == "notify"
    assert parse_line("*running") == Record("exec", "running", {})
    assert parse_line('~"hi\\n"') == Record("console", None, "hi\n")
    assert parse_line('@"out"') == Record("target", None, "out")
    assert parse_line('&"warn\\n"') == Record("log", None, "warn\n")
    assert parse_line("Hello from the program") == Record(
        "output", None, "Hello from the program\n"
    )
