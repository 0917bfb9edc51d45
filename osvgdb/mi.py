"""GDB over its machine interface (MI3), for tools outside GDB: the TUI, triage, the tests.

`Mi` wraps a GDB started with `--interpreter=mi3` and its three pipes. Every
command goes out with a token (`42-data-evaluate-expression 1`) and is answered
as soon as the result record with that token (`42^done,value="1"`) has been
read: no fixed wait, ~0.25 ms a round trip. pygdbmi's parser
(`pygdbmi.gdbmiparser.parse_response`) turns each line into a `Record`.

Everything else GDB prints is kept, in the order it came, in `Mi.events`: exec
records (`*running`, `*stopped`), notifications (`=thread-created`,
`=breakpoint-modified`...), the console, target and log streams (`~`, `@`, `&`:
the text of CLI commands and of errors), lines that are not MI, GDB's stderr,
and result records nobody is waiting for (stderr is another pipe: its lines
are in order among themselves, not against stdout's). The caller drains them
(`take_events`) or waits for one (`wait_for`, `wait_for_stop`), which hands
over the records up to it too.

Errors: a command GDB refuses raises `CommandError` (str() is GDB's own
message); no answer in time raises `MiTimeout` (the command stays pending: a
later `wait_result` can still collect it); a GDB that exited or was killed
raises `GdbExited` from whatever waits or sends, never a hang.

Threading model: one thread owns an `Mi`; nothing here takes locks or starts
threads. The three steps are apart so an event loop can drive them:
  - `send(command)` writes one line to GDB's stdin and returns the token; it
    never reads (a line is far below a pipe's 64 KiB, so the write does not block);
  - `poll(timeout)` reads and parses whatever is readable on GDB's stdout and
    stderr, waiting at most `timeout` seconds for the first byte (0: not at all),
    and files each record: awaited results apart, the rest into `events`;
  - `take_result(token)` and `take_events()` hand over what poll filed without
    waiting; `wait_result`, `execute`, `wait_for` and `wait_for_stop` block,
    polling, up to their timeout.
From asyncio or prompt_toolkit: `loop.add_reader(fd, mi.poll)` for each of
`mi.filenos()`, `send()` from the loop, and look at `take_result`/`events` after
each poll; never call the blocking waits from the loop's thread.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pygdbmi.gdbmiparser import parse_response

DEFAULT_TIMEOUT = 30.0
READ_SIZE = 65536
MAX_READS_PER_POLL = 64  # a GDB that never stops printing still lets poll() return
DEATH_CHECK_INTERVAL = 0.2  # how often a wait looks at the process when nothing comes
LAST_WORDS_KEPT = 8192  # characters of GDB's log stream and stderr kept, for its death
# What GDB says when it dies, on its log stream (&) or stderr: its internal-error
# (then "Quit this debugging session? [answered Y; input not from terminal]"), a
# fatal signal it caught in itself ("Fatal signal: Aborted": with no backtrace in
# Debian's build), and what glibc, libstdc++ (an exception that escaped: "terminate
# called after throwing ...", then its "what():  MESSAGE") or Python said before an abort.
DEATH_LINES = ("internal-error", "Fatal signal", "terminate called", "what():", "Assertion",
               "free(): ", "malloc(): ", "corrupted", "Fatal Python error")

# The first character of an MI output line (after its token, if any) -> Record.kind.
KINDS = {
    "^": "result",
    "*": "exec",
    "+": "status",
    "=": "notify",
    "~": "console",
    "@": "target",
    "&": "log",
}
STREAMS = ("console", "target", "log", "output", "stderr")


class MiError(Exception):
    """What mi.py raises."""


class CommandError(MiError):
    """GDB answered ^error: str() is GDB's message."""

    def __init__(self, message: str, *, command: str = "", code: str | None = None):
        super().__init__(message)
        self.message = message
        self.command = command
        self.code = code  # e.g. "undefined-command", when GDB gives one


class MiTimeout(MiError):
    """GDB did not answer in time (it may still: the command stays pending)."""


class GdbExited(MiError):
    """GDB exited, or was killed, or closed its output."""


@dataclass(frozen=True)
class Record:
    """One line of GDB's MI output.

    kind: "result" (^), "exec" (*), "status" (+), "notify" (=), "console" (~),
    "target" (@), "log" (&), "output" (a line that is not MI), "stderr" (a line
    GDB wrote to its stderr).
    cls: the result or async class ("done", "running", "error", "stopped",
    "thread-created"...); None for streams.
    payload: for results and async records the parsed results (a dict, {} when
    there are none); for streams the text.
    token: the token the line carried, if any.
    """

    kind: str
    cls: str | None
    payload: Any
    token: int | None = None

    @property
    def text(self) -> str:
        """The text of a stream record, "" for the others."""
        return self.payload if self.kind in STREAMS else ""


