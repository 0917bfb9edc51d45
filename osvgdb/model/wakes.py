"""Lost futex wake-ups: a thread asleep in FUTEX_WAIT that the kernel said it woke, or
had to wake, found from the thread table and the syscall history.

A futex waiter sleeps only while its word holds the value it passed (the kernel checks
under its lock); a waker changes the word, then asks the kernel to wake the word's
waiters.  Two of the kernel's promises can be checked afterwards, from the history:

 - FUTEX_WAKE returns how many waiters it woke, and each one woken returns 0 from its
   FUTEX_WAIT.  Wakes on a word that counted more waiters than there are waits on it
   that returned since, with a thread still asleep on it from before: the kernel
   counted wake-ups it never made.
 - A thread's exit writes 0 to its CLONE_CHILD_CLEARTID word and wakes the word's
   waiters; pthread_join sleeps on that word with the thread's tid as its value.  A
   thread asleep on a word that is 0 now, with the tid of a thread whose exit the
   history has after its sleep began: the exit's wake never reached it.

Either is the kernel's bug (a call that quietly returned the wrong thing), not a
deadlock of the app's, though the app hangs the same.  A word that merely differs from
the value slept on proves nothing alone (an app may change a word without waking its
waiters), so that is shown (`stale`) but not judged.  Nothing is judged from a history
that has lost records since the waiter slept: a wrapped ring could hide the wait that
returned.  Every futex wake, syscall and exit alike, goes through the kernel's
`futex_wake` (WAKER): a lost wake-up is that function's bug, whichever app shows it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from osvgdb.decode.history import SyscallRecord

WAKER = "futex_wake"
FUTEX_CMD_MASK = 0x7F  # op without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME
FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 0, 1, 9, 10
EXITS = ("exit", "exit_group")


@dataclass(frozen=True)
class Waiter:
    """A thread blocked in FUTEX_WAIT now: its tid, and the call the history has for it."""

    tid: int
    call: SyscallRecord  # its FUTEX_WAIT, in flight
    word: int | None  # the futex word read now (None: unreadable)

    @property
    def address(self) -> int:
        return self.call.args[0]

    @property
    def expected(self) -> int:
        """The value it slept on: FUTEX_WAIT's third argument, a u32."""
        return self.call.args[2] & 0xFFFFFFFF

    @property
    def stale(self) -> bool:
        """The word no longer holds what it slept on: changed since, with no wake that
        reached it (yet)."""
        return self.word is not None and self.word != self.expected


@dataclass(frozen=True)
class LostWake:
    tid: int  # the thread still asleep
    address: int  # on this futex word
    how: str  # "futex-wake" (a FUTEX_WAKE counted it) or "exit" (a CLONE_CHILD_CLEARTID exit)
    seq: int  # the history record of the wake that lied (the FUTEX_WAKE or the exit)
    by: int  # the thread that made it
    text: str

    def as_dict(self) -> dict:
        return {"tid": self.tid, "futex": self.address, "how": self.how, "seq": self.seq,
                "by": self.by, "waker": WAKER, "text": self.text}  # fmt: skip


def futex_command(record: SyscallRecord, name: str) -> int | None:
    """The futex command (FUTEX_WAIT, ...) of a futex call's record, else None."""
    return record.args[1] & FUTEX_CMD_MASK if name == "futex" else None


def waiting_call(record: SyscallRecord | None, name: Callable[[int], str]) -> SyscallRecord | None:
    """`record` if it is a FUTEX_WAIT or FUTEX_WAIT_BITSET still in flight."""
    if record is None or record.returned:
        return None
    return record if futex_command(record, name(record.nr)) in (FUTEX_WAIT, FUTEX_WAIT_BITSET) else None


