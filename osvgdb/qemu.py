"""Starting and stopping QEMU, with no QEMU process left behind, ever.

Every QEMU we start lives in a `Qemu` context: leaving it by any path (normal
return, exception, KeyboardInterrupt or a signal the caller turned into an
exception) kills QEMU, waits for it and removes its private directory.  If we
die without running any Python code (SIGKILL), the kernel kills QEMU for us:
the child asks for PR_SET_PDEATHSIG=SIGKILL before it execs QEMU.

QEMU runs in a session of its own so a ^C typed in the terminal reaches only
us; we then stop it ourselves, in order.  Its own stdin and stdout are
/dev/null: it never touches the terminal's modes.  The guest's three channels
reach us on socket pairs (`Channels`): the app's terminal (a virtio console:
its stdin, which osvgdb.stdin feeds, and its stdout), its stderr (a second
virtio console) and the kernel's own console (the serial port).

QEMU starts with the guest stopped (-S): whoever boots it resumes it, over
QMP (osvgdb.run.Guest) or from GDB, so nothing the guest does can happen
before anyone watches.

Everything a run needs on disk (initrd, debugcon log, QEMU's stderr, the QMP
socket, and for `osvgdb debug` the gdbstub socket) lives in one private
directory (mode 0700, from tempfile.mkdtemp).  Sockets are unix sockets
there, never TCP on a public address.  With `shared_ram` the guest's RAM is a
memfd of ours (osvgdb.guestram), in no directory at all: dumps read it.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO
from pathlib import Path

from osvgdb import guestram

QEMU = "qemu-system-x86_64"
MEMORY = "2G"
ISA_DEBUG_EXIT_PORT = 0xF4

# The CPU model per accelerator.  Both are `max` so FSGSBASE is there when the
# host (KVM) or the emulator (TCG) has it.  Under KVM, `max` exposes
# IA32_ARCH_CAPABILITIES (MSR 0x10a), which the KVM on these machines refuses:
# QEMU aborts with "failed to set MSR 0x10a" (as `-cpu host` does), so KVM
# drops that one feature.  Named models (Skylake-Client-noTSX-IBRS, EPYC) also
# start under KVM but print dozens of "host doesn't support requested
# feature" warnings.  (That KVM, kvm_pvm, shows the guest the host's CPUID
# whatever -cpu says: `-fsgsbase` hides nothing there, hence the kernel
# option --no-fsgsbase as well.)
CPU_MODELS = {
    "tcg": "max",
    "kvm": "max,-arch-capabilities",
}

_WORKDIR_PREFIX = "osvgdb-"
_OWNER_FILE = "owner-pid"
_PR_SET_PDEATHSIG = 1
# Signals the caller turns into exceptions; blocked while QEMU is being
# spawned so that no half-started QEMU can escape the cleanup.
_TERMINATION_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class QemuError(Exception):
    """QEMU could not be started or is unusable here."""


def kvm_usable() -> bool:
    """True when /dev/kvm can be opened read-write, which is what QEMU needs."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def hardware_virtualization() -> bool:
    """True when the CPU offers VT-x or AMD-V (the vmx or svm flag).

    Without them /dev/kvm may still exist and open: these machines load
    kvm_pvm, a software KVM that runs an unmodified guest by emulating its
    instructions.  Measured here it is ~100 times slower than TCG, and its
    emulator fails on x87/SSE instructions ("KVM internal error. Suberror: 1,
    emulation failure" at the app's first pxor), so glibc and musl programs
    cannot run on it at all.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.partition(":")[2].split()
            return "vmx" in flags or "svm" in flags
    return False


def kvm_accelerated() -> bool:
    """True when KVM would run the guest on hardware: what `auto` asks for."""
    return kvm_usable() and hardware_virtualization()


def choose_accel(requested: str) -> str:
    """Resolve `auto` to kvm or tcg; refuse kvm when /dev/kvm is unusable.

    An explicit `kvm` is honoured even without hardware virtualization.
    """
    if requested == "auto":
        return "kvm" if kvm_accelerated() else "tcg"
    if requested == "kvm" and not kvm_usable():
        raise QemuError("--accel kvm: /dev/kvm cannot be opened read-write")
    if requested not in CPU_MODELS:
        raise QemuError(f"unknown accelerator {requested!r}")
    return requested


def cpu_model(accel: str, *, fsgsbase: bool = True) -> str:
    """The -cpu argument; without FSGSBASE the kernel must use wrmsr for FS."""
    model = CPU_MODELS[accel]
    return model if fsgsbase else model + ",-fsgsbase"


@dataclass(frozen=True)
class ChannelFds:
    """QEMU's ends of the guest's channels: file descriptors it inherits."""

    terminal: int  # the app's stdin (QEMU reads) and stdout (QEMU writes)
    stderr: int  # the app's stderr
    console: int  # the kernel's own console
    export: int  # --export's archives, at the app's end
    uarts: bool = False  # the app's stdout and stderr on UARTs (a recording), not virtio


def channel_arguments(fds: ChannelFds | None) -> list[str]:
    """The devices that carry the guest's output and input.

    The app's terminal is a virtio-serial device on microvm's virtio-mmio
    (the kernel's tty.c): port 1 is its stdin and stdout, port 2 its stderr,
    so the app's two streams arrive apart, each in order; port 3 brings
    --export's archives back when the app ends.  They are
    virtserialports, which wait while the host side cannot take more (a
    virtconsole would drop it).  The kernel's own console is the ISA serial
    port, on a pipe (a file chardev on the descriptor, /dev/fd/N): QEMU's UART
    sends one byte at a time, and a socket's buffer takes only ~280 such sends
    before the host must read, a pipe's 64 KiB (1 MiB here).  The others are
    socket chardevs on descriptors QEMU inherits.
    ioapic2=off: eight transports raising GSI 16-23 on the one I/O APIC the
    kernel drives.  Without `fds` (a QEMU run by hand), the serial port is
    QEMU's stdout and the app writes there too.

    With `fds.uarts` (a run recorded for a replay, osvgdb.record) the app's stdout
    and stderr are two more UARTs, COM2 and COM3, and nothing feeds its stdin:
    QEMU 7.2 cannot replay virtio-serial from a snapshot (loading one arms a timer
    of the device's the recording never had; the replay then waits for ever).
    Every channel is a pipe then.
    """
    if fds is None:
        return ["-serial", "stdio"]
    if fds.uarts:
        return [
            "-chardev", f"file,id=console,path=/dev/fd/{fds.console}",
            "-serial", "chardev:console",
            "-chardev", f"file,id=stdout,path=/dev/fd/{fds.terminal}",
            "-device", "isa-serial,chardev=stdout,iobase=0x2f8,irq=3",
            "-chardev", f"file,id=stderr,path=/dev/fd/{fds.stderr}",
            "-device", "isa-serial,chardev=stderr,iobase=0x3e8,irq=5",
        ]  # fmt: skip
    return [
        "-chardev", f"socket,id=terminal,fd={fds.terminal}",
        "-chardev", f"socket,id=stderr,fd={fds.stderr}",
        "-chardev", f"socket,id=export,fd={fds.export}",
        "-device", "virtio-serial-device,id=ports,max_ports=4",
        "-device", "virtserialport,bus=ports.0,nr=1,chardev=terminal,name=org.osvgdb.terminal",
        "-device", "virtserialport,bus=ports.0,nr=2,chardev=stderr,name=org.osvgdb.stderr",
        "-device", "virtserialport,bus=ports.0,nr=3,chardev=export,name=org.osvgdb.export",
        "-chardev", f"file,id=console,path=/dev/fd/{fds.console}",
        "-serial", "chardev:console",
    ]  # fmt: skip


def command_line(
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    accel: str,
    smp: int,
    fsgsbase: bool,
    debugcon: Path,
    channels: ChannelFds | None = None,
    gdb_socket: Path | None = None,
    qmp_socket: Path | None = None,
    stopped: bool = False,
    memory: str = MEMORY,
    pause_on_reset: bool = False,
    ram_path: str | None = None,
    record_replay: Sequence[str] = (),
    extra_qmp_socket: Path | None = None,
) -> list[str]:
    """The whole QEMU command line, in one place.

    microvm boots the kernel's PVH ELF note directly (no SeaBIOS: ~0.1 s
    instead of ~4 s under KVM) and keeps its ISA serial port under -nodefaults;
    auto-kernel-cmdline=off stops it from appending virtio-mmio device
    descriptions to the kernel command line, which carries the app's argv.
    The guest's channels are `channel_arguments`'; the debugcon port 0xe9 (a
    file) carries the kernel's exit report; isa-debug-exit makes QEMU exit with
    ((status << 1) | 1) & 0xff; -no-reboot turns a triple fault into a QEMU
    exit instead of a silent reboot loop.

    With `stopped` the guest waits (-S) until QMP's `cont` or GDB resumes
    it; the QMP monitor listens on the unix socket `qmp_socket`, the gdbstub
    on `gdb_socket`, both in the caller's private directory.

    With `pause_on_reset` a triple fault (a reset, which -no-reboot turns into
    a shutdown) pauses the machine instead of ending QEMU, so its state can
    still be read (QMP sends SHUTDOWN with reason guest-reset; GDB sees a stop).

    With `ram_path` the guest's RAM is that file (osvgdb.guestram's memfd),
    mapped shared, so what the guest writes can be read there.

    `record_replay` is osvgdb.record.qemu_arguments' (a recording or its replay):
    then there is no isa-debug-exit, so the kernel halts after its exit report and
    the recording ends where osvgdb ends it (osvgdb.record says why).
    `extra_qmp_socket`: a second QMP monitor, so that GDB's extension and osvgdb
    can each have one (a replay's seeks, and the watch for a hung QEMU).
    """
    debug = ["-S"] if stopped else []
    if gdb_socket is not None:
        debug += ["-chardev", f"socket,id=gdb0,path={gdb_socket},server=on,wait=off",
                  "-gdb", "chardev:gdb0"]  # fmt: skip
    if qmp_socket is not None:
        debug += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
    if extra_qmp_socket is not None:
        debug += ["-qmp", f"unix:{extra_qmp_socket},server=on,wait=off"]
    if pause_on_reset:
        debug += ["-action", "shutdown=pause"]
    machine = f"microvm,accel={accel},auto-kernel-cmdline=off,ioapic2=off"
    ram = []
    if ram_path is not None:
        machine += ",memory-backend=ram"
        ram = ["-object", f"memory-backend-file,id=ram,size={memory},mem-path={ram_path},share=on"]
    return [
        QEMU,
        "-machine", machine,
        "-cpu", cpu_model(accel, fsgsbase=fsgsbase),
        "-m", memory,
        "-smp", str(smp),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", cmdline,
        *channel_arguments(channels),
        "-debugcon", f"file:{debugcon}",
        *([] if record_replay else
          ["-device", f"isa-debug-exit,iobase={ISA_DEBUG_EXIT_PORT:#x},iosize=4"]),
        "-no-reboot",
        *ram,
        *debug,
        *record_replay,
    ]  # fmt: skip


CONSOLE_PIPE_SIZE = 1 << 20


def _output_pipe() -> tuple[BinaryIO, BinaryIO]:
    """An output's pipe (the kernel console's; every output's in a recording): our end
    to read, QEMU's to write, as large as Linux lets us make it without privileges
    (1 MiB by default; else its 64 KiB)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, CONSOLE_PIPE_SIZE)
    except OSError:
        pass  # /proc/sys/fs/pipe-max-size is smaller: the default size still holds lines
    return os.fdopen(read_end, "rb", buffering=0), os.fdopen(write_end, "wb", buffering=0)


