"""`osvgdb run`'s exit statuses, and no QEMU left behind however it ends."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from guest import RUN_TIMEOUT, app, osvgdb_command, osvgdb_run

from osvgdb.qemu import hardware_virtualization, kvm_usable
from osvgdb.run import EXIT_NO_STATUS, EXIT_PANIC, EXIT_TIMEOUT

pytestmark = pytest.mark.usefixtures("kernel")


def qemu_pids(marker: Path) -> list[int]:
    """QEMU processes whose command line mentions `marker` (our private TMPDIR)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and str(marker).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def assert_no_qemu_left(marker: Path, within: float = 0.0) -> None:
    deadline = time.monotonic() + within
    while qemu_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert qemu_pids(marker) == []


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> dict[str, str]:
    """A TMPDIR of the test's own, so its QEMU is recognisable by command line."""
    return {"TMPDIR": str(tmp_path)}


@pytest.mark.parametrize("status", [0, 1, 42, 255])
def test_app_status_is_ours(status: int) -> None:
    run = osvgdb_run("--accel", "tcg", str(app("exit", "glibc")), str(status))
    assert run.status == status, run


def test_normal_exit_leaves_nothing(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    run = osvgdb_run("--accel", "tcg", str(app("hello", "glibc")), env=tmpdir_env)
    assert run.status == 0, run
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_timeout(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    run = osvgdb_run("--accel", "tcg", "--timeout", "3", str(app("sleep", "musl")), env=tmpdir_env)
    assert run.status == EXIT_TIMEOUT, run
    assert run.stderr.startswith("osvgdb: timeout:"), run
    assert "sleep start" in run.stdout
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_app_fault_ends_the_app_as_linux_would(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    """An exception in app code (ud2) ends the app, not the kernel: status
    128 + SIGILL, as a shell reports a Linux process killed by SIGILL, and
    one console line naming the app."""
    exe = app("crash", "glibc")
    run = osvgdb_run("--accel", "tcg", str(exe), env=tmpdir_env)
    assert run.status == 128 + signal.SIGILL, run
    assert "crash: executing ud2" in run.stdout
    assert len([line for line in run.lines if line.startswith(f"osv: /{exe.name}: ")]) == 1, run
    assert_no_qemu_left(tmp_path)


def start_sleeper(tmpdir_env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`osvgdb run sleep` with its app running, i.e. QEMU up and busy.
    (musl's sleep: its nanosleep() is the plainest syscall for the purpose.)"""
    process = subprocess.Popen(
        osvgdb_command("run", "--accel", "tcg", str(app("sleep", "musl"))),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **tmpdir_env, "PYTHONFAULTHANDLER": "1"},
    )
    seen = b""
    deadline = time.monotonic() + RUN_TIMEOUT
    while b"sleep start" not in seen:
        ready, _, _ = select.select([process.stdout], [], [], max(0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(
                f"the app never started; console:\n{seen.decode(errors='replace')}"
                f"--- stderr\n{stderr.decode(errors='replace')}"
            )
        seen += chunk
    return process


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_signal_to_osvgdb(
    signum: signal.Signals, tmp_path: Path, tmpdir_env: dict[str, str]
) -> None:
    process = start_sleeper(tmpdir_env)
    assert qemu_pids(tmp_path) != []
    status = Path(f"/proc/{process.pid}/status").read_text()
    masks = [line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn", "SigCgt"))]
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        # Where it hangs: SIGABRT makes faulthandler (PYTHONFAULTHANDLER) print every
        # thread's stack on stderr.
        process.send_signal(signal.SIGABRT)
        _, stderr = process.communicate(timeout=30)
        pytest.fail(
            f"osvgdb still ran 30 s after {signum.name} ({masks}):\n{stderr.decode(errors='replace')}"
        )
    assert process.returncode == 128 + signum, stderr
    assert len(stderr.splitlines()) == 1, stderr  # one line, no traceback
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_sigkill_of_osvgdb_takes_qemu_along(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    process = start_sleeper(tmpdir_env)
    assert qemu_pids(tmp_path) != []
    process.kill()
    process.communicate(timeout=30)
    assert_no_qemu_left(tmp_path, within=5.0)  # PR_SET_PDEATHSIG
    # Nothing ran our cleanup, so the private directory is still there; the
    # next run removes it.
    assert len(list(tmp_path.iterdir())) == 1
    run = osvgdb_run("--accel", "tcg", str(app("hello", "glibc")), env=tmpdir_env)
    assert run.status == 0, run
    assert list(tmp_path.iterdir()) == []


def test_panic_leaves_nothing(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    run = osvgdb_run("--accel", "tcg", "--kernel-arg=--test-panic", str(app("hello", "glibc")),
                     env=tmpdir_env)  # fmt: skip
    assert run.status == EXIT_PANIC, run
    # The console went to --log: the report is repeated on stderr, then osvgdb's word.
    assert run.stderr.splitlines()[0].startswith("osv: kernel panic: page fault"), run
    assert run.stderr.endswith("osvgdb: kernel panic (the kernel's report above); QEMU killed\n"), run
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_qemu_that_never_comes_up(tmp_path: Path) -> None:
    not_a_kernel = tmp_path / "not-a-kernel"
    not_a_kernel.write_text("QEMU cannot boot this\n")
    workdirs = tmp_path / "tmp"
    workdirs.mkdir()
    run = osvgdb_run("--accel", "tcg", "--kernel", str(not_a_kernel), str(app("hello", "glibc")),
                     env={"TMPDIR": str(workdirs)})  # fmt: skip
    assert run.status == EXIT_NO_STATUS, run
    first, *rest = run.stderr.splitlines()
    assert first == "osvgdb: error: QEMU exited with status 1 before it was up:", run
    assert rest and all(line.startswith("  qemu: ") for line in rest), run
    assert_no_qemu_left(workdirs)
    assert list(workdirs.iterdir()) == []


def test_qemu_killed_under_a_run(tmp_path: Path, tmpdir_env: dict[str, str]) -> None:
    process = start_sleeper(tmpdir_env)
    (qemu,) = qemu_pids(tmp_path)
    os.kill(qemu, signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == EXIT_NO_STATUS, stderr
    assert stderr.decode() == (
        "osvgdb: error: QEMU was killed by signal 9 (Killed) before the kernel reported an exit\n"
    )
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(
    not kvm_usable() or hardware_virtualization(),
    reason="needs the software KVM (kvm_pvm) whose emulator cannot run SSE code",
)
def test_kvm_that_cannot_run_the_guest_ends_the_run_at_once(
    tmp_path: Path, tmpdir_env: dict[str, str]
) -> None:
    """QEMU stops the guest with "KVM internal error" and would wait forever:
    QMP's STOP and run state end the run long before the timeout."""
    started = time.monotonic()
    run = osvgdb_run("--accel", "kvm", str(app("hello", "glibc")), env=tmpdir_env)
    assert run.status == EXIT_NO_STATUS, run
    assert time.monotonic() - started < RUN_TIMEOUT / 2, run
    first, *rest = run.stderr.splitlines()
    assert first == (
        "osvgdb: error: QEMU stopped the guest (internal-error) before the kernel reported "
        "an exit; killed:"
    ), run
    assert any("KVM internal error" in line for line in rest), run
    assert_no_qemu_left(tmp_path)
    assert list(tmp_path.iterdir()) == []
