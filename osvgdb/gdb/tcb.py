"""osv-tcb: per-CPU FS/GS state and every thread's TCB, with a verdict."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.decode.tcb import VERDICT_RULES
from osvgdb.gdb.command import OsvCommand, add_filter_arguments, print_json
from osvgdb.gdb.target import Kernel, TargetError
from osvgdb.model.tcb import TcbReport, format_tcb, tcb_data, tcb_report


def _symbol(pc: int) -> str:
    """<function+offset> from kernel or app symbols (minimal symbols too), or nothing."""
    try:
        text = gdb.format_address(pc)
    except (gdb.error, RuntimeError, AttributeError):
        return ""
    start = text.find(" <")
    return text[start:] if start >= 0 else ""


class OsvTcb(OsvCommand):
    NAME = "osv-tcb"
    SUMMARY = "Show each CPU's GS/FS base and thread control block, and every thread's TCB."
    DETAILS = (
        "For every CPU: GS base and which cpus[i] it is, tcb_data.kernel_tcb and whose it is,\n"
        "the FS base register and whose TCB it is, kernel_tcb_counter, where the CPU is\n"
        "(app, syscall, interrupt, entry, idle, kernel, panicked), and a verdict.\n"
        "Then every thread: tid, name, state, cpu, TCB, self check, tls_base, app_tcb,\n"
        "counter and syscall stack.\n\n" + VERDICT_RULES
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_filter_arguments(parser, cpu="only CPU N (cpus[N])", tid="only thread T")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def report(self, args: argparse.Namespace) -> TcbReport:
        try:
            return tcb_report(Kernel.get(), args.cpu, args.tid)
        except TargetError as error:
            raise gdb.GdbError(f"osv-tcb: {error}") from None

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-tcb returns)."""
        return tcb_data(self.report(args))

    def run(self, args: argparse.Namespace) -> None:
        report = self.report(args)
        if args.json:
            print_json(tcb_data(report))
        else:
            gdb.write("\n".join(format_tcb(report, _symbol)) + "\n")
