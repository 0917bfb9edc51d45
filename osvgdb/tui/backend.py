"""GDB's MI for the TUI's event loop: commands as awaitables, the rest as events, all of it logged.

The screen must never wait for GDB. `MiBackend` puts an osvgdb.mi.Mi on the
asyncio loop prompt_toolkit runs: `loop.add_reader` on GDB's pipes calls
`Mi.poll(0)` when GDB has written something, and `execute(command)` sends at
once and returns a future the result record resolves. Nothing blocks: a slow
command only leaves its pane waiting, and the guest console, keys and resizes
go on being served meanwhile.

Every command goes into the `MiLog` with when it was sent, how long its
answer took and how large the answer was: the MI log pane shows it (Seer's
users ask for that timed log of the traffic), the benchmark counts commands
and bytes per stop from it, and `--record FILE` writes it out as a
transcript: one JSON object per line, `{"command", "class", "payload", "ms",
"bytes"}` for each command and `{"event": kind, "class", "payload"}` for each
record GDB sent on its own. `ReplayBackend` answers from such a transcript,
so the tests render every pane from what a real GDB said (the source pane's
file reads are kept too, `{"source", "line", "lines"}`, so a replay shows
the source as it was when recorded).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from osvgdb.mi import CommandError, GdbExited, Mi, MiError, Record

LOG_LENGTH = 2000  # commands kept for the MI log pane
RUNNING_SHOWN = 60  # of the command GDB died in, in the banner (which is one line)


@dataclass
class LogEntry:
    """One MI command: sent at `sent` (time.monotonic()), answered `ms` later with
    `size` bytes of result (None while it is pending), `outcome` its result class
    ("done", "running", "error", "gdb-exited")."""

    command: str
    sent: float
    ms: float | None = None
    size: int = 0
    outcome: str = "pending"


@dataclass
class MiLog:
    """The commands sent and what came back, newest last; also the transcript writer."""

    entries: deque[LogEntry] = field(default_factory=lambda: deque(maxlen=LOG_LENGTH))
    sent: int = 0  # every command ever sent (the deque forgets the oldest)
    received: int = 0  # bytes of results, likewise
    transcript: IO[str] | None = None

    def start(self, command: str) -> LogEntry:
        entry = LogEntry(command, time.monotonic())
        self.entries.append(entry)
        self.sent += 1
        return entry

    def finish(self, entry: LogEntry, record: Record | None, outcome: str) -> None:
        entry.ms = (time.monotonic() - entry.sent) * 1000
        payload = record.payload if record is not None else None
        entry.size = len(json.dumps(payload)) if payload is not None else 0
        entry.outcome = outcome
        self.received += entry.size
        self._write({"command": entry.command, "class": outcome, "payload": payload,
                     "ms": round(entry.ms, 3), "bytes": entry.size})  # fmt: skip

    def event(self, record: Record) -> None:
        self._write({"event": record.kind, "class": record.cls, "payload": record.payload})

    def source(self, path: str, line: int, lines: list[tuple[int, str]]) -> None:
        """The source pane read LINES around PATH:LINE (not MI: kept for the replay)."""
        self._write({"source": path, "line": line, "lines": lines})

    def _write(self, item: dict) -> None:
        if self.transcript is not None:
            self.transcript.write(json.dumps(item) + "\n")
            self.transcript.flush()


class Backend:
    """What the inspector needs of GDB: execute() and a stream of events.

    `on_event(record)` is called for each record GDB sent on its own (exec,
    notify, streams), in order; `on_exit(message)` once, when GDB is gone."""

    def __init__(self, log: MiLog | None = None):
        self.log = log if log is not None else MiLog()
        self.on_event: Callable[[Record], None] = lambda record: None
        self.on_exit: Callable[[str], None] = lambda message: None
        self.gone: str | None = None  # why GDB is gone, once it is

    async def execute(self, command: str) -> Record:
        raise NotImplementedError

    def start(self) -> None:
        """Begin delivering events (called from the running event loop)."""

    def close(self) -> None:
        """Stop delivering; the owner ends GDB itself."""


class MiBackend(Backend):
    """A live GDB (an osvgdb.mi.Mi), read from the asyncio loop."""

    def __init__(self, mi: Mi, log: MiLog | None = None):
        super().__init__(log)
        self.mi = mi
        self._waiting: dict[int, tuple[asyncio.Future, LogEntry]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for fd in self.mi.filenos():
            self._loop.add_reader(fd, self._readable)
        self._readable()  # what came before the loop ran

    def close(self) -> None:
        if self._loop is not None:
            for fd in self.mi.filenos():
                self._loop.remove_reader(fd)
            self._loop = None

    async def execute(self, command: str) -> Record:
        if self.gone is not None:
            raise GdbExited(self.gone)
        entry = self.log.start(command)
        try:
            token = self.mi.send(command)
        except GdbExited as error:
            self.log.finish(entry, None, "gdb-exited")
            self._ended(str(error))
            raise
        future = asyncio.get_running_loop().create_future()
        self._waiting[token] = (future, entry)
        return await future

    def _readable(self) -> None:
        self.mi.poll(0)
        for token in list(self._waiting):
            try:
                record = self.mi.take_result(token)
            except CommandError as error:
                future, entry = self._waiting.pop(token)
                self.log.finish(entry, Record("result", "error", {"msg": error.message}), "error")
                if not future.done():
                    future.set_exception(error)
                continue
            if record is not None:
                future, entry = self._waiting.pop(token)
                self.log.finish(entry, record, record.cls or "done")
                if not future.done():
                    future.set_result(record)
        for record in self.mi.take_events():
            self.log.event(record)
            self.on_event(record)
        if self.mi.exited:
            self.close()
            # GDB runs one command at a time: the oldest unanswered is the one it died in
            # (what to look at when GDB itself crashed).
            running = next((entry.command for _, entry in self._waiting.values()), None)
            if running and len(running) > RUNNING_SHOWN:
                running = running[: RUNNING_SHOWN - 3] + "..."
            self._ended(f"GDB {self.mi.ended()}" + (f"; it was running {running}" if running else ""))

    def _ended(self, message: str) -> None:
        if self.gone is not None:
            return
        self.gone = message
        for future, entry in self._waiting.values():
            self.log.finish(entry, None, "gdb-exited")
            if not future.done():
                future.set_exception(GdbExited(message))
        self._waiting.clear()
        self.on_exit(message)


def read_transcript(path: Path) -> list[dict]:
    """The items of a transcript `--record` wrote (MiError for a line that is not JSON)."""
    items = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise MiError(f"{path}:{number}: not a transcript line: {error}") from None
    return items


ROOT_MARK = "@ROOT@"
CONSOLE_EVENT = "guest-console"  # the recorder's last item: the console QEMU copied (not MI)


def unrooted(items: list[dict], root: Path) -> list[dict]:
    """A transcript with the repository's path replaced by ROOT_MARK (fullnames of
    sources differ between checkouts); rooted() puts a checkout's path back."""
    return json.loads(json.dumps(items).replace(json.dumps(str(root))[1:-1], ROOT_MARK))


