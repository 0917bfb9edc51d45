"""The loader refuses what it cannot run: one console line `osv: /NAME: REASON`
and exit status 126 (127 for a name not in the initrd); never a hang or a
triple fault."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from guest import APPS, KERNEL, ROOT, RUN_TIMEOUT, app, osvgdb_run

from osvgdb.initrd import EXECUTABLE_MODE, Member, write_initrd
from osvgdb.qemu import Qemu
from osvgdb.run import EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, kernel_cmdline, watch

pytestmark = pytest.mark.usefixtures("kernel")

EI_CLASS = 4
E_MACHINE = 18
ELFCLASS32 = 1
EM_AARCH64 = 183


def copy_of_hello(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    shutil.copyfile(app("hello", "glibc"), path)
    return path


def patched(tmp_path: Path, name: str, offset: int, data: bytes) -> Path:
    path = copy_of_hello(tmp_path, name)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


def truncated(tmp_path: Path, name: str, size: int) -> Path:
    path = copy_of_hello(tmp_path, name)
    with open(path, "r+b") as f:
        f.truncate(size)
    return path


def cut_in_a_segment(tmp_path: Path) -> Path:
    with open(app("hello", "glibc"), "rb") as f:
        largest = max(
            (seg for seg in ELFFile(f).iter_segments() if seg["p_type"] == "PT_LOAD"),
            key=lambda seg: seg["p_filesz"],
        )
        middle = largest["p_offset"] + largest["p_filesz"] // 2
    return truncated(tmp_path, "cut", middle)


def overlapping_the_kernel(tmp_path: Path) -> Path:
    """A hello linked where the kernel itself lives."""
    with open(KERNEL, "rb") as f:
        kernel_start = min(
            seg["p_vaddr"] for seg in ELFFile(f).iter_segments() if seg["p_type"] == "PT_LOAD"
        )
    path = tmp_path / "overlap"
    subprocess.run(
        [
            "gcc",
            "-static",
            "-O2",
            f"-Wl,-Ttext-segment={kernel_start & ~0xFFF:#x}",
            "-o",
            str(path),
            str(ROOT / "kernel" / "apps" / "hello.c"),
        ],
        check=True,
    )
    return path


def dynamic(tmp_path: Path) -> Path:
    return Path(shutil.copyfile(APPS / "hello-dynamic", tmp_path / "dynamic"))


def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notelf"
    path.write_text("this is not an executable\n")
    return path


BAD: dict[str, Callable[[Path], Path]] = {
    "dynamic": dynamic,
    "elf32": lambda tmp: patched(tmp, "elf32", EI_CLASS, bytes([ELFCLASS32])),
    "aarch64": lambda tmp: patched(tmp, "aarch64", E_MACHINE, EM_AARCH64.to_bytes(2, "little")),
    "first-100-bytes": lambda tmp: truncated(tmp, "short", 100),
    "cut-in-a-segment": cut_in_a_segment,
    "empty": lambda tmp: truncated(tmp, "empty", 0),
    "overlaps-kernel": overlapping_the_kernel,
    "text-file": text_file,
}


@pytest.mark.parametrize("make_bad", BAD.values(), ids=BAD.keys())
def test_rejected_with_one_line_and_126(make_bad: Callable[[Path], Path], tmp_path: Path) -> None:
    exe = make_bad(tmp_path)
    exe.chmod(0o755)  # for the kernel's loader to judge: osvgdb refuses what execve would
    run = osvgdb_run("--accel", "tcg", str(exe))
    assert run.status == EXIT_CANNOT_EXECUTE, run
    prefix = f"osv: /{exe.name}: "
    errors = [line for line in run.lines if line.startswith(prefix)]
    assert len(errors) == 1, run
    assert errors[0][len(prefix) :].strip(), f"no reason given: {errors[0]!r}"


def test_missing_executable_is_127() -> None:
    """A name that is not in the initrd; `osvgdb run` always packs its EXE,
    so this boots through the library with a command line of our own."""
    console = io.BytesIO()
    messages = io.StringIO()
    with Qemu(kernel=KERNEL, accel="tcg") as vm:
        write_initrd(vm.initrd, [Member("hello", app("hello", "glibc"), mode=EXECUTABLE_MODE)])
        vm.start(kernel_cmdline("/missing", []))
        status = watch(vm, timeout=RUN_TIMEOUT, out=console, err=messages)
    output = console.getvalue().decode(errors="replace")
    assert status == EXIT_NOT_FOUND, output + messages.getvalue()
    errors = [line for line in output.splitlines() if line.startswith("osv: /missing: ")]
    assert len(errors) == 1, output
