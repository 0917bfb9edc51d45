"""Recording a run under QEMU's deterministic record/replay, and the recording directory.

QEMU 7.2 records everything nondeterministic a guest sees (clock reads, interrupts,
serial input, the results of character device writes) in an event log, with the
virtual clock driven by the instruction count (`-icount shift=auto,rr=record`), and
replays it instruction for instruction (`rr=replay`). It does so only with one vCPU
under TCG: `-smp 2` is refused ("Record/replay feature is not supported for 'smp'")
and so is KVM ("-icount is not allowed with hardware virtualization"), so
`check_recordable` refuses both in one line first. Snapshots (the VM's state at an
instruction count) live in a qcow2 image QEMU opens as a drive no device uses:
`init` at instruction 0 (`rrsnapshot=init`), and the periodic ones a first replay
takes (`take_snapshots`), which QEMU's reverse execution loads itself (it replays
from the nearest snapshot before its target) and osvgdb's seeks load by name.

A recording directory holds everything a replay needs:

    manifest.json    format "osvgdb-recording", version 1: the run's options, the
                     kernel command line, QEMU's version and command line (paths
                     replaced by names), every file's size and SHA-256, where and how
                     the recording ended (its last instruction count); `complete`
                     once osvgdb has closed it
    replay.bin       QEMU's event log
    snapshots.qcow2  the snapshots (`init`, then osvgdb-N)
    snapshots.json   the periodic snapshots a replay took: name, instruction count and
                     how many bytes the guest had written to each output by then (a
                     cache: a replay without it takes them again)
    kernel.elf       the kernel that ran; app/NAME the app's ELF (its symbols)
    initrd.cpio      the initrd as booted
    console.txt      the kernel's console as recorded, byte for byte; stdout.txt and
                     stderr.txt the app's (its virtio ports); debugcon.txt likewise.
                     The manifest's `output_order` says in which order their bytes
                     reached osvgdb, so the three can be shown as one console again

Each output's bytes are counted by the kernel too (`STREAMS`: console_bytes_written,
tty_bytes_written[1] and [2]), so a replay knows how much of each stands before the
instruction where it is: the console is printed once, and shown as of any point.

How the machine differs from `osvgdb run`'s, all of it in `qemu_arguments` (and
passed to QEMU through osvgdb.qemu.command_line's `record_replay`):

- no isa-debug-exit: the kernel halts after its exit report instead of making QEMU
  exit, and QEMU pauses on a reset (`-action shutdown=pause`), so every recording
  ends where osvgdb stops it (`Recorder.finish`: stop, read the instruction count,
  QMP `quit`, which closes the log), and a replay can stop at that very instruction;
- `-global apic-common.vapic=off`: the TPR-patching helper device (for old Windows
  guests) resets through a synchronous run_on_cpu, which deadlocks QEMU 7.2's replay
  when a snapshot loads while the vCPU thread waits for the replay mutex the main loop
  holds (measured here: 2 reverse-continues in 3 hung; 0 in 6 without the device);
- the replay's RAM is what the recorded run's was (osvgdb's memfd, osvgdb.guestram, or
  QEMU's own: the snapshots hold a RAM block by its name). Only triage records with the
  memfd, for its dump: QEMU's snapshot reads every page, and reading a hole in a shared
  memfd allocates it, so the whole guest RAM (1.25 GiB for triage) is then in memory.

The qcow2 is made over QMP by a helper QEMU (`-machine none`, blockdev-create): Debian's
qemu-img is in qemu-utils, which a machine with qemu-system-x86 need not have.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from osvgdb.qemu import QEMU, QemuError, die_with_parent

if TYPE_CHECKING:  # run.py imports this module
    from osvgdb.monitor import Monitor
    from osvgdb.qemu import Qemu
    from osvgdb.run import BootOutcome, RunOptions

FORMAT = "osvgdb-recording"
VERSION = 1
MANIFEST = "manifest.json"
EVENT_LOG = "replay.bin"
SNAPSHOT_IMAGE = "snapshots.qcow2"
SNAPSHOT_CACHE = "snapshots.json"
KERNEL = "kernel.elf"
INITRD = "initrd.cpio"
APP_DIR = "app"
# The guest's outputs a recording keeps: for each, its file in DIR and where the kernel
# counts the bytes it wrote there (a u64 array's symbol and index).
STREAMS = {
    "console": ("console.txt", "console_bytes_written", 0),  # kernel/core/console.c
    "stdout": ("stdout.txt", "tty_bytes_written", 1),  # kernel/core/tty.c
    "stderr": ("stderr.txt", "tty_bytes_written", 2),
}
DEBUGCON = "debugcon.txt"
INIT_SNAPSHOT = "init"
SNAPSHOT_PREFIX = "osvgdb-"
SNAPSHOT_IMAGE_SIZE = 1 << 30  # virtual size: the image holds only VM state, never data
SNAPSHOT_INTERVAL = 0.5  # seconds of replay between periodic snapshots (osvgdb replay's default)
FIRST_SNAPSHOT_STEP = 500_000  # instructions to the first one: booting replays slowly
MAX_SNAPSHOT_STEP = 4_000_000_000
HELPER_TIMEOUT = 10.0  # seconds the helper QEMU may take to make the qcow2
QUIT_GRACE = 5.0  # seconds QEMU may take to close the log and exit after QMP quit
# Seconds QMP may stay silent while a replay runs before QEMU counts as hung (and is
# killed); the tests of that path shorten it.
STEP_TIMEOUT = float(os.environ.get("OSVGDB_REPLAY_HANG_TIMEOUT", "30"))

# Files whose bytes the manifest vouches for: the snapshot image and its cache change
# as replays add snapshots.
_VOUCHED = (EVENT_LOG, KERNEL, INITRD, DEBUGCON, *(file for file, _, _ in STREAMS.values()))


class RecordingError(Exception):
    """A recording that cannot be made or replayed: one line for the user."""


def check_recordable(options: RunOptions) -> None:
    """Refuse what QEMU cannot record, in one line that says why."""
    if options.smp != 1:
        raise RecordingError(
            f"--record: QEMU records only one vCPU (its record/replay does not support "
            f"-smp {options.smp}); drop --smp"
        )
    if options.export:
        raise RecordingError(
            "--record: no --export (a recorded app has no virtio-serial ports, and --export's "
            "archives travel on one)"
        )
    if options.accel != "tcg":
        raise RecordingError(
            "--record: QEMU records only under TCG (-icount is not allowed with hardware "
            "virtualization); use --accel tcg"
        )


def _qemu_option_path(path: Path) -> str:
    """A path inside a QEMU -option value, where a comma separates suboptions."""
    return str(path).replace(",", ",,")


def qemu_arguments(mode: str, directory: Path) -> list[str]:
    """QEMU's record (`mode` "record") or replay ("replay") arguments for DIR: the only
    place they are made (osvgdb.qemu.command_line leaves isa-debug-exit out with them)."""
    assert mode in ("record", "replay")
    log = _qemu_option_path(directory / EVENT_LOG)
    image = _qemu_option_path(directory / SNAPSHOT_IMAGE)
    return [
        "-icount", f"shift=auto,rr={mode},rrfile={log},rrsnapshot={INIT_SNAPSHOT}",
        "-drive", f"file={image},if=none,id=rr",
        "-global", "apic-common.vapic=off",
    ]  # fmt: skip


# What a debugger talks to, not what the guest runs on: a replay has a gdbstub where
# the recorded run may have had none (neither is in QEMU's event log).
_NOT_MACHINE = {"-S": 0, "-qmp": 1, "-gdb": 1}


def machine_template(argv: Sequence[str], paths: dict[str, str]) -> list[str]:
    """QEMU's command line without its debugger's sockets, with each run's own paths
    (`paths`: path -> name), descriptors and record/replay mode replaced by names: what a
    replay's must equal, word for word."""
    template = []
    words = iter(argv)
    for word in words:
        if word in _NOT_MACHINE:
            for _ in range(_NOT_MACHINE[word]):
                next(words, None)
            continue
        if word == "-chardev":
            value = next(words, "")
            if value.startswith("socket,id=gdb0,"):
                continue
            template += [word]
            word = value
        for path, name in sorted(paths.items(), key=lambda item: -len(item[0])):
            word = word.replace(_qemu_option_path(Path(path)), "{" + name + "}")
            word = word.replace(path, "{" + name + "}")
        # The channels are descriptors QEMU inherits (osvgdb.qemu.channel_arguments), whose
        # numbers are each run's own.
        word = re.sub(r"(?<=fd=)\d+|(?<=/dev/fd/)\d+", "{fd}", word)
        template.append(word.replace("rr=record", "rr={mode}").replace("rr=replay", "rr={mode}"))
    return template


