"""What a triage report says about the stopped kernel, read through the model.

Pure: everything comes from a `Kernel` over any target (GDB's MI while QEMU
holds the guest stopped, or a dump read offline), the app's ELF, and the
`Event` that says why the guest stopped.  Live and offline triage call the same
functions on the same state, so their reports and signatures agree.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.decode.args import CallFormatter
from osvgdb.model import fscheck as fscheck_model
from osvgdb.model import goroutines as go_model
from osvgdb.model import unwind, wakes
from osvgdb.model.auxv import auxv_report
from osvgdb.model.kernel import Kernel
from osvgdb.model import symbols
from osvgdb.model.symbols import ElfImage
from osvgdb.model.syscalls import describe
from osvgdb.model.target import TargetError

LAST_SYSCALLS = 8
INSTRUCTION_BYTES = 16
NULL_PAGE_LIMIT = 0x10000  # a fault below this is a NULL pointer (plus a field offset)
STACK_SLACK = 0x10000  # a fault this close below a stack's end is a stack overflow
ERRORS = (TargetError, DecodeError, OSError, ValueError, KeyError)
SIGNAL_NAMES = {
    4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
    11: "SIGSEGV", 15: "SIGTERM",
}  # fmt: skip


@dataclass
class Event:
    """Why and where the guest stopped (kept in a dump's sidecar for offline triage).

    reason: exit (process_exit was called), panic (osv_panic_halt on the
    panicking CPU), fscheck (fscheck_violation), reset (a triple fault paused
    QEMU), timeout (no exit in time: see samples), qemu-died, gdb-died, none.
    """

    reason: str
    vcpu: int | None = None  # GDB's thread number of the vCPU that stopped
    exit_status: int | None = None  # process_exit's argument
    fscheck_broken: int | None = None
    fscheck_state: int | None = None
    samples: list[dict] = field(default_factory=list)  # a hang's vCPU samples
    busy_frames: list[list[dict]] = field(default_factory=list)  # a busy hang: per thread
    qemu_status: int | None = None  # qemu-died: its exit status (-N: killed by signal N)
    detail: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Event:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def signal_name(sig: int | None) -> str:
    return SIGNAL_NAMES.get(sig or 0, f"signal {sig}")


def _field(values: dict, name: str) -> int | None:
    value = values.get(name)
    return None if value is None else int(value)


def app_started(kernel: Kernel) -> bool | None:
    """Whether the kernel reached the app's entry (process.app_started; None for a
    kernel without the field, which cannot say)."""
    value = kernel.process(("app_started",))["app_started"]
    return None if value is None else bool(value)


def app_image(kernel: Kernel, app_path: str | os.PathLike | None) -> ElfImage | None:
    """The app's ELF placed where the kernel loaded it (a static-pie at its load base)."""
    if app_path is None or not Path(app_path).exists():
        return None
    return symbols.app_image(kernel, app_path)


def app_runtime(app: ElfImage | None) -> str | None:
    """Which language runtime the app carries, from its symbols: go (runtime.allgs),
    rust (std's panic entry), cxx (__cxa_throw), else c; None without the app's ELF."""
    if app is None:
        return None
    if go_model.is_go(app):
        return "go"
    if app.address_of("rust_begin_unwind") is not None or app.address_of("__rust_start_panic") is not None:
        return "rust"
    if app.address_of("__cxa_throw") is not None:
        return "cxx"
    return "c"


def fatal_report(kernel: Kernel) -> dict | None:
    """The kernel's fatal_report: the signal that ended the app, where and why (None if none)."""
    if not kernel.has("fatal_report"):
        return None
    layout = kernel.target.layout("fatal_report")
    names = [n for n in ("sig", "cause", "cpu", "tid", "vector", "error_code", "cr2", "rip", "rsp",
                         "trap_frame", "syscall_frame") if n in layout.fields]  # fmt: skip
    values = layout.codec(names).unpack(kernel.read(kernel.address("fatal_report"), layout.size))
    sig = _field(values, "sig")
    if not sig:
        return None
    causes = {v: k for k, v in kernel.enum_values("fatal_cause").items()} if _has_enum(
        kernel, "fatal_cause"
    ) else {}
    cause = causes.get(_field(values, "cause"), str(values.get("cause")))
    return {
        "signal": sig,
        "signal_name": signal_name(sig),
        "cause": cause.removeprefix("FATAL_").lower().replace("_", "-"),
        **{n: _field(values, n) for n in names if n not in ("sig", "cause")},
    }


