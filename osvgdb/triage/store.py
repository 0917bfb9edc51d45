"""The de-duplication store under --out DIR: one directory per signature.

    DIR/<signature hash>/report.json     the first run's report (and .md, console.txt)
    DIR/<signature hash>/dump.core.zst   its dump (zstd) and dump.core.zst.json, if it had one
    DIR/<signature hash>/occurrences.json  {"signature", "count", "first", "last", "runs": [...]}
    DIR/index.json                       {signature: {"hash", "count", "title", "outcome"}}

A later run with the same signature only counts (its report goes into
`runs/`, its dump is dropped): the store keeps the first crash of each kind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from osvgdb.dump import now


def _write_json(path: Path, data: object) -> None:
    scratch = path.with_suffix(path.suffix + ".tmp")
    scratch.write_text(json.dumps(data, indent=1) + "\n")
    scratch.replace(path)  # a reader never sees half a file


def record(store: Path, run_dir: Path, report: dict) -> tuple[Path, bool]:
    """File one run (its directory holds report.json, report.md, console.txt and
    maybe the dump) under its signature; (the signature's directory, whether new)."""
    bucket = store / report["signature_hash"]
    new = not bucket.exists()
    if new:
        bucket.mkdir(parents=True)
        for item in run_dir.iterdir():
            shutil.move(str(item), bucket / item.name)
        occurrences = {"signature": report["signature"], "count": 0, "first": now(), "runs": []}
    else:
        occurrences = json.loads((bucket / "occurrences.json").read_text())
        runs = bucket / "runs"
        runs.mkdir(exist_ok=True)
        shutil.copy(run_dir / "report.json", runs / f"{occurrences['count'] + 1}.json")
    occurrences["count"] += 1
    occurrences["last"] = now()
    occurrences["runs"].append({"time": now(), "outcome": report["outcome"], "title": report["title"]})
    _write_json(bucket / "occurrences.json", occurrences)
    index_path = store / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[report["signature"]] = {
        "hash": report["signature_hash"],
        "count": occurrences["count"],
        "outcome": report["outcome"],
        "title": report["title"],
    }
    _write_json(index_path, index)
    return bucket, new
