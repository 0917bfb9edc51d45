"""The initrd writer, checked against GNU cpio (an implementation we did not write)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.initrd import DATA_MODE, EXECUTABLE_MODE, Member, newc_archive, write_initrd

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
    with pytest.raises(ValueError):
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
