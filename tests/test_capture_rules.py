"""The kernel's capture_rules[] (kernel/core/syscall_history.c) and the decoders'
SIGNATURES (osvgdb/decode/args.py) name the same pointer arguments: what the
debugger shows from a capture is what the kernel captured. Read from the built
kernel ELF with pyelftools."""

from __future__ import annotations

from elftools.elf.elffile import ELFFile
from guest import KERNEL

from osvgdb.decode.args import SIGNATURES, STRUCT_KINDS
from osvgdb.decode.syscalls import host_table
from osvgdb.decode.layout import layouts_from_elf

# enum syscall_capture_kind -> the decoders' argument kinds
KINDS = {1: "s", 2: "b", 3: "B", 4: "iov", 5: "IOV", 6: "struct", 7: "STRUCT"}
RULES_PER_CALL = 2


def kernel_rules() -> dict[str, set[str]]:
    layout = layouts_from_elf(KERNEL, ["syscall_capture_rule"])["syscall_capture_rule"]
    with open(KERNEL, "rb") as f:
        elf = ELFFile(f)
        (symbol,) = elf.get_section_by_name(".symtab").get_symbol_by_name("capture_rules")
        section = elf.get_section(symbol["st_shndx"])
        start = symbol["st_value"] - section["sh_addr"]
        data = section.data()[start : start + symbol["st_size"]]
    codec = layout.codec(("kind", "arg", "size_arg"))
    table = host_table()
    assert table is not None
    rules: dict[str, set[str]] = {}
    entries = codec.unpack_array(data, len(data) // layout.size)
    for index, entry in enumerate(entries):
        if not entry["kind"]:
            continue
        name = table.name(index // RULES_PER_CALL)
        kind = KINDS[entry["kind"]]
        text = f"{entry['arg']}:{kind}" if kind == "s" else f"{entry['arg']}:{kind}:{entry['size_arg']}"
        rules.setdefault(name, set()).add(text)
    return rules


def decoder_rules() -> dict[str, set[str]]:
    rules: dict[str, set[str]] = {}
    for name, (kinds, _) in SIGNATURES.items():
        for index, kind in enumerate(kinds):
            if kind == "s" or kind.split(":")[0] in ("b", "B", "iov", "IOV"):
                rules.setdefault(name, set()).add(f"{index}:{kind}")
            elif kind.lower() in STRUCT_KINDS:  # a struct of fixed size: the kernel's rule has it
                size = STRUCT_KINDS[kind.lower()][0]
                struct = "STRUCT" if kind.isupper() else "struct"
                rules.setdefault(name, set()).add(f"{index}:{struct}:{size}")
    return rules


def test_kernel_captures_what_the_decoders_show(kernel: None) -> None:
    assert kernel_rules() == decoder_rules()
