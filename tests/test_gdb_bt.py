"""osv-bt and -osv-bt on the bundled deadlock at -smp 2, in real QEMU under real GDB.

One boot: first stopped at the first futex call (an app thread on a vCPU, inside the
syscall), then in the deadlock itself (both workers blocked for good in
pthread_mutex_lock, main in pthread_join, the vCPUs idle). Oracles: GDB's own
unwinder (-stack-list-frames) for the threads on a vCPU, and deadlock.c's text for
the lines where the blocked threads wait."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from gdbdriver import Debugged
from guest import ROOT, app
from test_mi_commands import assert_same

from osvgdb.mi import CommandError, stream_text

DEADLOCK_C = ROOT / "kernel" / "apps" / "deadlock.c"
SETTLE = 1.0  # seconds for both workers to block once main has printed its line
TRIES = 5


@dataclass
class Stops:
    debugged: Debugged
    at_futex: dict  # -osv-bt, -stack-list-frames and `osv-bt` at the first futex call


def line_in(function: str, text: str) -> int:
    """The number of the first line with TEXT in deadlock.c's FUNCTION."""
    lines = DEADLOCK_C.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line[:1].isalpha() and f"{function}(" in line)
    return next(i + 1 for i in range(start, len(lines)) if text in lines[i])


def functions(trace: dict) -> list[str]:
    return [frame.get("function", "??") for frame in trace["frames"]]


def deadlocked(backtraces: list[dict]) -> bool:
    workers = [t for t in backtraces if {"transfer_a_to_b", "transfer_b_to_a"} & set(functions(t))]
    return len(workers) == 2 and all(
        any("pthread_mutex_lock" in f for f in functions(t)) for t in workers
    )


@pytest.fixture(scope="module")
def stops(kernel: None) -> Iterator[Stops]:
    debugged = Debugged(app("deadlock", "glibc"), smp=2)
    try:
        gdb = debugged.gdb
        gdb.run("osv-break syscall futex")
        assert "futex(" in gdb.run("continue")
        at_futex = {
            "bt": gdb.mi.execute("-osv-bt").payload,
            "text": gdb.run("osv-bt"),
            "stack": gdb.mi.execute("-stack-list-frames").payload["stack"],
        }
        at_futex["by_tid"] = gdb.mi.execute(
            f"-osv-bt --tid {at_futex['bt']['backtraces'][0]['tid']}"
        ).payload
        gdb.run("delete")
        for _ in range(TRIES):
            gdb.start("continue")
            debugged.console.wait_for("two threads taking two locks", timeout=60)
            time.sleep(SETTLE)
            gdb.process.send_signal(signal.SIGINT)
            gdb.wait(timeout=30)
            if deadlocked(gdb.mi.execute("-osv-bt -a").payload["backtraces"]):
                break
        else:
            raise AssertionError(f"the workers never both blocked:\n{gdb.run('osv-bt --all')}")
        yield Stops(debugged, at_futex)
    finally:
        debugged.close()


def all_backtraces(stops: Stops) -> list[dict]:
    return stops.debugged.gdb.mi.execute("-osv-bt -a").payload["backtraces"]


def test_all_gives_a_backtrace_for_every_thread(stops: Stops) -> None:
    threads = stops.debugged.gdb.mi.execute("-osv-tcb").payload["threads"]
    backtraces = all_backtraces(stops)
    assert [t["tid"] for t in backtraces] == [t["tid"] for t in threads if int(t["tid"]) >= 0]
    for trace in backtraces:
        assert trace["frames"] and trace["complete"] == "true", trace
        assert "stopped" not in trace  # null: left out
        levels = [frame["level"] for frame in trace["frames"]]
        assert levels == [str(level) for level in range(len(levels))]


def test_blocked_threads_come_from_their_saved_context(stops: Stops) -> None:
    by_function = {}
    for trace in all_backtraces(stops):
        for name in ("main", "transfer_a_to_b", "transfer_b_to_a"):
            if name in functions(trace):
                by_function[name] = trace
    assert set(by_function) == {"main", "transfer_a_to_b", "transfer_b_to_a"}
    waits_at = {  # the second lock each worker asks for; main's first join
        "transfer_a_to_b": line_in("transfer_a_to_b", "pthread_mutex_lock(&lock_b)"),
        "transfer_b_to_a": line_in("transfer_b_to_a", "pthread_mutex_lock(&lock_a)"),
        "main": line_in("main", "pthread_join(ab"),
    }
    for name, trace in by_function.items():
        assert trace["source"] == "kernel_rsp" and trace["state"] == "blocked", trace
        assert "cpu" not in trace and "vcpu" not in trace, trace
        names = functions(trace)
        assert names[0] == "switch_context", names
        (crossing,) = [f for f in trace["frames"] if f["kind"] == "crossing"]
        assert crossing["function"] == "<syscall futex>" and crossing["module"] == "kernel"
        (own,) = [f for f in trace["frames"] if f.get("function") == name]
        assert own["module"] == "app" and own["file"].endswith("deadlock.c"), own
        assert own["line"] == str(waits_at[name]), own
        inner_app = names[names.index("<syscall futex>") + 1 : names.index(name)]
        wait = "pthread_clockjoin" if name == "main" else "pthread_mutex_lock"
        assert any(wait in f for f in inner_app), names


