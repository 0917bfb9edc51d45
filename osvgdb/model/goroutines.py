"""A Go program's goroutines, read from the Go runtime's own tables (no gdb).

A static Go program (CGO_ENABLED=0) keeps every goroutine it ever made in
`runtime.allgs` (a slice of *g); each `runtime.g` has its id (`goid`), its status
(`atomicstatus`), why it waits (`waitreason`, an index into
`runtime.waitReasonStrings`), where it resumes (`sched`: pc, sp, bp) and which
function it was started with and by whom (`startpc`, `gopc`). A thread (an M)
finds its current g at -8(FS) (Go's TLS slot on linux/amd64), and `m.curg` is the
goroutine it runs while it is on its own g0 stack (`systemstack`, `morestack`).

The struct layouts come from the app's DWARF (decode.layout, cached per file); the
status numbers are the runtime's constants (runtime2.go: _Grunnable 1 ... _Gpreempted
9, the _Gscan bit 0x1000), which Go's DWARF does not carry. Nothing here unwinds:
osvgdb.model.unwind walks a goroutine's stack from its `sched` (or, for one on a
thread, from that thread's registers) and calls `stack_switch` where a thread's
g0 stack leads back to the goroutine it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from osvgdb.decode import DecodeError
from osvgdb.decode.layout import Layout, layouts_from_elf
from osvgdb.model.symbols import RIP, RSP, ElfImage
from osvgdb.model.target import TargetError

RBP = 6
TLS_G = -8  # runtime.tlsg: the current g sits just below the FS base
MAX_GOROUTINES = 10000
STATUS = {0: "idle", 1: "runnable", 2: "running", 3: "syscall", 4: "waiting", 6: "dead",
          8: "copystack", 9: "preempted"}  # fmt: skip
SCAN = 0x1000
G_FIELDS = ("goid", "atomicstatus", "waitreason", "sched.pc", "sched.sp", "sched.bp", "m",
            "startpc", "gopc", "stack.lo", "stack.hi")  # fmt: skip
M_FIELDS = ("g0", "curg", "procid")
# Functions that leave a thread's g0 stack: what called them is on the goroutine's stack,
# where the goroutine's `sched` says (Go's own traceback jumps there too).
STACK_SWITCHES = frozenset(
    ["runtime.systemstack", "runtime.systemstack.abi0", "runtime.morestack",
     "runtime.morestack.abi0", "runtime.mcall", "runtime.mcall.abi0"]
)  # fmt: skip
_LAYOUTS: dict[tuple[str, int], dict[str, Layout]] = {}


class GoError(Exception):
    """The Go runtime's tables cannot be read (a layout or a symbol is missing)."""


@dataclass
class Goroutine:
    goid: int
    address: int  # the runtime.g
    status: str
    wait_reason: str | None  # waitReasonStrings[g.waitreason] while it waits
    pc: int  # g.sched: where it resumes
    sp: int
    bp: int
    start: str | None  # the function it was started with (startpc)
    created_by: str | None  # the function whose `go` statement made it (gopc)
    m: int  # the M (thread) it runs on, 0 when none
    system: bool  # one of the runtime's own (Go's isSystemGoroutine: started in runtime.*)
    tid: int | None = None  # the kernel thread running it, when one does
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def is_go(image: ElfImage | None) -> bool:
    """A Go program: its linker's sections (cheap to ask), and the runtime's table."""
    if image is None or not {".go.buildinfo", ".note.go.buildid"} & set(image.file.sections):
        return False
    return image.file.object_symbol("runtime.allgs") is not None


def _layouts(image: ElfImage) -> dict[str, Layout]:
    key = (str(image.path), id(image.file))
    if key not in _LAYOUTS:
        found = layouts_from_elf(Path(image.path), ["runtime.g", "runtime.m"])
        if set(found) != {"runtime.g", "runtime.m"}:
            raise GoError(f"{image.path}: no runtime.g / runtime.m in its DWARF")
        _LAYOUTS[key] = found
    return _LAYOUTS[key]


