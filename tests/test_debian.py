"""Debian's static programs doing their real job on files given with --add: signature
verification (gpgv-static), a filesystem check and repair (e2fsck-static), an archive
(dar-static). The same binary on the host, given the same files, is the oracle; what
comes back with --export is checked by the host's own tools. README's "What real programs
call" has the sweep these come from."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from guest import RUN_TIMEOUT, osvgdb_command, osvgdb_run

pytestmark = pytest.mark.usefixtures("kernel")

GPGV = Path("/usr/bin/gpgv-static")
E2FSCK = Path("/sbin/e2fsck.static")
DAR = Path("/usr/bin/dar_static")


def need(*paths: Path | str) -> None:
    for path in paths:
        if not (Path(path).exists() or shutil.which(str(path))):
            pytest.fail(f"{path} is missing: run scripts/bootstrap", pytrace=False)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key made by the host's gpg, a message and its detached signature, and a
    tampered copy of the message."""
    need("gpg", GPGV)
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    root = tmp_path_factory.mktemp("signed")
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet"]
    try:
        subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "osvgdb test <test@example.com>",
                        "ed25519", "sign", "never"], env=env, check=True, capture_output=True)  # fmt: skip
        (root / "msg.txt").write_text("a message worth signing\n" * 100)
        subprocess.run([*gpg, "--detach-sign", str(root / "msg.txt")], env=env, check=True)
        with open(root / "pub.gpg", "wb") as key:
            subprocess.run([*gpg, "--export"], env=env, check=True, stdout=key)
    finally:  # gpg started an agent for the key: it must not outlive the test
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
    (root / "tampered.txt").write_text("a message worth signing\n" * 99 + "a message worth singing\n")
    return root


@pytest.mark.parametrize("message", ["msg.txt", "tampered.txt"])
def test_gpgv_verifies_a_signature_as_on_the_host(signed: Path, message: str) -> None:
    argv = ["--keyring", "/keys/pub.gpg", "/keys/msg.txt.sig", f"/keys/{message}"]
    host = subprocess.run([str(GPGV), *[a.replace("/keys", str(signed)) for a in argv]],
                          capture_output=True, text=True)  # fmt: skip
    run = osvgdb_run("--accel", "tcg", "--add", f"{signed}:/keys", str(GPGV), *argv)
    assert run.status == host.returncode == (0 if message == "msg.txt" else 1), run
    assert run.stderr.splitlines() == host.stderr.replace(str(signed), "/keys").splitlines(), run
    assert ("Good signature" if message == "msg.txt" else "BAD signature") in run.stderr


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """An ext2 image holding a small tree, and a copy with a broken link count."""
    need("mke2fs", "debugfs", E2FSCK)
    tree = tmp_path / "tree"
    (tree / "dir").mkdir(parents=True)
    for i in range(20):
        (tree / "dir" / f"file{i}").write_text(f"file {i}\n" * (i * 50 + 1))
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-b", "1024", "-E", "root_owner=0:0",
                    "-d", str(tree), str(tmp_path / "clean.img"), "2048"], check=True)  # fmt: skip
    shutil.copy(tmp_path / "clean.img", tmp_path / "broken.img")
    subprocess.run(["debugfs", "-w", "-R", "sif /dir/file3 links_count 5", str(tmp_path / "broken.img")],
                   check=True, capture_output=True)  # fmt: skip
    return tmp_path


@pytest.mark.parametrize("image", ["clean.img", "broken.img"])
def test_e2fsck_checks_an_image_as_on_the_host(images: Path, image: str) -> None:
    host = subprocess.run([str(E2FSCK), "-fn", str(images / image)], capture_output=True, text=True)
    run = osvgdb_run("--accel", "tcg", "--add", f"{images / image}:/fs.img", str(E2FSCK), "-fn", "/fs.img")
    assert run.status == host.returncode == (0 if image == "clean.img" else 4), run
    assert run.app_lines == host.stdout.replace(str(images / image), "/fs.img").splitlines(), run
    assert run.stderr == host.stderr, run


def test_e2fsck_repairs_an_image_the_host_then_finds_clean(images: Path, tmp_path: Path) -> None:
    repaired = tmp_path / "repaired.img"
    host_copy = tmp_path / "host.img"
    shutil.copy(images / "broken.img", host_copy)
    host = subprocess.run([str(E2FSCK), "-fy", str(host_copy)], capture_output=True, text=True)
    run = osvgdb_run("--accel", "tcg", "--add", f"{images / 'broken.img'}:/fs.img",
                     "--export", f"/fs.img:{repaired}", str(E2FSCK), "-fy", "/fs.img")  # fmt: skip
    assert run.status == host.returncode == 1, run  # "file system errors corrected"
    assert run.app_lines == host.stdout.replace(str(host_copy), "/fs.img").splitlines(), run
    check = subprocess.run([str(E2FSCK), "-fn", str(repaired)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def run_answering(argv: list[str], answer: bytes, prompt: bytes) -> tuple[int, bytes]:
    """osvgdb run in a terminal of its own (the app's /dev/tty), answering each prompt."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    output, answered = b"", 0
    deadline = time.monotonic() + 2 * RUN_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        try:
            data = os.read(fd, 65536) if ready else b""
        except OSError:
            break                   # the terminal is gone: osvgdb exited
        if ready and not data:
            break
        output += data
        if output.count(prompt) > answered:
            answered = output.count(prompt)
            os.write(fd, answer)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), output


def test_dar_archives_a_tree_the_host_extracts_identical(tmp_path: Path) -> None:
    """dar asks at the terminal whether to go on without GPGME (it cannot run gpgconf:
    no fork), as it would on a host without gpg; Return says yes. libgcrypt's secure
    memory takes mlock. The archive comes back with --export; the host's dar restores it."""
    need(DAR)
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    for i in range(12):
        (tree / "sub" / f"f{i}").write_bytes(bytes(range(i, 256)) * (i + 1))
    (tree / "deeper-link").symlink_to("sub/deeper")
    (tree / "script").write_text("#!/bin/sh\n")
    (tree / "script").chmod(0o751)
    argv = [*osvgdb_command("run", "--accel", "tcg", "--timeout", str(RUN_TIMEOUT),
                            "--add", f"{tree}:/data", "--export", f"/tmp/arch.1.dar:{tmp_path / 'arch.1.dar'}"),
            str(DAR), "-c", "/tmp/arch", "-R", "/data"]  # fmt: skip
    status, output = run_answering(argv, b"\r", b"[return = YES | Esc = NO]")
    assert status == 0, output.decode(errors="replace")[-3000:]
    assert b"inode(s) saved" in output
    restored = tmp_path / "restored"
    restored.mkdir()
    subprocess.run([str(DAR), "-Q", "-x", str(tmp_path / "arch"), "-R", str(restored)],
                   check=True, capture_output=True)  # fmt: skip
    diff = subprocess.run(["diff", "-r", "--no-dereference", str(tree), str(restored)],
                          capture_output=True, text=True)  # fmt: skip
    assert diff.returncode == 0, diff.stdout
    assert (restored / "script").stat().st_mode & 0o777 == 0o751