def qemu_version() -> str:
    """The first line of `qemu-system-x86_64 --version`: a log replays only on the QEMU
    that wrote it."""
    try:
        result = subprocess.run(
            [QEMU, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError:
        raise QemuError(f"{QEMU} not found (run scripts/bootstrap)") from None
    except subprocess.TimeoutExpired:
        raise QemuError(f"{QEMU} --version did not answer") from None
    return result.stdout.splitlines()[0].strip() if result.stdout else "?"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: object) -> None:
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(data, indent=1) + "\n")
    scratch.replace(path)  # a reader never sees half a file


def create_snapshot_image(path: Path) -> None:
    """An empty qcow2 at PATH, made by a helper QEMU over QMP (blockdev-create of the
    file, then of qcow2 on it); the helper is gone on return, whatever happens."""
    from osvgdb.monitor import MonitorError

    with tempfile.TemporaryDirectory(prefix="osvgdb-qcow2-") as scratch:
        socket = Path(scratch) / "qmp.sock"
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        parent = os.getpid()
        argv = [QEMU, "-machine", "none", "-nodefaults", "-no-user-config", "-display", "none",
                "-S", "-qmp", f"unix:{socket},server=on,wait=off"]  # fmt: skip
        try:
            helper = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=lambda: die_with_parent(prctl, parent, set()),
            )
        except FileNotFoundError:
            raise QemuError(f"{QEMU} not found (run scripts/bootstrap)") from None
        try:
            monitor = _connect(socket, helper, HELPER_TIMEOUT)
            with monitor:
                for job, options in (
                    ("file", {"driver": "file", "filename": str(path), "size": 0}),
                    ("qcow2", {"driver": "qcow2", "file": "image", "size": SNAPSHOT_IMAGE_SIZE}),
                ):
                    monitor.execute("blockdev-create", **{"job-id": job, "options": options})
                    _wait_job(monitor, job)
                    if job == "file":
                        monitor.execute(
                            "blockdev-add", driver="file", filename=str(path), **{"node-name": "image"}
                        )
                monitor.execute("quit")
        except MonitorError as error:
            raise RecordingError(f"making the snapshot image {path}: {error}") from None
        finally:
            if helper.poll() is None:
                try:
                    helper.wait(HELPER_TIMEOUT)
                except subprocess.TimeoutExpired:
                    helper.kill()
                    helper.wait()
            if helper.stderr is not None:
                helper.stderr.close()


