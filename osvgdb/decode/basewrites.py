"""Instructions that write the FS or GS base, from their bytes.

What osv-last-write $fs_base / $gs_base stops at (osvgdb/gdb/replay.py): a
register, not memory, so no watchpoint can see it change; instead every
instruction in the kernel that can write it gets a breakpoint. Each is found by
its encoding (Intel SDM vol. 2), at an instruction boundary the caller knows:

    wrfsbase r32/r64   F3 [REX] 0F AE /2, mod 11: the base := the register (zero-extended)
    wrgsbase r32/r64   F3 [REX] 0F AE /3, mod 11
    wrmsr              0F 30: MSR ECX := EDX:EAX; a base only for ECX = IA32_FS_BASE
                       (C000_0100h) or IA32_GS_BASE (C000_0101h), known when it runs
    swapgs             0F 01 F8: GS base := IA32_KERNEL_GS_BASE (and back)

`candidates(code)` finds where these byte patterns occur (a plain scan, which
also finds them inside other instructions and data); `decode(instruction)` says
what one instruction, given whole from its first byte, writes. The same opcode
0F AE with another /reg or a memory operand is fxsave, rdfsbase, lfence...: not
a base write.
"""

from __future__ import annotations

from dataclasses import dataclass

MSR_FS_BASE = 0xC000_0100  # IA32_FS_BASE, the SDM's architectural MSR number
MSR_GS_BASE = 0xC000_0101  # IA32_GS_BASE
MSR_BASES = {MSR_FS_BASE: "fs_base", MSR_GS_BASE: "gs_base"}

# The general registers by ModRM.rm | REX.B << 3, 64-bit names (GDB's).
REGISTERS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")  # fmt: skip
_LEGACY_PREFIXES = frozenset([0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3])


@dataclass(frozen=True)
class BaseWrite:
    """What an instruction writes: `base` "fs_base" or "gs_base" (None for wrmsr, whose
    MSR is ECX when it runs); `source` the register holding the value ("rax"...), or
    "edx:eax" (wrmsr), or "k_gs_base" (swapgs); `width` 32 or 64 bits of it."""

    mnemonic: str
    base: str | None
    source: str
    width: int = 64

    def value(self, registers: dict[str, int]) -> int:
        """The base it writes, from the registers before it runs."""
        if self.source == "edx:eax":
            return ((registers["rdx"] & 0xFFFF_FFFF) << 32) | (registers["rax"] & 0xFFFF_FFFF)
        value = registers[self.source]
        return value & (0xFFFF_FFFF if self.width == 32 else (1 << 64) - 1)

    def writes(self, base: str, registers: dict[str, int]) -> bool:
        """Whether, with these registers, it writes `base` ("fs_base" or "gs_base")."""
        if self.base is not None:
            return self.base == base
        return MSR_BASES.get(registers["rcx"] & 0xFFFF_FFFF) == base


def decode(instruction: bytes) -> BaseWrite | None:
    """The base write `instruction` (all its bytes, from the first) makes, or None."""
    i = 0
    rep = False
    while i < len(instruction) and instruction[i] in _LEGACY_PREFIXES:
        rep |= instruction[i] == 0xF3
        i += 1
    rex = 0
    if i < len(instruction) and 0x40 <= instruction[i] <= 0x4F:
        rex = instruction[i]
        i += 1
    opcode = instruction[i : i + 3]
    if opcode[:2] == b"\x0f\x30":
        return BaseWrite("wrmsr", None, "edx:eax")
    if opcode == b"\x0f\x01\xf8":
        return BaseWrite("swapgs", "gs_base", "k_gs_base")
    if rep and opcode[:2] == b"\x0f\xae" and len(opcode) == 3:
        modrm = opcode[2]
        reg = (modrm >> 3) & 7
        if modrm >> 6 == 3 and reg in (2, 3):
            register = REGISTERS[(modrm & 7) | ((rex & 1) << 3)]
            base = "fs_base" if reg == 2 else "gs_base"
            return BaseWrite(f"wr{base[:2]}base", base, register, 64 if rex & 8 else 32)
    return None


def candidates(code: bytes) -> list[int]:
    """Offsets in `code` where a base-writing opcode's bytes occur (0F 30, 0F 01 F8, or
    0F AE with a register operand and /2 or /3), for the caller to check that an
    instruction starts at (or just before, by its prefixes) each."""
    found = []
    for i in range(len(code) - 1):
        if code[i] != 0x0F:
            continue
        second = code[i + 1]
        third = code[i + 2] if i + 2 < len(code) else -1
        if second == 0x30 or (second == 0x01 and third == 0xF8):
            found.append(i)
        elif second == 0xAE and third >= 0 and third >> 6 == 3 and (third >> 3) & 7 in (2, 3):
            found.append(i)
    return found
