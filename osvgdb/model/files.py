"""osv-files' report: the app's open files, read from the kernel's fd table.

Each fd of `process.fds` (kernel/core/fd.c) names a struct file (file.c): its kind is
its file_ops' `kind` ("tmpfs", "tmpfs-dir", "tty", "pipe", "epoll", "eventfd", "null",
...), its status flags (F_GETFL's), its offset, how many fds and calls hold it (dup
shares one), and for a file with a name its inode: number, type, size, link count.
Threads share the one table (CLONE_FILES), so the report is the process's.

`files_report` is the data (osv-files --json); `format_files` its text.
"""

from __future__ import annotations

from osvgdb.decode.args import open_flags, read_cstring
from osvgdb.model.kernel import Kernel
from osvgdb.model.target import TargetError

_TYPES = {0o040000: "dir", 0o100000: "file", 0o120000: "symlink", 0o020000: "char device"}


def _inode(kernel: Kernel, address: int) -> dict[str, object] | None:
    layout = kernel.target.layout("inode")
    codec = layout.codec(("ino", "mode", "size", "nlink", "opens"))
    try:
        fields = codec.unpack(kernel.read(address, codec.size))
    except TargetError:
        return None
    mode = int(fields["mode"])  # type: ignore[arg-type]
    return {
        "ino": fields["ino"],
        "type": _TYPES.get(mode & 0o170000, "other"),
        "mode": f"{mode & 0o7777:o}",
        "size": fields["size"],
        "nlink": fields["nlink"],
    }


def files_report(kernel: Kernel) -> dict[str, object]:
    """Every open fd: its number, FD_CLOEXEC, and its file."""
    process = kernel.address("process")
    entry = kernel.target.layout("fd_entry")
    count = kernel.process_layout.fields["fds"].size // entry.size
    table = kernel.read(process + kernel.process_layout.offset("fds"), count * entry.size)
    entries = entry.codec(("file", "cloexec")).unpack_array(table, count)
    file_codec = kernel.target.layout("file").codec(("ops", "refs", "flags", "offset", "inode"))
    kind_codec = kernel.target.layout("file_ops").codec(("kind",))
    fds = []
    for fd, slot in enumerate(entries):
        address = int(slot["file"])  # type: ignore[arg-type]
        if not address:
            continue
        item: dict[str, object] = {"fd": fd, "cloexec": bool(slot["cloexec"]), "file": address}
        try:
            f = file_codec.unpack(kernel.read(address, file_codec.size))
            kind_address = int(kind_codec.unpack(kernel.read(int(f["ops"]), kind_codec.size))["kind"])  # type: ignore[arg-type]
        except TargetError as error:
            item["error"] = str(error)
            fds.append(item)
            continue
        found = read_cstring(kernel.reader, kind_address, 32)
        flags = int(f["flags"])  # type: ignore[arg-type]
        item.update(kind=found[0].decode(errors="replace") if found else None, flags=flags,
                    flags_text=open_flags(flags), offset=f["offset"], refs=f["refs"])  # fmt: skip
        if f["inode"]:
            item["inode"] = _inode(kernel, int(f["inode"]))  # type: ignore[arg-type]
        fds.append(item)
    return {"fds": fds}


def format_files(report: dict[str, object]) -> list[str]:
    lines = [f"{'fd':>3}  {'kind':10} {'flags':28} {'offset':>8} {'refs':>4}  inode"]
    for item in report["fds"]:  # type: ignore[union-attr]
        if "error" in item:
            lines.append(f"{item['fd']:>3}  unreadable file at {item['file']:#x}: {item['error']}")
            continue
        inode = item.get("inode")
        what = (f"{inode['ino']} {inode['type']} {inode['mode']} size {inode['size']} "
                f"nlink {inode['nlink']}") if inode else "-"  # fmt: skip
        flags = item["flags_text"] + (" FD_CLOEXEC" if item["cloexec"] else "")
        lines.append(f"{item['fd']:>3}  {item['kind'] or '?':10} {flags:28} {item['offset']:>8} "
                     f"{item['refs']:>4}  {what}")  # fmt: skip
    return lines
