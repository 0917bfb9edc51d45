"""A replay under GDB: osv-when, osv-seek, osv-last-write, osv-reverse-continue, and the
end of the recording.

`osvgdb replay DIR` (osvgdb/replay.py) connects GDB to a QEMU replaying a recording,
stopped at its last instruction, and sets `osv-recording DIR` and `osv-qmp-socket`
(a QMP monitor of GDB's own). GDB's reverse-stepi, reverse-next, reverse-finish and
reverse-continue are QEMU's (it loads the nearest snapshot before its target and
replays forward; with breakpoints, twice). What osvgdb adds goes through QMP:

- where the replay is: QMP query-replay's instruction count (`osv-when`);
- going to instruction N (`osv-seek`, and osv-last-write's moves): with the guest
  stopped, HMP loadvm of the nearest snapshot before N (QEMU changes no run state,
  so GDB, idle, gets no stray stop reply), GDB's register cache flushed, then QMP
  replay-break N and GDB's own `continue`, which the break ends as a SIGINT stop;
- the end: after every stop before it, replay-break at the recording's last
  instruction, so `continue` stops there instead of replaying QEMU's `quit`.

osv-last-write does not use QEMU's reverse watchpoints: QEMU reports every watch
stop as a plain SIGTRAP, so GDB cannot tell a false hit, and a reverse-continue
stopped at the wrong write there. It replays forward instead, from the nearest
snapshot before the current point to that point, with a hardware write watchpoint
(forward watch stops are right: GDB compares the old and new value, and calls our
stop() only for a change, which records it and lets the guest run on), then from
the snapshot before that one, until it has the N last changes. $fs_base and
$gs_base are registers: their changes are the kernel's instructions that write them
(decode/basewrites.py finds wrfsbase, wrgsbase, wrmsr and swapgs in the kernel's
code by their encodings, at instruction boundaries GDB's disassembler gives), each
with a breakpoint whose stop() works out the value it writes from the registers.
Then it goes to each change found, oldest first, to say where it was made: the
function and line, the thread, and the syscall or interrupt the CPU was in (the
innermost crossing of osv-bt's backtrace), and stops at the last one, before the
writing instruction runs.

osv-reverse-continue is reverse-continue searched the same way, with the user's
breakpoints on: each stretch between snapshots replayed forward once, noting every stop
and running on (QEMU replays the stretch with the hit twice), and a hit on a stretch's
first instruction looked for apart: a forward `continue` steps over a breakpoint where
it starts, and QEMU's own reverse-continue misses such a hit (it stops at an earlier one).
QEMU runs code in the same page as a breakpoint one instruction per translation block,
so a breakpoint in a hot loop's page makes any replay with it on many times slower: the
seeks run with the user's breakpoints off.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gdb

from osvgdb import record
from osvgdb.decode import basewrites
from osvgdb.gdb import appsyms
from osvgdb.gdb.command import OsvCommand, import_from_venv, int_arg, print_json
from osvgdb.gdb.target import Kernel, TargetError, reader, u64

BASE_REGISTERS = ("fs_base", "gs_base")
QMP_TIMEOUT = 60.0  # seconds for one QMP command; a loadvm of a large guest takes ~1


class RecordingParameter(gdb.Parameter):
    """The recording GDB is replaying (osvgdb replay sets it): osv-when, osv-seek and
    osv-last-write read its end and snapshots there."""

    set_doc = "Set the recording directory GDB is replaying."
    show_doc = "Show the recording directory GDB is replaying."

    def __init__(self) -> None:
        super().__init__("osv-recording", gdb.COMMAND_FILES, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = ""

    def get_set_string(self) -> str:
        Replay.forget()
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"The recording being replayed is {svalue!r}."


class ReplayError(Exception):
    """Not a replay, or the replay cannot do what was asked: one line."""


@dataclass
class Write:
    """One change of the watched location: `position` the instruction count at which
    the writing instruction is about to run; the value before and after (an int for
    a register, bytes for memory; None where it could not be read)."""

    position: int
    old: int | bytes | None
    new: int | bytes | None
    pc: int = 0
    where: str = ""  # function and file:line
    thread: str = ""
    inside: str = ""  # the syscall or interrupt, or "app code" / "kernel code"
    cpu: int | None = None
    tid: int | None = None

    def as_dict(self) -> dict[str, object]:
        def value(v: int | bytes | None) -> object:
            return v.hex() if isinstance(v, bytes) else v

        return {"icount": self.position, "pc": self.pc, "where": self.where,
                "old": value(self.old), "new": value(self.new), "tid": self.tid,
                "thread": self.thread, "cpu": self.cpu, "in": self.inside}  # fmt: skip


class Replay:
    """The replay GDB is connected to: the recording, a QMP connection to its QEMU."""

    _current: Replay | None = None

    def __init__(self, directory: Path, socket: Path):
        import_from_venv("qemu.qmp", "qemu.qmp", "osv-replay")
        try:
            self.recording = record.open_recording(directory, check_qemu=False)
        except record.RecordingError as error:
            raise ReplayError(str(error)) from None
        end = self.recording.end.icount
        assert end is not None
        self.end = end
        self.socket = socket
        self._monitor = None
        self.busy = False  # inside an osvgdb move: the stop hook leaves the replay alone

    @classmethod
    def get(cls) -> Replay:
        directory = _parameter("osv-recording")
        socket = _parameter("osv-qmp-socket")
        if not directory:
            raise ReplayError("not a replay (osvgdb replay DIR sets osv-recording)")
        if not socket:
            raise ReplayError("no QMP socket (osv-qmp-socket) to ask the replaying QEMU")
        current = cls._current
        if current is None or current.recording.directory != Path(directory) or current.socket != Path(socket):
            cls._current = current = cls(Path(directory), Path(socket))
        return current

    @classmethod
    def forget(cls) -> None:
        if cls._current is not None and cls._current._monitor is not None:
            cls._current._monitor.close()
        cls._current = None

    @property
    def monitor(self):
        from osvgdb.monitor import Monitor, MonitorError

        if self._monitor is None:
            try:
                self._monitor = Monitor(self.socket, timeout=QMP_TIMEOUT)
            except MonitorError as error:
                raise ReplayError(str(error)) from None
        return self._monitor

    def qmp(self, name: str, **arguments: object) -> object:
        from osvgdb.monitor import MonitorError

        try:
            return self.monitor.execute(name, **arguments)
        except MonitorError as error:
            self._monitor = None
            raise ReplayError(str(error)) from None

    def icount(self) -> int:
        reply = self.qmp("query-replay")
        assert isinstance(reply, dict)
        return int(reply["icount"])

    def arm_end(self) -> None:
        """Stop a `continue` at the end of the recording, not past it."""
        if self.icount() <= self.end:
            self.qmp("replay-break", icount=self.end)

    # --- moving ---------------------------------------------------------------------

    def seek(self, target: int) -> None:
        """Go to instruction `target`, through the nearest snapshot before it when it
        lies behind (or a snapshot is nearer than where the replay is)."""
        if not 0 <= target <= self.end:
            raise ReplayError(f"instruction {target} is not in the recording (0 to {self.end})")
        current = self.icount()
        if target == current:
            return
        snapshot = record.nearest_snapshot(self.recording.snapshots, target)
        start = snapshot.icount if snapshot is not None else 0
        if target < current or start > current:
            name = snapshot.name if snapshot is not None else record.INIT_SNAPSHOT
            try:
                record.load_snapshot(self.monitor, name)
            except record.QemuError as error:
                raise ReplayError(str(error)) from None
            gdb.execute("maintenance flush register-cache", to_string=True)
            current = start
        if target > current:
            self.forward(target)

    def forward(self, target: int) -> None:
        """Replay forward to instruction `target` with GDB's `continue`, the user's
        breakpoints off meanwhile (ours stop nothing: they record and run on)."""
        self.qmp("replay-break", icount=target)
        with _user_breakpoints_off(), _quiet():
            gdb.execute("with suppress-cli-notifications on -- continue", to_string=True)
        now = self.icount()
        if now != target:
            raise ReplayError(f"the replay stopped at instruction {now}, not at {target}")

    def snapshot_starts(self, before: int) -> list[int]:
        """Where the replays that look back from `before` start: the snapshots before
        it, newest first, ending with the start of the recording."""
        starts = sorted({s.icount for s in self.recording.snapshots if s.icount < before}, reverse=True)
        return [*starts, 0] if (not starts or starts[-1] != 0) else starts


def written() -> dict[str, int] | None:
    """How many bytes the guest had written to each output at this point (its own counts,
    osvgdb.record.STREAMS), None for a kernel without them."""
    kernel = Kernel.get()
    try:
        return record.written_counts(kernel.address, kernel.read)
    except TargetError:
        return None


def _parameter(name: str) -> str:
    try:
        return str(gdb.parameter(name) or "")
    except (gdb.error, RuntimeError):
        return ""


def _user_breakpoints() -> list[gdb.Breakpoint]:
    # The user's only: gdb.breakpoints() also lists the internal ones (number < 0) that
    # Python made, ours among them.
    return [b for b in gdb.breakpoints() if b.is_valid() and b.enabled and b.number > 0]


@contextlib.contextmanager
def _user_breakpoints_off():
    enabled = _user_breakpoints()
    for b in enabled:
        b.enabled = False
    try:
        yield
    finally:
        for b in enabled:
            if b.is_valid():
                b.enabled = True


# Set by replay_session(cli=True): GDB talks to a person on its stdout (not MI).
_cli = False


@contextlib.contextmanager
def _quiet():
    """Nothing from GDB's CLI meanwhile. A replay-break ends a `continue` as a SIGINT stop,
    and the CLI interpreter's own observer prints "Program received signal SIGINT" on
    the terminal for it, which neither to_string, suppress-cli-notifications nor
    logging's redirection reach (`handle SIGINT noprint` would also stop the stop): so
    GDB's stdout goes to /dev/null while the replay moves. Under MI (the TUI) there is
    no such line, and stdout carries the MI records: it is left alone."""
    if not _cli:
        yield
        return
    gdb.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    try:
        yield
    finally:
        gdb.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def _busy(replay: Replay):
    replay.busy = True
    try:
        yield
    finally:
        replay.busy = False


# --- what is being watched ------------------------------------------------------------


class _Watch:
    """A location being watched for changes over one forward replay."""

    def describe(self) -> str:
        raise NotImplementedError

    def start(self, replay: Replay) -> None:
        """Start watching (the replay is where the forward run begins)."""

    def stop(self) -> list[Write]:
        """Stop watching; the changes seen, in order."""
        raise NotImplementedError


class _MemoryWatch(_Watch):
    """A hardware write watchpoint on [address, address + length)."""

    def __init__(self, text: str, address: int, length: int):
        self.text = text
        self.address = address
        self.length = length
        self.breakpoint: _WriteWatchpoint | None = None

    def describe(self) -> str:
        return f"{self.text} ({self.length} bytes at {self.address:#x})"

    def start(self, replay: Replay) -> None:
        try:
            self.breakpoint = _WriteWatchpoint(replay, self.address, self.length)
        except gdb.error as error:
            raise ReplayError(f"watching {self.describe()}: {error}") from None

    def stop(self) -> list[Write]:
        if self.breakpoint is None:
            return []
        hits = self.breakpoint.hits
        if self.breakpoint.is_valid():
            self.breakpoint.delete()
        self.breakpoint = None
        return hits


class _WriteWatchpoint(gdb.Breakpoint):
    def __init__(self, replay: Replay, address: int, length: int):
        self.replay = replay
        self.address = address
        self.length = length
        self.hits: list[Write] = []
        self.last = reader(address, length)
        spec = f"*(unsigned char (*)[{length}]) {address:#x}"
        super().__init__(spec, gdb.BP_WATCHPOINT, gdb.WP_WRITE, internal=True)
        self.silent = True
        if self.type != gdb.BP_HARDWARE_WATCHPOINT:
            # A software watchpoint would single-step the whole replay.
            self.delete()
            raise ReplayError(f"QEMU took no hardware watchpoint on {length} bytes at {address:#x}")

    def stop(self) -> bool:
        # GDB calls this only when the bytes changed; the writing instruction has run.
        new = reader(self.address, self.length)
        self.hits.append(Write(self.replay.icount() - 1, self.last, new))
        self.last = new
        return False


class _BaseWatch(_Watch):
    """The FS or GS base of the selected vCPU: a breakpoint on every instruction of the
    kernel (and the app) that can write it."""

    def __init__(self, base: str, sites: list[tuple[int, basewrites.BaseWrite]]):
        self.base = base
        self.sites = [(address, site) for address, site in sites if site.base in (None, base)]
        self.breakpoints: list[_BaseWriteBreakpoint] = []
        self.hits: list[Write] = []

    def describe(self) -> str:
        return f"${self.base} (written by {len(self.sites)} instructions)"

    def start(self, replay: Replay) -> None:
        thread = gdb.selected_thread()
        for address, site in self.sites:
            bp = _BaseWriteBreakpoint(replay, self, address, site)
            if thread is not None:
                bp.thread = thread.global_num
            self.breakpoints.append(bp)

    def stop(self) -> list[Write]:
        for bp in self.breakpoints:
            if bp.is_valid():
                bp.delete()
        self.breakpoints.clear()
        hits, self.hits = self.hits, []
        return hits


class _BaseWriteBreakpoint(gdb.Breakpoint):
    def __init__(self, replay: Replay, watch: _BaseWatch, address: int, site: basewrites.BaseWrite):
        self.replay = replay
        self.watch = watch
        self.site = site
        super().__init__(f"*{address:#x}", gdb.BP_BREAKPOINT, internal=True)
        self.silent = True

    def stop(self) -> bool:
        frame = gdb.newest_frame()
        names = ("rax", "rcx", "rdx", self.watch.base, *basewrites.REGISTERS, "k_gs_base")
        registers = {}
        for name in names:
            try:
                registers[name] = u64(frame.read_register(name))
            except (ValueError, gdb.error):
                continue
        if not self.site.writes(self.watch.base, registers):
            return False
        new = self.site.value(registers)
        old = registers.get(self.watch.base)
        if new != old:  # a change, as for memory: the instruction has not run yet
            self.watch.hits.append(Write(self.replay.icount(), old, new))
        return False


@lru_cache(maxsize=4)
def _sites_in(path: str, bias: int) -> tuple[tuple[int, basewrites.BaseWrite], ...]:
    """Every instruction in the ELF file PATH (loaded `bias` above its link addresses)
    that can write the FS or GS base: the byte patterns in its executable sections,
    kept where GDB's disassembler of the sized function holding one starts an
    instruction there that decode() confirms."""
    import_from_venv("elftools", "pyelftools", "osv-last-write")
    from elftools.elf.elffile import ELFFile

    functions: list[tuple[int, int]] = []
    patterns: list[int] = []
    with open(path, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None:
            functions = sorted(
                (s["st_value"], s["st_size"]) for s in symtab.iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_size"]
            )  # fmt: skip
        for section in elf.iter_sections():
            if section["sh_flags"] & 0x4 and section["sh_type"] == "SHT_PROGBITS":  # SHF_EXECINSTR
                code = section.data()
                patterns += [section["sh_addr"] + i for i in basewrites.candidates(code)]
    holding = set()
    starts = [start for start, _ in functions]
    for address in patterns:
        index = bisect.bisect_right(starts, address) - 1
        if index >= 0 and address < functions[index][0] + functions[index][1]:
            holding.add(functions[index])
    architecture = gdb.selected_inferior().architecture()
    sites = []
    for start, size in sorted(holding):
        code = reader(start + bias, size)
        if code is None:
            continue
        for instruction in architecture.disassemble(start + bias, start + bias + size - 1):
            offset = instruction["addr"] - start - bias
            decoded = basewrites.decode(code[offset : offset + instruction["length"]])
            if decoded is not None:
                sites.append((instruction["addr"], decoded))
    return tuple(sites)


def base_write_sites() -> list[tuple[int, basewrites.BaseWrite]]:
    """The kernel's FS/GS base writes, and the app's once it is loaded."""
    kernel = Kernel.get()
    sites = list(_sites_in(kernel.gdb_target.objfile.filename, 0))
    app = appsyms.app_path()
    if app and appsyms.app_loaded():
        try:
            load_base = int(kernel.process(("load_base",))["load_base"] or 0)
        except TargetError:
            load_base = 0
        sites += _sites_in(app, load_base)
    return sites


def parse_location(text: str) -> _Watch:
    """LOCATION: $fs_base / $gs_base, an lvalue, or *ADDR@LEN."""
    text = text.strip()
    if text in (f"${name}" for name in BASE_REGISTERS):
        return _BaseWatch(text[1:], base_write_sites())
    if text.startswith("$") and text[1:].isidentifier():
        raise ReplayError(
            f"{text}: only memory, $fs_base and $gs_base (another register changes at "
            "almost every instruction)"
        )
    try:
        value = gdb.parse_and_eval(text)
        address = value.address
        if address is not None and value.type.strip_typedefs().sizeof:
            return _MemoryWatch(text, u64(address), value.type.strip_typedefs().sizeof)
        problem = "not an lvalue"
    except gdb.error as error:
        problem = str(error)
    if text.startswith("*") and "@" in text:
        where, _, length = text[1:].rpartition("@")
        try:
            address, size = int(gdb.parse_and_eval(where)), int(gdb.parse_and_eval(length))
        except gdb.error as error:
            raise ReplayError(f"{text}: {error}") from None
        if size <= 0:
            raise ReplayError(f"{text}: the length must be at least 1")
        return _MemoryWatch(text, address & ((1 << 64) - 1), size)
    raise ReplayError(f"{text}: {problem} (an lvalue, *ADDR@LEN, $fs_base or $gs_base)")


# --- where a write was made -------------------------------------------------------------


def _where(pc: int) -> str:
    """`function () at file:line`, as far as the symbols say."""
    try:
        name = gdb.newest_frame().name()
    except gdb.error:
        name = None
    line = gdb.find_pc_line(pc)
    place = f"{name or '??'} ()"
    if line.symtab is not None and line.line:
        place += f" at {line.symtab.filename}:{line.line}"
    return place


def _context(write: Write) -> None:
    """Fill in where `write` was made, from the replay stopped just before it."""
    from osvgdb.gdb.bt import UNWIND_REGISTERS
    from osvgdb.gdb.target import vcpu_registers
    from osvgdb.model.bt import bt_report

    write.pc = u64(gdb.parse_and_eval("$pc"))
    write.where = _where(write.pc)
    kernel = Kernel.get()
    thread = gdb.selected_thread()
    try:
        import_from_venv("elftools", "pyelftools", "osv-last-write")
        (report,) = bt_report(
            kernel,
            appsyms.app_path() or None,
            vcpu=thread.num if thread is not None else None,
            vcpu_registers=vcpu_registers(UNWIND_REGISTERS),
        )
    except (TargetError, ValueError, gdb.error, Exception) as error:  # noqa: BLE001
        # Early in boot no thread runs: say so rather than guess.
        write.thread = f"no kernel thread ({error})"
        write.inside = "kernel code" if kernel.ranges.in_kernel(write.pc) else "app code"
        return
    write.tid = report.thread.tid
    write.thread = f"tid {report.thread.tid} ({report.thread.name})"
    write.cpu = report.cpu.index if report.cpu is not None else None
    crossing = next((f for f in report.backtrace.frames if f.kind == "crossing"), None)
    if crossing is not None:
        write.inside = crossing.function or "a crossing"
    else:
        write.inside = "kernel code" if kernel.ranges.in_kernel(write.pc) else "app code"


def _value_text(value: int | bytes | None) -> str:
    if value is None:
        return "<unreadable>"
    if isinstance(value, int):
        return f"{value:#x}"
    if len(value) in (1, 2, 4, 8):
        return f"{int.from_bytes(value, 'little'):#x}"
    return value.hex(" ")


def last_writes(replay: Replay, watch: _Watch, count: int) -> tuple[int, list[Write]]:
    """The `count` last changes of the watched location before the current point, oldest
    first (fewer if the recording has fewer), with where each was made; the replay is
    left at the last one, before its instruction runs (where it was, if none)."""
    here = replay.icount()
    found: list[Write] = []
    stop = here
    with _busy(replay):
        try:
            for start in replay.snapshot_starts(here):
                replay.seek(start)
                watch.start(replay)
                try:
                    if stop > start:
                        replay.forward(stop)
                finally:
                    hits = watch.stop()
                hits = [w for w in hits if w.position < stop]
                found = hits[max(0, len(hits) - (count - len(found))) :] + found
                if len(found) >= count:
                    break
                stop = start
            for write in found:
                replay.seek(write.position)
                _context(write)
            if not found:
                replay.seek(here)
        except BaseException:
            with contextlib.suppress(ReplayError, gdb.error):
                replay.seek(here)
            raise
        finally:
            replay.arm_end()
    return here, found


# --- breakpoints, backward ------------------------------------------------------------


@dataclass
class Hit:
    """A stop at the user's breakpoints found on a forward replay: where, which."""

    position: int  # instruction count: the breakpoint's instruction has not run
    pc: int
    breakpoints: list[int]


