"""Crash signatures: the same bug named the same way every time, different bugs apart.

    osvsig/2:OUTCOME:KIND:FRAME | FRAME | FRAME

OUTCOME is the triage outcome; KIND what went wrong in words without numbers
(`SIGSEGV-null`, `page-fault`, `return-fs`, `futex`); the frames are the top
few function names of the guilty thread once the skip list is applied.  For a
hang each blocked (or busy) thread is named by the app function it is stuck
in (rule 6), the names sorted, de-duplicated and joined with ` + `, so neither
tids, nor the order threads were made in, nor how far each got matter.  The rules, in order (each one that changed something is named in
`notes`):

 1. Names are normalised: a leading `__GI_`, any other leading underscores and
    a compiler clone's suffix (`.cold`, `.isra.0`, `.constprop.1`, `.part.2`)
    go, so `___pthread_mutex_lock` and `__pthread_mutex_lock` are one name.
 2. For an app outcome only app frames count; for a kernel one, only kernel
    frames.  Entry crossings and frames without a name are dropped (an
    unnamed frame is an address, which a rebuild moves).
 3. SKIP's plumbing is dropped: libc's start-up, abort and assert machinery,
    futex wrappers, the kernel's exit, signal, panic and entry functions.  If
    that leaves nothing, the unskipped frames stay (noted).
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
    `proto_signature` keeps each thread's long form.

osvsig/1 had no rule 6 (a hang's threads by their top frames): its hang
signatures differ from osvsig/2's; the others are the same after the prefix.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

VERSION = "osvsig/2"
FRAMES = 3
PROTO_FRAMES = 40
MAX_LENGTH = 255

# Plumbing between the bug and what the user sees (after normalisation).
SKIP = frozenset(
    {
        # libc start-up and thread start
        "start", "libc_start_call_main", "libc_start_main", "libc_start_main_impl",
        "libc_start_main_alias_2", "start_thread", "clone", "clone3", "clone_internal",
        "libc_csu_init", "exit", "Exit", "run_exit_handlers",
        # abort, assert and fortify
        "abort", "raise", "gsignal", "pthread_kill", "pthread_kill_implementation",
        "pthread_kill_internal", "assert_fail", "assert_fail_base", "assert_perror_fail",
        "libc_message", "libc_message_impl", "fortify_fail", "fortify_fail_abort",
        "stack_chk_fail", "chk_fail",
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
_CLONE_SUFFIX = re.compile(r"\.(cold|isra|constprop|part|lto_priv|llvm)(\.\d+)*$")
_GI_PREFIX = re.compile(r"^__GI_")


def normalise(name: str) -> str:
    name = _GI_PREFIX.sub("", name)
    while True:
        stripped = _CLONE_SUFFIX.sub("", name)
        if stripped == name:
            break
        name = stripped
    return name.lstrip("_") or name


@dataclass
class Signature:
    signature: str
    proto_signature: str
    notes: list[str] = field(default_factory=list)

    @property
    def hash(self) -> str:
        """A short name for the signature: the de-duplication store's directory."""
        return hashlib.sha256(self.signature.encode()).hexdigest()[:16]


def _names(frames: list[dict], module: str | None, notes: list[str]) -> list[str]:
    """Rules 1 and 2: the normalised names of the frames that count."""
    names = []
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
        names.append(name)
    return names


def top_frames(frames: list[dict], module: str | None, notes: list[str]) -> tuple[list[str], list[str]]:
    """(the FRAMES kept, the PROTO_FRAMES of the long form) by rules 1-4."""
    names = _names(frames, module, notes)
    kept = [n for n in names if n not in SKIP]
    if len(kept) < len(names) and "skip list applied" not in notes:
        notes.append("skip list applied")
    if not kept and names:
        notes.append("every frame is plumbing: kept unskipped")
        kept = names
    return kept[:FRAMES], names[:PROTO_FRAMES]


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
            return normalise(frame["function"])
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
