"""osv-bt's report: which kernel threads, and their backtraces through the entry crossings.

`bt_report` picks the threads (the one a vCPU runs, one by tid, or all) and unwinds
them with osvgdb.model.unwind: a thread on a vCPU from that vCPU's registers, any
other from what switch_context saved at its kernel_rsp. `bt_data` is what
`osv-bt --json` prints and MI's -osv-bt returns (the TUI's backtrace pane);
`format_bt` its text. `goroutine_entries`: a Go program's goroutines with theirs. Pure: the kernel comes through the model's Kernel, so the
same report comes from a live GDB target and from a dump.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from osvgdb.decode.tcb import CpuInfo, ThreadInfo
from osvgdb.model import names, unwind
from osvgdb.model.kernel import Kernel
from osvgdb.model.symbols import ElfImage
from osvgdb.model.target import TargetError

FRAME_FIELDS = (
    "function", "file", "line", "address", "module", "kind", "offset", "guessed"
)  # fmt: skip


@dataclass
class ThreadBacktrace:
    thread: ThreadInfo
    cpu: CpuInfo | None  # the CPU running it, None when it is not on one
    backtrace: unwind.Backtrace


def select_threads(
    threads: list[ThreadInfo],
    cpus: list[CpuInfo],
    *,
    cpu: int | None = None,
    tid: int | None = None,
    all_threads: bool = False,
    vcpu: int | None = None,
) -> list[ThreadInfo]:
    """Every thread (all_threads), thread `tid`, the thread cpus[`cpu`] runs, or the
    thread the vCPU numbered `vcpu` (GDB's thread number) runs. TargetError, one
    line, for a tid, CPU or vCPU that is not there or runs no thread."""
    if all_threads:
        return [t for t in threads if t.tid >= 0]
    if tid is not None:
        found = [t for t in threads if t.tid == tid]
        if not found:
            raise TargetError(f"no thread {tid}")
        return found
    if cpu is not None:
        running = next((c for c in cpus if c.index == cpu), None)
        if running is None:
            raise TargetError(f"no CPU {cpu}")
        where = f"CPU {cpu}"
    else:
        running = next((c for c in cpus if c.vcpu == vcpu), None)
        if running is None:
            raise TargetError(f"no vCPU {vcpu}")
        if running.index is None:
            raise TargetError(f"vCPU {vcpu} is not a started CPU (GS base {running.gs_base:#x})")
        where = f"CPU {running.index} (vCPU {vcpu})"
    found = [t for t in threads if running.current and t.address == running.current]
    if not found:
        raise TargetError(f"{where} runs no thread the kernel lists (current {running.current:#x})")
    return found


def _truncated(trace: unwind.Backtrace, max_depth: int) -> unwind.Backtrace:
    if len(trace.frames) > max_depth:
        trace.frames = trace.frames[:max_depth]
        trace.complete = False
        trace.stopped = f"depth limit {max_depth}"
    return trace


def bt_report(
    kernel: Kernel,
    app: ElfImage | str | os.PathLike | None,
    *,
    cpu: int | None = None,
    tid: int | None = None,
    all_threads: bool = False,
    vcpu: int | None = None,
    max_depth: int = unwind.MAX_DEPTH,
    vcpu_registers: dict[int, dict[str, int]] | None = None,
) -> list[ThreadBacktrace]:
    """The backtraces of the threads select_threads picks, in the kernel's thread
    order, at most `max_depth` frames each. `app` and `vcpu_registers` (every register
    of a vCPU, for a target whose vCPUs carry fewer): as unwind.backtraces takes them."""
    threads = kernel.threads()
    cpus = kernel.cpus(threads)
    chosen = select_threads(threads, cpus, cpu=cpu, tid=tid, all_threads=all_threads, vcpu=vcpu)
    traces = unwind.backtraces(
        kernel, app, threads=chosen, cpus=cpus, vcpu_registers=vcpu_registers
    )
    on_cpu = {c.current: c for c in cpus if c.current and c.index is not None}
    return [
        ThreadBacktrace(t, on_cpu.get(t.address), _truncated(traces[t.tid], max_depth))
        for t in chosen
        if t.tid in traces
    ]


def frame_data(level: int, frame: unwind.Frame) -> dict[str, object]:
    return {"level": level, **{name: getattr(frame, name) for name in FRAME_FIELDS}}


def bt_data(report: list[ThreadBacktrace]) -> dict[str, object]:
    """{"backtraces": [{tid, name, state, cpu, vcpu, source, complete, stopped, frames}]}:
    cpu is the cpus[] index running the thread and vcpu GDB's thread number of that
    vCPU, both None off CPU; source "vcpu N" or "kernel_rsp"."""
    return {
        "backtraces": [
            {
                "tid": entry.thread.tid,
                "name": entry.thread.name,
                "state": entry.thread.state,
                "cpu": entry.cpu.index if entry.cpu else None,
                "vcpu": entry.cpu.vcpu if entry.cpu else None,
                "source": entry.backtrace.source,
                "complete": entry.backtrace.complete,
                "stopped": entry.backtrace.stopped,
                "frames": [frame_data(i, f) for i, f in enumerate(entry.backtrace.frames)],
            }
            for entry in report
        ]
    }


def header(entry: ThreadBacktrace) -> str:
    thread = f"thread {entry.thread.tid} ({entry.thread.name})"
    if entry.cpu is None:
        return f"{thread}, not on a CPU, from its saved context:"
    return f"{thread} on vCPU {entry.cpu.vcpu} (cpus[{entry.cpu.index}]):"


def format_bt(report: list[ThreadBacktrace]) -> list[str]:
    """A header per thread, then its frames as Backtrace.format() gives them; a blank
    line between threads."""
    lines: list[str] = []
    for entry in report:
        if lines:
            lines.append("")
        lines.append(header(entry))
        lines += entry.backtrace.format() or ["(no frames)"]
    return lines


def goroutine_entries(kernel: Kernel, app: ElfImage | None, threads: list, traces: dict) -> list[dict] | None:
    """A Go program's goroutines from the runtime's tables: id, status, wait reason, the
    function it started with, who made it, its frames (a running one's from the thread
    that runs it, any other from its saved sched) and its own function (the first frame
    in the program's code). None for an app that is not Go."""
    go = unwind.go_runtime(kernel, app)
    if go is None:
        return None
    images = unwind.Images(unwind.kernel_image(kernel), app)
    running: dict[int, tuple[int, list[dict]]] = {}
    for thread in threads:
        trace = traces.get(thread.tid)
        g = go.current_g(thread.app_tcb)
        if trace is None or g is None:
            continue
        frames = [f.as_dict() for f in trace.frames]
        switch = next((i for i, f in enumerate(frames) if f["kind"] == "crossing"
                       and str(f["function"]).startswith("<goroutine ")), None)  # fmt: skip
        if switch is not None:  # on g0 for a goroutine: its frames come after the switch
            g = go.m(go.g(g)["m"])["curg"]
            frames = frames[switch + 1 :]
        running[int(g)] = (thread.tid, [f for f in frames if f["module"] == "app" and f["kind"] != "crossing"])
    result = []
    for goroutine in go.goroutines():
        if goroutine.address in running and goroutine.status in ("running", "syscall"):
            goroutine.tid, frames = running[goroutine.address]
        else:
            trace = unwind.goroutine_backtrace(kernel, images, goroutine)
            frames = [f.as_dict() for f in trace.frames]
            if trace.stopped:
                goroutine.problems.append(trace.stopped)
        data = goroutine.as_dict()
        data["frames"] = frames
        data["own_function"] = next(
            (names.normalise(f["function"]) for f in frames
             if f.get("function") and names.go_is_user(names.normalise(f["function"]))), None
        )  # fmt: skip
        result.append(data)
    return result
