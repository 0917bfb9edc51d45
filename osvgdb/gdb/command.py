"""What every osv-* command shares: argparse parsing, help, completion, errors.

A command is a subclass of `OsvCommand` with NAME, SUMMARY (the first line of
its help, so `apropos osv` reads well), `add_arguments(parser)` and
`run(args)`.  Usage errors and failures reach the user as one line through
gdb.GdbError; `set osv-debug on` prints the traceback of unexpected errors.
run() is only called with a live target (`live_target`): without one every
command, and every $osv_* function, says so instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Collection
from typing import NoReturn

import gdb

from osvgdb.decode import DecodeError
from osvgdb.gdb.target import Kernel, TargetError
from osvgdb.model import filters


class _Usage(Exception):
    pass


class _HelpShown(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            raise _Usage(message.strip())
        raise _HelpShown()


class DebugParameter(gdb.Parameter):
    """Show Python tracebacks of osvgdb's internal errors.

    With it off (the default), an osv-* command that fails reports one line."""

    set_doc = "Set whether osv-* commands show Python tracebacks of internal errors."
    show_doc = "Show whether osv-* commands show Python tracebacks of internal errors."

    def __init__(self) -> None:
        super().__init__("osv-debug", gdb.COMMAND_MAINTENANCE, gdb.PARAM_BOOLEAN)
        self.value = False

    def get_set_string(self) -> str:
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"osv-* tracebacks are {svalue}."


def debug_enabled() -> bool:
    try:
        return bool(gdb.parameter("osv-debug"))
    except (gdb.error, RuntimeError):
        return False


def report_internal_error(where: str, error: BaseException) -> gdb.GdbError:
    """The one-line error for an unexpected exception (traceback if osv-debug)."""
    if debug_enabled():
        traceback.print_exception(error)
    hint = "" if debug_enabled() else " (set osv-debug on for a traceback)"
    return gdb.GdbError(f"{where}: internal error: {type(error).__name__}: {error}{hint}")


NO_LIVE_TARGET = "no live target (connect with target remote, or QEMU has exited)"


def live_target() -> bool:
    """True while GDB is connected to a target with a vCPU to read.

    Without one GDB reads memory from the kernel ELF's own sections, where the
    kernel's tables are their zero initial values: commands would print "no
    records" as if the guest had none. A QEMU that died is noticed at the next
    packet, which fails; GDB then drops the remote target: pid 0, no thread.
    (Not inferior.threads(): that asks the remote for its thread list.)
    """
    return gdb.selected_inferior().pid != 0 and gdb.selected_thread() is not None


def no_live_target(who: str) -> gdb.GdbError:
    return gdb.GdbError(f"{who}: {NO_LIVE_TARGET}")


def one_line_error(who: str, error: Exception) -> gdb.GdbError:
    """The one line for what a command or function raised.

    A target that went away meanwhile is the reason, whatever failed: the QEMU
    that died is only noticed when a read fails."""
    if not live_target():
        return no_live_target(who)
    if isinstance(error, gdb.GdbError):
        return error
    if isinstance(error, (filters.FilterError, TargetError, DecodeError, gdb.error)):
        return gdb.GdbError(f"{who}: {error}")
    return report_internal_error(who, error)


def print_json(data: object) -> None:
    gdb.write(json.dumps(data, indent=1) + "\n")


def int_arg(text: str) -> int:
    """A number as GDB would read it (decimal, 0x..., or an expression)."""
    try:
        return int(text, 0)
    except ValueError:
        pass
    try:
        return int(gdb.parse_and_eval(text))
    except gdb.error as error:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} ({error})") from None


def add_filter_arguments(parser: argparse.ArgumentParser, *, cpu: str, tid: str) -> None:
    """osvgdb.model.filters.add_filter_arguments, with numbers as GDB reads them."""
    filters.add_filter_arguments(parser, cpu=cpu, tid=tid, number=int_arg)


def check_filters(cpu: int | None, tid: int | None, numbers: Collection[int] | None = None) -> None:
    """osvgdb.model.filters.check_filters on the kernel GDB debugs."""
    filters.check_filters(Kernel.get(), cpu, tid, numbers)


class OsvCommand(gdb.Command):
    NAME = ""
    SUMMARY = ""
    DETAILS = ""
    COMMAND_CLASS = gdb.COMMAND_DATA

    def __init__(self) -> None:
        self.parser = Parser(
            prog=self.NAME,
            description=self.DETAILS or None,
            add_help=True,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_arguments(self.parser)
        # GDB shows the docstring as the command's help; its first line is the summary.
        self.__doc__ = f"{self.SUMMARY}\n\n{self.parser.format_help()}"
        super().__init__(self.NAME, self.COMMAND_CLASS)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace) -> None:
        raise NotImplementedError

    def invoke(self, argument: str, from_tty: bool) -> None:
        self.dont_repeat()
        self.call(gdb.string_to_argv(argument), self.run)

    def call(self, argv: list[str], action):
        """Parse argv (help: None, a usage error: one line), check there is a live
        target, and return action(args); any error becomes one line naming the
        command. The CLI command runs `run` through it, its MI twin `data`."""
        try:
            args = self.parser.parse_args(argv)
        except _HelpShown:
            return None
        except _Usage as error:
            raise gdb.GdbError(f"{self.NAME}: {error} (usage: {self.usage()})") from None
        if not live_target():
            raise no_live_target(self.NAME)
        try:
            return action(args)
        except Exception as error:
            raise one_line_error(self.NAME, error) from None

    def usage(self) -> str:
        return " ".join(self.parser.format_usage().split()).removeprefix("usage: ")

    def complete(self, text: str, word: str | None) -> list[str] | int:
        words = text.split()
        previous = words[-1] if words and not text.endswith(" ") else None
        before = words[-2] if previous and len(words) >= 2 else (words[-1] if words else None)
        values = self.complete_value(before, word or "") if before else None
        if values is not None:
            return values
        if word is not None and word.startswith("-") or previous is None:
            options = [o for action in self.parser._actions for o in action.option_strings]
            return sorted(o for o in options if o.startswith(word or ""))
        return gdb.COMPLETE_NONE

    def complete_value(self, option: str, word: str) -> list[str] | None:
        """Completions for the value of `option`; None when it takes none we know."""
        return None


def import_from_venv(module: str, package: str, command: str) -> None:
    """Make MODULE importable: GDB embeds the system's Python, which may lack PACKAGE;
    then it comes from the virtualenv scripts/bootstrap made (.venv). A one-line
    GdbError naming COMMAND when it is not there either."""
    try:
        importlib.import_module(module)
        return
    except ImportError:
        pass
    from osvgdb import build

    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = build.repo_root() / ".venv" / "lib" / version / "site-packages"
    if str(site) not in sys.path:
        sys.path.append(str(site))
    try:
        importlib.import_module(module)
    except ImportError:
        raise gdb.GdbError(
            f"{command}: cannot import {package} (not in {site}: run scripts/bootstrap)"
        ) from None
