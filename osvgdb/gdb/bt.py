"""osv-bt: the backtrace of any kernel thread, on a CPU or not, through the entry frames."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb import appsyms
from osvgdb.gdb.command import (
    OsvCommand,
    add_filter_arguments,
    import_from_venv,
    int_arg,
    print_json,
)
from osvgdb.gdb.target import Kernel, TargetError, vcpu_registers
from osvgdb.model.bt import ThreadBacktrace, bt_data, bt_report, format_bt
from osvgdb.model.symbols import REGISTER_NAMES, SymbolsError
from osvgdb.model.unwind import MAX_DEPTH, UnwindError

# What the unwinder reads of a vCPU: the DWARF registers, eflags, and cr2 for a page
# fault's label (GdbTarget's vCPUs carry only what osv-tcb needs: rip, rsp, FS/GS, cr3).
UNWIND_REGISTERS = (*REGISTER_NAMES.values(), "cr2", "fs_base", "gs_base")


def _depth(text: str) -> int:
    depth = int_arg(text)
    if not 1 <= depth <= MAX_DEPTH:
        raise argparse.ArgumentTypeError(f"{depth} is not 1 to {MAX_DEPTH}")
    return depth


class OsvBt(OsvCommand):
    NAME = "osv-bt"
    SUMMARY = "Show the backtrace of any kernel thread, on a CPU or not, into the app."
    DETAILS = (
        "Without options: the thread the selected vCPU runs (cpus[i].current of that vCPU).\n"
        "--cpu N: the thread cpus[N] runs; --tid T: thread T; --all: every thread.\n\n"
        "Where the frames come from: a thread on a vCPU is unwound from that vCPU's\n"
        "registers; any other from what switch_context saved at its thread.kernel_rsp\n"
        "(the callee-saved registers and the return into schedule_locked), so a blocked\n"
        "thread's backtrace starts in switch_context. The unwinder is osvgdb's own (the\n"
        "kernel's and the app's ELF files: DWARF CFI, symbols, lines), not GDB's, so it\n"
        "needs no GDB thread per kernel thread and selects nothing.\n\n"
        "Crossings: where entry.S built a struct syscall_frame or trap_frame the\n"
        "backtrace goes on into the code it interrupted (the app, or kernel code an\n"
        'interrupt hit); that frame has kind "crossing" and is named as `bt` names it:\n'
        "<syscall futex>, <syscall write returning 18>, <interrupt 32 timer>,\n"
        "<page fault at 0x...>. App frames need the app's symbols (osv-app-path).\n\n"
        "A frame marked `guessed` had no unwind information at its pc (a glibc syscall\n"
        "wrapper past the end of its FDE): its caller was taken from the word at rsp,\n"
        "as GDB's own fallback does. `complete` says the backtrace reached a frame\n"
        "nothing called (_start, clone, thread_trampoline); otherwise `stopped` says\n"
        "why it ended (no unwind information, unreadable stack, the depth limit).\n\n"
        "Over MI, -osv-bt returns {backtraces=[{tid,name,state,cpu,vcpu,source,complete,\n"
        "stopped,frames=[{level,function,file,line,address,module,kind,offset,guessed}]}]}\n"
        "(cpu, vcpu, stopped, function, file, line left out where there is none). GDB's MI\n"
        "parser takes a first --all for itself (it is an option of every MI command) and\n"
        "drops it: write -osv-bt -a there."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        which = parser.add_mutually_exclusive_group()
        add_filter_arguments(which, cpu="the thread cpus[N] runs", tid="thread T")
        which.add_argument("--all", "-a", action="store_true", help="every thread")
        parser.add_argument(
            "--max-depth", type=_depth, default=MAX_DEPTH, metavar="D",
            help=f"at most D frames per thread (1 to {MAX_DEPTH}, the default)",
        )  # fmt: skip
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def report(self, args: argparse.Namespace) -> list[ThreadBacktrace]:
        import_from_venv("elftools", "pyelftools", "osv-bt")
        selected = gdb.selected_thread()
        try:
            return bt_report(
                Kernel.get(),
                appsyms.app_path() or None,
                cpu=args.cpu,
                tid=args.tid,
                all_threads=args.all,
                vcpu=selected.num if selected is not None else None,
                max_depth=args.max_depth,
                vcpu_registers=vcpu_registers(UNWIND_REGISTERS),
            )
        except (TargetError, SymbolsError, UnwindError) as error:
            raise gdb.GdbError(f"{self.NAME}: {error}") from None

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-bt returns)."""
        return bt_data(self.report(args))

    def run(self, args: argparse.Namespace) -> None:
        report = self.report(args)
        if args.json:
            print_json(bt_data(report))
        else:
            gdb.write("\n".join(format_bt(report)) + "\n")