def _has_enum(kernel: Kernel, name: str) -> bool:
    try:
        kernel.enum_values(name)
    except TargetError:
        return False
    return True


def instruction(kernel: Kernel, rip: int) -> dict:
    """The instruction at rip: its bytes and objdump's reading of them."""
    data = kernel.reader(rip, INSTRUCTION_BYTES)
    if data is None:
        return {"bytes": None, "text": "(unreadable)"}
    with tempfile.NamedTemporaryFile(suffix=".bin") as scratch:
        scratch.write(data)
        scratch.flush()
        try:
            listing = subprocess.run(
                ["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={rip:#x}",
                 scratch.name],
                capture_output=True, text=True, timeout=10, check=False,
            ).stdout  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            listing = ""
    for line in listing.splitlines():
        match = re.match(r"\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*(.*)", line)
        if match and int(match.group(1), 16) == rip:
            length = len(match.group(2).split())
            return {"bytes": data[:length].hex(), "text": " ".join(match.group(3).split())}
    return {"bytes": data.hex(), "text": "(not decoded)"}


def _symbolized(kernel: Kernel, app: ElfImage | None, address: int) -> dict:
    """Where an address is: module, function (+offset), source line."""
    module, image = unwind.Images(unwind.kernel_image(kernel), app).find(address)
    where: dict = {"address": address, "module": module, "function": None, "offset": 0,
                   "file": None, "line": None}  # fmt: skip
    if image is not None:
        where["function"], where["offset"] = image.symbolize(address)
        source = image.source(address)
        if source is not None:
            where["file"], where["line"] = source
    return where


def fault(kernel: Kernel, app: ElfImage | None, fatal: dict) -> dict:
    """The exception or signal that ended the app: registers from its entry frame."""
    registers: dict[str, int] = {}
    try:
        if fatal.get("trap_frame"):
            layout = kernel.trap_frame_layout
            frame = frames_decode.decode_trap_frame(
                kernel.read(fatal["trap_frame"], layout.size), layout, fatal["trap_frame"]
            )
            registers = frame.interrupted_registers()
        elif fatal.get("syscall_frame"):
            layout = kernel.syscall_frame_layout
            frame = frames_decode.decode_syscall_frame(
                kernel.read(fatal["syscall_frame"], layout.size), layout, fatal["syscall_frame"]
            )
            registers = frame.app_registers()
    except ERRORS as error:
        registers = {}
        fatal = {**fatal, "registers_error": str(error)}
    rip = registers.get("rip", fatal.get("rip") or 0)
    data = {
        **fatal,
        "vector_name": kernel.vectors.name(fatal["vector"])
        if fatal.get("cause") == "exception" and fatal.get("vector") is not None
        else None,
        "registers": registers,
        "location": _symbolized(kernel, app, rip),
        "instruction": instruction(kernel, rip) if rip else None,
    }
    data["kind"] = fault_kind(data)
    return data


def fault_kind(data: dict) -> str:
    """The fault in words, without numbers: SIGSEGV-null-write, SIGSEGV-stack-overflow..."""
    kind = data.get("signal_name") or "fault"
    if data.get("cause") != "exception" or data.get("signal") not in (7, 11):
        return kind
    cr2, error = data.get("cr2") or 0, data.get("error_code") or 0
    rsp = data.get("registers", {}).get("rsp", data.get("rsp") or 0)
    if cr2 < NULL_PAGE_LIMIT:
        kind += "-null"
    elif rsp and abs(cr2 - rsp) < STACK_SLACK:
        return kind + "-stack-overflow"
    if data.get("vector") == frames_decode.PAGE_FAULT:
        kind += "-exec" if error & 16 else "-write" if error & 2 else "-read"
    return kind


def cpus_and_threads(kernel: Kernel) -> tuple[list, list]:
    threads = kernel.threads()
    return kernel.cpus(threads), threads


