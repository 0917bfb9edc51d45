"""The initrd writer and the export reader, checked against GNU cpio (an implementation we
did not write) and the host's diff."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.initrd import (
    DATA_MODE,
    EXECUTABLE_MODE,
    ArchiveError,
    Member,
    extract,
    host_members,
    newc_archive,
    read_archive,
    write_initrd,
)

pytestmark = pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")


def cpio_list(archive: Path) -> list[str]:
    result = subprocess.run(
        ["cpio", "-it", "--quiet", "-F", str(archive)], capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def cpio_extract(archive: Path, into: Path) -> None:
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", "-F", str(archive)],
        cwd=into,
        capture_output=True,
        check=True,
    )


def test_layout_of_one_member() -> None:
    archive = newc_archive([Member("a", b"xyz", mode=EXECUTABLE_MODE)])
    # 110-byte header, "a\0" padded to 112, 3 data bytes padded to 4.
    assert archive[:6] == b"070701"
    assert int(archive[14:22], 16) == EXECUTABLE_MODE
    assert int(archive[54:62], 16) == 3  # filesize
    assert int(archive[94:102], 16) == 2  # namesize, with the NUL
    assert archive[110:116] == b"a\0xyz\0"
    trailer = archive[116:]
    assert trailer[:6] == b"070701"
    assert trailer[110:121] == b"TRAILER!!!\0"
    assert len(archive) % 4 == 0


def test_executable_from_host_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"\x7fELF" + bytes(range(256)) * 10)
    archive = tmp_path / "initrd.cpio"
    write_initrd(archive, [Member("hello", source, mode=EXECUTABLE_MODE)])

    assert cpio_list(archive) == ["hello"]
    out = tmp_path / "out"
    out.mkdir()
    cpio_extract(archive, out)
    assert (out / "hello").read_bytes() == source.read_bytes()
    assert stat.S_IMODE((out / "hello").stat().st_mode) == 0o755


@pytest.mark.parametrize("name", ["", "/hello", "a\0b", "TRAILER!!!"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(ArchiveError):
        newc_archive([Member(name, b"")])


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40).filter(
    lambda name: name not in (".", "..")
)
members = st.dictionaries(names, st.binary(max_size=3000), min_size=1, max_size=6)


@settings(max_examples=30, deadline=None)
@given(members=members, executable=st.booleans())
def test_round_trip_through_gnu_cpio(members: dict[str, bytes], executable: bool) -> None:
    mode = EXECUTABLE_MODE if executable else DATA_MODE
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "initrd.cpio"
        write_initrd(archive, [Member(name, data, mode=mode) for name, data in members.items()])
        assert archive.stat().st_size % 4 == 0
        assert cpio_list(archive) == list(members)

        out = Path(tmp) / "out"
        out.mkdir()
        cpio_extract(archive, out)
        assert sorted(os.listdir(out)) == sorted(members)
        for name, data in members.items():
            assert (out / name).read_bytes() == data
            assert stat.S_IMODE((out / name).stat().st_mode) == mode & 0o7777


def make_tree(root: Path) -> None:
    """Files of several sizes and modes, an empty directory, nested ones, a symlink."""
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 40)
    (root / "sub" / "deeper" / "c").write_bytes(b"")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o750)
    (root / "sub").chmod(0o711)
    (root / "link").symlink_to("sub/b.bin")
    os.utime(root / "a.txt", (1_000_000_000, 1_234_567_890))


def test_a_host_tree_goes_in_whole(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    archive = tmp_path / "initrd.cpio"
    write_initrd(archive, host_members(tree, "/data/in"))
    names = cpio_list(archive)
    assert names[:2] == ["data/in", "data/in/empty"]  # parents before children
    assert set(names) == {"data/in"} | {f"data/in/{p.relative_to(tree)}" for p in tree.rglob("*")}
    out = tmp_path / "out"
    out.mkdir()
    cpio_extract(archive, out)
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(out / "data/in")],
                          capture_output=True, text=True)  # fmt: skip
    assert diff.returncode == 0, diff.stdout
    assert stat.S_IMODE((out / "data/in/run.sh").stat().st_mode) == 0o750
    assert os.readlink(out / "data/in/link") == "sub/b.bin"


def test_the_reader_reads_what_gnu_cpio_writes(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    listing = "\n".join(sorted(str(p.relative_to(tree)) for p in tree.rglob("*"))) + "\n"
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=listing.encode(),
                             capture_output=True, check=True).stdout  # fmt: skip
    entries = {e.name: e for e in read_archive(io.BytesIO(archive))}
    assert set(entries) == set(listing.split())
    assert entries["sub/b.bin"].data == (tree / "sub/b.bin").read_bytes()
    assert entries["link"].data == b"sub/b.bin" and stat.S_ISLNK(entries["link"].mode)
    assert entries["a.txt"].mtime == 1_234_567_890


def test_extract_gives_the_tree_back(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    make_tree(tree)
    archive = newc_archive([Member(".", b"", mode=stat.S_IFDIR | 0o755)] + host_members(tree, "/"))
    back = tmp_path / "back"
    back.mkdir()
    assert extract(read_archive(io.BytesIO(archive)), back) > 5
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(back)],
                          capture_output=True, text=True)  # fmt: skip
    assert diff.returncode == 0, diff.stdout
    assert (back / "a.txt").stat().st_mtime == 1_234_567_890


def raw_archive(name: str, data: bytes) -> bytes:
    """One regular member named anything (our writer refuses bad names), and the trailer."""
    good = newc_archive([Member("x" * len(name.encode()), data)])
    return good.replace(b"x" * len(name.encode()) + b"\0", name.encode() + b"\0", 1)


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/etc/passwd"])
def test_extract_refuses_a_name_that_leaves_its_target(tmp_path: Path, name: str) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError):
        extract(read_archive(io.BytesIO(raw_archive(name, b"gotcha"))), target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    assert list(target.iterdir()) == []


def test_extract_writes_nothing_through_a_symlink_it_made(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    archive = newc_archive([
        Member("link", str(outside).encode(), mode=stat.S_IFLNK | 0o777),
        Member("link/planted", b"gotcha"),
    ])  # fmt: skip
    with pytest.raises(ArchiveError):
        extract(read_archive(io.BytesIO(archive)), target)
    assert list(outside.iterdir()) == []
