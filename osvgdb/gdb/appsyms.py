"""App symbols: load the app's symbol file where the kernel put the app.

The kernel enters the app through `app_start(entry, stack)`; a silent
breakpoint there (its stop() returns False, as Linux's lx-symbols does for
modules) adds the app's symbol file: at its link addresses for ET_EXEC, moved
by process.load_base for a static-pie.  GDB must know the host path of the
app: `osvgdb debug` sets `osv-app-path`; who attaches by hand sets it, or runs
`osv-app-symbols EXE` once the app is loaded.
"""

from __future__ import annotations

import argparse
import os

import gdb

from osvgdb.decode import DecodeError
from osvgdb.decode.auxv import elf_phdr_vaddr
from osvgdb.gdb.command import OsvCommand, report_internal_error
from osvgdb.gdb.target import Kernel, TargetError

APP_ENTRY_FUNCTION = "app_start"

_loaded: dict[str, object] = {}
_breakpoint: AppStartBreakpoint | None = None


def app_path() -> str:
    try:
        return gdb.parameter("osv-app-path") or ""
    except (gdb.error, RuntimeError):
        return ""


def app_loaded() -> bool:
    try:
        return bool(Kernel.get().process(("entry",))["entry"])
    except (TargetError, gdb.error, DecodeError):
        return False


def load(path: str, *, quiet: bool = False) -> str:
    """Add the app's symbols at the kernel's load base; returns what was done."""
    path = os.path.abspath(os.path.expanduser(path))
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as error:
        raise TargetError(f"{path}: {error.strerror}") from None
    try:
        elf_phdr_vaddr(head)
    except DecodeError as error:
        raise TargetError(f"{path}: {error}") from None
    process = Kernel.get().process(("load_base", "entry"))
    load_base, entry = process["load_base"] or 0, process["entry"]
    if not entry:
        raise TargetError("the app is not loaded yet (process.entry is 0)")
    file_entry = int.from_bytes(head[24:32], "little")
    if file_entry + load_base != entry:
        raise TargetError(
            f"{path} is not the running app: its entry {file_entry:#x} + load base "
            f"{load_base:#x} is not process.entry {entry:#x}"
        )
    if _loaded.get("path") == path and _loaded.get("base") == load_base:
        return f"symbols of {path} already loaded"
    unload()
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off", to_string=True)
    try:
        gdb.execute(f"add-symbol-file {_quote(path)} -o {load_base:#x}", to_string=True)
    finally:
        gdb.execute(f"set confirm {'on' if confirm else 'off'}", to_string=True)
    _loaded.update(path=path, base=load_base)
    message = f"osv: loaded symbols of {path} at offset {load_base:#x}"
    if not quiet:
        gdb.write(message + "\n")
    return message


def unload() -> None:
    path = _loaded.pop("path", None)
    _loaded.pop("base", None)
    if path:
        gdb.execute(f"remove-symbol-file {_quote(str(path))}", to_string=True)


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def forget_loaded(_event: object = None) -> None:
    """A new `file` or a reconnect drops GDB's symbol files, and our record of them."""
    _loaded.clear()


class AppPathParameter(gdb.Parameter):
    """The host path of the app the kernel runs, for its symbols and checks.

    Setting it loads the app's symbols at once if the app is already loaded, and
    otherwise when the kernel enters the app (a silent breakpoint on app_start)."""

    set_doc = "Set the host path of the app the kernel runs (for app symbols)."
    show_doc = "Show the host path of the app the kernel runs."

    def __init__(self) -> None:
        super().__init__("osv-app-path", gdb.COMMAND_FILES, gdb.PARAM_OPTIONAL_FILENAME)
        self.value = ""

    def get_set_string(self) -> str:
        if not self.value:
            return ""
        if not os.path.isfile(self.value):
            return f"osv: warning: {self.value}: no such file"
        try:
            if app_loaded():
                return load(self.value, quiet=True)
        except TargetError as error:
            return f"osv: {error}"
        except Exception as error:
            return str(report_internal_error("osv-app-path", error))
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"The app's host path is {svalue!r}."


class AppStartBreakpoint(gdb.Breakpoint):
    """Silent: loads the app's symbols when the kernel enters the app."""

    def __init__(self) -> None:
        super().__init__(APP_ENTRY_FUNCTION, gdb.BP_BREAKPOINT, internal=True)
        self.silent = True

    def stop(self) -> bool:
        path = app_path()
        if not path:
            return False
        try:
            load(path)
        except TargetError as error:
            gdb.write(f"osv: app symbols not loaded: {error}\n")
        except Exception as error:
            gdb.write(f"{report_internal_error('osv app symbols', error)}\n")
        return False


class OsvAppSymbols(OsvCommand):
    NAME = "osv-app-symbols"
    SUMMARY = "Load the app's symbols where the kernel loaded the app (static-pie aware)."
    DETAILS = (
        "EXE defaults to osv-app-path. The symbols go at the ELF's link addresses moved by\n"
        "process.load_base (0 for ET_EXEC). osvgdb does this by itself when the kernel enters\n"
        "the app if osv-app-path is set; this command is for attaching later by hand."
    )
    COMMAND_CLASS = gdb.COMMAND_FILES

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("exe", nargs="?", metavar="EXE", help="the app's host path")

    def run(self, args: argparse.Namespace) -> None:
        path = args.exe or app_path()
        if not path:
            raise gdb.GdbError("osv-app-symbols: no EXE given and osv-app-path is not set")
        load(path)

    def complete(self, text: str, word: str | None) -> int:
        return gdb.COMPLETE_FILENAME


def install_breakpoint() -> AppStartBreakpoint | None:
    """The silent breakpoint, once the kernel's symbols are there."""
    try:
        Kernel.get().symbol(APP_ENTRY_FUNCTION)
    except TargetError:
        return None
    global _breakpoint
    if _breakpoint is None or not _breakpoint.is_valid():
        _breakpoint = AppStartBreakpoint()
    return _breakpoint
