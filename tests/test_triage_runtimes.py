"""`osvgdb triage` on the crash corpus (kernel/apps: Go, Rust, C++ and libc's checks), in
real QEMU under real GDB, built by Debian's golang-go and rustc, g++, gcc and musl-gcc.

A few cases of each runtime at -smp 1, a couple at -smp 2 and as static-pie (the full
matrix, every case at -smp 1 and 2 and pie, is scripts/triage_matrix's): each gets its
outcome, kind, title and user frames, the Markdown says the app's exit status, and the
runtime's report and the guest's state agree. A Go deadlock and a Go busy hang are
named by the goroutines' own functions, from the console and from the runtime's tables;
`osvgdb inspect DUMP bt` unwinds the busy Go thread to main.main as GDB's `bt` does on
the same dump (GDB is the oracle)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
from guest import ROOT, osvgdb_command, osvgdb_inspect
from triage_cases import BY_NAME, CORPUS, variants

from osvgdb.model import names

SCHEMA = json.loads((ROOT / "osvgdb/triage/report.schema.json").read_text())
SMP1 = ["go-nilmap", "go-deadlock", "rust-index", "rust-unwrap", "cxx-outofrange", "c-doublefree", "c-smash",
        "musl-assert"]  # fmt: skip
SMP2_AND_PIE = ["go-nilderef@smp2", "rust-doublepanic@smp2", "cxx-badconfig@pie", "c-fortify@pie"]
ALL_VARIANTS = {v.name: v for c in CORPUS for v in variants(c)}


def triage(tmp_path: Path, *argv: str, name: str = "report") -> tuple[dict, subprocess.CompletedProcess]:
    report = tmp_path / f"{name}.json"
    done = subprocess.run(
        osvgdb_command("triage", "--json", str(report), "--markdown", str(tmp_path / f"{name}.md"), *argv),
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert report.exists(), f"no report:\n{done.stdout}\n{done.stderr}"
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    assert "Traceback" not in done.stderr, done.stderr
    return data, done


def check(data: dict, done: subprocess.CompletedProcess, case, tmp_path: Path, name: str = "report") -> None:
    assert data["outcome"] == case.outcome, data["title"]
    assert data["signature"].startswith(case.signature), data["signature"]
    assert case.title in data["title"], data["title"]
    assert done.returncode == data["exit_status"] and not data["partial"], data["steps"]
    assert not data["corrupted"]
    found = data["runtime_report"]
    assert found is not None and found["agrees"], found
    markdown = (tmp_path / f"{name}.md").read_text()
    status = data["app_exit_status"]
    assert status is not None and f"- **app**: exit status {status}" in markdown


@pytest.mark.parametrize("name", SMP1 + SMP2_AND_PIE)
def test_corpus_case(apps: None, kernel: None, tmp_path: Path, name: str) -> None:
    case = ALL_VARIANTS[name] if "@" in name else ALL_VARIANTS[f"{name}@smp1"]
    data, done = triage(tmp_path, "--no-dump", *case.argv())
    check(data, done, case, tmp_path)


def test_every_corpus_signature_differs(apps: None) -> None:
    """The expected signatures alone tell every program of the corpus apart (the matrix
    checks what runs give)."""
    prefixes = [c.signature for c in CORPUS]
    for a in prefixes:
        assert [b for b in prefixes if b.startswith(a) or a.startswith(b)] == [a], a


def test_go_deadlock_is_named_by_its_goroutines(apps: None, kernel: None, tmp_path: Path) -> None:
    """The runtime ended it (status 2), but it is a deadlock: both witnesses, the console's
    goroutine traces and the runtime's own tables read from the guest, name main.main on
    its channel receive and main.collect on the mutex's semaphore."""
    case = BY_NAME["go-deadlock"]
    store = tmp_path / "store"
    data, done = triage(tmp_path, "--out", str(store), *case.argv())
    check(data, done, case, tmp_path)
    offline, _ = triage(tmp_path, "--core", data["dump"]["path"], name="offline")  # from the dump
    assert (offline["signature"], offline["goroutines"]) == (data["signature"], data["goroutines"])
    assert data["app_exit_status"] == 2
    mine = {g["own_function"]: g for g in data["goroutines"] if not g["system"]}
    assert set(mine) == {"main.main", "main.collect"}
    assert (mine["main.main"]["wait_reason"], mine["main.collect"]["wait_reason"]) == ("chan receive", "semacquire")
    assert "the runtime's goroutine tables name the same goroutines" in data["runtime_report"]["notes"]
    assert all(g["frames"][-1]["function"].startswith("runtime.goexit") for g in data["goroutines"])
    shutil.rmtree(store)


