"""A triage report: the outcome, the signature, and what was found, as one dict.

`Report` gathers what each step produced and how long it took; a step that
fails or times out leaves its section out and says so in `steps` (and the
report is `partial`), so there is always a report.  `as_dict()` is the JSON
(report.schema.json: SCHEMA_VERSION); the Markdown and JUnit renderers read
that same dict.
"""

from __future__ import annotations

import re
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

from osvgdb.model import names
from osvgdb.triage import console as consoles
from osvgdb.triage import runtime as runtimes
from osvgdb.triage import signature as signatures
from osvgdb.triage.collect import Event, signal_name
from osvgdb.triage.outcome import EXIT_STATUS, Outcome

SCHEMA = "osvgdb-triage-report"
SCHEMA_VERSION = 1
CONSOLE_TAIL = 40
TITLE_LENGTH = 120
# What glibc and musl print before an abort, and what the abort is then called.
# The console a report keeps: the kernel's lines as they are, the app's marked by stream.
STREAM_MARKS = {"console": "", "stdout": "1| ", "stderr": "2| "}
_STREAM_MARK = re.compile(r"^[12]\| ")

ABORT_KINDS = (
    (re.compile(r"stack smashing detected"), "stack-smashing"),
    (re.compile(r"Assertion .* failed"), "assert"),
    (re.compile(r"buffer overflow detected|fortify"), "fortify"),
    (re.compile(r"double free|free\(\): |malloc\(\): |corrupted"), "heap-corruption"),
)

@dataclass
class Report:
    command: list[str]
    exe: str | None
    steps: list[dict] = field(default_factory=list)
    sections: dict = field(default_factory=dict)  # what the steps found, by section name
    event: Event = field(default_factory=lambda: Event("none"))
    outcome: Outcome = Outcome.INFRASTRUCTURE
    kind: str = ""
    guilty_tid: int | None = None
    signature: signatures.Signature | None = None
    title: str = ""
    console: str = ""
    versions: dict = field(default_factory=dict)
    runtime_report: dict | None = None  # what a runtime printed, and whether the state agrees

    @contextmanager
    def step(self, name: str):
        """Time one step; an error in it is recorded (the report goes on, partial)."""
        start = time.monotonic()
        entry: dict = {"step": name, "ok": True}
        self.steps.append(entry)
        try:
            yield entry
        except Exception as error:  # a step's failure is the report's content, not a crash
            entry["ok"] = False
            entry["error"] = _one_line(error)
            if not isinstance(error, _EXPECTED):
                entry["internal"] = traceback.format_exception_only(error)[-1].strip()
        finally:
            entry["seconds"] = round(time.monotonic() - start, 3)

    @property
    def partial(self) -> bool:
        return any(not s["ok"] for s in self.steps)

    def timings(self) -> dict[str, float]:
        return {s["step"]: s["seconds"] for s in self.steps}

    def as_dict(self) -> dict:
        assert self.signature is not None, "classify() first"
        return {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "outcome": self.outcome.value,
            "exit_status": EXIT_STATUS[self.outcome],
            "title": self.title,
            "signature": self.signature.signature,
            "signature_hash": self.signature.hash,
            "proto_signature": self.signature.proto_signature,
            "notes": self.signature.notes,
            "kind": self.kind,
            "guilty_tid": self.guilty_tid,
            "partial": self.partial,
            "steps": self.steps,
            "timings": self.timings(),
            "versions": self.versions,
            "command": self.command,
            "exe": self.exe,
            "event": self.event.as_dict(),
            "console_tail": self.console.splitlines()[-CONSOLE_TAIL:],
            "app_exit_status": self.app_exit_status,
            "runtime_report": self.runtime_report,
            "corrupted": bool(self.runtime_report and self.runtime_report["corrupted"]),
            **self.sections,
        }

    @property
    def app_exit_status(self) -> int | None:
        """The status the app ended with, as its parent would see it (128 + N for a fatal
        signal N), or None when it did not end."""
        if self.event.reason != "exit":
            return None
        fatal = self.sections.get("fault")
        return 128 + fatal["signal"] if fatal else self.event.exit_status


# Errors a step expects (the target, the tools); anything else is ours, noted as internal.
_EXPECTED: tuple[type[BaseException], ...] = (OSError, LookupError, ValueError, RuntimeError)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _thread(report: Report, tid: int | None) -> dict | None:
    return next((t for t in report.sections.get("threads", []) if t["tid"] == tid), None)


def _frames(thread: dict | None) -> list[dict]:
    if not thread or not thread.get("backtrace"):
        return []
    return thread["backtrace"]["frames"]


