"""osv-bt's pure half (osvgdb.model.bt) on known threads and CPUs: which thread each
option picks, the one-line errors, the data and the text."""

from __future__ import annotations

import re

import pytest

from osvgdb.decode.tcb import CpuInfo, ThreadInfo
from osvgdb.model.bt import ThreadBacktrace, bt_data, format_bt, select_threads
from osvgdb.model.target import TargetError
from osvgdb.model.unwind import Backtrace, Frame

THREADS = [
    ThreadInfo(0x1000, 0, "boot", "running", 0, 0),
    ThreadInfo(0x2000, 1, "main", "blocked", 0, 0),
    ThreadInfo(0x3000, 2, "worker", "running", 1, 0),
    ThreadInfo(0x4000, -1, "?", "?", -1, 0, problems=["unreadable"]),
]
CPUS = [
    CpuInfo(0, vcpu=1, gs_base=0x10, fs_base=0, rip=0, rsp=0, current=0x1000),
    CpuInfo(1, vcpu=2, gs_base=0x20, fs_base=0, rip=0, rsp=0, current=0x3000),
    CpuInfo(None, vcpu=3, gs_base=0, fs_base=0, rip=0, rsp=0),
]


def tids(**options) -> list[int]:
    return [t.tid for t in select_threads(THREADS, CPUS, **options)]


def test_each_option_picks_its_threads() -> None:
    assert tids(vcpu=2) == [2]
    assert tids(cpu=0) == [0]
    assert tids(tid=1) == [1]
    assert tids(all_threads=True) == [0, 1, 2]  # not the thread that could not be read


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tid": 9}, "no thread 9"),
        ({"cpu": 7}, "no CPU 7"),
        ({"vcpu": 5}, "no vCPU 5"),
        ({"vcpu": 3}, "vCPU 3 is not a started CPU (GS base 0x0)"),
    ],
)
def test_what_is_not_there_is_one_line(options: dict, message: str) -> None:
    with pytest.raises(TargetError, match=f"^{re.escape(message)}$"):
        select_threads(THREADS, CPUS, **options)


def report() -> list[ThreadBacktrace]:
    crossing = Frame(0x4020016C, "<syscall futex>", 172, "entry.S", 191, "kernel", "crossing")
    app = Frame(0x401770, "worker", 48, None, None, "app")
    on_cpu = Backtrace([crossing, app], complete=True, tid=2, source="vcpu 2")
    blocked = Backtrace(
        [], stopped="no saved context (kernel_rsp is 0)", tid=1, source="kernel_rsp"
    )
    return [
        ThreadBacktrace(THREADS[2], CPUS[1], on_cpu),
        ThreadBacktrace(THREADS[1], None, blocked),
    ]


def test_data_has_the_mi_shape() -> None:
    worker, main = bt_data(report())["backtraces"]
    assert worker == {
        "tid": 2, "name": "worker", "state": "running", "cpu": 1, "vcpu": 2,
        "source": "vcpu 2", "complete": True, "stopped": None,
        "frames": [
            {"level": 0, "function": "<syscall futex>", "file": "entry.S", "line": 191,
             "address": 0x4020016C, "module": "kernel", "kind": "crossing", "offset": 172,
             "guessed": False},
            {"level": 1, "function": "worker", "file": None, "line": None, "address": 0x401770,
             "module": "app", "kind": "frame", "offset": 48, "guessed": False},
        ],
    }  # fmt: skip
    assert (main["cpu"], main["vcpu"], main["frames"]) == (None, None, [])


def test_text_has_a_header_per_thread() -> None:
    assert format_bt(report()) == [
        "thread 2 (worker) on vCPU 2 (cpus[1]):",
        "#0  <syscall futex> at entry.S:191",
        "#1  0x0000000000401770 in worker+48 (app)",
        "",
        "thread 1 (main), not on a CPU, from its saved context:",
        "(backtrace stopped: no saved context (kernel_rsp is 0))",
    ]
