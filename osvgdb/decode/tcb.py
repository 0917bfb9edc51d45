"""Threads, thread control blocks and per-CPU FS/GS state, and the rules they obey.

The kernel's FS-base protocol (kernel/arch/x64/entry.S), per thread:

    entry: if kernel_tcb_counter == 0, FS := kernel TCB (%gs:0); counter++
    exit:  counter--; if counter == 0, FS := app_tcb

A thread that never called arch_prctl(ARCH_SET_FS) keeps counter 1 and FS on
its kernel TCB.  IA32_GS_BASE is &cpus[i].tcb_data on CPU i, and
tcb_data.kernel_tcb is that CPU's current thread's TCB.

That is the kernel's default FS protocol, `counter`; the kernel's `fs_protocol`
says which runs (FS_PROTOCOLS).  Under `compare` (OSv's merged design) there is
no counter: it stays 0, and app code runs on its app_tcb if it set one, else on
its kernel TCB.  Under `lazy` the rules are counter's, but a CPU in the fast path
(arch_cpu.fast_path: a syscall, on the syscall stack, or a timer tick, on an
interrupt stack) runs kernel code on the app's FS.

`cpu_verdict` and `thread_problems` check those rules (see VERDICT_RULES) on
plain snapshots; `decode_thread` and `decode_cpu` turn struct bytes into them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from osvgdb.decode import DecodeError, signed64
from osvgdb.decode.layout import Layout

U64 = (1 << 64) - 1

THREAD_FIELDS = (
    "tid",
    "state",
    "cpu",
    "name",
    "tcb",
    "syscall_stack",
    "syscall_stack_size",
    "exception_stack",
    "exception_stack_size",
    "in_signal",
    "signal_frame",
)
TCB_FIELDS = (
    "self",
    "tls_base",
    "syscall_stack_top",
    "syscall_caller_stack_pointer",
    "app_tcb",
    "kernel_tcb_counter",
)
CPU_FIELDS = ("tcb_data.kernel_tcb", "id", "current", "idle_thread", "entries", "fast_path",
              "preempt_count")
# arch_cpu.fast_path (enum fast_path): which of lazy's fast paths a CPU is in, and where
# (CpuInfo.where) its handler runs; an exception nested in one is on the kernel's side.
FAST_PATHS = {1: "syscall", 2: "timer"}
FAST_PATH_WHERE = {"syscall": "syscall", "timer": "interrupt"}
# enum fs_protocol (kernel/arch/x64/arch.h), the kernel's --fs-protocol; counter the default
FS_PROTOCOLS = ("counter", "compare", "lazy")

VERDICT_RULES = """\
Verdict rules, per CPU (each broken rule is listed; none broken: consistent):
  gs-base      GS base is &cpus[i].tcb_data of some CPU i (else the CPU is not started)
  kernel-tcb   tcb_data.kernel_tcb is the TCB of cpus[i].current
  tcb-self     the kernel TCB's self field points at the TCB itself
  kernel-fs    kernel code runs with FS = this CPU's kernel TCB (the entry stubs
               syscall_entry/trap_common/sigreturn_exit and lazy's syscall_fast_path/
               trap_fast_path are exempt: they switch FS, or leave it the app's)
  kernel-count kernel code runs with kernel_tcb_counter >= 1
  app-fs       app code runs with FS = the thread's app_tcb when it set one
               (counter 0), else with FS = its kernel TCB (counter 1, no switching)
  app-count    app code runs with counter 0 (after ARCH_SET_FS) or 1 (never set)
  preempt      app code runs with preempt_count 0 (spin_lock()s held: a count left
               over stops this CPU's preemption for good, and the lock's waiters)
