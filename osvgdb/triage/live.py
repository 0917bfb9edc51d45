"""One triage run: boot EXE under GDB, stop at the moment it goes wrong, collect, dump.

QEMU starts stopped with its gdbstub and QMP on private unix sockets, with
`-action shutdown=pause` so that a triple fault pauses the machine rather than
ending QEMU.  GDB (MI, no extension: the model reads through MiTarget) attaches
and puts breakpoints where the kernel's ways of ending are:

    process_exit         every exit: the app's, a fatal signal, the loader's refusal
    osv_panic_halt       a panic, on the panicking CPU only (the others halt there too)
    fscheck_violation    the kernel's FS-base watchdog (switched on: fscheck_enabled)

So the guest is stopped with every vCPU where it was when things went wrong, not
after.  No stop within the timeout: GDB interrupts, and SAMPLES looks at the vCPUs
SAMPLE_GAP apart tell a deadlock (every vCPU idle) from a busy hang.  QMP's
events say when QEMU paused after a reset.  Then the model reads the state
(osvgdb.triage.collect), osvgdb.dump_writer writes the dump from the guest's
shared RAM (level `used` unless asked otherwise; zstd-compressed for a store),
and QEMU and GDB are killed.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from osvgdb import dump as dumps
from osvgdb.debug import start_gdb
from osvgdb.dump_writer import DEFAULT_LEVEL, write_dump
from osvgdb.mi import CommandError, GdbExited, Mi, MiError, MiTimeout, is_stop, quote
from osvgdb.mi_target import MiTarget
from osvgdb.model import unwind
from osvgdb.model.bt import goroutine_entries
from osvgdb.model.elf_target import ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.monitor import MonitorError
from osvgdb.record import Recorder
from osvgdb.run import Guest, QemuFailed, RunOptions, qemu_ended
from osvgdb.triage import collect
from osvgdb.triage.collect import Event
from osvgdb.triage.report import STREAM_MARKS, Report, classify

TRIAGE_MEMORY = "1280M"  # the kernel sits at 1 GiB + 2 MiB (physical): room for it and a heap
ATTACH_TIMEOUT = 20.0
SAMPLES = 5
SAMPLE_GAP = 0.05
STOP_TIMEOUT = 10.0
RECORDING_NAME = "recording"
# Where a triage's recording ends, by the event that stopped the guest there.
RECORDING_END = {
    "exit": "where triage stopped it: the app's end (process_exit)",
    "panic": "where triage stopped it: the kernel panic (osv_panic_halt)",
    "fscheck": "where triage stopped it: the FS-base watchdog's violation (fscheck_violation)",
    "reset": "where triage stopped it: the reset (a triple fault)",
    "timeout": "where triage stopped it: the hang's last sample",
}
PANIC_CONDITION = "((struct arch_cpu *)$gs_base)->id == panic_report.cpu"
DUMP_NAME = "dump.core"


@dataclass
class TriageOptions:
    run: RunOptions
    timeout: float = 30.0
    dump: bool = True
    dump_level: str = DEFAULT_LEVEL
    compress_dump: bool = False  # zstd, for a store that keeps dumps
    fscheck: bool = True
    gdb: str = "gdb"
    record: bool = False  # the run recorded for osvgdb replay, in the run's directory


def recorded_options(options: TriageOptions) -> RunOptions:
    """The run's options for a recording: the FS-base watchdog turned on by the kernel's
    own --fscheck, not by GDB's write of fscheck_enabled, which the recording would not
    hold (its replay would go another way)."""
    run = options.run
    if not options.fscheck or "--fscheck" in run.kernel_args:
        return run
    return dataclasses.replace(run, kernel_args=[*run.kernel_args, "--fscheck"])


class Console:
    """The guest's output as the report keeps it, written by Guest's copying thread:
    the kernel's console and the app's stdout and stderr, line by line in the order
    the lines ended, the app's marked by stream (report.STREAM_MARKS: `1| `, `2| `)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._lines: list[str] = []
        self._partial = {channel: b"" for channel in STREAM_MARKS}

    def channel(self, name: str) -> BinaryIO:
        """The sink Guest writes channel `name` (console, stdout, stderr) to."""
        return _Channel(self, name)  # type: ignore[return-value]

    def _write(self, channel: str, data: bytes) -> None:
        with self.lock:
            *whole, self._partial[channel] = (self._partial[channel] + data).split(b"\n")
            self._lines += [self._mark(channel, line) for line in whole]

    @staticmethod
    def _mark(channel: str, line: bytes) -> str:
        return STREAM_MARKS[channel] + line.decode(errors="replace")

    def text(self) -> str:
        """Every line so far, and the unfinished ones at the end."""
        with self.lock:
            unfinished = [self._mark(c, rest) for c, rest in self._partial.items() if rest]
            return "".join(line + "\n" for line in self._lines + unfinished)


