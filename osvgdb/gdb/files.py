"""osv-files: the app's open files, from the kernel's fd table."""

from __future__ import annotations

import argparse

import gdb

from osvgdb.gdb.command import OsvCommand, print_json
from osvgdb.gdb.target import Kernel
from osvgdb.model.files import files_report, format_files


class OsvFiles(OsvCommand):
    NAME = "osv-files"
    SUMMARY = "Show the app's open files: each fd's kind, status flags, offset and inode."
    DETAILS = (
        "Reads process.fds (kernel/core/fd.c) and each open file (file.c): its kind by its\n"
        "file_ops (tmpfs, tmpfs-dir, tty, pipe, epoll, eventfd, null...), F_GETFL's flags,\n"
        "FD_CLOEXEC, the offset, how many fds and calls hold it (dup shares one), and a\n"
        "named file's inode: number, type, mode, size, link count."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def data(self, args: argparse.Namespace) -> dict[str, object]:
        """What --json prints (and MI's -osv-files returns)."""
        return files_report(Kernel.get())

    def run(self, args: argparse.Namespace) -> None:
        report = self.data(args)
        if args.json:
            print_json(report)
        else:
            gdb.write("\n".join(format_files(report)) + "\n")