def _would_stop_here(pc: int) -> list[int]:
    """The user's breakpoints at PC that would stop the guest here (their conditions,
    or the stop() of osv-break's, as GDB would ask them): a forward `continue` from PC
    steps over them without asking, so a hit at a replay's first instruction is
    looked for apart."""
    numbers = []
    for b in _user_breakpoints():
        if b.type != gdb.BP_BREAKPOINT or not any(
            loc.enabled and loc.address == pc for loc in b.locations
        ):
            continue
        stop = getattr(b, "stop", None)
        try:
            if callable(stop):
                wanted = bool(stop())
            else:
                wanted = not b.condition or bool(gdb.parse_and_eval(b.condition))
        except gdb.error:
            wanted = True  # as GDB: a condition it cannot evaluate stops
        if wanted:
            numbers.append(b.number)
    return numbers


def _forward_hits(replay: Replay, start: int, stop: int) -> list[Hit]:
    """Replay forward from instruction `start` (the replay is there) to `stop` with the
    user's breakpoints on, noting each stop at them and running on: the stops a forward
    `continue` would make, in order."""
    hits: list[Hit] = []
    if start < stop:
        pc = _pc()
        numbers = _would_stop_here(pc)
        if numbers:
            hits.append(Hit(start, pc, numbers))
    stopped: list[list[int]] = []

    def on_stop(event: object) -> None:
        if isinstance(event, gdb.BreakpointEvent):
            stopped.append([b.number for b in event.breakpoints if b.number > 0])

    gdb.events.stop.connect(on_stop)
    try:
        while replay.icount() < stop:
            stopped.clear()
            # Armed each time: a breakpoint's stop before it leaves QEMU's break pending.
            replay.qmp("replay-break", icount=stop)
            with _quiet():
                gdb.execute("with suppress-cli-notifications on -- continue", to_string=True)
            now = replay.icount()
            if now >= stop:
                if now > stop:
                    raise ReplayError(f"the replay went past instruction {stop}, to {now}")
                break
            numbers = [n for numbers in stopped for n in numbers]
            if not numbers:
                raise ReplayError(f"the replay stopped at instruction {now}, at none of your breakpoints")
            hits.append(Hit(now, _pc(), numbers))
    finally:
        gdb.events.stop.disconnect(on_stop)
    return hits


