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
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field

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


def completion_key(record: SyscallRecord) -> tuple[int, int]:
    """When a call returned (as the kernel's --strace prints them); calls that never
    return (exit, exit_group) at their entry."""
    return (record.tsc_exit if record.returned else record.tsc_entry, record.seq)


def completion_order(records: list[SyscallRecord]) -> list[SyscallRecord]:
    """In the order the calls returned."""
    return sorted(records, key=completion_key)


# --- following the rings of a running kernel ------------------------------------------

# Reads `count` slots of one ring from `first` (wrapping round): the used ones, each
# with its slot number (Kernel.ring_slots).
SlotReader = Callable[[int, int], list[SyscallRecord]]


@dataclass(frozen=True)
class Gap:
    """Calls a follower cannot show, and why: a reader prints each, never a silently
    shorter sequence."""

    ring: int
    count: int
    why: str


@dataclass
class _Pending:
    seq: int | None  # the call's seq; None while its record was torn when last read
    floor: int  # a record with a seq at or below this is an older call's


@dataclass
class _Ring:
    seen: int = 0  # records ever entered that the follower has looked at
    last_seq: int = 0  # the newest seq taken from this ring (seqs grow with the index)
    pending: dict[int, _Pending] = field(default_factory=dict)  # record index -> call


class RingFollower:
    """The calls of a running kernel's rings, each handed out once, when it returned.

    A reader (osv-trace) stops the guest now and then and calls `read` for every
    ring; each ring's record number `index` (0, 1, ... as entered) lives in slot
    `index % size` until `size` newer records overwrite it.  A call still in flight,
    or a record another CPU is writing (torn), is kept by its index and read again
    at the next stop.  Nothing is dropped without a `Gap`: records the ring wrapped
    over before a read, a call overwritten before it returned, a garbage record.
    A new slot that still holds an older call (a seq at or below the ring's newest,
    or nothing) is not yet claimed by its CPU: kept, never shown as a new call.
    """

    def __init__(self, never_return: Collection[int]):
        self.never_return = frozenset(never_return)
        self.rings: dict[int, _Ring] = {}
        self.last_key: tuple[int, int] | None = None  # the last call handed out

    def start(self, ring: int, header: RingHeader, read: SlotReader) -> None:
        """Begin after the records entered so far: those still in flight (or being
        written) are handed out when they return, as if followed from their entry."""
        state = self.rings[ring] = _Ring(seen=header.head)
        for record in read(0, header.used):
            index = header.head - 1 - (header.head - 1 - record.slot) % header.size
            state.last_seq = max(state.last_seq, record.seq)
            if record.state == "torn" or (
                record.state == "in-flight" and record.nr not in self.never_return
            ):
                state.pending[index] = _Pending(
                    record.seq if record.state == "in-flight" else None, floor=0
                )

    def read(
        self, ring: int, header: RingHeader, read: SlotReader
    ) -> tuple[list[SyscallRecord], list[Gap]]:
        """The calls of this ring that returned (or ended) since the last read, in
        index order, and the gaps found."""
        state = self.rings.setdefault(ring, _Ring())
        ready: list[SyscallRecord] = []
        gaps: list[Gap] = []
        for index in sorted(state.pending):
            pending = state.pending.pop(index)
            if header.head - index > header.size:
                what = f"call seq {pending.seq}" if pending.seq else f"record {index}"
                gaps.append(Gap(ring, 1, f"{what} was overwritten before it returned"))
                continue
            records = read(index % header.size, 1)
            self._take(state, index, records[0] if records else None, pending, ready, gaps)
        new = new_slots(state.seen, header.head, header.size)
        if new.lost:
            gaps.append(Gap(ring, new.lost, "the ring wrapped before osv-trace read it"))
        by_slot = {record.slot: record for record in read(new.first, new.count)}
        first_index = state.seen + new.lost
        for index in range(first_index, header.head):
            self._take(state, index, by_slot.get(index % header.size), None, ready, gaps)
        state.seen = header.head
        return ready, gaps

    def _take(
        self,
        state: _Ring,
        index: int,
        record: SyscallRecord | None,
        pending: _Pending | None,
        ready: list[SyscallRecord],
        gaps: list[Gap],
    ) -> None:
        expected = pending.seq if pending else None
        floor = pending.floor if pending else state.last_seq
        if record is None or record.state == "torn" or record.seq <= floor:
            # Being written, or not yet claimed (the slot still holds an older call or
            # nothing): the call is this index's all the same; come back for it.
            state.pending[index] = _Pending(expected, floor)
            return
        if expected is not None and record.seq != expected:
            gaps.append(Gap(record.ring, 1, f"call seq {expected} was overwritten before it returned"))
            return
        state.last_seq = max(state.last_seq, record.seq)
        if record.state == "garbage":
            gaps.append(Gap(record.ring, 1, f"record {index} is garbage ({record.problem})"))
        elif record.state == "in-flight" and record.nr not in self.never_return:
            state.pending[index] = _Pending(record.seq, floor)
        else:
            ready.append(record)

    def order(self, ready: list[SyscallRecord]) -> tuple[list[SyscallRecord], int]:
        """One stop's calls of every ring in the order they returned, and how many of
        them returned before a call handed out at an earlier stop (0 unless the
        CPUs' clocks disagree): a reader says so rather than print them as if in order."""
        records = completion_order(ready)
        late = 0
        if records and self.last_key is not None:
            late = sum(1 for r in records if completion_key(r) < self.last_key)
        if records:
            self.last_key = max(self.last_key or (0, 0), completion_key(records[-1]))
        return records, late

    def waiting(self) -> int:
        """Calls kept for a later read: in flight, or their records being written."""
        return sum(len(state.pending) for state in self.rings.values())
