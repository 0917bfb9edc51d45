"""The filters every view of events and records takes (--cpu N, --tid T, syscall
names), declared once and checked once: a filter no event can ever match is refused
with one line naming the option, before anything is shown or watched."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection

from osvgdb.model.kernel import Kernel


class FilterError(Exception):
    """A filter no event can ever match: the message names the option."""


def add_filter_arguments(
    parser: argparse.ArgumentParser, *, cpu: str, tid: str, number: Callable[[str], int] = int
) -> None:
    """--cpu N and --tid T, as every command that filters by them takes them (check
    them with check_filters). `number` parses them (GDB's commands take expressions)."""
    parser.add_argument("--cpu", type=number, metavar="N", help=cpu)
    parser.add_argument("--tid", type=number, metavar="T", help=tid)


def check_filters(
    kernel: Kernel, cpu: int | None, tid: int | None, numbers: Collection[int] | None = None
) -> None:
    """Refuse, with FilterError, the event filters that could never match.

    cpu: a CPU the guest has; tid: a thread id, which starts at 0 (the kernel's
    boot thread) or, for syscalls, at 1 (only app threads make them); numbers:
    for syscall filters, the syscall numbers (empty: every syscall), each in the
    syscall table; None for interrupt and exception filters.
    """
    if cpu is not None:
        # nr_cpus counts the CPUs the kernel has started (1 until it has); QEMU's
        # vCPUs are all there from the first instruction.
        count = max(kernel.nr_cpus(), kernel.target.vcpu_count())
        if not 0 <= cpu < count:
            has = "only CPU 0" if count == 1 else f"CPUs 0-{count - 1}"
            raise FilterError(f"--cpu {cpu}: the guest has {has}")
    if tid is not None:
        if numbers is not None and tid < 1:
            raise FilterError(
                f"--tid {tid}: only app threads make syscalls, and their tids start at 1"
            )
        if tid < 0:
            raise FilterError(f"--tid {tid}: tids start at 0 (the kernel's boot thread)")
    if numbers:
        highest = max(kernel.syscalls.names)
        for number in sorted(numbers):
            if not 0 <= number <= highest:
                raise FilterError(f"syscall {number} is beyond the syscall table (0-{highest})")


def syscall_numbers(kernel: Kernel, names: Collection[str]) -> set[int]:
    """The numbers of syscall names; FilterError names an unknown one."""
    numbers = set()
    for name in names:
        number = kernel.syscalls.number(name)
        if number is None:
            raise FilterError(f"unknown syscall name {name!r}")
        numbers.add(number)
    return numbers
