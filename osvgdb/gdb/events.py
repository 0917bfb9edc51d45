"""Events at the kernel's entry and exit paths, each decoded from one read of its frame.

Where a breakpoint sits and what it finds there (kernel/arch/x64/entry.S):

    syscall-entry   syscall_handler's first instruction: rdi = struct syscall_frame
    syscall-exit    label syscall_exit: rsp = the frame, frame->rax = the result
    trap-entry      trap_handler's first instruction: rdi = struct trap_frame

Under --fs-protocol=lazy getpid, getppid, gettid and clock_gettime take entry.S's
syscall_fast_path instead, which calls neither: their entry is syscall_fast_handler's
first instruction (rdi = the frame) and their return the label syscall_fast_exit (rsp
= the frame), two more locations a syscall hook also breaks on when it wants them;
its fast timer ticks go to trap_fast_handler (rdi = the trap frame). A fast handler
that declines hands the crossing on to the ordinary one, with the same frame and count
of entries: the hook's breakpoints share what they last saw, so it stops once.

`EventBreakpoint` is one gdb.Breakpoint at one of them whose stop() decodes the
event and asks its handler whether to stop (osv-break and the script API).  The
tools that watch every crossing do not stop there: osv-trace reads the kernel's
history in batches (trace.py), osv-fscheck lets the kernel check (fscheck.py).

The syscall number is gone at syscall-exit (rax holds the result): the exit event
takes the call from the thread's record in the kernel's history (struct thread's
syscall_record), which also holds the argument memory the call saw.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode import frames as frames_decode
from osvgdb.decode import history as history_decode
from osvgdb.decode.args import CallFormatter, CallMemory, read_bytes, read_cstring
from osvgdb.decode.tcb import ThreadInfo
from osvgdb.gdb.command import report_internal_error
from osvgdb.gdb.target import Kernel, TargetError, read, reader, u64
from osvgdb.model.syscalls import render_call

LOCATIONS = {
    "syscall-entry": "syscall_handler",
    "syscall-exit": "syscall_exit",
    "trap-entry": "trap_handler",
    "syscall-fast-entry": "syscall_fast_handler",  # lazy's fast syscalls
    "syscall-fast-exit": "syscall_fast_exit",
    "trap-fast-entry": "trap_fast_handler",  # lazy's fast timer ticks
}
# What an event needs of its vCPU: the CPU (GS base), the frame (rdi at a handler's
# entry, rsp at syscall_exit) and a page fault's address.
EVENT_REGISTERS = ("gs_base", "rsp", "rdi", "cr2")
STRING_LIMIT = 32


def location_address(where: str) -> int:
    kernel = Kernel.get()
    name = LOCATIONS[where]
    return kernel.address(name) if where.endswith("-entry") else kernel.label(name)


class Event:
    """What every event knows: where (CPU, vCPU, location) and who (thread)."""

    where = ""

    def __init__(self, kernel: Kernel, vcpu: int, registers: dict[str, int]):
        self.kernel = kernel
        self.vcpu = vcpu
        self.registers = registers
        self.gs_base = self.register("gs_base")
        self.cpu = kernel.cpu_index(self.gs_base)

    def register(self, name: str) -> int:
        """A register of the vCPU at the event (EVENT_REGISTERS)."""
        try:
            return self.registers[name]
        except KeyError:
            raise TargetError(f"the event has no register {name}") from None

    @cached_property
    def _cpu_state(self) -> dict[str, object]:
        if self.cpu is None:
            return {}
        return self.kernel.read_cpu(self.cpu)

    @property
    def kernel_tcb(self) -> int:
        return int(self._cpu_state.get("tcb_data.kernel_tcb") or 0)

    @property
    def hit(self) -> tuple[object, ...]:
        """What tells this breakpoint hit from another: the CPU's count of kernel entries
        (cpus[i].entries, which the handlers raise first thing) and the stack pointer."""
        return (self.cpu, self._cpu_state.get("entries"), self.register("rsp"))

    @cached_property
    def thread(self) -> ThreadInfo | None:
        """This CPU's current thread (struct thread and its TCB: two reads)."""
        current = self._cpu_state.get("current")
        if not current:
            return None
        try:
            return self.kernel.thread(int(current))
        except (TargetError, DecodeError):
            return None

    @property
    def tid(self) -> int | None:
        return self.thread.tid if self.thread is not None else None

    @property
    def thread_name(self) -> str:
        return self.thread.name if self.thread is not None else "?"

    def read(self, address: int, length: int) -> bytes | None:
        """Guest memory, or None where unreadable."""
        return read_bytes(reader, address, length)

    def string(self, address: int, limit: int = 4096) -> bytes | None:
        """A NUL-terminated string in guest memory (without the NUL)."""
        found = read_cstring(reader, address, limit)
        return found[0] if found is not None else None

    def who(self) -> str:
        cpu = self.cpu if self.cpu is not None else "?"
        return f"CPU {cpu} tid {self.tid} ({self.thread_name})"

    def as_dict(self) -> dict[str, object]:
        return {"where": self.where, "cpu": self.cpu, "vcpu": self.vcpu, "tid": self.tid}


