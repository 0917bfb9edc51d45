"""Pretty-printers for the types a kernel developer prints most.

    struct thread_control_block  fields, with the self check and what the counter means
    struct tcb_data              kernel_tcb with the thread it belongs to
    struct syscall_record        the call strace-style, then its fields

Each printer reads the value's bytes once and decodes them with the same
decoders as the commands; a failure shows as <osv: ...> in the value.
"""

from __future__ import annotations

import gdb

from osvgdb.decode.args import CallFormatter
from osvgdb.decode.history import decode_ring
from osvgdb.gdb.target import Kernel, layout_of, reader


def _raw(value: gdb.Value) -> bytes:
    return value.bytes if hasattr(value, "bytes") else reader(int(value.address), value.type.sizeof)


class _Printer:
    def __init__(self, value: gdb.Value):
        self.value = value

    def children(self):
        for field in self.value.type.strip_typedefs().fields():
            if field.name:
                yield field.name, self.value[field.name]

    def to_string(self) -> str:
        try:
            return self.summary()
        except Exception as error:
            return f"<osv: {type(error).__name__}: {error}>"

    def summary(self) -> str:
        raise NotImplementedError


class TcbPrinter(_Printer):
    def summary(self) -> str:
        address = self.value.address
        self_ptr = int(self.value["self"])
        counter = int(self.value["kernel_tcb_counter"])
        app_tcb = int(self.value["app_tcb"])
        notes = []
        if address is not None:
            notes.append("self ok" if self_ptr == int(address) else f"self BAD ({self_ptr:#x})")
        if counter == 0:
            notes.append(f"in app code on app_tcb {app_tcb:#x}")
        elif counter == 1 and not app_tcb:
            notes.append("no FS switching (never set ARCH_SET_FS)")
        elif counter < 0:
            notes.append("counter NEGATIVE")
        else:
            notes.append(f"in the kernel, nesting {counter}")
        return "thread_control_block (" + ", ".join(notes) + ")"


class TcbDataPrinter(_Printer):
    def summary(self) -> str:
        kernel_tcb = int(self.value["kernel_tcb"]) & ((1 << 64) - 1)
        kernel = Kernel.get()
        for thread in kernel.threads():
            if thread.tcb == kernel_tcb:
                return f"tcb_data (kernel_tcb of tid {thread.tid} {thread.name})"
        return "tcb_data (kernel_tcb is no thread's TCB)" if kernel_tcb else "tcb_data (no thread)"


class SyscallRecordPrinter(_Printer):
    def summary(self) -> str:
        from osvgdb.model.syscalls import describe

        kernel = Kernel.get()
        layout = layout_of(self.value.type)
        records = decode_ring(_raw(self.value), layout, ring=int(self.value["cpu"]), count=1)
        if not records:
            return "syscall_record (unused slot)"
        record = records[0]
        text = describe(record, kernel, CallFormatter(reader), kernel.tsc_per_ms())
        return f"syscall_record #{record.seq} cpu{record.cpu} tid{record.tid}: {text['text']}"


_BY_TAG = {
    "thread_control_block": TcbPrinter,
    "tcb_data": TcbDataPrinter,
    "syscall_record": SyscallRecordPrinter,
}


def lookup(value: gdb.Value):
    t = value.type.strip_typedefs()
    if t.code != gdb.TYPE_CODE_STRUCT:
        return None
    printer = _BY_TAG.get(t.tag)
    return printer(value) if printer is not None else None