def _pc() -> int:
    return u64(gdb.newest_frame().read_register("pc"))


def last_hit(replay: Replay) -> tuple[int, Hit | None, int]:
    """The last stop at the user's breakpoints before the current point, found by
    replaying forward from the nearest snapshot before it, then from the one before
    that, until one has a hit: each stretch replayed once (QEMU's reverse-continue
    replays the one with the hit twice); the replay is left at the hit, or at the start
    of the recording if there is none. Where it was, the hit, and how many stretches
    were replayed."""
    here = replay.icount()
    stop, found, stretches = here, None, 0
    with _busy(replay):
        try:
            for start in replay.snapshot_starts(here):
                replay.seek(start)  # with the user's breakpoints off; the search with them on
                stretches += 1
                hits = [h for h in _forward_hits(replay, start, stop) if h.position < stop]
                if hits:
                    found = hits[-1]
                    break
                stop = start
            replay.seek(found.position if found is not None else 0)
            if found is not None and _pc() != found.pc:
                raise ReplayError(
                    f"the replay diverged: instruction {found.position} is at {_pc():#x} now, "
                    f"at {found.pc:#x} when the breakpoint hit"
                )
        except BaseException:
            with contextlib.suppress(ReplayError, gdb.error):
                replay.seek(here)
            raise
        finally:
            replay.arm_end()
    return here, found, stretches


