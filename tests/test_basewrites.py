"""decode/basewrites.py against GNU as: the bytes of each instruction that writes (or does not
write) the FS or GS base, assembled by the host's assembler, not by us."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from osvgdb.decode import basewrites


def assemble(tmp_path: Path, text: str) -> list[bytes]:
    """Each line of TEXT assembled on its own (GNU as, AT&T syntax), as bytes."""
    out = []
    for i, line in enumerate(text.strip().splitlines()):
        source = tmp_path / f"i{i}.s"
        obj = tmp_path / f"i{i}.o"
        raw = tmp_path / f"i{i}.bin"
        source.write_text(f".text\n{line}\n")
        subprocess.run(["as", "--64", "-o", str(obj), str(source)], check=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
        out.append(raw.read_bytes())
    return out


WRITES = {
    "wrfsbase %rax": ("wrfsbase", "fs_base", "rax", 64),
    "wrfsbase %r12": ("wrfsbase", "fs_base", "r12", 64),
    "wrfsbase %edi": ("wrfsbase", "fs_base", "rdi", 32),
    "wrgsbase %rbx": ("wrgsbase", "gs_base", "rbx", 64),
    "wrgsbase %r15d": ("wrgsbase", "gs_base", "r15", 32),
    "wrmsr": ("wrmsr", None, "edx:eax", 64),
    "swapgs": ("swapgs", "gs_base", "k_gs_base", 64),
}
NOT_WRITES = ["rdfsbase %rax", "rdgsbase %r9", "fxsave (%rax)", "lfence", "rdmsr",
              "movq %rax, %fs:0", "xsave (%rdi)", "clflush (%rax)"]  # fmt: skip


def test_every_base_write_is_decoded(tmp_path: Path) -> None:
    for text, code in zip(WRITES, assemble(tmp_path, "\n".join(WRITES))):
        found = basewrites.decode(code)
        assert found is not None, text
        assert (found.mnemonic, found.base, found.source, found.width) == WRITES[text], text
        assert basewrites.candidates(code), text


def test_other_instructions_of_the_same_opcodes_are_not(tmp_path: Path) -> None:
    for text, code in zip(NOT_WRITES, assemble(tmp_path, "\n".join(NOT_WRITES))):
        assert basewrites.decode(code) is None, text


def test_what_is_written_comes_from_the_registers() -> None:
    registers = {"rax": 0x1111_2222_3333_4444, "rdx": 0xAAAA_BBBB_0000_0001, "rcx": basewrites.MSR_FS_BASE,
                 "rdi": 0xFFFF_FFFF_8000_0000, "k_gs_base": 7}  # fmt: skip
    msr = basewrites.BaseWrite("wrmsr", None, "edx:eax")
    assert msr.value(registers) == 0x0000_0001_3333_4444
    assert msr.writes("fs_base", registers) and not msr.writes("gs_base", registers)
    assert not msr.writes("fs_base", {**registers, "rcx": 0xC000_0080})  # EFER
    assert basewrites.BaseWrite("wrfsbase", "fs_base", "rdi", 32).value(registers) == 0x8000_0000
    assert basewrites.BaseWrite("swapgs", "gs_base", "k_gs_base").value(registers) == 7


@pytest.mark.parametrize("code", [b"", b"\x0f", b"\xf3\x48\x0f", b"\xf3\x0f\xae"])
def test_short_bytes_are_no_write(code: bytes) -> None:
    assert basewrites.decode(code) is None
    basewrites.candidates(code)
