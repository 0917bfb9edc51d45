r"""-osv-tcb, -osv-syscalls, -osv-auxv, -osv-bt, -osv-when: osv-* commands' data as MI results.

For tools on GDB's machine interface (osvgdb.mi: the TUI, triage). Each MI
command takes the options of its CLI command, parsed by that command's own
parser (--json is accepted and changes nothing), and answers with what
`CMD --json` prints, as MI values (GDB 13's gdb.MICommand):

    JSON                        MI
    object                      tuple {name="value",...}
    array                       list [...]
    string                      string; a NUL character becomes the text \x00 (GDB's
                                MI strings end at NUL; undecodable bytes already
                                show as \xNN in the data)
    number                      its decimal text: 18 -> "18", 1.25 -> "1.25"
    true, false                 "true", "false"
    null                        in an object, the field is left out (as GDB leaves
                                out what it has no value for); in an array, {}
    object with a key that is   a list of {key="K",value=V} tuples, as GDB's
    not an MI name (a letter,   register-values: osv-syscalls' "strings", keyed by
    then letters, digits, - _)  argument index, is strings=[{key="1",value="hi\n"}]

Errors are the CLI command's one line, as ^error,msg="osv-tcb: no CPU 9".
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable

import gdb

from osvgdb.gdb.command import OsvCommand

# The CLI commands with an MI twin: each has data(args), the dict --json prints.
MI_TWINS = ("osv-tcb", "osv-syscalls", "osv-auxv", "osv-bt", "osv-when")

MI_NAME = re.compile(r"[A-Za-z][-A-Za-z0-9_]*\Z")

# gdb.MICommand is GDB 13's; an older GDB simply has no MI twins.
_MICommand = getattr(gdb, "MICommand", object)


def to_mi(value: object) -> object:
    """VALUE (JSON-able) as the MI value of the table above."""
    if isinstance(value, dict):
        if all(isinstance(key, str) and MI_NAME.match(key) for key in value):
            return {key: to_mi(item) for key, item in value.items() if item is not None}
        return [to_mi({"key": key, "value": item}) for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [to_mi(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return {}
    if isinstance(value, str):
        return value.replace("\0", "\\x00")
    return str(value)


class OsvMiCommand(_MICommand):
    """-NAME: an osv-* command's data (DATA(args)) as an MI result."""

    def __init__(self, command: OsvCommand, data: Callable[[argparse.Namespace], dict]):
        self.command = command
        self.data = data
        super().__init__("-" + command.NAME)

    def invoke(self, argv: list[str]) -> dict | None:
        data = self.command.call(argv, self.data)  # None: the help went to the console
        return to_mi(data) if data is not None else None


def register(commands: Iterable[OsvCommand]) -> None:
    """The MI twin of each of COMMANDS named in MI_TWINS."""
    if _MICommand is object:
        return
    for command in commands:
        if command.NAME in MI_TWINS:
            OsvMiCommand(command, command.data)
