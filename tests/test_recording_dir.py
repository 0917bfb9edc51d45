"""The recording directory and the replay's console, without QEMU: what a recording must
hold for a replay to open it, and how the replayed console is checked and printed once.
(A recording made by QEMU is in test_record.py.)"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from osvgdb import record
from osvgdb.replay import ReplayConsole


def _fake_recording(directory: Path) -> dict:
    """A directory shaped as record.Recorder leaves one (its files' bytes are ours)."""
    directory.mkdir()
    (directory / "app").mkdir()
    contents = {record.EVENT_LOG: b"log" * 100, record.KERNEL: b"\x7fELF kernel",
                record.INITRD: b"070701", record.CONSOLE: b"hello\n", record.DEBUGCON: b"osv-exit: status=0\n",
                "app/hello": b"\x7fELF app"}  # fmt: skip
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    (directory / record.SNAPSHOT_IMAGE).write_bytes(b"QFI\xfb")
    manifest = {
        "format": record.FORMAT, "version": record.VERSION, "complete": True, "qemu": "QEMU 7.2",
        "cmdline": "/hello", "machine": ["qemu"], "options": {}, "kernel": {"file": record.KERNEL},
        "app": {"file": "app/hello"}, "end": {"icount": 1000, "outcome": "exited", "exit_status": 0},
        "files": {name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in contents.items()},
    }  # fmt: skip
    (directory / record.MANIFEST).write_text(json.dumps(manifest))
    return manifest


def _refused(directory: Path) -> str:
    with pytest.raises(record.RecordingError) as error:
        record.open_recording(directory, check_qemu=False)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_whole_recording_opens(tmp_path: Path) -> None:
    _fake_recording(tmp_path / "rec")
    recording = record.open_recording(tmp_path / "rec", check_qemu=False)
    assert recording.end.icount == 1000 and recording.cmdline == "/hello"
    assert recording.console == b"hello\n" and recording.snapshots == []


def test_what_is_not_a_recording_is_refused_in_one_line(tmp_path: Path) -> None:
    assert "no such directory" in _refused(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    assert "not a recording" in _refused(tmp_path / "empty")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / record.MANIFEST).write_text("{not json")
    assert "not a recording" in _refused(tmp_path / "garbage")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / record.MANIFEST).write_text('{"format": "osvgdb-dump"}')
    assert "not a recording" in _refused(tmp_path / "other")


@pytest.mark.parametrize(
    "damage, said",
    [
        (lambda d, m: (d / record.EVENT_LOG).write_bytes(b"log" * 50), "replay.bin is truncated"),
        (lambda d, m: (d / record.KERNEL).write_bytes(b"\x7fELF KERNEL"), "not the file that was recorded"),
        (lambda d, m: (d / "app" / "hello").unlink(), "app/hello is missing"),
        (lambda d, m: (d / record.SNAPSHOT_IMAGE).unlink(), "snapshots.qcow2 is missing"),
        (lambda d, m: (d / record.MANIFEST).write_text(json.dumps({**m, "version": 99})), "format version 99"),
        (lambda d, m: (d / record.MANIFEST).write_text(json.dumps({**m, "complete": False})), "incomplete"),
        (lambda d, m: (d / record.MANIFEST).write_text(json.dumps({**m, "end": {}})), "lacks what a replay needs"),
    ],
    ids=["truncated", "changed", "missing", "no-snapshots", "newer", "incomplete", "no-end"],
)
def test_a_damaged_recording_is_refused_in_one_line(tmp_path: Path, damage, said: str) -> None:
    manifest = _fake_recording(tmp_path / "rec")
    damage(tmp_path / "rec", manifest)
    assert said in _refused(tmp_path / "rec")


def test_the_machine_template_names_each_runs_own_paths() -> None:
    paths = {"/tmp/osvgdb-x": "workdir", "/r,1": "recording", "/proc/9/fd/4": "ram"}
    argv = ["qemu", "-initrd", "/tmp/osvgdb-x/initrd.cpio", "-S", "-qmp", "unix:/tmp/osvgdb-x/q",
            "-chardev", "socket,id=gdb0,path=/tmp/osvgdb-x/gdb.sock,server=on,wait=off",
            "-gdb", "chardev:gdb0", "-object", "memory-backend-file,mem-path=/proc/9/fd/4",
            *record.qemu_arguments("replay", Path("/r,1"))]  # fmt: skip
    template = record.machine_template(argv, paths)
    assert template[:3] == ["qemu", "-initrd", "{workdir}/initrd.cpio"]
    assert "-S" not in template and "-qmp" not in template and "-gdb" not in template
    assert "memory-backend-file,mem-path={ram}" in template
    assert "shift=auto,rr={mode},rrfile={recording}/replay.bin,rrsnapshot=init" in template
    recorded = record.machine_template([*argv[:12], *record.qemu_arguments("record", Path("/r,1"))], paths)
    assert recorded == template


def test_snapshots_before_a_point_and_their_spacing() -> None:
    snapshots = [record.Snapshot("osvgdb-1", 100, 5), record.Snapshot("osvgdb-2", 300, 9)]
    assert record.nearest_snapshot(snapshots, 300).name == "osvgdb-1"
    assert record.nearest_snapshot(snapshots, 301).name == "osvgdb-2"
    assert record.nearest_snapshot(snapshots, 100) is None  # only init, at 0
    # 1M instructions in 2 s: 0.5 s of replay is 250k.
    assert record.next_step(1_000_000, 2.0, 0.5) == 250_000
    assert record.next_step(1_000_000, 0.0, 0.5) == 2_000_000
    assert record.next_step(10, 1.0, 0.5) == record.FIRST_SNAPSHOT_STEP // 5


def test_the_replayed_console_is_checked_and_printed_once() -> None:
    recorded = b"one\ntwo\nthree\n"
    out = io.BytesIO()
    console = ReplayConsole(recorded, out)
    console.start_at(4)  # the replay began at a snapshot taken after "one\n"
    console.write(b"two\nthree\n")
    console.settle(len(recorded))
    console.write(b"two\n")  # a reverse step replays it again
    assert out.getvalue() == recorded and console.diverged_at is None


def test_a_replayed_console_that_differs_says_where() -> None:
    console = ReplayConsole(b"hello world\n", io.BytesIO())
    console.write(b"hello there\n")
    console.settle(12)
    assert console.diverged_at == 6
    short = ReplayConsole(b"hello\n", io.BytesIO())
    short.write(b"hel")
    short.settle(None)
    assert short.diverged_at is None  # a kernel without the counter: nothing to compare the end with
