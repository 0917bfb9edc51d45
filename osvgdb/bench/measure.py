"""Pure: bench-crossings' output lines in, per-operation figures out.

kernel/apps/bench-crossings.c prints one line per run of one benchmark:

    osv-bench bench=syscall fs=set run=1 samples=2000 per=1 median=460 min=460 max=733
              empty=9 tsc=1234567 ns=1234567

`median`, `min`, `max` and `empty` are rdtsc ticks: the median, least and greatest of
the run's samples (each one operation timed between two rdtsc, or `per` operations)
and the median of the empty timer measured beside them.  Per operation:

    ticks per op = (median - empty) / per

Under TCG with `-icount shift=0` a guest tick is one guest instruction, so that is an
instruction count; on the host and under KVM a tick is a TSC cycle, and

    ns per op = ticks per op * ns / tsc        (the run's CLOCK_MONOTONIC over its TSC)

Runs are summarised by their median, with the spread (greatest minus least) beside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PREFIX = "osv-bench "
_RUN_FIELDS = ("run", "samples", "per", "median", "min", "max", "empty", "tsc", "ns")


class ParseError(ValueError):
    """A line that says it is bench-crossings' but is not what it prints."""


@dataclass(frozen=True)
class Run:
    """One run of one benchmark in one FS mode (`none` or `set`)."""

    bench: str
    fs: str
    run: int
    samples: int
    per: int
    median: int
    min: int
    max: int
    empty: int
    tsc: int
    ns: int

    @property
    def ticks_per_op(self) -> float:
        return (self.median - self.empty) / self.per

    @property
    def ns_per_op(self) -> float:
        """The run's ticks per op in ns, by the run's own ratio of clock to TSC."""
        return self.ticks_per_op * self.ns / self.tsc


@dataclass(frozen=True)
class Unavailable:
    """A benchmark the program could not run here, and why (`one-cpu`, ...)."""

    bench: str
    fs: str
    why: str


@dataclass(frozen=True)
class Output:
    """Everything one invocation of bench-crossings printed that matters."""

    runs: tuple[Run, ...]
    unavailable: tuple[Unavailable, ...]
    error: str | None  # the program gave up: `osv-bench error=WHY`
    done: bool  # it got to its last line


def _fields(text: str) -> dict[str, str]:
    fields = {}
    for word in text.split():
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise ParseError(f"not NAME=VALUE: {word!r}")
        fields[name] = value
    return fields


def parse_line(line: str) -> Run | Unavailable | str | None:
    """One console line: a Run, an Unavailable, `done`, `error=WHY`, or None for a
    line that is not bench-crossings' (the kernel's banner, say)."""
    line = line.strip()
    if not line.startswith(PREFIX):
        return None
    rest = line[len(PREFIX) :]
    if rest == "done":
        return "done"
    fields = _fields(rest)
    if "error" in fields:
        return "error=" + fields["error"]
    if "bench" not in fields or "fs" not in fields:
        raise ParseError(f"no bench= or fs=: {line!r}")
    if "unavailable" in fields:
        return Unavailable(fields["bench"], fields["fs"], fields["unavailable"])
    try:
        numbers = {name: int(fields[name]) for name in _RUN_FIELDS}
    except KeyError as missing:
        raise ParseError(f"no {missing.args[0]}=: {line!r}") from None
    except ValueError:
        raise ParseError(f"not a number: {line!r}") from None
    if numbers["per"] <= 0 or numbers["tsc"] <= 0 or numbers["samples"] <= 0:
        raise ParseError(f"per, tsc and samples must be positive: {line!r}")
    return Run(bench=fields["bench"], fs=fields["fs"], **numbers)


def parse_output(text: str) -> Output:
    """All of bench-crossings' lines in a console's text."""
    runs: list[Run] = []
    unavailable: list[Unavailable] = []
    error = None
    done = False
    for line in text.splitlines():
        parsed = parse_line(line)
        if isinstance(parsed, Run):
            runs.append(parsed)
        elif isinstance(parsed, Unavailable):
            unavailable.append(parsed)
        elif parsed == "done":
            done = True
        elif isinstance(parsed, str):
            error = parsed.removeprefix("error=")
    return Output(tuple(runs), tuple(unavailable), error, done)


@dataclass(frozen=True)
class Figure:
    """A per-operation figure over several runs: their median and spread."""

    value: float
    spread: float
    runs: int


def summarise(values: Sequence[float]) -> Figure:
    if not values:
        raise ValueError("no runs to summarise")
    return Figure(
        value=tidy(statistics.median(values)),
        spread=tidy(max(values) - min(values)),
        runs=len(values),
    )


def tidy(value: float) -> float:
    """Two decimals, and a whole number as an int (451.0 -> 451)."""
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def select(runs: Iterable[Run], bench: str, fs: str) -> list[Run]:
    return [r for r in runs if r.bench == bench and r.fs == fs]


def instructions(runs: Sequence[Run]) -> Figure:
    """Ticks per op under icount: guest instructions per operation."""
    return summarise([r.ticks_per_op for r in runs])


def nanoseconds(runs: Sequence[Run]) -> Figure:
    """ns per op, each run by its own clock-to-TSC ratio."""
    return summarise([r.ns_per_op for r in runs])
