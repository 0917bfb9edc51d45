"""The panes' text, from the inspector's state: pure functions, no prompt_toolkit.

Each `render_NAME(inspector)` returns (title, lines, cursor): a line is a list
of (style, text) fragments (prompt_toolkit's formatted text, and plain text
once the styles are dropped: what the snapshot tests compare), the title says
what the pane shows and from when, and cursor is the line a scrolled pane
keeps in view (None: the top). Styles are class names the application's
Style colours (STYLE in osvgdb.tui.app): `ok`, `bad`, `warn`, `inflight`,
`stale`, `error`, `dim`, `head`, `selected`.

A pane whose fetch failed shows its error on its first line and what it had
before under it; a pane whose data is from an earlier stop says so in its
title (`as of stop N`) and in the `stale` style.
"""

from __future__ import annotations

from osvgdb.tui.inspector import Inspector, Pane, Selection

Fragments = list[tuple[str, str]]
Rendered = tuple[str, list[Fragments], int | None]

TITLES = {
    "vcpus": "vCPUs",
    "threads": "threads",
    "syscalls": "syscalls",
    "backtrace": "backtrace",
    "source": "source",
    "console": "console",
    "output": "output",
    "auxv": "auxv, argv, envp",
    "breakpoints": "breakpoints",
    "milog": "MI log",
}


def _int(value: object) -> int:
    try:
        return int(str(value), 0)
    except (TypeError, ValueError):
        return 0


def _hex(value: object) -> str:
    return f"{_int(value):#x}"


def _title(inspector: Inspector, name: str, extra: str = "") -> str:
    pane = inspector.panes[name]
    title = TITLES[name] + (f" {extra}" if extra else "")
    if pane.pending is not None:
        title += " (fetching)"
    if pane.stop and (pane.stop != inspector.status.stops or inspector.status.state != "stopped"):
        title += f" (as of stop {pane.stop}{', guest running' if inspector.status.state == 'running' else ''})"
    return title


def _stale(inspector: Inspector, pane: Pane) -> bool:
    return bool(pane.stop) and (
        pane.stop != inspector.status.stops or inspector.status.state != "stopped"
    )


def _head(pane: Pane, empty: str) -> list[Fragments]:
    """The error line of a failed fetch, or what an empty pane says."""
    if pane.error:
        return [[("class:error", pane.error)]]
    if pane.data is None:
        return [[("class:dim", "fetching..." if pane.pending is not None else empty)]]
    return []


def _styled(style: str, stale: bool) -> str:
    return "class:stale" if stale else style


# --- vCPUs and threads ---------------------------------------------------------------------


def _thread_names(inspector: Inspector) -> dict[int, str]:
    threads = inspector.panes["threads"].data or []
    return {_int(t.get("address")): f"tid {t.get('tid')} {t.get('name', '')}" for t in threads}


def render_vcpus(inspector: Inspector) -> Rendered:
    pane = inspector.panes["vcpus"]
    lines = _head(pane, "no data yet: the guest has not stopped")
    stale = _stale(inspector, pane)
    names = _thread_names(inspector)
    selected = inspector.selection
    cursor = None
    for cpu in pane.data or []:
        vcpu = _int(cpu.get("vcpu"))
        ok = cpu.get("verdict") == "consistent"
        mark = ">" if selected == Selection("vcpu", vcpu) else " "
        if mark == ">":
            cursor = len(lines)
        index = cpu.get("index")
        where = str(cpu.get("where", "?")) + ("/fast" if cpu.get("fast_path") else "")
        lines.append(
            [
                ("class:selected" if mark == ">" else "", f"{mark}vCPU {vcpu} "),
                ("class:head", f"cpus[{index if index is not None else '?'}] "),
                (_styled("", stale), f"{where:<9} "),
                (_styled("class:ok" if ok else "class:bad", stale), str(cpu.get("verdict", "?"))),
            ]
        )
        kernel_tcb = _int(cpu.get("kernel_tcb"))
        lines.append(
            [
                (
                    _styled("", stale),
                    f"    gs={_hex(cpu.get('gs_base'))} kernel_tcb={kernel_tcb:#x}"
                    f" ({names.get(_int(cpu.get('current')), 'tid ' + str(cpu.get('kernel_tcb_owner', '?')))})"
                    f" counter={cpu.get('counter', '?')}"
                    + (f" preempt={cpu['preempt_count']}" if cpu.get("preempt_count") else ""),
                )
            ]
        )
        lines.append(
            [(_styled("", stale), f"    fs={_hex(cpu.get('fs_base'))}: {cpu.get('fs_owner', '?')}")]
        )
    # the FS protocol the verdicts follow, when it is not the default
    protocol = inspector.fs_protocol
    extra = f"FS protocol {protocol}" if protocol != "counter" else ""
    return _title(inspector, "vcpus", extra), lines, cursor