class _Channel:
    """One of the guest's outputs into a Console."""

    def __init__(self, console: Console, name: str):
        self.console = console
        self.name = name

    def write(self, data: bytes) -> int:
        self.console._write(self.name, data)
        return len(data)

    def flush(self) -> None:
        pass


def versions(kernel: Path, gdb: str) -> dict[str, str | None]:
    def first_line(argv: list[str]) -> str | None:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.splitlines()[0].strip() if out else None

    try:
        ours = importlib.metadata.version("osvgdb")
    except importlib.metadata.PackageNotFoundError:
        ours = None
    return {
        "osvgdb": ours,
        "kernel_build_id": dumps.kernel_build_id(kernel),
        "qemu": first_line(["qemu-system-x86_64", "--version"]),
        "gdb": first_line([gdb, "--version"]),
    }


class Session:
    """QEMU, GDB over MI and the model's target, for one run."""

    def __init__(self, options: TriageOptions, stack: ExitStack, recorder: Recorder | None = None):
        self.options = options
        self.console = Console()
        self.recorder = recorder
        run_options = recorder.options if recorder is not None else options.run
        self.guest = Guest(
            run_options,
            console=self.console.channel("console"),
            stdout=self.console.channel("stdout"),
            stderr=self.console.channel("stderr"),
            gdbstub=True,
            keep_monitor=True,
            pause_on_reset=True,
            recording=recorder,
        )
        stack.enter_context(self.guest)
        self.kernel_path = self.guest.vm.kernel if self.guest.vm else None
        self.mi: Mi | None = None
        self.target: MiTarget | None = None
        self.breakpoints: dict[str, str] = {}

    # --- GDB -----------------------------------------------------------------------------

    def attach(self, stack: ExitStack) -> None:
        assert self.kernel_path is not None
        argv = [self.options.gdb, "-nx", "-q", "--interpreter=mi3", str(self.kernel_path)]
        process = start_gdb(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.mi = Mi(process)
        stack.callback(self.mi.close, 0)
        self.mi.execute("-gdb-set pagination off")
        self.mi.execute("-gdb-set confirm off")
        # Commands while the guest runs (-exec-interrupt at the timeout) need an async target.
        self.mi.execute("-gdb-set mi-async on")
        self.mi.execute(f"-target-select remote {self.guest.gdb_socket}", ATTACH_TIMEOUT)
        try:  # the stop at the first instruction that connecting reports
            self.mi.wait_for_stop(STOP_TIMEOUT)
        except MiTimeout:
            pass
        self.mi.take_events()
        self.target = MiTarget(ElfKernel(self.kernel_path), self.mi)
        self.breakpoints[self._break("process_exit")] = "exit"
        self.breakpoints[self._break(f"-c {quote(PANIC_CONDITION)} osv_panic_halt")] = "panic"
        if self.options.fscheck and self.target.has("fscheck_enabled"):
            self.breakpoints[self._break("fscheck_violation")] = "fscheck"
            if self.recorder is None:  # a recorded kernel has it on from boot (--fscheck)
                self.mi.execute(f"-data-evaluate-expression {quote('fscheck_enabled = 1')}")

    def _break(self, location: str) -> str:
        assert self.mi is not None
        return str(self.mi.execute(f"-break-insert {location}").payload["bkpt"]["number"])

    def _register(self, vcpu: int, name: str) -> int:
        assert self.target is not None
        return next(v.registers.get(name, 0) for v in self.target.vcpus() if v.num == vcpu)

    # --- running until something happens ------------------------------------------------

    def run(self) -> Event:
        """Resume and wait for a breakpoint, a reset, QEMU's end, or the timeout."""
        assert self.mi is not None
        self.mi.execute("-exec-continue")
        deadline = time.monotonic() + self.options.timeout if self.options.timeout else None
        while True:
            self.mi.poll(0.05)
            stop = next((r for r in self.mi.take_events() if is_stop(r)), None)
            if self.guest.vm is not None and self.guest.vm.poll() is not None:
                status = self.guest.vm.poll()
                return Event("qemu-died", qemu_status=status, detail="QEMU " + qemu_ended(status))
            if stop is not None:
                return self._stopped(stop.payload)
            if self._reset():
                self._interrupt()
                return Event("reset", vcpu=1, detail="SHUTDOWN guest-reset: QEMU paused the machine")
            if deadline is not None and time.monotonic() > deadline:
                self._interrupt()
                return Event("timeout", detail=f"no exit within {self.options.timeout:g} s")

    def _reset(self) -> bool:
        outcome = self.guest.outcome()
        return any(
            e["event"] == "SHUTDOWN" and e.get("data", {}).get("reason") == "guest-reset"
            for e in outcome.events
        )

    def _interrupt(self) -> None:
        """Stop the guest (a no-op answer when a pause stopped it already)."""
        assert self.mi is not None
        try:
            self.mi.execute("-exec-interrupt")
            self.mi.wait_for_stop(STOP_TIMEOUT)
        except MiTimeout:
            pass  # QEMU paused by a reset: GDB's view of the stopped vCPUs is all we need
        self.mi.take_events()

    def _stopped(self, payload: dict) -> Event:
        vcpu = int(payload.get("thread-id", 1))
        assert self.target is not None
        self.target.forget()
        what = self.breakpoints.get(str(payload.get("bkptno", "")))
        if what == "exit":
            return Event("exit", vcpu=vcpu, exit_status=self._register(vcpu, "rdi") & 0xFF)
        if what == "panic":
            return Event("panic", vcpu=vcpu)
        if what == "fscheck":
            return Event(
                "fscheck",
                vcpu=vcpu,
                fscheck_broken=self._register(vcpu, "rdi") & 0xFFFFFFFF,
                fscheck_state=self._register(vcpu, "rsi"),
            )
        if payload.get("reason") == "signal-received" and self._reset():
            return Event("reset", vcpu=vcpu, detail="SHUTDOWN guest-reset: QEMU paused the machine")
        reason = payload.get("reason", "?")
        return Event("stopped", vcpu=vcpu, detail=f"GDB stopped: {reason} {payload.get('signal-name', '')}".strip())

    # --- a hang: busy or blocked? --------------------------------------------------------

    def sample(self, event: Event, app_path: Path) -> None:
        """SAMPLES looks at the vCPUs; the last one is the state the report shows."""
        assert self.mi is not None and self.target is not None
        stacks: dict[int, list[list[dict]]] = {}
        for index in range(SAMPLES):
            if index:
                self.mi.execute("-exec-continue")
                time.sleep(SAMPLE_GAP)
                self._interrupt()
            self.target.forget()
            kernel = Kernel(self.target)
            cpus, threads = collect.cpus_and_threads(kernel)
            busy = [c for c in cpus if c.current and c.current != c.idle_thread]
            event.samples.append(
                {"vcpus": [{"vcpu": c.vcpu, "mode": c.where, "tid": c.current_tid} for c in cpus],
                 "busy_tids": sorted(c.current_tid for c in busy if c.current_tid is not None)}
            )  # fmt: skip
            if busy:
                app = collect.app_image(kernel, app_path)
                traces = unwind.backtraces(kernel, app, threads=threads, cpus=cpus)
                for cpu in busy:
                    trace = traces.get(cpu.current_tid)
                    if trace is not None:
                        stacks.setdefault(cpu.current_tid, []).append(trace.as_dict()["frames"])
        busy_samples = sum(1 for s in event.samples if s["busy_tids"])
        if busy_samples * 2 >= SAMPLES:
            event.busy_frames = [common_outer_frames(s) for _, s in sorted(stacks.items())]
            event.busy_frames = [f for f in event.busy_frames if f]

    # --- the dump ------------------------------------------------------------------------

    def dump(self, directory: Path, event: Event) -> dict:
        assert self.guest.monitor is not None and self.kernel_path is not None
        assert self.guest.ram_path is not None and self.target is not None
        path = directory / (DUMP_NAME + (".zst" if self.options.compress_dump else ""))
        metadata = dumps.DumpMetadata(
            kernel_path=str(self.kernel_path.resolve()),
            kernel_build_id=dumps.kernel_build_id(self.kernel_path),
            app_path=str(self.options.run.exe.resolve()),
            qemu_version="",
            time=dumps.now(),
            vcpus=0,
        )
        try:
            written = write_dump(
                path,
                monitor=self.guest.monitor,
                ram_path=self.guest.ram_path,
                symbols=self.target,
                kernel_path=self.kernel_path,
                metadata=metadata,
                level=self.options.dump_level,
                compress=self.options.compress_dump,
                # What offline triage needs besides the memory: why the guest stopped, the console.
                sidecar_extra={"triage": {"event": event.as_dict(), "console": self.console.text()}},
            )
        except (MonitorError, dumps.DumpError) as error:
            raise RuntimeError(f"writing the dump: {error}") from None
        return {
            "path": str(path),
            "size": written.size,
            "sidecar": str(written.sidecar),
            "level": written.level,
            "left_out": written.left_out,
        }


def common_outer_frames(stacks: list[list[dict]]) -> list[dict]:
    """The frames every sample of a busy thread shares, counted from the outermost:
    the loop and its callers, not wherever in the loop each sample landed."""
    if not stacks:
        return []
    common = list(reversed(stacks[0]))
    for stack in stacks[1:]:
        outer = list(reversed(stack))
        length = 0
        while (
            length < min(len(common), len(outer))
            and common[length].get("function") == outer[length].get("function")
        ):
            length += 1
        common = common[:length]
    return list(reversed(common))


def collect_sections(report: Report, kernel: Kernel, app_path: Path | None, event: Event) -> None:
    """Every section of the report the model can give, each its own step."""
    sections = report.sections
    app = None
    with report.step("collect.app"):
        sections["app_started"] = collect.app_started(kernel)
        app = collect.app_image(kernel, app_path)
        sections["runtime"] = collect.app_runtime(app)
    cpus: list = []
    threads: list = []
    with report.step("collect.vcpus"):
        cpus, threads = collect.cpus_and_threads(kernel)
        sections["vcpus"] = collect.vcpu_entries(kernel, app, cpus, threads)
    traces: dict = {}
    with report.step("collect.threads"):
        sections["threads"], problems, traces = collect.threads_entries(kernel, app, threads, cpus)
        sections["collect_problems"] = problems
    if sections.get("runtime") == "go":
        with report.step("collect.goroutines"):
            sections["goroutines"] = goroutine_entries(kernel, app, threads, traces)
    with report.step("collect.fault"):
        fatal = collect.fatal_report(kernel)
        if fatal is not None and event.reason == "exit":
            sections["fault"] = collect.fault(kernel, app, fatal)
    with report.step("collect.panic"):
        if event.reason == "panic":
            sections["panic"] = kernel.panic()
    with report.step("collect.fscheck"):
        sections["fscheck"] = collect.fscheck(kernel, event)
    with report.step("collect.auxv"):
        if sections.get("app_started"):
            sections["auxv"] = collect.auxv(kernel, str(app_path) if app_path else None)
    if event.samples:
        busy = bool(event.busy_frames)
        sections["hang"] = {
            "samples": event.samples,
            "verdict": (
                f"{sum(1 for s in event.samples if s['busy_tids'])} of {len(event.samples)} samples "
                f"found a vCPU running a thread: " + ("busy" if busy else "blocked")
            ),
        }


def triage_run(options: TriageOptions, directory: Path, command: list[str]) -> Report:
    """Boot, run, collect, dump: a Report whatever happens (steps say what failed)."""
    report = Report(command=command, exe=str(options.run.exe))
    run_options = options.run
    recorder = None
    with ExitStack() as stack:
        session = None
        with report.step("boot"):
            if options.record:
                recorder = Recorder(directory / RECORDING_NAME, recorded_options(options), command)
            try:
                session = Session(options, stack, recorder)
            except QemuFailed as failure:
                report.event = Event("qemu-died", detail="QEMU failed: " + " ".join(failure.outcome.qemu_stderr[-2:]))
                raise RuntimeError(report.event.detail) from None
        if session is None:
            if report.event.reason == "none":
                report.event = Event("infrastructure")
            classify(report)
            return report
        report.versions = versions(session.kernel_path, options.gdb)
        with report.step("attach"):
            session.attach(stack)
        event = Event("gdb-died")
        if session.target is not None:
            with report.step("run"):
                try:
                    event = session.run()
                except (GdbExited, CommandError, MiError) as error:
                    event = Event("qemu-died" if session.guest.vm.poll() is not None else "gdb-died", detail=str(error))
                    raise
            if event.reason == "timeout":
                with report.step("sample"):
                    session.sample(event, run_options.exe)
            if event.reason not in ("qemu-died", "gdb-died"):
                kernel = Kernel(session.target)
                with report.step("collect"):  # the state read at the stop: no forget() needed
                    collect_sections(report, kernel, run_options.exe, event)
                if options.dump:
                    with report.step("dump"):
                        report.sections["dump"] = session.dump(directory, event)
        report.event = event
        if recorder is not None:
            recorder.note = RECORDING_END.get(event.reason)
    report.console = session.console.text()  # all of it, now that QEMU is gone
    if recorder is not None:
        report.sections["recording"] = recording_section(recorder)
    classify(report)
    return report


def recording_section(recorder: Recorder) -> dict:
    """Where the recording is and the one command that opens it at the stop the report
    describes (QEMU is gone: the recording has been closed)."""
    return {
        "path": str(recorder.directory),
        "complete": recorder.complete,
        "end_icount": recorder.end.icount if recorder.end is not None else None,
        "replay": f"osvgdb replay {recorder.directory}",
    }
