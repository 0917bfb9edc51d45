"""The pure parts of `osvgdb run`: the kernel command line and the exit report."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from osvgdb.run import KernelExit, kernel_cmdline, parse_debugcon


def test_kernel_options_come_before_the_path() -> None:
    cmdline = kernel_cmdline(
        "/hello",
        ["arg1", "arg two"],
        strace=True,
        env=[("HOME", "/"), ("GREETING", "hi there")],
        kernel_args=["--verbose"],
    )
    assert (
        cmdline == "--strace --env=HOME=/ '--env=GREETING=hi there' --verbose /hello arg1 'arg two'"
    )


def test_no_fsgsbase_is_a_kernel_option_too() -> None:
    assert kernel_cmdline("/tls", [], fsgsbase=False) == "--no-fsgsbase /tls"


# The kernel splits with POSIX shell rules; shlex.split is that rule's oracle.
words = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)


@given(
    args=st.lists(words, max_size=6),
    env=st.lists(st.tuples(st.from_regex(r"[A-Z_]{1,8}", fullmatch=True), words), max_size=3),
)
def test_every_word_survives_quoting(args: list[str], env: list[tuple[str, str]]) -> None:
    cmdline = kernel_cmdline("/app", args, env=env)
    expected = [f"--env={name}={value}" for name, value in env] + ["/app", *args]
    assert shlex.split(cmdline) == expected


@pytest.mark.parametrize(
    ("text", "final", "expected"),
    [
        ("", False, None),
        ("osv-exit: status=0\n", False, KernelExit(0)),
        ("boot log\nosv-exit: status=126\n", False, KernelExit(126)),
        ("osv-exit: panic\n", False, KernelExit(None)),
        # A line still being written may be a prefix of the real status.
        ("osv-exit: status=1", False, None),
        ("osv-exit: status=12", True, KernelExit(12)),
        ("osv-exit: status=256\n", True, None),
        ("xosv-exit: status=3\n", True, None),
    ],
)
def test_parse_debugcon(text: str, final: bool, expected: KernelExit | None) -> None:
    assert parse_debugcon(text, final=final) == expected


def test_panic_is_a_report_without_status() -> None:
    assert KernelExit(None).panic and not KernelExit(0).panic