def die_with_parent(
    prctl: Callable[..., int], parent_pid: int, blocked: set[signal.Signals]
) -> None:
    """preexec_fn: runs in the child between fork and exec."""
    if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(126)
    # The parent may have died before prctl took effect: then nobody would
    # ever kill us.
    if os.getppid() != parent_pid:
        os._exit(126)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def _remove_abandoned_workdirs() -> None:
    """Remove the private directories of osvgdb processes that were killed
    (SIGKILL runs no cleanup; PDEATHSIG only takes QEMU with it)."""
    for workdir in Path(tempfile.gettempdir()).glob(_WORKDIR_PREFIX + "*"):
        try:
            owner = int((workdir / _OWNER_FILE).read_text())
            if workdir.stat().st_uid != os.getuid() or Path(f"/proc/{owner}").exists():
                continue
        except (OSError, ValueError):
            continue
        shutil.rmtree(workdir, ignore_errors=True)


class Qemu:
    """One QEMU process and its private directory.

    Use as a context manager: create it, put the initrd at `initrd`, call
    `start()` (the guest waits, stopped, for QMP's `cont` or GDB), read the
    guest's output from the descriptors in `outputs` and write the app's input
    to `stdin`; leaving the context kills QEMU if it still runs and removes the
    directory.  QMP listens on `qmp_socket`; with `gdbstub`, the gdbstub on
    `gdb_socket`.  With `shared_ram` the guest's RAM is a memfd of ours,
    `ram_path` (osvgdb.guestram), closed with the rest.
    `record_replay`: osvgdb.record's arguments for QEMU's record/replay.
    """

    def __init__(
        self,
        *,
        kernel: Path,
        accel: str,
        smp: int = 1,
        fsgsbase: bool = True,
        gdbstub: bool = False,
        memory: str = MEMORY,
        pause_on_reset: bool = False,
        shared_ram: bool = False,
        record_replay: Sequence[str] = (),
    ):
        self.kernel = kernel
        self.record_replay = list(record_replay)
        self.memory = memory
        self.pause_on_reset = pause_on_reset
        self.accel = accel
        self.smp = smp
        self.fsgsbase = fsgsbase
        _remove_abandoned_workdirs()
        self.workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self.workdir / _OWNER_FILE).write_text(f"{os.getpid()}\n")
        self.initrd = self.workdir / "initrd.cpio"
        self.debugcon = self.workdir / "debugcon"
        self.stderr_log = self.workdir / "qemu-stderr"
        self.gdb_socket = self.workdir / "gdb.sock" if gdbstub else None
        self.qmp_socket = self.workdir / "qmp.sock"
        # A replay's second QMP monitor is GDB's extension's (its moves), the first osvgdb's (its
        # watch for a hung QEMU); a recording has the same machine, and so the same monitors.
        self.gdb_qmp_socket = self.workdir / "qmp-gdb.sock" if record_replay else None
        self.process: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []  # the command line QEMU was started with
        # Each channel a socket pair: ours to read (and the terminal's to write), QEMU's.
        self._ours: dict[str, socket.socket | BinaryIO] = {}
        self._theirs: dict[str, socket.socket | BinaryIO] = {}
        self._stdin: BinaryIO | None = None
        self._ram_fd = guestram.create() if shared_ram else None

    @property
    def ram_path(self) -> str | None:
        """Where the guest's RAM can be read (osvgdb.guestram.GuestRam), or None."""
        return None if self._ram_fd is None else guestram.ram_path(self._ram_fd)

    def __enter__(self) -> Qemu:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    CHANNELS = ("stdout", "stderr", "console", "export")

    @property
    def outputs(self) -> dict[str, int]:
        """Where to read the guest's output, by channel: the app's `stdout` and
        `stderr`, the kernel's `console`, the `export` archives; each ends (EOF)
        when QEMU exits."""
        return {name: self._ours[name].fileno() for name in self.CHANNELS}

    @property
    def stdin(self) -> BinaryIO:
        """The app's input: what is written here the kernel reads as fd 0's (osvgdb.stdin
        encodes it).  Never closed before QEMU ends: QEMU would take the end of its
        chardev's input for a hang-up, and drop the app's output."""
        if self._stdin is None:
            self._stdin = self._ours["stdout"].makefile("wb", buffering=0)
        return self._stdin

    def command(self, cmdline: str) -> list[str]:
        if not self._theirs:
            for name in self.CHANNELS:
                if name == "console" or self.record_replay:
                    self._ours[name], self._theirs[name] = _output_pipe()
                else:
                    self._ours[name], self._theirs[name] = socket.socketpair()
        return command_line(
            kernel=self.kernel,
            initrd=self.initrd,
            cmdline=cmdline,
            accel=self.accel,
            smp=self.smp,
            fsgsbase=self.fsgsbase,
            debugcon=self.debugcon,
            channels=ChannelFds(
                terminal=self._theirs["stdout"].fileno(),
                stderr=self._theirs["stderr"].fileno(),
                console=self._theirs["console"].fileno(),
                export=self._theirs["export"].fileno(),
                uarts=bool(self.record_replay),
            ),
            gdb_socket=self.gdb_socket,
            qmp_socket=self.qmp_socket,
            stopped=True,
            memory=self.memory,
            pause_on_reset=self.pause_on_reset,
            ram_path=self.ram_path,
            record_replay=self.record_replay,
            extra_qmp_socket=self.gdb_qmp_socket,
        )

    def start(self, cmdline: str) -> None:
        argv = self.argv = self.command(cmdline)
        # QEMU creates the debugcon file only once it runs; creating it empty
        # lets the caller poll it from the start.
        self.debugcon.touch()
        parent_pid = os.getpid()
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINATION_SIGNALS)
        try:
            with open(self.stderr_log, "wb") as stderr:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                    pass_fds=[end.fileno() for end in self._theirs.values()],
                    start_new_session=True,
                    preexec_fn=lambda: die_with_parent(prctl, parent_pid, _TERMINATION_SIGNALS),
                )
        except FileNotFoundError as error:
            raise QemuError(f"{QEMU} not found (run scripts/bootstrap)") from error
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            # QEMU has its own copies now (or none): ours would keep the channels from ending.
            for end in self._theirs.values():
                end.close()

    def poll(self) -> int | None:
        """QEMU's exit status, or None while it runs."""
        return None if self.process is None else self.process.poll()

    def wait(self, timeout: float) -> int | None:
        """QEMU's exit status once it has exited, None if it still runs after
        `timeout` seconds."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Kill QEMU if it runs and reap it: afterwards no process is left."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr_tail(self, lines: int = 30) -> list[str]:
        try:
            text = self.stderr_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]

    def close(self) -> None:
        # A second ^C during cleanup must not leave QEMU unreaped or the
        # directory behind: hold such signals until cleanup is done.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _TERMINATION_SIGNALS)
        try:
            self.kill()
            if self._stdin is not None:
                try:
                    self._stdin.close()
                except OSError:
                    pass  # bytes for a QEMU that is gone
            for end in [*self._ours.values(), *self._theirs.values()]:
                end.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            if self._ram_fd is not None:
                os.close(self._ram_fd)
                self._ram_fd = None
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