def render_threads(inspector: Inspector) -> Rendered:
    pane = inspector.panes["threads"]
    lines = _head(pane, "no data yet")
    stale = _stale(inspector, pane)
    in_syscall = {}
    for record in [*inspector.syscalls.values(), *inspector.entering]:
        if record.get("state") != "done":
            in_syscall[_int(record.get("tid"))] = record.get("name", "?")
    cursor = None
    if pane.data:
        lines.append(
            [
                (
                    "class:head",
                    f" {'tid':>4} {'name':<12} {'state':<8} {'cpu':>3} "
                    f"{'tcb':>18} {'app_tcb':>18} {'ctr':>3} syscall",
                )
            ]
        )
    for thread in pane.data or []:
        tid = _int(thread.get("tid"))
        mark = ">" if inspector.selection == Selection("thread", tid) else " "
        if mark == ">":
            cursor = len(lines)
        problems = thread.get("problems") or []
        cpu = thread.get("cpu")
        row = (
            f"{mark}{tid:>4} {str(thread.get('name', '')):<12.12} {str(thread.get('state', '')):<8} "
            f"{'-' if cpu is None else cpu:>3} {_hex(thread.get('tcb')):>18} "
            f"{_hex(thread.get('app_tcb')):>18} {str(thread.get('counter', '?')):>3} "
            f"{in_syscall.get(tid, '')}"
        )
        lines.append([(_styled("class:selected" if mark == ">" else "", stale), row)])
        for problem in problems:
            lines.append([(_styled("class:bad", stale), f"       ! {problem}")])
    return _title(inspector, "threads"), lines, cursor


# --- syscalls ------------------------------------------------------------------------------


def render_syscalls(inspector: Inspector) -> Rendered:
    pane = inspector.panes["syscalls"]
    lines = _head(pane, "no records yet")
    stale = _stale(inspector, pane)
    for error in inspector.syscall_errors:
        lines.append([("class:error", error)])
    records = inspector.shown_syscalls()
    for record in records:
        flight = record.get("state") != "done"
        cpu = str(record.get("cpu", "?"))
        exit_cpu = record.get("exit_cpu")
        if exit_cpu is not None and str(exit_cpu) != cpu and not flight:
            cpu += f">{exit_cpu}"
        style = "class:inflight" if flight else ""
        if record.get("state") in ("torn", "garbage"):
            style = "class:bad"
        line = [
            (
                _styled("class:dim", stale),
                f"{_int(record.get('seq')):>6} cpu{cpu:<3} tid{str(record.get('tid')):<3} ",
            ),
            (_styled(style, stale), str(record.get("text", "?"))),
        ]
        if record.get("memory_now"):
            line.append(("class:warn", "  [* memory read now, may have changed]"))
        lines.append(line)
    for call in inspector.entering:
        lines.append(
            [
                (
                    _styled("class:dim", stale),
                    f"{'entry':>6} cpu{str(call.get('cpu')):<3} tid{str(call.get('tid')):<3} ",
                ),
                (
                    _styled("class:inflight", stale),
                    f"{call.get('text', '?')}  <in flight: stopped at its entry>",
                ),
            ]
        )
    if not lines:
        lines.append([("class:dim", "no records yet")])
    extra = f"[{inspector.filter.describe()}]" if inspector.filter.describe() else ""
    extra += f" {len(records)}/{len(inspector.syscalls)}"
    # Newest at the bottom, and kept in view.
    return _title(inspector, "syscalls", extra.strip()), lines, len(lines) - 1 if lines else None