def vcpu_entries(kernel: Kernel, app: ElfImage | None, cpus: list, threads: list) -> list[dict]:
    by_address = {t.address: t for t in threads}
    protocol = kernel.fs_protocol()  # the rules the verdicts follow
    result = []
    for cpu in cpus:
        owner = by_address.get(cpu.current) if cpu.current else None
        result.append(
            {
                "vcpu": cpu.vcpu,
                "cpu": cpu.index,
                "mode": cpu.where,
                "rip": cpu.rip,
                "location": _symbolized(kernel, app, cpu.rip),
                "gs_base": cpu.gs_base,
                "kernel_tcb": cpu.kernel_tcb,
                "fs_base": cpu.fs_base,
                "fs_owner": cpu.fs_owner,
                "counter": cpu.counter,
                "current_tid": cpu.current_tid,
                "current_name": owner.name if owner else None,
                "fs_protocol": protocol,
                "fast_path": cpu.fast_path,
                "preempt_count": cpu.preempt_count,
                "verdict": cpu.verdict,
                "problems": list(cpu.problems),
            }
        )
    return result


def _thread_waits(kernel: Kernel, thread) -> dict:
    names = ["is_app", "futex_addr", "wake_time", "clear_child_tid"]
    if kernel.thread_layout.has("wait_chan"):  # kernels before pipes have none
        names.append("wait_chan")
    codec = kernel.thread_layout.codec(names)
    return codec.unpack(kernel.read(thread.address, kernel.thread_layout.size))


def wait_of(kernel: Kernel, thread, waits: dict, everyone: dict, history: dict | None = None) -> dict | None:
    """What a blocked thread waits on, and who holds it where that is knowable;
    `history` is futex_waits' entry for it (the value it slept on, a lost wake-up)."""
    if thread.state != "blocked":
        return None
    futex, wake_time = int(waits.get("futex_addr") or 0), int(waits.get("wake_time") or 0)
    chan = int(waits.get("wait_chan") or 0)
    if chan:
        # sched_wait's channel: a struct pipe (a read or write), or pipe_events (poll, select)
        polls = kernel.has("pipe_events") and chan == kernel.address("pipe_events")
        return {"kind": "pipe", "chan": chan, "poll": polls, "timed": bool(wake_time)}
    if not futex:
        return {"kind": "sleep" if wake_time else "blocked", "timed": bool(wake_time)}
    wait: dict = {"kind": "futex", "futex": futex, "timed": bool(wake_time)}
    word = kernel.reader(futex, 4)
    if word is not None:
        wait["value"] = int.from_bytes(word, "little")
    wait.update(history or {})
    # pthread_join waits on the joined thread's tid word (CLONE_CHILD_CLEARTID)
    for other, other_waits in everyone.values():
        if int(other_waits.get("clear_child_tid") or 0) == futex and other is not thread:
            wait.update(holder_tid=other.tid, how="pthread_join waits for it to exit")
            return wait
    # glibc's pthread_mutex_t: __lock at 0, __owner (a tid) at 8, and its waiters sleep on
    # __lock with 2; musl's: the owner's tid in the lock word, which its waiters set bit 31
    # of and sleep on (a glibc condvar's word of 3 is no tid). Only an app thread can hold
    # an app's lock (a word of 0 is no kernel thread's). Without the history's call, both
    # layouts are tried.
    apps = {t.tid for t, w in everyone.values() if w.get("is_app")} - {thread.tid}
    expected = wait.get("expected")
    owner = kernel.reader(futex + 8, 4)
    if owner is not None and expected in (None, 2):
        tid = int.from_bytes(owner, "little")
        if tid in apps:
            wait.update(holder_tid=tid, how="it holds the pthread_mutex_t (its __owner, glibc layout, read now)")
            return wait
    if word is not None and (expected is None or expected & 0x80000000):
        value = int.from_bytes(word, "little")
        if value & 0x80000000 and (value & 0x3FFFFFFF) in apps:
            wait.update(holder_tid=value & 0x3FFFFFFF,
                        how="it holds the lock (the lock word has its tid, musl layout, read now)")  # fmt: skip
    return wait


def syscalls_by_thread(kernel: Kernel, records: list) -> dict[int, list[dict]]:
    """Each thread's last LAST_SYSCALLS calls, oldest first, decoded as osv-syscalls does."""
    formatter = CallFormatter(kernel.reader)
    tsc_per_ms = kernel.tsc_per_ms()
    by_tid: dict[int, list] = {}
    for record in records:
        by_tid.setdefault(record.tid, []).append(record)
    result = {}
    for tid, mine in by_tid.items():
        result[tid] = [_call(describe(r, kernel, formatter, tsc_per_ms)) for r in mine[-LAST_SYSCALLS:]]
    return result


