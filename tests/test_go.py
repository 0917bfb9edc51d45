"""A static Go program (kernel/apps/go/goroutines, CGO_ENABLED=0, Debian's golang-go)
with goroutines, channels, a mutex, timers, runtime.GC, asynchronous preemption and
collections that must stop a goroutine spinning on every P prints what it prints on the
host and exits 0 at -smp 1, 2 and 4. Go's runtime is
a demanding Linux client nobody here wrote: threads by clone with CLONE_SETTLS, its heap
at mmap address hints, the netpoller's epoll_pwait on a pipe for every timer, and
SIGURG by tgkill onto the sigaltstack to preempt a goroutine that never calls anything.
--strace names the calls the host's strace sees, each difference explained."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from guest import app, assert_runs_as_on_the_host, osvgdb_run

GO_PROGRAM = app("goroutines", "go")
SIGURG = 23


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("smp", [1, 2, 4])
def test_go_program_runs_as_on_the_host(smp: int) -> None:
    assert_runs_as_on_the_host(GO_PROGRAM, "--smp", str(smp))


def test_the_program_needs_asynchronous_preemption(apps: None) -> None:
    """The program's preemption part is a real test: on the host, with Go's
    asynchronous preemption off, the spinning goroutine keeps the only P and the run
    never gets past it (it would hang the same way in the guest)."""
    with pytest.raises(subprocess.TimeoutExpired) as hung:
        subprocess.run(
            [str(GO_PROGRAM)], env={"GODEBUG": "asyncpreemptoff=1"}, capture_output=True, timeout=5
        )
    output = (hung.value.stdout or b"").decode()
    assert "gc: two cycles true" in output and "preemption:" not in output


@pytest.mark.usefixtures("kernel")
def test_preemption_is_sigurg_by_tgkill_at_smp_1() -> None:
    """At -smp 1 the spinner's thread and sysmon share the CPU: the kernel's timer
    preempts the spinner's thread, sysmon runs and tgkills it with SIGURG, and the
    handler's rt_sigreturn brings it back."""
    run = osvgdb_run("--accel", "tcg", "--smp", "1", "--strace", str(GO_PROGRAM))
    assert run.status == 0, run
    assert "preemption: main woke while the spinner spun true" in run.app_lines, run
    pid = re.escape(str(_getpid(run.lines)))
    sent = rf"-> tgkill\({pid}, \d+, {SIGURG}\) = 0$"
    assert any(re.match(sent, line) for line in run.lines), run
    assert "rt_sigreturn" in run.strace_names, run


def _getpid(lines: list[str]) -> int:
    pids = {int(m.group(1)) for line in lines if (m := re.match(r"-> getpid\(\) = (\d+)$", line))}
    assert len(pids) == 1, pids
    return pids.pop()


# Calls whose presence depends on timing, on the host and in the guest alike:
TIMING = {
    # netpollBreak writes a byte into the netpoller's pipe when a timer is added while
    # a thread waits in epoll_pwait, and the waiter reads it out (read(4, ...)); the host's
    # read of /sys/kernel/mm/transparent_hugepage/hpage_pmd_size is compared apart
    "read",
    # the runtime's spin locks yield while another thread holds them
    "sched_yield",
    # the scavenger returns freed pages (MADV_DONTNEED) when it gets to run; the host
    # also marks arenas MADV_NOHUGEPAGE/MADV_HUGEPAGE, see below
    "madvise",
    # the heap grows by more arenas or not, depending on when the collector ran
    "munmap",
}


def host_strace(tmp_path: Path) -> list[str]:
    """The host's strace of the program, every thread's calls: one file per thread
    (-ff), so no call is split into "unfinished" and "resumed" halves."""
    subprocess.run(
        ["strace", "-ff", "-qq", "-o", str(tmp_path / "trace"), str(GO_PROGRAM)],
        capture_output=True, check=True,
    )  # fmt: skip
    logs = sorted(tmp_path.glob("trace.*"))
    # strace pads results to a column: "close(3)      = 0" as "close(3) = 0"
    lines = [line for log in logs for line in log.read_text().splitlines()]
    return [re.sub(r"\)\s+= ", ") = ", line) for line in lines]


@pytest.mark.usefixtures("kernel")
def test_strace_names_as_the_host(tmp_path: Path) -> None:
    host_lines = host_strace(tmp_path)
    host = {m.group(1) for line in host_lines if (m := re.match(r"([a-z_0-9]+)\(", line))}
    run = osvgdb_run("--accel", "tcg", "--smp", "2", "--strace", str(GO_PROGRAM))
    assert run.status == 0, run
    # Whole lines only: the app's exit ends QEMU while another CPU may be half-way
    # through printing its own call's line ("-> madvi").
    guest = {m.group(1) for line in run.lines if (m := re.match(r"-> ([a-z_0-9]+)\(.*\) = ", line))}

    # The differences, each for a reason:
    # - execve: the host's strace sees the program started; the kernel's loader starts it.
    assert "execve" in host and "execve" not in guest
    # - Go reads the host's transparent huge page size (openat, read, close); the kernel
    #   has no /sys (ENOENT, as on a Linux without THP), so that file is not read, and the
    #   runtime never asks for MADV_HUGEPAGE/MADV_NOHUGEPAGE. (close stays in both: the
    #   program closes its os.Pipe.)
    thp = [line for line in run.lines if "transparent_hugep" in line]
    assert thp and all("ENOENT" in line for line in thp), run
    # - clock_gettime: on Linux the vDSO answers it without a syscall; the kernel gives no
    #   vDSO (no AT_SYSINFO_EHDR), so Go's nanotime and walltime fall back to the syscall.
    assert "clock_gettime" in guest and "clock_gettime" not in host
    # - restart_syscall, on the host now and then: the kill for os/signal wakes a thread
    #   sleeping in nanosleep, another thread takes the signal, and Linux resumes the
    #   sleep for the time left through restart_syscall. The kernel has no restart
    #   block: such a call shows under its own name (re-issued, or EINTR for nanosleep).
    assert "restart_syscall" not in guest
    host_only = {"execve", "restart_syscall"}
    assert guest - TIMING - {"clock_gettime"} == host - TIMING - host_only, run

    # The calls that matter to Go, with the host's arguments: the heap at its hint, the
    # netpoller's epoll fd and pipe.
    hint = "mmap(0xc000000000, 67108864, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    hint += " = 0xc000000000"
    for guest_call, host_call in (
        (hint, hint),
        ("epoll_create1(0x80000) = 3", "epoll_create1(EPOLL_CLOEXEC) = 3"),
        ("pipe2([4, 5], 0x80800) = 0", "pipe2([4, 5], O_NONBLOCK|O_CLOEXEC) = 0"),
        ("epoll_ctl(3, 1, 4, ", "epoll_ctl(3, EPOLL_CTL_ADD, 4, {events=EPOLLIN, "),
        # os.Pipe's read end, edge-triggered, and the signal os/signal waits for
        ("epoll_ctl(3, 1, 6, ",
         "epoll_ctl(3, EPOLL_CTL_ADD, 6, {events=EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, "),
        ("kill(", "kill("),
    ):
        assert any(line.startswith("-> " + guest_call) for line in run.lines), (guest_call, run)
        assert any(line.startswith(host_call) for line in host_lines), (host_call, host_lines)
