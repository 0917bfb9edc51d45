"""Writing the initrd: a cpio archive in the "newc" format.

newc is what Linux initramfs uses and what the kernel's loader reads: every
member is a 110-byte ASCII header (magic 070701 and thirteen 8-digit hex
fields), the NUL-terminated name padded to a multiple of 4, then the data
padded to a multiple of 4; a member named TRAILER!!! ends the archive.  It is
trivial to parse in a freestanding kernel and GNU cpio reads it, which gives
the tests an oracle we did not write.

Names are stored without a leading slash ("hello"), as initramfs archives do;
the kernel looks up the path "/hello" as the member "hello".
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
REGULAR_FILE = 0o100000
EXECUTABLE_MODE = REGULAR_FILE | 0o755
DATA_MODE = REGULAR_FILE | 0o644
_FIELD_MAX = 0xFFFFFFFF  # every numeric field is 8 hex digits


@dataclass(frozen=True)
class Member:
    """One file for the archive: its name inside it and its bytes or host path."""

    name: str
    source: bytes | os.PathLike[str] | str
    mode: int = DATA_MODE

    def data(self) -> bytes:
        if isinstance(self.source, bytes):
            return self.source
        return Path(self.source).read_bytes()


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(*, ino: int, mode: int, nlink: int, filesize: int, namesize: int) -> bytes:
    # Field order: ino mode uid gid nlink mtime filesize devmajor devminor
    # rdevmajor rdevminor namesize check.  uid, gid and mtime are 0 so the
    # archive depends only on its contents.
    fields = (ino, mode, 0, 0, nlink, 0, filesize, 0, 0, 0, 0, namesize, 0)
    for value in fields:
        if not 0 <= value <= _FIELD_MAX:
            raise ValueError(f"cpio newc field out of range: {value}")
    return MAGIC + b"".join(b"%08X" % value for value in fields)


def _member(name: str, data: bytes, *, ino: int, mode: int, nlink: int) -> bytes:
    encoded = name.encode() + b"\0"
    header = _header(ino=ino, mode=mode, nlink=nlink, filesize=len(data), namesize=len(encoded))
    return header + encoded + _pad4(len(header) + len(encoded)) + data + _pad4(len(data))


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or "\0" in name or name == TRAILER:
        raise ValueError(f"bad name for an initrd member: {name!r}")


def newc_archive(members: Iterable[Member]) -> bytes:
    """Return the bytes of a newc archive holding `members`, in order."""
    parts = []
    for ino, member in enumerate(members, start=1):
        _check_name(member.name)
        parts.append(_member(member.name, member.data(), ino=ino, mode=member.mode, nlink=1))
    parts.append(_member(TRAILER, b"", ino=0, mode=0, nlink=1))
    return b"".join(parts)


def write_initrd(path: os.PathLike[str] | str, members: Iterable[Member]) -> None:
    """Write a newc archive of `members` to `path`."""
    Path(path).write_bytes(newc_archive(members))
