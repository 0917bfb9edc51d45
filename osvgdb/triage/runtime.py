"""What a runtime's report on the console means, with the guest's state as the second witness.

osvgdb.triage.console reads the report (Go's panic and its goroutines, a Rust panic, a
C++ terminate, a libc check); `interpret` decides what it says about the run only where
the guest's state agrees that this runtime ended this app this way:

    go     the app is a Go program (runtime.allgs) and it exited with status 2
    rust   the app has Rust's panic machinery and exited with status 101 (a panic in
           main's thread, which std turns into that status) or aborted (SIGABRT: a
           panic in a panic, panic=abort)
    cxx    the app has libstdc++'s or libc++'s __cxa_throw and aborted (SIGABRT)
    glibc  the app aborted (SIGABRT); musl's assert too
    musl

A report the state contradicts (a C program that prints "panic: ..." and exits 1) is
kept in the report marked `agrees: false` with the reason, and the outcome comes from
the state alone: never guessed. A half report (`corrupted`) is used for what it has and
said to be corrupted; its frames then come from the state.

Frames, for the signature and the title:
- Go: the trace of the goroutine the runtime printed first (the one that panicked);
  a deadlock names every goroutine of the program (not the runtime's own) by its
  first frame in the program's code. The state's goroutines (osvgdb.model.goroutines)
  must name the same functions, else the report says they disagree.
- Rust: the function the panic's FILE:LINE is in (the app's DWARF line programs), then
  its callers where the state's frames have it; with RUST_BACKTRACE, the printed trace.
- C++ and libc: the aborting thread's frames (the state), from the sentinel on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from osvgdb.model import names
from osvgdb.triage import console as consoles
from osvgdb.triage.console import RuntimeReport
from osvgdb.triage.outcome import Outcome

NULL_PAGE_LIMIT = 0x10000
GO_PANIC_STATUS = 2
RUST_PANIC_STATUS = 101
SIGABRT = 6
TITLE_LIMIT = 72  # of a runtime message inside a title


@dataclass
class Verdict:
    """What the runtime's report makes of the run."""

    outcome: Outcome
    kind: str
    frames: list[dict]  # the guilty thread's or goroutine's, innermost first
    headline: str  # the title before " in FUNCTION"
    message: str | None = None  # after the function, in the title
    hang: list[list[dict]] | None = None  # a hang: each goroutine's frames
    hang_labels: list[str] = field(default_factory=list)  # "main.main on chan receive"
    notes: list[str] = field(default_factory=list)


def _frames(frames: list[consoles.Frame]) -> list[dict]:
    return [f.as_dict() for f in frames]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= TITLE_LIMIT else text[: TITLE_LIMIT - 3] + "..."


def _type_token(text: str) -> str:
    """A C++ type as one signature token: `std::out_of_range` -> `std-out_of_range`."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", text).strip("-")


def agreement(found: RuntimeReport, *, runtime: str | None, exit_status: int | None,
              signal: int | None) -> str | None:  # fmt: skip
    """None when the state agrees the runtime ended the app this way; else why not."""
    if found.runtime == "go":
        if runtime != "go":
            return "a Go report on the console, but the app is not a Go program"
        if signal is not None or exit_status != GO_PANIC_STATUS:
            ended = f"signal {signal}" if signal is not None else f"exit status {exit_status}"
            return f"a Go report ends the program with exit status 2, the app ended with {ended}"
        return None
    if found.runtime == "rust":
        if runtime != "rust":
            return "a Rust panic on the console, but the app has no Rust panic machinery"
        if exit_status == RUST_PANIC_STATUS and signal is None or signal in (SIGABRT, 4):
            return None
        return f"a Rust panic ends with status 101 or an abort, the app ended with {signal or exit_status}"
    if found.runtime == "cxx" and runtime != "cxx":
        return "a C++ terminate message on the console, but the app has no C++ runtime"
    if signal != SIGABRT:
        return f"{found.what} aborts the program, the app ended with {signal or f'exit status {exit_status}'}"
    return None


def _go_hang(found: RuntimeReport, state_goroutines: list[dict] | None) -> tuple[list[list[dict]], list[str], list[str]]:
    """Each of the program's goroutines (not the runtime's) as the console printed it,
    its label, and notes on what the state's goroutines say."""
    hang, labels, notes = [], [], []
    for goroutine in found.goroutines:
        frames = _frames(goroutine.frames)
        own = next((f["function"] for f in frames if names.go_is_user(f["function"])), None)
        if own is None:
            continue  # the runtime's own goroutines (GC workers...), as Go leaves them out too
        hang.append(frames)
        labels.append(f"{own} on {goroutine.state}")
    if state_goroutines is not None:
        seen = {g.get("own_function") for g in state_goroutines if not g.get("system")} - {None}
        printed = {label.split(" on ", 1)[0] for label in labels}
        if seen and seen != printed:
            notes.append(f"the console's goroutines ({', '.join(sorted(printed))}) and the runtime's "
                         f"tables ({', '.join(sorted(seen))}) disagree")  # fmt: skip
        elif seen:
            notes.append("the runtime's goroutine tables name the same goroutines")
    return hang, sorted(labels), notes


