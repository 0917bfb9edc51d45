"""`osvgdb triage`: run EXE (or reopen a dump) and report what came of it.

Each run gets a directory with report.json, report.md, console.txt and the dump;
with --out DIR it is filed in DIR's de-duplication store (osvgdb.triage.store),
else left in a fresh directory under the system's temporary one only while the
command runs, unless a dump was written: then its path is printed.  --json,
--markdown and --junit write the report (with --repeat: every run's) where asked.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

from osvgdb.build import BuildError
from osvgdb.dump import Dump, DumpError, read_metadata
from osvgdb.dump_writer import DEFAULT_LEVEL, LEVEL_HELP, LEVELS
from osvgdb.model.elf_target import DumpTarget, ElfKernel
from osvgdb.model.kernel import Kernel
from osvgdb.qemu import QemuError
from osvgdb.record import RecordingError, check_recordable
from osvgdb.run import RunOptions
from osvgdb.triage import render, store
from osvgdb.triage.collect import Event
from osvgdb.triage.live import TRIAGE_MEMORY, TriageOptions, collect_sections, triage_run
from osvgdb.triage.outcome import EXIT_STATUS, Outcome, help_text, worst
from osvgdb.triage.report import Report, classify

REPEAT_SCHEMA = "osvgdb-triage-repeat"
DEFAULT_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"a run not over after S seconds is a hang (default {DEFAULT_TIMEOUT:g})")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, metavar="K",
                        help="run K times: the reproduction rate and whether the signatures agree")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the report as Markdown")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML (one testcase per run)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="keep each distinct crash in DIR/<signature hash>/ with its dump and a count")  # fmt: skip
    dump = parser.add_mutually_exclusive_group()
    dump.add_argument("--dump", dest="dump", action="store_true", default=True,
                      help="save a memory dump with the report (the default)")  # fmt: skip
    dump.add_argument("--no-dump", dest="dump", action="store_false", help="no dump")
    parser.add_argument("--dump-level", choices=LEVELS, default=DEFAULT_LEVEL,
                        help=f"what the dump keeps (default {DEFAULT_LEVEL}): {LEVEL_HELP}")  # fmt: skip
    parser.add_argument("--no-fscheck", dest="fscheck", action="store_false",
                        help="leave the kernel's FS-base watchdog off")  # fmt: skip
    parser.add_argument("--memory", default=TRIAGE_MEMORY, metavar="SIZE",
                        help=f"guest RAM, QEMU's -m (default {TRIAGE_MEMORY})")  # fmt: skip
    parser.add_argument("--core", type=Path, metavar="DUMP",
                        help="triage a dump a previous triage saved, offline (no QEMU, no GDB)")  # fmt: skip
    parser.add_argument("--app", type=Path, metavar="EXE", help="with --core: the app (default: the dump's)")
    parser.add_argument("--record", action="store_true",
                        help="record the run (QEMU's record/replay: one vCPU, TCG) beside the report, "
                        "for `osvgdb replay DIR` at the stop the report describes")  # fmt: skip


EPILOG = help_text()


def _write_run(directory: Path, data: dict, console: str) -> None:
    (directory / "report.json").write_text(json.dumps(data, indent=1) + "\n")
    (directory / "report.md").write_text(render.markdown(data))
    (directory / "console.txt").write_text(console)


def triage_core(dump_path: Path, kernel_path: Path | None, app_path: Path | None) -> Report:
    """The report of a dump triage saved: the same collection, over the dump."""
    report = Report(command=["osvgdb", "triage", "--core", str(dump_path)], exe=None)
    with report.step("open"):
        metadata = read_metadata(dump_path)
        if metadata is None and kernel_path is None:
            raise DumpError(f"{dump_path}: no sidecar {dump_path}.json: name the kernel with --kernel")
        sidecar = json.loads(Path(str(dump_path) + ".json").read_text()) if metadata else {}
        saved = sidecar.get("triage", {})
        report.event = Event.from_dict(saved.get("event", {"reason": "none"}))
        report.console = saved.get("console", "")
        kernel_path = kernel_path or Path(metadata.kernel_path)
        app_path = app_path or (Path(metadata.app_path) if metadata and metadata.app_path else None)
        report.exe = str(app_path) if app_path else None
        report.versions = {"kernel_build_id": metadata.kernel_build_id if metadata else None}
    if report.partial:
        classify(report)
        return report
    with Dump(dump_path) as dump, report.step("collect"):
        kernel = Kernel(DumpTarget(ElfKernel(kernel_path), dump))
        collect_sections(report, kernel, app_path, report.event)
    classify(report)
    return report


def _run_options(namespace: argparse.Namespace, parse_run_options) -> RunOptions:
    options = parse_run_options(namespace)
    options.memory = namespace.memory
    return options


def repeat_summary(reports: list[dict]) -> dict:
    signatures = Counter(r["signature"] for r in reports)
    failing = [r for r in reports if r["outcome"] != Outcome.PASSED]
    return {
        "schema": REPEAT_SCHEMA,
        "schema_version": 1,
        "runs": len(reports),
        "reproduced": len(failing),
        "rate": len(failing) / len(reports) if reports else 0.0,
        "signatures": dict(signatures),
        "outcomes": dict(Counter(r["outcome"] for r in reports)),
        "agree": len(signatures) == 1,
        "flaky": 0 < len(failing) < len(reports) or len(signatures) > 1,
        "reports": reports,
    }


def run(namespace: argparse.Namespace, parse_run_options) -> int:
    if namespace.core is not None:
        if namespace.command_line:
            raise ValueError("--core: no EXE with a dump (--app EXE names the app)")
        reports = [triage_core(namespace.core, namespace.kernel, namespace.app).as_dict()]
    else:
        if namespace.app is not None:
            raise ValueError("--app: only with --core (a run's app is EXE)")
        if namespace.record:
            check_recordable(_run_options(namespace, parse_run_options))
        if namespace.repeat < 1:
            raise ValueError("--repeat: at least 1")
        options = TriageOptions(
            run=_run_options(namespace, parse_run_options),
            timeout=namespace.timeout,
            dump=namespace.dump,
            dump_level=namespace.dump_level,
            compress_dump=namespace.out is not None,
            fscheck=namespace.fscheck,
            record=namespace.record,
        )
        command = ["osvgdb", "triage", *sys.argv[2:]] if sys.argv[1:2] == ["triage"] else ["osvgdb", "triage"]
        reports = [_one_run(options, namespace, command, i) for i in range(namespace.repeat)]
    for data in reports:
        _say(data)
    if len(reports) > 1:
        summary = repeat_summary(reports)
        print(
            f"osvgdb triage: {summary['reproduced']} of {summary['runs']} runs failed "
            f"(rate {summary['rate']:.2f}); signatures {'agree' if summary['agree'] else 'differ'}: "
            + ", ".join(f"{s} x{n}" for s, n in summary["signatures"].items())
        )
        document: dict = summary
    else:
        document = reports[0]
    if namespace.json:
        namespace.json.write_text(json.dumps(document, indent=1) + "\n")
    if namespace.markdown:
        namespace.markdown.write_text("\n".join(render.markdown(r) for r in reports))
    if namespace.junit:
        namespace.junit.write_text(render.junit(reports))
    return EXIT_STATUS[worst([Outcome(r["outcome"]) for r in reports])]


def _one_run(options: TriageOptions, namespace: argparse.Namespace, command: list[str], index: int) -> dict:
    scratch = Path(tempfile.mkdtemp(prefix="osvgdb-triage-"))
    try:
        report = triage_run(options, scratch, command)
        data = report.as_dict()
        data["run"] = index + 1
        _write_run(scratch, data, report.console)
        if namespace.out is not None:
            bucket, new = store.record(namespace.out, scratch, data)
            data["stored"] = {"directory": str(bucket), "new": new}
            if data.get("dump"):
                _moved(data["dump"], bucket if new else None)
            if data.get("recording"):
                _moved_recording(data["recording"], bucket if new else None)
            if new:  # the stored report says where its dump and recording are now
                _write_run(bucket, data, report.console)
        elif data.get("dump") or data.get("recording"):
            kept = Path(tempfile.mkdtemp(prefix="osvgdb-triage-"))
            for item in scratch.iterdir():
                shutil.move(str(item), kept / item.name)
            if data.get("dump"):
                _moved(data["dump"], kept)
            if data.get("recording"):
                _moved_recording(data["recording"], kept)
            _write_run(kept, data, report.console)
            data["stored"] = {"directory": str(kept), "new": True}
        return data
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _moved(dump: dict, directory: Path | None) -> None:
    """The dump's entry once its files went to `directory` (None: dropped, a repeat)."""
    if directory is None:
        dump.update(path=None, sidecar=None, dropped="the store keeps the first dump of a signature")
        return
    for key in ("path", "sidecar"):
        dump[key] = str(directory / Path(dump[key]).name)