def _vcpu_thread(report: Report, vcpu: int | None) -> int | None:
    for entry in report.sections.get("vcpus", []):
        if entry["vcpu"] == vcpu:
            return entry["current_tid"]
    return None


def abort_kind(console: str) -> str:
    for pattern, kind in ABORT_KINDS:
        if pattern.search(console):
            return kind
    return "abort"


def app_stderr(console: str) -> str:
    """What the app wrote on fd 2, unmarked, in order: where runtimes and libc print
    their reports (Go's panic, Rust's, libstdc++'s terminate, glibc's checks), apart
    from the kernel's lines and the app's stdout. A console with no marked line (saved
    before the streams were apart) is taken whole."""
    lines = console.splitlines()
    if not any(_STREAM_MARK.match(line) for line in lines):
        return console
    mark = STREAM_MARKS["stderr"]
    return "".join(line[len(mark) :] + "\n" for line in lines if line.startswith(mark))


def abort_message(console: str) -> str | None:
    lines = [
        _STREAM_MARK.sub("", line).strip()
        for line in console.splitlines()
        if any(pattern.search(line) for pattern, _ in ABORT_KINDS)
    ]
    if not lines:
        return None
    # glibc says "PROG: FILE:LINE: FUNCTION: Assertion `X' failed.": the title has the rest
    line = lines[-1]
    return line[line.index("Assertion") :] if "Assertion" in line else line


def _panic_kind(panic: dict) -> str:
    if panic.get("vector_name"):
        return str(panic["vector_name"])
    words = re.sub(r"0x[0-9a-fA-F]+|\d+", "", str(panic.get("message", ""))).split()
    return "panic-" + "-".join(w.strip(":,.()").lower() for w in words[:6] if w.strip(":,.()"))


def _qemu_kind(status: int | None) -> str:
    if status is not None and status < 0:
        try:
            return "killed-" + signal.Signals(-status).name
        except ValueError:
            return "killed"
    return "exited" if status is None else f"exit-status-{status}"


