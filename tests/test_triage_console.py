"""The runtime-report parsers (osvgdb.triage.console), the name rules (osvgdb.model.names)
and the runtime verdicts (osvgdb.triage.runtime) on console texts: pure, no QEMU.

tests/data/triage_console/ holds what the crash corpus printed on the host: Go 1.19
(go119-*), Debian's rustc 1.63 (rust163-*), a rustc 1.95 (rustnew-*: the >= 1.73 format,
with the thread id that 1.88 added), libstdc++, glibc; go121-* (the `gp= m= mp=` header,
`created by F in goroutine N`), libcxx-* and musl-assert are those runtimes' formats
written out as they print them, for toolchains this machine does not have."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from osvgdb.model import names
from osvgdb.triage import console, report, runtime
from osvgdb.triage.outcome import Outcome

DATA = Path(__file__).parent / "data" / "triage_console"


def text(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


@pytest.mark.parametrize("name", ["go119-nilmap", "go121-nilmap"])
def test_go_panic_in_both_headers(name: str) -> None:
    found = console.first(text(name))
    assert (found.runtime, found.what, found.message) == ("go", "go-panic", "assignment to entry in nil map")
    assert not found.corrupted
    guilty = found.guilty_goroutine
    assert guilty.state == "running" and guilty.created_by == "main.main"
    assert [f.function for f in guilty.frames] == ["main.(*cache).put", "main.worker"]
    assert guilty.frames[0].file == "osvgdb.test/nilmap/main.go" and guilty.frames[0].line == 22


def test_go_fault_panic_keeps_the_signal() -> None:
    found = console.first(text("go119-nilderef"))
    assert found.detail["signal"] == "SIGSEGV" and found.detail["addr"] == 8
    assert [f.function for f in found.frames] == ["main.(*session).userName", "main.greet"]


@pytest.mark.parametrize("name", ["go119-chandeadlock", "go121-chandeadlock"])
def test_go_deadlock_lists_every_goroutine(name: str) -> None:
    found = console.first(text(name))
    assert found.what == "go-fatal" and found.message == "all goroutines are asleep - deadlock!"
    states = {g.goid: g.state for g in found.goroutines}
    assert states[1] == "chan receive" and len(states) == 2
    collect = next(g for g in found.goroutines if g.goid != 1)
    assert collect.frames[-1].function == "main.collect"
    verdict = runtime.interpret(found, state_frames=[], state_goroutines=None, exe=None)
    assert verdict.outcome is Outcome.HANG_DEADLOCK and verdict.kind == "go-deadlock"
    assert [label.split(" on ")[0] for label in verdict.hang_labels] == ["main.collect", "main.main"]


def test_go_stack_overflow_and_elided_frames() -> None:
    found = console.first(text("go119-overflow"))
    assert (found.what, found.message) == ("go-fatal", "stack overflow")
    assert found.guilty_goroutine.elided and found.frames[0].function == "main.walk"
    assert "exceeds" in found.detail["runtime"]


def test_go_question_marks_and_inlined_frames_stay_frames() -> None:
    found = console.first(text("go121-nilmap"))  # `put(...)`: inlined, no +0x offset
    assert found.frames[0].function == "main.(*cache).put" and found.frames[0].line == 22


@pytest.mark.parametrize(
    "name, message, thread, line",
    [
        ("rust163-index", "index out of bounds: the len is 3 but the index is 3", "main", 17),
        ("rustnew-index", "index out of bounds: the len is 3 but the index is 3", "main", 17),
        ("rust163-unwrap", "called `Option::unwrap()` on a `None` value", "loader", 14),
    ],
)
def test_rust_panic_both_formats(name: str, message: str, thread: str, line: int) -> None:
    found = console.first(text(name))
    assert (found.runtime, found.what, found.message) == ("rust", "rust-panic", message)
    assert found.detail["thread"] == thread and found.detail["line"] == line
    assert not found.corrupted


def test_rust_backtrace_is_read() -> None:
    for name in ("rust163-index-backtrace", "rustnew-index-backtrace"):
        found = console.first(text(name))
        functions = [f.function for f in found.frames]
        assert any("next_token" in f for f in functions) and functions[0].endswith("rust_begin_unwind")


@pytest.mark.parametrize("name", ["rust163-doublepanic", "rustnew-doublepanic"])
def test_rust_panic_in_a_panic_is_the_first_panic(name: str) -> None:
    found = console.first(text(name))
    assert found.what == "rust-panic-in-panic"
    assert found.message == "transfer failed: amount 500 over the limit"


@pytest.mark.parametrize(
    "name, what, exception, message",
    [
        ("libstdcxx-outofrange", "cxx-uncaught", "std::out_of_range", "vector::_M_range_check: __n (which is 3) >= this->size() (which is 3)"),
        ("libstdcxx-badconfig", "cxx-uncaught", "(anonymous namespace)::config_error", "bad value for 'workers'"),
        ("libcxx-outofrange", "cxx-uncaught", "std::out_of_range", "vector"),
        ("libstdcxx-joinable", "cxx-terminate", None, "without an active exception"),
    ],
)  # fmt: skip
def test_cxx_terminate(name: str, what: str, exception: str | None, message: str) -> None:
    found = console.first(text(name))
    assert (found.runtime, found.what, found.detail.get("type"), found.message) == ("cxx", what, exception, message)


@pytest.mark.parametrize(
    "name, what, problem",
    [("glibc-doublefree", "heap", "double free"), ("glibc-invalidfree", "heap", "invalid pointer"),
     ("glibc-topsize", "heap", "corrupted top size"), ("glibc-smash", "stack-smashing", None),
     ("glibc-fortify", "fortify", None)],
)  # fmt: skip
def test_glibc_checks(name: str, what: str, problem: str | None) -> None:
    found = console.first(text(name))
    assert (found.what, found.detail.get("problem")) == (what, problem)


def test_both_libcs_assertions() -> None:
    glibc, musl = console.first(text("glibc-assert")), console.first(text("musl-assert"))
    assert glibc.runtime == "glibc" and musl.runtime == "musl"
    for found in (glibc, musl):
        assert found.detail["function"] == "check_balance" and found.detail["line"] == 12
        assert found.message == "Assertion `balance >= 0' failed"


def test_old_glibc_error_format() -> None:
    found = console.first("*** Error in `./prog': double free or corruption (fasttop): 0x0000000001c3e010 ***\n")
    assert found.what == "heap" and found.detail["problem"] == "double free"


def test_a_program_s_own_words_are_no_report() -> None:
    assert console.parse("free list empty\nfreeing buffers\nthread 'x' is fine\npanicked: no\n") == []


@pytest.mark.parametrize("name", ["go119-nilmap", "go119-chandeadlock", "rust163-index"])
def test_a_truncated_report_is_corrupted(name: str) -> None:
    whole = text(name)
    first = console.first(whole)
    cut = "\n".join(whole.splitlines()[: first.line + 1]) + "\n"
    if name.startswith("rust"):
        cut = cut.rsplit(",", 1)[0]  # the location cut off
    found = console.first(cut)
    assert found is not None and found.corrupted and found.problems


def test_interleaved_output_is_passed_over() -> None:
    lines = text("go119-nilmap").splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("goroutine "))
    lines.insert(header + 3, "worker 3: flushing")  # another thread's line inside the trace
    found = console.first("\n".join(lines))
    assert [f.function for f in found.frames] == ["main.(*cache).put", "main.worker"]


def test_two_rust_panics_first_one_wins() -> None:
    reports = console.parse(text("rust163-unwrap"))
    assert [r.detail["thread"] for r in reports] == ["loader", "main"]
    assert console.first(text("rust163-unwrap")).detail["thread"] == "loader"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for found in console.parse(data.decode("utf-8", "replace")):
        assert found.runtime in ("go", "rust", "cxx", "glibc", "musl")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(p.stem for p in DATA.glob("*.txt"))), st.integers(0, 4000), st.integers(0, 4000))
def test_any_slice_of_a_real_report_parses(name: str, start: int, length: int) -> None:
    """A console cut anywhere (the start lost, the end lost): reports or none, never a
    traceback; a Go report cut before its trace says it is corrupted."""
    whole = text(name)
    for found in console.parse(whole[start : start + length]):
        if found.runtime == "go" and not found.goroutines:
            assert found.corrupted


def test_scrub_and_slug() -> None:
    assert console.scrub("index [5] with length 3 at 0xc000012345") == "index [NUM] with length NUM at ADDR"
    assert console.slug("runtime error: index out of range [5] with length 3", 8) == (
        "runtime-error-index-out-of-range-with-length"
    )
    assert console.slug("file 'a.txt' not found", quoted=False) == "file-not-found"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("_ZN9__gnu_cxx27__verbose_terminate_handlerEv.cold", "__gnu_cxx::__verbose_terminate_handler"),
        ("_ZL6lookupRKSt6vectorIiSaIiEEm", "lookup"),
        ("_ZNKSt6vectorIiSaIiEE2atEm", "std::vector<T>::at"),
        ("_ZN12_GLOBAL__N_110parse_lineERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
         "(anonymous namespace)::parse_line"),
        ("_ZN3FooclEi", "Foo::operator()"),
        ("_ZN5index6Parser10next_token17h2ba4017f88223cfaE", "index::Parser::next_token"),
        ("_RNvMNtCs4fqI2P2rA04_4test6parserNtB2_6Parser10next_token", "<test::parser::Parser>::next_token"),
        ("_ZN4core3ptr45drop_in_place$LT$doublepanic..Transaction$GT$17heab8b7adf86b5a33E",
         "core::ptr::drop_in_place<T>"),
        ("_Exit", "_Exit"), ("_start", "_start"), ("_int_free", "_int_free"), ("free_list", "free_list"),
        ("___pthread_mutex_lock", "pthread_mutex_lock"), ("__GI___libc_write", "libc_write"),
        ("store_result.isra.0", "store_result"), ("main.(*cache).put", "main.(*cache).put"),
        ("main.(*T).M.func2", "main.(*T).M.func2"), ("runtime.exit.abi0", "runtime.exit"),
    ],
)  # fmt: skip
def test_names_are_never_damaged(raw: str, expected: str) -> None:
    assert names.normalise(raw) == expected


def test_go_user_code_and_rust_crates() -> None:
    assert names.go_is_user("main.worker") and names.go_is_user("github.com/x/y.(*T).F")
    assert not names.go_is_user("sync.(*Mutex).Lock") and not names.go_is_user("internal/poll.(*FD).Read")
    assert names.rust_crate("<usize as core::slice::index::SliceIndex<[T]>>::index") == "core"
    assert names.rust_crate("<doublepanic::Transaction as core::ops::drop::Drop>::drop") == "doublepanic"


def test_the_state_must_agree() -> None:
    go = console.first(text("go119-nilmap"))
    assert runtime.agreement(go, runtime="go", exit_status=2, signal=None) is None
    assert "not a Go program" in runtime.agreement(go, runtime="c", exit_status=2, signal=None)
    assert "exit status 1" in runtime.agreement(go, runtime="go", exit_status=1, signal=None)
    heap = console.first(text("glibc-doublefree"))
    assert runtime.agreement(heap, runtime="c", exit_status=None, signal=6) is None
    assert runtime.agreement(heap, runtime="c", exit_status=0, signal=None) is not None


def test_runtime_reports_are_read_from_the_apps_stderr() -> None:
    """The console triage keeps marks the app's streams (`1| `, `2| `): the report is
    what fd 2 said, in order, whatever stdout and the kernel printed between its lines;
    a console saved before the streams were apart (no marks) is read whole."""
    marked = (
        "osv: booted\n1| working\n2| panic: assignment to entry in nil map\n1| more output\n"
        "2| \n2| goroutine 1 [running]:\n2| main.main()\n2| \t/x.go:9 +0x1d\n2| exit status 2\n"
    )
    stderr = report.app_stderr(marked)
    assert stderr.startswith("panic: assignment to entry in nil map\n\ngoroutine 1 [running]:")
    assert "working" not in stderr and "osv:" not in stderr
    found = console.first(stderr)
    assert found is not None and found.message == "assignment to entry in nil map"
    assert [f.function for f in found.frames][:1] == ["main.main"]
    unmarked = "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:9 +0x1d\n"
    assert report.app_stderr(unmarked) == unmarked