def _moved_recording(recording: dict, directory: Path | None) -> None:
    """The recording's entry once the run's files went to `directory` (None: dropped)."""
    if directory is None:
        recording.update(path=None, replay=None, dropped="the store keeps the first recording of a signature")
        return
    path = directory / Path(recording["path"]).name
    recording.update(path=str(path), replay=f"osvgdb replay {path}")


def _say(data: dict) -> None:
    print(f"osvgdb triage: {data['title']}")
    print(f"  outcome {data['outcome']}, signature {data['signature']}")
    if data.get("stored"):
        print(f"  report and dump in {data['stored']['directory']}")
    recording = data.get("recording")
    if recording and recording.get("replay") and recording.get("complete"):
        print(f"  recorded: `{recording['replay']}` opens it at the stop this report describes")
    elif recording and recording.get("path") and not recording.get("complete"):
        print(f"  the recording in {recording['path']} is incomplete: QEMU did not close it")
    failed = [s for s in data["steps"] if not s["ok"]]
    for step in failed:
        print(f"  partial: {step['step']} failed: {step['error']}")


def main(namespace: argparse.Namespace, parse_run_options, usage_errors: tuple) -> int:
    """`osvgdb triage`: its exit status.  Bad arguments, a build that fails, no
    QEMU: an infrastructure report (one line on stderr, the files still written)."""
    try:
        return run(namespace, parse_run_options)
    except (*usage_errors, ValueError, BuildError, QemuError, DumpError, RecordingError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"osvgdb triage: error: {message}", file=sys.stderr)
        report = Report(command=["osvgdb", "triage", *sys.argv[2:]], exe=None)
        report.steps.append({"step": "arguments", "ok": False, "error": message, "seconds": 0.0})
        report.event = Event("infrastructure", detail=message)
        classify(report)
        data = report.as_dict()
        try:
            if namespace.json:
                namespace.json.write_text(json.dumps(data, indent=1) + "\n")
            if namespace.markdown:
                namespace.markdown.write_text(render.markdown(data))
            if namespace.junit:
                namespace.junit.write_text(render.junit([data]))
        except OSError as write_error:
            print(f"osvgdb triage: error: {write_error}", file=sys.stderr)
        return EXIT_STATUS[Outcome.INFRASTRUCTURE]
