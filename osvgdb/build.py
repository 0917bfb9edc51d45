"""Finding the source tree and building the kernel before a run.

QEMU never boots a kernel older than its sources: make runs whenever any file
under kernel/ (but its test programs) is newer than build/kernel.elf.  Asking
make itself costs ~30 ms a run, a tenth of `osvgdb run hello`; the look at
the files' times here costs ~1 ms, and leaves every decision to make as soon
as something changed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class BuildError(Exception):
    """The kernel could not be built; the message holds make's output."""


def _is_root(path: Path) -> bool:
    return (path / "kernel" / "Makefile").is_file() and (path / "osvgdb").is_dir()


def repo_root() -> Path:
    """The osvgdb source tree: the package's parent when installed editable
    (the normal case), else the nearest parent of the working directory."""
    cwd = Path.cwd().resolve()
    for candidate in (Path(__file__).resolve().parent.parent, cwd, *cwd.parents):
        if _is_root(candidate):
            return candidate
    raise BuildError("cannot find the osvgdb source tree (a directory with kernel/Makefile)")


def kernel_image(root: Path) -> Path:
    return root / "build" / "kernel.elf"


# The host's syscall numbers, which the kernel's names table is made from (kernel/Makefile).
_UNISTD = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h")


def _mtime(path: str | Path) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def _up_to_date(root: Path) -> bool:
    """Whether build/kernel.elf is newer than every file make builds it from (kernel/
    but its apps/, and the host's syscall numbers), and GDB's script beside it than its
    source."""
    kernel = root / "kernel"
    built = _mtime(kernel_image(root))
    script = root / "build" / "kernel.elf-gdb.py"
    if not built or _mtime(script) < _mtime(kernel / "kernel.elf-gdb.py"):
        return False
    if any(_mtime(header) > built for header in _UNISTD):
        return False
    for directory, dirnames, filenames in os.walk(kernel):
        if directory == str(kernel):
            dirnames[:] = [d for d in dirnames if d != "apps"]
        for name in filenames:
            if _mtime(os.path.join(directory, name)) > built:
                return False
    return True


def build_kernel(root: Path) -> Path:
    """Run `make -C kernel` quietly, unless nothing changed since the kernel was
    built, and return the kernel image's path.

    make's output is shown only when it fails: a run's console should hold
    the guest's output and nothing else.
    """
    if _up_to_date(root):
        return kernel_image(root)
    result = subprocess.run(
        ["make", "-s", "-C", str(root / "kernel")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    if result.returncode != 0:
        raise BuildError(f"`make -C kernel` failed (status {result.returncode}):\n{result.stdout}")
    image = kernel_image(root)
    if not image.is_file():
        raise BuildError(f"`make -C kernel` succeeded but {image} does not exist")
    return image
