"""`osvgdb bench`: the pure parsing, planning and table code on known lines, then the
real thing (QEMU under -icount, the real kernel, the host) on a small subset."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from guest import APPS, KERNEL, osvgdb_command
from processes import cmdline

from osvgdb.bench import guest as bench_guest
from osvgdb.bench import host, matrix, table
from osvgdb.bench.measure import (
    ParseError,
    Run,
    Unavailable,
    parse_line,
    parse_output,
    summarise,
)
from osvgdb.qemu import kvm_accelerated, kvm_usable

PROGRAM = APPS / "bench-crossings"

LINE = (
    "osv-bench bench=syscall fs=set run=2 samples=2000 per=1 median=545 min=545 max=806 "
    "empty=6 tsc=2000000 ns=1000000"
)


def run_line(bench: str, fs: str, run: int, median: int, *, per: int = 1, empty: int = 6,
             tsc: int = 1000, ns: int = 1000) -> str:  # fmt: skip
    return (
        f"osv-bench bench={bench} fs={fs} run={run} samples=10 per={per} median={median} "
        f"min={median} max={median} empty={empty} tsc={tsc} ns={ns}"
    )


# ---- parsing ----


def test_a_run_line_is_parsed_whole() -> None:
    run = parse_line(LINE)
    assert run == Run("syscall", "set", 2, 2000, 1, 545, 545, 806, 6, 2000000, 1000000)
    assert isinstance(run, Run)
    assert run.ticks_per_op == 539
    assert run.ns_per_op == 269.5  # a tick is half a ns by this run's clock


def test_per_divides_the_sample_and_the_empty_timer_is_subtracted() -> None:
    run = parse_line(run_line("ctxsw-apart", "none", 1, 4275, per=2, empty=8))
    assert isinstance(run, Run) and run.ticks_per_op == 2133.5


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("osv-bench done", "done"),
        ("osv-bench error=clone", "error=clone"),
        ("osv-bench bench=ctxsw-apart fs=none unavailable=one-cpu",
         Unavailable("ctxsw-apart", "none", "one-cpu")),
        ("OSv-style osvgdb kernel, x86-64, FS base by wrfsbase", None),
        ("", None),
    ],
)  # fmt: skip
def test_other_lines(line: str, parsed: object) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize(
    "line",
    [
        "osv-bench bench=syscall fs=set run=1",  # fields missing
        LINE.replace("median=545", "median=lots"),
        LINE.replace("per=1", "per=0"),
        LINE.replace("tsc=2000000", "tsc=0"),
        "osv-bench fs=set unavailable=x",  # no bench
        "osv-bench bench=syscall fs=set =3",
    ],
)
def test_lines_that_are_not_what_the_program_prints_are_refused(line: str) -> None:
    with pytest.raises(ParseError):
        parse_line(line)


def test_a_console_yields_its_runs_and_whether_the_program_finished() -> None:
    text = "\n".join(["banner", LINE, "osv-bench bench=interrupt fs=none unavailable=guest-only"])
    output = parse_output(text)
    assert len(output.runs) == 1 and output.unavailable[0].why == "guest-only"
    assert not output.done and output.error is None
    assert parse_output(text + "\nosv-bench done\n").done
    assert parse_output("osv-bench error=mmap\n").error == "mmap"


def test_runs_are_summarised_by_median_and_spread() -> None:
    figure = summarise([539, 541, 539, 545])
    assert (figure.value, figure.spread, figure.runs) == (540, 6, 4)
    assert summarise([1726.5]).value == 1726.5
    assert summarise([1 / 3, 2 / 3]).spread == 0.33


# ---- planning and rows ----


def test_the_default_kernel_boot_measures_none_and_counter_together() -> None:
    configs = matrix.plan(matrix.BENCHES, matrix.PROTOCOLS, matrix.FS_WRITES, "tcg")
    counter = [c for c in configs if c.protocol == "counter"]
    assert {c.fs_modes for c in counter} == {"both"}
    assert {c.fs_modes for c in configs if c.protocol != "counter"} == {"set"}
    # per fs_write and kernel: one boot on one CPU, one on two for ctxsw-apart
    assert len(configs) == 2 * 3 * 2
    assert all((c.smp == 2) == (c.benches == ("ctxsw-apart",)) for c in configs)
    assert counter[0].kernel_args == []
    assert [c.kernel_args for c in configs if c.protocol == "lazy"][0] == ["--fs-protocol=lazy"]


def test_a_filter_boots_only_what_it_needs() -> None:
    configs = matrix.plan(("syscall",), ("none",), ("wrmsr",), "tcg")
    assert configs == [bench_guest.Config("counter", "wrmsr", 1, ("syscall",), ("none",))]
    assert bench_guest.program_args(configs[0], 3) == ["--runs", "3", "--fs", "none", "syscall"]


def _measured() -> matrix.Measured:
    guest_text = "\n".join(
        [
            run_line("syscall", "none", 1, 536), run_line("syscall", "none", 2, 536),
            run_line("syscall", "set", 1, 545), run_line("syscall", "set", 2, 547),
            run_line("interrupt", "set", 1, 360, empty=10),
            run_line("interrupt", "set", 2, 360, empty=10),
            "osv-bench done",
        ]
    )  # fmt: skip
    host_text = "\n".join(
        [
            run_line("syscall", "none", 1, 236, empty=36, tsc=2600, ns=1000),
            run_line("syscall", "none", 2, 232, empty=36, tsc=2600, ns=1000),
            run_line("wrfsbase", "none", 1, 490, per=32, empty=36, tsc=2600, ns=1000),
            "osv-bench bench=rdfsbase fs=none unavailable=no-hwcap2-fsgsbase",
            "osv-bench done",
        ]
    )  # fmt: skip
    return matrix.Measured(
        guest={("counter", "wrfsbase", "tcg"): [parse_output(guest_text)]},
        host=parse_output(host_text),
    )


def test_rows_have_exactly_the_keys_and_tcg_has_no_ns() -> None:
    rows = matrix.rows(_measured(), ("syscall", "interrupt"), ("none", "counter"), ("wrfsbase",),
                       kvm=False)  # fmt: skip
    assert [tuple(row) for row in rows] == [matrix.ROW_KEYS] * 3  # interrupt/none: no runs
    none, counter, interrupt = rows
    assert (none["fs_protocol"], none["instructions"], none["runs"]) == ("none", 530, 2)
    assert (counter["instructions"], counter["spread"]["instructions"]) == (540, 2)
    assert all(row["ns"] is None and row["spread"]["ns"] is None for row in rows)
    assert none["host_ns"] == 76.15  # (200 + 196) / 2 ticks at 2.6 ticks per ns
    assert interrupt["host_ns"] is None and interrupt["instructions"] == 350


def test_anchors_say_why_one_is_missing() -> None:
    anchors = {a.name: a for a in matrix.anchors(_measured().host)}
    assert anchors["wrfsbase (user mode)"].ns == 5.46  # (490 - 36) / 32 ticks at 2.6 per ns
    assert anchors["rdfsbase (user mode)"].why_not == "no-hwcap2-fsgsbase"
    assert anchors["futex handoff, two CPUs"].why_not == "not run"


def test_the_table_says_why_ns_is_missing_and_compares_with_none() -> None:
    measured = _measured()
    rows = matrix.rows(measured, ("syscall",), ("none", "counter"), ("wrfsbase",), kvm=False)
    text = table.render(rows, matrix.anchors(measured.host), accel="tcg", runs=2)
    assert table.NOT_MEASURED in text
    lines = text.splitlines()
    counter = next(line for line in lines if line.startswith("syscall") and "counter" in line)
    assert counter.split()[3:6] == ["540", "+10", "2"]  # instructions, vs none, spread
    assert "not measured: no-hwcap2-fsgsbase" in text


# ---- the command ----


def osvgdb(*argv: str, timeout: float = 600, tmpdir: Path | None = None
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir else None
    return subprocess.run(osvgdb_command(*argv), capture_output=True, text=True,
                          timeout=timeout, env=env)  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--runs", "0"], "osvgdb: error: argument --runs:"),
        (["--bench", "nosuch"], "osvgdb: error: argument --bench:"),
        (["--fs-protocol", "fast"], "osvgdb: error: argument --fs-protocol:"),
        (["--frobnicate"], "osvgdb: error: unrecognized arguments: --frobnicate"),
        (["--kernel", "/no/such/kernel"], "osvgdb: error: --kernel /no/such/kernel: no such file"),
    ],
)
def test_bad_arguments_give_one_line_and_status_2(argv: list[str], message: str) -> None:
    result = osvgdb("bench", *argv, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert result.stdout == ""


@pytest.mark.skipif(kvm_accelerated(), reason="KVM runs guests on hardware here")
def test_kvm_without_hardware_virtualization_is_one_line() -> None:
    result = osvgdb("bench", "--accel", "kvm", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    if not kvm_usable():
        why = "--accel kvm: /dev/kvm cannot be opened read-write: ns cannot be measured here"
    else:  # a /dev/kvm that emulates (kvm_pvm, as on these machines)
        why = "--accel kvm: no VT-x/AMD-V (vmx/svm) in /proc/cpuinfo"
    assert result.stderr.startswith(f"osvgdb: error: {why}")
    assert result.stderr.count("\n") == 1


def _qemus_with(word: str) -> list[int]:
    """QEMU processes whose command line mentions `word`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and "qemu-system" in cmdline(int(entry.name)):
            if word in cmdline(int(entry.name)):
                found.append(int(entry.name))
    return found


