"""The outcomes a triage tells apart, their exit statuses, and what each means.

Each run gets exactly one.  The exit status of `osvgdb triage` is the outcome's;
with --repeat, the most severe outcome seen (SEVERITY, first is worst).
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    PASSED = "passed"
    EXIT_STATUS = "exit-status"
    APP_FAULT = "app-fault"
    APP_ABORT = "app-abort"
    KERNEL_PANIC = "kernel-panic"
    TRIPLE_FAULT = "triple-fault"
    HANG_DEADLOCK = "hang-deadlock"
    HANG_BUSY = "hang-busy"
    BOOT_FAILURE = "boot-failure"
    QEMU_DIED = "qemu-died"
    INFRASTRUCTURE = "infrastructure"


MEANING = {
    Outcome.PASSED: "the app exited with status 0",
    Outcome.EXIT_STATUS: "the app exited with a non-zero status (or ended itself with a signal "
    "other than SIGABRT)",
    Outcome.APP_FAULT: "an exception in app code the app did not handle (SIGSEGV, SIGBUS, "
    "SIGILL, SIGFPE, SIGTRAP), or one Go's runtime turned into its panic",
    Outcome.APP_ABORT: "the app aborted (abort(), a failed assert, glibc's heap, fortify and "
    "stack-protector checks, an uncaught C++ exception), or a Go or Rust panic ended it",
    Outcome.KERNEL_PANIC: "the kernel panicked, or its FS-base watchdog caught a broken rule",
    Outcome.TRIPLE_FAULT: "the machine reset (a triple fault): QEMU paused it with its state kept",
    Outcome.HANG_DEADLOCK: "no exit within the timeout, every app thread blocked (futex waits, "
    "sleeps) and every vCPU idle; or Go's runtime found all goroutines asleep",
    Outcome.HANG_BUSY: "no exit within the timeout and some vCPU kept running app or kernel code",
    Outcome.BOOT_FAILURE: "the kernel never reached the app (the loader refused it, a bad "
    "kernel command line, a hang before the app started)",
    Outcome.QEMU_DIED: "QEMU exited or was killed while the app ran",
    Outcome.INFRASTRUCTURE: "triage itself could not work: QEMU or GDB missing or broken, "
    "bad arguments, a build that failed",
}

EXIT_STATUS = {
    Outcome.PASSED: 0,
    Outcome.INFRASTRUCTURE: 2,  # as argparse's for bad arguments
    Outcome.EXIT_STATUS: 10,
    Outcome.APP_FAULT: 11,
    Outcome.APP_ABORT: 12,
    Outcome.KERNEL_PANIC: 13,
    Outcome.TRIPLE_FAULT: 14,
    Outcome.HANG_DEADLOCK: 15,
    Outcome.HANG_BUSY: 16,
    Outcome.BOOT_FAILURE: 17,
    Outcome.QEMU_DIED: 18,
}

SEVERITY = (
    Outcome.INFRASTRUCTURE,
    Outcome.KERNEL_PANIC,
    Outcome.TRIPLE_FAULT,
    Outcome.BOOT_FAILURE,
    Outcome.QEMU_DIED,
    Outcome.APP_FAULT,
    Outcome.APP_ABORT,
    Outcome.HANG_DEADLOCK,
    Outcome.HANG_BUSY,
    Outcome.EXIT_STATUS,
    Outcome.PASSED,
)

# What JUnit calls each: infrastructure is an <error> (the test could not run), any
# other outcome but passed a <failure> (the test ran and failed).
JUNIT_ERROR = frozenset({Outcome.INFRASTRUCTURE})


def worst(outcomes: list[Outcome]) -> Outcome:
    return min(outcomes, key=SEVERITY.index)


def help_text() -> str:
    """The outcomes and exit statuses, for --help."""
    lines = ["outcomes (the report's `outcome`) and exit statuses:"]
    for outcome in Outcome:
        lines.append(f"  {outcome.value:<15} {EXIT_STATUS[outcome]:>3}  {MEANING[outcome]}")
    lines.append("with --repeat: the status of the most severe outcome seen, in the order")
    lines.append("  " + " > ".join(o.value for o in SEVERITY))
    return "\n".join(lines)
