"""osv-dump: write a compact dump of the stopped guest, and the sidecar a reader needs.

GDB holds the guest stopped; osvgdb.dump_writer writes the dump at a level
(full, used, stacks) from the guest's RAM, which QEMU shares with us
(`osv-guest-ram`, set by `osvgdb debug`), what it keeps decided by the kernel
model over GDB's types; the registers come from QEMU over QMP
(`osv-qmp-socket`, also set by `osvgdb debug`). Beside the dump goes PATH.json:
the kernel ELF's path and build id (so a reader refuses another build's
symbols), the app's path, QEMU's version, the time, the number of vCPUs, the
level and what it left out.

QMP goes through osvgdb.monitor (qemu.qmp's sync client), and the minidump's
backtraces read the ELF files with pyelftools, compression uses zstandard: GDB
embeds the system's Python, which has none of them, so they are imported from
the virtualenv scripts/bootstrap made (.venv), appended to sys.path on first use.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gdb

from osvgdb.dump import LEFT_OUT, DumpError, DumpMetadata, metadata_path, now
from osvgdb.gdb.appsyms import app_path
from osvgdb.gdb.command import OsvCommand, import_from_venv, print_json
from osvgdb.gdb.target import Kernel

QMP_TIMEOUT = 60.0  # seconds for one QMP command: QEMU's dump of one page takes milliseconds


class QmpSocketParameter(gdb.Parameter):
    """The unix socket of QEMU's QMP monitor, for osv-dump (osvgdb debug sets it)."""

    set_doc = "Set the path of QEMU's QMP socket (for osv-dump)."
    show_doc = "Show the path of QEMU's QMP socket."

    def __init__(self) -> None:
        super().__init__("osv-qmp-socket", gdb.COMMAND_FILES, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = ""

    def get_set_string(self) -> str:
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"QEMU's QMP socket is {svalue!r}."


class GuestRamParameter(gdb.Parameter):
    """Where the guest's RAM, shared with QEMU, can be read, for osv-dump (osvgdb debug
    sets it: /proc/PID/fd/N, a memfd of osvgdb's, see osvgdb.guestram)."""

    set_doc = "Set where the guest's RAM can be read (for osv-dump)."
    show_doc = "Show where the guest's RAM can be read."

    def __init__(self) -> None:
        super().__init__("osv-guest-ram", gdb.COMMAND_FILES, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = ""

    def get_set_string(self) -> str:
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"The guest's RAM is read from {svalue!r}."


def _parameter(name: str) -> str:
    try:
        return gdb.parameter(name) or ""
    except (gdb.error, RuntimeError):
        return ""


def _kernel() -> tuple[str, str | None]:
    """The kernel ELF GDB has loaded, and its build id."""
    path = gdb.current_progspace().filename
    if not path:
        raise gdb.GdbError("osv-dump: GDB has no kernel ELF loaded (file build/kernel.elf)")
    for objfile in gdb.objfiles():
        if objfile.filename == path:
            return path, objfile.build_id
    return path, None


def size_text(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / (1 << 10):.0f} KiB"


class OsvDump(OsvCommand):
    NAME = "osv-dump"
    SUMMARY = "Dump the stopped guest's memory and vCPUs to PATH, and PATH.json."
    DETAILS = (
        "An ELF core GDB loads as it is (osvgdb debug --core PATH) and osvgdb inspect\n"
        "reads: the guest's pages at their virtual addresses, one NT_PRSTATUS per vCPU.\n"
        "--level says which pages: full (all RAM), used (the default: what the kernel\n"
        "uses, not its free pages nor the initrd), stacks (a minidump: every thread's\n"
        "stacks, TCB and TLS, the syscall rings, the kernel's data, the app's writable\n"
        "data and the pages around the registers). Pages of zeros take no room; a read\n"
        "of a page the level left out fails and says so. PATH.json records the kernel\n"
        "ELF and its build id, the app, QEMU's version, the time, the vCPUs, the level\n"
        "and what it left out. Written under a temporary name and renamed: PATH is\n"
        "whole or absent. Needs osv-guest-ram and osv-qmp-socket (osvgdb debug sets\n"
        "both)."
    )
    COMMAND_CLASS = gdb.COMMAND_FILES

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from osvgdb.dump_writer import DEFAULT_LEVEL, LEVELS

        parser.add_argument("path", metavar="PATH", help="where the dump goes")
        parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
        parser.add_argument(
            "--level",
            choices=LEVELS,
            default=DEFAULT_LEVEL,
            help=f"what the dump keeps (default {DEFAULT_LEVEL})",
        )
        parser.add_argument(
            "--compress", action="store_true", help="write PATH zstd-compressed (for storage)"
        )
        parser.add_argument("--json", action="store_true", help="what was written, as JSON")

    def run(self, args: argparse.Namespace) -> None:
        started = time.perf_counter()
        path = os.path.abspath(os.path.expanduser(args.path))
        if not os.path.isdir(os.path.dirname(path)):
            raise gdb.GdbError(f"osv-dump: {os.path.dirname(path)}: no such directory")
        # Only the dump counts: a sidecar without its dump is what a writer killed
        # before its rename leaves, and is replaced.
        if os.path.lexists(path) and not args.force:
            raise gdb.GdbError(f"osv-dump: {path} exists (--force replaces it)")
        socket, ram = _parameter("osv-qmp-socket"), _parameter("osv-guest-ram")
        if not socket:
            raise gdb.GdbError(
                "osv-dump: osv-qmp-socket is not set (osvgdb debug sets it to QEMU's QMP socket)"
            )
        if not ram:
            raise gdb.GdbError(
                "osv-dump: osv-guest-ram is not set (osvgdb debug sets it to the guest's RAM, "
                "which QEMU shares with it)"
            )
        inferior = gdb.selected_inferior()
        if any(thread.is_running() for thread in inferior.threads()):
            raise gdb.GdbError("osv-dump: the guest is running (interrupt it first)")
        kernel, build_id = _kernel()
        import_from_venv("qemu.qmp", "qemu.qmp", self.NAME)
        import_from_venv("elftools", "pyelftools", self.NAME)
        if args.compress:
            import_from_venv("zstandard", "zstandard", self.NAME)
        from osvgdb import monitor
        from osvgdb.dump_writer import write_dump

        app = app_path()
        metadata = DumpMetadata(
            kernel_path=os.path.abspath(kernel),
            kernel_build_id=build_id,
            app_path=os.path.abspath(app) if app else None,
            qemu_version="",
            time=now(),
            vcpus=0,
        )
        try:
            with monitor.Monitor(Path(socket), timeout=QMP_TIMEOUT) as qmp:
                written = write_dump(
                    path,
                    monitor=qmp,
                    ram_path=ram,
                    symbols=Kernel.get().target,
                    kernel_path=kernel,
                    metadata=metadata,
                    level=args.level,
                    compress=args.compress,
                )
        except (monitor.MonitorError, DumpError) as error:
            raise gdb.GdbError(f"osv-dump: {error}") from None
        written.seconds = time.perf_counter() - started  # the whole command, imports too
        if args.json:
            print_json(written.as_dict())
            return
        cpus = "1 vCPU" if written.vcpus == 1 else f"{written.vcpus} vCPUs"
        compressed = ", zstd" if written.compressed else ""
        gdb.write(
            f"osv-dump: wrote {path} ({size_text(written.size)}{compressed}, level "
            f"{written.level}, {cpus}, {written.seconds:.2f} s) and {metadata_path(path)}\n"
        )
        if written.left_out:
            parts = "; ".join(
                f"{size_text(n)} of {LEFT_OUT.get(why, why)}"
                for why, n in sorted(written.left_out.items())
            )
            gdb.write(f"osv-dump: left out {parts}\n")
        for problem in written.problems:
            gdb.write(f"osv-dump: note: {problem}\n")
