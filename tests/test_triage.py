"""`osvgdb triage` on the real kernel in real QEMU under real GDB: outcomes, signatures,
backtraces, the formats CI reads, repeat, the store, offline triage, and cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from guest import APPS, ROOT, app, osvgdb_command, osvgdb_inspect
from processes import alive, children, cmdline
from triage_cases import BY_NAME, CASES

from osvgdb.run import QEMU_UP_TIME

SCHEMA = json.loads((ROOT / "osvgdb/triage/report.schema.json").read_text())
RUNS_PER_CASE = 2
MAX_DUMP = 16 << 20  # a one-thread crash's dump, apparent size


@pytest.fixture(scope="module")
def built(kernel: None) -> None:
    """The kernel variants the matrix boots, besides build/kernel.elf."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "kernel"), "variants"], check=True, capture_output=True)


def triage(tmp_path: Path, *argv: str, name: str = "report", env: dict | None = None) -> tuple[dict, subprocess.CompletedProcess]:
    """Run `osvgdb triage --json FILE ARGV...`; its JSON (validated) and the process."""
    report = tmp_path / f"{name}.json"
    done = subprocess.run(
        osvgdb_command("triage", "--json", str(report), *argv),
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert report.exists(), f"no report:\n{done.stdout}\n{done.stderr}"
    data = json.loads(report.read_text())
    jsonschema.validate(data, SCHEMA)
    assert "Traceback" not in done.stderr, done.stderr
    return data, done


def thread(data: dict, tid: int) -> dict:
    return next(t for t in data["threads"] if t["tid"] == tid)


def functions(thread_data: dict) -> list[str | None]:
    return [f["function"] for f in thread_data["backtrace"]["frames"]]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matrix_case(built: None, tmp_path: Path, case) -> None:
    """Each case gets its outcome and the same signature in every run (scripts/triage_matrix
    runs each 20 times); the exit status is the outcome's."""
    signatures = set()
    for run in range(RUNS_PER_CASE):
        data, done = triage(tmp_path, "--no-dump", *case.argv(), name=f"run{run}")
        assert data["outcome"] == case.outcome, data["title"]
        # A string, not a tuple: pytest shortens a tuple's repr, and the states are the evidence.
        assert data["signature"].startswith(case.signature), "\n".join([data["signature"], *_threads(data)])
        assert done.returncode == data["exit_status"]
        assert not data["partial"], data["steps"]
        signatures.add(data["signature"])
    assert len(signatures) == 1, signatures


def _threads(data: dict) -> list[str]:
    """Each thread's state and innermost frames: what a signature that differs came from."""
    return [
        f"{t['tid']} {t['state']} {(t.get('wait') or {}).get('kind')}: "
        + " < ".join(str(f["function"]) for f in (t.get("backtrace") or {}).get("frames", [])[:8])
        for t in data.get("threads", [])
    ]


def test_signatures_differ_between_cases(built: None, tmp_path: Path) -> None:
    """The expected signature prefixes alone tell every case apart (the matrix script
    checks the full signatures)."""
    prefixes = [c.signature for c in CASES]
    for a in prefixes:
        assert [b for b in prefixes if b.startswith(a) or a.startswith(b)] == [a], a


def test_crash_in_a_secondary_thread(kernel: None, tmp_path: Path) -> None:
    """The guilty thread's backtrace goes from the kernel through the page-fault crossing
    into the app's own functions, with their source lines; the fault is decoded."""
    data, done = triage(tmp_path, "--accel", "tcg", "--smp", "2", str(APPS / "nullthread-glibc"))
    assert data["outcome"] == "app-fault" and done.returncode == 11
    fault = data["fault"]
    assert (fault["signal_name"], fault["vector_name"], fault["cr2"]) == ("SIGSEGV", "page-fault", 0)
    assert fault["error_code"] & 2, "a write"
    assert fault["location"]["function"] == "store_result"
    assert fault["instruction"]["text"].startswith("mov")
    guilty = thread(data, data["guilty_tid"])
    assert guilty["name"] != "main" and guilty["on_vcpu"] is not None
    names = functions(guilty)
    assert names.index("trap_handler") < names.index("store_result") < names.index("worker")
    crossing = [f for f in guilty["backtrace"]["frames"] if f["kind"] == "crossing"]
    assert crossing and "page fault" in crossing[0]["function"]
    store = next(f for f in guilty["backtrace"]["frames"] if f["function"] == "store_result")
    assert store["file"].endswith("nullthread.c") and store["line"] > 0
    # Every vCPU has its mode and FS verdict; the dump is saved, small, and reopens.
    assert [v["verdict"] for v in data["vcpus"]] == ["consistent", "consistent"]
    dump = Path(data["dump"]["path"])
    try:
        assert data["dump"]["level"] == "used" and set(data["dump"]["left_out"]) == {"initrd"}
        assert data["dump"]["size"] == dump.stat().st_size <= MAX_DUMP
        shown = osvgdb_inspect(dump, "tcb", "--json")
        assert shown.returncode == 0, shown.stderr
        assert {t["tid"] for t in json.loads(shown.stdout)["threads"]} == {t["tid"] for t in data["threads"]}
        offline, _ = triage(tmp_path, "--core", str(dump), name="offline")
        assert offline["signature"] == data["signature"]
        assert offline["outcome"] == data["outcome"]
    finally:
        for item in dump.parent.iterdir():
            item.unlink()
        dump.parent.rmdir()


def test_the_console_tail_keeps_both_streams_marked(kernel: None, tmp_path: Path) -> None:
    """The kernel's lines as they are, the app's stdout `1| `, its stderr `2| `: glibc's
    assertion message is on stderr, and the title reads it without the mark."""
    data, _ = triage(tmp_path, "--no-dump", "--accel", "tcg", str(app("assert", "glibc")))
    tail = data["console_tail"]
    assert any(line.startswith("OSv-style osvgdb kernel") for line in tail), tail
    assert "1| assert: checking a negative balance" in tail, tail
    (message,) = [line for line in tail if "Assertion" in line]
    assert message.startswith("2| assert-glibc: ") and message.endswith("failed."), tail
    # Read from stderr without its mark, as glibc's report (issue 20's runtime reports).
    assert data["title"] == "app-abort: SIGABRT-assert in check_balance: Assertion `balance >= 0' failed"


def test_signature_is_the_same_across_smp_and_moved_addresses(kernel: None, tmp_path: Path) -> None:
    """-smp 1 and 4, and the static-pie build where every address is another."""
    seen = set()
    for smp, variant in (("1", "glibc"), ("4", "glibc"), ("2", "pie")):
        data, _ = triage(tmp_path, "--no-dump", "--accel", "tcg", "--smp", smp, str(APPS / f"nullthread-{variant}"))
        seen.add(data["signature"])
    assert seen == {"osvsig/3:app-fault:SIGSEGV-null-write:store_result | worker"}


@pytest.mark.parametrize("protocol", ["compare", "lazy"])
def test_signature_and_verdicts_under_each_fs_protocol(kernel: None, tmp_path: Path, protocol: str) -> None:
    """The report's verdicts follow the kernel's --fs-protocol, and the signature does not
    depend on it."""
    data, _ = triage(tmp_path, "--no-dump", "--accel", "tcg", "--smp", "2", "--fs-protocol", protocol,
                     str(APPS / "nullthread-glibc"))  # fmt: skip
    assert data["signature"] == "osvsig/3:app-fault:SIGSEGV-null-write:store_result | worker"
    started = [v for v in data["vcpus"] if v["cpu"] is not None]
    assert started and all(v["fs_protocol"] == protocol for v in started), started
    assert all(v["verdict"] == "consistent" for v in started), started


def test_deadlock_threads_are_unwound_from_their_saved_context(kernel: None, tmp_path: Path) -> None:
    """Neither deadlocked thread is on a CPU: their backtraces come from what
    switch_context saved, through the futex crossing into pthread_mutex_lock and
    their own functions; the report says which thread holds each lock, and that no wake-up
    was lost (each word still holds what its waiter slept on)."""
    data, _ = triage(tmp_path, "--no-dump", *BY_NAME["deadlock"].argv())
    assert data["outcome"] == "hang-deadlock"
    workers = [t for t in data["threads"] if t["app"] and t["name"] != "main"]
    assert len(workers) == 2
    own = set()
    for worker in workers:
        assert worker["state"] == "blocked" and worker["on_vcpu"] is None
        assert worker["backtrace"]["source"] == "kernel_rsp"
        names = functions(worker)
        assert "switch_context" in names[:3]
        crossing = next(i for i, f in enumerate(worker["backtrace"]["frames"]) if f["kind"] == "crossing")
        assert "futex" in names[crossing]
        lock = next(i for i, n in enumerate(names) if n and "pthread_mutex_lock" in n)
        assert crossing < lock
        own.add(next(n for n in names[lock + 1 :] if n and n.startswith("transfer_")))
        assert worker["wait"]["kind"] == "futex"
        assert worker["wait"]["holder_tid"] in {w["tid"] for w in workers} - {worker["tid"]}
        # A correct kernel's hang: the word still holds what it slept on, no wake was lost.
        assert worker["wait"]["expected"] == worker["wait"]["value"] == 2, worker["wait"]
        assert not worker["wait"]["stale"] and "lost_wake" not in worker["wait"]
        assert worker["syscalls"]["in_flight"]["name"] == "futex"
    assert own == {"transfer_a_to_b", "transfer_b_to_a"}
    # No vCPU runs an app thread: each idles (or is in the timer's interrupt on its idle
    # thread when the sample caught it there).
    app_tids = {t["tid"] for t in data["threads"] if t["app"]}
    vcpus = [(v["mode"], v["current_tid"], (v["location"] or {}).get("function")) for v in data["vcpus"]]
    assert all(mode != "app" and tid not in app_tids for mode, tid, _ in vcpus), vcpus


def test_junit_and_markdown(kernel: None, tmp_path: Path) -> None:
    data, _ = triage(
        tmp_path, "--no-dump", "--junit", str(tmp_path / "junit.xml"), "--markdown", str(tmp_path / "report.md"),
        *BY_NAME["assert"].argv(),
    )  # fmt: skip
    suite = ET.parse(tmp_path / "junit.xml").getroot()
    assert suite.tag == "testsuites" and suite.get("failures") == "1" and suite.get("errors") == "0"
    (case,) = suite.iter("testcase")
    assert case.get("classname") == "osvgdb.triage.assert-glibc" and float(case.get("time")) > 0
    failure = case.find("failure")
    assert failure.get("message") == data["title"] and failure.get("type") == "app-abort"
    assert "check_balance" in data["title"] and "Assertion" in data["title"]
    assert failure.text.startswith("# osvgdb triage: ") and data["signature"] in failure.text
    assert "Assertion" in case.find("system-out").text
    markdown = (tmp_path / "report.md").read_text()
    assert markdown == failure.text
    for heading in ("## Fault", "## vCPUs", "## auxv", "## Console (tail)"):
        assert heading in markdown
    assert "check_balance" in markdown and "main" in markdown


def test_infrastructure_is_a_junit_error(kernel: None, tmp_path: Path) -> None:
    """No GDB on PATH: the report says which step failed; JUnit calls it an <error>."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "sh", "qemu-system-x86_64", "objdump"):
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    env = {**os.environ, "PATH": str(bin_dir)}
    data, done = triage(tmp_path, "--junit", str(tmp_path / "j.xml"), "--accel", "tcg", str(APPS / "hello-glibc"), env=env)
    assert data["outcome"] == "infrastructure" and done.returncode == 2
    assert data["partial"] and [s["step"] for s in data["steps"] if not s["ok"]] == ["attach"]
    case = next(ET.parse(tmp_path / "j.xml").getroot().iter("testcase"))
    assert case.find("error") is not None and case.find("failure") is None


def test_bad_arguments_are_infrastructure(kernel: None, tmp_path: Path) -> None:
    data, done = triage(tmp_path, "--junit", str(tmp_path / "j.xml"), str(tmp_path / "missing"))
    assert data["outcome"] == "infrastructure" and done.returncode == 2
    assert done.stderr.count("\n") == 1 and "missing: no such file" in done.stderr


def test_repeat_reports_a_flaky_crash(kernel: None, tmp_path: Path) -> None:
    """The race crashes in some runs only: --repeat 5 gives a rate strictly between 0
    and 1 and says the signatures disagree. (Each run is a coin toss: three tries of 5.)"""
    for _ in range(3):
        data, done = triage(tmp_path, "--no-dump", "--repeat", "5", "--accel", "tcg", "--smp", "2", str(APPS / "race-glibc"))
        assert data["schema"] == "osvgdb-triage-repeat" and data["runs"] == 5
        assert set(data["outcomes"]) <= {"passed", "app-fault"}
        if 0 < data["rate"] < 1:
            break
    assert 0 < data["rate"] < 1, data["outcomes"]
    assert data["flaky"] and not data["agree"]
    crash = next(s for s in data["signatures"] if ":app-fault:" in s)
    assert crash == "osvsig/3:app-fault:SIGSEGV-null-read:read_quantity | consume_orders"
    assert done.returncode == 11  # the most severe outcome seen


def test_store_keeps_the_first_dump_and_counts(kernel: None, tmp_path: Path) -> None:
    store = tmp_path / "store"
    argv = ("--out", str(store), "--accel", "tcg", str(APPS / "crash-glibc"))
    first, _ = triage(tmp_path, *argv, name="first")
    second, _ = triage(tmp_path, *argv, name="second")
    assert first["signature_hash"] == second["signature_hash"]
    bucket = store / first["signature_hash"]
    assert first["stored"] == {"directory": str(bucket), "new": True}
    assert second["stored"]["new"] is False and second["dump"]["path"] is None
    occurrences = json.loads((bucket / "occurrences.json").read_text())
    assert occurrences["count"] == 2 and occurrences["signature"] == first["signature"]
    assert sorted(p.name for p in bucket.iterdir()) == sorted(
        ["console.txt", "dump.core.zst", "dump.core.zst.json", "occurrences.json", "report.json", "report.md", "runs"]
    )
    assert json.loads((store / "index.json").read_text())[first["signature"]]["count"] == 2
    # The stored dump is zstd-compressed and reopens offline to the same signature.
    stored = bucket / "dump.core.zst"
    assert first["dump"]["path"] == str(stored) and stored.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    offline, _ = triage(tmp_path, "--core", str(stored), name="offline")
    assert offline["signature"] == first["signature"] and offline["outcome"] == first["outcome"]


@pytest.mark.parametrize(
    "how, repeat",
    [(signal.SIGTERM, "1"), (signal.SIGKILL, "1"), (signal.SIGTERM, "5")],
    ids=["SIGTERM", "SIGKILL", "SIGTERM-repeat"],
)
def test_killing_triage_leaves_no_qemu_or_gdb(
    kernel: None, tmp_path: Path, how: signal.Signals, repeat: str
) -> None:
    """With --repeat too: SIGTERM ends every run, not just the one it came in (the
    step that keeps one run's failure from ending the rest must not catch it)."""
    process = subprocess.Popen(
        osvgdb_command("triage", "--no-dump", "--timeout", "120", "--accel", "tcg", "--repeat", repeat,
                       str(APPS / "busy-glibc")),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    try:
        # Wait for the QEMU and the GDB of the session by their command lines (not for any two
        # children: `make` and `qemu --version` are children too), as long as a loaded CI machine
        # may need to boot: QMP may take QEMU_UP_TIME to answer.
        deadline = time.monotonic() + 2 * QEMU_UP_TIME
        seen: dict[int, str] = {}
        while time.monotonic() < deadline and process.poll() is None:
            seen = {c: cmdline(c) for c in children(process.pid)}
            if any("qemu-system" in c and "--version" not in c for c in seen.values()) and any(
                "--interpreter=mi" in c for c in seen.values()
            ):
                break
            time.sleep(0.1)
        else:
            process.kill()
            process.wait()
            pytest.fail(f"QEMU and GDB never both ran: {seen}; {process.stderr.read().decode()[-2000:]}")
        time.sleep(1.0)  # the guest runs
        process.send_signal(how)
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(alive(c) for c in seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(c) for c in seen)
        if how == signal.SIGTERM:
            stderr = process.stderr.read().decode()
            assert "Traceback" not in stderr
            assert process.returncode == 128 + signal.SIGTERM, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_qemu_that_dies_is_reported(kernel: None, tmp_path: Path) -> None:
    process = subprocess.Popen(
        osvgdb_command("triage", "--json", str(tmp_path / "r.json"), "--timeout", "120", "--accel", "tcg",
                       str(APPS / "busy-glibc")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.monotonic() + 2 * QEMU_UP_TIME
    qemu = []
    while not qemu and time.monotonic() < deadline:
        qemu = [c for c in children(process.pid) if "qemu-system" in cmdline(c) and "--version" not in cmdline(c)]
        time.sleep(0.1)
    assert qemu
    time.sleep(1.0)
    os.kill(qemu[0], signal.SIGKILL)
    process.wait(timeout=60)
    data = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["outcome"] == "qemu-died" and process.returncode == 18


def test_a_refused_executable_is_a_boot_failure(kernel: None, tmp_path: Path) -> None:
    """The loader refuses a file that is not an ELF: the kernel never reached the app."""
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    data, done = triage(tmp_path, "--no-dump", "--accel", "tcg", str(script))
    assert data["outcome"] == "boot-failure" and done.returncode == 17
    assert data["app_started"] is False
    assert data["signature"] == "osvsig/3:boot-failure:status-126:"
    assert any("script" in line for line in data["console_tail"])
