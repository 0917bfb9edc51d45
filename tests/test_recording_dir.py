"""The recording directory and the replay's outputs, without QEMU: what a recording must
hold for a replay to open it, how the replayed outputs are checked, and how the recorded
ones are shown as one console as of any point.
(A recording made by QEMU is in test_record.py.)"""

from __future__ import annotations

import hashlib
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
                record.INITRD: b"070701", "console.txt": b"Booted\nbye\n", "stdout.txt": b"hello\n",
                "stderr.txt": b"oops\n", record.DEBUGCON: b"osv-exit: status=0\n",
                "app/hello": b"\x7fELF app"}  # fmt: skip
    for name, data in contents.items():
        (directory / name).write_bytes(data)
    (directory / record.SNAPSHOT_IMAGE).write_bytes(b"QFI\xfb")
    manifest = {
        "format": record.FORMAT, "version": record.VERSION, "complete": True, "qemu": "QEMU 7.2",
        "cmdline": "/hello", "machine": ["qemu"], "options": {}, "kernel": {"file": record.KERNEL},
        "app": {"file": "app/hello"}, "end": {"icount": 1000, "outcome": "exited", "exit_status": 0},
        "output_order": [["console", 7], ["stdout", 3], ["stderr", 5], ["stdout", 3], ["console", 4]],
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
    assert recording.stream("stdout") == b"hello\n" and recording.snapshots == []
    # The three outputs as one console, in the order they came, each cut where the guest was.
    assert recording.console() == b"Booted\nheloops\nlo\nbye\n"
    assert recording.console({"console": 7, "stdout": 4, "stderr": 0}) == b"Booted\nhell"
    assert recording.console({"console": 0, "stdout": 0, "stderr": 0}) == b""


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
            "-chardev", "file,id=stdout,path=/dev/fd/7", "-chardev", "socket,id=terminal,fd=12",
            "-chardev", "socket,id=gdb0,path=/tmp/osvgdb-x/gdb.sock,server=on,wait=off",
            "-gdb", "chardev:gdb0", "-object", "memory-backend-file,mem-path=/proc/9/fd/4",
            *record.qemu_arguments("replay", Path("/r,1"))]  # fmt: skip
    template = record.machine_template(argv, paths)
    assert template[:3] == ["qemu", "-initrd", "{workdir}/initrd.cpio"]
    assert "-S" not in template and "-qmp" not in template and "-gdb" not in template
    assert "memory-backend-file,mem-path={ram}" in template
    # The channels' descriptor numbers are each run's own (not /proc/9/fd/4: a path).
    assert "file,id=stdout,path=/dev/fd/{fd}" in template and "socket,id=terminal,fd={fd}" in template
    assert "shift=auto,rr={mode},rrfile={recording}/replay.bin,rrsnapshot=init" in template
    recorded = record.machine_template([*argv[:16], *record.qemu_arguments("record", Path("/r,1"))], paths)
    assert recorded == template


def test_snapshots_before_a_point_and_their_spacing() -> None:
    snapshots = [record.Snapshot("osvgdb-1", 100, {"console": 5}), record.Snapshot("osvgdb-2", 300, {"console": 9})]
    assert record.nearest_snapshot(snapshots, 300).name == "osvgdb-1"
    assert record.nearest_snapshot(snapshots, 301).name == "osvgdb-2"
    assert record.nearest_snapshot(snapshots, 100) is None  # only init, at 0
    # 1M instructions in 2 s: 0.5 s of replay is 250k.
    assert record.next_step(1_000_000, 2.0, 0.5) == 250_000
    assert record.next_step(1_000_000, 0.0, 0.5) == 2_000_000
    assert record.next_step(10, 1.0, 0.5) == record.FIRST_SNAPSHOT_STEP // 5


def test_the_replayed_console_is_checked_from_where_the_replay_began() -> None:
    recorded = b"one\ntwo\nthree\n"
    console = ReplayConsole(recorded)
    console.start_at(4)  # the replay began at a snapshot taken after "one\n"
    console.write(b"two\nthree\n")
    console.settle(len(recorded), 0.0)
    console.write(b"TWO\n")  # a reverse step replays it again: no longer compared
    assert console.diverged_at is None


def test_a_replayed_console_that_differs_says_where() -> None:
    console = ReplayConsole(b"hello world\n")
    console.write(b"hello there\n")
    console.settle(12, 0.0)
    assert console.diverged_at == 6
    short = ReplayConsole(b"hello\n")
    short.write(b"hel")
    short.settle(None, 0.0)
    assert short.diverged_at is None  # a kernel without the counter: nothing to compare the end with