def futex_waits(kernel: Kernel, everyone: dict, records: list) -> dict[int, dict]:
    """Each blocked futex waiter's wait as the history has it (the value it slept on, and
    whether the word still holds it), and the wake-ups the kernel lost (model/wakes.py),
    by tid."""
    name = kernel.syscalls.name
    waiters = []
    for thread, waits in everyone.values():
        if thread.state != "blocked" or not waits.get("futex_addr"):
            continue
        try:
            call = wakes.waiting_call(kernel.thread_call(thread.address), name)
        except ERRORS:
            continue  # its history slot is unreadable: its wait is told without the history
        if call is None or call.args[0] != int(waits["futex_addr"]):
            continue  # requeued elsewhere, or the history lost its call
        word = kernel.reader(call.args[0], 4)
        waiters.append(wakes.Waiter(thread.tid, call, int.from_bytes(word, "little") if word is not None else None))
    wrapped = {i for i in {r.ring for r in records} if kernel.ring_header(i).head > kernel.ring_capacity}
    live = {thread.tid for thread, _ in everyone.values()}
    found = {w.tid: w for w in wakes.lost_wakes(waiters, records, name, live, wakes.complete_since(records, wrapped))}
    result = {}
    for waiter in waiters:
        result[waiter.tid] = {"expected": waiter.expected, "stale": waiter.stale}
        if waiter.tid in found:
            result[waiter.tid]["lost_wake"] = found[waiter.tid].as_dict()
    return result


def _call(described: dict) -> dict:
    keep = ("seq", "cpu", "tid", "name", "text", "state", "memory_now", "duration_ms")
    return {**{k: described.get(k) for k in keep}, "returned": described.get("state") == "done"}


def threads_entries(
    kernel: Kernel, app: ElfImage | None, threads: list, cpus: list
) -> tuple[list[dict], list[str], dict]:
    """Every thread, on a CPU or not: state, wait, backtrace, syscalls; collection errors;
    and the backtraces by tid."""
    problems: list[str] = []
    everyone = {}
    for thread in threads:
        try:
            everyone[thread.address] = (thread, _thread_waits(kernel, thread))
        except ERRORS as error:
            everyone[thread.address] = (thread, {})
            problems.append(f"tid {thread.tid}: {error}")
    try:
        backtraces = unwind.backtraces(kernel, app, threads=threads, cpus=cpus)
    except ERRORS as error:
        backtraces = {}
        problems.append(f"backtraces: {error}")
    calls, futexes = {}, {}
    try:
        records, errors = kernel.history()
        problems += errors
        calls = syscalls_by_thread(kernel, records)
        futexes = futex_waits(kernel, everyone, records)
    except ERRORS as error:
        problems.append(f"syscall history: {error}")
    running = {cpu.current: cpu.vcpu for cpu in cpus if cpu.current}
    result = []
    for thread, waits in everyone.values():
        backtrace = backtraces.get(thread.tid)
        mine = calls.get(thread.tid, [])
        in_flight = next((c for c in reversed(mine) if not c["returned"]), None)
        result.append(
            {
                "tid": thread.tid,
                "name": thread.name,
                "state": thread.state,
                "app": bool(waits.get("is_app")),
                "cpu": thread.cpu,
                "on_vcpu": running.get(thread.address),
                "tcb": thread.tcb,
                "app_tcb": thread.app_tcb,
                "counter": thread.counter,
                "problems": list(thread.problems),
                "wait": wait_of(kernel, thread, waits, everyone, futexes.get(thread.tid)) if waits else None,
                "backtrace": backtrace.as_dict() if backtrace is not None else None,
                "syscalls": {"in_flight": in_flight, "last": mine},
            }
        )
    return result, problems, backtraces


def fscheck(kernel: Kernel, event: Event) -> dict | None:
    if event.reason != "fscheck" or event.fscheck_state is None:
        return None
    gs_base = next(
        (v.gs_base for v in kernel.target.vcpus() if v.num == event.vcpu), 0
    )
    explanation = fscheck_model.explain(kernel, event.fscheck_broken or 0, event.fscheck_state, gs_base)
    return {
        "text": explanation.text,
        "location": explanation.location,
        "rules": explanation.rules,
        "cpu": explanation.cpu,
        "tid": explanation.tid,
        "disagreement": explanation.disagreement,
    }


def auxv(kernel: Kernel, app_path: str | None) -> dict | None:
    data = auxv_report(kernel, app_path)
    load = kernel.process(("load_base", "entry"))
    data["load_base"] = int(load["load_base"] or 0)
    data["entry"] = int(load["entry"] or 0)
    return data