Per thread: self points at the TCB; the counter is >= 0; a counter of 0 needs an
app_tcb; a running thread is some CPU's current.
Under --fs-protocol=compare there is no counter: app-count and kernel-count want
it 0 (so does the per-thread rule), and app-fs wants the app_tcb if the thread set
one, else its kernel TCB. Under lazy a CPU in a fast syscall (getpid, getppid,
gettid, clock_gettime, on the syscall stack) or a fast timer tick (on an interrupt
stack) runs kernel code on the app's FS by design (fast_path): app-fs and app-count
apply to it, not kernel-fs."""


@dataclass
class ThreadInfo:
    address: int
    tid: int
    name: str
    state: str
    cpu: int
    tcb: int
    tcb_self: int | None = None
    tls_base: int | None = None
    app_tcb: int | None = None
    counter: int | None = None
    syscall_stack_low: int | None = None
    syscall_stack_high: int | None = None
    exception_stack_low: int | None = None
    exception_stack_high: int | None = None
    in_signal: int | None = None  # the signal whose handler it runs (innermost); 0: none
    signal_frame: int | None = None  # while in_signal: its rt_sigframe on the app's stack
    problems: list[str] = field(default_factory=list)

    def in_syscall_stack(self, rsp: int) -> bool:
        low, high = self.syscall_stack_low, self.syscall_stack_high
        return bool(low) and low <= rsp <= (high or 0)

    def in_exception_stack(self, rsp: int) -> bool:
        """Interrupts and exceptions land here while the thread runs (its IST stack)."""
        low, high = self.exception_stack_low, self.exception_stack_high
        return bool(low) and low <= rsp <= (high or 0)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class CpuInfo:
    index: int | None
    vcpu: int
    gs_base: int
    fs_base: int
    rip: int
    rsp: int
    kernel_tcb: int | None = None
    current: int | None = None
    idle_thread: int | None = None
    current_tid: int | None = None
    kernel_tcb_owner: int | None = None
    fs_owner: str = "nobody"
    counter: int | None = None
    where: str = "unknown"
    fast_path: str | None = None  # lazy's fast path (syscall, timer): kernel code on the app's FS
    # spin_lock()s this CPU holds: no preemption while any (spin_lock_irqsave's do not
    # count: interrupts off keep the CPU already)
    preempt_count: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "consistent" if not self.problems else "; ".join(self.problems)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["verdict"] = self.verdict
        return data


@dataclass(frozen=True)
class CodeRanges:
    """Addresses that tell where a CPU is: [start, end) pairs."""

    kernel: tuple[int, int]
    entry_stubs: tuple[tuple[int, int], ...] = ()
    panic_halt: tuple[int, int] | None = None
    idle: tuple[tuple[int, int], ...] = ()

    def in_kernel(self, rip: int) -> bool:
        return self.kernel[0] <= rip < self.kernel[1]

    def in_entry_stub(self, rip: int) -> bool:
        return any(start <= rip < end for start, end in self.entry_stubs)


def c_string(raw: object) -> str:
    if not isinstance(raw, bytes):
        return ""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


def optional_signed64(value: object) -> int | None:
    """signed64 of a member an older kernel may lack (None)."""
    return signed64(value) if isinstance(value, int) else None


def decode_thread(
    address: int,
    thread_bytes: bytes,
    thread_layout: Layout,
    tcb_bytes: bytes | None,
    tcb_layout: Layout,
    state_names: dict[int, str],
) -> ThreadInfo:
    """One thread from its struct thread bytes and (if readable) its TCB bytes."""
    t = thread_layout.codec(THREAD_FIELDS).unpack(thread_bytes)
    if t["tid"] is None or t["tcb"] is None:
        raise DecodeError("struct thread lacks tid or tcb")
    state = state_names.get(t["state"], str(t["state"])) if t["state"] is not None else "?"
    cpu = t["cpu"] if t["cpu"] is not None else -1
    if state == "blocked" and cpu == -1:
        # thread_create leaves a thread blocked until sched_make_ready: one that never ran
        # and is not ready is still being made (a clone on another CPU), not waiting.
        state = "new"
    info = ThreadInfo(
        address=address,
        tid=t["tid"],
        name=c_string(t["name"]),
        state=state,
        cpu=cpu,
        tcb=t["tcb"],
    )
    if t["in_signal"]:
        info.in_signal = t["in_signal"]
        info.signal_frame = t["signal_frame"]
    if t["syscall_stack"]:
        info.syscall_stack_low = t["syscall_stack"]
        info.syscall_stack_high = t["syscall_stack"] + (t["syscall_stack_size"] or 0)
    if t["exception_stack"]:
        info.exception_stack_low = t["exception_stack"]
        info.exception_stack_high = t["exception_stack"] + (t["exception_stack_size"] or 0)
    if tcb_bytes is None:
        info.problems.append(f"TCB {info.tcb:#x} unreadable")
        return info
    tcb = tcb_layout.codec(TCB_FIELDS).unpack(tcb_bytes)
    info.tcb_self = tcb["self"]
    info.tls_base = tcb["tls_base"]
    info.app_tcb = tcb["app_tcb"]
    info.counter = optional_signed64(tcb["kernel_tcb_counter"])
    if tcb["syscall_stack_top"]:
        info.syscall_stack_high = tcb["syscall_stack_top"]
    return info


def thread_problems(
    info: ThreadInfo, current_threads: set[int], protocol: str = "counter"
) -> list[str]:
    problems = [p for p in info.problems if p.endswith("unreadable")]
    if info.tcb_self is None:
        return problems
    if info.tcb_self != info.tcb:
        problems.append(f"TCB self {info.tcb_self:#x} is not the TCB {info.tcb:#x}")
    if protocol == "compare":
        if info.counter:
            problems.append(f"kernel_tcb_counter {info.counter} under compare, which keeps it 0")
    elif info.counter is not None and info.counter < 0:
        problems.append(f"kernel_tcb_counter {info.counter} is negative")
    if protocol != "compare" and info.counter == 0 and not info.app_tcb:
        problems.append("counter 0 but no app_tcb: the exit path would load FS = 0")
    if info.state == "running" and current_threads and info.address not in current_threads:
        problems.append("running but no CPU's current")
    return problems


def fs_owner(fs_base: int, cpu_kernel_tcb: int | None, threads: list[ThreadInfo]) -> str:
    """Whose TCB the FS base is, in words."""
    if fs_base and fs_base == cpu_kernel_tcb:
        owner = next((t for t in threads if t.tcb == fs_base), None)
        suffix = f" (tid {owner.tid} {owner.name})" if owner else ""
        return "this CPU's kernel TCB" + suffix
    for t in threads:
        if fs_base == t.tcb:
            return f"kernel TCB of tid {t.tid} {t.name}"
    for t in threads:
        if t.app_tcb and fs_base == t.app_tcb:
            return f"app TCB of tid {t.tid} {t.name}"
    return "nobody"


def where(
    cpu: CpuInfo, thread: ThreadInfo | None, ranges: CodeRanges, ist_ranges: list[tuple[int, int]]
) -> str:
    """app, syscall, interrupt, entry, idle, panicked or kernel."""
    rip, rsp = cpu.rip, cpu.rsp
    if ranges.panic_halt and ranges.panic_halt[0] <= rip < ranges.panic_halt[1]:
        return "panicked"
    if not ranges.in_kernel(rip):
        return "app"
    if ranges.in_entry_stub(rip):
        return "entry"
    if any(low <= rsp < high for low, high in ist_ranges):
        return "interrupt"
    if thread is not None and thread.in_exception_stack(rsp):
        return "interrupt"
    if cpu.idle_thread and cpu.current == cpu.idle_thread:
        return "idle"
    if thread is not None and thread.in_syscall_stack(rsp):
        return "syscall"
    if any(start <= rip < end for start, end in ranges.idle):
        return "idle"
    return "kernel"


def cpu_verdict(cpu: CpuInfo, thread: ThreadInfo | None, protocol: str = "counter") -> list[str]:
    """The rules of VERDICT_RULES this CPU breaks, under the kernel's FS protocol."""
    if cpu.index is None:
        return ["gs-base: GS base is no CPU's tcb_data (CPU not started?)"]
    if not cpu.kernel_tcb:
        return [] if cpu.where != "app" else ["kernel-tcb: no kernel TCB while in app code"]
    problems = []
    if cpu.where == "app" and cpu.preempt_count:
        problems.append(f"preempt: app code with preempt_count {cpu.preempt_count} (a spin_lock left held)")
    if thread is None:
        problems.append("kernel-tcb: no current thread")
    elif thread.tcb != cpu.kernel_tcb:
        problems.append(
            f"kernel-tcb: tcb_data.kernel_tcb {cpu.kernel_tcb:#x} is not tid {thread.tid}'s "
            f"TCB {thread.tcb:#x}"
        )
    owner = thread if thread is not None and thread.tcb == cpu.kernel_tcb else None
    if owner is not None and owner.tcb_self is not None and owner.tcb_self != owner.tcb:
        problems.append(f"tcb-self: TCB self {owner.tcb_self:#x} is not {owner.tcb:#x}")
    counter = cpu.counter
    fast = (
        protocol == "lazy"
        and cpu.fast_path is not None
        and cpu.where == FAST_PATH_WHERE.get(cpu.fast_path)
    )
    if (cpu.where == "app" or fast) and protocol == "compare":
        if owner is None or counter is None:
            return problems
        expected = owner.app_tcb or cpu.kernel_tcb
        if cpu.fs_base != expected:
            whose = "its app_tcb" if owner.app_tcb else "its kernel TCB (no app_tcb)"
            problems.append(
                f"app-fs: app code on FS {cpu.fs_base:#x}, {cpu.fs_owner}, "
                f"not {whose} {expected:#x}"
            )
        if counter != 0:
            problems.append(
                f"app-count: kernel_tcb_counter {counter} under compare, which keeps it 0"
            )
    elif cpu.where == "app" or fast:
        if owner is None or counter is None:
            return problems
        if counter == 0:
            if cpu.fs_base != owner.app_tcb:
                problems.append(
                    f"app-fs: app code on FS {cpu.fs_base:#x}, {cpu.fs_owner}, "
                    f"not its app_tcb {owner.app_tcb or 0:#x}"
                )
        elif counter == 1 and not owner.app_tcb:
            if cpu.fs_base != cpu.kernel_tcb:
                problems.append(f"app-fs: app code on FS {cpu.fs_base:#x}, not its kernel TCB")
        else:
            problems.append(f"app-count: app code with kernel_tcb_counter {counter}")
    elif cpu.where not in ("entry", "panicked"):
        if cpu.fs_base != cpu.kernel_tcb:
            problems.append(f"kernel-fs: kernel code on FS {cpu.fs_base:#x}, {cpu.fs_owner}")
        if protocol == "compare":
            if counter:
                problems.append(
                    f"kernel-count: kernel_tcb_counter {counter} under compare, which keeps it 0"
                )
        elif counter is not None and counter < 1:
            problems.append(f"kernel-count: kernel code with kernel_tcb_counter {counter}")
    return problems
