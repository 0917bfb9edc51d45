"""Layouts from DWARF (pyelftools) and the codecs built on them."""

from __future__ import annotations

import struct

import pytest
from guest import KERNEL

from osvgdb.decode import DecodeError
from osvgdb.decode.layout import Field, Layout, layouts_from_elf


@pytest.mark.usefixtures("kernel")
def test_kernel_layouts_agree_with_the_entry_paths_offsets() -> None:
    layouts = layouts_from_elf(KERNEL, ["thread_control_block", "arch_cpu", "syscall_record"])
    tcb = layouts["thread_control_block"]
    # kernel/arch/x64/asm-offsets.h, which entry.S uses
    assert [tcb.offset(n) for n in ("self", "app_tcb", "kernel_tcb_counter")] == [0, 32, 40]
    assert tcb.fields["kernel_tcb_counter"].kind == "int"
    cpu = layouts["arch_cpu"]
    assert cpu.offset("tcb_data.kernel_tcb") == 0
    record = layouts["syscall_record"]
    assert record.fields["args"].count == 6 and record.fields["args"].size == 48


def test_codec_reads_named_members_and_tolerates_missing_ones() -> None:
    layout = Layout(
        "s",
        24,
        {
            "a": Field("a", 0, 8, "uint"),
            "b": Field("b", 8, 4, "int"),
            "c": Field("c", 12, 8, "uint", count=2),
        },
    )
    data = struct.pack("<QiIIxxxx", 7, -2, 3, 4)
    assert layout.codec(["a", "b", "c", "new"]).unpack(data) == {
        "a": 7,
        "b": -2,
        "c": (3, 4),
        "new": None,
    }
    with pytest.raises(DecodeError):
        layout.codec(["a"]).unpack(data[:6])
    with pytest.raises(ValueError):
        Layout("x", 8, {"a": Field("a", 0, 8, "uint"), "a.b": Field("a.b", 0, 4, "uint")}).codec(
            ["a", "a.b"]
        )
