"""What `lab bench` prints: the drain table and the targets F1-F3 and F5 of a run folder.

`lab bench` is the drain step of `lab experiments` at a size of the user's choosing (its
run folder and report are the same kind), so its figures are read back from the run
folder's metrics.csv like every other report figure: wall-time ratios per repeat (same
repeat, same input, same machine), then their median and spread.
"""

from __future__ import annotations

from dataclasses import dataclass

from experiments.harness.verify import format_text_table
from experiments.report.data import RunData, drain_table, spread_text, status_of

FAILING_STATUSES = ("DIFFERS", "MISSING", "not compared")


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    top: str  # the system whose wall time is the numerator
    bottom: str
    limit: float
    at_least: bool  # True: the ratio must be >= limit; False: <= limit


TARGETS = (
    Target(
        "F1", "Kappa drain throughput over Spark batch (batch time / kappa time)", "spark_batch", "kappa", 0.5, True
    ),
    Target("F2", "Lambda full run time over Spark batch", "lambda", "spark_batch", 2.0, False),
    Target("F3", "DStream drain time over Spark batch", "dstream", "spark_batch", 4.0, False),
    Target("F5", "Spark batch time over DuckDB time", "spark_batch", "duckdb", 3.0, False),
)


def target_line(data: RunData, target: Target) -> str:
    spread = data.ratio("drain", "wall_s", target.top, target.bottom)
    bound = f"{'>=' if target.at_least else '<='} {target.limit:g}x"
    if spread is None:
        needs = f"needs successful {target.top} and {target.bottom} runs"
        return f"{target.name} {target.text}: not measured ({needs}); target {bound}"
    met = spread.median >= target.limit if target.at_least else spread.median <= target.limit
    return f"{target.name} {target.text}: {spread_text(spread, 2, 'x')}; target {bound}: {'met' if met else 'NOT MET'}"


def failures(data: RunData) -> list[str]:
    """Every run that failed and every export that differs from the oracle's, in any repeat."""
    found = [
        f"{r['build']} repeat {r['repeat']}: exit code {r['value']}"
        for r in data.select("drain", "exit_code")
        if r["value"] != "0"
    ]
    found += [
        f"{r['build']} repeat {r['repeat']}, {r['query']}: {r['detail']}"
        for r in data.select("drain", "equivalence")
        if status_of(r) in FAILING_STATUSES
    ]
    return found


def summary(data: RunData, report: str) -> str:
    """The printed summary of one `lab bench` run, from its run folder alone."""
    lines_in = next((r["input_lines"] for r in data.select("drain", "wall_s") if r["input_lines"]), "")
    drains = drain_table(data)
    repeats = len({r["repeat"] for r in data.select("drain", "wall_s")})
    problems = failures(data)
    return "\n".join(
        [
            f"lab bench run {data.run_id}: {int(lines_in or 0):,} raw input lines, Spark master "
            f"{data.environment.get('spark_master', '-')}, {repeats} repeat(s)",
            "Wall time is each whole process: interpreter and JVM start, reading, computing, writing the export "
            "(builds and baselines alike). CPU s is user + system of the whole process tree; peak RSS is the "
            "tree's memory with each page counted once (a JVM's resident set, the others' proportional set). "
            "Ratios: per repeat, then the median with (min-max).",
            "",
            format_text_table(drains["header"], drains["table"]),
            "",
            *(target_line(data, t) for t in TARGETS),
            "",
            *([f"NOT IDENTICAL or failed: {p}" for p in problems] or ["every export is identical to the oracle's"]),
            f"report: {report}",
        ]
    )
