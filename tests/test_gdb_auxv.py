"""osv-auxv against what the auxv test program prints about itself (getauxval,
its own argv and envp), stopped in its exit_group when all of it is printed."""

from __future__ import annotations

import pytest
from gdbdriver import Debugged
from guest import app
from test_auxv import ARGS, ENV, Report

# The raw auxv the program printed is from its own stack: musl and glibc leave it alone.
AT_NAMES = {"AT_PLATFORM": "AT_PLATFORM_STR", "AT_EXECFN": "AT_EXECFN_STR"}


@pytest.mark.usefixtures("kernel")
@pytest.mark.parametrize("variant", ["glibc", "pie", "musl"])
def test_osv_auxv_equals_getauxval(variant: str) -> None:
    exe = app("auxv", variant)
    debugged = Debugged(exe, ARGS, env=list(ENV.items()))
    try:
        debugged.gdb.run("osv-break syscall exit_group")
        assert ": exit_group(0) = ?" in debugged.gdb.run("continue")
        shown = debugged.gdb.json("osv-auxv --json")
        console = debugged.console.wait_for("auxv 0 0x0\n")
    finally:
        debugged.close()
    lines = console.split("Cmdline: ", 1)[1].splitlines()[1:]
    report = Report.parse([line for line in lines if line and not line.startswith("osv")])

    assert shown["argc"] == len(report.argv)
    assert shown["argv"] == report.argv
    assert shown["envp"] == report.envp
    assert [(e["type"], e["value"]) for e in shown["auxv"]] == report.auxv
    by_name = {e["name"]: e for e in shown["auxv"]}
    for name, entry in by_name.items():
        if name in report.values and name != "AT_HWCAP":  # glibc answers its own HWCAP
            assert entry["value"] == report.at(name), name
    assert by_name["AT_RANDOM"]["decoded"] == report.values["AT_RANDOM_BYTES"]
    for name, key in AT_NAMES.items():
        assert by_name[name]["decoded"] == report.values[key]
    assert by_name["AT_PHDR"]["decoded"] == f"ok (matches {exe})"
