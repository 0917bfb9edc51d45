"""The triage matrix: each case, the outcome it must get and its signature's frames.

Shared by tests/test_triage.py (each case twice in CI) and scripts/triage_matrix
(each case N times, the table for the closing note).  Kernel variants come from
`make -C kernel variants`; injections are the kernel's --inject options.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    title: str = ""  # what the title must contain (the corpus: what each file's header says)
    runtime: str | None = None  # go, rust, cxx, c: the crash corpus (kernel/apps' headers)

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
    # Every wake a lie: the workers sleep for good, or (their naps keeping them in lock-step,
    # no futex wait needed) only main's join does; either way the kernel's bug, one bucket.
    Case("lost-wake", "threads-glibc", "hang-deadlock", "osvsig/3:hang-deadlock:lost-wake:futex_wake",
         options=("--smp", "2", "--kernel-arg=--inject=lost-wake"), timeout=4),
    Case("triple-fault", "hello-glibc", "triple-fault", "osvsig/3:triple-fault:reset:arch_triple_fault",
         options=("--kernel-arg=--inject=triple-fault",)),
]  # fmt: skip

# The crash corpus: real-world crashes of Go, Rust and C++ runtimes and libc's checks. Each
# program's header in kernel/apps says what a triage must conclude; here is the same.
CORPUS = [
    Case("go-nilmap", "nilmap-go", "app-abort",
         "osvsig/3:app-abort:go-panic-assignment-to-entry-in-nil-map:main.(*cache).put | main.worker",
         title="go-panic: assignment to entry in nil map in main.(*cache).put", runtime="go"),
    Case("go-nilderef", "nilderef-go", "app-fault",
         "osvsig/3:app-fault:go-SIGSEGV-null:main.(*session).userName | main.greet",
         title="go-panic: runtime error: invalid memory address or nil pointer dereference in main.(*session).userName",
         runtime="go"),
    Case("go-deadlock", "chandeadlock-go", "hang-deadlock", "osvsig/3:hang-deadlock:go-deadlock:main.collect + main.main",
         title="go-fatal: all goroutines are asleep - deadlock! (main.collect on semacquire, main.main on chan receive)",
         runtime="go"),
    Case("go-busy", "spinner-go", "hang-busy", "osvsig/3:hang-busy:busy:main.waitReady",
         title="main.producer chan receive", timeout=4, runtime="go"),
    Case("go-overflow", "overflow-go", "app-abort",
         "osvsig/3:app-abort:go-fatal-stack-overflow:main.walk | main.walk | main.walk",
         title="go-fatal: stack overflow in main.walk", runtime="go"),
    Case("rust-index", "index-rust", "app-abort",
         "osvsig/3:app-abort:rust-panic-index-out-of-bounds-the-len:index::Parser::next_token",
         title="rust-panic: index out of bounds: the len is 3 but the index is 3 in index::Parser::next_token",
         runtime="rust"),
    Case("rust-unwrap", "unwrap-rust", "app-abort",
         "osvsig/3:app-abort:rust-panic-called-option-unwrap-on-a-none:unwrap::load_setting",
         title="rust-panic: called `Option::unwrap()` on a `None` value in unwrap::load_setting: thread loader",
         runtime="rust"),
    Case("rust-doublepanic", "doublepanic-rust", "app-abort",
         "osvsig/3:app-abort:rust-panic-in-panic:doublepanic::transfer | doublepanic::main",
         title="rust-panic: panic in a panic: transfer failed: amount 500 over the limit in doublepanic::transfer",
         runtime="rust"),
    Case("cxx-outofrange", "outofrange-glibc", "app-abort",
         "osvsig/3:app-abort:cxx-uncaught-std-out_of_range:lookup | main",
         title="uncaught std::out_of_range in lookup: vector::_M_range_check", runtime="cxx"),
    Case("cxx-badconfig", "badconfig-glibc", "app-abort",
         "osvsig/3:app-abort:cxx-uncaught-anonymous-namespace-config_error:(anonymous namespace)::parse_line | (anonymous namespace)::load",
         title="uncaught (anonymous namespace)::config_error in (anonymous namespace)::parse_line: bad value for 'workers'",
         runtime="cxx"),
    Case("cxx-joinable", "joinable-glibc", "app-abort",
         "osvsig/3:app-abort:cxx-terminate-without-an-active-exception:start_workers | main",
         title="std::terminate without an active exception in start_workers", runtime="cxx"),
    Case("c-doublefree", "doublefree-glibc", "app-abort",
         "osvsig/3:app-abort:SIGABRT-heap-double-free:release_buf | send_message | main",
         title="heap: double free in release_buf: free(): double free detected in tcache 2", runtime="c"),
    Case("c-topsize", "topsize-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-heap-corrupted-top-size:new_record | main",
         title="heap: corrupted top size in new_record", runtime="c"),
    Case("c-invalidfree", "invalidfree-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-heap-invalid-pointer:drop_token | main",
         title="heap: invalid pointer in drop_token", runtime="c"),
    Case("c-smash", "smash-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-stack-smashing:copy_name | main",
         title="stack-smashing: stack smashing detected in copy_name", runtime="c"),
    Case("c-fortify", "fortify-glibc", "app-abort", "osvsig/3:app-abort:SIGABRT-fortify:fill_header | main",
         title="fortify: buffer overflow detected in fill_header", runtime="c"),
    # musl: its assert's own format; its malloc and stack protector crash on purpose without
    # a word and its libc.a has no CFI, so the fault is all a triage can say there.
    Case("musl-assert", "assert-musl", "app-abort", "osvsig/3:app-abort:SIGABRT-assert:check_balance",
         title="app-abort: SIGABRT-assert in check_balance: Assertion `balance >= 0' failed", runtime="c"),
    Case("musl-doublefree", "doublefree-musl", "app-fault", "osvsig/3:app-fault:SIGSEGV-read:get_meta",
         title="app-fault: SIGSEGV-read in get_meta", runtime="c"),
]  # fmt: skip
BY_NAME = {case.name: case for case in CASES + CORPUS}


def variants(case: Case) -> list[Case]:
    """The same case at -smp 1 and 2 and, for a C or C++ program built with glibc, as its
    static-pie: the runs whose signatures must be the one signature."""
    found = [replace(case, name=f"{case.name}@smp1", options=(*case.options, "--smp", "1")),
             replace(case, name=f"{case.name}@smp2", options=(*case.options, "--smp", "2"))]  # fmt: skip
    if case.app.endswith("-glibc"):
        found.append(replace(case, name=f"{case.name}@pie", app=case.app.replace("-glibc", "-pie"),
                             options=(*case.options, "--smp", "2")))  # fmt: skip
    return found
