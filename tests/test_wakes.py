"""osvgdb.model.wakes on built history records: which sleeping futex waiters the kernel
provably failed to wake, and the correct kernels' states that must not be judged so."""

from __future__ import annotations

from osvgdb.decode.history import SyscallRecord
from osvgdb.model.wakes import Waiter, complete_since, lost_wakes

FUTEX, EXIT, NANOSLEEP = 202, 60, 35
NAMES = {FUTEX: "futex", EXIT: "exit", NANOSLEEP: "nanosleep"}
WORD = 0x4BD3A8
WAIT_PRIVATE, WAKE_PRIVATE, WAIT_BITSET_REALTIME = 0x80, 0x81, 0x109
INT_MAX = 0x7FFFFFFF


def name(nr: int) -> str:
    return NAMES[nr]


def call(seq: int, tid: int, nr: int, args: tuple[int, ...] = (), ret: int | None = None,
         tsc: int | None = None, ring: int = 0) -> SyscallRecord:  # fmt: skip
    """A record entered at tsc (default seq * 100), returned 10 later unless ret is None."""
    entry = seq * 100 if tsc is None else tsc
    return SyscallRecord(
        seq=seq, tsc_entry=entry, tsc_exit=entry + 10 if ret is not None else 0, args=(*args, 0, 0, 0, 0, 0, 0)[:6],
        ret=ret or 0, rip=0x401000, fs_base=0x4C33C0, kernel_tcb_counter=0, nr=nr, cpu=ring, tid=tid,
        flags=0, ring=ring, slot=seq, state="done" if ret is not None else "in-flight",
    )  # fmt: skip


def wait(seq: int, tid: int, expected: int, address: int = WORD, ret: int | None = None, **kw) -> SyscallRecord:
    return call(seq, tid, FUTEX, (address, WAIT_PRIVATE, expected), ret, **kw)


def wake(seq: int, tid: int, woken: int, count: int = INT_MAX, address: int = WORD) -> SyscallRecord:
    return call(seq, tid, FUTEX, (address, WAKE_PRIVATE, count), woken)


def test_a_wake_that_counted_a_waiter_nobody_got_is_lost() -> None:
    """pthread_cond_broadcast's FUTEX_WAKE said it woke one, and the one is still asleep."""
    sleeper = wait(10, 3, 0)
    records = [sleeper, call(11, 4, NANOSLEEP, (0,), 0), wake(12, 4, 1)]
    (lost,) = lost_wakes([Waiter(3, sleeper, 1)], records, name, {2, 3, 4}, 0)
    assert (lost.tid, lost.address, lost.how, lost.seq, lost.by) == (3, WORD, "futex-wake", 12, 4)
    assert "counted 1 waiter woken, and 0 waits on it returned" in lost.text


def test_a_wake_that_woke_another_waiter_is_not_lost() -> None:
    """FUTEX_WAKE(1) with two asleep: one returned 0 after it; the other sleeps on, as Linux
    leaves it (its word unchanged: nobody owes it a wake)."""
    first, second = wait(10, 3, 2), wait(11, 5, 2)
    records = [first, second, wake(12, 4, 1, count=1)]
    records[0] = wait(10, 3, 2, ret=0, tsc=1250)  # woke after the wake began (tsc 1200)
    assert lost_wakes([Waiter(5, second, 2)], records, name, {3, 4, 5}, 0) == []


def test_a_woken_waiter_not_yet_back_from_the_kernel_counts_as_woken() -> None:
    """Ready, its FUTEX_WAIT still in flight but no longer asleep on the word: the wake
    reached it, the record has not caught up."""
    woken, asleep = wait(10, 3, 0), wait(11, 5, 0)
    records = [woken, asleep, wake(12, 4, 1, count=1)]
    assert lost_wakes([Waiter(5, asleep, 1)], records, name, {3, 4, 5}, 0) == []


def test_a_wait_that_returned_before_the_wake_does_not_count() -> None:
    """EAGAIN or an earlier wake: only waits back after this wake began answer for it."""
    sleeper = wait(10, 3, 0)
    records = [wait(9, 5, 0, ret=0, tsc=950), sleeper, wake(12, 4, 1), wait(13, 6, 0, ret=-11)]
    (lost,) = lost_wakes([Waiter(3, sleeper, 1)], records, name, {3, 4, 5, 6}, 0)
    assert lost.how == "futex-wake"


def test_wakes_before_the_sleep_or_on_other_words_prove_nothing() -> None:
    sleeper = wait(10, 3, 0)
    records = [wake(5, 4, 1), sleeper, wake(12, 4, 1, address=WORD + 4), wake(13, 4, 0)]
    assert lost_wakes([Waiter(3, sleeper, 1)], records, name, {3, 4}, 0) == []


def test_a_joined_threads_exit_that_cleared_the_word_and_did_not_wake_is_lost() -> None:
    """pthread_join sleeps on the tid word with the tid; the exit wrote 0 (CLONE_CHILD_CLEARTID)."""
    joiner = call(24, 1, FUTEX, (0x7FFFF7FFE990, WAIT_BITSET_REALTIME, 2), None)
    records = [joiner, call(25, 2, NANOSLEEP, (0,), 0), call(27, 2, EXIT, (0,))]
    (lost,) = lost_wakes([Waiter(1, joiner, 0)], records, name, {1}, 0)
    assert (lost.tid, lost.how, lost.seq, lost.by) == (1, "exit", 27, 2)
    assert "tid 2 exited at seq 27" in lost.text


def test_a_join_of_a_thread_alive_or_a_word_not_cleared_is_not_judged() -> None:
    joiner = call(24, 1, FUTEX, (0x7FFFF7FFE990, WAIT_BITSET_REALTIME, 2), None)
    records = [joiner, call(27, 2, EXIT, (0,))]
    assert lost_wakes([Waiter(1, joiner, 0)], records, name, {1, 2}, 0) == []  # tid 2 still here
    assert lost_wakes([Waiter(1, joiner, 2)], records, name, {1}, 0) == []  # word not cleared
    assert lost_wakes([Waiter(1, joiner, None)], records, name, {1}, 0) == []  # unreadable
    # the exit came before the sleep: the word was 0 then and the wait would not have slept
    early = [call(20, 2, EXIT, (0,)), joiner]
    assert lost_wakes([Waiter(1, joiner, 0)], early, name, {1}, 0) == []


def test_nothing_is_judged_from_a_history_that_lost_calls_since_the_sleep() -> None:
    """Ring 1 wrapped: its oldest record is seq 40, so the returned wait that would answer
    for the wake at seq 50 may be gone."""
    sleeper = wait(10, 3, 0)
    records = [sleeper, call(40, 4, NANOSLEEP, (0,), 0, ring=1), wake(50, 4, 1)]
    since = complete_since(records, wrapped={1})
    assert since == 40
    assert lost_wakes([Waiter(3, sleeper, 1)], records, name, {3, 4}, since) == []
    assert complete_since(records, wrapped=set()) == 0


def test_a_stale_word_is_shown_not_judged() -> None:
    sleeper = wait(10, 3, 7)
    assert Waiter(3, sleeper, 8).stale and not Waiter(3, sleeper, 7).stale and not Waiter(3, sleeper, None).stale
    assert lost_wakes([Waiter(3, sleeper, 8)], [sleeper], name, {3}, 0) == []
