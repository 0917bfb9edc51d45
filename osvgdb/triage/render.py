"""The report for a person (Markdown) and for CI (JUnit XML), from the report's dict.

JUnit: one testcase per run, as Jenkins' schema and GitLab read it: a
<failure> (message: the title; body: the Markdown report, which GitLab shows)
for a crash or hang, an <error> for an infrastructure outcome, the console in
<system-out>.  XML 1.0 forbids most control characters, so ANSI escapes and
control bytes are stripped first; ElementTree escapes the rest (no CDATA).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from osvgdb.model import names
from osvgdb.triage.outcome import JUNIT_ERROR, Outcome

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
FRAMES_SHOWN = 16
SYSCALLS_SHOWN = 8


def clean(text: str) -> str:
    """Text XML 1.0 accepts: no ANSI escapes, no control characters but tab and newlines."""
    return CONTROL.sub("", ANSI.sub("", text.replace("\r\n", "\n")))


def _hex(value) -> str:
    return f"{value:#x}" if isinstance(value, int) else "?"


def _frame_line(index: int, frame: dict) -> str:
    if frame.get("kind") == "crossing":
        return f"  {index:2}  {frame.get('function') or frame.get('label')}"
    where = f"  {frame['file'].rsplit('/', 1)[-1]}:{frame['line']}" if frame.get("file") else ""
    module = f" [{frame['module']}]" if frame.get("module") else ""
    function = names.demangle(frame["function"]) if frame.get("function") else "??"
    return f"  {index:2}  {_hex(frame.get('address'))}  {function}{where}{module}"


def _code(lines: list[str]) -> list[str]:
    return ["```", *[clean(line).replace("```", "'''") for line in lines], "```"]


def _location(location: dict | None) -> str:
    if not location:
        return "?"
    text = f"{_hex(location.get('address'))} {location.get('function') or '??'}"
    if location.get("file"):
        text += f" ({location['file'].rsplit('/', 1)[-1]}:{location['line']})"
    return text


def markdown(data: dict) -> str:
    out = [f"# osvgdb triage: {data['title']}", ""]
    app_status = data.get("app_exit_status")
    out += [
        f"- **outcome**: `{data['outcome']}` (osvgdb triage's exit status {data['exit_status']})",
        "- **app**: " + (f"exit status {app_status}" if app_status is not None else "did not exit"),
        f"- **signature**: `{data['signature']}`",
        f"- **proto signature**: `{data['proto_signature']}`",
    ]
    if data["notes"]:
        out.append(f"- **signature rules applied**: {', '.join(data['notes'])}")
    out.append(f"- **command**: `{' '.join(data['command'])}`")
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
    out.append(f"- **versions**: {versions}")
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in data["timings"].items())
    out.append(f"- **timings**: {timings}")
    failed = [s for s in data["steps"] if not s["ok"]]
    if failed:
        out.append("- **partial report**: " + "; ".join(f"{s['step']} failed: {s['error']}" for s in failed))
    if data.get("dump"):
        out.append(f"- **dump**: `{data['dump']['path']}` (`osvgdb inspect`, `osvgdb debug --core`)")
    recording = data.get("recording")
    if recording and recording.get("replay"):
        state = "" if recording.get("complete") else " (incomplete: QEMU did not close it)"
        out.append(f"- **recording**: `{recording['path']}`{state}; `{recording['replay']}` opens it "
                   "at this report's stop, to go back from there")  # fmt: skip
    out.append("")

    if fault := data.get("fault"):
        out += ["## Fault", ""]
        out.append(
            f"{fault.get('signal_name')} ({fault.get('cause')}) in tid {fault.get('tid')} on CPU "
            f"{fault.get('cpu')}: {fault.get('kind')}"
        )
        if fault.get("vector_name"):
            out.append(
                f"vector {fault.get('vector')} ({fault['vector_name']}), error code "
                f"{_hex(fault.get('error_code'))}, CR2 {_hex(fault.get('cr2'))}"
            )
        out.append(f"at {_location(fault.get('location'))}")
        if instruction := fault.get("instruction"):
            out.append(f"instruction: `{instruction.get('text')}` ({instruction.get('bytes')})")
        regs = fault.get("registers") or {}
        if regs:
            names = sorted(regs)
            out += _code([" ".join(f"{n}={regs[n]:#x}" for n in names[i : i + 4]) for i in range(0, len(names), 4)])
        out.append("")
    if panic := data.get("panic"):
        out += ["## Kernel panic", "", f"CPU {panic.get('cpu')}: {panic.get('message')}"]
        if panic.get("vector_name"):
            out.append(f"vector {panic.get('vector')} ({panic['vector_name']}), error {_hex(panic.get('error_code'))}, CR2 {_hex(panic.get('cr2'))}")
        out.append("")
    if fscheck := data.get("fscheck"):
        out += ["## FS-base violation", "", clean(fscheck["text"]), ""]
    if hang := data.get("hang"):
        out += ["## Hang", "", hang.get("verdict", ""), ""]
    if found := data.get("runtime_report"):
        out += ["## Runtime report", ""]
        out.append(f"{found['runtime']} {found['what']}: {clean(found['message'])}")
        if found.get("corrupted"):
            out.append(f"corrupted: {'; '.join(found.get('problems', []))}")
        out.append("the guest's state agrees" if found["agrees"] else f"not used: {found['disagreement']}")
        out += [f"- {clean(note)}" for note in found.get("notes", [])]
        out.append("")
    if data.get("goroutines"):
        out += ["## Goroutines", "", "| goroutine | status | waits on | own function | thread |", "|---|---|---|---|---|"]
        for g in data["goroutines"]:
            if not g.get("system"):
                out.append(f"| {g['goid']} | {g['status']} | {g.get('wait_reason') or ''} | "
                           f"{g.get('own_function') or '?'} | {g.get('tid') or ''} |")  # fmt: skip
        system = sum(1 for g in data["goroutines"] if g.get("system"))
        out += [f"and {system} of the runtime's own", ""]

    if data.get("vcpus"):
        out += ["## vCPUs", "", "| vCPU | CPU | mode | thread | FS base | whose | counter | preempt | verdict | at |",
                "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for v in data["vcpus"]:
            out.append(
                f"| {v['vcpu']} | {v['cpu']} | {v['mode']} | {v['current_tid']} {v['current_name'] or ''} "
                f"| {_hex(v['fs_base'])} | {v['fs_owner']} | {v['counter']} | {v.get('preempt_count')} | {clean(v['verdict'])} "
                f"| {_location(v.get('location'))} |"
            )
        out.append("")
    for thread in data.get("threads", []):
        guilty = " (guilty)" if thread["tid"] == data.get("guilty_tid") else ""
        out += [f"## Thread {thread['tid']} {thread['name']}{guilty}", ""]
        line = f"state {thread['state']}, cpu {thread['cpu']}"
        if thread.get("on_vcpu"):
            line += f", on vCPU {thread['on_vcpu']}"
        line += f", app_tcb {_hex(thread.get('app_tcb'))}, counter {thread.get('counter')}"
        out.append(line)
        if wait := thread.get("wait"):
            text = f"waits: {wait['kind']}"
            if wait.get("futex"):
                text += f" at {_hex(wait['futex'])} (word {wait.get('value')} now"
                if wait.get("expected") is not None:
                    text += f", slept on {wait['expected']}" + (": changed since" if wait.get("stale") else "")
                text += ")"
            if wait.get("holder_tid") is not None:
                text += f", on tid {wait['holder_tid']}: {wait.get('how')}"
            out.append(text)
            if lost := wait.get("lost_wake"):
                out.append(f"**lost wake-up** (the kernel's {lost['waker']}): {lost['text']}")
        out.append("")
        backtrace = thread.get("backtrace")
        if backtrace:
            frames = backtrace["frames"]
            lines = [_frame_line(i, f) for i, f in enumerate(frames[:FRAMES_SHOWN])]
            if len(frames) > FRAMES_SHOWN:
                lines.append(f"  ... {len(frames) - FRAMES_SHOWN} more")
            if not backtrace.get("complete", True):
                lines.append(f"  (unwinding stopped: {backtrace.get('stopped')})")
            out += _code(lines)
        calls = thread.get("syscalls", {}).get("last", [])
        if calls:
            out += ["", "Last syscalls:", ""]
            out += _code([c["text"] + (" /* memory now */" if c.get("memory_now") and "memory now" not in c["text"] else "") for c in calls[-SYSCALLS_SHOWN:]])
        out.append("")
    if auxv := data.get("auxv"):
        out += ["## auxv", "", f"load base {_hex(auxv.get('load_base'))}, entry {_hex(auxv.get('entry'))}, argv {auxv.get('argv')}", ""]
        out += _code([f"{e['name']:<16} {e['text']}" for e in auxv.get("auxv", [])])
        out.append("")
    out += ["## Console (tail)", ""]
    out += _code(data.get("console_tail", []))
    return "\n".join(out) + "\n"


def junit(reports: list[dict], *, suite: str = "osvgdb-triage") -> str:
    """One <testsuite> with one <testcase> per report."""
    failures = sum(1 for r in reports if r["outcome"] != Outcome.PASSED and r["outcome"] not in JUNIT_ERROR)
    errors = sum(1 for r in reports if r["outcome"] in JUNIT_ERROR)
    total_time = sum(sum(r["timings"].values()) for r in reports)
    suites = ET.Element("testsuites", name=suite, tests=str(len(reports)), failures=str(failures),
                        errors=str(errors), time=f"{total_time:.3f}")  # fmt: skip
    element = ET.SubElement(suites, "testsuite", name=suite, tests=str(len(reports)),
                            failures=str(failures), errors=str(errors), skipped="0",
                            time=f"{total_time:.3f}")  # fmt: skip
    for index, report in enumerate(reports):
        exe = (report.get("exe") or "app").rsplit("/", 1)[-1]
        name = exe if len(reports) == 1 else f"{exe} run {index + 1}"
        case = ET.SubElement(element, "testcase", classname=f"osvgdb.triage.{exe}", name=name,
                             time=f"{sum(report['timings'].values()):.3f}")  # fmt: skip
        if report["outcome"] != Outcome.PASSED:
            tag = "error" if report["outcome"] in JUNIT_ERROR else "failure"
            problem = ET.SubElement(case, tag, message=clean(report["title"]), type=report["outcome"])
            problem.text = clean(markdown(report))
        out = ET.SubElement(case, "system-out")
        console = report.get("console") or "\n".join(report.get("console_tail", []))
        out.text = clean(f"outcome: {report['outcome']}\nsignature: {report['signature']}\n\n{console}")
        if report.get("dump"):
            out.text += f"\n[[ATTACHMENT|{report['dump']['path']}]]\n"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