class GoRuntime:
    """The Go runtime of the app the kernel runs: its goroutines and its threads' g."""

    def __init__(self, kernel, app: ElfImage):
        self.kernel = kernel
        self.app = app
        layouts = _layouts(app)
        self.g_layout, self.m_layout = layouts["runtime.g"], layouts["runtime.m"]
        self.g_codec = self.g_layout.codec([n for n in G_FIELDS if self.g_layout.has(n)])
        self.m_codec = self.m_layout.codec([n for n in M_FIELDS if self.m_layout.has(n)])
        self._reasons: list[str] | None = None

    def _symbol(self, name: str) -> tuple[int, int]:
        found = self.app.file.object_symbol(name)
        if found is None:
            raise GoError(f"{self.app.path}: no {name}")
        return found[0] + self.app.bias, found[1]

    def _u64(self, address: int) -> int:
        return int.from_bytes(self.kernel.read(address, 8), "little")

    def g(self, address: int) -> dict:
        return self.g_codec.unpack(self.kernel.read(address, self.g_codec.size))

    def m(self, address: int) -> dict:
        return self.m_codec.unpack(self.kernel.read(address, self.m_codec.size))

    def wait_reasons(self) -> list[str]:
        """runtime.waitReasonStrings: a [N]string, each (pointer, length)."""
        if self._reasons is None:
            address, size = self._symbol("runtime.waitReasonStrings")
            table = self.kernel.read(address, size)
            reasons = []
            for offset in range(0, size - 15, 16):
                pointer = int.from_bytes(table[offset : offset + 8], "little")
                length = int.from_bytes(table[offset + 8 : offset + 16], "little")
                text = self.kernel.reader(pointer, length) if pointer and 0 < length < 256 else None
                reasons.append(text.decode("utf-8", "replace") if text else "")
            self._reasons = reasons
        return self._reasons

    def _function(self, pc: int) -> str | None:
        return self.app.symbolize(pc)[0] if pc else None

    def goroutines(self) -> list[Goroutine]:
        """Every goroutine in runtime.allgs that is not dead, by goid."""
        address, _ = self._symbol("runtime.allgs")
        array, length = self._u64(address), self._u64(address + 8)
        if length > MAX_GOROUTINES:
            raise GoError(f"runtime.allgs says {length} goroutines: not a slice the runtime keeps")
        pointers = self.kernel.read(array, 8 * length) if length else b""
        reasons = self.wait_reasons()
        result = []
        for i in range(length):
            g_address = int.from_bytes(pointers[8 * i : 8 * i + 8], "little")
            try:
                g = self.g(g_address)
            except (TargetError, DecodeError) as error:
                result.append(Goroutine(-1, g_address, "unreadable", None, 0, 0, 0, None, None, 0,
                                        False, problems=[str(error)]))  # fmt: skip
                continue
            status = STATUS.get(int(g["atomicstatus"] or 0) & ~SCAN, f"status {g['atomicstatus']}")
            if status in ("dead", "idle"):
                continue
            reason_index = int(g.get("waitreason") or 0)
            reason = reasons[reason_index] if status == "waiting" and reason_index < len(reasons) else None
            start = self._function(int(g.get("startpc") or 0))
            result.append(
                Goroutine(
                    goid=int(g["goid"] or 0),
                    address=g_address,
                    status=status,
                    wait_reason=reason or None,
                    pc=int(g["sched.pc"] or 0),
                    sp=int(g["sched.sp"] or 0),
                    bp=int(g.get("sched.bp") or 0),
                    start=start,
                    created_by=self._function(int(g.get("gopc") or 0)),
                    m=int(g.get("m") or 0),
                    system=bool(start and start.startswith("runtime.") and start != "runtime.main"),
                )
            )
        return sorted(result, key=lambda g: g.goid)

    def current_g(self, app_tcb: int | None) -> int | None:
        """The g a thread runs now (its TLS slot), or None where there is none."""
        if not app_tcb:
            return None
        try:
            return self._u64(app_tcb + TLS_G) or None
        except TargetError:
            return None

    def stack_switch(self, app_tcb: int | None, function: str) -> tuple[int, dict[int, int]] | None:
        """(goid, registers) of the goroutine a thread on its g0 stack works for, where
        `function` (one of STACK_SWITCHES) on g0 leads back to: m.curg's sched; None when
        the thread is on a goroutine's stack already, or its M runs no goroutine.
        morestack and mcall saved their caller's pc and sp there; systemstack saved a
        made-up pc (systemstack_switch+8, for the garbage collector's stack scan) and the
        sp where its own return address is, which is the caller's pc."""
        g_address = self.current_g(app_tcb)
        if g_address is None:
            return None
        try:
            g = self.g(g_address)
            m_address = int(g.get("m") or 0)
            if not m_address:
                return None
            m = self.m(m_address)
            curg = int(m.get("curg") or 0)
            if int(m.get("g0") or 0) != g_address or not curg or curg == g_address:
                return None
            target = self.g(curg)
        except (TargetError, DecodeError):
            return None
        pc, sp, bp = int(target["sched.pc"] or 0), int(target["sched.sp"] or 0), int(target.get("sched.bp") or 0)
        if not pc or not sp:
            return None
        if function.startswith("runtime.systemstack"):
            try:
                pc, sp = self._u64(sp), sp + 8
            except TargetError:
                return None
        return int(target["goid"] or 0), {RIP: pc, RSP: sp, RBP: bp}