class FrameEvent(Event):
    """An event with an entry frame (struct syscall_frame or trap_frame) in self.frame:
    the interrupted rip and rsp, and the FS base and counter the entry found."""

    @property
    def rip(self) -> int:
        return self.frame.rip

    @property
    def rsp(self) -> int:
        return self.frame.rsp

    @property
    def fs_base(self) -> int:
        return self.frame.fs_base

    @property
    def counter(self) -> int:
        return self.frame.counter


class SyscallEvent(FrameEvent):
    """A syscall's entry (at syscall_handler) or its return (at syscall_exit).

    nr, name, args: the call (at an exit, as the entry recorder saw it; None for a
    clone child's first return, which has no entry); ret: the result (exits only);
    rip, rsp: the app's; fs_base, counter: what the entry found; entry_cpu: where
    the call entered (a thread may move while it sleeps in the kernel).
    """

    def __init__(self, kernel: Kernel, vcpu: int, registers: dict[str, int], *, exit: bool):
        super().__init__(kernel, vcpu, registers)
        self.is_exit = exit
        self.where = "syscall-exit" if exit else "syscall-entry"
        address = self.register("rsp" if exit else "rdi")
        layout = kernel.syscall_frame_layout
        self.frame = frames_decode.decode_syscall_frame(read(address, layout.size), layout, address)
        self.ret: int | None = None
        self.child = False
        if exit:
            self.ret = self.frame.ret
            record = self.record
            self.nr = record.nr if record else None
            self.args = record.args if record else self.frame.args
            self.entry_cpu = record.cpu if record else None
            # No record: a clone child's first return (it never entered a syscall),
            # or a call whose record a wrapped ring overwrote (its number is lost).
            self.child = record is None and self._thread_seq() == 0
        else:
            self.nr, self.args, self.entry_cpu = self.frame.nr, self.frame.args, self.cpu

    @cached_property
    def record(self) -> history_decode.SyscallRecord | None:
        """This call's record in the kernel's history (struct thread's syscall_record),
        at an exit: it carries the argument memory the kernel captured. None at an
        entry (the handler has not entered it yet) and for a clone child's first return."""
        if not self.is_exit or self.thread is None:
            return None
        try:
            record = self.kernel.thread_call(self.thread.address)
        except (TargetError, DecodeError):
            return None
        if record is None or record.state != "done" or record.ret != self.frame.ret:
            return None
        return record

    def _thread_seq(self) -> int | None:
        """struct thread's syscall_seq: 0 for a thread that never made a syscall."""
        if self.thread is None:
            return None
        try:
            return self.kernel.thread_syscall_seq(self.thread.address)
        except TargetError:
            return None

    @property
    def name(self) -> str:
        if self.nr is None:
            return "clone-child" if self.child else "?"
        return self.kernel.syscalls.name(self.nr)

    def arg_string(self, index: int, limit: int = 4096) -> bytes | None:
        """Argument `index` as a NUL-terminated string, as the call saw it."""
        found = read_cstring(self.call_memory, self.args[index], limit)
        return found[0] if found is not None else None

    def arg_buffer(self, index: int, length: int) -> bytes | None:
        """`length` bytes at argument `index`, as the call saw them."""
        return read_bytes(self.call_memory, self.args[index], length)

    def call_memory(self, address: int, length: int) -> bytes | None:
        """The call's memory: at an exit what the kernel captured, beyond that (and at
        an entry) memory as it is now."""
        record = self.record
        return CallMemory(record.captures if record else (), reader).fetch(address, length)[0]

    def call_text(self, limit: int = STRING_LIMIT, raw: bool = False) -> str:
        """strace's form: `write(1, "hi\\n", 3)`, with ` = 3` at an exit."""
        if self.nr is None:
            return f"<{self.name} returns {self.ret}>"
        # At an entry memory now is what the call will see; at an exit the record's
        # captures are what it saw, and anything else is marked as read now.
        record = self.record
        return render_call(
            self.name,
            self.args,
            CallFormatter(reader, limit=limit, raw=raw),
            state="returned" if self.is_exit else "entering",
            ret=self.ret,
            captures=record.captures if record is not None else (),
        ).text

    @property
    def text(self) -> str:
        return self.call_text()

    def as_dict(self) -> dict[str, object]:
        data = super().as_dict()
        data.update(
            entry_cpu=self.entry_cpu,
            nr=self.nr,
            name=self.name,
            args=list(self.args),
            ret=self.ret,
            rip=self.rip,
            rsp=self.rsp,
            fs_base=self.fs_base,
            counter=self.counter,
            text=self.text,
        )
        return data