def classify(report: Report) -> None:
    """The outcome, the fault's kind, the guilty thread, the signature and the title."""
    event, sections = report.event, report.sections
    fatal, panic, fscheck = sections.get("fault"), sections.get("panic"), sections.get("fscheck")
    started = sections.get("app_started")
    module: str | None = "app"
    frames: list[dict] = []
    hang_threads: list[list[dict]] | None = None
    failed = [s for s in report.steps if not s["ok"]]

    if event.reason == "fscheck" and fscheck:
        outcome, module = Outcome.KERNEL_PANIC, "kernel"
        kind = "fs-base-" + "+".join(r for r in fscheck["rules"] if r != "disagreement")
        report.guilty_tid = fscheck.get("tid")
        # Where the rule broke names the bug; which crossing hit it first is chance.
        frames = [{"function": fscheck["location"], "module": "kernel", "kind": "frame"}]
    elif event.reason == "panic":
        outcome, module = Outcome.KERNEL_PANIC, "kernel"
        kind = _panic_kind(panic or {})
        report.guilty_tid = _vcpu_thread(report, event.vcpu)
        frames = _frames(_thread(report, report.guilty_tid)) or (panic or {}).get("frames", [])
    elif event.reason == "reset":
        outcome, module, kind = Outcome.TRIPLE_FAULT, "kernel", "reset"
        report.guilty_tid = _vcpu_thread(report, event.vcpu or 1)
        frames = _frames(_thread(report, report.guilty_tid))
    elif event.reason == "exit" and started is False:
        outcome, kind = Outcome.BOOT_FAILURE, f"status-{event.exit_status}"
    elif event.reason == "exit" and fatal is not None:
        report.guilty_tid = fatal.get("tid")
        frames = _frames(_thread(report, report.guilty_tid))
        if fatal.get("cause") == "exception":
            outcome, kind = Outcome.APP_FAULT, fatal.get("kind") or signal_name(fatal["signal"])
        elif fatal.get("signal") == 6:
            outcome, kind = Outcome.APP_ABORT, "SIGABRT-" + abort_kind(report.console)
        else:
            outcome, kind = Outcome.EXIT_STATUS, signal_name(fatal.get("signal"))
    elif event.reason == "exit":
        status = event.exit_status
        outcome = Outcome.PASSED if status == 0 else Outcome.EXIT_STATUS
        kind = f"status-{status}"
        if outcome is Outcome.EXIT_STATUS:
            report.guilty_tid = _vcpu_thread(report, event.vcpu)
            frames = _frames(_thread(report, report.guilty_tid))
    elif event.reason == "timeout" and started is False:
        outcome, kind = Outcome.BOOT_FAILURE, "hang"
    elif event.reason == "timeout" and event.busy_frames:
        outcome, kind, module = Outcome.HANG_BUSY, "busy", None
        hang_threads = event.busy_frames
    elif event.reason == "timeout" and (lost := lost_wakes(report)):
        # The kernel lost a wake-up (model/wakes.py): its bug, named by the function every
        # futex wake goes through, whichever of the app's threads it left asleep.
        outcome, kind, module = Outcome.HANG_DEADLOCK, "lost-wake", "kernel"
        report.guilty_tid = lost[0]["tid"]
        frames = [{"function": lost[0]["waker"], "module": "kernel", "kind": "frame"}]
    elif event.reason == "timeout":
        outcome = Outcome.HANG_DEADLOCK
        blocked = [t for t in sections.get("threads", []) if t["app"] and t["state"] == "blocked"]
        waits = {(t.get("wait") or {}).get("kind") for t in blocked}
        kind = "futex" if waits == {"futex"} else "blocked"
        hang_threads = [_frames(t) for t in blocked]
    elif event.reason == "qemu-died":
        outcome, kind = Outcome.QEMU_DIED, _qemu_kind(event.qemu_status)
    else:
        outcome = Outcome.INFRASTRUCTURE
        kind = failed[0]["step"] if failed else event.reason

    if event.reason == "timeout" and kind != "lost-wake" and sections.get("goroutines") and started is not False:
        outcome, kind, hang_threads = _go_hang(sections["goroutines"], outcome, kind, hang_threads)
        module = "app"
    report.outcome, report.kind = outcome, kind
    verdict = _runtime_verdict(report, frames)
    if verdict is not None:
        report.outcome, report.kind = verdict.outcome, verdict.kind
        if verdict.hang is not None:
            report.signature = signatures.make_hang(verdict.outcome.value, verdict.kind, verdict.hang, "app")
        else:
            report.signature = signatures.make(verdict.outcome.value, verdict.kind, verdict.frames, "app")
        report.signature.notes += verdict.notes
        report.title = _runtime_title(report, verdict)
        return
    if hang_threads is not None:
        report.signature = signatures.make_hang(outcome.value, kind, hang_threads, module)
    elif outcome in (Outcome.PASSED, Outcome.BOOT_FAILURE, Outcome.QEMU_DIED, Outcome.INFRASTRUCTURE):
        report.signature = signatures.make(outcome.value, kind, [], None)
    else:
        report.signature = signatures.make(outcome.value, kind, frames, module)
    report.title = title(report, frames, module)


def lost_wakes(report: Report) -> list[dict]:
    """The wake-ups the kernel lost, one per thread left asleep (collect.futex_waits)."""
    waits = [t.get("wait") or {} for t in report.sections.get("threads", [])]
    return [w["lost_wake"] for w in waits if w.get("lost_wake")]


def _go_hang(goroutines: list[dict], outcome: Outcome, kind: str,
             threads: list[list[dict]] | None) -> tuple[Outcome, str, list[list[dict]] | None]:  # fmt: skip
    """A Go program's hang is its goroutines' (rule 6), as the runtime's tables have them,
    not its threads': an M's thread runs whichever goroutine the scheduler gave it, and the
    runtime's own threads (sysmon) wake now and then whatever the program does. Busy when
    a goroutine of the program runs or waits only for a CPU (running, runnable,
    preempted), named by those; else blocked, named by every goroutine of the program."""
    mine = [g for g in goroutines if not g.get("system") and g.get("frames")]
    if not mine:
        return outcome, kind, threads
    busy = [g for g in mine if g["status"] in ("running", "runnable", "preempted")]
    if busy:
        return Outcome.HANG_BUSY, "busy", [g["frames"] for g in busy]
    return Outcome.HANG_DEADLOCK, kind if outcome is Outcome.HANG_DEADLOCK else "blocked", [g["frames"] for g in mine]


