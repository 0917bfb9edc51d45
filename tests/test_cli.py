"""`osvgdb` argument handling: one-line errors, and the app's words kept whole."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from guest import app, osvgdb_command

from osvgdb.cli import _parser, parse_run_options


def parse(*argv: str):
    return parse_run_options(_parser("run").parse_args(["run", *argv]))


def executable(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.write_bytes(b"")
    path.chmod(0o755)
    return path


def test_words_after_exe_belong_to_the_app(tmp_path: Path) -> None:
    exe = executable(tmp_path)
    options = parse("--strace", "--accel", "tcg", str(exe), "-x", "--strace", "--", "--timeout")
    assert options.exe == exe
    assert options.args == ["-x", "--strace", "--", "--timeout"]
    assert options.strace and options.accel == "tcg"


def test_leading_double_dash_ends_osvgdb_options(tmp_path: Path) -> None:
    exe = executable(tmp_path)
    options = parse("--env", "A=b c", "--no-fsgsbase", "--", str(exe), "a")
    assert options.args == ["a"]
    assert options.env == [("A", "b c")]
    assert not options.fsgsbase


def osvgdb(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(osvgdb_command(*argv), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "/no/such/exe"], "osvgdb: error: /no/such/exe: no such file"),
        (["run", "/"], "osvgdb: error: /: not a regular file"),
        (["run"], "osvgdb: error: run: missing EXE"),
        (["run", "--smp", "0", "/bin/true"], "osvgdb: error: argument --smp:"),
        (["run", "--timeout", "-1", "/bin/true"], "osvgdb: error: argument --timeout:"),
        (["run", "--env", "1X=y", "/bin/true"], "osvgdb: error: argument --env:"),
        (["run", "--accel", "xen", "/bin/true"], "osvgdb: error: argument --accel:"),
        (["frobnicate"], "osvgdb: error: argument COMMAND:"),
        (["run", "--log", "/no/such/dir/log", "/bin/true"],
         "osvgdb: error: --log /no/such/dir/log: No such file or directory"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(argv: list[str], message: str) -> None:
    result = osvgdb(*argv)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(message), result.stderr


@pytest.mark.usefixtures("apps")
@pytest.mark.parametrize("command", ["run", "debug"])
def test_exe_without_execute_permission_is_refused_as_execve_would(
    command: str, tmp_path: Path
) -> None:
    exe = tmp_path / "app"
    shutil.copyfile(app("hello", "glibc"), exe)
    exe.chmod(0o644)
    # A TMPDIR of its own: QEMU would leave its private directory there.
    result = subprocess.run(
        osvgdb_command(command, str(exe)),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert (result.returncode, result.stdout) == (126, ""), result
    assert result.stderr == f"osvgdb {command}: {exe}: Permission denied\n"
    assert list(tmp_path.iterdir()) == [exe]  # nothing was started


def test_run_help_documents_the_exit_statuses() -> None:
    result = osvgdb("run", "--help")
    assert result.returncode == 0
    for status in ("126", "127", "70", "124", "125", "128+N"):
        assert f"\n  {status} " in result.stdout, status


def test_kernel_option_takes_an_existing_file(tmp_path: Path) -> None:
    exe = executable(tmp_path)
    kernel = tmp_path / "kernel.elf"
    kernel.write_bytes(b"")
    assert parse("--kernel", str(kernel), str(exe)).kernel == kernel.resolve()
    assert parse(str(exe)).kernel is None
    result = subprocess.run(
        osvgdb_command("run", "--kernel", str(tmp_path / "nope"), str(exe)),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == f"osvgdb: error: --kernel {tmp_path / 'nope'}: no such file\n"


HEAVY = ("prompt_toolkit", "osvgdb.tui", "osvgdb.triage", "osvgdb.model", "qemu.qmp", "pygdbmi")


def imported_by(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running `code`."""
    probe = code + "\nimport sys\nprint(' '.join(m for m in sys.modules if m.startswith(HEAVY)), file=sys.stderr)"
    result = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n" + probe],
                            capture_output=True, text=True, check=True)  # fmt: skip
    return result.stderr.split()


def test_each_command_imports_only_what_it_uses(tmp_path: Path) -> None:
    """`osvgdb --help` and `osvgdb run`'s parsing import no TUI, triage, model or QMP
    library (scripts/benchmark_startup measures what that saves)."""
    help_code = "from osvgdb import cli\ntry:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass"
    assert imported_by(help_code) == []
    exe = executable(tmp_path)
    run_code = f"from osvgdb import cli\ncli.parse_run_options(cli._parser('run').parse_args(['run', {str(exe)!r}]))"
    assert imported_by(run_code) == []
    tui_code = "from osvgdb import cli\ncli._parser('tui')"
    assert "prompt_toolkit" in imported_by(tui_code)  # the probe sees imports when there are
