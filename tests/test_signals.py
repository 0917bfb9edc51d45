"""Signal delivery (kernel/core/signal.c) against the same binary on the host:
kernel/apps/signals.c has handlers read the app's __thread data, a SIGSEGV handler on a
sigaltstack siglongjmp out with the fault's address, pthread_kill reach another thread's
handler with that thread's TLS, and a blocking pipe read end in EINTR or go on with
SA_RESTART; every line must be the host's, at -smp 1 and 2, with the kernel's own TLS
checks clean throughout (a failed one panics)."""

from __future__ import annotations

import struct
import subprocess

import pytest
from guest import app, osvgdb_command, osvgdb_run

from osvgdb.decode.args import CallFormatter, errno_text


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize(
    ("variant", "smp"), [("glibc", 2), ("musl", 2), ("pie", 1), ("glibc", 1)]
)
def test_signals_as_on_linux(variant: str, smp: int) -> None:
    exe = app("signals", variant)
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30)
    run = osvgdb_run("--accel", "tcg", "--smp", str(smp), "--kernel-arg=--verbose", str(exe))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run
    assert any("kernel TLS checked" in line for line in run.lines), run


@pytest.mark.usefixtures("kernel")
def test_wrmsr_kernel_delivers_too() -> None:
    """Without FSGSBASE the FS base is written by wrmsr on every crossing, handlers too."""
    exe = app("signals", "musl")
    host = subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=30)
    run = osvgdb_run("--accel", "tcg", "--smp", "2", "--no-fsgsbase", str(exe))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.splitlines(), run


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
@pytest.mark.parametrize(("mode", "sig"), [("sigpipe-default", 13), ("alarm-default", 14)])
def test_default_action_ends_the_app(variant: str, mode: str, sig: int) -> None:
    exe = app("signals", variant)
    host = subprocess.run([str(exe), mode], capture_output=True, text=True, timeout=30)
    assert host.returncode == -sig  # killed by the signal
    run = osvgdb_run("--accel", "tcg", "--smp", "2", str(exe), mode)
    assert run.status == 128 + sig, run
    assert run.app_lines == host.stdout.splitlines(), run