def _go(found: RuntimeReport, state_frames: list[dict], state_goroutines: list[dict] | None) -> Verdict:
    guilty = found.guilty_goroutine
    frames = _frames(guilty.frames) if guilty and guilty.frames else state_frames
    if found.what == "go-fatal" and found.message.startswith("all goroutines are asleep"):
        hang, labels, notes = _go_hang(found, state_goroutines)
        if not hang and state_goroutines:
            hang = [g["frames"] for g in state_goroutines if not g.get("system") and g.get("frames")]
            labels = sorted(f"{g['own_function']} on {g.get('wait_reason') or g['status']}"
                            for g in state_goroutines if not g.get("system") and g.get("own_function"))  # fmt: skip
            notes.append("no goroutine trace on the console: the runtime's tables name them")
        verdict = Verdict(Outcome.HANG_DEADLOCK, "go-deadlock", frames, f"go-fatal: {found.message}",
                          hang=hang, hang_labels=labels, notes=notes)  # fmt: skip
        return verdict
    if found.what == "go-panic" and found.detail.get("signal"):
        kind = f"go-{found.detail['signal']}"
        if found.detail.get("addr") is not None and found.detail["addr"] < NULL_PAGE_LIMIT:
            kind += "-null"
        return Verdict(Outcome.APP_FAULT, kind, frames, f"go-panic: {_short(found.message)}")
    outcome = Outcome.APP_ABORT
    return Verdict(outcome, f"{found.what}-{consoles.slug(found.message, 8, quoted=False)}", frames,
                   f"{found.what}: {_short(found.message)}")  # fmt: skip


def _rust(found: RuntimeReport, state_frames: list[dict], exe: str | None) -> Verdict:
    notes: list[str] = []
    frames = _frames(found.frames)
    if not frames and exe and found.detail.get("file"):
        from osvgdb.model.symbols import ElfFile, SymbolsError

        try:
            at_line = ElfFile.open(exe).functions_at_line(found.detail["file"], found.detail["line"])
        except (SymbolsError, OSError, ValueError) as error:
            at_line = []
            notes.append(f"the panic's line is in no function known: {error}")
        if at_line:
            function = at_line[0]
            wanted = names.normalise(function)
            later = next((i for i, f in enumerate(state_frames)
                          if f.get("function") and names.normalise(f["function"]) == wanted), None)  # fmt: skip
            frames = [{"function": function, "file": found.detail["file"], "line": found.detail["line"],
                       "module": "app", "kind": "frame"}]  # fmt: skip
            if later is not None:
                frames += state_frames[later + 1 :]
                notes.append("the panic's line and the thread's frames agree on its function")
            else:
                notes.append("the panic's function from its FILE:LINE (the app's line programs)")
    if not frames:
        frames = state_frames
    if found.what == "rust-panic-in-panic":
        return Verdict(Outcome.APP_ABORT, "rust-panic-in-panic", frames,
                       f"rust-panic: panic in a panic: {_short(found.message)}", notes=notes)  # fmt: skip
    if found.what == "rust-fatal":
        return Verdict(Outcome.APP_ABORT, f"rust-fatal-{consoles.slug(found.message)}", frames,
                       f"rust-fatal: {_short(found.message)}", notes=notes)  # fmt: skip
    thread = found.detail.get("thread")
    message = _short(found.message)
    return Verdict(Outcome.APP_ABORT, f"rust-panic-{consoles.slug(found.message, 6, quoted=False)}", frames,
                   f"rust-panic: {message}", message=f"thread {thread}" if thread and thread != "main" else None,
                   notes=notes)  # fmt: skip


