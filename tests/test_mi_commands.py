"""-osv-tcb, -osv-syscalls and -osv-auxv over MI (osvgdb.mi) on the bundled hello,
stopped inside its write syscall in real QEMU under real GDB: field by field the
data their CLI commands print with --json, as MI values (osvgdb/gdb/mi_commands.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from gdbdriver import Debugged
from guest import app

from osvgdb.mi import CommandError, console_command, is_stop, stream_text

MI_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9_]*")
NO_LIVE_TARGET = "no live target (connect with target remote, or QEMU has exited)"


@pytest.fixture(scope="module")
def stopped_in_write(kernel: None) -> Iterator[Debugged]:
    debugged = Debugged(app("hello", "glibc"))
    try:
        debugged.gdb.run("osv-break syscall write")
        assert 'write(1, "Hello from C code\\n", 18)' in debugged.gdb.run("continue")
        debugged.gdb.run("tbreak dispatch")  # the history holds the call in flight
        debugged.gdb.run("continue")
        yield debugged
    finally:
        debugged.close()


def assert_same(json_value: object, mi_value: object, path: str = "") -> None:
    """MI_VALUE (as pygdbmi parses it) is JSON_VALUE by mi_commands' table."""
    where = path or "the result"
    if isinstance(json_value, dict) and all(MI_NAME.fullmatch(k) for k in json_value):
        assert isinstance(mi_value, dict), f"{where}: {mi_value!r} is not a tuple"
        present = {k for k, v in json_value.items() if v is not None}
        assert set(mi_value) == present, f"{where}: fields {sorted(mi_value)} != {sorted(present)}"
        for key in present:
            assert_same(json_value[key], mi_value[key], f"{path}.{key}")
    elif isinstance(json_value, dict):  # keys that are no MI names: [{key=,value=}...]
        pairs = [{"key": k, "value": v} for k, v in json_value.items()]
        assert_same(pairs, mi_value, path)
    elif isinstance(json_value, list):
        assert isinstance(mi_value, list), f"{where}: {mi_value!r} is not a list"
        assert len(mi_value) == len(json_value), f"{where}: {len(mi_value)} items"
        for index, (j, m) in enumerate(zip(json_value, mi_value, strict=True)):
            assert_same(j, m, f"{path}[{index}]")
    elif json_value is None:
        assert mi_value == {}, f"{where}: null is {mi_value!r}"
    elif isinstance(json_value, bool):
        assert mi_value == ("true" if json_value else "false"), f"{where}: {mi_value!r}"
    elif isinstance(json_value, str):
        expected = json_value.replace("\0", "\\x00")
        assert mi_value == expected, f"{where}: {mi_value!r} != {expected!r}"
    else:
        assert mi_value == str(json_value), f"{where}: {mi_value!r} != {json_value!r}"


@pytest.mark.parametrize(
    "options",
    [
        "osv-tcb",
        "osv-tcb --cpu 0",
        "osv-tcb --tid 1",
        "osv-syscalls -n 0",
        "osv-syscalls --name write --name brk -s 8",
        "osv-syscalls --raw -n 3",
        "osv-auxv",
    ],
)
def test_mi_command_is_the_json_field_by_field(stopped_in_write: Debugged, options: str) -> None:
    gdb = stopped_in_write.gdb
    expected = gdb.json(options + " --json")
    result = gdb.mi.execute("-" + options)
    assert result.cls == "done"
    assert_same(expected, result.payload)


def test_mi_values_by_the_table(stopped_in_write: Debugged) -> None:
    """The rules of the table, on values known from the stop: in write, in flight."""
    records = stopped_in_write.gdb.mi.execute("-osv-syscalls -n 0").payload["records"]
    write = records[-1]
    assert write["name"] == "write" and write["state"] == "in-flight"
    assert write["args"][:3] == ["1", write["args"][1], "18"]  # numbers: decimal text
    assert write["strings"] == [{"key": "1", "value": "Hello from C code\n"}]
    assert "result" not in write and "duration_ms" not in write  # null: left out
    done = records[-2]
    assert float(done["duration_ms"]) > 0 and done["result"] == "0"
    auxv = stopped_in_write.gdb.mi.execute("-osv-auxv").payload
    assert auxv["argv"] == ["/hello-glibc"] and auxv["envp"] == []
    (execfn,) = [e for e in auxv["auxv"] if e["name"] == "AT_EXECFN"]
    assert execfn["decoded"] == "/hello-glibc"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("-osv-tcb --cpu 9", "osv-tcb: no CPU 9"),
        ("-osv-tcb --tid 999", "osv-tcb: no thread with tid 999"),
        ("-osv-syscalls --bogus", "osv-syscalls: unrecognized arguments: --bogus (usage: "),
        ("-osv-syscalls --name nosuchcall", "osv-syscalls: unknown syscall name 'nosuchcall'"),
        ("-osv-syscalls --cpu 5", "osv-syscalls: --cpu 5: the guest has only CPU 0"),
    ],
)
def test_mi_errors_are_the_cli_commands_line(
    stopped_in_write: Debugged, command: str, message: str
) -> None:
    with pytest.raises(CommandError) as raised:
        stopped_in_write.gdb.mi.execute(command)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert "Traceback" not in stream_text(stopped_in_write.gdb.mi.take_events())


def test_help_goes_to_the_console_stream(stopped_in_write: Debugged) -> None:
    mi = stopped_in_write.gdb.mi
    assert mi.execute("-osv-auxv --help").payload == {}
    assert "usage: osv-auxv" in stream_text(mi.take_events())


@pytest.mark.usefixtures("kernel")
def test_continue_over_mi_then_without_a_target() -> None:
    """-exec-continue's *stopped, awaited with what came before it; then QEMU dies."""
    debugged = Debugged(app("hello", "glibc"))
    try:
        mi = debugged.gdb.mi
        mi.execute(console_command("osv-break syscall write"))
        mi.take_events()
        assert mi.execute("-exec-continue").cls == "running"
        records = mi.wait_for_stop(timeout=60)
        assert is_stop(records[-1]) and records[-1].payload["reason"] == "breakpoint-hit"
        assert 'osv: CPU 0 tid 1 (main): write(1, "Hello from C code\\n", 18)' in stream_text(
            records
        )
        assert mi.execute("-osv-tcb").payload["cpus"][0]["where"] == "syscall"
        debugged.session.vm.kill()
        for command in ("-osv-tcb", "-osv-auxv"):
            with pytest.raises(CommandError) as raised:
                mi.execute(command)
            assert str(raised.value) == f"{command[1:]}: {NO_LIVE_TARGET}"
    finally:
        debugged.close()