class TrapEvent(FrameEvent):
    """An interrupt or exception at trap_handler: vector, error code, the
    interrupted rip/rsp, CR2 for page faults, and where the CPU came from."""

    where = "trap-entry"

    def __init__(self, kernel: Kernel, vcpu: int, registers: dict[str, int]):
        super().__init__(kernel, vcpu, registers)
        address = self.register("rdi")
        layout = kernel.trap_frame_layout
        self.frame = frames_decode.decode_trap_frame(read(address, layout.size), layout, address)
        self.vector = self.frame.vector
        self.error_code = self.frame.error_code
        self.cr2 = self.register("cr2") if self.vector == frames_decode.PAGE_FAULT else None

    @property
    def name(self) -> str:
        return self.kernel.vectors.name(self.vector)

    @cached_property
    def came_from(self) -> str:
        """app, idle, syscall (kernel code on an app thread's syscall stack) or kernel."""
        thread = self.thread
        stack = None
        if thread is not None and thread.syscall_stack_low:
            stack = (thread.syscall_stack_low, thread.syscall_stack_high or 0)
        # Interrupts reach an idle CPU only in its idle loop's sti; hlt (the boot CPU's
        # idle thread is the boot thread, which loads the app first: that is kernel code).
        idle = any(start <= self.rip < end for start, end in self.kernel.ranges.idle)
        return frames_decode.came_from(
            self.rip, self.rsp, self.kernel.ranges.kernel, stack, idle=idle
        )

    @property
    def text(self) -> str:
        kind = "exception" if self.vector < frames_decode.FIRST_INTERRUPT else "interrupt"
        text = f"{kind} {self.vector} {self.name}, error code {self.error_code:#x}"
        if self.cr2 is not None:
            text += f", cr2 {self.cr2:#x}"
        return text + f", rip {self.rip:#x} from {self.came_from}"

    def as_dict(self) -> dict[str, object]:
        data = super().as_dict()
        data.update(
            vector=self.vector,
            name=self.name,
            error_code=self.error_code,
            cr2=self.cr2,
            rip=self.rip,
            rsp=self.rsp,
            fs_base=self.fs_base,
            counter=self.counter,
            came_from=self.came_from,
            text=self.text,
        )
        return data


def decode(where: str) -> Event:
    """The event the selected vCPU is at (it stopped at `where`)."""
    kernel = Kernel.get()
    thread = gdb.selected_thread()
    if thread is None:
        raise TargetError("no thread selected")
    frame = gdb.newest_frame()
    registers = {name: u64(frame.read_register(name)) for name in EVENT_REGISTERS}
    if where in ("syscall-entry", "syscall-fast-entry"):
        return SyscallEvent(kernel, thread.num, registers, exit=False)
    if where in ("syscall-exit", "syscall-fast-exit"):
        return SyscallEvent(kernel, thread.num, registers, exit=True)
    return TrapEvent(kernel, thread.num, registers)


Handler = Callable[[Event], bool]


def report_handler_error(who: str, error: BaseException) -> None:
    """One line (a traceback with `set osv-debug on`) for a failing handler."""
    gdb.write(f"{report_internal_error(who, error)}\n", gdb.STDERR)


class EventBreakpoint(gdb.Breakpoint):
    """A breakpoint at one entry/exit location that stops when `handler(event)` is true.

    A handler that raises stops the guest with one error line, so a broken script
    is noticed; a kernel that cannot be read there (no symbols yet) never stops it.
    """

    def __init__(
        self,
        where: str,
        handler: Handler,
        *,
        who: str,
        temporary: bool = False,
        last_hit: dict[int, tuple[object, ...]] | None = None,
    ):
        super().__init__(f"*{location_address(where):#x}", gdb.BP_BREAKPOINT, temporary=temporary)
        self.where = where
        self.handler = handler
        self.who = who
        # per vCPU, the last hit: shared by a hook's breakpoints (a fast path that declines)
        self._last_hit: dict[int, tuple[object, ...]] = {} if last_hit is None else last_hit

    def stop(self) -> bool:
        try:
            event = decode(self.where)
        except (TargetError, DecodeError, gdb.error):
            return False
        except Exception as error:
            report_handler_error(self.who, error)
            return True
        # With several vCPUs GDB may report one hit twice (a pending stop it replays
        # after stepping another vCPU over the breakpoint): the guest did not move.
        if self._last_hit.get(event.vcpu) == event.hit:
            return False
        self._last_hit[event.vcpu] = event.hit
        try:
            return bool(self.handler(event))
        except Exception as error:
            report_handler_error(self.who, error)
            return True
