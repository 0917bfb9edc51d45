"""An FS-base violation the kernel's watchdog reported, explained (no GDB).

The kernel checks the rules itself (kernel/include/fscheck.h) and calls
fscheck_violation(broken, state) at the first one broken.  `explain` reads the
state it passed (struct fscheck_state), checks the same rules in Python
(osvgdb.decode.frames.check_entry/check_return), says so if the two sides
disagree, and writes the paragraph osv-fscheck prints and triage reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.decode.args import CallFormatter
from osvgdb.model.kernel import Kernel
from osvgdb.model.syscalls import call_text
from osvgdb.model.target import TargetError

LAST_SYSCALLS = 5
STATE_FIELDS = (
    "where", "to_app", "fs_base", "kernel_tcb", "app_tcb", "counter", "entry_counter", "rip",
    "vector", "nr", "protocol",
)  # fmt: skip
# enum fscheck_where -> the crossing's name in explanations, and where a return goes on
WHERE = {
    "FSCHECK_SYSCALL_ENTRY": "syscall_handler",
    "FSCHECK_TRAP_ENTRY": "trap_handler",
    "FSCHECK_SYSCALL_RETURN": "syscall_return",
    "FSCHECK_TRAP_RETURN": "trap_return",
}


@dataclass
class Explanation:
    text: str  # the paragraph
    location: str  # syscall_handler, trap_handler, syscall_return, trap_return
    rules: list[str]  # the rules broken, by the debugger's reading (and "disagreement")
    cpu: int | None = None
    tid: int | None = None
    disagreement: bool = False
    state: dict[str, int] = field(default_factory=dict)


def last_syscalls(kernel: Kernel, tid: int) -> list[str]:
    records, _ = kernel.history()
    mine = [r for r in records if r.tid == tid][-LAST_SYSCALLS:]
    formatter = CallFormatter(kernel.reader)
    return [call_text(r, kernel.syscalls.name(r.nr), formatter).text for r in mine]


def _current(kernel: Kernel, gs_base: int):
    """The CPU index and current thread of the vCPU with this GS base (None where unknown)."""
    cpu = kernel.cpu_index(gs_base)
    if cpu is None:
        return None, None
    current = kernel.read_cpu(cpu).get("current")
    try:
        return cpu, kernel.thread(int(current)) if current else None
    except (TargetError, DecodeError):
        return cpu, None


def _syscall_name(kernel: Kernel, entry: bool, nr: int, thread) -> str:
    if entry:
        return kernel.syscalls.name(nr)
    record = kernel.thread_call(thread.address) if thread else None
    return kernel.syscalls.name(record.nr) if record else "?"


def explain(kernel: Kernel, broken: int, state_address: int, gs_base: int) -> Explanation:
    """fscheck_violation(broken, state) on the vCPU with `gs_base`, explained."""
    layout = kernel.fscheck_state_layout
    values = layout.codec(STATE_FIELDS).unpack(kernel.read(state_address, layout.size))
    values = {name: int(value or 0) for name, value in values.items()}
    wheres = {v: k for k, v in kernel.enum_values("fscheck_where").items()}
    location = WHERE.get(wheres.get(values["where"], ""), "?")
    kernel_rules = {
        frames_decode.rule_name(name)
        for name, bit in kernel.enum_values("fscheck_rule").items()
        if broken & bit
    }
    state = frames_decode.FsState(
        fs_base=values["fs_base"],
        kernel_tcb=values["kernel_tcb"],
        counter=values["counter"],
        app_tcb=values["app_tcb"],
        entry_counter=values["entry_counter"],
        protocol=kernel.fs_protocol(),
    )
    entry = location.endswith("_handler")
    to_app = bool(values["to_app"])
    if entry:
        violations = frames_decode.check_entry(state)
    else:
        violations = frames_decode.check_return(state, to_app=to_app)
    ours = {v.rule for v in violations}
    disagreement = ours != kernel_rules
    if disagreement:
        violations.append(
            frames_decode.Violation(
                "disagreement",
                f"the kernel found {', '.join(sorted(kernel_rules)) or 'nothing'} broken, "
                f"the debugger's rules {', '.join(sorted(ours)) or 'nothing'}",
            )
        )
    cpu, thread = _current(kernel, gs_base)
    if location.startswith("trap"):
        detail = kernel.vectors.label(values["vector"]).strip("<>")
    else:
        detail = "syscall " + _syscall_name(kernel, entry, values["nr"], thread)
    if not entry:
        detail += f" returning to {'app' if to_app else 'kernel'} code"
    crossing = frames_decode.Crossing(
        location=location,
        protocol=state.protocol,
        cpu=cpu,
        tid=thread.tid if thread else None,
        thread_name=thread.name if thread else "?",
        rip=values["rip"],
        detail=detail,
        last_syscalls=last_syscalls(kernel, thread.tid) if thread else [],
    )
    return Explanation(
        text=frames_decode.explain(crossing, violations),
        location=location,
        rules=sorted({v.rule for v in violations}),
        cpu=cpu,
        tid=crossing.tid,
        disagreement=disagreement,
        state=values,
    )