def _connect(socket: Path, process: subprocess.Popen, timeout: float) -> Monitor:
    from osvgdb.monitor import Monitor, MonitorError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return Monitor(socket)
        except MonitorError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _wait_job(monitor: Monitor, job: str) -> None:
    """Wait for a QMP job to conclude, dismiss it; its error as a MonitorError."""
    from osvgdb.monitor import MonitorError

    deadline = time.monotonic() + HELPER_TIMEOUT
    while time.monotonic() < deadline:
        jobs = monitor.execute("query-jobs")
        assert isinstance(jobs, list)
        state = next((j for j in jobs if j["id"] == job), None)
        if state is not None and state["status"] == "concluded":
            monitor.execute("job-dismiss", id=job)
            if state.get("error"):
                raise MonitorError(f"{job}: {state['error']}")
            return
        monitor.wait_event("JOB_STATUS_CHANGE", timeout=0.2)
    raise MonitorError(f"QMP job {job} did not conclude in {HELPER_TIMEOUT:g} s")


def written_counts(address: Callable[[str], int], read: Callable[[int, int], bytes]) -> dict[str, int]:
    """How many bytes the guest has written to each output (`STREAMS`), by the kernel's
    own counts: `address` gives a symbol's, `read` reads guest memory (each may raise
    its caller's error for a kernel without the counters)."""
    return {
        name: int.from_bytes(read(address(symbol) + 8 * index, 8), "little")
        for name, (_, symbol, index) in STREAMS.items()
    }


def interleave(order: Sequence[tuple[str, int]], streams: dict[str, bytes], written: dict[str, int]) -> bytes:
    """The outputs as one console, as osvgdb showed them live: their bytes in the order
    they arrived (`order`: runs of (stream, length)), each stream cut at `written[stream]`."""
    shown, taken = [], dict.fromkeys(streams, 0)
    for name, length in order:
        start = taken[name]
        end = min(start + length, written.get(name, 0), len(streams[name]))
        if end > start:
            shown.append(streams[name][start:end])
        taken[name] = start + length
    return b"".join(shown)