def test_a_kernel_that_refuses_the_protocol_is_one_line(kernel: None) -> None:
    config = bench_guest.Config("no-such-protocol", "wrfsbase", 1, ("syscall",))
    with pytest.raises(bench_guest.KernelRefused) as error:
        bench_guest.boot(config, 1, kernel=KERNEL, program=PROGRAM)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("fs_protocol no-such-protocol, fs_write wrfsbase, -smp 1, tcg: ")
    assert "the kernel refused its command line" in message
    # The kernel's own words, as its console gave them.
    assert "(--fs-protocol wants counter, compare or lazy, not no-such-protocol)" in message


def test_qemu_dying_is_one_line_and_leaves_nothing(kernel: None, tmp_path: Path) -> None:
    not_a_kernel = tmp_path / "not-a-kernel.elf"
    not_a_kernel.write_bytes(b"\x7fELF but not really")
    workdirs = tmp_path / "tmp"
    workdirs.mkdir()
    result = osvgdb("bench", "--kernel", str(not_a_kernel), "--bench", "syscall",
                    "--runs", "1", tmpdir=workdirs)  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("osvgdb")]
    assert "Traceback" not in result.stderr
    # QEMU cannot start this kernel in any configuration: one line, the matrix stops
    assert len(errors) == 1, result.stderr
    where = "fs_protocol counter, fs_write wrfsbase, -smp 1, tcg"
    assert errors[0].startswith(f"osvgdb bench: {where}: QEMU exited with status 1 before")
    assert not [line for line in result.stdout.splitlines() if line.startswith("syscall")]
    assert _qemus_with(str(workdirs)) == [] and list(workdirs.iterdir()) == []