# --- backtrace and source -------------------------------------------------------------------


def render_backtrace(inspector: Inspector) -> Rendered:
    pane = inspector.panes["backtrace"]
    selection = inspector.selection
    if selection is None:
        return TITLES["backtrace"], [[("class:dim", "select a vCPU or a thread (Enter)")]], None
    lines = _head(pane, "no backtrace yet")
    stale = _stale(inspector, pane)
    trace = pane.data if isinstance(pane.data, dict) else None
    extra = ""
    if trace is not None:
        extra = f"of {trace['selection'].describe()} ({trace['source']})"
        if trace["selection"] != selection:
            lines.insert(0, [("class:dim", f"fetching {selection.describe()}...")])
        for level, frame in enumerate(trace["frames"]):
            mark = ">" if level == inspector.frame else " "
            where = (
                f" at {frame['file']}:{frame['line']}"
                if frame.get("file") and frame.get("line")
                else ""
            )
            module = f" ({frame['module']})" if frame.get("module") else ""
            guess = " [guessed: no CFI]" if frame.get("guessed") else ""
            style = (
                "class:selected"
                if mark == ">"
                else ("class:head" if frame.get("kind") == "crossing" else "")
            )
            lines.append(
                [
                    (
                        _styled(style, stale),
                        f"{mark}#{level:<2} {frame['address']:#018x} {frame['function']}{module}{where}{guess}",
                    )
                ]
            )
    cursor = inspector.frame + (len(lines) - len(trace["frames"]) if trace else 0)
    return (
        _title(inspector, "backtrace", extra),
        lines,
        cursor if trace and trace["frames"] else None,
    )


def render_source(inspector: Inspector) -> Rendered:
    pane = inspector.panes["source"]
    lines = _head(pane, "no frame selected")
    data = pane.data if isinstance(pane.data, dict) else None
    cursor = None
    extra = ""
    if data is not None and "lines" in data:
        extra = f"{data['path']}:{data['line']}"
        for number, text in data["lines"]:
            here = number == data["line"]
            if here:
                cursor = len(lines)
            lines.append(
                [
                    (
                        "class:selected" if here else "class:dim",
                        f"{'>' if here else ' '}{number:>5} ",
                    ),
                    ("class:selected" if here else "", text.expandtabs(4)),
                ]
            )
    elif data is not None:
        extra = f"disassembly at {data['address']:#x}"
        for insn in data["instructions"]:
            address = _int(insn.get("address"))
            here = address == data["address"]
            if here:
                cursor = len(lines)
            where = (
                f"<{insn.get('func-name')}+{insn.get('offset')}>" if insn.get("func-name") else ""
            )
            lines.append(
                [
                    (
                        "class:selected" if here else "",
                        f"{'>' if here else ' '}{address:#018x} {where:<28} {insn.get('inst', '')}",
                    )
                ]
            )
    return _title(inspector, "source", extra), lines, cursor


# --- the rest ------------------------------------------------------------------------------


def render_console(inspector: Inspector) -> Rendered:
    recorded, replay = inspector.recorded_console, inspector.replay
    if recorded is not None and replay and "console" in replay:
        # A replay: the recorded outputs as far as the guest had written them at this point.
        text = replay["console"].decode(errors="replace").replace("\r", "")
        lines = [[("", line)] for line in text.splitlines()]
        later = replay["later"]
        if later > 0:
            lines.append([("class:dim", f"({later} more bytes come later in the recording)")])
        title = f"console (as of instruction {replay['icount']})"
        return title, lines or [[("class:dim", "(nothing yet)")]], max(len(lines) - 1, 0)
    text = inspector.console.replace("\r", "")
    lines = [[("", line)] for line in text.splitlines()] or [[("class:dim", "(nothing yet)")]]
    title = "console" + (" (live)" if inspector.status.state == "running" else "")
    return title, lines, len(lines) - 1


