"""osvgdb's Python API for GDB scripts: run a function at each syscall or trap.

    from osvgdb.gdb.api import on_syscall

    calls = 0

    @on_syscall("brk")
    def third_brk(event):              # a SyscallEvent (osvgdb.gdb.events)
        global calls
        calls += 1
        return calls == 3              # True stops the guest; False lets it run on

The function gets a decoded event: `nr`, `name`, `args`, `text` (strace's form),
`ret` (exits), `tid`, `thread_name`, `cpu`, `fs_base` and `counter` (as the
entry found them), `rip`/`rsp` (the app's), and readers `arg_string(i)`,
`arg_buffer(i, n)`, `read(addr, n)`, `string(addr)`.  Trap events have `vector`,
`name`, `error_code`, `cr2`, `rip`, `came_from` (app, idle, syscall or kernel).

For state across calls, subclass instead:

    class CountBrk(SyscallHook):
        def on_entry(self, event): ...
        def on_exit(self, event): ...
    hook = CountBrk("brk", exit=True)

Each hook is one to four ordinary GDB breakpoints (entry and exit, and the same for
lazy's fast paths, kernel/core/fastpath.c, when it wants their calls; `info
breakpoints` lists them); `hook.delete()` removes them.  scripts/example_third_brk.py and
scripts/example_page_faults.py are runnable examples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import gdb

from osvgdb.decode import DecodeError
from osvgdb.gdb.events import Event, EventBreakpoint, SyscallEvent, TrapEvent
from osvgdb.gdb.target import Kernel, TargetError

__all__ = [
    "SyscallEvent",
    "SyscallHook",
    "TrapEvent",
    "TrapHook",
    "on_syscall",
    "on_trap",
    "syscall_numbers",
]


def syscall_numbers(names: Iterable[str | int]) -> set[int]:
    """Numbers for syscall names (or numbers); TargetError names an unknown one."""
    table = Kernel.get().syscalls
    numbers = set()
    for name in names:
        number = name if isinstance(name, int) else table.number(str(name))
        if number is None:
            raise TargetError(f"unknown syscall {name!r}")
        numbers.add(number)
    return numbers


class _Hook:
    """Breakpoints that call on_* methods for the events that pass the filters."""

    def __init__(self, who: str, tid: int | None, cpu: int | None, temporary: bool):
        self.who = who
        self.tid = tid
        self.cpu = cpu
        self.temporary = temporary
        self.breakpoints: list[EventBreakpoint] = []
        self._last_hit: dict[int, tuple[object, ...]] = {}  # shared by its breakpoints

    def _passes(self, event: Event) -> bool:
        if self.cpu is not None and event.cpu != self.cpu:
            return False
        return self.tid is None or event.tid == self.tid

    def _add(self, where: str, method: Callable[[Event], bool]) -> None:
        self.breakpoints.append(
            EventBreakpoint(
                where, method, who=self.who, temporary=self.temporary, last_hit=self._last_hit
            )
        )

    def _stopping(self, stop: bool) -> bool:
        """A temporary hook stops once: GDB deletes the breakpoint that stopped, and
        its others (lazy's fast paths) go too, once the stop is done."""
        if stop and self.temporary and len(self.breakpoints) > 1:
            gdb.post_event(self.delete)
        return stop

    @property
    def numbers(self) -> list[int]:
        """The GDB breakpoint numbers."""
        return [b.number for b in self.breakpoints if b.is_valid()]

    def delete(self) -> None:
        for b in self.breakpoints:
            if b.is_valid():
                b.delete()
        self.breakpoints.clear()


class SyscallHook(_Hook):
    """Calls on_entry(event) at each wanted syscall's entry and, with exit=True,
    on_exit(event) at its return; either returning True stops the guest.

    names: syscall names or numbers (none: every syscall); tid, cpu: only those.
    """

    def __init__(
        self,
        *names: str | int,
        entry: bool = True,
        exit: bool = False,
        tid: int | None = None,
        cpu: int | None = None,
        temporary: bool = False,
        who: str = "osvgdb hook",
    ):
        super().__init__(who, tid, cpu, temporary)
        self.wanted = syscall_numbers(names)
        fast = self._wants_fast_path()
        if entry:
            self._add("syscall-entry", self._entry)
            if fast:
                self._add("syscall-fast-entry", self._entry)
        if exit:
            self._add("syscall-exit", self._exit)
            if fast:
                self._add("syscall-fast-exit", self._exit)

    def _wants_fast_path(self) -> bool:
        """Whether some wanted call may take lazy's fast path (kernel/core/fastpath.c's
        fast_syscalls), which never reaches syscall_handler or syscall_exit. Decided
        from the kernel's symbols, so a hook made before the kernel has booted (and
        chosen its --fs-protocol) still sees them; under counter and compare the two
        extra breakpoints are never hit."""
        kernel = Kernel.get()
        if not kernel.has("syscall_fast_handler"):
            return False
        if not self.wanted:
            return True
        try:
            size = kernel.target.symbol_size("fast_syscalls")
            data = kernel.read(kernel.address("fast_syscalls"), size)
        except TargetError:
            return True
        fast = {int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)}
        return bool(self.wanted & fast)

    def _wants(self, event: SyscallEvent) -> bool:
        if self.wanted and event.nr not in self.wanted:
            return False
        return self._passes(event)

    def _entry(self, event: Event) -> bool:
        assert isinstance(event, SyscallEvent)
        return self._stopping(self._wants(event) and bool(self.on_entry(event)))

    def _exit(self, event: Event) -> bool:
        assert isinstance(event, SyscallEvent)
        return self._stopping(self._wants(event) and bool(self.on_exit(event)))

    def on_entry(self, event: SyscallEvent) -> bool:
        return False

    def on_exit(self, event: SyscallEvent) -> bool:
        return False

