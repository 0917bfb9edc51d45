"""The signature rules (osvgdb.triage.signature) on frames built here: pure, no QEMU."""

from osvgdb.triage import signature


def frame(function, module="app", kind="frame"):
    return {"function": function, "module": module, "kind": kind, "file": None, "line": None,
            "address": 0x401000}  # fmt: skip


ABORT = [
    frame("process_exit", "kernel"), frame("send_signal", "kernel"), frame("sys_tgkill", "kernel"),
    frame("syscall_handler", "kernel"), frame("<syscall tgkill>", "kernel", "crossing"),
    frame("__pthread_kill_implementation"), frame("raise"), frame("abort"),
    frame("__assert_fail_base.cold"), frame("__assert_fail"), frame("check_invariant"),
    frame("main"), frame("__libc_start_call_main"), frame("__libc_start_main_impl"), frame("_start"),
]  # fmt: skip


def test_app_frames_after_the_skip_list():
    sig = signature.make("app-abort", "SIGABRT-assert", ABORT, "app")
    assert sig.signature == "osvsig/3:app-abort:SIGABRT-assert:check_invariant | main"
    assert "skip list applied" in sig.notes and "names normalised" in sig.notes
    # The long form keeps the plumbing, but still no kernel frames or crossings.
    assert sig.proto_signature.startswith("osvsig/3:app-abort:SIGABRT-assert:pthread_kill_implementation | raise | abort")
    assert "syscall_handler" not in sig.proto_signature


def test_no_addresses_numbers_or_clone_suffixes():
    a = signature.make("app-fault", "SIGSEGV-null-write", [frame("store_result.isra.0"), frame("worker")], "app")
    b = signature.make("app-fault", "SIGSEGV-null-write", [frame("store_result.constprop.3"), frame("worker")], "app")
    assert a.signature == b.signature == "osvsig/3:app-fault:SIGSEGV-null-write:store_result | worker"
    assert a.hash == b.hash and len(a.hash) == 16


def test_normalise():
    assert signature.normalise("___pthread_mutex_lock") == "pthread_mutex_lock"
    assert signature.normalise("__GI___libc_write") == "libc_write"
    assert signature.normalise("foo.cold.1") == "foo"
    assert signature.normalise("_") == "_"


def test_unnamed_frames_are_dropped_and_kept_frames_are_three():
    frames = [frame(None), frame("a"), frame("b"), frame("c"), frame("d")]
    sig = signature.make("app-fault", "SIGILL", frames, "app")
    assert sig.signature.endswith(":a | b | c")
    assert "unnamed frames dropped" in sig.notes


def test_only_plumbing_keeps_it_unskipped():
    sig = signature.make("app-abort", "SIGABRT-abort", [frame("abort"), frame("_start")], "app")
    assert sig.signature.endswith(":abort | _start")
    assert "every frame is plumbing: kept unskipped" in sig.notes


def test_hang_signature_ignores_thread_order():
    a = [frame("__lll_lock_wait"), frame("___pthread_mutex_lock"), frame("take_b_then_a"), frame("start_thread")]
    b = [frame("__lll_lock_wait"), frame("___pthread_mutex_lock"), frame("take_a_then_b"), frame("start_thread")]
    one = signature.make_hang("hang-deadlock", "futex", [a, b], "app")
    two = signature.make_hang("hang-deadlock", "futex", [b, a], "app")
    assert one.signature == two.signature
    assert one.signature == (
        "osvsig/3:hang-deadlock:futex:pthread_mutex_lock | take_a_then_b + pthread_mutex_lock | take_b_then_a"
    )  # no frame has source: rule 4's top frames


def test_hang_threads_count_by_their_own_function():
    """Rule 6: workers of a lost wake-up caught in different libc calls are one thread kind."""

    def own(name):
        return {**frame(name), "file": "threads.c", "line": 40}

    waiting = [frame("futex_wait"), frame("pthread_cond_wait"), own("worker"), frame("start_thread")]
    locking = [frame("lll_lock_wait"), frame("pthread_mutex_lock"), own("worker"), frame("start_thread")]
    joining = [frame("pthread_clockjoin_ex"), own("main"), frame("libc_start_call_main")]
    some = signature.make_hang("hang-deadlock", "futex", [waiting, joining], "app")
    more = signature.make_hang("hang-deadlock", "futex", [locking, waiting, joining], "app")
    assert some.signature == more.signature == "osvsig/3:hang-deadlock:futex:main + worker"
    assert "threads named by their own function" in some.notes
    assert "pthread_mutex_lock | worker" in more.proto_signature  # the long form keeps them


def test_different_bugs_differ():
    seen = {
        signature.make("app-fault", "SIGSEGV-null-write", [frame("f")], "app").signature,
        signature.make("app-fault", "SIGSEGV-null-read", [frame("f")], "app").signature,
        signature.make("app-fault", "SIGSEGV-null-write", [frame("g")], "app").signature,
        signature.make("kernel-panic", "page-fault", [frame("f", "kernel")], "kernel").signature,
    }
    assert len(seen) == 4


def test_length_is_bounded():
    frames = [frame("f" * 200), frame("g" * 200), frame("h" * 200)]
    assert len(signature.make("app-fault", "SIGSEGV", frames, "app").signature) <= signature.MAX_LENGTH