@pytest.fixture(scope="module")
def two_benches(kernel: None) -> list[list[dict]]:
    """Two whole `osvgdb bench --json` runs of syscall and interrupt, none and counter."""
    argv = ["bench", "--json", "--runs", "2", "--bench", "syscall", "--bench", "interrupt",
            "--fs-protocol", "none", "--fs-protocol", "counter"]  # fmt: skip
    results = [osvgdb(*argv) for _ in range(2)]
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "host anchors" in result.stderr
    return [json.loads(result.stdout) for result in results]


def test_json_rows_have_exactly_the_keys(two_benches: list[list[dict]]) -> None:
    rows = two_benches[0]
    assert len(rows) == 2 * 2 * 2  # bench x protocol x fs_write
    assert all(tuple(row) == matrix.ROW_KEYS for row in rows)
    assert {(r["bench"], r["fs_protocol"], r["fs_write"]) for r in rows} == {
        (b, p, w) for b in ("syscall", "interrupt") for p in ("none", "counter")
        for w in ("wrfsbase", "wrmsr")
    }  # fmt: skip
    assert all(row["runs"] == 2 for row in rows)


def test_instruction_counts_are_the_same_in_two_runs(two_benches: list[list[dict]]) -> None:
    first, second = two_benches
    assert [r["instructions"] for r in first] == [r["instructions"] for r in second]
    assert all(r["spread"]["instructions"] == 0 for r in first + second)


def test_none_costs_fewer_instructions_than_counter(two_benches: list[list[dict]]) -> None:
    rows = {(r["bench"], r["fs_protocol"], r["fs_write"]): r for r in two_benches[0]}
    for bench in ("syscall", "interrupt"):
        for fs_write in ("wrfsbase", "wrmsr"):
            none = rows[(bench, "none", fs_write)]["instructions"]
            counter = rows[(bench, "counter", fs_write)]["instructions"]
            assert 0 < none < counter, (bench, fs_write)