def parse_line(line: str) -> Record | None:
    """The Record of one output line; None for the "(gdb)" prompt."""
    if line.strip() == "(gdb)":
        return None
    body = line.lstrip("0123456789")
    kind = KINDS.get(body[:1])
    if kind is None:
        return Record("output", None, line + "\n")
    mi_line = line
    if kind == "status":  # pygdbmi knows only * and = as async prefixes
        mi_line = line[: len(line) - len(body)] + "*" + body[1:]
    parsed = parse_response(mi_line)
    if parsed["type"] == "output":  # looked like MI, but is not
        return Record("output", None, line + "\n")
    payload = parsed["payload"]
    if kind not in STREAMS and payload is None:
        payload = {}
    return Record(kind, parsed.get("message"), payload, parsed.get("token"))


def quote(text: str) -> str:
    """TEXT as an MI c-string argument."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def console_command(command: str) -> str:
    """The MI command that runs CLI COMMAND as if typed (its text comes as streams)."""
    return f"-interpreter-exec console {quote(command)}"


def stream_text(records: list[Record]) -> str:
    """The text of the stream records among RECORDS, in order."""
    return "".join(record.text for record in records)


def is_stop(record: Record) -> bool:
    return record.kind == "exec" and record.cls == "stopped"


def how_it_ended(status: int | None) -> str:
    if status is None:
        return "closed its output"
    if status < 0:
        return f"died of signal {-status} ({signal.strsignal(-status)})"
    return f"exited with status {status}"


def last_words(text: str) -> str:
    """": LINE; LINE", the lines of TEXT (the end of GDB's log stream and stderr)
    that say why GDB ended (DEATH_LINES), each once, or "" if none does: otherwise
    what it said last is whatever it was doing, not why it went."""
    said = []
    for line in text.splitlines():
        line = line.strip()
        if line not in said and any(marker in line for marker in DEATH_LINES):
            said.append(line)
    return ": " + "; ".join(said) if said else ""


class Mi:
    """GDB over MI through its pipes (see the module docstring for the model)."""

    def __init__(self, process: subprocess.Popen):
        if process.stdin is None or process.stdout is None:
            raise ValueError("GDB needs stdin and stdout pipes")
        self.process = process
        self.events: deque[Record] = deque()
        self._stdin = process.stdin.fileno()
        self._stdout = process.stdout.fileno()
        self._readers = {self._stdout: bytearray()}
        if process.stderr is not None:
            self._readers[process.stderr.fileno()] = bytearray()
        self._stderr = process.stderr.fileno() if process.stderr is not None else None
        self._open = set(self._readers)
        self._last_words = ""  # the end of GDB's log stream and stderr, as text
        self._next_token = 1
        self._pending: dict[int, str] = {}  # token -> command, until its result is taken
        self._results: dict[int, Record] = {}

    @classmethod
    def launch(cls, argv: list[str], **popen: Any) -> Mi:
        """GDB started from ARGV (which should say --interpreter=mi3) on fresh pipes."""
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return cls(subprocess.Popen(argv, **{**pipes, **popen}))

    def filenos(self) -> tuple[int, ...]:
        """The descriptors poll() reads (GDB's stdout, and its stderr if piped)."""
        return tuple(self._readers)

    @property
    def exited(self) -> bool:
        """True once GDB's output has ended (it exited, or closed its stdout)."""
        return self._stdout not in self._open

    # Sending

    def send(self, command: str) -> int:
        """Write COMMAND (an MI command, e.g. "-data-evaluate-expression 1") with a
        fresh token, which it returns; the answer is for take_result/wait_result."""
        if "\n" in command or "\r" in command:
            raise ValueError(f"an MI command is one line: {command!r}")
        token = self._next_token
        self._next_token += 1
        data = f"{token}{command}\n".encode()
        try:
            while data:
                data = data[os.write(self._stdin, data) :]
        except (BrokenPipeError, OSError) as error:
            raise GdbExited(f"GDB {self.ended()} before {command!r} ({error})") from None
        self._pending[token] = command
        return token

    # Reading

    def poll(self, timeout: float = 0.0) -> int:
        """Read and file whatever GDB has written, waiting up to TIMEOUT seconds for
        the first byte; how many records were filed. Never raises for a dead GDB:
        `exited` says so, and the waits raise GdbExited."""
        filed = 0
        wait: float | None = max(timeout, 0.0)
        for _ in range(MAX_READS_PER_POLL):
            if not self._open:
                break
            ready, _, _ = select.select(list(self._open), [], [], wait)
            if not ready:
                break
            for fd in ready:
                filed += self._read(fd)
            wait = 0.0
        return filed

    def _read(self, fd: int) -> int:
        try:
            chunk = os.read(fd, READ_SIZE)
        except OSError:
            chunk = b""
        buffer = self._readers[fd]
        if not chunk:
            self._open.discard(fd)
            if buffer:  # a last line without its newline
                chunk = b"\n"
            else:
                return 0
        buffer += chunk
        *lines, rest = buffer.split(b"\n")
        self._readers[fd] = bytearray(rest)
        for line in lines:
            self._file(fd, line.decode(errors="replace").rstrip("\r"))
        return len(lines)

    def _file(self, fd: int, line: str) -> None:
        if fd == self._stderr:
            self.events.append(Record("stderr", None, line + "\n"))
            self._keep_last_words(line + "\n")
            return
        record = parse_line(line)
        if record is None:
            return
        if record.kind == "log":
            self._keep_last_words(record.text)
        if record.kind == "result" and record.token in self._pending:
            self._results[record.token] = record
        else:
            self.events.append(record)

    # Taking what was filed

    def take_result(self, token: int) -> Record | None:
        """The result record of TOKEN's command if it has come (raising CommandError
        for ^error), else None; never waits."""
        record = self._results.pop(token, None)
        if record is None:
            return None
        command = self._pending.pop(token)
        if record.cls == "error":
            raise CommandError(
                record.payload.get("msg", "(no message)"),
                command=command,
                code=record.payload.get("code"),
            )
        return record

    def take_events(self) -> list[Record]:
        """Every record filed in events so far, oldest first; events is then empty."""
        records = list(self.events)
        self.events.clear()
        return records

    # Waiting

    def wait_result(self, token: int, timeout: float = DEFAULT_TIMEOUT) -> Record:
        """TOKEN's result record (done, running, connected, exit), waiting up to
        TIMEOUT; CommandError for ^error, MiTimeout, GdbExited."""
        if token not in self._pending:
            raise ValueError(f"no command with token {token} is pending")
        self._wait(lambda: token in self._results, timeout, self._pending[token])
        record = self.take_result(token)
        assert record is not None
        return record

    def execute(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> Record:
        """send() then wait_result(): COMMAND's result record."""
        return self.wait_result(self.send(command), timeout)

    def wait_for(
        self, predicate: Callable[[Record], bool], timeout: float = DEFAULT_TIMEOUT
    ) -> list[Record]:
        """The events up to and including the first one PREDICATE accepts, taken
        from `events` (the later ones stay); MiTimeout leaves them all there."""
        position = 0

        def found() -> bool:
            nonlocal position
            while position < len(self.events):
                if predicate(self.events[position]):
                    return True
                position += 1
            return False

        self._wait(found, timeout, "the event awaited")
        return [self.events.popleft() for _ in range(position + 1)]

    def wait_for_stop(self, timeout: float = DEFAULT_TIMEOUT) -> list[Record]:
        """The events up to and including the next *stopped."""
        return self.wait_for(is_stop, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if self.exited or self.process.poll() is not None:
                self.poll(0)  # what it wrote before the end
                if done():
                    return
                raise GdbExited(f"GDB {self.ended()} while waiting for {what!r}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MiTimeout(f"GDB gave no answer to {what!r} in {timeout:g} s")
            self.poll(min(remaining, DEATH_CHECK_INTERVAL))

    def ended(self) -> str:
        """How GDB ended ("died of signal 6 (Aborted): Fatal signal: Aborted"), for a
        caller that saw `exited`: the status, and the lines of its log stream or stderr
        that say why (last_words)."""
        status = self.process.poll()
        if status is None and self.exited:
            try:
                status = self.process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        if status is not None:
            self.poll(0)  # its last words, written before it went
        return how_it_ended(status) + last_words(self._last_words)

    def _keep_last_words(self, text: str) -> None:
        self._last_words = (self._last_words + text)[-LAST_WORDS_KEPT:]

    # Ending

    def close(self, timeout: float = 2.0) -> None:
        """-gdb-exit, then SIGKILL if GDB is still there after TIMEOUT (0: at once);
        the pipes are closed and GDB reaped."""
        if self.process.poll() is None and timeout > 0:
            try:
                self.send("-gdb-exit")
                self.process.wait(timeout=timeout)
            except (GdbExited, subprocess.TimeoutExpired):
                pass
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._open.clear()

    def __enter__(self) -> Mi:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
