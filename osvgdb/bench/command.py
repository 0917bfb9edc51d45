"""`osvgdb bench`: what the FS-base switch costs each kind of kernel crossing.

Builds the kernel and bench-crossings (kernel/apps/bench-crossings.c), boots the kernel
once per configuration under TCG with -icount (the guest's TSC counts instructions) and
runs the matrix {bench} x {fs_protocol} x {fs_write}; runs the same program on the host
for the anchors; prints one table, or with --json a list of rows.

Instructions per operation: each operation is timed alone between two rdtsc, with the
empty timer beside it; per op = (median sample - median empty timer) / operations per
sample, and the figure is the median over the runs (spread: greatest minus least).
ns needs hardware virtualization: with --accel kvm the same boots are repeated under KVM
and timed by the guest's TSC and clock.  Under TCG ns is null: TCG times are not costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import TextIO

from osvgdb import build
from osvgdb.bench import guest, host, matrix, table
from osvgdb.bench.measure import Output
from osvgdb.qemu import QemuError, choose_accel, hardware_virtualization

EPILOG = f"""\
rows (--json): {", ".join(matrix.ROW_KEYS)}
  instructions  guest instructions per operation (TCG, -icount shift=0)
  ns            ns per operation under KVM; null under TCG
                ({table.NOT_MEASURED})
  host_ns       the same operation on this host's Linux, ns (null for interrupt)
  spread        greatest minus least over the runs, of instructions, ns and host_ns
With --json the host anchors (wrfsbase, rdfsbase, ...) go to stderr.

exit status: 0 every configuration measured; 1 some configuration could not be
(each says why in one line on stderr: a kernel that refuses --fs-protocol, QEMU dying);
the others' rows are printed all the same; 2 bad arguments; 125 the build failed.
"""


class BenchUsageError(Exception):
    """Bad arguments to `osvgdb bench` (reported by the CLI as a usage error)."""


def _runs(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"expected a number of runs from 1 to 100, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accel", choices=["tcg", "kvm"], default="tcg",
                        help="tcg (default): instruction counts only; kvm: also ns, timed "
                        "on hardware (needs /dev/kvm and VT-x/AMD-V)")  # fmt: skip
    parser.add_argument("--runs", type=_runs, default=5, metavar="N",
                        help="runs of each benchmark after its warm-up (default 5)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    for option, dest, names in (
        ("--bench", "bench", matrix.BENCHES),
        ("--fs-protocol", "protocols", matrix.PROTOCOLS),
        ("--fs-write", "fs_writes", matrix.FS_WRITES),
    ):
        parser.add_argument(option, dest=dest, action="append", choices=names, metavar="NAME",
                            help="only this one (repeatable): " + ", ".join(names))  # fmt: skip
    parser.add_argument("--kernel", type=Path, metavar="PATH",
                        help="boot this kernel ELF, not build/kernel.elf "
                        "(which make rebuilds)")  # fmt: skip


def _in_order(chosen: list[str] | None, every: tuple[str, ...]) -> tuple[str, ...]:
    """The chosen names in the matrix's order, each once; all of them if none chosen."""
    return tuple(name for name in every if not chosen or name in chosen)


def _check_accel(accel: str) -> None:
    if accel == "kvm":
        try:
            choose_accel("kvm")
        except QemuError as error:
            raise BenchUsageError(f"{error}: ns cannot be measured here") from None
        if not hardware_virtualization():
            raise BenchUsageError(
                "--accel kvm: no VT-x/AMD-V (vmx/svm) in /proc/cpuinfo: this /dev/kvm "
                "emulates the guest, so its times are not costs either"
            )


def _build(root: Path) -> Path:
    """make the kernel and bench-crossings; the program's path."""
    build.build_kernel(root)
    program = root / "build" / "apps" / guest.PROGRAM
    result = subprocess.run(
        ["make", "-s", "-C", str(root / "kernel" / "apps"), str(program)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
    )  # fmt: skip
    if result.returncode != 0:
        raise build.BuildError(
            f"`make -C kernel/apps {program}` failed (status {result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    return program


def measure_guest(
    configs: list[guest.Config],
    runs: int,
    *,
    kernel: Path,
    program: Path,
    err: TextIO,
    add: list[tuple[Path, str]] | None = None,
) -> tuple[dict[tuple[str, str, str], list[Output]], list[str]]:
    """Boot each configuration; the outputs by (protocol, fs_write, accel), and the
    errors.  A protocol whose kernel refused its command line is not booted again; a
    QEMU that cannot start the kernel ends the guest's part."""
    outputs: dict[tuple[str, str, str], list[Output]] = defaultdict(list)
    errors: list[str] = []
    refused: set[str] = set()
    for config in configs:
        if config.protocol in refused:
            continue
        try:
            output = guest.boot(config, runs, kernel=kernel, program=program, add=add or [])
        except guest.BenchError as error:
            errors.append(str(error))
            print(f"osvgdb bench: {error}", file=err)
            if isinstance(error, guest.QemuUnusable):
                break
            if isinstance(error, guest.KernelRefused):
                refused.add(config.protocol)
            continue
        outputs[(config.protocol, config.fs_write, config.accel)].append(output)
    return outputs, errors


def main(namespace: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    benches = _in_order(namespace.bench, matrix.BENCHES)
    protocols = _in_order(namespace.protocols, matrix.PROTOCOLS)
    fs_writes = _in_order(namespace.fs_writes, matrix.FS_WRITES)
    _check_accel(namespace.accel)
    if namespace.kernel is not None and not namespace.kernel.is_file():
        raise BenchUsageError(f"--kernel {namespace.kernel}: no such file")
    root = build.repo_root()
    program = _build(root)
    kernel = namespace.kernel.resolve() if namespace.kernel else build.kernel_image(root)
    configs = matrix.plan(benches, protocols, fs_writes, "tcg")
    if namespace.accel == "kvm":
        configs += matrix.plan(benches, protocols, fs_writes, "kvm")
    outputs, errors = measure_guest(
        configs, namespace.runs, kernel=kernel, program=program, err=err,
        add=getattr(namespace, "add", []),
    )  # fmt: skip
    host_output = None
    try:
        host_output = host.measure(program, namespace.runs)
    except guest.BenchError as error:
        errors.append(str(error))
        print(f"osvgdb bench: {error}", file=err)
    measured = matrix.Measured(guest=outputs, host=host_output)
    rows = matrix.rows(measured, benches, protocols, fs_writes, kvm=namespace.accel == "kvm")
    anchors = matrix.anchors(host_output) if host_output else []
    if namespace.json:
        json.dump(rows, out, indent=1)
        out.write("\n")
        if anchors:
            print(table.render_anchors(anchors), file=err)
    else:
        print(table.render(rows, anchors, accel=namespace.accel, runs=namespace.runs), file=out)
    return 1 if errors else 0