def test_tcg_gives_no_ns_and_the_host_gives_positive_ns(two_benches: list[list[dict]]) -> None:
    for row in two_benches[0]:
        assert row["ns"] is None
        if row["bench"] == "syscall":
            assert row["host_ns"] > 0
        else:
            assert row["host_ns"] is None  # no host twin for a timer interrupt


def test_the_host_anchors_are_positive(apps: None) -> None:
    anchors = matrix.anchors(host.measure(PROGRAM, 2))
    assert [a.name for a in anchors] == list(matrix.ANCHOR_NAMES.values())
    for anchor in anchors:
        if anchor.why_not is None:
            assert anchor.ns is not None and anchor.ns > 0 and anchor.runs == 2
        else:  # only a host without the instructions or without a second CPU
            assert anchor.why_not in ("no-hwcap2-fsgsbase", "one-cpu")


def test_under_icount_the_guest_clock_counts_instructions(kernel: None) -> None:
    """The empty timers hold a known number of instructions, and they read exactly that:
    shl, or, mov, `mov $110, %eax`, lfence, rdtsc (6) around a getppid that is not
    made; rdtsc, shl, or, mov, sub, mov, cmp, ja, dec, jnz (10) per turn of the
    interrupt loop.  The kernel's own clock, calibrated against the PIT, runs at one
    ns per instruction too (shift=0)."""
    config = bench_guest.Config("counter", "wrfsbase", 1, ("syscall", "interrupt"), ("none",))
    output = bench_guest.boot(config, 1, kernel=KERNEL, program=PROGRAM)
    empties = {run.bench: run.empty for run in output.runs}
    assert empties == {"syscall": 6, "interrupt": 10}
    for run in output.runs:
        assert abs(run.ns - run.tsc) < run.tsc / 1000


def _protocol_rows(*extra: str) -> list[dict] | None:
    """`osvgdb bench --json` of syscall and interrupt under every protocol, or None when
    the kernel has no --fs-protocol (before the protocols branch is merged)."""
    result = osvgdb("bench", "--json", "--runs", "2", "--bench", "syscall",
                    "--bench", "interrupt", *extra)  # fmt: skip
    if "unknown kernel option --fs-protocol" in result.stderr:
        return None
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_protocol_side_by_side(kernel: None) -> None:
    rows = _protocol_rows()
    if rows is None:
        pytest.skip("this kernel has no --fs-protocol yet: only none and counter run")
    cells = {(r["bench"], r["fs_protocol"], r["fs_write"]): r["instructions"] for r in rows}
    assert len(cells) == len(rows) == 2 * 4 * 2
    for fs_write in matrix.FS_WRITES:
        counter = cells[("syscall", "counter", fs_write)]
        assert cells[("syscall", "none", fs_write)] < counter
        assert cells[("syscall", "lazy", fs_write)] < counter
        assert cells[("syscall", "compare", fs_write)] > 0


def test_the_markdown_table_has_a_line_per_row() -> None:
    rows = matrix.rows(_measured(), ("syscall",), ("none", "counter"), ("wrfsbase",), kvm=False)
    lines = table.render_markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2] == "| syscall | none | wrfsbase | 530 |  | 0 | - | 76.15 |"
    assert lines[3] == "| syscall | counter | wrfsbase | 540 | +10 | 2 | - | 76.15 |"


def test_under_kvm_ns_comes_from_the_kvm_boots_and_instructions_from_tcg() -> None:
    measured = _measured()
    kvm_text = "\n".join(
        [
            run_line("syscall", "set", 1, 306, empty=36, tsc=3000, ns=1000),
            run_line("syscall", "set", 2, 336, empty=36, tsc=3000, ns=1000),
            "osv-bench done",
        ]
    )
    guest = {**measured.guest, ("counter", "wrfsbase", "kvm"): [parse_output(kvm_text)]}
    both = matrix.Measured(guest=guest, host=measured.host)
    rows = matrix.rows(both, ("syscall",), ("none", "counter"), ("wrfsbase",), kvm=True)
    none, counter = rows
    assert none["ns"] is None  # no KVM boot measured `none`
    assert (counter["instructions"], counter["ns"]) == (540, 95)  # 270 and 300 ticks at 3 per ns
    assert counter["spread"] == {"instructions": 2, "ns": 10, "host_ns": 1.54}
    text = table.render(rows, [], accel="kvm", runs=2)
    assert table.NOT_MEASURED not in text and " 95 " in text
