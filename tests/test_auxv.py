"""The initial process stack: argv, envp and auxv as the app and its libc see them.

Each check runs against the host's Linux too, which proves the checks (and
auxv.c) right before they judge our kernel.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from guest import VARIANTS, app, osvgdb_run

ARGS = ["a b", "-x", "--strace", "it's", ""]
ENV = {"GREETING": "hello world", "EMPTY": ""}

AT_NULL = 0
AT_HWCAP = 16
REQUIRED = {
    "AT_PHDR": 3,
    "AT_PHENT": 4,
    "AT_PHNUM": 5,
    "AT_PAGESZ": 6,
    "AT_BASE": 7,
    "AT_FLAGS": 8,
    "AT_ENTRY": 9,
    "AT_UID": 11,
    "AT_EUID": 12,
    "AT_GID": 13,
    "AT_EGID": 14,
    "AT_SECURE": 23,
    "AT_RANDOM": 25,
    "AT_HWCAP": 16,
    "AT_HWCAP2": 26,
    "AT_CLKTCK": 17,
    "AT_PLATFORM": 15,
    "AT_EXECFN": 31,
    "AT_MINSIGSTKSZ": 51,
}


def unescape(value: str) -> str:
    """auxv.c prints bytes outside printable ASCII, and '\\', as \\xNN."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode())
    return raw.decode()


@dataclass
class Report:
    argv: list[str]
    envp: list[str]
    values: dict[str, str]
    auxv: list[tuple[int, int]]

    @classmethod
    def parse(cls, lines: list[str]) -> Report:
        report = cls([], [], {}, [])
        for line in lines:
            key, _, value = line.partition(" ")
            if key.startswith("argv["):
                report.argv.append(unescape(value))
            elif key.startswith("envp["):
                report.envp.append(unescape(value))
            elif key == "auxv":
                kind, val = value.split()
                report.auxv.append((int(kind), int(val, 16)))
            else:
                report.values[key] = value
        assert int(report.values["argc"]) == len(report.argv), lines
        return report

    def at(self, name: str) -> int:
        return int(self.values[name], 16)


def elf_facts(exe: Path) -> dict[str, int]:
    with open(exe, "rb") as f:
        elf = ELFFile(f)
        header = elf.header
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        # The program headers' own address: inside the load segment that maps e_phoff.
        (holder,) = [
            seg
            for seg in loads
            if seg["p_offset"] <= header["e_phoff"] < seg["p_offset"] + seg["p_filesz"]
        ]
        return {
            "type_dyn": header["e_type"] == "ET_DYN",
            "entry": header["e_entry"],
            "phdr": holder["p_vaddr"] + header["e_phoff"] - holder["p_offset"],
            "phnum": header["e_phnum"],
            "phentsize": header["e_phentsize"],
        }


def check(report: Report, exe: Path, *, argv0: str, execfn: str) -> None:
    assert report.argv == [argv0, *ARGS]
    assert report.envp == [f"{name}={value}" for name, value in ENV.items()]

    types = [kind for kind, _ in report.auxv]
    assert types[-1] == AT_NULL and AT_NULL not in types[:-1], types
    missing = {name for name, kind in REQUIRED.items() if kind not in types}
    assert not missing, f"auxv lacks {sorted(missing)}"
    raw = dict(report.auxv)
    for name, kind in REQUIRED.items():
        # glibc's getauxval(AT_HWCAP) answers its own x86 feature bits instead.
        if kind != AT_HWCAP:
            assert report.at(name) == raw[kind], name

    elf = elf_facts(exe)
    base = report.at("AT_PHDR") - elf["phdr"]
    assert report.at("AT_ENTRY") - elf["entry"] == base
    if elf["type_dyn"]:
        assert base != 0 and base % 4096 == 0, hex(base)
    else:
        assert base == 0, hex(base)
        assert report.at("AT_BASE") == 0  # no interpreter
    assert report.at("AT_PHNUM") == elf["phnum"]
    assert report.at("AT_PHENT") == elf["phentsize"] == 56

    assert report.at("AT_PAGESZ") == 4096
    assert report.at("AT_CLKTCK") == 100  # USER_HZ, what Linux reports
    assert report.at("AT_FLAGS") == 0
    assert report.at("AT_SECURE") == 0
    assert report.at("AT_RANDOM") != 0
    assert re.fullmatch(r"[0-9a-f]{32}", report.values["AT_RANDOM_BYTES"])
    assert int(report.values["AT_RANDOM_BYTES"], 16) != 0
    assert report.values["AT_PLATFORM_STR"] == "x86_64"
    assert unescape(report.values["AT_EXECFN_STR"]) == execfn
    for key, syscall in (
        ("AT_UID", "uid"),
        ("AT_EUID", "euid"),
        ("AT_GID", "gid"),
        ("AT_EGID", "egid"),
    ):
        assert report.at(key) == int(report.values[syscall]), key


@pytest.mark.usefixtures("apps")
@pytest.mark.parametrize("variant", VARIANTS)
def test_auxv_on_host_linux(variant: str) -> None:
    exe = app("auxv", variant)
    result = subprocess.run([str(exe), *ARGS], env=ENV, capture_output=True, text=True, check=True)
    report = Report.parse(result.stdout.splitlines())
    check(report, exe, argv0=str(exe), execfn=str(exe))


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", VARIANTS)
def test_auxv_in_guest(variant: str, accel: str) -> None:
    exe = app("auxv", variant)
    env_options = [f"--env={name}={value}" for name, value in ENV.items()]
    run = osvgdb_run("--accel", accel, *env_options, str(exe), *ARGS)
    assert run.status == 0, run
    report = Report.parse(run.app_lines)
    check(report, exe, argv0=f"/{exe.name}", execfn=f"/{exe.name}")