def app_functions(frames: list[dict]) -> list[str]:
    """The app's functions of a backtrace, names normalised (osvgdb.model.names)."""
    return [names.normalise(f["function"]) for f in frames if f["module"] == "app" and f["function"]]


def _gdb_bt(dump: Path) -> list[str]:
    """GDB's own backtrace of the vCPU in the dump (osvgdb debug --core), its function
    names up to the first frame it cannot name."""
    done = subprocess.run(
        osvgdb_command("debug", "--core", str(dump), "--batch", "-ex", "bt"),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    last = max(i for i, line in enumerate(lines) if line.startswith("#0 "))  # after the app's symbols load
    functions = []
    for line in lines[last:]:
        match = re.match(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(", line)
        if match:
            if match.group(1) == "??":
                break
            functions.append(match.group(1))
    assert functions, done.stdout + done.stderr
    return functions


def test_go_busy_hang_and_its_thread_unwound_as_gdb_does(apps: None, kernel: None, tmp_path: Path) -> None:
    """A Go busy hang is named by the spinning goroutine's own function; its goroutines
    come from the runtime's tables; and the busy thread's backtrace, in the report and in
    `osvgdb inspect DUMP bt`, goes to main.main and runtime.goexit with GDB's frames."""
    case = BY_NAME["go-busy"]
    store = tmp_path / "store"
    data, done = triage(tmp_path, "--out", str(store), *case.argv())
    try:
        assert data["outcome"] == "hang-busy" and data["signature"].startswith(case.signature), data["signature"]
        states = {g["own_function"]: g["wait_reason"] or g["status"] for g in data["goroutines"] if not g["system"]}
        assert states == {"main.waitReady": "running", "main.producer": "chan receive"}
        dump = Path(data["dump"]["path"])
        shown = osvgdb_inspect(dump, "bt", "--json")
        assert shown.returncode == 0, shown.stderr
        traces = json.loads(shown.stdout)["backtraces"]
        # The spinning thread, on the vCPU or not: the stop may catch another of the
        # program's threads there (sysmon waking, with a loaded host), the spinner
        # preempted and ready, its backtrace then through the interrupt that preempted it.
        (busy,) = [t for t in traces if any(f["function"] == "main.waitReady" for f in t["frames"])]
        ours = app_functions(busy["frames"])
        assert ours[ours.index("main.waitReady") :] == ["main.waitReady", "main.main", "runtime.main", "runtime.goexit"]
        report_thread = next(t for t in data["threads"] if t["tid"] == busy["tid"])
        assert app_functions(report_thread["backtrace"]["frames"]) == ours
        # GDB's bt, of the thread on the vCPU (GDB sees vCPUs only), as ours of that thread.
        (on_cpu,) = [t for t in traces if t["vcpu"] == 1]
        gdb = [names.normalise(f) for f in _gdb_bt(dump)]
        assert app_functions(on_cpu["frames"]) == gdb[-len(app_functions(on_cpu["frames"])) :], (on_cpu, gdb)
        offline = osvgdb_inspect(dump, "goroutines", "--json")
        assert offline.returncode == 0, offline.stderr
        assert {g["goid"] for g in json.loads(offline.stdout)["goroutines"]} == {g["goid"] for g in data["goroutines"]}
    finally:
        shutil.rmtree(store, ignore_errors=True)


def test_a_program_that_only_prints_a_go_panic_is_not_one(apps: None, kernel: None, tmp_path: Path) -> None:
    """busybox (Debian's, a C program) prints Go's words on stderr, where Go's runtime
    prints them, and exits with Go's status 2: the report is kept, marked as contradicted
    by the state (not a Go program), and the outcome is the state's own."""
    text = "panic: assignment to entry in nil map\n\ngoroutine 1 [running]:\nmain.main()\n\tx.go:1 +0x1\n"
    script = f"printf '{text}' >&2; exit 2"
    data, _ = triage(tmp_path, "--no-dump", "--accel", "tcg", "/bin/busybox", "sh", "-c", script)
    assert data["outcome"] == "exit-status" and data["kind"] == "status-2", data["title"]
    found = data["runtime_report"]
    assert found["runtime"] == "go" and not found["agrees"]
    assert "not a Go program" in found["disagreement"]
