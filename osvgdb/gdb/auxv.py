"""osv-auxv: the app's initial stack: argc, argv, envp and the auxiliary vector."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb import appsyms
from osvgdb.gdb.command import OsvCommand, print_json
from osvgdb.gdb.target import Kernel
from osvgdb.model.auxv import auxv_report, format_auxv


class OsvAuxv(OsvCommand):
    NAME = "osv-auxv"
    SUMMARY = "Show the app's initial stack: argc, argv, envp and every auxv entry, decoded."
    DETAILS = (
        "Reads the stack the loader built (process.initial_stack, psABI figure 3.9) in one\n"
        "read and decodes it: strings for argv, envp, AT_EXECFN and AT_PLATFORM, AT_RANDOM's\n"
        "16 bytes, and AT_PHDR checked against the program headers it points at (and the\n"
        "app's file when osv-app-path is set)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-auxv returns)."""
        return auxv_report(Kernel.get(), appsyms.app_path())

    def run(self, args: argparse.Namespace) -> None:
        report = self.data(args)
        if args.json:
            print_json(report)
        else:
            gdb.write("\n".join(format_auxv(report)) + "\n")
