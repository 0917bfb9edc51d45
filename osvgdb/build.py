"""Finding the source tree and building the kernel before a run.

`make` is incremental, so running it before every boot costs a few tens of
milliseconds and guarantees QEMU never boots a kernel older than its sources.
"""

from __future__ import annotations

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


def build_kernel(root: Path) -> Path:
    """Run `make -C kernel` quietly and return the kernel image's path.

    make's output is shown only when it fails: a run's console should hold
    the guest's output and nothing else.
    """
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
