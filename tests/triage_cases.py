"""The triage matrix: each case, the outcome it must get and its signature's frames.

Shared by tests/test_triage.py (each case twice in CI) and scripts/triage_matrix
(each case N times, the table for the closing note).  Kernel variants come from
`make -C kernel variants`; injections are the kernel's --inject options.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guest import APPS, ROOT

BUILD = ROOT / "build"


@dataclass(frozen=True)
class Case:
    name: str
    app: str
    outcome: str
    signature: str  # what the signature must start with
    args: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # osvgdb triage options: --smp, --kernel-arg, --kernel
    variant: str | None = None  # a kernel variant: build/kernel-VARIANT.elf
    timeout: float = 20.0
    tags: tuple[str, ...] = field(default_factory=tuple)

    def argv(self) -> list[str]:
        argv = ["--accel", "tcg", "--timeout", str(self.timeout), *self.options]
        if self.variant:
            argv += ["--kernel", str(BUILD / f"kernel-{self.variant}.elf")]
        return [*argv, str(APPS / self.app), *self.args]


CASES = [
    Case("passed", "hello-glibc", "passed", "osvsig/3:passed:status-0:"),
    Case("exit-status", "exit-glibc", "exit-status", "osvsig/3:exit-status:status-3:main", args=("3",)),
    Case("ud2", "crash-glibc", "app-fault", "osvsig/3:app-fault:SIGILL:main"),
    Case("null-thread", "nullthread-glibc", "app-fault",
         "osvsig/3:app-fault:SIGSEGV-null-write:store_result | worker", options=("--smp", "2")),
    Case("abort-thread", "abort-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-abort:aborter"),
    Case("assert", "assert-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-assert:check_balance | main"),
    Case("recursion", "recurse-glibc", "app-fault", "osvsig/3:app-fault:SIGSEGV-stack-overflow:descend | descend | descend"),
    Case("deadlock", "deadlock-glibc", "hang-deadlock", "osvsig/3:hang-deadlock:futex:main + transfer_a_to_b + transfer_b_to_a",
         options=("--smp", "2"), timeout=4),
    Case("busy", "busy-glibc", "hang-busy", "osvsig/3:hang-busy:busy:spin_forever", timeout=3),
    Case("test-panic", "hello-glibc", "kernel-panic", "osvsig/3:kernel-panic:page-fault:kernel_main",
         options=("--kernel-arg=--test-panic",)),
    Case("broken-fs", "spin-glibc", "kernel-panic", "osvsig/3:kernel-panic:fs-base-return-fs:trap_return",
         args=("2",), variant="broken-fs"),
    Case("syscall-fs", "hello-glibc", "kernel-panic", "osvsig/3:kernel-panic:fs-base-return-fs:syscall_return",
         variant="syscall-fs"),
    Case("counter-leak", "hello-glibc", "kernel-panic", "osvsig/3:kernel-panic:fs-base-return-count:trap_return",
         variant="counter-leak"),
    Case("tcgets60", "hello-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-stack-smashing:tcgetattr",
         options=("--kernel-arg=--inject=tcgets60",)),
    Case("no-at-random", "hello-glibc", "app-fault", "osvsig/3:app-fault:SIGSEGV-null-read:libc_start_main",
         options=("--kernel-arg=--inject=no-at-random",)),
    Case("rdx-garbage", "hello-glibc", "app-fault", "osvsig/3:app-fault:SIGSEGV-exec:",
         options=("--kernel-arg=--inject=rdx-garbage",)),
    Case("lost-wake", "threads-glibc", "hang-deadlock", "osvsig/3:hang-deadlock:futex:main + worker",
         options=("--smp", "2", "--kernel-arg=--inject=lost-wake"), timeout=4),
    Case("triple-fault", "hello-glibc", "triple-fault", "osvsig/3:triple-fault:reset:arch_triple_fault",
         options=("--kernel-arg=--inject=triple-fault",)),
]  # fmt: skip
BY_NAME = {case.name: case for case in CASES}
