"""The cost model: each system's drains at several sizes fitted as `wall = fixed + per_line x
lines`, written to metrics.csv as the drains step's metrics `fixed_s` and `per_line_us`
(and `cpu_per_line_us`, `worst_residual`), which the report reads.

The points are the drain step's runs at its own size (step `drain`) and the runs at the
profile's larger sizes (step `cost`, experiments/harness/cost_step.py), each a whole process
that exited 0. A drain of 2,000 lines is mostly JVM start, so only sizes 100x apart tell what
a line costs; the fit says how far its worst run is from the line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple, cast

from experiments.harness.run_folder import Metric, number
from experiments.stats import LinearFit

STEP = "drain"  # the fit's rows belong to the drains step
POINT_STEPS = ("drain", "cost")


class Point(NamedTuple):
    lines: int
    wall_s: float
    cpu_s: float | None
    peak_rss_mb: float | None


def points(rows: Iterable[Mapping], system: str) -> list[Point]:
    """Each successful run of `system` at any size: one point."""
    runs: dict[tuple[str, int, str], dict[str, float | None]] = {}
    for r in rows:
        if r["step"] in POINT_STEPS and r["build"] == system and r["input_lines"] and r["repeat"]:
            runs.setdefault((r["step"], int(r["input_lines"]), r["repeat"]), {})[r["metric"]] = number(r)
    return sorted(
        Point(lines, cast(float, run["wall_s"]), run.get("cpu_s"), run.get("peak_rss_mb"))
        for (_, lines, _), run in runs.items()
        if run.get("exit_code") == 0 and run.get("wall_s") is not None  # so wall_s is a number
    )


def fit_metrics(rows: Iterable[Mapping], systems: Iterable[str]) -> list[Metric]:
    """The fit of every system with successful runs at two sizes or more."""
    rows = list(rows)
    found = []
    for system in systems:
        runs = points(rows, system)
        wall = LinearFit.of([p.lines for p in runs], [p.wall_s for p in runs])
        if wall is None:
            continue
        sizes = sorted({p.lines for p in runs})
        over = f"least squares over {len(runs)} runs at {', '.join(f'{s:,}' for s in sizes)} lines"
        figures = [
            ("fixed_s", wall.intercept, "s"),
            ("per_line_us", wall.slope * 1e6, "us per line"),
            ("worst_residual", wall.worst_relative_residual(), "share of the fitted time"),
        ]
        timed = [(p.lines, p.cpu_s) for p in runs if p.cpu_s is not None]
        cpu = LinearFit.of([lines for lines, _ in timed], [seconds for _, seconds in timed])
        if cpu is not None:
            figures.append(("cpu_per_line_us", cpu.slope * 1e6, "CPU us per line"))
        found += [
            Metric(STEP, system, name, value, unit, input_lines=sizes[-1], detail=over) for name, value, unit in figures
        ]
    return found