def test_cli_text_names_the_same_functions(stops: Stops) -> None:
    text = stops.debugged.gdb.run("osv-bt --all")
    blocks = text.strip().split("\n\n")
    backtraces = all_backtraces(stops)
    assert len(blocks) == len(backtraces), text
    for block, trace in zip(blocks, backtraces, strict=True):
        header, *frames = block.splitlines()
        where = (
            f" on vCPU {trace['vcpu']} (cpus[{trace['cpu']}]):"
            if "cpu" in trace
            else ", not on a CPU, from its saved context:"
        )
        assert header == f"thread {trace['tid']} ({trace['name']}){where}", block
        assert len(frames) == len(trace["frames"]), block
        for line, frame in zip(frames, trace["frames"], strict=True):
            assert line.startswith(f"#{frame['level']:<2} "), line
            assert frame["function"] in line, (line, frame)


def test_json_is_the_mi_result(stops: Stops) -> None:
    gdb = stops.debugged.gdb
    assert_same(gdb.json("osv-bt --all --json"), gdb.mi.execute("-osv-bt -a").payload)


def test_mi_all_after_another_option_is_ours(stops: Stops) -> None:
    """GDB's MI parser takes a first --all for itself; after another option it is ours."""
    mi = stops.debugged.gdb.mi
    assert mi.execute("-osv-bt --max-depth 64 --all").payload == mi.execute("-osv-bt -a").payload


def gdb_frames(gdb, thread: str | None = None) -> list[dict]:
    option = f" --thread {thread}" if thread else ""
    return gdb.mi.execute(f"-stack-list-frames{option}").payload["stack"]


def assert_agrees_with_gdb(trace: dict, stack: list[dict]) -> None:
    """Frame by frame GDB's own unwinder's pcs; its crossing GDB's signal frame, and
    the same function (GDB may choose another alias of it: __clone3, clone3). Past
    boot.S's long_mode_start, which has no CFI, GDB goes on into `??` frames."""
    frames = trace["frames"]
    assert [int(f["address"]) for f in frames] == [int(f["addr"], 16) for f in stack[: len(frames)]]
    assert all(f["func"] == "??" for f in stack[len(frames) :]), stack
    for ours, gdbs in zip(frames, stack, strict=False):
        if ours["kind"] == "crossing":
            assert gdbs["func"] == "<signal handler called>", (ours, gdbs)
        else:
            assert ours["function"].lstrip("_") == gdbs["func"].lstrip("_"), (ours, gdbs)


def test_thread_on_a_vcpu_agrees_with_gdbs_unwinder(stops: Stops) -> None:
    (trace,) = stops.at_futex["bt"]["backtraces"]
    stack = stops.at_futex["stack"]
    assert trace["source"] == f"vcpu {trace['vcpu']}" and trace["state"] == "running"
    assert trace["frames"][0]["function"] == "syscall_handler"
    assert_agrees_with_gdb(trace, stack)
    app_frames = [f for f in trace["frames"] if f["module"] == "app"]
    gdb_app_frames = stack[len(trace["frames"]) - len(app_frames) :]
    assert app_frames[0]["address"] == str(int(gdb_app_frames[0]["addr"], 16))
    own = next(f for f in app_frames if "file" in f)  # the innermost with DWARF: the app's own
    assert own["function"] in ("main", "transfer_a_to_b", "transfer_b_to_a")
    assert own["function"] in [f["func"] for f in gdb_app_frames]
    # --tid T of the thread on the vCPU is the same backtrace, from the vCPU too
    assert stops.at_futex["by_tid"] == stops.at_futex["bt"]
    lines = stops.at_futex["text"].splitlines()
    assert lines[0].startswith(f"thread {trace['tid']} ({trace['name']}) on vCPU ")
    assert own["function"] in "\n".join(lines)


def test_idle_vcpus_agree_with_gdbs_unwinder(stops: Stops) -> None:
    gdb = stops.debugged.gdb
    for cpu in ("0", "1"):
        (trace,) = gdb.mi.execute(f"-osv-bt --cpu {cpu}").payload["backtraces"]
        assert trace["cpu"] == cpu and trace["name"] in ("boot", "idle"), trace
        assert_agrees_with_gdb(trace, gdb_frames(gdb, trace["vcpu"]))


def test_max_depth_cuts_the_backtrace(stops: Stops) -> None:
    gdb = stops.debugged.gdb
    backtraces = gdb.mi.execute("-osv-bt -a --max-depth 3").payload["backtraces"]
    deep = [t for t in backtraces if t["name"] != "idle" and t["name"] != "boot"]
    assert deep
    for trace in deep:
        assert len(trace["frames"]) == 3 and trace["complete"] == "false", trace
        assert trace["stopped"] == "depth limit 3"
    assert "(backtrace stopped: depth limit 3)" in gdb.run("osv-bt --all --max-depth 3")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("--tid 999", "osv-bt: no thread 999"),
        ("--cpu 9", "osv-bt: no CPU 9"),
        ("--bogus", "osv-bt: unrecognized arguments: --bogus (usage: osv-bt "),
        ("--tid 1 --all", "osv-bt: argument --all/-a: not allowed with argument --tid (usage: "),
        ("--max-depth 0", "osv-bt: argument --max-depth: 0 is not 1 to 64 (usage: "),
    ],
)
def test_errors_are_one_line(stops: Stops, options: str, message: str) -> None:
    gdb = stops.debugged.gdb
    with pytest.raises(CommandError) as raised:
        gdb.mi.execute(f"-osv-bt {options}")
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
    assert "Traceback" not in stream_text(gdb.mi.take_events())
    text = gdb.run(f"osv-bt {options}")
    assert text.strip().startswith(message) and "\n" not in text.strip(), text
    assert "Traceback" not in text


def test_help_explains_where_frames_come_from(stops: Stops) -> None:
    text = stops.debugged.gdb.run("help osv-bt")
    assert text.startswith("Show the backtrace of any kernel thread")
    for words in ("kernel_rsp", "vCPU's\nregisters", "crossing", "guessed", "--max-depth D"):
        assert words in text, words
