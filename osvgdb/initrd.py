"""The initrd and the exports: cpio archives in the "newc" format.

newc is what Linux initramfs uses and what the kernel reads: every member is a
110-byte ASCII header (magic 070701 and thirteen 8-digit hex fields), the
NUL-terminated name padded to a multiple of 4, then the data padded to a
multiple of 4; a member named TRAILER!!! ends the archive.  It is trivial to
parse in a freestanding kernel and GNU cpio reads it, which gives the tests an
oracle we did not write.

The initrd is the guest's filesystem's first contents (kernel/core/initrd.c
unpacks it into tmpfs): the executable at /BASENAME, and what `--add HOST[:GUEST]`
brings, a file or a whole tree, with modes, owners and mtimes (`host_members`).
Names are stored without a leading slash ("hello"), as initramfs archives do.

An `--export GUEST:HOST` comes back the other way: when the app ends the kernel
writes GUEST's tree as one archive (kernel/core/export.c), and `extract` puts
it at HOST with docker cp's rules.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC = b"070701"
TRAILER = "TRAILER!!!"
REGULAR_FILE = stat.S_IFREG
EXECUTABLE_MODE = REGULAR_FILE | 0o755
DATA_MODE = REGULAR_FILE | 0o644
HEADER_SIZE = 110
_FIELD_MAX = 0xFFFFFFFF  # every numeric field is 8 hex digits
_COPY_CHUNK = 1 << 20


class ArchiveError(Exception):
    """What the host was asked to add cannot be archived, or an archive is malformed."""


@dataclass(frozen=True)
class Member:
    """One member of the archive: its name inside it, its mode (type and permission
    bits) and its content: bytes, or a host file to read (a symlink's is its target)."""

    name: str
    source: bytes | os.PathLike[str] | str
    mode: int = DATA_MODE
    mtime: int = 0
    uid: int = 0
    gid: int = 0

    def data(self) -> bytes:
        if isinstance(self.source, bytes):
            return self.source
        return Path(self.source).read_bytes()

    def size(self) -> int:
        if isinstance(self.source, bytes):
            return len(self.source)
        return os.stat(self.source).st_size


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _header(*, ino: int, mode: int, uid: int, gid: int, mtime: int, filesize: int,
            namesize: int) -> bytes:  # fmt: skip
    # Field order: ino mode uid gid nlink mtime filesize devmajor devminor
    # rdevmajor rdevminor namesize check.
    fields = (ino, mode, uid, gid, 1, mtime, filesize, 0, 0, 0, 0, namesize, 0)
    for value in fields:
        if not 0 <= value <= _FIELD_MAX:
            raise ArchiveError(f"cpio newc field out of range: {value}")
    return MAGIC + b"".join(b"%08X" % value for value in fields)


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or "\0" in name or name == TRAILER:
        raise ArchiveError(f"bad name for an archive member: {name!r}")


def _write_member(out: BinaryIO, member: Member, ino: int) -> None:
    _check_name(member.name)
    encoded = member.name.encode() + b"\0"
    size = member.size()
    header = _header(ino=ino, mode=member.mode, uid=member.uid, gid=member.gid,
                     mtime=member.mtime, filesize=size, namesize=len(encoded))  # fmt: skip
    out.write(header + encoded + _pad4(len(header) + len(encoded)))
    if isinstance(member.source, bytes):
        out.write(member.source)
    else:
        with open(member.source, "rb") as f:  # a file's data streams: trees may be large
            written = 0
            while chunk := f.read(_COPY_CHUNK):
                out.write(chunk)
                written += len(chunk)
        if written != size:
            raise ArchiveError(f"{member.source}: changed while it was archived")
    out.write(_pad4(size))


def write_archive(out: BinaryIO, members: Iterable[Member]) -> None:
    """Write a newc archive of `members`, in order, to `out`."""
    for ino, member in enumerate(members, start=1):
        _write_member(out, member, ino)
    encoded = TRAILER.encode() + b"\0"
    header = _header(ino=0, mode=0, uid=0, gid=0, mtime=0, filesize=0, namesize=len(encoded))
    out.write(header + encoded + _pad4(len(header) + len(encoded)))


def newc_archive(members: Iterable[Member]) -> bytes:
    """The bytes of a newc archive holding `members`, in order."""
    out = io.BytesIO()
    write_archive(out, members)
    return out.getvalue()


def write_initrd(path: os.PathLike[str] | str, members: Iterable[Member]) -> None:
    """Write a newc archive of `members` to `path`."""
    with open(path, "wb") as out:
        write_archive(out, members)


# ---- what --add brings ----


def _member_of(path: Path, name: str, st: os.stat_result) -> Member:
    if stat.S_ISLNK(st.st_mode):
        source: bytes | Path = os.readlink(path).encode()
    elif stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        source = b"" if stat.S_ISDIR(st.st_mode) else path
    else:
        raise ArchiveError(f"{path}: not a regular file, directory or symlink")
    return Member(name, source, mode=st.st_mode, mtime=int(st.st_mtime),
                  uid=st.st_uid, gid=st.st_gid)  # fmt: skip


def host_members(host: Path, guest: str) -> list[Member]:
    """The members that put `host` at the absolute guest path `guest`: a file, or a
    directory with its whole tree (parents before children). The top is followed if
    it is a symlink, as a bind mount would; symlinks inside stay symlinks."""
    top = host.resolve() if host.is_symlink() else host
    name = guest.strip("/")
    members = [] if not name else [_member_of(top, name, os.stat(top))]
    if not top.is_dir():
        if not name:
            raise ArchiveError(f"{host}: only a directory can go to /")
        return members
    for directory, dirnames, filenames in os.walk(top, onerror=_raise):
        dirnames.sort()
        for entry in sorted(dirnames) + sorted(filenames):
            path = Path(directory) / entry
            relative = path.relative_to(top).as_posix()
            members.append(_member_of(path, f"{name}/{relative}" if name else relative,
                                      os.lstat(path)))  # fmt: skip
    return members


def _raise(error: OSError) -> None:
    raise ArchiveError(f"{error.filename}: {error.strerror}")


# ---- reading archives: what --export brings back ----


@dataclass(frozen=True)
class Entry:
    """One member read from an archive."""

    name: str
    mode: int
    mtime: int
    data: bytes


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ArchiveError("the archive ends in the middle of a member")
    return data


def read_archive(stream: BinaryIO) -> Iterator[Entry]:
    """The members of one newc archive from `stream`, up to its trailer (which is
    read too, so the next archive in the stream can follow)."""
    while True:
        header = _read_exactly(stream, HEADER_SIZE)
        if header[:6] != MAGIC:
            raise ArchiveError("not a newc archive member (bad magic)")
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise ArchiveError("a newc header with a field that is not hex") from None
        mode, mtime, filesize, namesize = fields[1], fields[5], fields[6], fields[11]
        name_bytes = _read_exactly(stream, namesize)
        _read_exactly(stream, -(HEADER_SIZE + namesize) % 4)
        if not name_bytes.endswith(b"\0"):
            raise ArchiveError("a member name without its NUL")
        name = name_bytes[:-1].decode(errors="surrogateescape")
        data = _read_exactly(stream, filesize)
        _read_exactly(stream, -filesize % 4)
        if name == TRAILER:
            return
        yield Entry(name, mode, mtime, data)


def _safe_parts(name: str) -> list[str]:
    """The components of a member's name, refused if it could leave the target."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise ArchiveError(f"a member named {name!r} would leave its target")
    return parts


def _real_directory(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def extract(entries: Iterable[Entry], target: Path) -> int:
    """Write an archive's members (read_archive's) at `target` (the archive's "." is
    target itself): directories made, files and symlinks replaced, modes and mtimes as
    archived. Nothing is written through a symlink the archive made. The number of
    members."""
    count = 0
    directories = []
    for entry in entries:
        parts = _safe_parts(entry.name)
        path = target.joinpath(*parts)
        for depth in range(len(parts)):
            parent = target.joinpath(*parts[:depth])
            if not _real_directory(parent):
                raise ArchiveError(f"{parent}: not a directory the archive made")
        kind = stat.S_IFMT(entry.mode)
        if kind == stat.S_IFDIR:
            if not _real_directory(path):
                if path.is_symlink() or path.exists():
                    path.unlink()
                path.mkdir()
            directories.append((path, entry))
        elif kind in (stat.S_IFREG, stat.S_IFLNK):
            if path.is_symlink() or (path.exists() and not path.is_dir()):
                path.unlink()
            if kind == stat.S_IFLNK:
                os.symlink(entry.data.decode(errors="surrogateescape"), path)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(entry.data)
                os.chmod(path, stat.S_IMODE(entry.mode))
                os.utime(path, (entry.mtime, entry.mtime))
        else:
            continue  # devices and the like have no place on the host
        count += 1
    # Directories last, deepest first: their entries made them newer.
    for path, entry in reversed(directories):
        os.chmod(path, stat.S_IMODE(entry.mode))
        os.utime(path, (entry.mtime, entry.mtime))
    return count
