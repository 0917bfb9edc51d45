"""Pure: which boots a matrix needs, and the rows its outputs make.

The matrix is {bench} x {fs_protocol} x {fs_write}:

    bench        syscall, ctxsw-colocated, ctxsw-apart, pagefault, interrupt
    fs_protocol  none (the default kernel, a thread that never set its FS base),
                 counter (the seed's kernel_tcb_counter, the default), compare, lazy
    fs_write     wrfsbase, or wrmsr (the kernel's --no-fsgsbase, FSGSBASE hidden)

For `none` the kernel never writes FS on a crossing (the counter stays at its base of 1),
so fs_write there is only the kernel's configuration: the entry still reads the FS base
for the debugger (rdfsbase or rdmsr) and a context switch still loads the incoming
thread's kernel TCB into FS (wrfsbase or wrmsr).

One boot per kernel configuration and CPU count: the benchmarks on one CPU share a boot
(the default kernel's measures `none` first, then `counter`), ctxsw-apart has one with
two CPUs of its own, so that the other CPU's timer ticks never land in the one-CPU
figures (under icount the vCPUs share one instruction clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from osvgdb.bench.guest import DEFAULT_PROTOCOL, Config
from osvgdb.bench.measure import Output, Run, instructions, nanoseconds, select

BENCHES = ("syscall", "ctxsw-colocated", "ctxsw-apart", "pagefault", "interrupt")
PROTOCOLS = ("none", "counter", "compare", "lazy")
FS_WRITES = ("wrfsbase", "wrmsr")
TWO_CPU_BENCHES = frozenset({"ctxsw-apart"})
# bench-crossings' host runs: the guest benchmarks' twins, and the FS instructions.
HOST_BENCHES = ("syscall", "ctxsw-colocated", "ctxsw-apart", "pagefault", "wrfsbase", "rdfsbase")
# The host's twin of each guest benchmark (interrupt has none: host user mode has no
# way to time a timer interrupt that lands in it).
HOST_TWIN = {
    "syscall": "syscall",
    "ctxsw-colocated": "ctxsw-colocated",
    "ctxsw-apart": "ctxsw-apart",
    "pagefault": "pagefault",
    "interrupt": None,
}
ROW_KEYS = ("bench", "fs_protocol", "fs_write", "instructions", "ns", "host_ns", "runs", "spread")


def kernel_protocol(protocol: str) -> str:
    """The kernel a row's protocol runs on: `none` is the default kernel's."""
    return DEFAULT_PROTOCOL if protocol == "none" else protocol


def fs_mode(protocol: str) -> str:
    """bench-crossings' FS mode for a row: `none` never sets FS, the rest do."""
    return "none" if protocol == "none" else "set"


def plan(
    benches: Sequence[str], protocols: Sequence[str], fs_writes: Sequence[str], accel: str
) -> list[Config]:
    """The boots that measure the matrix, in order: per fs_write, per kernel, per CPU count."""
    configs = []
    kernels = list(dict.fromkeys(kernel_protocol(p) for p in protocols))
    for fs_write in fs_writes:
        for kernel in kernels:
            mine = [p for p in protocols if kernel_protocol(p) == kernel]
            modes = tuple(dict.fromkeys(fs_mode(p) for p in mine))
            for smp in (1, 2):
                chosen = tuple(b for b in benches if (b in TWO_CPU_BENCHES) == (smp == 2))
                if chosen:
                    configs.append(Config(kernel, fs_write, smp, chosen, modes, accel))
    return configs


@dataclass(frozen=True)
class Measured:
    """The outputs of every boot that worked, by (kernel protocol, fs_write, accel), and
    the host's."""

    guest: Mapping[tuple[str, str, str], Sequence[Output]]
    host: Output | None


def _runs(outputs: Iterable[Output]) -> list[Run]:
    return [run for output in outputs for run in output.runs]


def rows(
    measured: Measured,
    benches: Sequence[str],
    protocols: Sequence[str],
    fs_writes: Sequence[str],
    *,
    kvm: bool,
) -> list[dict]:
    """One row per cell of the matrix that was measured, with exactly ROW_KEYS.

    instructions: from the TCG (icount) boots; ns: from the KVM boots, None without;
    host_ns: the host twin's ns per op, None where there is none."""
    host_runs = list(measured.host.runs) if measured.host else []
    table = []
    for bench in benches:
        twin = HOST_TWIN[bench]
        host = select(host_runs, twin, "none") if twin else []
        host_figure = nanoseconds(host) if host else None
        for protocol in protocols:
            for fs_write in fs_writes:
                key = (kernel_protocol(protocol), fs_write)
                mode = fs_mode(protocol)
                counted = select(_runs(measured.guest.get((*key, "tcg"), ())), bench, mode)
                if not counted:
                    continue
                count = instructions(counted)
                timed = select(_runs(measured.guest.get((*key, "kvm"), ())), bench, mode)
                ns = nanoseconds(timed) if kvm and timed else None
                table.append(
                    {
                        "bench": bench,
                        "fs_protocol": protocol,
                        "fs_write": fs_write,
                        "instructions": count.value,
                        "ns": ns.value if ns else None,
                        "host_ns": host_figure.value if host_figure else None,
                        "runs": count.runs,
                        "spread": {
                            "instructions": count.spread,
                            "ns": ns.spread if ns else None,
                            "host_ns": host_figure.spread if host_figure else None,
                        },
                    }
                )
    return table


@dataclass(frozen=True)
class Anchor:
    """A host figure printed beside the table: what, ns per op, spread, or why not."""

    name: str
    ns: float | None
    spread: float | None
    runs: int
    why_not: str | None = None


ANCHOR_NAMES = {  # in the order they are printed
    "wrfsbase": "wrfsbase (user mode)",
    "rdfsbase": "rdfsbase (user mode)",
    "syscall": "getppid round trip",
    "ctxsw-colocated": "futex handoff, one CPU",
    "ctxsw-apart": "futex handoff, two CPUs",
    "pagefault": "page fault, first touch",
}


def anchors(host: Output) -> list[Anchor]:
    """The host's figures, FS instructions first; an unavailable one says why."""
    why = {u.bench: u.why for u in host.unavailable}
    result = []
    for bench in ANCHOR_NAMES:
        runs = select(host.runs, bench, "none")
        if runs:
            figure = nanoseconds(runs)
            result.append(Anchor(ANCHOR_NAMES[bench], figure.value, figure.spread, figure.runs))
        else:
            result.append(Anchor(ANCHOR_NAMES[bench], None, None, 0, why.get(bench, "not run")))
    return result
