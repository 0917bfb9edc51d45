"""x86-64 syscall numbers and names.

Decision: the names come from the host's <asm/unistd_64.h> at run time, the
same header the kernel's own `syscall_names` table is generated from at build
time (kernel/gen-syscall-names.sh), so nobody keeps a copy in sync.  Where
that header is missing, the GDB side reads the kernel's `syscall_names` array
out of the ELF instead (`SyscallTable(names)`).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

UNISTD_HEADERS = (
    Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    Path("/usr/include/asm/unistd_64.h"),
)

_DEFINE = re.compile(r"^#define\s+__NR_([a-z0-9_]+)\s+(\d+)\s*$", re.MULTILINE)


def parse_unistd(text: str) -> dict[int, str]:
    """{number: name} from the text of an asm/unistd_64.h."""
    return {int(number): name for name, number in _DEFINE.findall(text)}


class SyscallTable:
    def __init__(self, names: dict[int, str]):
        self.names = dict(names)
        self.numbers = {name: number for number, name in self.names.items()}

    def name(self, nr: int) -> str:
        """The syscall's name, or `syscall_N` for a number Linux does not define."""
        return self.names.get(nr) or f"syscall_{nr}"

    def number(self, name: str) -> int | None:
        """The number for a name (also accepts `syscall_N` and plain digits)."""
        if name in self.numbers:
            return self.numbers[name]
        digits = name.removeprefix("syscall_")
        return int(digits) if digits.isdigit() else None

    def __len__(self) -> int:
        return len(self.names)


@cache
def host_table() -> SyscallTable | None:
    """The table from the host's header, or None when no header is installed."""
    for header in UNISTD_HEADERS:
        try:
            names = parse_unistd(header.read_text())
        except OSError:
            continue
        if names:
            return SyscallTable(names)
    return None