class _Tee:
    """One output as Guest's copying thread writes it: into its file in DIR, and on to
    where it was going (the user's stdout, a TUI...); the order in which the outputs'
    bytes arrived goes into `order` (runs of (stream, length))."""

    def __init__(self, path: Path, out: BinaryIO | None, name: str, order: list[list]):
        self.file = open(path, "wb")
        self.out = out
        self.name = name
        self.order = order

    def write(self, data: bytes) -> int:
        self.file.write(data)
        self.file.flush()
        if self.order and self.order[-1][0] == self.name:
            self.order[-1][1] += len(data)
        else:
            self.order.append([self.name, len(data)])
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()

    def close(self) -> None:
        self.file.close()


@dataclass
class End:
    """Where a recording ended: its last instruction count and what the run came to."""

    icount: int | None
    outcome: str  # osvgdb.run.Ending's value when osvgdb closed the recording
    exit_status: int | None = None
    note: str | None = None  # why its owner stopped it there (triage's stop)

    def describe(self) -> str:
        if self.note:
            return self.note
        if self.outcome == "exited":
            return f"the app exited with status {self.exit_status}"
        if self.outcome == "panic":
            return "the kernel panicked"
        if self.outcome == "qemu-stuck":
            return "QEMU stopped the guest (a triple fault pauses it)"
        return "osvgdb stopped the run there"


class Recorder:
    """Makes one recording in DIR while a Guest runs (the Guest calls its hooks:
    `arguments()` for QEMU, `tee()` for each output, `started()` once QEMU runs,
    `finish()` before it kills QEMU)."""

    def __init__(self, directory: Path, options: RunOptions, command: Sequence[str] = ()):
        check_recordable(options)
        self.directory = directory
        self.options = options
        self.command = list(command)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise RecordingError(f"--record {directory}: exists and is not an empty directory")
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RecordingError(f"--record {directory}: {error.strerror}") from None
        create_snapshot_image(directory / SNAPSHOT_IMAGE)
        self._tees: list[_Tee] = []
        # Appended to by the copying thread only, which writes one output at a time.
        self._order: list[list] = []
        self._manifest: dict = {}
        self._icount: int | None = None  # where close_log found the guest
        self._closed = False  # QEMU closed its log (QMP quit) and exited
        self.end: End | None = None
        self.note: str | None = None  # the owner's word on why the recording ends where it does

    @property
    def complete(self) -> bool:
        """Whether the recording can be replayed (finish() has written its manifest)."""
        return bool(self._manifest.get("complete"))

    def arguments(self) -> list[str]:
        return qemu_arguments("record", self.directory)

    def tee(self, name: str, out: BinaryIO | None) -> _Tee:
        """The sink for output `name` (`STREAMS`) that keeps it, then writes it to `out`."""
        self._tees.append(_Tee(self.directory / STREAMS[name][0], out, name, self._order))
        return self._tees[-1]

    def started(self, vm: Qemu, cmdline: str) -> None:
        """QEMU runs (stopped at its first instruction): keep what a replay boots."""
        import importlib.metadata

        from osvgdb import dump

        options = self.options
        app_file = f"{APP_DIR}/{options.exe.name}"
        (self.directory / APP_DIR).mkdir(exist_ok=True)
        shutil.copyfile(vm.kernel, self.directory / KERNEL)
        shutil.copyfile(vm.initrd, self.directory / INITRD)
        shutil.copyfile(options.exe, self.directory / app_file)
        paths = {str(vm.workdir): "workdir", str(vm.kernel): "kernel", str(self.directory): "recording"}
        if vm.ram_path is not None:
            paths[vm.ram_path] = "ram"
        self._manifest = {
            "format": FORMAT,
            "version": VERSION,
            "complete": False,
            "osvgdb": importlib.metadata.version("osvgdb"),
            "qemu": qemu_version(),
            "created": dump.now(),
            "command": self.command,
            "options": {
                "app": str(options.exe.resolve()),
                "args": list(options.args),
                "smp": options.smp,
                "accel": options.accel,
                "strace": options.strace,
                "fsgsbase": options.fsgsbase,
                "fs_protocol": options.fs_protocol,
                "env": [list(pair) for pair in options.env],
                "kernel_args": list(options.kernel_args),
                "memory": options.memory,
                "stdin": "none" if options.stdin is None else "forwarded",
                "stdout": options.stdout_mode,
                "stderr": options.stderr_mode,
                "add": [[str(host), guest] for host, guest in options.add],
            },
            "cmdline": cmdline,
            "machine": machine_template(vm.argv, paths),
            "kernel": {"file": KERNEL, "build_id": dump.kernel_build_id(vm.kernel),
                       "source": str(Path(vm.kernel).resolve())},  # fmt: skip
            "app": {"file": app_file, "source": str(options.exe.resolve())},
        }
        _write_json(self.directory / MANIFEST, self._manifest)

    def close_log(self, vm: Qemu, monitor: Monitor | None) -> None:
        """End the recording where the guest is: stop it, read the instruction count,
        QMP quit (QEMU closes its log) and wait for QEMU to exit; a QEMU that does not
        answer or exit is killed (the recording is then incomplete). QEMU is gone on
        return."""
        from osvgdb.monitor import Monitor, MonitorError

        if vm.poll() is None and self._manifest:
            own = monitor is None
            try:
                if own:
                    monitor = Monitor(vm.qmp_socket, timeout=STEP_TIMEOUT)
                assert monitor is not None
                monitor.execute("stop")
                reply = monitor.execute("query-replay")
                assert isinstance(reply, dict)
                self._icount = int(reply["icount"])
                monitor.execute("quit")
                self._closed = vm.wait(QUIT_GRACE) is not None
            except MonitorError:
                self._closed = False
            finally:
                if own and monitor is not None:
                    monitor.close()
        vm.kill()

    def finish(self, vm: Qemu, outcome: BootOutcome) -> None:
        """The manifest, once QEMU is gone and the console copied: complete when QEMU
        closed its log at an instruction count osvgdb read."""
        for tee in self._tees:
            tee.close()
        if not self._manifest:
            return  # QEMU never ran: nothing was recorded
        self.end = End(self._icount, outcome.kind.value, outcome.exit_status, self.note)
        self._manifest["end"] = {"icount": self._icount, "outcome": self.end.outcome,
                                 "exit_status": self.end.exit_status, "note": self.note}  # fmt: skip
        try:
            shutil.copyfile(vm.debugcon, self.directory / DEBUGCON)
        except OSError:
            (self.directory / DEBUGCON).write_bytes(b"")
        self._manifest["output_order"] = self._order
        files = {name: self.directory / name for name in _VOUCHED}
        files[self._manifest["app"]["file"]] = self.directory / self._manifest["app"]["file"]
        self._manifest["files"] = {
            name: {"size": path.stat().st_size, "sha256": _sha256(path)}
            for name, path in files.items()
        }
        self._manifest["complete"] = self._closed and self._icount is not None
        _write_json(self.directory / MANIFEST, self._manifest)


