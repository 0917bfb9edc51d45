"""`osvgdb run --add HOST[:GUEST]` puts host files and trees in the guest, and
`--export GUEST:HOST` brings what the program wrote back. Oracles: the host running the
same program (kernel/apps/tree.c, Debian's busybox, bash-static) on the same tree, and
the host's diff."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from guest import RUN_TIMEOUT, app, osvgdb_command, osvgdb_run

pytestmark = pytest.mark.usefixtures("kernel")

BUSYBOX = Path("/bin/busybox")
BASH = Path("/bin/bash-static")


@pytest.fixture
def tree() -> Iterator[Path]:
    """A tree on tmpfs (/dev/shm), as the guest's is, so directory sizes and block
    counts follow the same rules on both sides: files of several sizes (one empty, one
    binary), modes, nested and empty directories, symlinks, set mtimes."""
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        root = Path(scratch) / "tree"
        (root / "sub" / "deeper").mkdir(parents=True)
        (root / "empty").mkdir()
        (root / "a.txt").write_text("alpha\nbeta\n")
        (root / "sub" / "blob").write_bytes(bytes(range(256)) * 300)
        (root / "sub" / "deeper" / "nothing").write_bytes(b"")
        (root / "run.sh").write_text("#!/bin/sh\necho run\n")
        (root / "run.sh").chmod(0o750)
        (root / "secret").write_text("s\n")
        (root / "secret").chmod(0o600)
        (root / "sub").chmod(0o711)
        (root / "link").symlink_to("sub/blob")
        (root / "dangling").symlink_to("nowhere")
        for i, path in enumerate(sorted(root.rglob("*"), reverse=True)):
            os.utime(path, (1_600_000_000 + i, 1_600_000_000 + 1000 * i), follow_symlinks=False)
        os.utime(root, (1_500_000_000, 1_500_000_000))
        yield root


def host_lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.mark.parametrize("variant", ["glibc", "musl"])
def test_a_program_of_its_own_sees_an_added_tree_as_the_host_does(tree: Path, variant: str) -> None:
    exe = app("tree", variant)
    run = osvgdb_run("--accel", "tcg", "--add", f"{tree}:/data/t", str(exe), "/data/t")
    assert run.status == 0, run
    assert run.app_lines == host_lines([str(exe), str(tree)]), run


def test_a_file_goes_to_slash_basename_or_where_it_is_told(tree: Path) -> None:
    exe = app("tree", "glibc")
    run = osvgdb_run("--accel", "tcg", "--add", str(tree / "a.txt"), "--add",
                     f"{tree / 'secret'}:/etc/app/secret.conf", str(exe), "/")  # fmt: skip
    assert run.status == 0, run
    host = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in host_lines([str(exe), str(tree)])}
    guest = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in run.app_lines}
    assert guest["a.txt"] == host["a.txt"], run
    assert guest["etc/app/secret.conf"] == host["secret"], run
    assert guest["etc/app"].startswith("d 755 "), run     # made for it, as mkdir -p would


def test_busybox_lists_and_reads_added_files_as_on_the_host(tree: Path) -> None:
    """ls -lnR --full-time: modes, link counts, numeric owners, sizes, mtimes, symlinks; and
    md5sum of every file."""
    run = osvgdb_run("--accel", "tcg", "--add", f"{tree}:/data", str(BUSYBOX), "ls", "-lnR", "--full-time", "/data")
    assert run.status == 0, run
    host = host_lines([str(BUSYBOX), "ls", "-lnR", "--full-time", str(tree)])
    assert run.app_lines == [line.replace(str(tree), "/data") for line in host], run
    files = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
    run = osvgdb_run("--accel", "tcg", "--add", f"{tree}:/data", str(BUSYBOX), "md5sum",
                     *(f"/data/{name}" for name in files))  # fmt: skip
    assert run.status == 0, run
    host = host_lines([str(BUSYBOX), "md5sum", *(str(tree / name) for name in files)])
    assert run.app_lines == [line.replace(str(tree), "/data") for line in host], run


# Builtins only: bash cannot fork here, and needs no other program to write and read.
BASH_SCRIPT = r"""
d=DIR
echo first > $d/f1
echo second >> $d/f1
printf '%s\n' third 'fourth with spaces' >> $d/f1
while IFS= read -r line; do echo "read: $line"; done < $d/f1
exec 3> $d/f2
echo "through fd 3" >&3
printf 'no newline' >&3
exec 3>&-
IFS= read -r x < $d/f2; echo "f2 first line: $x"
mapfile -t lines < $d/f1
echo "${#lines[@]} lines, the last: ${lines[-1]}"
[[ -s $d/f1 ]] && echo "f1 is not empty"
[[ -e $d/missing ]] || echo "no missing"
: > $d/f1
[[ -s $d/f1 ]] || echo "f1 truncated"
for f in $d/f*; do echo "glob: ${f##*/}"; done
cd $d && echo "pwd ends with ${PWD##*/}"
echo again >> f1; read -r y < f1; echo "relative: $y"
"""


def test_bash_writes_appends_and_reads_back_under_tmp() -> None:
    if not BASH.exists():
        pytest.fail(f"{BASH} is missing: run scripts/bootstrap", pytrace=False)
    script = "; ".join(line for line in BASH_SCRIPT.splitlines() if line)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        host = subprocess.run([str(BASH), "-c", script.replace("DIR", scratch)],
                              capture_output=True, text=True, check=True)  # fmt: skip
    run = osvgdb_run("--accel", "tcg", str(BASH), "-c", script.replace("DIR", "/tmp"))
    assert run.status == 0, run
    assert run.app_lines == host.stdout.replace(Path(scratch).name, "tmp").splitlines(), run
    assert "read: fourth with spaces" in run.app_lines and "f1 truncated" in run.app_lines


def without_mtime(line: str) -> str:
    return " ".join(word for i, word in enumerate(line.split()) if i != 5)


def test_export_brings_a_written_tree_back_identical(tmp_path: Path) -> None:
    exe = app("tree", "glibc")
    reference = tmp_path / "reference"
    subprocess.run([str(exe), "write", str(reference)], check=True)
    run = osvgdb_run("--accel", "tcg", "--export", f"/tmp/out:{tmp_path / 'got'}",
                     str(exe), "write", "/tmp/out")  # fmt: skip
    assert run.status == 0 and run.stderr == "", run
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(reference), str(tmp_path / "got")],
                          capture_output=True, text=True)  # fmt: skip
    assert diff.returncode == 0, diff.stdout
    # Modes and sizes too (tree's listing, its mtime column aside), and the one mtime set.
    got, ref = host_lines([str(exe), str(tmp_path / "got")]), host_lines([str(exe), str(reference)])
    assert [without_mtime(line) for line in got] == [without_mtime(line) for line in ref]
    (moved,) = [line for line in got if line.startswith("docs/small-moved ")]
    assert moved.split()[5] == "1500000000"


def test_export_into_an_existing_directory_as_docker_cp(tmp_path: Path) -> None:
    exe = app("tree", "glibc")
    run = osvgdb_run("--accel", "tcg", "--export", f"/tmp/out:{tmp_path}",
                     "--export", f"/tmp/out/log:{tmp_path / 'log-copy'}",
                     "--export", f"/nothing:{tmp_path / 'nothing'}",
                     str(exe), "write", "/tmp/out")  # fmt: skip
    assert run.status == 0, run
    assert (tmp_path / "out" / "docs" / "big").stat().st_size == 16 * 20000
    assert (tmp_path / "log-copy").read_text().startswith("first\nline 0\n")
    assert run.stderr == "osvgdb: --export /nothing: not in the guest when the app ended\n", run
    assert not (tmp_path / "nothing").exists()


def test_what_is_missing_on_the_host_is_said_before_anything_boots(tmp_path: Path) -> None:
    hello = str(app("hello", "glibc"))
    cases = [
        (["--add", str(tmp_path / "missing")], f"osvgdb: error: --add {tmp_path / 'missing'}: no such file or directory"),
        (["--add", "relative:guest"], "osvgdb: error: --add relative:guest: no such file or directory"),
        (["--export", "/tmp/x:/no/such/dir/x"], "osvgdb: error: --export /tmp/x:/no/such/dir/x: /no/such/dir is no directory"),
        (["--export", "relative:x"], "osvgdb: error: argument --export: GUEST must be an absolute guest path, not 'relative'"),
    ]  # fmt: skip
    for options, message in cases:
        done = subprocess.run(osvgdb_command("run", "--timeout", str(RUN_TIMEOUT), *options, hello),
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert (done.returncode, done.stderr, done.stdout) == (2, message + "\n", ""), options