def complete_since(records: Iterable[SyscallRecord], wrapped: Iterable[int]) -> int:
    """The first seq from which the history has every call: rings that wrapped have lost
    what came before their oldest record."""
    oldest: dict[int, int] = {}
    for record in records:
        oldest[record.ring] = min(oldest.get(record.ring, record.seq), record.seq)
    return max((oldest[ring] for ring in wrapped if ring in oldest), default=0)


def lost_wakes(
    waiters: list[Waiter], records: list[SyscallRecord], name: Callable[[int], str],
    live_tids: set[int], since: int,
) -> list[LostWake]:  # fmt: skip
    """Which waiters the history proves the kernel should have woken (module docstring).
    `records` are every ring's, in seq order; `live_tids` the threads in the table now;
    `since` the first seq the history is complete from (complete_since)."""
    # One pass over the history: futex waits and wakes by word, exits by thread.
    waits: dict[int, list[SyscallRecord]] = defaultdict(list)
    wakes: dict[int, list[SyscallRecord]] = defaultdict(list)
    exits: dict[int, list[SyscallRecord]] = defaultdict(list)
    for record in records:
        call = name(record.nr)
        command = futex_command(record, call)
        if command in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
            waits[record.args[0]].append(record)
        elif command in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
            wakes[record.args[0]].append(record)
        elif call in EXITS:
            exits[record.tid].append(record)
    lost = []
    for waiter in waiters:
        if waiter.call.seq < since:
            continue
        asleep = {w.tid for w in waiters if w.address == waiter.address}
        found = _counted_not_woken(waiter, asleep, waits[waiter.address], wakes[waiter.address]) or _exit_not_woken(
            waiter, exits, live_tids
        )
        if found is not None:
            lost.append(found)
    return lost


def _counted_not_woken(
    waiter: Waiter, asleep: set[int], waits: list[SyscallRecord], wakes: list[SyscallRecord]
) -> LostWake | None:
    """FUTEX_WAKEs on the word since the waiter slept counted more than ever woke.
    `asleep`: the threads blocked on the word now; `waits`, `wakes`: the word's calls."""
    address = waiter.address
    counting = [r for r in wakes if r.seq > waiter.call.seq and r.returned and r.ret > 0]
    if not counting:
        return None
    counted = sum(r.ret for r in counting)
    first, last = counting[0], counting[-1]
    # A woken wait returns 0 after the wake began; one woken and not yet back is in flight
    # on the word by a thread no longer asleep on it.
    returned = sum(
        1 for r in waits
        if r.seq < last.seq
        and ((r.returned and r.ret == 0 and r.tsc_exit >= first.tsc_entry) or (not r.returned and r.tid not in asleep))
    )  # fmt: skip
    if counted <= returned:
        return None
    text = (
        f"tid {waiter.tid} sleeps on futex {address:#x} since seq {waiter.call.seq}; "
        f"{len(counting)} FUTEX_WAKE since (first by tid {first.tid} at seq {first.seq}) counted {counted} "
        f"waiter{'s' if counted != 1 else ''} woken, and {returned} wait{'s' if returned != 1 else ''} "
        "on it returned"
    )
    return LostWake(waiter.tid, address, "futex-wake", first.seq, first.tid, text)


def _exit_not_woken(waiter: Waiter, exits: dict[int, list[SyscallRecord]], live_tids: set[int]) -> LostWake | None:
    """pthread_join's wait for a thread whose exit cleared the word and did not wake it."""
    gone = waiter.expected
    if waiter.word != 0 or gone == waiter.tid or gone in live_tids:
        return None
    exit_record = next((r for r in exits.get(gone, []) if r.seq > waiter.call.seq), None)
    if exit_record is None:
        return None
    text = (
        f"tid {waiter.tid} sleeps on futex {waiter.address:#x} for tid {gone} to exit (pthread_join) "
        f"since seq {waiter.call.seq}; tid {gone} exited at seq {exit_record.seq} and its exit cleared "
        "the word (0 now, read now) but did not wake it"
    )
    return LostWake(waiter.tid, waiter.address, "exit", exit_record.seq, gone, text)