@dataclass
class Snapshot:
    """A periodic snapshot: its name in the qcow2, its instruction count, and how many
    bytes the guest had written to each output by then (`written_counts`)."""

    name: str
    icount: int
    written: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "icount": self.icount, "written": self.written}


@dataclass
class Recording:
    """A recording directory, checked (`open_recording`), for a replay."""

    directory: Path
    manifest: dict
    snapshots: list[Snapshot] = field(default_factory=list)
    snapshots_complete: bool = False

    @property
    def kernel(self) -> Path:
        return self.directory / self.manifest["kernel"]["file"]

    @property
    def app(self) -> Path:
        return self.directory / self.manifest["app"]["file"]

    @property
    def initrd(self) -> Path:
        return self.directory / INITRD

    @property
    def cmdline(self) -> str:
        return str(self.manifest["cmdline"])

    @property
    def end(self) -> End:
        end = self.manifest["end"]
        return End(end["icount"], end["outcome"], end.get("exit_status"), end.get("note"))

    def stream(self, name: str) -> bytes:
        """Output `name` (`STREAMS`) as recorded."""
        return (self.directory / STREAMS[name][0]).read_bytes()

    def console(self, written: dict[str, int] | None = None) -> bytes:
        """The outputs as one console, as shown live, each as far as `written` says (all
        of it by default)."""
        streams = {name: self.stream(name) for name in STREAMS}
        order = [(str(name), int(length)) for name, length in self.manifest["output_order"]]
        return interleave(order, streams, written or {name: len(data) for name, data in streams.items()})

    @property
    def shared_ram(self) -> bool:
        """Whether the guest's RAM was osvgdb's memfd (a replay's must be too)."""
        return any(word.startswith("memory-backend-file,") for word in self.manifest["machine"])

    @property
    def options(self) -> dict:
        return self.manifest["options"]

    def run_options(self) -> RunOptions:
        """The options the run was recorded with, the kernel and app those in DIR."""
        from osvgdb.run import RunOptions

        options = self.options
        return RunOptions(
            exe=self.app,
            args=list(options["args"]),
            accel="tcg",
            smp=1,
            strace=bool(options["strace"]),
            fsgsbase=bool(options["fsgsbase"]),
            fs_protocol=str(options["fs_protocol"]),
            env=[(str(k), str(v)) for k, v in options["env"]],
            kernel_args=list(options["kernel_args"]),
            kernel=self.kernel,
            memory=str(options["memory"]),
        )

    def check_machine(self, argv: Sequence[str], paths: dict[str, str]) -> None:
        """Refuse a replay whose QEMU command line is not the recorded one (osvgdb has
        changed since): QEMU would replay into a divergence, or hang."""
        recorded = self.manifest["machine"]
        replaying = machine_template(argv, paths)
        if replaying != recorded:
            first = next(
                (i for i, (a, b) in enumerate(zip(recorded, replaying)) if a != b),
                min(len(recorded), len(replaying)),
            )
            said = recorded[first] if first < len(recorded) else "(nothing)"
            now = replaying[first] if first < len(replaying) else "(nothing)"
            raise RecordingError(
                f"{self.directory}: recorded with another QEMU command line (this osvgdb "
                f"builds another machine: {now!r} where the recording had {said!r}); "
                "it cannot be replayed"
            )

    def save_snapshots(self, snapshots: list[Snapshot], complete: bool, interval: float) -> None:
        self.snapshots = list(snapshots)
        self.snapshots_complete = complete
        _write_json(
            self.directory / SNAPSHOT_CACHE,
            {
                "end": self.end.icount,
                "interval": interval,
                "complete": complete,
                "snapshots": [s.as_dict() for s in snapshots],
            },
        )


