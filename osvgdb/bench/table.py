"""Pure: the rows and anchors as one readable table."""

from __future__ import annotations

from collections.abc import Sequence

from osvgdb.bench.matrix import Anchor

NOT_MEASURED = "not measured: TCG times are not costs; needs KVM"


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:g}{unit}" if isinstance(value, int) else f"{value:.2f}{unit}"


def _delta(row: dict, rows: Sequence[dict]) -> str:
    """The row's instructions against `none` with the same bench and fs_write."""
    for other in rows:
        if (other["bench"], other["fs_write"], other["fs_protocol"]) == (
            row["bench"], row["fs_write"], "none",
        ):  # fmt: skip
            delta = row["instructions"] - other["instructions"]
            return f"{delta:+g}" if float(delta).is_integer() else f"{delta:+.2f}"
    return "-"


def render(rows: Sequence[dict], anchors: Sequence[Anchor], *, accel: str, runs: int) -> str:
    """The table: one line per row, then the host's anchors."""
    lines = [
        f"guest instructions per operation (TCG, -icount shift=0: the guest's TSC counts "
        f"instructions), median of {runs} runs",
    ]
    if accel == "tcg":
        lines.append(f"ns: {NOT_MEASURED}")
    else:
        lines.append("ns: KVM, the guest's TSC scaled by its CLOCK_MONOTONIC, median of the runs")
    header = ("bench", "fs_protocol", "fs_write", "instructions", "vs none", "spread",
              "ns", "host_ns")  # fmt: skip
    body = [
        (
            row["bench"],
            row["fs_protocol"],
            row["fs_write"],
            _number(row["instructions"]),
            _delta(row, rows),
            _number(row["spread"]["instructions"]),
            _number(row["ns"]) if accel != "tcg" else "n/m",
            _number(row["host_ns"]),
        )
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body)]
    for cells in (header, *body):
        text = [cells[0].ljust(widths[0]), cells[1].ljust(widths[1]), cells[2].ljust(widths[2])]
        text += [cell.rjust(width) for cell, width in zip(cells[3:], widths[3:])]
        lines.append("  ".join(text).rstrip())
    if anchors:
        lines.append("")
        lines.append(render_anchors(anchors))
    return "\n".join(lines)


def render_anchors(anchors: Sequence[Anchor]) -> str:
    """The host's figures: ns per op, the spread of the runs, or why there is none."""
    lines = ["host anchors (this machine's Linux, user mode; ns per op, median of the runs):"]
    width = max(len(a.name) for a in anchors)
    for anchor in anchors:
        if anchor.ns is None:
            lines.append(f"  {anchor.name.ljust(width)}  not measured: {anchor.why_not}")
        else:
            lines.append(
                f"  {anchor.name.ljust(width)}  {_number(anchor.ns, ' ns'):>10}"
                f"  (spread {_number(anchor.spread)} over {anchor.runs} runs)"
            )
    return "\n".join(lines)


def render_markdown(rows: Sequence[dict]) -> str:
    """The rows as the README's Markdown table (scripts/bench_markdown)."""
    lines = [
        "| bench | fs_protocol | fs_write | instructions | vs none | spread | ns | host_ns |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        delta = _delta(row, rows) if row["fs_protocol"] != "none" else ""
        cells = (
            row["bench"], row["fs_protocol"], row["fs_write"], _number(row["instructions"]),
            delta, _number(row["spread"]["instructions"]), _number(row["ns"]),
            _number(row["host_ns"]),
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