def _cxx(found: RuntimeReport, state_frames: list[dict]) -> Verdict:
    if found.what == "cxx-uncaught":
        exception = found.detail.get("type", "?")
        return Verdict(Outcome.APP_ABORT, f"cxx-uncaught-{_type_token(exception)}", state_frames,
                       f"uncaught {exception}", message=_short(found.message) or None)  # fmt: skip
    return Verdict(Outcome.APP_ABORT, f"cxx-terminate-{consoles.slug(found.message)}", state_frames,
                   f"std::terminate {found.message}")  # fmt: skip


def _libc(found: RuntimeReport, state_frames: list[dict]) -> Verdict:
    if found.what == "heap":
        problem = found.detail.get("problem", "heap corruption")
        return Verdict(Outcome.APP_ABORT, f"SIGABRT-heap-{consoles.slug(problem)}", state_frames,
                       f"heap: {problem}", message=found.message)  # fmt: skip
    if found.what == "assert":
        return Verdict(Outcome.APP_ABORT, "SIGABRT-assert", _from_function(found, state_frames),
                       "app-abort: SIGABRT-assert", message=found.message)  # fmt: skip
    if found.what == "libc-fatal":
        return Verdict(Outcome.APP_ABORT, "SIGABRT-libc-fatal", state_frames, "libc-fatal",
                       message=_short(found.message))  # fmt: skip
    return Verdict(Outcome.APP_ABORT, f"SIGABRT-{found.what}", state_frames, f"{found.what}: {found.message}")


def _from_function(found: RuntimeReport, state_frames: list[dict]) -> list[dict]:
    """An assertion names its function (both libcs print it): the frames from there on
    where the state has it, else that function alone (musl's libc has no CFI, so its
    abort's frames end in libc, before the program's)."""
    function = found.detail.get("function")
    if not function:
        return state_frames
    at = next((i for i, f in enumerate(state_frames) if f.get("function") == function), None)
    if at is not None:
        return state_frames[at:]
    return [{"function": function, "file": found.detail.get("file"), "line": found.detail.get("line"),
             "module": "app", "kind": "frame"}]  # fmt: skip


def interpret(found: RuntimeReport, *, state_frames: list[dict], state_goroutines: list[dict] | None,
              exe: str | None) -> Verdict:  # fmt: skip
    """The verdict of a report the state agrees with (see `agreement`)."""
    if found.runtime == "go":
        verdict = _go(found, state_frames, state_goroutines)
        if found.what != "go-fatal" or not found.message.startswith("all goroutines"):
            verdict.notes += _go_frames_agree(verdict.frames, state_frames)
        return verdict
    if found.runtime == "rust":
        return _rust(found, state_frames, exe)
    if found.runtime == "cxx":
        return _cxx(found, state_frames)
    return _libc(found, state_frames)


def _go_frames_agree(console_frames: list[dict], state_frames: list[dict]) -> list[str]:
    printed = next((f["function"] for f in console_frames if names.go_is_user(f["function"])), None)
    held = [names.normalise(f["function"]) for f in state_frames if f.get("function")]
    if printed is None or not held:
        return []
    if printed in held:
        return ["the panicking thread's frames hold the console's first frame"]
    return [f"the console's first frame {printed} is not on the exiting thread's stack"]
