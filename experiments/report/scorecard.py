"""The scorecard on top of the report: one row per dimension a review weighs, one column per
architecture, each cell a figure with its spread from metrics.csv rows (the row names them),
the best of each row marked; then a few sentences, each computed from the table's figures.

A dimension a run did not measure shows "not measured" (with the step that would), never a
guess; a figure that is only a bound (a knee at the search's limit) says so and is not ranked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from experiments.harness.profiles import ARCHITECTURES
from experiments.harness.run_folder import ALL_QUERIES, number
from experiments.report.data import (
    NEAR_TIE,
    PASSTHROUGH,
    RunData,
    cost_models,
    fmt,
    knees_by_repeat,
    reprocess_sizes,
    spread_text,
)
from experiments.stats import Spread

NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Cell:
    text: str
    value: float | None = None  # what the row ranks by; None: not ranked
    best: bool = False


@dataclass(frozen=True)
class Row:
    key: str  # what the sentences look a row up by
    dimension: str
    anchor: str  # the report section it summarises
    source: str  # the metrics.csv rows it reads
    cells: tuple[Cell, ...]
    higher_is_better: bool = False


def _marked(cells: list[Cell], higher_is_better: bool) -> tuple[Cell, ...]:
    """The best value marked, and every value within NEAR_TIE of it (a tie within the noise),
    when two cells or more have one and not all of them are that close."""
    values = [c.value for c in cells if c.value is not None]
    if len(values) < 2:
        return tuple(cells)
    best = max(values) if higher_is_better else min(values)

    def near(value: float | None) -> bool:
        if value is None:
            return False
        if value == best:
            return True
        return value >= best / NEAR_TIE if higher_is_better else best > 0 and value <= best * NEAR_TIE

    if all(near(v) for v in values):
        return tuple(cells)
    return tuple(Cell(c.text, c.value, near(c.value)) for c in cells)


def _spread_cell(spread: Spread | None, digits: int, unit: str = "", missing: str = NOT_MEASURED) -> Cell:
    return Cell(spread_text(spread, digits, unit), spread.median) if spread else Cell(missing)


def _row(
    key: str,
    dimension: str,
    anchor: str,
    source: str,
    cell: Callable[[str], Cell],
    architectures: list[str],
    higher_is_better: bool = False,
) -> Row:
    cells = [cell(b) for b in architectures]
    return Row(key, dimension, anchor, source, _marked(cells, higher_is_better), higher_is_better)


def common_rate(data: RunData, architectures: list[str]) -> float | None:
    """The highest latency rate at which every architecture measured has a p50."""
    measured = [b for b in architectures if b in data.live_builds]
    rates = [
        rate
        for rate in data.rates
        if measured and all(data.spread("latency", "latency_p50_s", b, ALL_QUERIES, rate) for b in measured)
    ]
    return rates[-1] if rates else None


def _freshness(data: RunData, architectures: list[str], rate: float | None, metric: str, name: str) -> Row:
    floor = data.spread("latency", metric, PASSTHROUGH, ALL_QUERIES, rate) if rate else None

    def cell(build: str) -> Cell:
        spread = data.spread("latency", metric, build, ALL_QUERIES, rate) if rate else None
        if spread is None:
            return Cell(NOT_MEASURED)
        over = f"; {spread.median / floor.median:.1f}x the pass-through" if floor and floor.median else ""
        return Cell(spread_text(spread, 2, " s") + over, spread.median)

    at = f" at {rate:g} lines/s" if rate else ""
    return _row(
        name,
        f"Freshness {name}, every query visible{at}",
        "latency",
        f"{metric}, step latency, query all",
        cell,
        architectures,
    )


def _throughput(data: RunData, architectures: list[str]) -> Row:
    def cell(build: str) -> Cell:
        knees = knees_by_repeat(data, build)
        if not knees:
            return Cell(NOT_MEASURED)
        spread = data.spread("throughput", "sustainable_lps", build)
        # a knee at the search's limit (">= N") or below its first rate is a bound: shown, not ranked
        exact = spread is not None and all(k[0].isdigit() for k in knees)
        return Cell(" / ".join(knees) + " lines/s", spread.median if exact and spread else None)

    return _row(
        "throughput",
        "Sustainable throughput (per repeat)",
        "throughput",
        "sustainable_lps and unbounded_lps, step throughput",
        cell,
        architectures,
        higher_is_better=True,
    )


def _drain_cost(data: RunData, architectures: list[str]) -> tuple[Row, Row, Row]:
    models = cost_models(data)
    lines = data.drain_input_lines

    def per_line(build: str) -> Cell:
        model = models.get(build)
        if model and model.per_line_us > 0:
            return Cell(f"{model.per_line_us:,.1f} s (+ {model.fixed_s:.1f} s fixed)", model.per_line_us)
        if model:
            return Cell(f"none measurable: its time did not grow from {fmt(model.sizes[0], 0)} lines")
        spread = data.spread("drain", "wall_s", build)
        if spread is None:
            return Cell(NOT_MEASURED)
        return Cell(f"no cost model; a drain of {fmt(lines, 0)} lines: {spread_text(spread, 1, ' s')}", None)

    def one_drain(build: str, metric: str, digits: int, unit: str) -> Cell:
        # a figure of one drain is not a figure per line: ranked only when no system has a model
        cell = _spread_cell(data.spread("drain", metric, build), digits, f"{unit} (one drain of {fmt(lines, 0)})")
        return cell if not models else Cell(cell.text)

    def cpu(build: str) -> Cell:
        model = models.get(build)
        if model and model.cpu_per_line_us is not None and model.cpu_per_line_us > 0:
            return Cell(f"{model.cpu_per_line_us:,.1f} s", model.cpu_per_line_us)
        return one_drain(build, "cpu_s", 1, " s")

    def memory(build: str) -> Cell:
        model = models.get(build)
        if model:
            largest = model.sizes[-1]
            peak = model.peak_rss(largest)
            return Cell(f"{fmt(peak, 0)} MiB at {fmt(largest, 0)} lines", peak) if peak else Cell(NOT_MEASURED)
        return one_drain(build, "peak_rss_mb", 0, " MiB")

    return (
        _row(
            "drain_cost",
            "Drain cost per million lines (wall)",
            "cost-model" if models else "drains",
            "per_line_us and fixed_s, step drain (else wall_s)",
            per_line,
            architectures,
        ),
        _row(
            "cpu",
            "CPU per million lines",
            "cost-model" if models else "drains",
            "cpu_per_line_us, step drain (else cpu_s)",
            cpu,
            architectures,
        ),
        _row(
            "memory",
            "Peak memory, largest drain",
            "cost-model" if models else "drains",
            "peak_rss_mb, steps drain and cost",
            memory,
            architectures,
        ),
    )


def _reprocessing(data: RunData, architectures: list[str]) -> Row:
    sizes = reprocess_sizes(data)
    largest = sizes[-1] if sizes else None

    def cell(build: str) -> Cell:
        if largest is None:
            return Cell(NOT_MEASURED)
        spread = data.spread("reprocessing", "wall_s", build, lines=largest)
        return _spread_cell(spread, 1, " s", missing="no recompute path" if data.step_ran("reprocessing") else "")

    at = f" at {largest:,} lines" if largest else ""
    return _row(
        "reprocessing",
        f"Reprocessing after a logic change{at}",
        "reprocessing",
        "wall_s, step reprocessing",
        cell,
        architectures,
    )


def _recovery(data: RunData, architectures: list[str]) -> tuple[Row, Row]:
    def first_commit(build: str) -> Cell:
        return _spread_cell(data.spread("recovery", "first_commit_after_restart_s", build), 1, " s")

    def lost(build: str) -> Cell:
        lost = [number(r) for r in data.select("recovery", "lost_lines", build) if r["value"] != ""]
        duplicated = [number(r) for r in data.select("recovery", "duplicated_lines", build) if r["value"] != ""]
        if not lost:
            return Cell(NOT_MEASURED)
        worst_lost, worst_dup = max(v or 0 for v in lost), max((v or 0 for v in duplicated), default=0)
        return Cell(f"{worst_lost:,.0f} lost / {worst_dup:,.0f} duplicated", worst_lost + worst_dup)

    return (
        _row(
            "first_commit",
            "Recovery after SIGKILL: restart to first commit",
            "recovery",
            "first_commit_after_restart_s, step recovery",
            first_commit,
            architectures,
        ),
        _row(
            "lost",
            "Recovery after SIGKILL: order lines lost / duplicated",
            "recovery",
            "lost_lines and duplicated_lines, step recovery",
            lost,
            architectures,
        ),
    )


def _late(data: RunData, architectures: list[str]) -> Row:
    def cell(build: str) -> Cell:
        before = data.spread("late", "window_lines_missing", build)
        if before is None:
            return Cell(NOT_MEASURED)
        after = data.spread("late", "window_lines_missing_after_batch", build)
        if after is not None:
            return Cell(f"{before.median:,.0f} pairs, {after.median:,.0f} after its batch run", after.median)
        return Cell(f"{before.median:,.0f} pairs", before.median)

    return _row(
        "late",
        "Late data: (line, window) pairs missing against the truth",
        "late",
        "window_lines_missing (and _after_batch), step late",
        cell,
        architectures,
    )


def _code(data: RunData, architectures: list[str]) -> Row:
    def cell(build: str) -> Cell:
        own = data.select("code_size", "code_lines", build, "build-specific")
        shared = data.select("code_size", "code_lines", build, "shared")
        if not own:
            return Cell(NOT_MEASURED)
        value = number(own[-1])
        extra = f" (+ {fmt(number(shared[-1]), 0)} shared)" if shared else ""
        return Cell(f"{fmt(value, 0)} own lines{extra}", value)

    return _row("code", "Code: the build's own lines", "code-size", "code_lines, step code_size", cell, architectures)


def _per_event(architectures: list[str]) -> Row:
    return Row(
        "per_event",
        "Per-event latency (a real-time path)",
        "latency",
        "no rows: no build has a real-time path in this version",
        tuple(Cell("no real-time path") for _ in architectures),
    )


def rows(data: RunData) -> tuple[list[str], list[Row]]:
    architectures = list(ARCHITECTURES)
    rate = common_rate(data, architectures)
    return architectures, [
        _freshness(data, architectures, rate, "latency_p50_s", "p50"),
        _freshness(data, architectures, rate, "latency_p99_s", "p99"),
        _throughput(data, architectures),
        *_drain_cost(data, architectures),
        _reprocessing(data, architectures),
        *_recovery(data, architectures),
        _late(data, architectures),
        _code(data, architectures),
        _per_event(architectures),
    ]


def _ranked(row: Row, architectures: list[str]) -> list[tuple[str, Cell]]:
    found = [(b, c) for b, c in zip(architectures, row.cells) if c.value is not None]
    return sorted(found, key=lambda bc: bc[1].value or 0.0, reverse=row.higher_is_better)


def sentences(data: RunData, architectures: list[str], table: list[Row]) -> list[str]:
    """What the figures mean for a choice: each sentence from the rows above, none by hand."""
    env = data.environment
    cpus = env.get("machine", {}).get("cpus", "?")
    where = f"on this {cpus}-CPU machine, Spark master {env.get('spark_master', '-')}"
    row = {r.key: r for r in table}
    said = []
    fresh = _ranked(row["p50"], architectures)
    if len(fresh) >= 2:
        (first, a), (last, z) = fresh[0], fresh[-1]
        spread = (z.value or 0) / (a.value or 1)
        said.append(
            f"Freshness {where}: {first} made every query visible soonest ({a.text.split(';')[0]} at p50), "
            f"{last} latest ({z.text.split(';')[0]})"
            + (
                f"; within {spread:.2f}x of each other, so per-batch overhead shared by all builds weighs more "
                "than the architecture"
                if spread < 1.25
                else ""
            )
            + "."
        )
    knees = _ranked(row["throughput"], architectures)
    if knees:
        said.append(
            "Sustainable throughput: "
            + ", ".join(f"{b} {c.value:,.0f} lines/s" for b, c in knees)
            + " (median knee of the repeats; a build whose knee is only a bound is left out of this ranking)."
        )
    cost = _ranked(row["drain_cost"], architectures)
    if len(cost) >= 2:
        low, high = cost[0][1].value or 0.0, cost[-1][1].value or 0.0
        said.append(
            (
                f"Cost of processing: the architectures need {low:,.1f}-{high:,.1f} s of wall time per million lines, "
                f"within {high / low - 1:.0%} of each other: none is cheaper per line on this machine"
                if low > 0 and high / low < NEAR_TIE
                else f"Cost of processing: {cost[0][0]} needs the least wall time per million lines ({low:,.1f} s "
                f"against {cost[-1][0]}'s {high:,.1f} s)"
            )
            + "; from the cost model's least-squares line."
        )
    recompute = _ranked(row["reprocessing"], architectures)
    if len(recompute) >= 2:
        said.append(
            f"{row['reprocessing'].dimension}: {recompute[0][0]} {recompute[0][1].text}, {recompute[-1][0]} "
            f"{recompute[-1][1].text}."
        )
    losses = [(b, c) for b, c in zip(architectures, row["lost"].cells) if c.value is not None]
    if losses:
        clean = [b for b, c in losses if c.value == 0]
        said.append(
            "After a SIGKILL at a random moment "
            + (
                f"{', '.join(clean)} lost and duplicated no order line"
                if clean
                else "every build lost or duplicated order lines"
            )
            + (
                "; " + ", ".join(f"{b}: {c.text}" for b, c in losses if c.value != 0)
                if len(clean) < len(losses)
                else ""
            )
            + "."
        )
    late = [(b, c) for b, c in zip(architectures, row["late"].cells) if c.value is not None]
    corrected = [b for b, c in late if "after its batch run" in c.text and c.value == 0]
    if late:
        said.append(
            "Late data: "
            + "; ".join(f"{b} {c.text}" for b, c in late)
            + (f" ({', '.join(corrected)} corrects it with its batch layer)" if corrected else "")
            + "."
        )
    return said[:6]


def scorecard(data: RunData) -> dict:
    architectures, table = rows(data)
    header = ["dimension", *architectures, "from metrics.csv"]
    return {
        "header": header,
        "rows": table,
        "table": {  # the same, as a plain table (the markdown report's), the best of a row in bold
            "header": header,
            "table": [
                [r.dimension, *[f"**{c.text}**" if c.best else c.text for c in r.cells], r.source] for r in table
            ],
        },
        "architectures": architectures,
        "sentences": sentences(data, architectures, table),
    }