def rooted(items: list[dict], root: Path) -> list[dict]:
    return json.loads(json.dumps(items).replace(ROOT_MARK, json.dumps(str(root))[1:-1]))


class ReplayBackend(Backend):
    """Answers each command with the recorded answer to the same command (the
    next one, when it was sent more than once; the last one again after that);
    a command never recorded gets ^error, as GDB would answer one it lacks.
    `emit(item)` delivers a recorded event; `events()` lists them."""

    def __init__(
        self,
        items: Iterable[dict],
        log: MiLog | None = None,
        *,
        slow: dict[str, float] | None = None,
    ):
        super().__init__(log)
        self.slow = slow or {}  # command prefix -> seconds its answer takes (a slow GDB)
        self.items = list(items)  # after rooted(), when recorded with unrooted()
        self.answers: dict[str, deque[dict]] = {}
        self.sources: dict[tuple[str, int], list[tuple[int, str]]] = {}
        for item in self.items:
            if "command" in item:
                self.answers.setdefault(item["command"], deque()).append(item)
            elif "source" in item:
                self.sources[item["source"], item["line"]] = [tuple(pair) for pair in item["lines"]]

    def read_source(self, path: str, line: int) -> list[tuple[int, str]]:
        """The source lines the recording read (OSError for others, as for a missing file)."""
        try:
            return self.sources[path, line]
        except KeyError:
            raise FileNotFoundError(f"{path}:{line} is not in the transcript") from None

    def events(self) -> list[Record]:
        """The recorded events, the console's pseudo-event included, in order."""
        return [Record(i["event"], i["class"], i["payload"]) for i in self.items if "event" in i]

    async def execute(self, command: str) -> Record:
        if self.gone is not None:
            raise GdbExited(self.gone)
        entry = self.log.start(command)
        answers = self.answers.get(command)
        if not answers:
            self.log.finish(entry, None, "error")
            raise CommandError(f'Undefined MI command: {command} (not in the transcript)',
                               command=command, code="undefined-command")  # fmt: skip
        item = answers.popleft() if len(answers) > 1 else answers[0]
        delay = next((t for prefix, t in self.slow.items() if command.startswith(prefix)), 0)
        await asyncio.sleep(delay)  # answered later, as GDB would be
        record = Record("result", item["class"], item["payload"])
        self.log.finish(entry, record, item["class"])
        entry.ms = item.get("ms", entry.ms)  # the latency GDB had, not the replay's
        if item["class"] == "error":
            raise CommandError(item["payload"].get("msg", ""), command=command)
        return record

    def emit(self, record: Record) -> None:
        self.log.event(record)
        self.on_event(record)

    def disconnect(self, message: str) -> None:
        """As if GDB had gone away."""
        self.gone = message
        self.on_exit(message)
