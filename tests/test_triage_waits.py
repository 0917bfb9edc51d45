"""What triage says a blocked thread waits on (osvgdb/triage/collect.py's wait_of): a pipe
or poll wait (sched_wait's channel) is told from a sleep and a futex, from the thread's
wait fields alone and in a real hang."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import jsonschema
from guest import ROOT, app, osvgdb_command

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
