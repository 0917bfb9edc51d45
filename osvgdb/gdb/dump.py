"""osv-dump: have QEMU dump the stopped guest, and write the sidecar a reader needs.

GDB holds the guest stopped; QEMU's QMP monitor (`osv-qmp-socket`, which
`osvgdb debug` sets) writes the dump with `dump-guest-memory` (paging=false,
format elf: physical memory and each vCPU's registers, see osvgdb.dump).  The
command is synchronous without `detach`: QMP answers once the file is whole.
Beside the dump goes PATH.json: the kernel ELF's path and build id (so a
reader refuses another build's symbols), the app's path, QEMU's version, the
time and the number of vCPUs.

QMP goes through osvgdb.monitor (qemu.qmp's sync client). GDB embeds the system's
Python, which has no qemu.qmp: it is imported from the virtualenv scripts/bootstrap
made (.venv), appended to sys.path on first use.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import gdb

from osvgdb.dump import DumpMetadata, metadata_path, now, write_metadata
from osvgdb.gdb.appsyms import app_path
from osvgdb.gdb.command import OsvCommand, import_from_venv

QMP_TIMEOUT = 600.0  # seconds for one QMP command: a dump of a large guest takes a while


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


def qmp_socket() -> str:
    try:
        return gdb.parameter("osv-qmp-socket") or ""
    except (gdb.error, RuntimeError):
        return ""


def _monitor_module():
    """osvgdb.monitor (QMP over qemu.qmp, which may come from the venv)."""
    import_from_venv("qemu.qmp", "qemu.qmp", "osv-dump")
    from osvgdb import monitor

    return monitor


def _kernel() -> tuple[str, str | None]:
    """The kernel ELF GDB has loaded, and its build id."""
    path = gdb.current_progspace().filename
    if not path:
        raise gdb.GdbError("osv-dump: GDB has no kernel ELF loaded (file build/kernel.elf)")
    for objfile in gdb.objfiles():
        if objfile.filename == path:
            return path, objfile.build_id
    return path, None


def _qemu_version(reply: dict) -> str:
    qemu = reply.get("qemu", {})
    version = f"{qemu.get('major')}.{qemu.get('minor')}.{qemu.get('micro')}"
    package = reply.get("package", "").strip()
    return f"{version} ({package})" if package else version


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def dump_guest(path: str) -> tuple[str, float]:
    """Have QEMU write the dump at path (absolute); QEMU's version and the seconds it took."""
    socket = qmp_socket()
    if not socket:
        raise gdb.GdbError(
            "osv-dump: osv-qmp-socket is not set (osvgdb debug sets it to QEMU's QMP socket)"
        )
    monitor = _monitor_module()
    try:
        with monitor.Monitor(Path(socket), timeout=QMP_TIMEOUT) as qmp:
            version = _qemu_version(qmp.execute("query-version"))
            started = time.monotonic()
            qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{path}", format="elf")
            seconds = time.monotonic() - started
            status = qmp.execute("query-dump")
    except monitor.MonitorError as error:
        raise gdb.GdbError(f"osv-dump: {error}") from None
    if status.get("status") != "completed":
        raise gdb.GdbError(f"osv-dump: QEMU's dump ended {status.get('status')!r}")
    return version, seconds


class OsvDump(OsvCommand):
    NAME = "osv-dump"
    SUMMARY = "Dump the stopped guest's memory and vCPUs to PATH (QEMU), and PATH.json."
    DETAILS = (
        "QEMU writes an ELF core of the guest's physical memory and each vCPU's registers\n"
        "(QMP dump-guest-memory, paging=false); PATH.json beside it records the kernel\n"
        "ELF and its build id, the app (osv-app-path), QEMU's version, the time and the\n"
        "number of vCPUs.  Read it later with `osvgdb debug --core PATH`, or from Python\n"
        "with osvgdb.dump.Dump(PATH).  Needs osv-qmp-socket, which osvgdb debug sets.\n"
        "The dump holds all guest RAM (2 GiB by default): QEMU takes a few seconds."
    )
    COMMAND_CLASS = gdb.COMMAND_FILES

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("path", metavar="PATH", help="where QEMU writes the dump")
        parser.add_argument(
            "--force", action="store_true", help="replace PATH (and PATH.json) if they exist"
        )

    def run(self, args: argparse.Namespace) -> None:
        path = os.path.abspath(os.path.expanduser(args.path))
        sidecar = metadata_path(path)
        if not os.path.isdir(os.path.dirname(path)):
            raise gdb.GdbError(f"osv-dump: {os.path.dirname(path)}: no such directory")
        if not args.force:
            for existing in (path, str(sidecar)):
                if os.path.lexists(existing):
                    raise gdb.GdbError(f"osv-dump: {existing} exists (--force replaces it)")
        inferior = gdb.selected_inferior()
        if any(thread.is_running() for thread in inferior.threads()):
            raise gdb.GdbError("osv-dump: the guest is running (interrupt it first)")
        kernel, build_id = _kernel()
        for existing in (path, str(sidecar)):
            if os.path.lexists(existing):
                os.unlink(existing)  # QEMU creates the dump read-only for its owner
        version, seconds = dump_guest(path)
        vcpus = len(inferior.threads())
        metadata = DumpMetadata(
            kernel_path=os.path.abspath(kernel),
            kernel_build_id=build_id,
            app_path=os.path.abspath(app_path()) if app_path() else None,
            qemu_version=version,
            time=now(),
            vcpus=vcpus,
        )
        write_metadata(path, metadata)
        size = os.path.getsize(path)
        cpus = "1 vCPU" if vcpus == 1 else f"{vcpus} vCPUs"
        gdb.write(
            f"osv-dump: wrote {path} ({_size(size)}, {cpus}, {seconds:.1f} s) and {sidecar}\n"
        )