class TrapHook(_Hook):
    """Calls on_trap(event) at each wanted interrupt or exception (at trap_handler).

    vectors: numbers, interrupt names (timer, reschedule, tlb-shootdown, ...) or exception
    names (page-fault/pf, gp, ud, ...); none: every vector."""

    def __init__(
        self,
        *vectors: str | int,
        tid: int | None = None,
        cpu: int | None = None,
        temporary: bool = False,
        who: str = "osvgdb hook",
    ):
        super().__init__(who, tid, cpu, temporary)
        self.wanted = {parse_vector(v) for v in vectors}
        self._add("trap-entry", self._trap)
        kernel = Kernel.get()
        timer = _timer_vector(kernel)
        if kernel.has("trap_fast_handler") and (not self.wanted or timer in self.wanted):
            self._add("trap-fast-entry", self._trap)  # lazy's fast timer ticks

    def _trap(self, event: Event) -> bool:
        assert isinstance(event, TrapEvent)
        if self.wanted and event.vector not in self.wanted:
            return False
        return self._stopping(self._passes(event) and bool(self.on_trap(event)))

    def on_trap(self, event: TrapEvent) -> bool:
        return False


def _timer_vector(kernel: Kernel) -> int | None:
    """The kernel's TIMER_VECTOR (enum interrupt_vector), the one lazy's fast path takes."""
    try:
        return kernel.enum_values("interrupt_vector").get("TIMER_VECTOR")
    except TargetError:
        return None


def parse_vector(vector: str | int) -> int:
    if isinstance(vector, int):
        return vector
    vectors = Kernel.get().vectors
    try:
        return vectors.parse(vector, exceptions=True)
    except DecodeError:
        return vectors.parse(vector, exceptions=False)


def on_syscall(
    *names: str | int,
    exit: bool = False,
    tid: int | None = None,
    cpu: int | None = None,
) -> Callable[[Callable[[SyscallEvent], bool]], SyscallHook]:
    """Decorator: call the function at each entry (exit=True: each return) of the
    named syscalls; it stops the guest by returning True. Gives back the hook."""

    def decorate(function: Callable[[SyscallEvent], bool]) -> SyscallHook:
        class FunctionHook(SyscallHook):
            def on_entry(self, event: SyscallEvent) -> bool:
                return function(event)

            def on_exit(self, event: SyscallEvent) -> bool:
                return function(event)

        return FunctionHook(
            *names,
            entry=not exit,
            exit=exit,
            tid=tid,
            cpu=cpu,
            who=getattr(function, "__name__", "hook"),
        )

    return decorate


def on_trap(
    *vectors: str | int, tid: int | None = None, cpu: int | None = None
) -> Callable[[Callable[[TrapEvent], bool]], TrapHook]:
    """Decorator: call the function at each of these interrupts or exceptions."""

    def decorate(function: Callable[[TrapEvent], bool]) -> TrapHook:
        class FunctionHook(TrapHook):
            def on_trap(self, event: TrapEvent) -> bool:
                return function(event)

        return FunctionHook(*vectors, tid=tid, cpu=cpu, who=getattr(function, "__name__", "hook"))

    return decorate