# --- commands -------------------------------------------------------------------------


def _replay_or_error(who: str) -> Replay:
    try:
        return Replay.get()
    except ReplayError as error:
        raise gdb.GdbError(f"{who}: {error}") from None


class OsvWhen(OsvCommand):
    NAME = "osv-when"
    SUMMARY = "Show where the replay is: its instruction count, of the recording's."
    DETAILS = (
        "In a replay (osvgdb replay DIR): the instruction count QEMU replays at (QMP\n"
        "query-replay), the recording's last one, and the snapshots a move back can start\n"
        "from; --json also says how many bytes the guest had written to each output by\n"
        "then (written: console, stdout, stderr: the recording's console.txt, stdout.txt\n"
        "and stderr.txt up to there). rr's `when`."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        replay = _replay_or_error(self.NAME)
        try:
            icount = replay.icount()
        except ReplayError as error:
            raise gdb.GdbError(f"{self.NAME}: {error}") from None
        return {
            "icount": icount,
            "end": replay.end,
            "at_end": icount == replay.end,
            "snapshots": len(replay.recording.snapshots) + 1,
            "recording": str(replay.recording.directory),
            "written": written(),
        }

    def run(self, args: argparse.Namespace) -> None:
        data = self.data(args)
        if args.json:
            print_json(data)
            return
        at = " (the end of the recording)" if data["at_end"] else ""
        gdb.write(
            f"instruction {data['icount']} of {data['end']}{at}; "
            f"{data['snapshots']} snapshots in {data['recording']}\n"
        )


class OsvSeek(OsvCommand):
    NAME = "osv-seek"
    SUMMARY = "Go to an instruction count of the replay (or its start or end)."
    DETAILS = (
        "osv-seek N | start | end: the replay goes to instruction N (osv-when says where it\n"
        "is; osv-last-write prints where each write was), through the nearest snapshot\n"
        "before it. Breakpoints do not stop it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target", metavar="N|start|end", help="an instruction count")

    def run(self, args: argparse.Namespace) -> None:
        replay = _replay_or_error(self.NAME)
        target = {"start": 0, "end": replay.end}.get(args.target)
        if target is None:
            try:
                target = int_arg(args.target)
            except argparse.ArgumentTypeError as error:
                raise gdb.GdbError(f"{self.NAME}: {error}") from None
        with _busy(replay):
            try:
                replay.seek(target)
            except ReplayError as error:
                raise gdb.GdbError(f"{self.NAME}: {error}") from None
            finally:
                replay.arm_end()
        gdb.write(f"instruction {target} of {replay.end}\n")
        gdb.write(frame_line())


class OsvLastWrite(OsvCommand):
    NAME = "osv-last-write"
    SUMMARY = "Go back to the instruction that last changed a location (rr's watch + reverse-continue)."
    DETAILS = (
        "LOCATION: an lvalue (a variable, p->field, array[3]), *ADDR@LEN (LEN bytes at\n"
        "ADDR), or $fs_base / $gs_base of the selected vCPU. In a replay (osvgdb replay\n"
        "DIR): finds the last write before the current point that changed it and stops\n"
        "there, before the writing instruction runs (stepi makes the write), printing the\n"
        "instruction count, the function and line, the old and new value, the thread and\n"
        "the syscall or interrupt the CPU was in. --before N lists the N last changes\n"
        "(oldest first) and stops at the last. A write of the value already there is no\n"
        "change (as for GDB's watch). Memory is watched with forward watchpoints from the\n"
        "nearest snapshot before the point; the FS and GS base by breakpoints on the\n"
        "kernel's instructions that write them (wrfsbase, wrgsbase, wrmsr, swapgs).\n"
        "`osv-seek N` goes back to where you were."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("location", nargs="+", metavar="LOCATION", help="what was written")
        parser.add_argument(
            "--before", type=int_arg, default=1, metavar="N",
            help="the N last changes (default 1)",
        )  # fmt: skip
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> None:
        if args.before < 1:
            raise gdb.GdbError(f"{self.NAME}: --before takes a number from 1")
        replay = _replay_or_error(self.NAME)
        text = " ".join(args.location)
        try:
            watch = parse_location(text)
            here, writes = last_writes(replay, watch, args.before)
        except ReplayError as error:
            raise gdb.GdbError(f"{self.NAME}: {error}") from None
        if args.json:
            print_json({"location": text, "watched": watch.describe(), "before": here,
                        "writes": [w.as_dict() for w in writes]})  # fmt: skip
            return
        if not writes:
            gdb.write(
                f"osv-last-write: {watch.describe()} did not change between the start of the "
                f"recording and instruction {here}\n"
            )
            return
        what = "change" if len(writes) == 1 else f"{len(writes)} changes"
        gdb.write(f"osv-last-write: the last {what} of {watch.describe()} before instruction {here}:\n")
        for write in writes:
            gdb.write(
                f"  instruction {write.position}: {write.pc:#x} in {write.where}\n"
                f"    {_value_text(write.old)} -> {_value_text(write.new)}; {write.thread}"
                f"{f' on CPU {write.cpu}' if write.cpu is not None else ''}, in {write.inside}\n"
            )
        gdb.write(
            f"stopped before the writing instruction runs (stepi makes the write); "
            f"osv-seek {here} goes back\n"
        )
        gdb.write(frame_line())


class OsvReverseContinue(OsvCommand):
    NAME = "osv-reverse-continue"
    SUMMARY = "Go back to the last stop at your breakpoints (reverse-continue, replaying each stretch once)."
    DETAILS = (
        "In a replay (osvgdb replay DIR): what reverse-continue does with breakpoints (break,\n"
        "osv-break), found by osvgdb: it replays forward from the nearest snapshot before the\n"
        "current point to it with your breakpoints on, noting each stop and running on, then\n"
        "from the snapshot before that one, until a stretch has a stop; the replay goes to\n"
        "the last one found: each stretch replayed once (QEMU's replays the one with the\n"
        "stop twice), and a stop on the instruction a snapshot was taken at is found (QEMU's\n"
        "misses it and goes on to an earlier one). With no stop before the current point it\n"
        "goes to the start of the recording and says so. Watchpoints: osv-last-write.\n"
        "`osv-seek N` goes back to where you were."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def run(self, args: argparse.Namespace) -> None:
        replay = _replay_or_error(self.NAME)
        users = _user_breakpoints()
        watches = [b.number for b in users if b.type != gdb.BP_BREAKPOINT]
        if watches:
            raise gdb.GdbError(
                f"{self.NAME}: watchpoint {watches[0]} is on: osv-last-write finds the last "
                "change of a location (disable the watchpoint for this)"
            )
        if not users:
            raise gdb.GdbError(f"{self.NAME}: no breakpoint is on (break, osv-break): nothing to go back to")
        try:
            here, hit, stretches = last_hit(replay)
        except ReplayError as error:
            raise gdb.GdbError(f"{self.NAME}: {error}") from None
        if args.json:
            print_json({"before": here, "icount": hit.position if hit else 0, "stretches": stretches,
                        "hit": {"pc": hit.pc, "breakpoints": hit.breakpoints} if hit else None})  # fmt: skip
            return
        if hit is None:
            gdb.write(
                f"{self.NAME}: no breakpoint stop between the start of the recording and "
                f"instruction {here}; at the start now (osv-seek {here} goes back)\n"
            )
        else:
            numbers = ", ".join(str(n) for n in hit.breakpoints)
            gdb.write(
                f"{self.NAME}: breakpoint {numbers} at instruction {hit.position} "
                f"(from {here}; {stretches} stretch{'es' if stretches > 1 else ''} replayed)\n"
            )
        gdb.write(frame_line())


def frame_line() -> str:
    """The selected frame as `bt` prints it: through the frame filter, which names an entry
    stub's frame by its crossing (`frame` would say <signal handler called>)."""
    text = gdb.execute("bt 1", to_string=True)
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("(More stack"))


# --- the session ------------------------------------------------------------------------


def on_stop(_event: object) -> None:
    """After any stop GDB reports: keep `continue` from replaying past the end, and say
    so when it got there."""
    try:
        replay = Replay.get()
    except ReplayError:
        return
    if replay.busy:
        return
    try:
        icount = replay.icount()
        replay.arm_end()
    except ReplayError:
        return
    if icount == replay.end and isinstance(_event, gdb.SignalEvent):
        gdb.write(
            f"osvgdb: the end of the recording (instruction {replay.end}): "
            f"{replay.recording.end.describe()}; nothing runs after it\n"
        )


class ForwardCheck(gdb.Command):
    """replay-hooks.gdb's pre-hook of the commands that run the guest forward.

    Usage: osv-replay-forward-check COMMAND. At the end of the recording it fails
    (one line), which keeps COMMAND from running; going backward (reverse-continue
    runs `continue` the other way) and osvgdb's own moves pass."""

    def __init__(self) -> None:
        super().__init__("osv-replay-forward-check", gdb.COMMAND_MAINTENANCE)

    def invoke(self, argument: str, from_tty: bool) -> None:
        self.dont_repeat()
        current = Replay._current
        if current is not None and current.busy:
            return  # our own moves stop at their target
        if gdb.execute("show exec-direction", to_string=True).strip().startswith("Reverse"):
            return
        try:
            replay = Replay.get()
            at_end = replay.icount() >= replay.end
        except ReplayError:
            return
        if at_end:
            raise gdb.GdbError(
                f"{argument}: the end of the recording (instruction {replay.end}): nothing "
                "runs after it (reverse-stepi, reverse-continue, osv-seek go back)"
            )


HOOKS = Path(__file__).with_name("replay-hooks.gdb")


def start_session(*, cli: bool) -> str:
    """What osvgdb.gdb.replay_session() sets up once connected: the end armed, the
    pre-hooks that refuse running past it, whether GDB prints to a person (`cli`); the
    greeting."""
    global _cli
    _cli = cli
    gdb.execute(f"source {HOOKS}", to_string=True)
    return greeting()


def greeting() -> str:
    replay = Replay.get()
    replay.arm_end()
    end = replay.recording.end
    return (
        f"osvgdb: replaying {replay.recording.directory}: at its end, instruction {replay.end} "
        f"({end.describe()}); reverse-stepi, reverse-next, reverse-finish, reverse-continue "
        "go back (osv-reverse-continue too: it also finds a hit on a snapshot's instruction), "
        "osv-last-write LOCATION finds what changed it, osv-when, osv-seek N\n"
    )
