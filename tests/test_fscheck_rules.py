"""The FS-base rules in their two places agree: the kernel's fscheck_rules()
(kernel/include/fscheck.h, compiled here on the host) and the debugger's
check_entry/check_return (osvgdb/decode/frames.py), on every kind of state; and
the rule names in the kernel's DWARF are the ones FSCHECK_RULES documents. Every
state is checked under each FS protocol (--fs-protocol=counter|compare|lazy)."""

from __future__ import annotations

import re
import subprocess

import pytest
from guest import KERNEL, ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.decode import frames
from osvgdb.decode.frames import rule_name
from osvgdb.decode.layout import enums_from_elf

KTCB, APP, OTHER = 0xFFFF800000200000, 0x4AE380, 0x1234000
HARNESS = r"""
#define FSCHECK_HOST_TEST
#include <stdio.h>
#include "types.h"
#include "fscheck.h"
int main(void)
{
    struct fscheck_state s = {0};
    while (scanf("%u %u %lx %lx %lx %ld %ld %u", &s.where, &s.to_app, &s.fs_base, &s.kernel_tcb,
                 &s.app_tcb, &s.counter, &s.entry_counter, &s.protocol) == 8)
        printf("%u\n", fscheck_rules(&s));
    return 0;
}
"""
WHERES = ("FSCHECK_SYSCALL_ENTRY", "FSCHECK_TRAP_ENTRY", "FSCHECK_SYSCALL_RETURN", "FSCHECK_TRAP_RETURN")


@pytest.fixture(scope="module")
def kernel_rules(kernel: None, tmp_path_factory: pytest.TempPathFactory):
    """A function state -> set of broken rule names, by the kernel's own C."""
    tmp = tmp_path_factory.mktemp("fscheck")
    source, exe = tmp / "harness.c", tmp / "harness"
    source.write_text(HARNESS)
    include = ROOT / "kernel" / "include"
    subprocess.run(["gcc", "-O1", "-I", str(include), "-o", str(exe), str(source)], check=True)
    enums = enums_from_elf(KERNEL, ["fscheck_rule", "fscheck_where", "fs_protocol"])
    bits, wheres = enums["fscheck_rule"], enums["fscheck_where"]
    protocols = {n.removeprefix("FS_PROTOCOL_").lower(): v for n, v in enums["fs_protocol"].items()}

    def run(states: list[tuple[str, bool, frames.FsState]]) -> list[set[str]]:
        lines = "".join(
            f"{wheres[w]} {int(to_app)} {s.fs_base:x} {s.kernel_tcb:x} {s.app_tcb:x} "
            f"{s.counter} {s.entry_counter or 0} {protocols[s.protocol]}\n"
            for w, to_app, s in states
        )
        out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True)
        masks = [int(x) for x in out.stdout.split()]
        return [{rule_name(n) for n, bit in bits.items() if mask & bit} for mask in masks]

    return run


def python_rules(where: str, to_app: bool, state: frames.FsState) -> set[str]:
    if where.endswith("ENTRY"):
        return {v.rule for v in frames.check_entry(state)}
    return {v.rule for v in frames.check_return(state, to_app=to_app)}


def test_rule_names_are_the_documented_ones(kernel: None) -> None:
    names = {rule_name(n) for n in enums_from_elf(KERNEL, ["fscheck_rule"])["fscheck_rule"]}
    documented = set(re.findall(r"^  ([a-z]+-[a-z]+) ", frames.FSCHECK_RULES, re.MULTILINE))
    assert names == documented == {"entry-fs", "entry-count", "return-fs", "return-count", "kernel-fs"}


states = st.builds(
    frames.FsState,
    fs_base=st.sampled_from([KTCB, APP, OTHER, 0]),
    kernel_tcb=st.just(KTCB),
    counter=st.integers(-2, 3),
    app_tcb=st.sampled_from([APP, 0, OTHER]),
    entry_counter=st.integers(-2, 2),
    protocol=st.sampled_from(["counter", "compare", "lazy"]),
)


@settings(max_examples=300, deadline=None)
@given(cases=st.lists(st.tuples(st.sampled_from(WHERES), st.booleans(), states), min_size=1, max_size=40))
def test_kernel_and_debugger_rules_agree(kernel_rules, cases) -> None:
    assert kernel_rules(cases) == [python_rules(w, a, s) for w, a, s in cases]
