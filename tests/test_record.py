"""Record and replay: `osvgdb run --record`, `osvgdb replay`, osv-last-write and reverse
execution, on the real kernel under QEMU's record/replay and a real GDB.

The oracles: the recorded run's own outputs and exit status (osvgdb run's stdout, stderr
and --log; the replay must give them back byte for byte), the program's source (which function clears the pointer), GDB's
own forward execution and its software watchpoint (GDB single-steps and compares the
register after each instruction), and the processes left on the machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from guest import APPS, ROOT, Run, _text, osvgdb_command

from osvgdb.record import open_recording
from processes import alive, children, cmdline

RUN_TIMEOUT = 120


def osvgdb(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> Run:
    result = subprocess.run(
        osvgdb_command(*args),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return Run(result.returncode, _text(result.stdout), _text(result.stderr), "")


def record(directory: Path, *args: str) -> Run:
    """`osvgdb run --record DIRECTORY ARGS`; the kernel's console in DIRECTORY.log (--log)."""
    log = directory.parent / f"{directory.name}.log"
    run = osvgdb("run", "--timeout", str(RUN_TIMEOUT), "--accel", "tcg", "--log", str(log),
                 "--record", str(directory), *args)  # fmt: skip
    run.console = _text(log.read_bytes()) if log.exists() else ""
    return run


def replay(directory: Path, *commands: str, options: tuple[str, ...] = ()) -> Run:
    argv = ["replay", str(directory), "--batch", *options]
    for command in commands:
        argv += ["-ex", command]
    return osvgdb(*argv)


