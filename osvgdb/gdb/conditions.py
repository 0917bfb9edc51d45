"""`--if` conditions: a Python expression over an event's attributes."""

from __future__ import annotations

import builtins
from collections.abc import Callable

from osvgdb.gdb.events import Event


class ConditionError(Exception):
    """The user's expression raised at an event: the message names the expression
    and the error (`--if 'args[9] == 1': IndexError: tuple index out of range`)."""


class _EventNames(dict):
    """An event's attributes as names for a condition: `tid == 3 and args[0] == 1`."""

    def __init__(self, event: Event):
        super().__init__(event=event)
        self.event = event

    def __missing__(self, name: str) -> object:
        try:
            return getattr(self.event, name)
        except AttributeError:
            raise KeyError(name) from None


def option_text(text: str) -> str:
    """The option as one would type it again: `--if 'args[0] == 1'`, quoted for
    gdb.string_to_argv, where a backslash escapes inside quotes too; double quotes
    when the expression holds single ones (`--if "name == 'brk'"`)."""
    quote = '"' if "'" in text and '"' not in text else "'"
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote)
    return f"--if {quote}{escaped}{quote}"


def compile_condition(text: str) -> Callable[[Event], bool]:
    """A Python expression over the event's attributes (SyntaxError if it is not one).

    The condition raises ConditionError when the expression does (a name the
    event lacks, an index past args, a division by zero, ...)."""
    code = compile(text, "<--if>", "eval")
    names = {"__builtins__": builtins}

    def condition(event: Event) -> bool:
        try:
            return bool(eval(code, names, _EventNames(event)))  # noqa: S307 (the user's own text)
        except Exception as error:
            raise ConditionError(f"{option_text(text)}: {type(error).__name__}: {error}") from error

    return condition