def render_output(inspector: Inspector) -> Rendered:
    lines = [
        [("class:head" if line.startswith("(gdb) ") else "", line)] for line in inspector.output
    ]
    if not lines:
        lines = [[("class:dim", "press : to run a GDB or osv-* command; its output comes here")]]
    return TITLES["output"], lines, len(lines) - 1


def render_auxv(inspector: Inspector) -> Rendered:
    pane = inspector.panes["auxv"]
    lines = _head(pane, "shown once the app has started (press Tab to come here after a stop)")
    data = pane.data if isinstance(pane.data, dict) else None
    if data is not None:
        lines.append(
            [
                (
                    "class:head",
                    f"initial stack {_hex(data.get('initial_stack'))}, argc {data.get('argc')}",
                )
            ]
        )
        for i, arg in enumerate(data.get("argv", [])):
            lines.append([("", f"argv[{i}] = {arg!r}")])
        for i, env in enumerate(data.get("envp", [])):
            lines.append([("", f"envp[{i}] = {env!r}")])
        for entry in data.get("auxv", []):
            text = str(entry.get("text", entry.get("value", "")))
            bad = "missing" in text or "mismatch" in text or "not " in text
            lines.append(
                [
                    ("class:head", f"{entry.get('name', entry.get('type')):<16} "),
                    ("class:bad" if bad else "", text),
                ]
            )
        for problem in data.get("problems", []) or []:
            lines.append([("class:bad", f"! {problem}")])
    return _title(inspector, "auxv"), lines, None


def render_breakpoints(inspector: Inspector) -> Rendered:
    pane = inspector.panes["breakpoints"]
    lines = _head(pane, "no breakpoints")
    for bkpt in pane.data or []:
        where = bkpt.get("func") or bkpt.get("original-location") or bkpt.get("what", "")
        if bkpt.get("file"):
            where += f" at {bkpt['file']}:{bkpt.get('line')}"
        cond = f" if {bkpt['cond']}" if bkpt.get("cond") else ""
        lines.append(
            [
                (
                    "" if bkpt.get("enabled") == "y" else "class:dim",
                    f"{bkpt.get('number'):>3} {bkpt.get('type', ''):<11} {'y' if bkpt.get('enabled') == 'y' else 'n'} "
                    f"{bkpt.get('addr', ''):>18} {where}{cond} (hit {bkpt.get('times', 0)})",
                )
            ]
        )
    if pane.data == []:
        lines = [[("class:dim", "no breakpoints (b: break on syscalls)")]]
    return _title(inspector, "breakpoints"), lines, None


def render_milog(inspector: Inspector) -> Rendered:
    log = inspector.backend.log
    lines = []
    for entry in log.entries:
        ms = "   ...  " if entry.ms is None else f"{entry.ms:7.1f}ms"
        style = "class:error" if entry.outcome in ("error", "gdb-exited") else ""
        lines.append(
            [
                ("class:dim", f"{ms} {entry.size:>7}B "),
                (style, f"{entry.outcome:<8} {entry.command}"),
            ]
        )
    title = f"MI log ({log.sent} commands, {log.received} bytes)"
    return title, lines or [[("class:dim", "no commands yet")]], len(lines) - 1 if lines else None


RENDERERS = {
    "vcpus": render_vcpus,
    "threads": render_threads,
    "syscalls": render_syscalls,
    "backtrace": render_backtrace,
    "source": render_source,
    "console": render_console,
    "output": render_output,
    "auxv": render_auxv,
    "breakpoints": render_breakpoints,
    "milog": render_milog,
}


def plain(lines: list[Fragments]) -> list[str]:
    """The text of rendered lines, styles dropped."""
    return ["".join(text for _, text in line) for line in lines]