def open_recording(directory: Path, *, check_qemu: bool = True) -> Recording:
    """DIR as a recording, checked: RecordingError (one line) for a directory that is
    not one, one osvgdb did not finish, a truncated or changed file, or one recorded
    with another QEMU."""
    manifest_path = directory / MANIFEST
    if not directory.is_dir():
        raise RecordingError(f"{directory}: no such directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise RecordingError(f"{directory}: not a recording (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordingError(f"{directory}: not a recording ({MANIFEST}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RecordingError(f"{directory}: not a recording ({MANIFEST} is not an {FORMAT} manifest)")
    version = manifest.get("version")
    if version != VERSION:
        raise RecordingError(
            f"{directory}: a recording of format version {version}; this osvgdb replays version {VERSION}"
        )
    if not manifest.get("complete"):
        raise RecordingError(
            f"{directory}: an incomplete recording (osvgdb or QEMU stopped before it was closed)"
        )
    try:
        files = dict(manifest["files"])
        manifest["end"]["icount"] + 0
        for key in ("cmdline", "machine", "options", "kernel", "app", "qemu", "output_order"):
            manifest[key]
    except (KeyError, TypeError, ValueError):
        raise RecordingError(f"{directory}: not a recording ({MANIFEST} lacks what a replay needs)") from None
    for name, expected in sorted(files.items()):
        path = directory / name
        try:
            size = path.stat().st_size
        except OSError:
            raise RecordingError(f"{directory}: {name} is missing: the recording is incomplete") from None
        if size < expected["size"]:
            raise RecordingError(
                f"{directory}: {name} is truncated ({size} of {expected['size']} bytes)"
            )
        if size != expected["size"] or _sha256(path) != expected["sha256"]:
            raise RecordingError(f"{directory}: {name} is not the file that was recorded (its SHA-256 differs)")
    if not (directory / SNAPSHOT_IMAGE).is_file():
        raise RecordingError(f"{directory}: {SNAPSHOT_IMAGE} is missing: the recording is incomplete")
    if check_qemu:
        installed = qemu_version()
        if installed != manifest["qemu"]:
            raise RecordingError(
                f"{directory}: recorded with {manifest['qemu']!r}, this is {installed!r}: "
                "QEMU replays only its own event logs"
            )
    recording = Recording(directory, manifest)
    _load_snapshots(recording)
    return recording


def _load_snapshots(recording: Recording) -> None:
    """The snapshot cache, if it belongs to this recording (else none: a replay takes them)."""
    try:
        cache = json.loads((recording.directory / SNAPSHOT_CACHE).read_text())
        if cache.get("end") != recording.end.icount:
            return
        recording.snapshots = [
            Snapshot(str(s["name"]), int(s["icount"]), {k: int(v) for k, v in s["written"].items()})
            for s in cache["snapshots"]
        ]
        recording.snapshots_complete = bool(cache.get("complete"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        recording.snapshots = []
        recording.snapshots_complete = False


def nearest_snapshot(snapshots: Sequence[Snapshot], icount: int) -> Snapshot | None:
    """The latest snapshot strictly before `icount` (None: only `init`, at 0, is)."""
    before = [s for s in snapshots if s.icount < icount]
    return max(before, key=lambda s: s.icount) if before else None


def next_step(previous_step: int, seconds: float, interval: float) -> int:
    """How many instructions to replay before the next snapshot, so that the replay
    between two takes about `interval` seconds at the speed the last step went."""
    if seconds <= 0:
        return min(previous_step * 2, MAX_SNAPSHOT_STEP)
    rate = previous_step / seconds
    return max(FIRST_SNAPSHOT_STEP // 5, min(int(rate * interval), MAX_SNAPSHOT_STEP))


def run_to(monitor: Monitor, icount: int, alive: Callable[[], bool]) -> None:
    """Replay forward to instruction `icount` (QMP replay-break, cont) and wait until
    QEMU stops there. QemuError when it stops elsewhere or exits, or stays silent on
    QMP for STEP_TIMEOUT seconds (hung: the caller kills it)."""
    from osvgdb.monitor import MonitorError

    try:
        monitor.poll_events()  # a STOP left from the last run is not this one's
        monitor.execute("replay-break", icount=icount)
        monitor.execute("cont")
        while True:
            event, _ = monitor.wait_event("STOP", "SHUTDOWN", timeout=0.2)
            if event is not None and event["event"] == "SHUTDOWN":
                raise QemuError("the replay ran past the end of the recording")
            state = monitor.status()
            if state == "running":
                if not alive():
                    raise QemuError("QEMU exited while replaying")
                continue
            reply = monitor.execute("query-replay")
            assert isinstance(reply, dict)
            if int(reply["icount"]) == icount:
                return
            raise QemuError(
                f"the replay stopped ({state}) at instruction {reply['icount']}, not {icount}"
            )
    except MonitorError as error:
        if not alive():
            raise QemuError("QEMU exited while replaying") from None
        raise QemuError(f"QEMU stopped answering while replaying ({error}): hung") from None


def load_snapshot(monitor: Monitor, name: str) -> None:
    """HMP loadvm with the VM stopped: the replay jumps to that snapshot and stays stopped
    (no state change reaches the gdbstub, so a connected GDB sees no stray stop)."""
    said = monitor.hmp(f"loadvm {name}").strip()
    if said:
        raise QemuError(f"loading snapshot {name}: {said}")


def take_snapshots(
    monitor: Monitor,
    recording: Recording,
    written: Callable[[], dict[str, int]],
    alive: Callable[[], bool],
    *,
    interval: float = SNAPSHOT_INTERVAL,
    progress: Callable[[int, int], None] = lambda icount, end: None,
) -> None:
    """From the start of the replay to its end, a snapshot every `interval` seconds of
    replay (none with 0), saved in the qcow2 and listed in snapshots.json as they are
    taken; the replay is left stopped at the end of the recording."""
    end = recording.end.icount
    assert end is not None
    snapshots: list[Snapshot] = []
    position, step = 0, FIRST_SNAPSHOT_STEP
    while interval > 0 and position + step < end:
        started = time.monotonic()
        run_to(monitor, position + step, alive)
        seconds = time.monotonic() - started
        position += step
        name = f"{SNAPSHOT_PREFIX}{len(snapshots) + 1}"
        said = monitor.hmp(f"savevm {name}").strip()
        if said:
            raise QemuError(f"taking snapshot {name}: {said}")
        snapshots.append(Snapshot(name, position, written()))
        recording.save_snapshots(snapshots, False, interval)
        progress(position, end)
        step = next_step(step, seconds, interval)
    run_to(monitor, end, alive)
    recording.save_snapshots(snapshots, True, interval)
