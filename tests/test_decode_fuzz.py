"""The pure decoders on corrupted and random bytes: they return records or raise
DecodeError, nothing else, whatever they are fed."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.decode import DecodeError, auxv, history, tcb
from osvgdb.decode.args import SIGNATURES, CallFormatter, quote
from osvgdb.decode.layout import Field, Layout

RECORD = Layout(
    "syscall_record",
    120,
    {
        "seq": Field("seq", 0, 8, "uint"),
        "tsc_entry": Field("tsc_entry", 8, 8, "uint"),
        "tsc_exit": Field("tsc_exit", 16, 8, "uint"),
        "args": Field("args", 24, 48, "uint", 6),
        "ret": Field("ret", 72, 8, "int"),
        "rip": Field("rip", 80, 8, "uint"),
        "fs_base": Field("fs_base", 88, 8, "uint"),
        "kernel_tcb_counter": Field("kernel_tcb_counter", 96, 8, "int"),
        "nr": Field("nr", 104, 4, "uint"),
        "cpu": Field("cpu", 108, 4, "uint"),
        "tid": Field("tid", 112, 4, "uint"),
        "flags": Field("flags", 116, 4, "uint"),
    },
)
HEADER = Layout(
    "syscall_history",
    16,
    {
        "head": Field("head", 0, 8, "uint"),
        "size": Field("size", 8, 4, "uint"),
        "record_size": Field("record_size", 12, 4, "uint"),
    },
)
THREAD = Layout(
    "thread",
    64,
    {
        "tid": Field("tid", 0, 4, "int"),
        "state": Field("state", 4, 4, "uint"),
        "cpu": Field("cpu", 8, 4, "int"),
        "name": Field("name", 12, 16, "bytes"),
        "tcb": Field("tcb", 32, 8, "uint"),
        "syscall_stack": Field("syscall_stack", 48, 8, "uint"),
        "syscall_stack_size": Field("syscall_stack_size", 56, 8, "uint"),
    },
)
TCB = Layout(
    "thread_control_block",
    48,
    {
        name: Field(name, 8 * i, 8, "int" if name == "kernel_tcb_counter" else "uint")
        for i, name in enumerate(tcb.TCB_FIELDS)
    },
)
STATES = {0: "running", 1: "ready"}


def record_bytes(seq, nr, flags, cpu=0, entry=10, exit_=20, ret=0, args=(0,) * 6) -> bytes:
    return struct.pack("<QQQ6QqQQqIIII", seq, entry, exit_, *args, ret, 0, 0, 1, nr, cpu, 1, flags)


def test_ring_states() -> None:
    data = b"".join(
        [
            record_bytes(1, 12, history.DONE),
            record_bytes(0, 0, 0),
            record_bytes(3, 1, history.IN_FLIGHT),
            record_bytes(4, 1, history.WRITING),
            record_bytes(5, 1, 0x40),
            record_bytes(2, 1, history.DONE, cpu=3),
        ]
    )
    records = history.decode_ring(data, RECORD, ring=0, count=6, max_seq=10)
    assert [(r.seq, r.state) for r in records] == [
        (1, "done"),
        (3, "in-flight"),
        (4, "torn"),
        (5, "garbage"),
        (2, "garbage"),
    ]
    merged = history.merge(
        [records, history.decode_ring(record_bytes(6, 0, 4, cpu=1), RECORD, ring=1, count=1)]
    )
    assert [r.seq for r in merged] == [1, 2, 3, 4, 5, 6]


@settings(max_examples=300)
@given(st.binary(max_size=600), st.integers(0, 6), st.integers(0, 3), st.integers(0, 20))
def test_ring_never_raises_anything_else(data: bytes, count: int, ring: int, max_seq: int) -> None:
    try:
        records = history.decode_ring(data, RECORD, ring=ring, count=count, max_seq=max_seq)
    except DecodeError:
        return
    formatter = CallFormatter(lambda address, length: data[:length] if address < 1 << 40 else None)
    for record in records:
        assert record.state in ("done", "in-flight", "torn", "garbage")
        formatter.arguments("write" if record.nr % 2 else "openat", record.args, record.ret)


@given(st.binary(max_size=40), st.integers(0, 2000))
def test_header_never_raises_anything_else(data: bytes, capacity: int) -> None:
    try:
        header = history.decode_header(data, HEADER, capacity=capacity, record_layout=RECORD)
    except DecodeError:
        return
    assert header.used <= header.size


@given(st.binary(max_size=2048))
def test_initial_stack_never_raises_anything_else(data: bytes) -> None:
    try:
        stack = auxv.decode_initial_stack(data)
    except DecodeError:
        return
    assert stack.size <= len(data) and stack.auxv[-1][0] == auxv.AT_NULL


def test_initial_stack_layout() -> None:
    words = [2, 0x100, 0x200, 0, 0x300, 0, 3, 0x400040, 25, 0x7FF0, 0, 0]
    stack = auxv.decode_initial_stack(struct.pack(f"<{len(words)}Q", *words) + b"junk")
    assert (stack.argc, stack.argv, stack.envp) == (2, [0x100, 0x200], [0x300])
    assert stack.auxv == [(3, 0x400040), (25, 0x7FF0), (0, 0)]


@given(st.binary(max_size=512))
def test_elf_headers_never_raise_anything_else(data: bytes) -> None:
    for attempt in (data, b"\x7fELF\x02" + data):
        try:
            auxv.elf_phdr_vaddr(attempt)
        except DecodeError:
            pass
    try:
        auxv.parse_phdrs(data, len(data) // 56)
    except DecodeError:
        pass


@given(st.binary(min_size=64, max_size=64), st.one_of(st.none(), st.binary(max_size=60)))
def test_thread_never_raises_anything_else(thread_bytes: bytes, tcb_bytes: bytes | None) -> None:
    try:
        info = tcb.decode_thread(0x1000, thread_bytes, THREAD, tcb_bytes, TCB, STATES)
    except DecodeError:
        return
    tcb.thread_problems(info, {0x1000})
    cpu = tcb.CpuInfo(
        index=0,
        vcpu=1,
        gs_base=0,
        fs_base=info.tcb,
        rip=0x500,
        rsp=0,
        kernel_tcb=info.tcb,
        current=0x1000,
        counter=info.counter,
    )
    cpu.fs_owner = tcb.fs_owner(cpu.fs_base, cpu.kernel_tcb, [info])
    cpu.where = tcb.where(cpu, info, tcb.CodeRanges(kernel=(0x400, 0x600)), [])
    tcb.cpu_verdict(cpu, info)


def test_a_thread_blocked_before_it_ever_ran_is_new() -> None:
    """thread_create leaves a thread blocked (cpu -1) until sched_make_ready: caught in
    between (a clone on the other vCPU), it waits on nothing, so it is not shown blocked."""
    states = {**STATES, 2: "blocked"}

    def thread(state: int, cpu: int) -> str:
        data = struct.pack("<iIi16s4xQ8xQQ", 7, state, cpu, b"thread", 0x5000, 0x6000, 0x10000)
        return tcb.decode_thread(0x1000, data, THREAD, None, TCB, states).state

    assert thread(2, -1) == "new"
    assert thread(2, 1) == "blocked"  # it ran, then slept
    assert thread(1, -1) == "ready"  # made ready, not yet run


@given(
    st.sampled_from(sorted(SIGNATURES)),
    st.lists(st.integers(0, (1 << 64) - 1), min_size=6, max_size=6),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.binary(max_size=64),
)
def test_formatter_never_raises(name: str, args: list[int], ret: int, memory: bytes) -> None:
    def read(address: int, length: int) -> bytes | None:
        if address % 3 == 0:
            raise OSError("unreadable")
        return (memory * (length // max(len(memory), 1) + 1))[:length] if memory else None

    formatter = CallFormatter(read, limit=16)
    shown, _ = formatter.arguments(name, tuple(args), ret)
    assert len(shown) == len(SIGNATURES[name][0])
    formatter.result(name, ret)


def test_verdict_rules() -> None:
    main = tcb.ThreadInfo(
        0xA, 1, "main", "running", 0, tcb=0x1000, tcb_self=0x1000, app_tcb=0x4000, counter=0
    )
    ranges = tcb.CodeRanges(kernel=(0x40000000, 0x50000000))

    def verdict(fs: int, rip: int, counter: int, kernel_tcb: int = 0x1000) -> list[str]:
        main.counter = counter
        cpu = tcb.CpuInfo(
            0, 1, 0x4021F040, fs, rip, 0x7000, kernel_tcb=kernel_tcb, current=0xA, counter=counter
        )
        cpu.where = tcb.where(cpu, main, ranges, [])
        return tcb.cpu_verdict(cpu, main)

    assert verdict(0x4000, 0x401000, 0) == []
    assert verdict(0x1000, 0x40001000, 1) == []
    assert verdict(0x4000, 0x40001000, 1)[0].startswith("kernel-fs")
    assert verdict(0x1000, 0x40001000, 0)[0].startswith("kernel-count")
    assert verdict(0x1000, 0x401000, 0)[0].startswith("app-fs")
    assert verdict(0x4000, 0x401000, 2)[0].startswith("app-count")
    assert verdict(0x4000, 0x401000, 0, kernel_tcb=0x2000)[0].startswith("kernel-tcb")


def test_strace_quoting() -> None:
    assert quote(b'a"\\\n\x00\xff') == '"a\\"\\\\\\n\\0\\377"'
    assert quote(b"abc", truncated=True) == '"abc"...'
    # strace's octal: three digits only where a digit follows
    assert quote(b"\x012a\n\t\x7f\x005") == '"\\0012a\\n\\t\\177\\0005"'
    assert quote(b"\x7fELF\x02\x01") == '"\\177ELF\\2\\1"'
    assert quote(b"\x2a\xe7", hex_bytes=True) == '"\\x2a\\xe7"'