def _runtime_verdict(report: Report, frames: list[dict]) -> runtimes.Verdict | None:
    """The runtime's report on the console, checked against the state (runtime.py)."""
    found = consoles.first(app_stderr(report.console)) if report.console else None
    if found is None:
        return None
    event, sections = report.event, report.sections
    fatal = sections.get("fault")
    if event.reason != "exit" or sections.get("app_started") is False:
        disagreement: str | None = f"the app did not end ({event.reason}): the report is not how it ended"
    else:
        disagreement = runtimes.agreement(
            found, runtime=sections.get("runtime"),
            exit_status=None if fatal else event.exit_status, signal=fatal["signal"] if fatal else None,
        )  # fmt: skip
    report.runtime_report = {**found.as_dict(), "agrees": disagreement is None,
                             "disagreement": disagreement, "notes": []}  # fmt: skip
    if disagreement is not None:
        return None
    verdict = runtimes.interpret(found, state_frames=frames, state_goroutines=sections.get("goroutines"),
                                 exe=report.exe)  # fmt: skip
    if found.corrupted:
        verdict.notes.append("corrupted report: " + "; ".join(found.problems))
    report.runtime_report["notes"] = verdict.notes
    return verdict


def _runtime_title(report: Report, verdict: runtimes.Verdict) -> str:
    if verdict.hang is not None:
        text = verdict.headline + (f" ({', '.join(verdict.hang_labels)})" if verdict.hang_labels else "")
    else:
        assert report.signature is not None
        kept = report.signature.signature.split(":", 3)[-1].split(" | ")[0]
        text = verdict.headline + (f" in {kept}" if kept else "")
        if verdict.message:
            text += f": {verdict.message}"
    if report.runtime_report and report.runtime_report["corrupted"]:
        text = "corrupted report: " + text
    text = " ".join(text.split())
    return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 3] + "..."


def _where(frames: list[dict], module: str | None) -> str:
    """'in f (file.c:12)' for the first frame the signature kept."""
    notes: list[str] = []
    kept, _ = signatures.top_frames(frames, module, notes)
    if not kept:
        return ""
    for frame in frames:
        if frame.get("function") and signatures.normalise(frame["function"]) == kept[0]:
            place = f" ({frame['file'].rsplit('/', 1)[-1]}:{frame['line']})" if frame.get("file") else ""
            return f" in {names.demangle(frame['function'])}{place}"
    return f" in {kept[0]}"


def title(report: Report, frames: list[dict], module: str | None) -> str:
    outcome, kind = report.outcome, report.kind
    sections = report.sections
    if outcome is Outcome.PASSED:
        text = "passed: exit status 0"
    elif outcome is Outcome.APP_ABORT:
        message = abort_message(report.console)
        text = f"app-abort: {kind}{_where(frames, module)}" + (f": {message}" if message else "")
    elif kind == "lost-wake":
        lost = lost_wakes(report)[0]
        waker = f"tid {lost['by']}'s exit" if lost["how"] == "exit" else f"tid {lost['by']}'s FUTEX_WAKE"
        name = next((t["name"] for t in sections.get("threads", []) if t["tid"] == lost["tid"]), "")
        text = (f"{outcome.value}: {kind} in {lost['waker']}: tid {lost['tid']} {name} still asleep on "
                f"{lost['futex']:#x} after {waker} (seq {lost['seq']})")
    elif outcome in (Outcome.HANG_DEADLOCK, Outcome.HANG_BUSY):
        kept = report.signature.signature.split(":", 3)[-1] if report.signature else ""
        text = f"{outcome.value}: {kept or 'no frames'}"
        goroutines = [g for g in sections.get("goroutines") or [] if not g.get("system")]
        if goroutines:
            text += " (goroutines: " + ", ".join(
                f"{g.get('own_function') or '?'} {g.get('wait_reason') or g['status']}" for g in goroutines
            ) + ")"
    elif outcome is Outcome.KERNEL_PANIC and sections.get("fscheck"):
        fscheck = sections["fscheck"]
        text = f"kernel-panic: FS-base rule {', '.join(fscheck['rules'])} broken at {fscheck['location']}"
    elif outcome is Outcome.KERNEL_PANIC and sections.get("panic"):
        text = f"kernel-panic: {sections['panic'].get('message', kind)}{_where(frames, module)}"
    elif outcome is Outcome.INFRASTRUCTURE:
        failed = [s for s in report.steps if not s["ok"]]
        text = f"infrastructure: {failed[0]['step']}: {failed[0]['error']}" if failed else "infrastructure"
    elif outcome in (Outcome.BOOT_FAILURE, Outcome.QEMU_DIED):
        text = f"{outcome.value}: {kind}" + (f": {report.event.detail}" if report.event.detail and report.event.detail != kind else "")
    else:
        text = f"{outcome.value}: {kind}{_where(frames, module)}"
    text = " ".join(text.split())
    return text if len(text) <= TITLE_LENGTH else text[: TITLE_LENGTH - 3] + "..."
