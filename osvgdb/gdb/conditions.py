"""`--if` conditions: a Python expression over an event's attributes."""

from __future__ import annotations

import builtins
from collections.abc import Callable

from osvgdb.gdb.events import Event


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


def compile_condition(text: str) -> Callable[[Event], bool]:
    """A Python expression over the event's attributes (SyntaxError if it is not one)."""
    code = compile(text, "<--if>", "eval")
    names = {"__builtins__": builtins}

    def condition(event: Event) -> bool:
        return bool(eval(code, names, _EventNames(event)))  # noqa: S307 (the user's own text)

    return condition
