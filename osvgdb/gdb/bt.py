"""osv-bt: the backtrace of any kernel thread, on a CPU or not, through the entry frames."""

from __future__ import annotations

import argparse
import sys

import gdb

from osvgdb import build
from osvgdb.gdb import appsyms
from osvgdb.gdb.command import OsvCommand, add_filter_arguments, int_arg, print_json
from osvgdb.gdb.target import Kernel, TargetError, u64
from osvgdb.model.bt import ThreadBacktrace, bt_data, bt_report, format_bt
from osvgdb.model.symbols import REGISTER_NAMES, SymbolsError
from osvgdb.model.unwind import MAX_DEPTH, UnwindError


def _find_pyelftools() -> None:
    """The unwinder reads DWARF line tables with pyelftools. GDB embeds the system's
    Python, which may lack it: then it comes from the virtualenv scripts/bootstrap
    made (.venv), as osv-dump's qemu.qmp does."""
    try:
        import elftools  # noqa: F401
    except ImportError:
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        site = build.repo_root() / ".venv" / "lib" / version / "site-packages"
        if str(site) not in sys.path:
            sys.path.append(str(site))
        try:
            import elftools  # noqa: F401
        except ImportError:
            raise gdb.GdbError(
                f"osv-bt: cannot import pyelftools (not in {site}: run scripts/bootstrap)"
            ) from None


# What the unwinder reads of a vCPU: the DWARF registers, eflags, and cr2 for a page
# fault's label (GdbTarget's vCPUs carry only what osv-tcb needs: rip, rsp, FS/GS, cr3).
UNWIND_REGISTERS = (*REGISTER_NAMES.values(), "cr2", "fs_base", "gs_base")


def _vcpu_registers() -> dict[int, dict[str, int]]:
    """Every vCPU's registers the unwinder reads, by GDB thread number; GDB's selected
    thread and frame are left as they were."""
    original_thread = gdb.selected_thread()
    try:
        original_frame = gdb.selected_frame()
    except gdb.error:
        original_frame = None
    result = {}
    try:
        for thread in gdb.selected_inferior().threads():
            thread.switch()
            newest = gdb.newest_frame()
            registers = {}
            for name in UNWIND_REGISTERS:
                try:
                    registers[name] = u64(newest.read_register(name))
                except (ValueError, gdb.error):
                    continue  # a target without control registers
            result[thread.num] = registers
    finally:
        if original_thread is not None and original_thread.is_valid():
            original_thread.switch()
            if original_frame is not None and original_frame.is_valid():
                original_frame.select()
    return result


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
        _find_pyelftools()
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
                vcpu_registers=_vcpu_registers(),
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
