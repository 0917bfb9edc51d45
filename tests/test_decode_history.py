"""The history decoder on records built byte by byte with the real kernel's layout."""

from __future__ import annotations

from guest import KERNEL

from osvgdb.decode import history
from osvgdb.decode.layout import layouts_from_elf


def test_a_first_use_being_written_is_torn_not_unused(kernel: None) -> None:
    """A CPU stopped while it enters a call into a slot never used before: seq is still
    0 but WRITING is set. Skipping it as unused lost that call from osv-trace (about one
    run in fifteen at -smp 2); it is torn, and a reader comes back for it."""
    record = layouts_from_elf(KERNEL, ["syscall_record"])["syscall_record"]
    flags = record.fields["flags"]
    unused = bytearray(record.size * 2)
    being_written = bytearray(record.size)
    being_written[flags.offset : flags.offset + flags.size] = history.WRITING.to_bytes(flags.size, "little")
    data = bytes(unused[: record.size]) + bytes(being_written)
    (torn,) = history.decode_ring(data, record, ring=0, count=2)
    assert (torn.slot, torn.state) == (1, "torn")