def mentioning(text: str) -> dict[int, str]:
    """Every process whose command line has TEXT in it (a recording's path is in its QEMU's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and text in cmdline(int(entry.name)) and int(entry.name) != os.getpid():
            found[int(entry.name)] = cmdline(int(entry.name))
    return found


def icounts(stdout: str) -> list[int]:
    """Each `osv-when`'s instruction count, in order (osv-seek's own line is not one)."""
    return [int(m.group(1)) for m in re.finditer(r"^instruction (\d+) of \d+.*snapshots in", stdout, re.MULTILINE)]


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


@pytest.fixture(scope="module")
def lastwrite(kernel: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    """lastwrite-glibc recorded: the pointer cleared in forget_config, read in read_retries.
    Its stdout a terminal (--tty), so that stdio writes each line as it comes."""
    directory = tmp_path_factory.mktemp("lastwrite") / "recording"
    return directory, record(directory, "--tty", str(APPS / "lastwrite-glibc"))


@pytest.mark.parametrize("exe", ["hello-glibc", "threads-glibc", "nilmap-go"])
def test_a_replay_gives_back_the_outputs_and_status(kernel: None, tmp_path: Path, exe: str) -> None:
    """The recorded run's outputs, each byte for byte as osvgdb run gave them (the app's
    stdout and stderr, the kernel's console in --log), then GDB at the end; the same exit
    status (nilmap-go: Go's panic trace on stderr, and 2)."""
    directory = tmp_path / "recording"
    run = record(directory, str(APPS / exe))
    assert f"osvgdb: recorded in {directory}" in run.stderr, run
    assert (directory / "stdout.txt").read_bytes().decode() == run.stdout
    assert run.stderr.startswith((directory / "stderr.txt").read_bytes().decode()), run
    assert _text((directory / "console.txt").read_bytes()) == run.console
    if exe == "nilmap-go":
        assert "panic: assignment to entry in nil map" in (directory / "stderr.txt").read_text()
    again = replay(directory, options=("--snapshot-interval", "0"))
    assert again.status == run.status, again
    # The three outputs once, as osvgdb debug shows them: in the order they came.
    shown = open_recording(directory).console().decode()
    assert run.stdout in shown and again.stdout.startswith(shown), again
    greeting = again.stdout[len(shown) :].splitlines()[0]
    assert greeting.startswith(f"osvgdb: replaying {directory}: at its end"), again
    assert "diverge" not in again.stderr and "differs" not in again.stderr, again
    assert not mentioning(str(directory))


def test_last_write_stops_in_the_clearing_function(lastwrite: tuple[Path, Run]) -> None:
    directory, run = lastwrite
    assert run.status == 139 and "segmentation fault at 0x8" in run.stderr, run
    found = replay(directory, "osv-last-write config", "bt", "p/x &defaults")
    assert found.status == 139, found
    lines = found.stdout.splitlines()
    where = next(i for i, line in enumerate(lines) if line.startswith("osv-last-write: the last change of config"))
    assert "in forget_config () at" in lines[where + 1] and "lastwrite.c:" in lines[where + 1], found
    defaults = re.search(r"^\$1 = (0x[0-9a-f]+)$", found.stdout, re.MULTILINE).group(1)
    assert lines[where + 2].strip().startswith(f"{defaults} -> 0x0; tid 1"), found
    assert "in app code" in lines[where + 2], found
    frames = [line for line in lines if re.match(r"#\d+ ", line)]
    assert frames[-2].startswith("#0  forget_config ()"), found
    assert " in main () at " in frames[-1], found


def test_reverse_execution_reaches_forward_executions_instruction_counts(lastwrite: tuple[Path, Run]) -> None:
    """reverse-stepi from the crash lands where forward stepping does; reverse-continue to an
    osv-break on write stops at the instruction counts continuing forward stops at."""
    directory, _ = lastwrite
    end = manifest(directory)["end"]["icount"]
    found = replay(
        directory,
        "reverse-stepi", "osv-when", "p/x $pc",
        f"osv-seek {end - 2}", "stepi", "osv-when", "p/x $pc",
        f"osv-seek {end}",
        "osv-break syscall write", "reverse-continue", "osv-when", "reverse-continue", "osv-when",
        "osv-seek start", "continue", "osv-when", "continue", "osv-when", "continue", "osv-when",
    )  # fmt: skip
    counts = icounts(found.stdout)
    pcs = re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", found.stdout, re.MULTILINE)
    assert counts[0] == counts[1] == end - 1 and pcs[0] == pcs[1], found
    backward, forward = counts[2:4], counts[4:6]
    assert backward[0] > backward[1] and forward == backward[::-1], found
    assert counts[6] == end and "osvgdb: the end of the recording" in found.stdout, found
    assert found.stdout.count('write(1, "lastwrite: ') == 4, found


def test_osv_reverse_continue_stops_where_reverse_continue_does(lastwrite: tuple[Path, Run]) -> None:
    """osvgdb's own backward search (forward replays with the breakpoints on, stretch by
    stretch) against QEMU's reverse-continue, on the same breakpoints from the same points:
    an osv-break near the end, twice, and a plain breakpoint on main far back; before
    main's hit there is none (the start of the recording); no breakpoint and a watchpoint
    are one line each."""
    directory, _ = lastwrite
    found = replay(
        directory,
        "osv-break syscall write", "reverse-continue", "osv-when", "reverse-continue", "osv-when",
        "osv-seek end", "osv-reverse-continue", "osv-when", "osv-reverse-continue", "osv-when",
        "delete", "break main", "osv-seek end", "reverse-continue", "osv-when", "p/x $pc",
        "osv-seek end", "osv-reverse-continue", "osv-when", "p/x $pc",
        "osv-reverse-continue", "osv-when",
    )  # fmt: skip
    counts = icounts(found.stdout)
    assert len(counts) == 7, found
    assert counts[2:4] == counts[0:2] and counts[0] > counts[1], found  # syscall write, twice
    assert counts[5] == counts[4], found  # main, from the end
    pcs = re.findall(r"^\$\d+ = (0x[0-9a-f]+)$", found.stdout, re.MULTILINE)
    assert pcs[0] == pcs[1], found
    assert counts[6] == 0, found
    said = [line for line in found.stdout.splitlines() if line.startswith("osv-reverse-continue: ")]
    assert re.fullmatch(rf"osv-reverse-continue: breakpoint 2 at instruction {counts[5]} \(from \d+; \d+ stretch(es)? replayed\)", said[2]), said
    assert said[3].startswith(f"osv-reverse-continue: no breakpoint stop between the start of the recording and instruction {counts[5]}"), said
    refused = replay(directory, "osv-reverse-continue", "watch config", "osv-reverse-continue", "osv-when")
    errors = [line for line in refused.stderr.splitlines() if line.startswith("osv-reverse-continue: ")]
    assert errors == [
        "osv-reverse-continue: no breakpoint is on (break, osv-break): nothing to go back to",
        "osv-reverse-continue: watchpoint 1 is on: osv-last-write finds the last change of a location "
        "(disable the watchpoint for this)",
    ], refused
    assert icounts(refused.stdout) == [manifest(directory)["end"]["icount"]], refused  # not moved
    assert "Traceback" not in refused.stdout + refused.stderr


def test_osv_reverse_continue_finds_a_hit_on_a_snapshots_instruction(lastwrite: tuple[Path, Run]) -> None:
    """A breakpoint on the instruction a snapshot was taken at, gone back to from the next
    instruction: the hit is that snapshot's instruction, where forward execution stops
    (QEMU's reverse-continue misses such a hit: its forward replay from the snapshot
    steps over a breakpoint at its first instruction, and it goes on to an earlier hit)."""
    directory, _ = lastwrite
    replay(directory, "osv-when")  # the periodic snapshots are taken, if not yet
    snapshots = json.loads((directory / "snapshots.json").read_text())["snapshots"]
    at = snapshots[len(snapshots) // 2]["icount"]
    there = replay(directory, f"osv-seek {at}", "p/x $pc")
    pc = re.search(r"^\$1 = (0x[0-9a-f]+)$", there.stdout, re.MULTILINE).group(1)
    found = replay(
        directory, f"break *{pc}",
        f"osv-seek {at + 1}", "osv-reverse-continue", "osv-when", "p/x $pc",
        f"osv-seek {at - 1}", "continue", "osv-when",
    )  # fmt: skip
    back, forward = icounts(found.stdout)
    assert back == at and f"$1 = {pc}" in found.stdout, found
    assert forward == at, found  # where forward execution stops at it


def test_broken_fs_last_fs_write_is_the_entry_whose_exit_failed(kernel: None, tmp_path: Path) -> None:
    """The broken-fs kernel's trap exits forget app_tcb; triage's watchdog stops at the exit.
    osv-last-write $fs_base there names the entry that switched FS to the kernel TCB and its
    crossing; GDB's own single-stepping watch of $fs_base from just before it to the end
    finds that change and no other. The report says how to open its recording, which ends
    where the report's dump was taken."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "kernel"), "broken-fs"], check=True)
    out = tmp_path / "store"
    triaged = osvgdb("triage", "--record", "--accel", "tcg", "--timeout", "60", "--out", str(out), "--json",
                     str(tmp_path / "report.json"), "--kernel", str(ROOT / "build" / "kernel-broken-fs.elf"),
                     str(APPS / "spin-glibc"), "2")  # fmt: skip
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["signature"].startswith("osvsig/3:kernel-panic:fs-base-return-fs:"), triaged
    recording = report["recording"]
    assert recording["complete"] and recording["replay"] == f"osvgdb replay {recording['path']}", report
    assert f"`{recording['replay']}`" in (Path(report["stored"]["directory"]) / "report.md").read_text()
    directory = Path(recording["path"])
    assert manifest(directory)["end"]["icount"] == recording["end_icount"]

    found = replay(directory, "osv-last-write --json $fs_base", "osv-tcb --json")
    documents = _json_documents(found.stdout)
    write = documents[0]["writes"][0]
    crossing = write["in"]
    assert crossing.startswith("<interrupt ") or crossing.startswith("<page fault"), found
    assert write["where"].startswith("trap_common ()"), found
    tcb = documents[1]
    main = next(t for t in tcb["threads"] if t["tid"] == 1)
    assert write["old"] == main["app_tcb"] and write["new"] == tcb["cpus"][0]["kernel_tcb"], found
    # At the end (the dump's stop): the watchdog in that crossing's exit, FS still the kernel's.
    at_end = replay(directory, "osv-bt --tid 1 --json")
    frames = [f["function"] for f in _json_documents(at_end.stdout)[0]["backtraces"][0]["frames"]]
    assert frames[:2] == ["fscheck_violation", "fscheck_trap_return"], at_end
    # The same crossing: on its exit path the unwinder names a page fault by its vector.
    same = {crossing, "<exception 14 page-fault>"} if crossing.startswith("<page fault") else {crossing}
    assert frames[2] in same, at_end
    dump = report["dump"]["path"]
    offline = osvgdb("inspect", dump, "bt", "--tid", "1", "--json")
    dumped = [f["function"] for f in json.loads(offline.stdout)["backtraces"][0]["frames"]]
    assert dumped == frames, (offline, at_end)

    position = write["icount"]
    traced = replay(directory, f"osv-seek {position - 20}", "watch $fs_base", "continue", "osv-when",
                    "continue", "osv-when")  # fmt: skip
    stops = icounts(traced.stdout)
    assert stops == [position + 1, manifest(directory)["end"]["icount"]], traced
    assert traced.stdout.count("Old value = ") == 1, traced
    assert "osvgdb: the end of the recording" in traced.stdout, traced


def _json_documents(stdout: str) -> list[dict]:
    """The JSON objects --json commands printed (each starts with a line "{"), in order."""
    documents, decoder, text = [], json.JSONDecoder(), stdout
    position = 0
    while (start := text.find("\n{", position)) >= 0:
        document, position = decoder.raw_decode(text, start + 1)
        documents.append(document)
    return documents


def test_what_qemu_cannot_record_is_refused_in_one_line(kernel: None, tmp_path: Path) -> None:
    hello = str(APPS / "hello-glibc")
    for options, said in (
        (("--smp", "2"), "QEMU records only one vCPU"),
        (("--accel", "kvm"), "QEMU records only under TCG"),
        (("--accel", "tcg", "--export", f"/tmp:{tmp_path}/out"), "no --export"),
    ):
        run = osvgdb("run", "--record", str(tmp_path / "r"), *options, hello)
        assert run.status == 2 and run.stdout == "", run
        assert run.stderr.count("\n") == 1 and said in run.stderr, run
        assert not (tmp_path / "r").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    run = osvgdb("run", "--accel", "tcg", "--record", str(tmp_path / "full"), hello)
    assert run.status == 2 and "exists and is not an empty directory" in run.stderr, run
    run = osvgdb("triage", "--record", "--smp", "2", "--accel", "tcg", hello)
    assert run.status == 2 and "QEMU records only one vCPU" in run.stderr, run


def test_a_bad_recording_is_refused_in_one_line(lastwrite: tuple[Path, Run], tmp_path: Path) -> None:
    directory, _ = lastwrite
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("hello\n")
    cases = {"empty": "not a recording", "file": "no such directory"}
    for name, damage, said in (
        ("truncated", lambda d: os.truncate(d / "replay.bin", 1000), "replay.bin is truncated"),
        ("other-qemu", lambda d: (d / "manifest.json").write_text(json.dumps({**manifest(d), "qemu": "QEMU emulator version 9.9"})), "QEMU replays only its own event logs"),
        ("other-kernel", lambda d: shutil.copyfile(ROOT / "build" / "kernel-broken-fs.elf", d / "kernel.elf"), "kernel.elf is"),
        ("other-machine", lambda d: (d / "manifest.json").write_text(json.dumps({**manifest(d), "machine": [*manifest(d)["machine"], "-device", "pvpanic"]})), "recorded with another QEMU command line"),
    ):  # fmt: skip
        shutil.copytree(directory, tmp_path / name, ignore=shutil.ignore_patterns("snapshots.*"))
        shutil.copyfile(directory / "snapshots.qcow2", tmp_path / name / "snapshots.qcow2")
        damage(tmp_path / name)
        cases[name] = said
    for name, said in cases.items():
        run = replay(tmp_path / name, "bt")
        assert run.status == 2, (name, run)
        assert run.stderr.count("\n") == 1 and said in run.stderr, (name, run)
        assert "Traceback" not in run.stderr and not mentioning(str(tmp_path / name)), (name, run)


def test_a_hung_replay_is_killed(lastwrite: tuple[Path, Run]) -> None:
    """QEMU stopped (SIGSTOP: it answers nothing, as when its replay deadlocks) while GDB
    waits on it: the watchdog kills it, and says so in one line, status 125."""
    directory, _ = lastwrite
    process = subprocess.Popen(
        osvgdb_command("replay", str(directory), "--batch", "-ex", "python import time; time.sleep(3)",
                       "-ex", "reverse-stepi"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "OSVGDB_REPLAY_HANG_TIMEOUT": "2"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        seen: dict[int, str] = {}
        while time.monotonic() < deadline and process.poll() is None:
            seen = {c: cmdline(c) for c in children(process.pid)}
            if any(c.startswith("gdb ") for c in seen.values()):
                break
            time.sleep(0.1)
        qemu = [pid for pid, line in seen.items() if "qemu-system" in line and str(directory) in line]
        assert qemu, seen
        os.kill(qemu[0], signal.SIGSTOP)
        _, stderr = process.communicate(timeout=120)
        stderr = stderr.decode()
        assert process.returncode == 125, stderr
        assert "QEMU stopped answering for 2 s while it replayed (hung); killed" in stderr, stderr
        assert "Traceback" not in stderr
        assert not any(alive(pid) for pid in seen), seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
