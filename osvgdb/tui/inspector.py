"""What the TUI shows, and how it is fetched: the inspector's state, with no screen in it.

`Inspector` follows GDB's events (the guest runs, stops, a breakpoint
changes, GDB goes away) and at each stop fetches the data of the panes that
are visible, each with one MI command of the osv-* family, concurrently:

    pane          command                                   when
    vcpus,        -osv-tcb                                  every stop (one command for both)
      threads
    syscalls      -osv-syscalls -n 0 --since SEQ            every stop; SEQ: the oldest call
                                                            in flight at the last stop, else
                                                            the newest seen + 1 (only new or
                                                            changed records cross the pipe)
    backtrace     -stack-list-frames --thread N (a vCPU:    every stop; on selection
                  GDB's unwinder, with osv-entry's frames)
                  -osv-bt --tid T (a thread, on a CPU or
                  not: the model's unwinder)
    source        read from the file (no MI), or            when the selected frame has no
                  -data-disassemble around its pc           source
    auxv          -osv-auxv                                 once per app (it never changes)
    breakpoints   -break-list                               when GDB says one changed

so a stop costs at most five MI commands whatever the number of CPUs,
threads or records. A pane's fetch that fails leaves its own error in it
(`Pane.error`) and the other panes as they are. Data fetched at one stop is
kept while the guest runs: it is marked as of that stop (`stale`), never
shown as if current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from osvgdb.mi import CommandError, GdbExited, MiError, Record, console_command
from osvgdb.tui.backend import Backend

INITIAL_SYSCALLS = 500  # records asked for at the first stop; later stops ask only for new ones
SYSCALL_KEEP = 5000  # records kept for the pane
OUTPUT_KEEP = 5000  # lines of the output pane
SOURCE_CONTEXT = 8  # lines of source above and below the selected frame's line
DISASSEMBLY_BYTES = 48

# The panes, in Tab order.
PANES = ("vcpus", "threads", "syscalls", "backtrace", "source", "console", "output",
         "auxv", "breakpoints", "milog")  # fmt: skip


@dataclass
class Pane:
    """One pane's data: `data` as the last successful fetch left it, fetched at
    stop `stop` (0: never); `error` the last fetch's failure; `pending` since when
    a fetch is under way (time.monotonic())."""

    data: object = None
    stop: int = 0
    error: str | None = None
    pending: float | None = None


@dataclass(frozen=True)
class Selection:
    """What the backtrace pane follows: a vCPU (GDB's thread number) or a kernel thread."""

    kind: str  # "vcpu" | "thread"
    number: int

    def describe(self) -> str:
        return f"vCPU {self.number}" if self.kind == "vcpu" else f"thread {self.number}"


@dataclass
class SyscallFilter:
    """`/` in the syscalls pane: words tid=T, cpu=N, and names (any of them)."""

    tid: int | None = None
    cpu: int | None = None
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> SyscallFilter:
        """ValueError with a one-line message for a word it does not know."""
        tid = cpu = None
        names = set()
        for word in text.split():
            key, sep, value = word.partition("=")
            if sep and key in ("tid", "cpu"):
                if not value.isdigit():
                    raise ValueError(f"{key}= takes a number, not {value!r}")
                if key == "tid":
                    tid = int(value)
                else:
                    cpu = int(value)
            elif sep or not word.replace("_", "").isalnum():
                raise ValueError(f"not a filter word: {word!r} (tid=T, cpu=N or a syscall name)")
            else:
                names.add(word)
        return cls(tid, cpu, frozenset(names))

    def matches(self, record: dict) -> bool:
        return (
            (self.tid is None or int(record.get("tid", -1)) == self.tid)
            and (self.cpu is None or int(record.get("cpu", -1)) == self.cpu)
            and (not self.names or record.get("name") in self.names)
        )

    def describe(self) -> str:
        words = [f"tid={self.tid}"] if self.tid is not None else []
        words += [f"cpu={self.cpu}"] if self.cpu is not None else []
        return " ".join(words + sorted(self.names))


@dataclass
class Status:
    """Where the guest is: state "starting" | "running" | "stopped" | "gone";
    `stops` counts the stops seen; `reason` and `frame` are the last stop's."""

    state: str = "starting"
    stops: int = 0
    reason: str = ""
    thread: int | None = None
    frame: dict = field(default_factory=dict)
    banner: str | None = None  # the guest panicked, exited, QEMU or the stub went away
    stopped_at: float = 0.0  # time.monotonic() of the last *stopped


def _int(value: object, default: int = 0) -> int:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return default


def source_excerpt(path: str, line: int, context: int = SOURCE_CONTEXT) -> list[tuple[int, str]]:
    """Lines LINE-CONTEXT..LINE+CONTEXT of PATH as (number, text); OSError if unreadable."""
    with open(path, errors="replace") as file:
        lines = file.read().splitlines()
    first = max(1, line - context)
    return [(n, lines[n - 1]) for n in range(first, min(len(lines), line + context) + 1)]


class Inspector:
    """The state behind the screen, kept current from GDB's events.

    `visible()` says which panes the screen shows now (only those fetch);
    `changed()` is called whenever something the screen shows has changed;
    `kernel_dir` resolves the kernel's relative source paths; `read_only`
    (a dump): no command that resumes the guest; `read_source` reads the
    source pane's lines (a replay serves them from its transcript).
    `recorded_console`: a replay of a recording (osvgdb replay --tui), its outputs
    as one console as far as a dict of counts says (osvgdb.record.Recording.console):
    every stop also asks -osv-when where the replay is (the title's "replay, N of
    M") and how much of each output the guest had written by then (what the console
    pane shows); the reverse keys work, and
    nothing runs forward from the end of the recording."""

    def __init__(
        self,
        backend: Backend,
        *,
        visible: Callable[[], Iterable[str]] = lambda: PANES,
        changed: Callable[[], None] = lambda: None,
        kernel_dir: Path | None = None,
        read_only: bool = False,
        describe_end: Callable[[], str | None] = lambda: None,
        read_source: Callable[[str, int], list[tuple[int, str]]] = source_excerpt,
        recorded_console: Callable[[dict[str, int] | None], bytes] | None = None,
    ):
        self.backend = backend
        self.visible = visible
        self.changed = changed
        self.kernel_dir = kernel_dir
        self.read_only = read_only
        self.describe_end = describe_end  # what QEMU's end means, when it is known
        self.read_source = read_source  # (path, line) -> the lines around it; OSError
        self.recorded_console = recorded_console  # a replay's outputs as recorded
        self.replay: dict | None = None  # -osv-when at the last stop: icount, end, at_end...
        self.status = Status()
        self.panes = {name: Pane() for name in PANES}
        self.syscalls: dict[int, dict] = {}  # seq -> record, as osv-syscalls gives it
        self.fs_protocol = "counter"  # the kernel's --fs-protocol, from -osv-tcb
        self.syscall_errors: list[str] = []
        self.entering: list[dict] = []  # calls vCPUs are stopped at the entry of (no record yet)
        self.filter = SyscallFilter()
        self.selection: Selection | None = None
        self.frame = 0  # the selected frame of the backtrace
        self.output: list[str] = []
        self._output_open = False  # the last line of output has not ended yet
        self.console = ""
        self.tracing = False
        self.message: str | None = None  # a one-line answer to the last key (errors included)
        self.refreshed_at: float | None = None  # when the last refresh after a stop finished
        self._tasks: set[asyncio.Task] = set()
        self._breakpoints_dirty = True
        backend.on_event = self.event
        backend.on_exit = self.gdb_gone

    # --- events ------------------------------------------------------------------------

    def event(self, record: Record) -> None:
        if record.kind == "exec" and record.cls == "running":
            self.status.state = "running"
        elif record.kind == "exec" and record.cls == "stopped":
            self._stopped(record.payload)
        elif record.kind == "notify" and (record.cls or "").startswith("breakpoint-"):
            self._breakpoints_dirty = True
            if "breakpoints" in self.visible():
                self.spawn(self.fetch_breakpoints())
        elif record.kind == "notify" and record.cls == "thread-group-exited":
            self._gone("the guest is gone: GDB's remote target closed")
        elif record.kind in ("console", "target", "log", "stderr", "output"):
            self._output(record.text)
        self.changed()

    def _stopped(self, payload: dict) -> None:
        status = self.status
        status.state = "stopped"
        status.stops += 1
        status.stopped_at = time.monotonic()
        status.reason = str(payload.get("reason", ""))
        status.thread = _int(payload.get("thread-id"), 0) or None
        status.frame = payload.get("frame", {}) or {}
        if status.reason.startswith("exited"):
            self._gone(f"the guest exited ({status.reason})")
            return
        if status.frame.get("func") == "osv_panic_halt":
            status.banner = "KERNEL PANIC: the report is in the console pane; the state stays here"
        if self.selection is None and status.thread:
            self.selection = Selection("vcpu", status.thread)
        self.refresh()

    def _gone(self, why: str) -> None:
        self.status.state = "gone"
        end = self.describe_end()
        self.status.banner = f"{why}{'; ' + end if end else ''}; the last state stays readable"

    def gdb_gone(self, message: str) -> None:
        if self.status.state != "gone":
            self._gone(f"GDB is gone ({message})")
        self.changed()

    def qemu_ended(self, how: str) -> None:
        """QEMU exited while we were running (the owner polls its process)."""
        if self.status.state != "gone":
            self._gone(f"QEMU {how}")
        self.changed()

    def _output(self, text: str) -> None:
        """GDB's streams, whose records need not end lines (a prompt's "929\t{")."""
        if not text:
            return
        lines = text.split("\n")
        if self._output_open and self.output:
            self.output[-1] += lines.pop(0)
            if not lines:
                return  # more of the same open line
        self._output_open = lines[-1] != ""
        if not self._output_open:
            lines.pop()
        self.output.extend(lines)
        del self.output[:-OUTPUT_KEEP]

    def console_text(self, text: str) -> None:
        """The guest console as the copying thread has it now (called on the loop)."""
        self.console = text
        self.changed()

    # --- fetching ----------------------------------------------------------------------

    def spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def refresh(self) -> asyncio.Task:
        """Fetch every visible pane for the current stop (a refresh under way is
        superseded: its answers still land, the newest stop's win)."""
        return self.spawn(self._fetch_all(self.status.stops))

    async def _fetch_all(self, stop: int) -> None:
        visible = set(self.visible())
        jobs = []
        if visible & {"vcpus", "threads"}:
            jobs.append(self.fetch_tcb(stop))
        if "syscalls" in visible:
            jobs.append(self.fetch_syscalls(stop))
        if visible & {"backtrace", "source"}:
            jobs.append(self.fetch_backtrace(stop))
        if "auxv" in visible and self.panes["auxv"].stop == 0:
            jobs.append(self.fetch_auxv(stop))
        if "breakpoints" in visible and self._breakpoints_dirty:
            jobs.append(self.fetch_breakpoints())
        if self.recorded_console is not None:
            jobs.append(self.fetch_when())
        await asyncio.gather(*jobs)
        if stop == self.status.stops:
            self.refreshed_at = time.monotonic()
        self.changed()

    def pane_shown(self, name: str) -> None:
        """A pane became visible: fetch it if it has nothing for this stop (the
        breakpoints whenever one changed since it was last shown: GDB answers
        -break-list while the guest runs too)."""
        if name == "breakpoints" and self._breakpoints_dirty and self.status.state != "gone":
            self.spawn(self.fetch_breakpoints())
            return
        if self.status.state != "stopped" or self.panes[name].stop == self.status.stops:
            return
        fetch = {
            "vcpus": self.fetch_tcb, "threads": self.fetch_tcb,
            "syscalls": self.fetch_syscalls, "backtrace": self.fetch_backtrace,
            "source": self.fetch_backtrace, "auxv": self.fetch_auxv,
        }.get(name)  # fmt: skip
        if fetch is not None:
            self.spawn(fetch(self.status.stops))

    async def _run(self, names: Iterable[str], command: str, stop: int) -> Record | None:
        """COMMAND's result for the panes NAMES, their error on failure."""
        panes = [self.panes[n] for n in names]
        for pane in panes:
            pane.pending = time.monotonic()
        self.changed()
        try:
            record = await self.backend.execute(command)
        except (MiError, GdbExited) as error:
            for pane in panes:
                pane.pending = None
                pane.error = f"{command.split()[0]}: {error}"
            self.changed()
            return None
        for pane in panes:
            pane.pending = None
            pane.error = None
            pane.stop = stop
        return record

    async def fetch_tcb(self, stop: int) -> None:
        record = await self._run(("vcpus", "threads"), "-osv-tcb", stop)
        if record is not None:
            self.panes["vcpus"].data = record.payload.get("cpus", [])
            self.panes["threads"].data = record.payload.get("threads", [])
            self.fs_protocol = record.payload.get("fs_protocol", "counter")
            self.changed()

    def _syscalls_since(self) -> str:
        # A replay may have gone back: records seen at a later point are not this one's.
        if not self.syscalls or self.recorded_console is not None:
            return f"-osv-syscalls -n {INITIAL_SYSCALLS}"
        in_flight = [seq for seq, r in self.syscalls.items() if r.get("state") != "done"]
        since = min(in_flight) if in_flight else max(self.syscalls) + 1
        return f"-osv-syscalls -n 0 --since {since}"

    async def fetch_syscalls(self, stop: int) -> None:
        record = await self._run(("syscalls",), self._syscalls_since(), stop)
        if record is None:
            return
        if self.recorded_console is not None:
            self.syscalls = {}
        for item in record.payload.get("records", []):
            self.syscalls[_int(item.get("seq"))] = item
        for seq in sorted(self.syscalls)[:-SYSCALL_KEEP]:
            del self.syscalls[seq]
        self.syscall_errors = list(record.payload.get("errors", []))
        self.entering = [e for e in record.payload.get("entering", []) if self.filter.matches(e)]
        self.panes["syscalls"].data = len(self.syscalls)
        self.changed()

    def shown_syscalls(self) -> list[dict]:
        return [
            self.syscalls[s] for s in sorted(self.syscalls) if self.filter.matches(self.syscalls[s])
        ]

    async def fetch_backtrace(self, stop: int) -> None:
        selection = self.selection
        if selection is None:
            return
        if selection.kind == "vcpu":
            record = await self._run(
                ("backtrace",), f"-stack-list-frames --thread {selection.number}", stop
            )
            frames = [_gdb_frame(f) for f in record.payload.get("stack", [])] if record else None
            source = "GDB's unwinder"
        else:
            record = await self._run(("backtrace",), f"-osv-bt --tid {selection.number}", stop)
            traces = record.payload.get("backtraces", []) if record else []
            frames = (
                [_model_frame(f) for t in traces for f in t.get("frames", [])] if record else None
            )
            source = traces[0].get("source", "") if traces else ""
            if traces and traces[0].get("stopped"):
                source += f"; stopped: {traces[0]['stopped']}"
        if frames is None or selection != self.selection:
            return
        self.panes["backtrace"].data = {"selection": selection, "frames": frames, "source": source}
        self.frame = min(self.frame, max(len(frames) - 1, 0))
        await self.fetch_source(stop)

    async def fetch_source(self, stop: int) -> None:
        """The selected frame's source from its file, else its disassembly."""
        trace = self.panes["backtrace"].data
        pane = self.panes["source"]
        frames = trace["frames"] if isinstance(trace, dict) else []
        if not frames:
            pane.data, pane.stop = None, stop
            self.changed()
            return
        frame = frames[self.frame]
        path = self._source_path(frame)
        if path is not None and frame.get("line"):
            try:
                pane.data = {"frame": frame, "path": path, "line": int(frame["line"]),
                             "lines": self.read_source(path, int(frame["line"]))}  # fmt: skip
                pane.stop, pane.error = stop, None
                self.changed()
                return
            except OSError:
                pass  # no such file here: the disassembly says where it is
        address = _int(frame.get("address"))
        if not address:
            pane.data, pane.stop = None, stop
            return
        start = max(address - DISASSEMBLY_BYTES // 2, 0)
        command = f"-data-disassemble -s {start:#x} -e {address + DISASSEMBLY_BYTES:#x} -- 0"
        record = await self._run(("source",), command, stop)
        if record is not None:
            pane.data = {"frame": frame, "address": address,
                         "instructions": record.payload.get("asm_insns", [])}  # fmt: skip
        self.changed()

    def _source_path(self, frame: dict) -> str | None:
        if frame.get("fullname"):
            return frame["fullname"]
        name = frame.get("file")
        if not name:
            return None
        if (
            not Path(name).is_absolute()
            and self.kernel_dir is not None
            and frame.get("module") == "kernel"
        ):
            return str(self.kernel_dir / name)
        return name

    async def fetch_when(self) -> None:
        """Where the replay is (-osv-when): for the title and the console pane."""
        try:
            record = await self.backend.execute("-osv-when")
        except (MiError, GdbExited) as error:
            self.replay = {"error": str(error)}
            self.changed()
            return
        payload = record.payload
        self.replay = {
            "icount": _int(payload.get("icount")),
            "end": _int(payload.get("end")),
            "at_end": payload.get("at_end") == "true",
        }
        written = payload.get("written")
        if self.recorded_console is not None and isinstance(written, dict):
            # The recorded outputs as far as the guest had written each at this point.
            shown = self.recorded_console({name: _int(count) for name, count in written.items()})
            self.replay["console"] = shown
            self.replay["later"] = len(self.recorded_console(None)) - len(shown)
        self.changed()

    async def fetch_auxv(self, stop: int) -> None:
        record = await self._run(("auxv",), "-osv-auxv", stop)
        if record is not None:
            self.panes["auxv"].data = record.payload
            self.changed()

    async def fetch_breakpoints(self) -> None:
        self._breakpoints_dirty = False
        record = await self._run(("breakpoints",), "-break-list", self.status.stops)
        if record is not None:
            self.panes["breakpoints"].data = record.payload.get("BreakpointTable", {}).get(
                "body", []
            )
            self.changed()
        else:
            self._breakpoints_dirty = True

    # --- what the keys do ----------------------------------------------------------------

    def select(self, selection: Selection) -> None:
        self.selection = selection
        self.frame = 0
        if self.status.state == "stopped":
            self.spawn(self.fetch_backtrace(self.status.stops))
        self.changed()

    def select_frame(self, delta: int) -> None:
        trace = self.panes["backtrace"].data
        frames = trace["frames"] if isinstance(trace, dict) else []
        if frames:
            self.frame = max(0, min(len(frames) - 1, self.frame + delta))
            self.spawn(self.fetch_source(self.status.stops))
        self.changed()

    def _say(self, message: str) -> None:
        self.message = message
        self.changed()

    def resume(self, command: str, *, reverse: bool = False) -> None:
        """-exec-continue, -exec-step... (`reverse`: backward, in a replay): only from a
        stop, never on a dump, never forward from the end of a recording."""
        if self.read_only:
            return self._say("a dump is read-only: nothing runs")
        if self.status.state != "stopped":
            return self._say(f"the guest is {self.status.state}: {command} needs a stop")
        if reverse and self.recorded_console is None:
            return self._say("going back needs a recording: osvgdb replay DIR --tui")
        if not reverse and self.replay and self.replay.get("at_end"):
            return self._say(
                "the end of the recording: nothing runs after it (C, N, F, P, R go back)"
            )
        vcpu = self.selection.number if self.selection and self.selection.kind == "vcpu" else None
        thread = f" --thread {vcpu}" if vcpu and command != "-exec-continue" else ""
        # MI's --thread comes before the command's own options.
        self.spawn(self._command(command + thread + (" --reverse" if reverse else "")))

    def interrupt(self) -> None:
        if self.read_only or self.status.state != "running":
            return self._say("the guest is not running")
        self.spawn(self._command("-exec-interrupt --all"))

    def cli(self, line: str) -> None:
        """A GDB or osv-* command typed at `:`; its output goes to the output pane."""
        line = line.strip()
        if not line:
            return
        self.output.append(f"(gdb) {line}")
        self._output_open = False
        self.spawn(self._cli(line))
        self.changed()

    async def _cli(self, line: str) -> None:
        start = len(self.output)
        done = await self._command(console_command(line))
        if self.recorded_console is not None and self.status.state == "stopped":
            self.refresh()  # osv-seek, osv-last-write may have moved the replay with no stop
        if done:
            # The message line echoes the answer, for when the output pane is not shown.
            said = [text for text in self.output[start:] if text.strip()]
            self._say(f":{line}: {said[0] if said else 'done'}" + (" ..." if len(said) > 1 else ""))

    def break_on_syscalls(self, names: str) -> None:
        if names.split():
            self.cli("osv-break syscall " + " ".join(names.split()))

    def toggle_trace(self) -> None:
        if self.read_only:
            return self._say("a dump is read-only: there is nothing to trace")
        self.spawn(self._toggle_trace())

    async def _toggle_trace(self) -> None:
        command = "osv-trace off" if self.tracing else "osv-trace syscalls"
        self.output.append(f"(gdb) {command}")
        self._output_open = False
        if await self._command(console_command(command)):
            self.tracing = not self.tracing
            self._say(
                "osv-trace " + ("on: calls print in the output pane" if self.tracing else "off")
            )

    def set_filter(self, text: str) -> None:
        try:
            self.filter = SyscallFilter.parse(text)
        except ValueError as error:
            return self._say(f"filter: {error}")
        self._say(f"syscalls filter: {self.filter.describe() or 'none'}")

    async def _command(self, command: str) -> bool:
        """Run COMMAND; False when it failed (said in the message line and the output)."""
        try:
            await self.backend.execute(command)
        except CommandError as error:
            self.output.append(error.message)
            self._say(error.message)
            return False
        except (MiError, GdbExited) as error:
            self._say(str(error))
            return False
        self.changed()
        return True

    async def settle(self) -> None:
        """Wait until no fetch or command is under way (for tests and the benchmark)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _gdb_frame(frame: dict) -> dict:
    """A -stack-list-frames frame in the pane's terms."""
    return {
        "function": frame.get("func") or "??",
        "address": _int(frame.get("addr")),
        "file": frame.get("file"),
        "fullname": frame.get("fullname"),
        "line": _int(frame.get("line")) or None,
        "module": "",
    }


def _model_frame(frame: dict) -> dict:
    """An -osv-bt frame in the pane's terms."""
    return {
        "function": frame.get("function") or "??",
        "address": _int(frame.get("address")),
        "file": frame.get("file"),
        "line": _int(frame.get("line")) or None,
        "module": frame.get("module", ""),
        "guessed": frame.get("guessed") == "true",
        "kind": frame.get("kind", "frame"),
    }
