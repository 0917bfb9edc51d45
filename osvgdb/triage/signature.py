"""Crash signatures: the same bug named the same way every time, different bugs apart.

    osvsig/3:OUTCOME:KIND:FRAME | FRAME | FRAME

OUTCOME is the triage outcome; KIND what went wrong in words without numbers
(`SIGSEGV-null`, `page-fault`, `return-fs`, `futex`, `go-panic-assignment-to-entry-in-nil-map`,
`cxx-uncaught-std-out_of_range`, `SIGABRT-heap-double-free`); the frames are the top
few function names of the guilty thread (or goroutine) once the skip list is
applied.  For a hang each blocked (or busy) thread or goroutine is named by the
app function it is stuck in (rule 6), the names sorted, de-duplicated and joined
with ` + `, so neither tids, goroutine ids, nor the order threads were made in,
nor how far each got matter.  The rules, in order (each one that changed
something is named in `notes`):

 1. Names are normalised (osvgdb.model.names.normalise): C++ and Rust demangled,
    their argument lists dropped, templates collapsed to `<T>`, Rust's hash
    dropped; glibc's `__GI_` and the underscores of a `__`-reserved C name go,
    a single leading underscore stays (`_Exit`, `_start`, `_int_free`); compiler
    clone suffixes (`.cold`, `.isra.0`...) and Go's `.abi0` go.
 2. For an app outcome only app frames count; for a kernel one, only kernel
    frames.  Entry crossings and frames without a name are dropped (an
    unnamed frame is an address, which a rebuild moves).
 3. Runtime plumbing is dropped.  A sentinel (SENTINELS: `std::terminate`,
    `cxa_throw`, `runtime.gopanic`, `runtime.sigpanic`, `core::panicking::*`,
    `std::panicking::*`...) marks where a runtime took over: what is above it
    goes.  Then SKIP's exact names (libc's start-up, abort, assert, fortify and
    malloc machinery, futex waits, the kernel's exit, signal, panic and entry
    functions) and the libraries' own namespaces, which no program's function
    can be in (`std::`, `__gnu_cxx::`, `__cxxabiv1::`, the Rust library crates,
    Go's `runtime.`, libc's reserved `__*_chk`).  No rule is a prefix of an
    ordinary name: `free_list` and `main.freeAll` stay.  If that leaves
    nothing, the unskipped frames stay (noted).
 4. FRAMES (3) frames are kept; the long form with up to PROTO_FRAMES is
    `proto_signature`.
 5. Nothing else: no addresses, offsets, line numbers, tids or CPU numbers, so a
    rebuild that moves code or another -smp count gives the same signature.
 6. Hangs: a thread counts by its first frame with source (the app's own code,
    where DWARF has it: `worker`, `transfer_a_to_b`), not by the libc call it
    waits in. Which of pthread_cond_wait, pthread_cond_broadcast or
    pthread_mutex_lock a worker of a lost wake-up is caught in varies from run to
    run; the function it was running does not. A thread without such a frame
    (no debug information) counts by its top frames as in rule 4.
    `proto_signature` keeps each thread's long form.  A Go program's hang counts
    its goroutines instead of its threads (an M's thread runs whichever goroutine
    the scheduler gave it), each by its first frame in the program's own code.
 7. A hang in which the kernel provably lost a futex wake-up (osvgdb.model.wakes) is
    the kernel's: kind `lost-wake`, frame `futex_wake`, whichever threads it left
    asleep (with every wake lost, threads' workers sleep for good, or finish in
    lock-step and leave main alone in its join: one bug, one signature).

osvsig/1 had no rule 6 (a hang's threads by their top frames): its hang
signatures differ from osvsig/2's.  osvsig/3 changed rule 1 (a single leading
underscore stays, names are demangled) and rule 3 (sentinels, namespaces): of the
older matrix's cases only no-at-random's changed (`libc_start_main | start` is
`libc_start_main | _start`); the others are the same after the prefix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from osvgdb.model import names

VERSION = "osvsig/3"
FRAMES = 3
PROTO_FRAMES = 40
MAX_LENGTH = 255

# Plumbing between the bug and what the user sees (after normalisation).
SKIP = frozenset(
    {
        # libc start-up and thread start
        "_start", "libc_start_call_main", "libc_start_main", "libc_start_main_impl",
        "libc_start_main_alias_2", "start_thread", "clone", "clone3", "clone_internal",
        "libc_csu_init", "exit", "_Exit", "_exit", "run_exit_handlers",
        # abort, assert and fortify
        "abort", "raise", "gsignal", "pthread_kill", "pthread_kill_implementation",
        "pthread_kill_internal", "assert_fail", "assert_fail_base", "assert_perror_fail",
        "libc_message", "libc_message_impl", "fortify_fail", "fortify_fail_abort",
        "stack_chk_fail", "chk_fail", "stack_chk_fail_local",
        # malloc's checks (malloc_printerr's callers) and the functions they check
        "malloc_printerr", "_int_free", "_int_malloc", "_int_realloc", "_int_memalign",
        "free", "malloc", "calloc", "realloc", "cfree", "libc_free", "libc_malloc",
        "libc_calloc", "libc_realloc", "tcache_get", "tcache_put", "munmap_chunk",
        "unlink_chunk", "malloc_consolidate", "int_free_merge_chunk",
        # C++'s exception and terminate machinery (what SENTINELS leaves of it)
        "cxa_throw", "cxa_rethrow", "cxa_call_terminate", "cxa_begin_catch", "_Unwind_Resume",
        "_Unwind_RaiseException", "_Unwind_Resume_or_Rethrow", "execute_native_thread_routine",
        # Rust's start-up and panic entry points outside its crates
        "rust_begin_unwind", "rust_panic", "__rust_start_panic", "__rust_end_short_backtrace",
        "__rust_begin_short_backtrace", "__rust_try",
        # futex and lock waits
        "futex_wait", "futex_abstimed_wait_common", "futex_abstimed_wait_common64",
        "futex_abstimed_wait_cancelable64", "futex_wait_cancelable", "lll_lock_wait",
        "lll_lock_wait_private", "syscall_cancel", "syscall_cancel_arch", "internal_syscall_cancel",
        "syscall", "pthread_cond_wait_common",
        # musl
        "libc_start_main_stage2", "start_c", "dlstart", "syscall_cp_asm", "syscall_cp_c",
        "timedwait_cp", "timedwait", "wait",
        # the kernel's way out, in and around
        "process_exit", "trap_handler", "syscall_handler", "do_syscall", "send_signal",
        "sys_tgkill", "sys_tkill", "sys_kill", "panic", "panic_trap", "panic_begin", "panic_end",
        "osv_panic_halt", "fscheck_violation", "fscheck_syscall_entry", "fscheck_trap_entry",
        "fscheck_return", "syscall_entry", "trap_entry", "schedule", "switch_context",
        "sched_yield_cpu", "thread_block", "sys_futex", "futex_wait_kernel", "sched_tick",
    }
)  # fmt: skip
# Where a runtime took over from the program: frames above the innermost of these go.
SENTINELS = frozenset(
    {
        "std::terminate", "__cxxabiv1::__terminate", "__gnu_cxx::__verbose_terminate_handler",
        "cxa_throw", "cxa_rethrow", "std::rethrow_exception",
        "runtime.gopanic", "runtime.sigpanic", "runtime.throw", "runtime.fatalthrow",
        "runtime.fatalpanic", "runtime.morestack",
        "rust_begin_unwind", "std::panicking::begin_panic", "std::panicking::begin_panic_handler",
        "std::panicking::rust_panic_with_hook", "core::panicking::panic",
        "core::panicking::panic_fmt", "core::panicking::panic_bounds_check",
        "core::panicking::panic_nounwind", "core::result::unwrap_failed",
        "core::option::unwrap_failed", "core::option::expect_failed",
        "stack_chk_fail", "fortify_fail", "chk_fail", "malloc_printerr", "assert_fail",
    }
)  # fmt: skip
# Namespaces of the languages' own libraries, which no program's function can be in.
LIBRARY_PREFIXES = ("std::", "__gnu_cxx::", "__cxxabiv1::", "__cxxabi::", "runtime.", "runtime/")
_RESERVED_CHECK = re.compile(r"^__\w+_chk$")  # fortify's __memcpy_chk...: reserved names


def normalise(name: str) -> str:
    return names.normalise(name)


def is_plumbing(name: str, raw: str | None = None) -> bool:
    """Rule 3 for one normalised name (`raw`: the symbol as the ELF file has it)."""
    if name in SKIP or name in SENTINELS or name.startswith(LIBRARY_PREFIXES):
        return True
    if raw is not None and _RESERVED_CHECK.match(raw.removeprefix("__GI_")):
        return True
    if names.is_cxx_or_rust(name):
        crate = names.rust_crate(name)
        return crate in names.RUST_LIBRARY_CRATES
    return False


@dataclass
class Signature:
    signature: str
    proto_signature: str
    notes: list[str] = field(default_factory=list)

    @property
    def hash(self) -> str:
        """A short name for the signature: the de-duplication store's directory."""
        return hashlib.sha256(self.signature.encode()).hexdigest()[:16]


