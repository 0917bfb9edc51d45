"""`osvgdb inspect DUMP tcb|syscalls|auxv|bt|goroutines`: what osv-tcb, osv-syscalls,
osv-auxv and osv-bt showed at the stop a dump was taken (osv-dump), and a Go
program's goroutines, read without GDB; `memory ADDRESS [LENGTH]`: bytes as the
kernel saw them there (one line saying so for memory the dump's level left out).

The dump (a QEMU dump-guest-memory core, osvgdb.dump) gives physical memory and
each vCPU's registers; the kernel ELF named in its sidecar (or --kernel) gives
symbols, layouts and enums (pyelftools); virtual addresses are translated by
walking the kernel's page tables.  The same model and renderers as the GDB
commands print the same data, as text or --json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from osvgdb.decode import DecodeError
from osvgdb.dump import Dump, DumpError, check_kernel, read_metadata
from osvgdb.model.auxv import auxv_report, format_auxv
from osvgdb.model import symbols
from osvgdb.model.bt import bt_data, bt_report, format_bt, goroutine_entries
from osvgdb.model.unwind import backtraces
from osvgdb.model.symbols import SymbolsError
from osvgdb.model.unwind import UnwindError
from osvgdb.model.elf_target import DumpTarget, ElfKernel
from osvgdb.model.filters import FilterError, add_filter_arguments
from osvgdb.model.kernel import Kernel
from osvgdb.model.syscalls import (
    add_history_arguments,
    format_history,
    history_filter,
    history_report,
)
from osvgdb.model.target import TargetError
from osvgdb.model.tcb import format_tcb, tcb_data, tcb_report

NAME = "osvgdb inspect"
EXIT_UNREADABLE = 2  # as osvgdb debug --core: a dump that cannot be read, or another kernel's
MEMORY_DEFAULT, MEMORY_MAX = 64, 1 << 20
BYTES_PER_LINE = 16


def number(text: str) -> int:
    """A number, decimal or 0x...; argparse reports the rest."""
    return int(text, 0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dump", metavar="DUMP", help="a dump written by osv-dump")
    parser.add_argument(
        "--kernel", metavar="ELF", help="the kernel ELF (default: the one the sidecar names)"
    )
    parser.add_argument(
        "--app", metavar="EXE", help="the app's executable (default: the one the sidecar names)"
    )
    views = parser.add_subparsers(dest="view", required=True, metavar="VIEW")
    tcb = views.add_parser("tcb", help="what osv-tcb showed", prog=f"{NAME} DUMP tcb")
    add_filter_arguments(tcb, cpu="only CPU N (cpus[N])", tid="only thread T", number=number)
    syscalls = views.add_parser(
        "syscalls", help="what osv-syscalls showed", prog=f"{NAME} DUMP syscalls"
    )
    add_history_arguments(syscalls, number)
    auxv = views.add_parser("auxv", help="what osv-auxv showed", prog=f"{NAME} DUMP auxv")
    memory = views.add_parser(
        "memory",
        help="bytes at a virtual address, through the kernel's page tables",
        prog=f"{NAME} DUMP memory",
    )
    memory.add_argument("address", type=number, metavar="ADDRESS", help="decimal or 0x...")
    memory.add_argument(
        "length",
        type=number,
        nargs="?",
        default=MEMORY_DEFAULT,
        metavar="LENGTH",
        help=f"how many bytes (default {MEMORY_DEFAULT}, at most {MEMORY_MAX})",
    )
    bt = views.add_parser("bt", help="what osv-bt showed: every thread's backtrace (or --tid T's)",
                          prog=f"{NAME} DUMP bt")  # fmt: skip
    bt.add_argument("--tid", type=number, metavar="T", help="only thread T")
    goroutines = views.add_parser("goroutines", help="a Go program's goroutines, from its runtime's tables",
                                  prog=f"{NAME} DUMP goroutines")  # fmt: skip
    for view in (tcb, syscalls, auxv, memory, bt, goroutines):
        view.add_argument("--json", action="store_true", help="machine-readable output")


def open_kernel(dump: Dump, dump_path: str, kernel_path: str | None) -> tuple[Kernel, ElfKernel]:
    """The model over the dump, with the kernel ELF it was taken with (by build id)."""
    metadata = read_metadata(dump_path)
    if kernel_path is None:
        if metadata is None:
            raise DumpError(f"{dump_path}: no sidecar {dump_path}.json: name the kernel with --kernel")
        kernel_path = metadata.kernel_path
    if metadata is not None:
        check_kernel(dump_path, metadata, kernel_path)
    elf = ElfKernel(Path(kernel_path))
    return Kernel(DumpTarget(elf, dump)), elf


def report(args: argparse.Namespace) -> tuple[object, list[str]]:
    """(the --json data, the text lines) of the view asked for."""
    with Dump(args.dump) as dump:
        kernel, elf = open_kernel(dump, args.dump, args.kernel)
        if args.view == "tcb":
            tcb = tcb_report(kernel, args.cpu, args.tid)
            return tcb_data(tcb), format_tcb(tcb, elf.symbolize)
        if args.view == "syscalls":
            data = history_report(kernel, history_filter(kernel, args))
            return data, format_history(data, NAME)
        if args.view == "memory":
            return memory_report(kernel, args.address, args.length)
        metadata = read_metadata(args.dump)
        app = args.app or (metadata.app_path if metadata else None)
        if args.view == "bt":
            traces = bt_report(kernel, app, tid=args.tid, all_threads=args.tid is None)
            return bt_data(traces), format_bt(traces)
        if args.view == "goroutines":
            data = goroutines_report(kernel, app)
            return data, format_goroutines(data)
        data = auxv_report(kernel, app)
        return data, format_auxv(data)


def memory_report(kernel: Kernel, address: int, length: int) -> tuple[object, list[str]]:
    """LENGTH bytes at ADDRESS: {"address", "length", "hex"}, and a hex dump."""
    if not 0 < length <= MEMORY_MAX:
        raise FilterError(f"LENGTH must be 1 to {MEMORY_MAX}")
    data = kernel.read(address, length)
    lines = []
    for at in range(0, length, BYTES_PER_LINE):
        row = data[at : at + BYTES_PER_LINE]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"{address + at:#018x}: {row.hex(' '):<{BYTES_PER_LINE * 3 - 1}}  {text}")
    return {"address": address, "length": length, "hex": data.hex()}, lines


def goroutines_report(kernel: Kernel, app_path: str | None) -> dict:
    """{"goroutines": [...]}: each goroutine as the triage report has it."""
    if app_path is None:
        raise TargetError("goroutines: no app (the sidecar names none: --app EXE)")
    app = symbols.app_image(kernel, app_path)
    threads = kernel.threads()
    entries = goroutine_entries(kernel, app, threads, backtraces(kernel, app, threads=threads))
    if entries is None:
        raise TargetError(f"goroutines: {app_path} is not a Go program (no runtime.allgs)")
    return {"goroutines": entries}


def format_goroutines(data: dict) -> list[str]:
    lines = []
    for g in data["goroutines"]:
        state = g["status"] + (f" ({g['wait_reason']})" if g.get("wait_reason") else "")
        where = f", on thread {g['tid']}" if g.get("tid") else ""
        lines.append(f"goroutine {g['goid']} {state}{where}{' [runtime]' if g['system'] else ''}:")
        lines += [f"  {f['function'] or '??'}" + (f" at {f['file']}:{f['line']}" if f.get("file") else "")
                  for f in g["frames"]]  # fmt: skip
    return lines


def inspect(args: argparse.Namespace) -> int:
    try:
        data, lines = report(args)
    except (DumpError, TargetError, FilterError, DecodeError, SymbolsError, UnwindError) as error:
        print(f"{NAME}: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print("\n".join(lines))
    return 0


