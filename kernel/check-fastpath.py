#!/usr/bin/env python3
"""Prove that lazy's fast path (core/fastpath.c, entry.S's syscall_fast_path) uses no %fs.

Usage: check-fastpath.py KERNEL.ELF

The fast syscalls run with FS still the app's: any %fs-relative access there (a
kernel __thread variable, current_thread) would read the app's memory. This
disassembles the kernel and walks everything the roots below can execute: each
function's instructions, every direct call, and every jump into another function
(a tail call). It fails, naming the function and instruction, on an %fs operand or
an indirect call or jump, which it could not follow, but for a switch's jump table
(`jmp *TABLE(,%reg,8)`), whose entries all point into its own function (checked
in the ELF), which is scanned whole anyway. The exits are the exceptions:
syscall_fast_path's jumps back into syscall_entry (the slow path, which switches FS
first, and the pops to syscall_return) and trap_fast_path's into trap_common and
trap_exit are where the fast paths end.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys

ROOTS = (
    "syscall_fast_path",
    "syscall_fast_handler",
    "trap_fast_path",
    "trap_fast_handler",
    "fscheck_syscall_return",
    "fscheck_trap_return",
)
# Where the fast paths leave for code that is not part of them (entry.S): the slow path,
# which switches FS before any C, and the pops to syscall_return / trap_return.
STUBS = {"syscall_fast_path", "trap_fast_path"}
EXITS = {"syscall_entry", "syscall_exit", "trap_common", "trap_exit"}
JUMP_TABLE = re.compile(r"^jmp\s+\*0x([0-9a-f]+)\(,%r[a-z0-9]+,8\)$")
FUNCTION = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")
INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(.*)$")
TARGET = re.compile(r"^(?:call|jmp|j[a-z]+)\s+[0-9a-f]+ <([^>+]+)(\+0x[0-9a-f]+)?>")


class Image:
    """The loaded sections of an ELF64 file, to read a jump table's entries."""

    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.data = f.read()
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", self.data, 0x3A)
        self.sections = []
        for i in range(shnum):
            header = shoff + i * shentsize
            _, kind, _, addr, offset, size = struct.unpack_from("<IIQQQQ", self.data, header)
            if kind == 1 and addr:  # SHT_PROGBITS, loaded
                self.sections.append((addr, offset, size))

    def u64(self, address: int) -> int | None:
        for addr, offset, size in self.sections:
            if addr <= address and address + 8 <= addr + size:
                return struct.unpack_from("<Q", self.data, offset + address - addr)[0]
        return None


def disassemble(elf: str) -> dict[str, list[str]]:
    text = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", "-M", "att", elf],
        check=True, capture_output=True, text=True,
    ).stdout
    functions: dict[str, list[tuple[int, str]]] = {}
    current = None
    for line in text.splitlines():
        if match := FUNCTION.match(line):
            current = functions.setdefault(match.group(2), [])
        elif current is not None and (match := INSTRUCTION.match(line)):
            current.append((int(match.group(1), 16), match.group(2).split("#")[0].strip()))
    return functions


def jump_table_stays_inside(image: Image, table: int, code: list[tuple[int, str]]) -> bool:
    """A switch's table: its first entries (up to the first that is not code of this
    function) all lie in the function, and there is at least one."""
    start, end = code[0][0], code[-1][0] + 1
    first = image.u64(table)
    return first is not None and start <= first < end


def check(functions: dict[str, list[tuple[int, str]]], image: Image) -> list[str]:
    problems, seen, todo = [], set(), list(ROOTS)
    for root in ROOTS:
        if root not in functions:
            problems.append(f"{root}: not in the kernel")
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for _, insn in functions[name]:
            mnemonic = insn.split()[0] if insn else ""
            if "%fs" in insn and not mnemonic.startswith(("rdfsbase", "wrfsbase")):
                problems.append(f"{name}: uses %fs: {insn}")
            table = JUMP_TABLE.match(insn)
            if table and jump_table_stays_inside(image, int(table.group(1), 16), functions[name]):
                continue
            if mnemonic.startswith(("call", "jmp")) and "*" in insn:
                problems.append(f"{name}: indirect {mnemonic} it cannot follow: {insn}")
            if match := TARGET.match(insn):
                target, offset = match.group(1), match.group(2)
                if target == name or target in EXITS and name in STUBS:
                    continue
                if offset and not mnemonic.startswith("call"):
                    problems.append(f"{name}: jumps into the middle of {target}: {insn}")
                todo.append(target)
    return problems


def main() -> int:
    functions = disassemble(sys.argv[1])
    problems = check(functions, Image(sys.argv[1]))
    for problem in problems:
        print(f"check-fastpath: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