def _names(frames: list[dict], module: str | None, notes: list[str]) -> list[tuple[str, str]]:
    """Rules 1 and 2: (normalised name, raw name) of the frames that count."""
    found = []
    for frame in frames:
        if frame.get("kind") == "crossing":
            continue
        if module is not None and frame.get("module") != module:
            continue
        function = frame.get("function")
        if not function:
            note = "unnamed frames dropped"
            if note not in notes:
                notes.append(note)
            continue
        name = normalise(function)
        if name != function and "names normalised" not in notes:
            notes.append("names normalised")
        found.append((name, function))
    return found


def top_frames(frames: list[dict], module: str | None, notes: list[str]) -> tuple[list[str], list[str]]:
    """(the FRAMES kept, the PROTO_FRAMES of the long form) by rules 1-4."""
    pairs = _names(frames, module, notes)
    all_names = [n for n, _ in pairs]
    sentinel = next((i for i, (n, _) in enumerate(pairs) if n in SENTINELS or n.startswith("core::panicking::")), None)
    if sentinel is not None and any(not is_plumbing(n, raw) for n, raw in pairs[sentinel + 1 :]):
        pairs = pairs[sentinel + 1 :]
        notes.append(f"started after the sentinel {all_names[sentinel]}")
    kept = [n for n, raw in pairs if not is_plumbing(n, raw)]
    if len(kept) < len(pairs) and "skip list applied" not in notes:
        notes.append("skip list applied")
    if not kept and all_names:
        notes.append("every frame is plumbing: kept unskipped")
        kept = all_names
    return kept[:FRAMES], all_names[:PROTO_FRAMES]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - 3] + "..."


