"""The kernel model in plain Python: no GDB, no QEMU. A target made of the real
kernel ELF's symbols and DWARF layouts (osvgdb.model.elf_target) and guest memory
this test builds byte by byte: one CPU running an app thread, its TCB, a syscall
ring with one captured write. The model must find the CPU, the thread, the verdict
and the strace line, and name the broken rule when FS is wrong."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest
from guest import KERNEL, ROOT

from osvgdb.decode.layout import Layout
from osvgdb.model.elf_target import ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.model.syscalls import HistoryFilter, format_history, history_report
from osvgdb.model.target import TargetError, Vcpu
from osvgdb.model.tcb import format_tcb, tcb_report

THREAD, TCB, APP_TCB, APP_RIP, BUFFER = 0xFFFF800000300000, 0xFFFF800000310000, 0x4AE380, 0x401234, 0x7FFFF000
SYSCALL_WRITE = 1


class BytesTarget:
    """ElfKernel for symbols and layouts, plus memory regions and vCPUs given as bytes."""

    def __init__(self, elf: ElfKernel, vcpus: list[Vcpu]):
        self.elf = elf
        self.regions: dict[int, bytearray] = {}
        self._vcpus = vcpus

    def __getattr__(self, name: str):
        return getattr(self.elf, name)  # has, address, symbol_size, function_range, layout, enum

    def region(self, address: int, size: int) -> bytearray:
        self.regions[address] = bytearray(size)
        return self.regions[address]

    def put(self, address: int, layout: Layout, values: dict[str, object]) -> None:
        """Store members of one struct at address (which lies in a region)."""
        for name, value in values.items():
            member = layout.fields[name]
            if isinstance(value, bytes):
                data = value.ljust(member.size, b"\0")
            elif isinstance(value, tuple):
                data = b"".join(v.to_bytes(member.element_size, "little", signed=v < 0) for v in value)
            else:
                data = value.to_bytes(member.size, "little", signed=value < 0)
            self.write(address + member.offset, data)

    def write(self, address: int, data: bytes) -> None:
        for start, buf in self.regions.items():
            if start <= address and address + len(data) <= start + len(buf):
                buf[address - start : address - start + len(data)] = data
                return
        raise AssertionError(f"no region for {address:#x}")

    def read(self, address: int, length: int) -> bytes:
        for start, buf in self.regions.items():
            if start <= address and address + length <= start + len(buf):
                return bytes(buf[address - start : address - start + length])
        raise TargetError(f"cannot read {length} bytes at {address:#x}")

    def vcpus(self) -> list[Vcpu]:
        return self._vcpus

    def vcpu_count(self) -> int:
        return len(self._vcpus)


@pytest.fixture(scope="module")
def elf(kernel: None) -> ElfKernel:
    return ElfKernel(KERNEL)


def machine(elf: ElfKernel, fs_base: int) -> Kernel:
    """One CPU in app code with FS at fs_base; tid 1 set ARCH_SET_FS (counter 0)."""
    cpu_layout, history = elf.layout("arch_cpu"), elf.layout("syscall_history")
    record = elf.layout("syscall_record")
    gs_base = elf.address("cpus") + cpu_layout.offset("tcb_data")
    target = BytesTarget(elf, [Vcpu(1, {"gs_base": gs_base, "fs_base": fs_base, "rip": APP_RIP, "rsp": 0x7FFFFFFFE000})])
    kernel = Kernel(target)
    for name in ("nr_cpus", "nr_threads", "syscall_seq", "tsc_per_ms"):
        target.region(elf.address(name), elf.symbol_size(name))
    target.write(elf.address("nr_cpus"), struct.pack("<I", 1))
    target.write(elf.address("nr_threads"), struct.pack("<I", 1))
    target.write(elf.address("syscall_seq"), struct.pack("<Q", 1))
    panic = elf.layout("panic_report")
    target.region(elf.address("panic_report"), panic.size)
    target.put(elf.address("panic_report"), panic, {"cpu": -1})  # no panic
    target.region(elf.address("cpus"), cpu_layout.size)
    target.put(elf.address("cpus"), cpu_layout, {"tcb_data.kernel_tcb": TCB, "current": THREAD, "id": 0})
    target.region(elf.address("all_threads"), 8)
    target.write(elf.address("all_threads"), struct.pack("<Q", THREAD))
    thread = elf.layout("thread")
    target.region(THREAD, thread.size)
    states = {v: k for k, v in elf.enum("thread_state").items()}
    running = next(v for v, k in states.items() if k == "THREAD_RUNNING")
    target.put(THREAD, thread, dict(tid=1, state=running, cpu=0, name=b"main", tcb=TCB))
    tcb = elf.layout("thread_control_block")
    target.region(TCB, tcb.size)
    target.put(TCB, tcb, {"self": TCB, "app_tcb": APP_TCB, "kernel_tcb_counter": 0})
    ring = elf.address("syscall_history")
    target.region(ring, history.offset("records") + record.size)
    target.put(ring, history, dict(head=1, size=kernel.ring_capacity, record_size=record.size))
    done = elf.enum("syscall_record_flags")["SYSCALL_RECORD_DONE"]
    target.put(
        ring + history.offset("records"),
        record,
        dict(
            seq=1, tsc_entry=10, tsc_exit=20, nr=SYSCALL_WRITE, args=(1, BUFFER, 2, 0, 0, 0),
            ret=2, cpu=0, exit_cpu=0, tid=1, flags=done, rip=APP_RIP, fs_base=APP_TCB,
            capture_addr=(BUFFER, 0, 0, 0, 0, 0), capture_len=(2, 0, 0, 0, 0, 0),
            capture_data=b"hi",
        ),
    )
    return kernel


def test_a_consistent_cpu_and_its_thread(elf: ElfKernel) -> None:
    kernel = machine(elf, APP_TCB)
    report = tcb_report(kernel)
    (cpu,) = report.cpus
    (thread,) = report.threads
    assert (cpu.index, cpu.current_tid, cpu.where, cpu.counter) == (0, 1, "app", 0)
    assert cpu.problems == [] and thread.tid == 1 and thread.name == "main"
    assert thread.app_tcb == APP_TCB and thread.tcb_self == TCB
    text = "\n".join(format_tcb(report, lambda pc: ""))
    assert "CPU 0 (GDB thread 1): app" in text


def test_a_kernel_tcb_fs_base_in_app_code_is_named(elf: ElfKernel) -> None:
    (cpu,) = tcb_report(machine(elf, TCB)).cpus
    assert any(p.startswith("app-fs") for p in cpu.problems), cpu.problems


def test_the_history_from_its_capture(elf: ElfKernel) -> None:
    """The buffer's memory is not even in the target: only the record's capture has it."""
    report = history_report(machine(elf, APP_TCB), HistoryFilter(count=0))
    (record,) = report["records"]
    assert record["text"] == 'write(1, "hi", 2) = 2' and record["memory_now"] == []
    assert format_history(report)[0].endswith('write(1, "hi", 2) = 2')


def test_the_model_imports_without_gdb() -> None:
    """No `gdb` module in this interpreter, nor any import of one."""
    code = (
        "import sys, osvgdb.model.kernel, osvgdb.model.tcb, osvgdb.model.syscalls, "
        "osvgdb.model.auxv, osvgdb.model.elf_target; assert 'gdb' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
