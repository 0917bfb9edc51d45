"""Convenience functions for expressions and breakpoint conditions.

    $osv_cpu()            this vCPU's index in cpus[] (from its GS base)
    $osv_current([cpu])   struct thread * running on a CPU (default: this one)
    $osv_kernel_tcb([cpu])  struct thread_control_block *: a CPU's tcb_data.kernel_tcb
    $osv_app_tcb([tid])   unsigned long: a thread's app_tcb (default: this CPU's thread)
    $osv_thread(tid)      struct thread * with that tid

e.g.  break sys_write if $osv_current()->tid == 1
"""

from __future__ import annotations

import gdb

from osvgdb.gdb.command import live_target, no_live_target, one_line_error
from osvgdb.gdb.target import Kernel, TargetError, selected_vcpu


class _OsvFunction(gdb.Function):
    NAME = ""

    def __init__(self) -> None:
        super().__init__(self.NAME)

    def invoke(self, *args: gdb.Value) -> gdb.Value:
        if not live_target():
            raise no_live_target(f"${self.NAME}")
        try:
            return self.compute(Kernel.get(), *[int(a) for a in args])
        except TypeError:
            raise gdb.GdbError(f"${self.NAME}: wrong number of arguments") from None
        except Exception as error:
            raise one_line_error(f"${self.NAME}", error) from None

    def compute(self, kernel: Kernel, *args: int) -> gdb.Value:
        raise NotImplementedError


def _this_cpu(kernel: Kernel) -> int:
    index = kernel.cpu_index(selected_vcpu().gs_base)
    if index is None:
        raise TargetError("this vCPU's GS base is no CPU's tcb_data (not started?)")
    return index


def _checked_cpu(kernel: Kernel, cpu: int | None) -> int:
    if cpu is None:
        return _this_cpu(kernel)
    if not 0 <= cpu < kernel.array_lengths["cpus"]:
        raise TargetError(f"no CPU {cpu}")
    return cpu


class OsvCpu(_OsvFunction):
    """Return this vCPU's index in cpus[], found from its GS base."""

    NAME = "osv_cpu"

    def compute(self, kernel: Kernel) -> gdb.Value:
        return gdb.Value(_this_cpu(kernel))


class OsvCurrent(_OsvFunction):
    """Return the struct thread * running on a CPU (default: this vCPU)."""

    NAME = "osv_current"

    def compute(self, kernel: Kernel, cpu: int | None = None) -> gdb.Value:
        current = kernel.read_cpu(_checked_cpu(kernel, cpu))["current"] or 0
        return gdb.Value(current).cast(kernel.thread_type.pointer())


class OsvKernelTcb(_OsvFunction):
    """Return a CPU's tcb_data.kernel_tcb as a struct thread_control_block *."""

    NAME = "osv_kernel_tcb"

    def compute(self, kernel: Kernel, cpu: int | None = None) -> gdb.Value:
        tcb = kernel.read_cpu(_checked_cpu(kernel, cpu))["tcb_data.kernel_tcb"] or 0
        return gdb.Value(tcb).cast(kernel.tcb_type.pointer())


class OsvThread(_OsvFunction):
    """Return the struct thread * with the given tid."""

    NAME = "osv_thread"

    def compute(self, kernel: Kernel, tid: int) -> gdb.Value:
        for address in kernel.thread_pointers():
            if address and kernel.thread(address).tid == tid:
                return gdb.Value(address).cast(kernel.thread_type.pointer())
        raise TargetError(f"no thread with tid {tid}")


class OsvAppTcb(_OsvFunction):
    """Return a thread's app_tcb, the FS base it set with arch_prctl (default: current)."""

    NAME = "osv_app_tcb"

    def compute(self, kernel: Kernel, tid: int | None = None) -> gdb.Value:
        if tid is None:
            current = kernel.read_cpu(_this_cpu(kernel))["current"]
            if not current:
                raise TargetError("this CPU runs no thread")
            info = kernel.thread(current)
        else:
            info = next((t for t in kernel.threads() if t.tid == tid), None)
            if info is None:
                raise TargetError(f"no thread with tid {tid}")
        return gdb.Value(info.app_tcb or 0).cast(kernel.u64_type)


FUNCTIONS = (OsvCpu, OsvCurrent, OsvKernelTcb, OsvThread, OsvAppTcb)