def _run_with_stdin_open(command: list[str]) -> tuple[int, str]:
    """Run with stdin a pipe nobody writes to and nobody closes until the run ends."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        assert proc.stdout is not None
        output = proc.stdout.read().decode(errors="replace")
        return proc.wait(timeout=30), output
    finally:
        if proc.stdin:
            proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_a_signal_interrupts_a_read_of_stdin(variant: str) -> None:
    exe = app("signals", variant)
    status, host = _run_with_stdin_open([str(exe), "stdin-eintr"])
    assert status == 0 and host == "stdin read: -1 Interrupted system call handled 1\n", host
    status, guest = _run_with_stdin_open(
        osvgdb_command("run", "--accel", "tcg", "--timeout", "60", str(exe), "stdin-eintr")
    )
    assert status == 0, guest
    assert host.strip() in guest.splitlines(), guest


@pytest.mark.usefixtures("kernel")
def test_strace_names_the_signal_calls() -> None:
    run = osvgdb_run("--accel", "tcg", "--strace", str(app("signals", "musl")))
    assert run.status == 0, run
    names = set(run.strace_names)
    for name in ("rt_sigaction", "rt_sigreturn", "rt_sigpending", "sigaltstack", "tkill",
                 "rt_sigtimedwait", "rt_sigsuspend", "setitimer", "getitimer"):
        assert name in names, run
    assert "-> rt_sigsuspend(0x" in run.console, run
    restarted = "-> read(3, 0x"
    interrupted = [line for line in run.lines if line.startswith(restarted)]
    assert any(
        line.endswith("= ? ERESTARTSYS (To be restarted if SA_RESTART is set)")
        for line in interrupted
    ), run
    assert errno_text(-512) == "? ERESTARTSYS (To be restarted if SA_RESTART is set)"


def _formatter(memory: dict[int, bytes]) -> CallFormatter:
    def read(address: int, length: int) -> bytes | None:
        data = memory.get(address)
        return data[:length] if data is not None else None

    return CallFormatter(read)


def test_decoder_shows_sigaction_as_strace() -> None:
    act = struct.pack("<QQQQ", 0x401B36, 0x04000004, 0x401C30, 1 << 11)
    old = struct.pack("<QQQQ", 0, 0, 0, 0)
    formatter = _formatter({0x1000: act, 0x2000: old})
    shown, _ = formatter.arguments(
        "rt_sigaction", (10, 0x1000, 0x2000, 8), 0, live_is_call_time=True
    )
    assert shown == [
        "SIGUSR1",
        "{sa_handler=0x401b36, sa_mask=[USR2], sa_flags=SA_RESTORER|SA_SIGINFO, "
        "sa_restorer=0x401c30}",
        "{sa_handler=SIG_DFL, sa_mask=[], sa_flags=0}",
        "8",
    ]
    # the old action is the call's output: not there while it runs or when it failed
    shown, _ = formatter.arguments(
        "rt_sigaction", (10, 0x1000, 0x2000, 8), -22, live_is_call_time=True
    )
    assert shown[2] == "0x2000"


def test_decoder_shows_sigsets_by_name() -> None:
    usr = struct.pack("<Q", (1 << 9) | (1 << 11))
    most = struct.pack("<Q", ~(1 << 8) & ((1 << 64) - 1))
    formatter = _formatter({0x1000: usr, 0x2000: most})
    shown, _ = formatter.arguments(
        "rt_sigprocmask", (0, 0x1000, 0x2000, 8), 0, live_is_call_time=True
    )
    assert shown == ["SIG_BLOCK", "[USR1 USR2]", "~[KILL]", "8"]
    shown, _ = formatter.arguments(
        "rt_sigprocmask", (2, 0, 0x1000, 8), None, live_is_call_time=True
    )
    assert shown == ["SIG_SETMASK", "NULL", "0x1000", "8"]


def test_decoder_shows_sigaltstack_and_siginfo() -> None:
    stack = struct.pack("<Qi4xQ", 0x4A0000, 1, 65536)
    info = struct.pack("<iiii", 12, 0, -6, 0) + struct.pack("<iI", 2, 0) + bytes(8)
    fault = struct.pack("<iiii", 11, 0, 1, 0) + struct.pack("<Q", 0x1234) + bytes(8)
    timer = struct.pack("<iiii", 14, 0, -2, 0) + struct.pack("<iiQ", 3, 5, 42)
    queued = struct.pack("<iiii", 36, 0, -1, 0) + struct.pack("<iIQ", 31014, 0, 1)
    formatter = _formatter({0x1000: stack, 0x2000: info, 0x3000: fault, 0x4000: timer, 0x5000: queued})
    shown, _ = formatter.arguments(
        "sigaltstack", (0, 0x1000), 0, live_is_call_time=True
    )
    assert shown == ["NULL", "{ss_sp=0x4a0000, ss_flags=SS_ONSTACK, ss_size=65536}"]
    shown, _ = formatter.arguments(
        "rt_sigtimedwait", (0x1000, 0x2000, 0, 8), 12, live_is_call_time=True
    )
    assert shown[1] == "{si_signo=SIGUSR2, si_code=SI_TKILL, si_pid=2, si_uid=0}"
    shown, _ = formatter.arguments(
        "rt_sigtimedwait", (0x1000, 0x3000, 0, 8), 11, live_is_call_time=True
    )
    assert shown[1] == "{si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x1234}"
    shown, _ = formatter.arguments(
        "rt_sigtimedwait", (0x1000, 0x4000, 0, 8), 14, live_is_call_time=True
    )  # as the host's strace shows a POSIX timer's
    assert shown[1] == "{si_signo=SIGALRM, si_code=SI_TIMER, si_timerid=3, si_overrun=5, si_int=42, si_ptr=0x2a}"
    shown, _ = formatter.arguments(
        "rt_sigqueueinfo", (31014, 36, 0x5000), 0, live_is_call_time=True
    )  # the host's strace of sigqueue(getpid(), SIGRTMIN + 2, 1)
    assert shown == [
        "31014", "SIGRT_4", "{si_signo=SIGRT_4, si_code=SI_QUEUE, si_pid=31014, si_uid=0, si_int=1, si_ptr=0x1}"
    ]
    shown, _ = formatter.arguments(
        "tgkill", (2, 3, 34), 0, live_is_call_time=True
    )
    assert shown == ["2", "3", "SIGRT_2"]


def test_osv_tcb_names_the_handler_a_thread_runs() -> None:
    from osvgdb.decode.tcb import ThreadInfo
    from osvgdb.model.tcb import format_threads

    running = ThreadInfo(address=0x1000, tid=3, name="worker", state="running", cpu=1,
                         tcb=0x2000, in_signal=12, signal_frame=0x7FFFF7FFCC88)  # fmt: skip
    idle = ThreadInfo(address=0x3000, tid=2, name="main", state="blocked", cpu=0, tcb=0x4000)
    lines = format_threads([idle, running])
    assert "  tid 3: in a SIGUSR2 handler (signal frame 0x7ffff7ffcc88)" in lines
    assert not any("tid 2: in a" in line for line in lines)
