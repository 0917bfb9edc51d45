"""The decoders against an oracle nobody here wrote: the host's strace of the same
program, twice, once decoding (the text to match) and once with `-e raw=all` (the
numbers to feed our CallFormatter). Every argument that is a number, a flag set or
an enumeration, and every failure, must read as strace reads it. Pointers to
structs are left out: strace shows what it read at the call, we show a capture."""

from __future__ import annotations

import errno
import re
import subprocess
from pathlib import Path

import pytest
from guest import app

from osvgdb.decode.args import _FLAG_KINDS, SIGNATURES, CallFormatter

# The kinds whose text depends on the value only: comparable with strace's.
VALUE_KINDS = set(_FLAG_KINDS) | {"d", "u", "o", "dirfd", "fcntlarg"}
LINE = re.compile(r"^\d+\s+(\w+)\((.*)\)\s+= (.*)$")


def split_arguments(text: str) -> list[str]:
    """strace's argument list split at its top-level commas."""
    parts, depth, quoted, current = [], 0, False, ""
    for i, ch in enumerate(text):
        if quoted:
            quoted = not (ch == '"' and text[i - 1] != "\\")
        elif ch == '"':
            quoted = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def calls(log: Path) -> list[tuple[str, list[str], str]]:
    out = []
    for line in log.read_text().splitlines():
        match = LINE.match(line)
        if match:
            name, arguments, result = match.groups()
            out.append((name, split_arguments(arguments), result.strip()))
    return out


def number(text: str) -> int:
    """A number as strace prints it: hex, octal (modes) or decimal."""
    if text.startswith(("0x", "-0x")):
        return int(text, 16)
    if len(text) > 1 and text.startswith("0"):
        return int(text, 8)
    return int(text)


def value_and_text(shown: str) -> tuple[int, str]:
    """`-X verbose` prints `0x802 /* O_RDWR|O_NONBLOCK */`: the number and the text
    strace shows without -X (the number itself when strace has no name for it).
    Anything that is not a number (a string, a struct) is 0: it is not compared."""
    if re.match(r"\w+=", shown):  # clone's `flags=...`: strace's order, not the ABI's
        return 0, ""
    match = re.fullmatch(r"(-?(?:0x)?[0-9a-f]+)(?: /\* (.*) \*/)?", shown)
    if not match:
        return 0, shown
    value, name = match.groups()
    text = value if name is None or "?" in name else name
    return number(value) & (2**64 - 1), text


def raw_result(name: str, text: str) -> int | None:
    restart = {"ERESTARTSYS": -512, "ERESTARTNOINTR": -513, "ERESTARTNOHAND": -514,
               "ERESTART_RESTARTBLOCK": -516}  # the kernel's own, that no errno module has
    if text.startswith("?"):
        return restart.get(text.split()[1]) if len(text.split()) > 1 else None
    failure = re.match(r"-1 (E\w+)", text)
    if failure:
        return -getattr(errno, failure.group(1))
    return number(text.split()[0])


@pytest.mark.parametrize("variant", ["musl", "glibc"])
@pytest.mark.parametrize("program", ["fdcalls", "morecalls", "pipes", "polls", "signals", "timers", "epoll", "eventfd", "hints"])
def test_numbers_flags_and_failures_read_as_strace_reads_them(program: str, variant: str, tmp_path: Path) -> None:
    exe = app(program, variant)
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-X", "verbose", "-o", str(log), str(exe)], capture_output=True, timeout=60
    )
    formatter = CallFormatter(lambda address, length: None)
    compared = 0
    for name, shown_by_strace, result in calls(log):
        signature = SIGNATURES.get(name)
        if signature is None or name == "execve":
            continue
        values = [value_and_text(shown) for shown in shown_by_strace]
        arguments = tuple(value for value, _ in values) + (0,) * (len(signature[0]) - len(values))
        ret = raw_result(name, result)
        ours, _ = formatter.arguments(name, arguments, ret, live_is_call_time=True)
        for index, kind in enumerate(signature[0]):
            # strace leaves out what the call does not read (fcntl's F_GETFL has no third).
            if kind in VALUE_KINDS and index < len(values) and values[index][1]:
                assert ours[index] == values[index][1], (name, index, shown_by_strace)
                compared += 1
        if ret is not None and (ret < 0 or signature[1] == "o"):
            assert formatter.result(name, ret) == result, (name, result)
            compared += 1
    assert compared > 20, f"only {compared} values compared: is {exe} the program it was?"
