"""What language runtimes and C libraries print when they end a program, read off the console.

Pure: console text in, `RuntimeReport` records out; never an exception for any text
(tests feed it random bytes). Each runtime's report, in the formats the toolchains print:

- Go: `panic: MSG` (with `[signal SIGSEGV: ... addr=0x.. pc=0x..]` for a fault the
  runtime turned into a panic, `[recovered]` and nested `panic:` lines), `fatal error:
  MSG` (all goroutines asleep, concurrent map writes, out of memory, stack overflow...),
  then the goroutine traces: the header `goroutine 18 [running]:` (Go < 1.21) or
  `goroutine 7 gp=0x.. m=3 mp=0x.. [running]:` (>= 1.21), frames `pkg.F(args)` with
  `\\tFILE:LINE +0x..` under each (arguments may be `?`, `...`), `created by F` (`in
  goroutine N` since 1.21), `...additional frames elided...`, and `runtime stack:`.
- Rust: `thread 'NAME' panicked at 'MSG', FILE:L:C` (before 1.73) or `thread 'NAME'
  panicked at FILE:L:C:` with the message on the lines after (1.73 on), RUST_BACKTRACE's
  `stack backtrace:` (short and full forms), `thread panicked while panicking.
  aborting.` / `panic in a function that cannot unwind`, `fatal runtime error: MSG`.
- C++: libstdc++'s `terminate called after throwing an instance of 'T'` and `what():
  MSG`, `terminate called without an active exception`, `terminate called
  recursively`; libc++'s `terminating due to uncaught exception of type T: MSG` and
  `terminating` (with or without `libc++abi: `).
- glibc: malloc_printerr's messages (`free(): double free detected in tcache 2`,
  `malloc(): corrupted top size`, `double free or corruption (out)`...; also the old
  `*** Error in `PROG': MSG: 0x... ***`), `*** stack smashing detected ***`, `*** buffer
  overflow detected ***`, `PROG: FILE:LINE: FUNC: Assertion `X' failed.`, `Fatal glibc
  error: ...`; musl: `Assertion failed: X (FILE: FUNC: LINE)`.

A report whose first line was recognised but whose rest is missing (the console was cut,
or the program died while printing: no goroutine trace after `panic:`, no location after
`panicked at`) is `corrupted`, with `problems` saying what is missing: a half report
is said to be one, never signed as if it were whole.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

MAX_FRAMES = 64  # of one goroutine or backtrace kept


@dataclass
class Frame:
    function: str
    file: str | None = None
    line: int | None = None

    def as_dict(self) -> dict:
        return {"function": self.function, "file": self.file, "line": self.line,
                "module": "app", "kind": "frame"}  # fmt: skip


@dataclass
class Goroutine:
    goid: int
    state: str  # what the header says in brackets: "running", "chan receive", ...
    frames: list[Frame] = field(default_factory=list)
    created_by: str | None = None
    elided: bool = False  # "...additional frames elided..."
    minutes: int | None = None  # ", N minutes" blocked


@dataclass
class RuntimeReport:
    runtime: str  # go | rust | cxx | glibc | musl
    what: str  # go-panic, go-fatal, rust-panic, rust-panic-in-panic, rust-fatal,
    #            cxx-uncaught, cxx-terminate, heap, stack-smashing, fortify, assert, libc-fatal
    message: str  # the runtime's own words, numbers kept
    line: int  # the console line it starts at (0-based)
    detail: dict = field(default_factory=dict)
    goroutines: list[Goroutine] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)  # Rust's backtrace; Go: the guilty one's
    corrupted: bool = False
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def guilty_goroutine(self) -> Goroutine | None:
        """The goroutine the runtime printed first: the one that panicked or threw."""
        return self.goroutines[0] if self.goroutines else None


# --- Go --------------------------------------------------------------------------------------

_GO_PANIC = re.compile(r"^panic: (.*?)( \[recovered\])?$")
_GO_FATAL = re.compile(r"^fatal error: (.*)$")
_GO_SIGNAL = re.compile(r"^\[signal (SIG\w+)(?:: ([^\]]*?))?(?: code=(\S+))?(?: addr=(\S+))?(?: pc=(\S+))?\]$")
_GO_HEADER = re.compile(
    r"^goroutine (\d+)(?: gp=0x[0-9a-f]+ m=(?:\d+|nil)(?: mp=0x[0-9a-f]+)?)? \[([^\]]*)\]:$"
)
_GO_FRAME = re.compile(r"^((?:[\w.\-/]+/)?[\w\-]+\.[^\s(]*(?:\([^)]*\))?[^\s(]*)\((.*)\)$")
_GO_FILE = re.compile(r"^\t(.+):(\d+)(?: \+0x[0-9a-f]+)?(?: fp=.*)?$")
_GO_CREATED = re.compile(r"^created by (\S+)(?: in goroutine (\d+))?$")
_GO_ELIDED = "...additional frames elided..."
_GO_MINUTES = re.compile(r"^(.*?), (\d+) minutes?(?:, locked to thread)?$")


def _go_frames(lines: list[str], start: int, goroutine: Goroutine) -> int:
    """Frames of one goroutine from lines[start]; the index after its block. Lines
    that are none of its forms (another thread's output printed in between) are passed
    over; a blank line or the next header ends it."""
    i = start
    while i < len(lines):
        text = lines[i]
        if not text.strip() or _GO_HEADER.match(text) or text.startswith(("panic: ", "fatal error: ")):
            break
        created = _GO_CREATED.match(text)
        if created:
            goroutine.created_by = created.group(1)
        elif text.strip() == _GO_ELIDED:
            goroutine.elided = True
        else:
            frame = _GO_FRAME.match(text)
            if frame and not text.startswith("\t"):
                where = _GO_FILE.match(lines[i + 1]) if i + 1 < len(lines) else None
                if len(goroutine.frames) < MAX_FRAMES:
                    goroutine.frames.append(
                        Frame(frame.group(1), where.group(1) if where else None,
                              int(where.group(2)) if where else None)
                    )  # fmt: skip
                if where:
                    i += 1
        i += 1
    return i


def _go_goroutines(lines: list[str], start: int) -> list[Goroutine]:
    result = []
    i = start
    while i < len(lines):
        header = _GO_HEADER.match(lines[i])
        if header is None:
            if lines[i].startswith(("panic: ", "fatal error: ")) and result:
                break
            i += 1
            continue
        state, minutes = header.group(2), None
        timed = _GO_MINUTES.match(state)
        if timed:
            state, minutes = timed.group(1), int(timed.group(2))
        state = state.removesuffix(", locked to thread")
        goroutine = Goroutine(int(header.group(1)), state, minutes=minutes)
        i = _go_frames(lines, i + 1, goroutine)
        result.append(goroutine)
    return result


def _go(lines: list[str], i: int) -> RuntimeReport | None:
    panic, fatal = _GO_PANIC.match(lines[i]), _GO_FATAL.match(lines[i])
    if panic is None and fatal is None:
        return None
    if panic is not None:
        report = RuntimeReport("go", "go-panic", panic.group(1), i)
        if panic.group(2):
            report.detail["recovered"] = True
    else:
        assert fatal is not None
        report = RuntimeReport("go", "go-fatal", fatal.group(1), i)
    for before in lines[max(0, i - 3) : i]:
        if before.startswith("runtime: goroutine stack exceeds"):
            report.detail["runtime"] = before
    for later in lines[i + 1 : i + 4]:
        signal = _GO_SIGNAL.match(later.strip())
        if signal:
            report.detail["signal"] = signal.group(1)
            report.detail["signal_text"] = signal.group(2)
            for key, value in (("code", signal.group(3)), ("addr", signal.group(4)), ("pc", signal.group(5))):
                if value is not None:
                    try:
                        report.detail[key] = int(value, 0)
                    except ValueError:
                        report.problems.append(f"{key}={value} is not a number")
            break
    report.goroutines = _go_goroutines(lines, i + 1)
    if not report.goroutines:
        report.corrupted = True
        report.problems.append("no goroutine trace after the runtime's message")
    elif not report.goroutines[0].frames:
        report.corrupted = True
        report.problems.append(f"goroutine {report.goroutines[0].goid}'s trace has no frames")
    else:
        report.frames = report.goroutines[0].frames
    return report


# --- Rust ------------------------------------------------------------------------------------

_RUST_OLD = re.compile(r"^thread '([^']*)' panicked at '(.*)', (\S+?):(\d+):(\d+)$")
_RUST_OLD_START = re.compile(r"^thread '([^']*)' panicked at '(.*)$")
# >= 1.73; since 1.88 the thread's OS id follows its name: "thread 'main' (26158) panicked"
_RUST_NEW = re.compile(r"^thread '([^']*)'(?: \(\d+\))? panicked at (\S+?):(\d+):(\d+):$")
_RUST_FRAME = re.compile(r"^\s*\d+:\s+(?:0x[0-9a-f]+ - )?(.+?)\s*$")
_RUST_AT = re.compile(r"^\s+at (.+?):(\d+)(?::\d+)?$")
_RUST_DOUBLE = ("thread panicked while panicking. aborting.", "panic in a function that cannot unwind",
                "panic in a destructor during cleanup", "thread caused non-unwinding panic. aborting.")  # fmt: skip
_RUST_FATAL = re.compile(r"^fatal runtime error: (.*)$")
_RUST_END = ("note: ", "stack backtrace:", "thread '")


def _rust_backtrace(lines: list[str], i: int) -> tuple[list[Frame], int]:
    frames: list[Frame] = []
    while i < len(lines):
        text = lines[i]
        frame = _RUST_FRAME.match(text)
        at = _RUST_AT.match(text)
        if at and frames:
            frames[-1].file, frames[-1].line = at.group(1), int(at.group(2))
        elif frame and re.match(r"^\s*\d+:", text):
            if len(frames) < MAX_FRAMES:
                frames.append(Frame(frame.group(1)))
        else:
            break
        i += 1
    return frames, i


def _rust(lines: list[str], i: int) -> RuntimeReport | None:
    text = lines[i]
    fatal = _RUST_FATAL.match(text)
    if fatal:
        return RuntimeReport("rust", "rust-fatal", fatal.group(1), i)
    if not text.startswith("thread '") or " panicked at " not in text:
        return None
    old, new = _RUST_OLD.match(text), _RUST_NEW.match(text)
    end = i + 1
    if old:
        report = RuntimeReport("rust", "rust-panic", old.group(2), i)
        thread, location = old.group(1), (old.group(3), int(old.group(4)), int(old.group(5)))
    elif new:
        message = []
        while end < len(lines) and lines[end] and not lines[end].startswith(_RUST_END):
            message.append(lines[end])
            end += 1
        report = RuntimeReport("rust", "rust-panic", "\n".join(message), i)
        thread, location = new.group(1), (new.group(2), int(new.group(3)), int(new.group(4)))
        if not message:
            report.corrupted = True
            report.problems.append("no message after the panic's location")
    else:
        start = _RUST_OLD_START.match(text)
        thread, location, message = (start.group(1) if start else "?"), None, []
        if start:  # an old-format message over several lines: up to "', FILE:L:C"
            message.append(start.group(2))
            while end < len(lines):
                tail = re.match(r"^(.*)', (\S+?):(\d+):(\d+)$", lines[end])
                end += 1
                if tail:
                    message.append(tail.group(1))
                    location = (tail.group(2), int(tail.group(3)), int(tail.group(4)))
                    break
                message.append(lines[end - 1])
        report = RuntimeReport("rust", "rust-panic", "\n".join(message), i)
        if location is None:
            report.corrupted = True
            report.problems.append("the panic's message and location are cut off")
    report.detail["thread"] = thread
    if location:
        report.detail.update(file=location[0], line=location[1], column=location[2])
    while end < len(lines) and lines[end].startswith("note: "):
        end += 1
    if end < len(lines) and lines[end].strip() == "stack backtrace:":
        report.frames, end = _rust_backtrace(lines, end + 1)
    return report


# --- C++ -------------------------------------------------------------------------------------

_CXX_THROWN = re.compile(r"^terminate called after throwing an instance of '(.*)'$")
_CXX_WHAT = re.compile(r"^\s*what\(\):\s+(.*)$")
_LIBCXX = re.compile(
    r"^(?:libc\+\+abi(?:\.dylib)?: )?terminating (?:due to|with) uncaught exception of type "
    r"((?:[^:]|::)+?)(?:: (.*))?$"
)


def _cxx(lines: list[str], i: int) -> RuntimeReport | None:
    text = lines[i].strip()
    thrown = _CXX_THROWN.match(text)
    if thrown:
        report = RuntimeReport("cxx", "cxx-uncaught", "", i, {"type": thrown.group(1), "library": "libstdc++"})
        what = _CXX_WHAT.match(lines[i + 1]) if i + 1 < len(lines) else None
        if what:
            report.message = what.group(1)
            report.detail["what"] = what.group(1)
        return report
    if text in ("terminate called without an active exception", "terminate called recursively"):
        return RuntimeReport("cxx", "cxx-terminate", text.removeprefix("terminate called "), i,
                             {"library": "libstdc++"})  # fmt: skip
    libcxx = _LIBCXX.match(text)
    if libcxx:
        detail = {"type": libcxx.group(1), "library": "libc++"}
        if libcxx.group(2) is not None:
            detail["what"] = libcxx.group(2)
        return RuntimeReport("cxx", "cxx-uncaught", libcxx.group(2) or "", i, detail)
    if text in ("libc++abi: terminating", "libc++abi.dylib: terminating"):
        return RuntimeReport("cxx", "cxx-terminate", "without an active exception", i, {"library": "libc++"})
    return None


# --- glibc and musl --------------------------------------------------------------------------

# malloc_printerr's messages (glibc 2.26-2.40), by what went wrong.
_HEAP = (
    (re.compile(r"double free"), "double free"),
    (re.compile(r"invalid pointer"), "invalid pointer"),
    (re.compile(r"invalid size|invalid next size"), "invalid size"),
    (re.compile(r"corrupted top size"), "corrupted top size"),
    (re.compile(r"corrupted size vs\. prev_size"), "corrupted size vs prev_size"),
    (re.compile(r"corrupted double-linked list"), "corrupted double-linked list"),
    (re.compile(r"unaligned (tcache|fastbin) chunk|misaligned"), "misaligned chunk"),
    (re.compile(r"memory corruption|corrupted"), "memory corruption"),
)
_HEAP_LINE = re.compile(
    r"^(?:\*\*\* Error in `[^']*': )?((?:(?:free|malloc|realloc|calloc|munmap_chunk|malloc_consolidate|"
    r"_int_free|_int_malloc|_int_realloc|tcache_thread_shutdown|malloc_check)\(\): [^*]+?|"
    r"double free or corruption \([!\w]+\)|corrupted size vs\. prev_size(?: in fastbins)?|"
    r"corrupted double-linked list(?: \(not small\))?))(?:: 0x[0-9a-f]+)?(?: \*\*\*)?$"
)
_SMASHING = re.compile(r"^\*\*\* stack smashing detected \*\*\*")
_FORTIFY = re.compile(r"^\*\*\* (buffer overflow|longjmp causes uninitialized stack frame|"
                      r"[\w ]+) detected \*\*\*")  # fmt: skip
_GLIBC_ASSERT = re.compile(r"^(?:(\S+): )?(\S+):(\d+): (.+?): Assertion [`'](.*)' failed\.$")
_MUSL_ASSERT = re.compile(r"^Assertion failed: (.*) \((.+): (.+): (\d+)\)$")
_GLIBC_FATAL = re.compile(r"^Fatal glibc error: (.*)$")


def heap_problem(message: str) -> str:
    for pattern, problem in _HEAP:
        if pattern.search(message):
            return problem
    return "heap corruption"


def _libc(lines: list[str], i: int) -> RuntimeReport | None:
    text = lines[i].strip()
    if _SMASHING.match(text):
        return RuntimeReport("glibc", "stack-smashing", "stack smashing detected", i)
    fortify = _FORTIFY.match(text)
    if fortify:
        return RuntimeReport("glibc", "fortify", f"{fortify.group(1)} detected", i)
    heap = _HEAP_LINE.match(text)
    if heap:
        message = heap.group(1).strip()
        return RuntimeReport("glibc", "heap", message, i, {"problem": heap_problem(message)})
    glibc = _GLIBC_ASSERT.match(text)
    if glibc:
        return RuntimeReport("glibc", "assert", f"Assertion `{glibc.group(5)}' failed", i,
                             {"file": glibc.group(2), "line": int(glibc.group(3)),
                              "function": glibc.group(4), "expression": glibc.group(5)})  # fmt: skip
    musl = _MUSL_ASSERT.match(text)
    if musl:
        return RuntimeReport("musl", "assert", f"Assertion `{musl.group(1)}' failed", i,
                             {"file": musl.group(2), "function": musl.group(3),
                              "line": int(musl.group(4)), "expression": musl.group(1)})  # fmt: skip
    fatal = _GLIBC_FATAL.match(text)
    if fatal:
        return RuntimeReport("glibc", "libc-fatal", fatal.group(1), i)
    return None


_PARSERS = (_go, _rust, _cxx, _libc)


def parse(console: str) -> list[RuntimeReport]:
    """Every runtime report on the console, in the order printed. A Go report's goroutine
    traces and a Rust backtrace belong to their report; a Rust `panicked while
    panicking` turns the panic before it into `rust-panic-in-panic`."""
    try:
        lines = console.replace("\r\n", "\n").split("\n")
    except (AttributeError, TypeError):
        return []
    reports: list[RuntimeReport] = []
    for i, text in enumerate(lines):
        if text.strip() in _RUST_DOUBLE:
            first = next((r for r in reports if r.what == "rust-panic"), None)
            if first is not None:
                first.what = "rust-panic-in-panic"
                first.detail["then"] = text.strip()
            continue
        if reports and reports[-1].runtime == "go" and reports[-1].line < i:
            continue  # the rest of a Go report is its own (goroutine traces may say "panic:")
        for parser in _PARSERS:
            report = parser(lines, i)
            if report is not None:
                reports.append(report)
                break
    return reports


def first(console: str) -> RuntimeReport | None:
    """The report that says what went wrong: the first one printed (a Rust main that
    panics when it joins a thread that panicked is the second)."""
    found = parse(console)
    return found[0] if found else None


# --- what goes into a signature ------------------------------------------------------------

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # values; Rust's `code` quotes stay
_HEX = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{6,}\b")
_NUMBER = re.compile(r"\d+")


def scrub(text: str) -> str:
    """Text without what changes from run to run: addresses, numbers."""
    return _NUMBER.sub("NUM", _HEX.sub("ADDR", text))


def slug(text: str, words: int = 6, quoted: bool = True) -> str:
    """A few words of a message as one token for a signature's kind: no numbers, no
    addresses, no quoted values (unless `quoted`), lower case, `-` between words."""
    if not quoted:
        text = _QUOTED.sub(" ", text)
    text = _NUMBER.sub(" ", _HEX.sub(" ", text))
    kept = [w for w in re.split(r"[^A-Za-z_]+", text.lower()) if w][:words]
    return "-".join(kept)
