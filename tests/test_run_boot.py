"""The boot path as a library (osvgdb.run.Guest): the outcome of each way a
boot ends, with nothing printed and nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from guest import RUN_TIMEOUT, app

from osvgdb.monitor import segment_bases
from osvgdb.run import BootOutcome, Ending, Guest, QemuFailed, RunOptions

pytestmark = pytest.mark.usefixtures("kernel")


def options(name: str, *args: str, variant: str = "glibc", **fields: object) -> RunOptions:
    return RunOptions(exe=app(name, variant), args=list(args), accel="tcg", **fields)


SLEEPER = ("sleep", "3600")  # sleeps an hour unless killed


def assert_gone(guest: Guest) -> None:
    assert guest.vm is not None and guest.vm.poll() is not None
    assert not guest.vm.workdir.exists()


def test_exit_status_and_captured_console(capfd: pytest.CaptureFixture[str]) -> None:
    console = io.BytesIO()
    with Guest(options("exit", "42"), console=console) as guest:
        outcome = guest.wait(RUN_TIMEOUT)
        # Once QEMU has exited, wait() has copied the whole console.
        assert "Cmdline: /exit-glibc 42" in console.getvalue().decode()
    assert outcome.kind == Ending.EXITED and outcome.exit_status == 42, outcome
    assert outcome.qemu_status == (42 << 1) | 1  # isa-debug-exit's
    assert not outcome.qemu_lingered and 0 < outcome.duration < RUN_TIMEOUT
    assert_gone(guest)
    assert capfd.readouterr() == ("", "")  # the boot path prints nothing


def test_a_panicked_kernel_waits_for_a_look_before_the_kill() -> None:
    console = io.BytesIO()
    with Guest(options("hello", kernel_args=["--test-panic"]), console=console) as guest:
        outcome = guest.wait(RUN_TIMEOUT)
        assert outcome.kind == Ending.PANIC, outcome
        # The whole report is there, and QEMU still runs for a triage tool's look.
        assert "kernel_tcb_counter 1" in console.getvalue().decode()
        assert guest.monitor is not None and guest.monitor.status() == "running"
        bases = segment_bases(guest.monitor.hmp("info registers -a"))
        assert bases[0]["GS"] != 0
    assert_gone(guest)


def test_timeout_leaves_the_guest_running_until_the_context_ends() -> None:
    with Guest(options(*SLEEPER, variant="musl")) as guest:
        assert guest.outcome().kind == Ending.RUNNING
        outcome = guest.wait(1.0)
        assert outcome.kind == Ending.TIMEOUT and outcome.timeout == 1.0, outcome
        assert outcome.qemu_status is None and outcome.duration >= 1.0
    assert_gone(guest)


def test_qemu_shutting_down_says_why() -> None:
    """A reset QEMU was asked for, which -no-reboot turns into an exit: QMP's
    SHUTDOWN event says so (a triple fault would say guest-reset)."""
    with Guest(options(*SLEEPER, variant="musl")) as guest:
        assert guest.monitor is not None
        guest.monitor.execute("system_reset")
        outcome = guest.wait(RUN_TIMEOUT)
    assert outcome.kind == Ending.QEMU_DIED and outcome.qemu_status == 0, outcome
    assert outcome.shutdown_reason == "host-qmp-system-reset"
    assert "SHUTDOWN" in [event["event"] for event in outcome.events]
    assert_gone(guest)


def test_qemu_killed_under_the_guest() -> None:
    with Guest(options(*SLEEPER, variant="musl")) as guest:
        assert guest.vm is not None
        guest.vm.kill()
        outcome = guest.wait(RUN_TIMEOUT)
    assert outcome.kind == Ending.QEMU_DIED and outcome.qemu_status == -9, outcome
    assert outcome.shutdown_reason is None
    assert_gone(guest)


@pytest.mark.parametrize("gdbstub", [False, True], ids=["run", "gdbstub"])
def test_qemu_that_never_comes_up(tmp_path: Path, gdbstub: bool) -> None:
    not_a_kernel = tmp_path / "not-a-kernel"
    not_a_kernel.write_text("QEMU cannot boot this\n")
    guest = Guest(options("hello", kernel=not_a_kernel), gdbstub=gdbstub)
    with pytest.raises(QemuFailed, match="^QEMU exited with status 1 before it was up$") as failed:
        guest.__enter__()
    outcome: BootOutcome = failed.value.outcome
    assert outcome.kind == Ending.QEMU_FAILED and outcome.qemu_status == 1, outcome
    assert outcome.qemu_stderr, "QEMU's stderr says why"
    assert_gone(guest)
