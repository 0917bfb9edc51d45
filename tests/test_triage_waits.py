"""What triage says a blocked thread waits on (osvgdb/triage/collect.py's wait_of): a pipe
or poll wait (sched_wait's channel) is told from a sleep and a futex, from the thread's
wait fields alone and in a real hang; a futex wait the kernel's lost wake-up left asleep
(osvgdb/model/wakes.py, --inject=lost-wake) is the kernel's bug, whichever wake it lost."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import jsonschema
from guest import ROOT, app, osvgdb_command
from triage_cases import BY_NAME

from osvgdb.triage.collect import wait_of

PIPE_EVENTS = 0xFFFF800000123000


class Kernel:
    def has(self, name: str) -> bool:
        return name == "pipe_events"

    def address(self, name: str) -> int:
        assert name == "pipe_events"
        return PIPE_EVENTS

    def reader(self, address: int, length: int) -> None:
        return None


BLOCKED = SimpleNamespace(state="blocked", tid=3)


def test_a_pipe_read_or_write_waits_on_the_pipe() -> None:
    waits = {"wait_chan": 0xFFFF800000456000, "wake_time": 0, "futex_addr": 0}
    assert wait_of(Kernel(), BLOCKED, waits, {}) == {
        "kind": "pipe", "chan": 0xFFFF800000456000, "poll": False, "timed": False,
    }  # fmt: skip


def test_poll_waits_on_pipe_events_with_its_timeout() -> None:
    waits = {"wait_chan": PIPE_EVENTS, "wake_time": 12345, "futex_addr": 0}
    assert wait_of(Kernel(), BLOCKED, waits, {}) == {
        "kind": "pipe", "chan": PIPE_EVENTS, "poll": True, "timed": True,
    }  # fmt: skip


def test_no_channel_is_a_sleep_as_before() -> None:
    waits = {"wait_chan": 0, "wake_time": 99, "futex_addr": 0}
    assert wait_of(Kernel(), BLOCKED, waits, {}) == {"kind": "sleep", "timed": True}


def test_triage_of_a_pipe_hang_names_the_pipe(kernel: None, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    subprocess.run(
        osvgdb_command("triage", "--accel", "tcg", "--timeout", "5", "--no-dump", "--json", str(report),
                       str(app("pipes", "glibc")), "hang"),
        stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
    )  # fmt: skip
    data = json.loads(report.read_text())
    jsonschema.validate(data, json.loads((ROOT / "osvgdb/triage/report.schema.json").read_text()))
    (reader,) = [t for t in data["threads"] if t["app"]]
    assert reader["wait"]["kind"] == "pipe" and not reader["wait"]["poll"], reader


def triage_json(tmp_path: Path, *argv: str) -> dict:
    report = tmp_path / "report.json"
    done = subprocess.run(osvgdb_command("triage", "--no-dump", "--json", str(report), *argv),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    data = json.loads(report.read_text())
    jsonschema.validate(data, json.loads((ROOT / "osvgdb/triage/report.schema.json").read_text()))
    return data


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_a_join_whose_exit_wake_was_lost_is_the_kernels(kernel: None, tmp_path: Path, variant: str) -> None:
    """joinlate's main sleeps in pthread_join until its thread's exit wakes it; with every
    wake lost, main sleeps on a word its thread's exit cleared. The same signature as
    threads' lock-step hang (test_triage's lost-wake case): one kernel bug, one bucket.
    The oracle for the value main slept on is the thread's own tid, which the history's
    clone3 returned to main; the program prints joinlate ok on the host and here without
    the injection."""
    data = triage_json(tmp_path, "--accel", "tcg", "--timeout", "3", "--kernel-arg=--inject=lost-wake",
                       str(app("joinlate", variant)))  # fmt: skip
    assert data["signature"] == BY_NAME["lost-wake"].signature, data["title"]
    assert data["title"].startswith("hang-deadlock: lost-wake in futex_wake: tid "), data["title"]
    (main,) = [t for t in data["threads"] if t["app"]]
    assert main["name"] == "main" and data["guilty_tid"] == main["tid"]
    clone = next(c for c in main["syscalls"]["last"] if c["name"] in ("clone", "clone3"))
    napper = int(clone["text"].rsplit("= ", 1)[1])
    wait, lost = main["wait"], main["wait"]["lost_wake"]
    assert wait["kind"] == "futex" and wait["value"] == 0 and wait["stale"], wait
    assert (lost["tid"], lost["futex"], lost["by"]) == (main["tid"], wait["futex"], napper), lost
    assert lost["seq"] > main["syscalls"]["in_flight"]["seq"]
    if variant == "glibc":  # glibc's join sleeps on the tid itself; musl's on a state word
        assert wait["expected"] == napper and lost["how"] == "exit", lost
    host = subprocess.run([str(app("joinlate", variant))], capture_output=True, text=True, timeout=30)
    here = subprocess.run(osvgdb_command("run", "--accel", "tcg", str(app("joinlate", variant))),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert host.stdout == here.stdout == "joinlate ok\n" and here.returncode == 0, here.stderr

