"""The kernel's per-CPU syscall history rings (kernel/include/syscall_history.h).

Each CPU owns `struct syscall_history {head, size, record_size, records[]}`;
a record's `seq` is global (from 1, 0 marks an unused slot), so merging the
rings by seq gives the machine's order.  A reader sees each record in one of
these states:

    done       returned: ret and tsc_exit are valid
    in-flight  entered, not returned (the call a thread is in right now)
    torn       SYSCALL_RECORD_WRITING: being written, fields may be mixed
    garbage    inconsistent (unknown flags, a seq beyond the global counter,
               a cpu that is not the ring's, an exit before the entry)

A record also carries `captures`: the memory its pointer arguments pointed at
as the call saw it (osvgdb.decode.args.Capture), which the formatter prefers
over memory as it is now.

`decode_header` and `decode_ring` raise only DecodeError.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass

from osvgdb.decode import DecodeError, signed64
from osvgdb.decode.args import Capture
from osvgdb.decode.layout import Layout

WRITING = 1
IN_FLIGHT = 2
DONE = 4

HEADER_FIELDS = ("head", "size", "record_size")
RECORD_FIELDS = (
    "seq",
    "tsc_entry",
    "tsc_exit",
    "args",
    "ret",
    "rip",
    "fs_base",
    "kernel_tcb_counter",
    "nr",
    "cpu",
    "tid",
    "flags",
    "exit_cpu",
    "capture_addr",
    "capture_len",
    "capture_data",
)


@dataclass(frozen=True)
class RingHeader:
    head: int
    size: int
    record_size: int

    @property
    def used(self) -> int:
        """How many slots hold records: all of them once the ring wrapped."""
        return min(self.head, self.size)


@dataclass
class SyscallRecord:
    seq: int
    tsc_entry: int
    tsc_exit: int
    args: tuple[int, ...]
    ret: int
    rip: int
    fs_base: int
    kernel_tcb_counter: int
    nr: int
    cpu: int
    tid: int
    flags: int
    ring: int
    slot: int
    state: str
    exit_cpu: int | None = None
    problem: str | None = None
    captures: tuple[Capture, ...] = ()

    @property
    def returned(self) -> bool:
        return self.state == "done"

    def duration_ms(self, tsc_per_ms: int) -> float | None:
        if not self.returned or tsc_per_ms <= 0:
            return None
        return (self.tsc_exit - self.tsc_entry) / tsc_per_ms

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["captures"] = [
            {"address": c.address, "data": c.data.hex()} for c in self.captures
        ]
        return data


def decode_header(
    buf: bytes, layout: Layout, *, capacity: int, record_layout: Layout
) -> RingHeader:
    """The ring's head, size and record size, checked against the layouts:
    a ring whose header disagrees with DWARF is not decoded at all."""
    values = layout.codec(HEADER_FIELDS).unpack(buf)
    head, size, record_size = values["head"], values["size"], values["record_size"]
    if head is None:
        raise DecodeError("struct syscall_history has no member head")
    size = capacity if size is None else size
    record_size = record_layout.size if record_size is None else record_size
    if size == 0 and head == 0:
        return RingHeader(0, capacity, record_layout.size)  # before syscall_history_init
    if size != capacity:
        raise DecodeError(f"ring size {size} is not the array's {capacity}")
    if record_size != record_layout.size:
        raise DecodeError(f"record size {record_size} is not DWARF's {record_layout.size}")
    return RingHeader(head, size, record_size)


def _state(values: dict[str, object], ring: int, max_seq: int | None) -> tuple[str, str | None]:
    flags = values["flags"]
    if flags == WRITING:
        return "torn", "being written (SYSCALL_RECORD_WRITING)"
    if flags not in (IN_FLIGHT, DONE):
        return "garbage", f"unknown flags {flags:#x}"
    if max_seq is not None and values["seq"] > max_seq:
        return "garbage", f"seq {values['seq']} is beyond syscall_seq {max_seq}"
    if values["cpu"] is not None and values["cpu"] != ring:
        return "garbage", f"cpu {values['cpu']} in CPU {ring}'s ring"
    if flags == DONE and values["tsc_exit"] < values["tsc_entry"]:
        return "garbage", "returned before it was entered (tsc)"
    return ("done" if flags == DONE else "in-flight"), None


def _captures(values: dict[str, object]) -> tuple[Capture, ...] | None:
    """The record's captured regions, one after another in capture_data; None when
    their lengths do not fit the data (a garbage record)."""
    addresses, lengths, data = values["capture_addr"], values["capture_len"], values["capture_data"]
    if not isinstance(addresses, tuple) or not isinstance(lengths, tuple):
        return ()  # a kernel without captures
    if not isinstance(data, bytes):
        return ()
    captures, offset = [], 0
    for address, length in zip(addresses, lengths, strict=False):
        if not length:
            break
        if offset + length > len(data):
            return None
        captures.append(Capture(address, data[offset : offset + length]))
        offset += length
    return tuple(captures)


def decode_ring(
    buf: bytes, record_layout: Layout, *, ring: int, count: int, max_seq: int | None = None
) -> list[SyscallRecord]:
    """The used records among the first `count` slots of buf, in slot order."""
    codec = record_layout.codec(RECORD_FIELDS)
    if "seq" not in record_layout.fields or "flags" not in record_layout.fields:
        raise DecodeError("struct syscall_record lacks seq or flags")
    records = []
    for slot, values in enumerate(codec.unpack_array(buf, count)):
        if not values["seq"] and not values["flags"]:
            continue  # never used; a first use being written has seq 0 and WRITING: torn
        state, problem = _state(values, ring, max_seq)
        captures = _captures(values)
        if captures is None:
            state, problem, captures = "garbage", "captured lengths exceed capture_data", ()
        args = values["args"] if isinstance(values["args"], tuple) else ()
        records.append(
            SyscallRecord(
                seq=values["seq"],
                tsc_entry=values["tsc_entry"] or 0,
                tsc_exit=values["tsc_exit"] or 0,
                args=tuple(args),
                ret=signed64(values["ret"] or 0),
                rip=values["rip"] or 0,
                fs_base=values["fs_base"] or 0,
                kernel_tcb_counter=signed64(values["kernel_tcb_counter"] or 0),
                nr=values["nr"] or 0,
                cpu=ring if values["cpu"] is None else values["cpu"],
                tid=values["tid"] if values["tid"] is not None else -1,
                flags=values["flags"],
                exit_cpu=values["exit_cpu"],
                ring=ring,
                slot=slot,
                state=state,
                problem=problem,
                captures=captures,
            )
        )
    return records


def merge(rings: list[list[SyscallRecord]]) -> list[SyscallRecord]:
    """All rings' records in global sequence order."""
    return list(heapq.merge(*(sorted(r, key=lambda x: x.seq) for r in rings), key=lambda x: x.seq))


@dataclass(frozen=True)
class NewSlots:
    """Which of a ring's slots hold records entered since a reader last looked."""

    first: int  # the first new slot
    count: int  # how many, at most the ring's size
    lost: int  # entered and overwritten before the reader came back


def new_slots(seen: int, head: int, size: int) -> NewSlots:
    """Records `seen`..`head` of a ring (counts of records ever entered): the slots
    to read, and how many were lost because the ring wrapped over them."""
    if head < seen:
        raise DecodeError(f"ring head went back from {seen} to {head}")
    lost = max(0, head - seen - size)
    return NewSlots((seen + lost) % size, head - seen - lost, lost)


def completion_order(records: list[SyscallRecord]) -> list[SyscallRecord]:
    """In the order the calls returned (as the kernel's --strace prints them): by exit
    TSC, calls that never return (exit, exit_group) at their entry."""
    return sorted(records, key=lambda r: (r.tsc_exit if r.returned else r.tsc_entry, r.seq))