def make(outcome: str, kind: str, frames: list[dict], module: str | None) -> Signature:
    """The signature of a crash in one thread (frames: the guilty thread's, innermost first)."""
    notes: list[str] = []
    kept, proto = top_frames(frames, module, notes)
    if not kept:
        notes.append("no frames")
    head = f"{VERSION}:{outcome}:{kind}"
    return Signature(
        _clip(f"{head}:{' | '.join(kept)}"), f"{head}:{' | '.join(proto)}", notes
    )


def _own_function(frames: list[dict], module: str | None) -> str | None:
    """Rule 6: the normalised name of the first named frame with a source file."""
    for frame in frames:
        if frame.get("kind") == "crossing" or not frame.get("function") or not frame.get("file"):
            continue
        if module is None or frame.get("module") == module:
            name = normalise(frame["function"])
            if names.go_package(name) is not None and not names.go_is_user(name):
                continue  # Go's standard library has source too: its callers are the program's
            if is_plumbing(name, frame["function"]):
                continue
            return name
    return None


def make_hang(outcome: str, kind: str, threads: list[list[dict]], module: str | None) -> Signature:
    """The signature of a hang: every blocked (or busy) thread's top frames, sorted."""
    notes: list[str] = []
    tops, protos = set(), set()
    for frames in threads:
        kept, proto = top_frames(frames, module, notes)
        own = _own_function(frames, module)
        if own is not None:
            tops.add(own)
            if "threads named by their own function" not in notes:
                notes.append("threads named by their own function")
        elif kept:
            tops.add(" | ".join(kept))
        if proto:
            protos.add(" | ".join(proto))
    if len(tops) < len(threads):
        notes.append("threads with the same frames counted once")
    head = f"{VERSION}:{outcome}:{kind}"
    return Signature(
        _clip(f"{head}:{' + '.join(sorted(tops))}"), f"{head}:{' + '.join(sorted(protos))}", notes
    )
