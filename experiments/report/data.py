"""What a report says, computed from one run folder alone (metrics.csv, latency/, environment.json).

Every figure here is read from rows of metrics.csv (medians and spreads over the repeats
are computed from those rows); the per-unit files under latency/ only feed the charts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from experiments.harness.builds import REPROCESSING_BUILDS
from experiments.harness.cost_model import Point
from experiments.harness.cost_model import points as cost_points
from experiments.harness.faults import LAST_PASS_KILL
from experiments.harness.live_figures import read_unit_rows
from experiments.harness.profiles import ARCHITECTURES, DRAIN_SYSTEMS, FLOORS, LIVE_BUILDS, UNITS_PER_SECOND
from experiments.harness.run_folder import ALL_QUERIES, ENVIRONMENT_FILE, METRICS_FILE, number, read_metrics
from experiments.stats import Spread
from shared.catalogue import QUERY_NAMES

BASELINES = ("spark_batch", "duckdb")
PASSTHROUGH, PASSTHROUGH_DELTA = FLOORS
COST_METRICS = ("wall_s", "cpu_s", "peak_rss_mb")
NEAR_TIE = 1.1  # figures within 10% of each other are not ranked in words: one run's noise is more
PERCENTILE_METRICS = ("latency_p50_s", "latency_p95_s", "latency_p99_s", "latency_max_s")
# Each step, its section title, and what it would have measured (named when a run folder has none of its rows).
STEP_TITLES = (
    ("drain", "Drains", "each system's drain of one input in its own process, repeated, against the oracle"),
    (
        "cost",
        "Cost model",
        "each system's drain at sizes 100x apart and more, fitted as fixed seconds plus seconds per line (the "
        "drains step on generated inputs read from files, with a profile's cost sizes)",
    ),
    ("latency", "Latency", "event-to-result latency of each build at three input rates or more"),
    (
        "throughput",
        "Sustainable throughput",
        "the search over rates for the highest one at which latency stays bounded (`--steps throughput`)",
    ),
    (
        "reprocessing",
        "Reprocessing",
        "city_revenue_v1 to city_revenue at two input sizes or more: Lambda's batch "
        "recompute against Kappa's replay (`--steps reprocessing`)",
    ),
    (
        "recovery",
        "Recovery and faults",
        "SIGKILL at a random moment of a live run, restart, lost and duplicated "
        "lines and the time to catch up; poison files met on the way "
        "(`--steps recovery`)",
    ),
    (
        "late",
        "Late data",
        "an input with lines beyond the watermark: what each build counted, dropped or corrected (`--steps late`)",
    ),
    ("code_size", "Code size", "lines each build needs, its own and the shared ones (`--steps code_size`)"),
    (
        "soak",
        "Soak",
        "each build following a replay at half its sustainable throughput for half an hour: latency, memory, "
        "CPU and Delta files per 5-minute window (`make soak`, the soak profile)",
    ),
)


def not_measured(data: RunData) -> list[tuple[str, str]]:
    """The steps this run folder has no rows of, with what they measure."""
    return [(title, text) for step, title, text in STEP_TITLES if not data.step_ran(step)]


class RunFolderError(ValueError):
    """The folder is not a complete run folder."""


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def spread_text(spread: Spread | None, digits: int = 2, unit: str = "") -> str:
    if spread is None:
        return "-"
    if spread.n == 1:
        return fmt(spread.median, digits, unit)
    return f"{spread.median:,.{digits}f}{unit} ({spread.low:,.{digits}f}-{spread.high:,.{digits}f}, n={spread.n})"


@dataclass
class RunData:
    path: Path
    environment: dict
    rows: list[dict]
    units: dict[tuple[str, int], list[dict]] = field(default_factory=dict)  # (build, repeat) -> unit rows

    @classmethod
    def load(cls, run_dir: str | Path) -> RunData:
        path = Path(run_dir)
        if not (path / ENVIRONMENT_FILE).exists() or not (path / METRICS_FILE).exists():
            raise RunFolderError(f"{path} is not a run folder: it needs {ENVIRONMENT_FILE} and {METRICS_FILE}")
        units = {}
        for unit_file in sorted((path / "latency").glob("*-r*.csv")):
            build, _, repeat = unit_file.stem.rpartition("-r")
            units[(build, int(repeat))] = read_unit_rows(unit_file)
        return cls(
            path,
            json.loads((path / ENVIRONMENT_FILE).read_text(encoding="utf-8")),
            read_metrics(path / METRICS_FILE),
            units,
        )

    @property
    def run_id(self) -> str:
        return self.path.name

    # --- selecting rows -----------------------------------------------------------------

    def select(
        self,
        step: str,
        metric: str,
        build: str | None = None,
        query: str | None = None,
        rate: float | None = None,
        lines: int | None = None,
    ) -> list[dict]:
        return [
            r
            for r in self.rows
            if r["step"] == step
            and r["metric"] == metric
            and (build is None or r["build"] == build)
            and (query is None or r["query"] == query)
            and (rate is None or (r["rate_lps"] and float(r["rate_lps"]) == rate))
            and (lines is None or (r["input_lines"] and int(r["input_lines"]) == lines))
        ]

    def by_repeat(
        self,
        step: str,
        metric: str,
        build: str,
        query: str | None = None,
        rate: float | None = None,
        ok_only: bool = True,
        lines: int | None = None,
    ) -> dict[int, float]:
        """repeat -> value; with ok_only, the wall time, CPU and memory of a process that did not
        exit 0 are left out (it did not do the whole job). Latency read from its commit log
        stays: those commits were made, and the run's failure is reported beside them."""
        failed = (
            {int(r["repeat"]) for r in self.select(step, "exit_code", build, lines=lines) if r["value"] != "0"}
            if ok_only and metric in COST_METRICS
            else set()
        )
        return {
            int(r["repeat"]): cast(float, number(r))
            for r in self.select(step, metric, build, query, rate, lines)
            if r["value"] != "" and r["repeat"] and int(r["repeat"]) not in failed
        }  # a value: a number

    def spread(
        self,
        step: str,
        metric: str,
        build: str,
        query: str | None = None,
        rate: float | None = None,
        lines: int | None = None,
    ) -> Spread | None:
        return Spread.of(list(self.by_repeat(step, metric, build, query, rate, lines=lines).values()))

    def step_ran(self, step: str) -> bool:
        return any(r["step"] == step for r in self.rows)

    def ratio(self, step: str, metric: str, top: str, bottom: str) -> Spread | None:
        """top / bottom per repeat (same repeat of the same run), then median and spread."""
        a, b = self.by_repeat(step, metric, top), self.by_repeat(step, metric, bottom)
        return Spread.of([a[r] / b[r] for r in sorted(set(a) & set(b)) if b[r] > 0])

    def present(self, step: str, names) -> list[str]:
        seen = {r["build"] for r in self.rows if r["step"] == step}
        return [n for n in names if n in seen]

    @property
    def drain_systems(self) -> list[str]:
        return self.present("drain", DRAIN_SYSTEMS)

    @property
    def live_builds(self) -> list[str]:
        return self.present("latency", LIVE_BUILDS)

    def anatomy(self) -> dict[tuple[str, str], dict[str, float]]:
        """(build, streaming query) -> part -> median ms of its live micro-batches (the
        latency step's `batch_<part>_ms` rows: experiments/harness/anatomy.py)."""
        from experiments.harness.anatomy import part_of

        found: dict[tuple[str, str], dict[str, float]] = {}
        for r in self.rows:
            part = part_of(r["metric"])
            if r["step"] == "latency" and part is not None and r["value"] != "":
                found.setdefault((r["build"], r["query"]), {})[part] = cast(float, number(r))  # a value: a number
        return {
            key: found[key]
            for key in sorted(found, key=lambda k: (LIVE_BUILDS.index(k[0]) if k[0] in LIVE_BUILDS else 99, k[1]))
        }

    @property
    def rates(self) -> list[float]:
        return sorted({float(r["rate_lps"]) for r in self.rows if r["step"] == "latency" and r["rate_lps"]})

    @property
    def repeats(self) -> int:
        return max((int(r["repeat"]) for r in self.rows if r["repeat"]), default=0)

    @property
    def drain_input_lines(self) -> int | None:
        found = [r for r in self.rows if r["step"] == "drain" and r["metric"] == "raw_lines" and r["build"] == "oracle"]
        return int(float(found[0]["value"])) if found else None

    @property
    def live_input_lines(self) -> int | None:
        found = [r for r in self.rows if r["step"] == "latency" and r["input_lines"]]
        return int(found[0]["input_lines"]) if found else None


# ---------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------


def status_of(row: dict) -> str:
    return row["detail"].split(":", 1)[0]


def short_verdict(row: dict) -> str:
    status = status_of(row)
    if status == "DIFFERS":
        return f"DIFFERS ({fmt(number(row), 0)} rows)"
    return status


def latency_against_floors(data: RunData, rate: float) -> str | None:
    """The finding on latency at one rate: each architecture's p50 and p99 (every query
    visible) as multiples of the pass-through's at that rate in the same run, ranked by p50,
    with both floors' own figures (ratios: absolute times drift on a shared machine)."""

    def median_of(metric: str, build: str) -> float | None:
        return _median(data.spread("latency", metric, build, ALL_QUERIES, rate))

    p50 = {b: median_of("latency_p50_s", b) for b in data.live_builds}
    p99 = {b: median_of("latency_p99_s", b) for b in data.live_builds}
    ranked = {b: v for b, v in p50.items() if b not in FLOORS and v is not None}
    builds = sorted(ranked, key=ranked.__getitem__)
    if not builds:
        return None
    floor50, floor99 = p50.get(PASSTHROUGH), p99.get(PASSTHROUGH)

    def times(value: float | None, floor: float | None) -> str:
        return f"{value / floor:.1f}x" if value is not None and floor else "-"

    floors = [
        f"{name} p50 {p50[b]:.2f} s, p99 {p99[b]:.2f} s"
        for b, name in (
            (PASSTHROUGH, "the pass-through (Spark's file source, no work)"),
            (PASSTHROUGH_DELTA, "the pass-through committing each micro-batch to Delta"),
        )
        if p50.get(b) is not None and p99.get(b) is not None
    ]
    if floor50:
        parts = [
            f"{b} {times(p50[b], floor50)} p50, {times(p99[b], floor99)} p99 ({p50[b]:.2f} / {p99[b]:.2f} s)"
            for b in builds
        ]
        head = f"Latency at {rate:g} lines/s, every query visible, over the pass-through's in the same run: "
    else:
        parts = [f"{b} p50 {p50[b]:.2f} s, p99 {p99[b]:.2f} s" for b in builds]
        head = f"Latency at {rate:g} lines/s, every query visible (no pass-through in this run to read it against): "
    return head + "; ".join(parts) + (f". Floors: {'; '.join(floors)}" if floors else "") + f". Lowest: {builds[0]}."


def equivalence(data: RunData, step: str) -> dict:
    """The verdicts of the last repeat per (query, build), whether every repeat agreed, and
    the details of every verdict that is not `identical`."""
    builds = [b for b in (data.drain_systems if step == "drain" else data.live_builds) if b not in FLOORS]
    rows = data.select(step, "equivalence")
    last: dict[tuple[str, str], dict] = {}
    verdicts: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        key = (r["query"], r["build"])
        verdicts.setdefault(key, set()).add(short_verdict(r))
        if key not in last or int(r["repeat"]) >= int(last[key]["repeat"]):
            last[key] = r
    queries = [q for q in (*QUERY_NAMES, ALL_QUERIES) if any(k[0] == q for k in last)]
    table = [[q, *[short_verdict(last[(q, b)]) if (q, b) in last else "-" for b in builds]] for q in queries]
    details = [
        f"{b}, {q} (repeat {last[(q, b)]['repeat']}): {last[(q, b)]['detail']}"
        for q in queries
        for b in builds
        if (q, b) in last and status_of(last[(q, b)]) != "identical"
    ]
    failing = [k for k, r in last.items() if status_of(r) in ("DIFFERS", "MISSING", "not compared")]
    inconsistent = sorted(f"{b}/{q}" for (q, b), seen in verdicts.items() if len(seen) > 1)
    return {
        "builds": builds,
        "header": ["query", *builds],
        "table": table,
        "details": details,
        "failing": failing,
        "inconsistent": inconsistent,
        "repeats": len({r["repeat"] for r in rows}),
        "explained": [k for k, r in last.items() if status_of(r) == "explained by the watermark"],
    }


# ---------------------------------------------------------------------------------------
# Drains and cost
# ---------------------------------------------------------------------------------------


def drain_table(data: RunData) -> dict:
    header = ["system", "runs ok", "wall s", "CPU s", "peak RSS MiB", "x Spark batch (wall)", "x DuckDB (wall)"]
    table = []
    for system in data.drain_systems:
        runs = data.select("drain", "exit_code", system)
        ok = sum(r["value"] == "0" for r in runs)
        table.append(
            [
                system,
                f"{ok}/{len(runs)}",
                spread_text(data.spread("drain", "wall_s", system), 1),
                spread_text(data.spread("drain", "cpu_s", system), 1),
                spread_text(data.spread("drain", "peak_rss_mb", system), 0),
                "1"
                if system == "spark_batch"
                else spread_text(data.ratio("drain", "wall_s", system, "spark_batch"), 2, "x"),
                "1" if system == "duckdb" else spread_text(data.ratio("drain", "wall_s", system, "duckdb"), 1, "x"),
            ]
        )
    return {"header": header, "table": table}


@dataclass(frozen=True)
class CostModel:
    """One system's fitted line (the drains step's rows `fixed_s`, `per_line_us`, ...) and the
    runs it was fitted to (experiments/harness/cost_model.py)."""

    system: str
    fixed_s: float
    per_line_us: float
    cpu_per_line_us: float | None
    worst_residual: float
    points: tuple[Point, ...]

    @property
    def sizes(self) -> list[int]:
        return sorted({p.lines for p in self.points})

    def wall_at(self, lines: float) -> float:
        return self.fixed_s + self.per_line_us * lines / 1e6

    def fixed_share(self, lines: int) -> float:
        """How much of a drain of `lines` the fitted fixed cost is (start-up, per-job costs)."""
        total = self.wall_at(lines)
        return min(1.0, max(0.0, self.fixed_s) / total) if total > 0 else 1.0

    def peak_rss(self, lines: int) -> float | None:
        found = sorted(p.peak_rss_mb for p in self.points if p.lines == lines and p.peak_rss_mb is not None)
        return found[len(found) // 2] if found else None


def cost_models(data: RunData) -> dict[str, CostModel]:
    """Each drain system the drains step fitted, in the drain systems' order."""
    models = {}
    for system in DRAIN_SYSTEMS:
        fit = {r["metric"]: number(r) for r in data.rows if r["step"] == "drain" and r["build"] == system}
        if fit.get("fixed_s") is None or fit.get("per_line_us") is None:
            continue
        models[system] = CostModel(
            system,
            cast(float, fit["fixed_s"]),
            cast(float, fit["per_line_us"]),
            fit.get("cpu_per_line_us"),
            fit.get("worst_residual") or 0.0,
            tuple(cost_points(data.rows, system)),
        )
    return models


def cost_table(data: RunData) -> dict:
    header = [
        "system",
        "runs (sizes)",
        "fixed s",
        "s per million lines",
        "CPU s per million lines",
        "peak RSS MiB, smallest to largest size",
        "worst residual",
    ]
    table = []
    for system, model in cost_models(data).items():
        sizes = model.sizes
        table.append(
            [
                system,
                f"{len(model.points)} ({', '.join(fmt(s, 0) for s in sizes)} lines)",
                fmt(model.fixed_s, 1),
                fmt(model.per_line_us, 1),
                fmt(model.cpu_per_line_us, 1),
                f"{fmt(model.peak_rss(sizes[0]), 0)} to {fmt(model.peak_rss(sizes[-1]), 0)}",
                f"{model.worst_residual:.0%}" if len(model.points) > 2 else "exact (2 points)",
            ]
        )
    return {"header": header, "table": table}


def cost_failures(data: RunData) -> list[str]:
    """Every run of the cost step that failed or whose export differs from the oracle's (its
    verdicts are counted at every size, not only the last)."""
    failed = [
        f"{r['build']} at {fmt(number(r, 'input_lines'), 0)} lines: exit code {r['value'] or 'none'} ({r['detail']})"
        for r in data.select("cost", "exit_code")
        if r["value"] != "0"
    ]
    return failed + [
        f"{r['build']}, {r['query']} at {fmt(number(r, 'input_lines'), 0)} lines: {r['detail']}"
        for r in data.select("cost", "equivalence")
        if status_of(r) in ("DIFFERS", "MISSING", "not compared")
    ]


def cost_finding(data: RunData) -> str | None:
    """The ranking by the cost of a line (the fit's slope), and how much of the drain step's
    time is the fixed cost at its size."""
    models = cost_models(data)
    arch = [s for s in ARCHITECTURES if s in models]
    if not arch:
        return None
    # a line that does not rise has no cost per line to rank: the sizes did not outgrow the noise
    flat = [s for s in arch if models[s].per_line_us <= 0]
    order = sorted((s for s in arch if s not in flat), key=lambda s: models[s].per_line_us)
    if not order:
        return (
            f"Cost model: no architecture's drain time grew with its input ({', '.join(flat)}), so no cost per "
            "line can be ranked; the cost step needs larger sizes on this machine."
        )
    sizes = sorted({size for m in models.values() for size in m.sizes})
    per_m = lambda s: f"{s} {models[s].per_line_us:,.1f} s"  # noqa: E731
    per_line = lambda s: models[s].per_line_us  # noqa: E731
    baselines = [s for s in BASELINES if s in models and models[s].per_line_us > 0]
    text = (
        f"Cost per million lines (least-squares fit of each system's drains at {fmt(sizes[0], 0)} to "
        f"{fmt(sizes[-1], 0)} lines, wall = fixed + per line x lines): "
        + ", ".join(per_m(s) for s in order)
        + (f" (baselines: {', '.join(per_m(s) for s in baselines)})" if baselines else "")
        + (
            f"; within {per_line(order[-1]) / per_line(order[0]) - 1:.0%} of each other, no architecture is cheaper "
            "per line here"
            if len(order) > 1 and per_line(order[-1]) < NEAR_TIE * per_line(order[0])
            else f"; cheapest per line: {order[0]}"
        )
        + ". Fixed cost: "
        + ", ".join(f"{s} {models[s].fixed_s:.1f} s" for s in order)
        + (f"; {', '.join(flat)}: time did not grow with the input, no cost per line to rank" if flat else "")
    )
    drain_lines = data.drain_input_lines
    if drain_lines:
        shares = {s: models[s].fixed_share(drain_lines) for s in order}
        text += (
            f". At the drain step's {fmt(drain_lines, 0)} lines the fixed cost is "
            + ", ".join(f"{shares[s]:.0%} of {s}'s time" for s in order)
            + (", so the drain ranking reads start-up, not processing" if min(shares.values()) > 0.5 else "")
        )
    return text + "."


def accounting_table(data: RunData) -> dict:
    header = ["build", "raw lines", "valid", "quarantined", "raw = valid + quarantined"]
    table = []
    oracle = {
        r["metric"]: number(r)
        for r in data.rows
        if r["step"] == "drain" and r["build"] == "oracle" and r["metric"] in ("raw_lines", "valid_lines")
    }
    if oracle:
        raw, valid = oracle.get("raw_lines"), oracle.get("valid_lines")
        table.append(
            [
                "oracle",
                fmt(raw, 0),
                fmt(valid, 0),
                fmt(raw - valid if raw is not None and valid is not None else None, 0),
                "yes (by construction)",
            ]
        )
    for system in data.drain_systems:
        last = {}
        for name in ("raw_lines", "valid_lines", "quarantined_lines", "balanced"):
            found = data.select("drain", name, system)
            if found:
                last[name] = max(found, key=lambda r: int(r["repeat"]))
        if not last:
            continue
        balanced = last.get("balanced")
        table.append(
            [
                system,
                *[
                    fmt(number(last[n]), 0) if n in last else "-"
                    for n in ("raw_lines", "valid_lines", "quarantined_lines")
                ],
                "yes"
                if balanced and balanced["value"] == "1"
                else (balanced["detail"] if balanced and balanced["detail"] else "NO"),
            ]
        )
    reasons = {r["detail"]: number(r) for r in data.rows if r["step"] == "drain" and r["metric"] == "quarantine"}
    return {"header": header, "table": table, "reasons": reasons}


def profile_table(data: RunData, top: int = 6) -> dict:
    """Per system, the parts of its last repeat that took the most time (profile rows)."""
    header = ["system", "streaming query / step", "part", "ms", "batches"]
    table = []
    for system in data.drain_systems:
        rows = [r for r in data.rows if r["step"] == "profile" and r["build"] == system]
        if not rows:
            continue
        last = max(int(r["repeat"]) for r in rows)
        mine = [r for r in rows if int(r["repeat"]) == last and "triggerExecution" not in r["detail"]]
        for r in sorted(mine, key=lambda r: -(number(r) or 0))[:top]:
            part, _, batches = r["detail"].partition(" over ")
            table.append([system, r["query"], part, fmt(number(r), 0), batches.removesuffix(" batches")])
    return {"header": header, "table": table}


# ---------------------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------------------


def latency_table(data: RunData, query: str = ALL_QUERIES) -> dict:
    header = [
        "build",
        "rate lines/s",
        "p50 s",
        "p95 s",
        "p99 s",
        "max s",
        "units measured",
        "uncovered",
        "commits",
        "commit lag trend s/min",
    ]
    table = []
    for build in data.live_builds:
        for rate in data.rates:
            if not data.select("latency", "units_measured", build, query, rate):
                continue
            cells = [spread_text(data.spread("latency", m, build, query, rate), 2) for m in PERCENTILE_METRICS]
            measured = sum(data.by_repeat("latency", "units_measured", build, query, rate, ok_only=False).values())
            uncovered = sum(data.by_repeat("latency", "units_uncovered", build, query, rate, ok_only=False).values())
            commits = data.spread("latency", "commits_measured", build, query, rate) if query == ALL_QUERIES else None
            trend = (
                data.spread("latency", "commit_lag_trend_s_per_min", build, query, rate)
                if query == ALL_QUERIES
                else None
            )
            table.append(
                [
                    build,
                    f"{rate:g}",
                    *cells,
                    fmt(measured, 0),
                    fmt(uncovered, 0),
                    spread_text(commits, 0) if query == ALL_QUERIES else "",
                    spread_text(trend, 2) if query == ALL_QUERIES else "",
                ]
            )
    return {"header": header, "table": table}


def per_query_latency_table(data: RunData) -> dict:
    """Per build, query and rate; queries of a build whose figures are the same at every rate
    (Kappa's additive queries share one commit) are one row that names them all."""
    header = ["build", "queries", "rate lines/s", "p50 s", "p95 s", "p99 s", "max s", "uncovered"]
    table = []
    for build in data.live_builds:
        queries = sorted({r["query"] for r in data.select("latency", "units_measured", build)} - {ALL_QUERIES})
        figures: dict[tuple, list[str]] = {}  # every rate's cells -> the queries that have them
        for query in queries:
            rows = []
            for rate in data.rates:
                if not data.select("latency", "units_measured", build, query, rate):
                    continue
                uncovered = sum(
                    data.by_repeat("latency", "units_uncovered", build, query, rate, ok_only=False).values()
                )
                rows.append(
                    (
                        f"{rate:g}",
                        *[spread_text(data.spread("latency", m, build, query, rate), 2) for m in PERCENTILE_METRICS],
                        fmt(uncovered, 0),
                    )
                )
            figures.setdefault(tuple(rows), []).append(query)
        for cells, same in figures.items():
            table += [[build, ", ".join(same), *row] for row in cells]
    return {"header": header, "table": table}


def live_cost_table(data: RunData) -> dict:
    header = [
        "build",
        "follow process wall s",
        "CPU s",
        "peak RSS MiB",
        "replayer CPU s",
        "replayer max lag s",
        "problems",
    ]
    table = []
    for build in data.live_builds:
        problems = [r["detail"] for r in data.select("latency", "problem", build)]
        table.append(
            [
                build,
                spread_text(data.spread("latency", "wall_s", build), 1),
                spread_text(data.spread("latency", "cpu_s", build), 1),
                spread_text(data.spread("latency", "peak_rss_mb", build), 0),
                spread_text(data.spread("latency", "replayer_cpu_s", build), 2),
                spread_text(data.spread("latency", "replay_lag_max_s", build), 3),
                "; ".join(problems) or "none",
            ]
        )
    return {"header": header, "table": table}


# ---------------------------------------------------------------------------------------
# Findings: sentences written from the figures above
# ---------------------------------------------------------------------------------------


def _median(spread: Spread | None) -> float | None:
    return None if spread is None else spread.median


def findings(data: RunData) -> list[str]:
    found = []
    drain_eq, live_eq = equivalence(data, "drain"), equivalence(data, "latency")
    for name, eq in (("drain", drain_eq), ("live", live_eq)):
        if not eq["table"]:
            continue
        cells = sum(1 for row in eq["table"] for cell in row[1:] if cell != "-")
        if eq["failing"]:
            found.append(
                f"Equivalence ({name} runs): {len(eq['failing'])} of {cells} build/query results differ from "
                f"the oracle or are missing: " + ", ".join(f"{b}/{q}" for q, b in sorted(eq["failing"])) + "."
            )
        else:
            explained = (
                f" ({len(eq['explained'])} explained by the watermark, with the dropped lines counted)"
                if eq["explained"]
                else ""
            )
            found.append(
                f"Equivalence ({name} runs): every one of the {cells} build/query results of the last repeat "
                f"is identical to the oracle's or not applicable{explained}; repeats "
                + ("agree." if not eq["inconsistent"] else "disagree on " + ", ".join(eq["inconsistent"]) + ".")
            )
    walls = {s: _median(data.spread("drain", "wall_s", s)) for s in data.drain_systems}
    arch = {b: w for b, w in walls.items() if b in ARCHITECTURES and w is not None}
    if arch:
        order = sorted(arch, key=arch.__getitem__)
        ratios = {b: _median(data.ratio("drain", "wall_s", b, "spark_batch")) for b in order}
        parts = [
            f"{b} {arch[b]:.1f} s" + (f" ({ratios[b]:.2f}x Spark batch)" if ratios[b] is not None else "")
            for b in order
        ]
        baseline = walls.get("spark_batch")
        found.append(
            f"Drain of {fmt(data.drain_input_lines, 0)} input lines, median wall time of the whole process: "
            + ", ".join(parts)
            + f"; fastest architecture: {order[0]}, slowest: {order[-1]}"
            + (
                f". Each figure includes its JVM's start and first queries: the Spark batch baseline, "
                f"which starts the same JVM and does the same work in one job, takes {baseline:.1f} s, so at "
                "this size the ranking reads start-up and per-job costs more than processing ("
                + ("the cost model below ranks the processing" if cost_models(data) else "`lab bench --rows 1000000`")
                + ")"
                if baseline is not None
                else ""
            )
            + "."
        )
    cost = cost_finding(data)
    if cost:
        found.append(cost)
    if walls.get("spark_batch") is not None and walls.get("duckdb") is not None:
        found.append(
            f"Baselines: Spark batch {walls['spark_batch']:.1f} s, DuckDB {walls['duckdb']:.1f} s "
            f"(Spark batch {_median(data.ratio('drain', 'wall_s', 'spark_batch', 'duckdb')):.1f}x DuckDB's time, "
            "JVM start included)."
        )
    cpu_all = {b: _median(data.spread("drain", "cpu_s", b)) for b in ARCHITECTURES if b in data.drain_systems}
    rss_all = {b: _median(data.spread("drain", "peak_rss_mb", b)) for b in ARCHITECTURES if b in data.drain_systems}
    cpu = {b: v for b, v in cpu_all.items() if v is not None}
    rss = {b: v for b, v in rss_all.items() if v is not None}
    if cpu and rss:
        low_cpu, high_rss = min(cpu, key=cpu.__getitem__), max(rss, key=rss.__getitem__)
        found.append(
            f"Cost of a drain: {low_cpu} used the least CPU ({cpu[low_cpu]:.1f} s of its process tree; "
            + ", ".join(f"{b} {v:.1f} s" for b, v in cpu.items() if b != low_cpu)
            + f"); {high_rss} the most memory ({rss[high_rss]:,.0f} MiB peak; "
            + ", ".join(f"{b} {v:,.0f} MiB" for b, v in rss.items() if b != high_rss)
            + ")."
        )
    rates = data.rates
    if rates:
        for rate in (rates[-1], rates[0]) if len(rates) > 1 else rates:
            finding = latency_against_floors(data, rate)
            if finding:
                found.append(finding)
        for build in data.live_builds:  # the latency step's verdicts, one per rate and pass
            behind = [
                f"at {float(r['rate_lps']):g} lines/s in pass {r['repeat']}: {r['detail']}"
                for r in data.select("latency", "bounded", build, ALL_QUERIES)
                if r["value"] == "0"
            ]
            if behind:
                found.append(f"{build} fell behind: " + "; ".join(behind) + ".")
        for build in data.live_builds:
            handoffs = data.select("latency", "handoff_at", build)
            if handoffs:
                found.append(
                    f"{build} handed off to a new batch cutoff {len(handoffs)} times during its live runs "
                    "(marked on the latency-over-time chart); its latency is that of its serving layer."
                )
    found += step_findings(data)
    problems = [
        f"{r['step']} {r['build']} repeat {r['repeat']}: {r['detail']}" for r in data.rows if r["metric"] == "problem"
    ]
    if problems:
        found.append("Runs that did not complete: " + "; ".join(problems) + ".")
    return found


def method_context(data: RunData) -> dict:
    """What the methods template (templates/methods.txt) says of this run: its profile's
    settings, the steps that ran, the verdict rules' constants, the registry's commands."""
    from experiments.harness.builds import BUILDS
    from experiments.harness.live_figures import MIN_COMMITS, RISE_FLOOR_S, RISE_SHARE, RISING_P

    profile = data.environment.get("profile", {})
    gap_s = profile.get("step_gap_s")
    rates = profile.get("rates") or [0]
    return {
        "warmup": profile.get("warmup_s", "?"),
        "start_warmup": profile.get("start_warmup_s", "?"),
        "gap_words": "(gap not recorded)"
        if gap_s is None
        else "back to back"
        if float(gap_s) == 0
        else f"with {gap_s:g} s of silence between",
        "ran": {step: data.step_ran(step) for step in ("throughput", "reprocessing", "recovery", "late", "code_size")},
        "search_on_live": bool(profile.get("search_on_live")) and data.step_ran("latency"),
        "above": ", ".join(f"{r:g}" for r in profile.get("search_ramp", []) if r > max(rates)),
        "search_ramp": profile.get("search_ramp", "?"),
        "step_s": profile.get("search_step_seconds", "?"),
        "bisections": profile.get("search_bisections", "?"),
        "rise_floor": f"{RISE_FLOOR_S:g}",
        "rise_share": f"{RISE_SHARE:.0%}",
        "rising_p": f"{RISING_P:g}",
        "min_commits": MIN_COMMITS,
        "recomputes": "; ".join(
            BUILDS[build].reprocess_summary for build in data.present("reprocessing", REPROCESSING_BUILDS)
        ),
        "kill_on_live": any(LAST_PASS_KILL in r["detail"] for r in data.select("recovery", "kill_at_s")),
        "late_fraction": profile.get("late_fraction", "?"),
        "late_corrections": ", ".join(
            f"{name}: lab {' '.join(build.correct_late)}" for name, build in BUILDS.items() if build.correct_late
        ),
    }


def environment_rows(data: RunData) -> list[list[str]]:
    env = data.environment
    machine = env.get("machine", {})
    rows = [
        ["run", data.run_id],
        ["started (UTC)", env.get("started_utc", "-")],
        ["finished (UTC)", env.get("finished_utc", "-")],
        [
            "machine",
            f"{machine.get('platform', '-')}, {machine.get('cpus', '-')} CPUs, {machine.get('memory_gib', '-')} GiB",
        ],
        [
            "load average at start / end",
            f"{machine.get('load_average_at_start', '-')} / {env.get('load_average_at_end', '-')}",
        ],
        ["Spark master", env.get("spark_master", "-")],
        ["source", env.get("source", "-")],
        ["drain input", env.get("drain_input", "-")],
        ["live input", env.get("live_input", "-")],
        ["git commit", env.get("git_commit", "-")],
    ]
    rows += [[name, str(version)] for name, version in env.get("versions", {}).items()]
    rows += [[f"setting {k}", str(v)] for k, v in env.get("settings", {}).items()]
    rows += [[f"profile {k}", str(v)] for k, v in env.get("profile", {}).items()]
    return rows


def headline(data: RunData) -> dict[str, float | None]:
    """The few numbers index.html lists per run and a comparison puts side by side."""
    figures: dict[str, float | None] = {}
    for system in data.drain_systems:
        figures[f"drain wall s: {system}"] = _median(data.spread("drain", "wall_s", system))
    for system in data.drain_systems:
        if system in ARCHITECTURES:
            figures[f"drain CPU s: {system}"] = _median(data.spread("drain", "cpu_s", system))
    if data.rates:
        top = data.rates[-1]
        for build in data.live_builds:
            figures[f"p95 latency s at {top:g}/s: {build}"] = _median(
                data.spread("latency", "latency_p95_s", build, ALL_QUERIES, top)
            )
    for build in data.present("throughput", LIVE_BUILDS):
        figures[f"sustainable lines/s: {build}"] = _median(data.spread("throughput", "sustainable_lps", build))
    sizes = reprocess_sizes(data)
    for build in data.present("reprocessing", REPROCESSING_BUILDS):
        if sizes:
            figures[f"recompute wall s at {sizes[-1]:,} lines: {build}"] = _median(
                data.spread("reprocessing", "wall_s", build, lines=sizes[-1])
            )
    for build in data.present("recovery", ARCHITECTURES):
        figures[f"recovery catch-up s: {build}"] = _median(data.spread("recovery", "catch_up_s", build))
    return figures


def verdict(data: RunData) -> str:
    failing = (
        len(equivalence(data, "drain")["failing"])
        + len(equivalence(data, "latency")["failing"])
        + len(cost_failures(data))
    )
    return "every result equals the oracle (or is explained)" if not failing else f"{failing} results differ"


# ---------------------------------------------------------------------------------------
# Sustainable throughput, reprocessing, recovery, late data, code size
# ---------------------------------------------------------------------------------------


def _last(rows: list[dict]) -> dict | None:
    return max(rows, key=lambda r: int(r["repeat"] or 0)) if rows else None


def throughput_builds(data: RunData) -> list[str]:
    return data.present("throughput", LIVE_BUILDS)


def throughput_rates(data: RunData, build: str) -> list[float]:
    return sorted({float(r["rate_lps"]) for r in data.select("throughput", "bounded", build) if r["rate_lps"]})


def knees_by_repeat(data: RunData, build: str) -> list[str]:
    """Each repeat's knee in words: the highest bounded rate, '>= N' when bounded up to the
    highest rate tried, 'below N' when unbounded at N and no lower rate judged bounded (a median over only
    the repeats that found a bounded rate would hide the others), or 'not judged'."""
    texts = []
    knee_rows = {int(r["repeat"]): r for r in data.select("throughput", "sustainable_lps", build) if r["repeat"]}
    upper = {int(r["repeat"]): number(r) for r in data.select("throughput", "unbounded_lps", build) if r["repeat"]}
    for repeat, row in sorted(knee_rows.items()):
        value = number(row)
        if value is not None:
            texts.append(f"{value:,.0f}" if repeat in upper else f">= {value:,.0f}")
        elif repeat in upper:
            texts.append(f"below {upper[repeat]:,.0f}")  # no rate below it was judged bounded
        else:
            texts.append("not judged")
    return texts


def throughput_table(data: RunData) -> dict:
    header = ["build", "sustainable lines/s per repeat", "first unbounded lines/s", "rates tried"]
    table = []
    for build in throughput_builds(data):
        knee_row = _last(data.select("throughput", "sustainable_lps", build))
        table.append(
            [
                build,
                " / ".join(knees_by_repeat(data, build)),
                spread_text(data.spread("throughput", "unbounded_lps", build), 0),
                knee_row["detail"] if knee_row else "-",
            ]
        )
    return {"header": header, "table": table}


def throughput_figure(data: RunData, metric: str, build: str, rate: float) -> Spread | None:
    """A probed rate's latency figure: from the throughput step's own probes, or from the
    latency step when its rates were the start of the search's ramp."""
    return data.spread("throughput", metric, build, ALL_QUERIES, rate) or data.spread(
        "latency", metric, build, ALL_QUERIES, rate
    )


def throughput_rate_table(data: RunData) -> dict:
    header = [
        "build",
        "rate lines/s",
        "p50 s",
        "p95 s",
        "commits",
        "commit lag trend s/min",
        "rising p",
        "bounded",
        "why",
    ]
    table = []
    for build in throughput_builds(data):
        for rate in throughput_rates(data, build):
            verdict = _last(data.select("throughput", "bounded", build, ALL_QUERIES, rate))
            table.append(
                [
                    build,
                    f"{rate:g}",
                    *[
                        spread_text(throughput_figure(data, m, build, rate), 2)
                        for m in ("latency_p50_s", "latency_p95_s")
                    ],
                    spread_text(throughput_figure(data, "commits_measured", build, rate), 0),
                    spread_text(throughput_figure(data, "commit_lag_trend_s_per_min", build, rate), 2),
                    spread_text(throughput_figure(data, "commit_lag_rising_p", build, rate), 3),
                    {"1": "yes", "0": "no"}.get(verdict["value"], "not judged") if verdict else "-",
                    verdict["detail"] if verdict else "-",
                ]
            )
    return {"header": header, "table": table}


def reprocess_sizes(data: RunData) -> list[int]:
    return sorted({int(r["input_lines"]) for r in data.rows if r["step"] == "reprocessing" and r["input_lines"]})


def reprocess_table(data: RunData) -> dict:
    header = [
        "build",
        "input lines",
        "first run wall s",
        "recompute wall s",
        "recompute CPU s",
        "peak RSS MiB",
        "inside the process s",
        "city_revenue after",
    ]
    table = []
    for build in data.present("reprocessing", REPROCESSING_BUILDS):
        for lines in reprocess_sizes(data):
            if not data.select("reprocessing", "wall_s", build, lines=lines):
                continue  # a size this build was not measured at (a follow run has no initial_wall_s)
            check = _last(data.select("reprocessing", "equivalence", build, lines=lines))
            table.append(
                [
                    build,
                    f"{lines:,}",
                    spread_text(data.spread("reprocessing", "initial_wall_s", build, lines=lines), 1),
                    spread_text(data.spread("reprocessing", "wall_s", build, lines=lines), 1),
                    spread_text(data.spread("reprocessing", "cpu_s", build, lines=lines), 1),
                    spread_text(data.spread("reprocessing", "peak_rss_mb", build, lines=lines), 0),
                    spread_text(data.spread("reprocessing", "catch_up_s", build, lines=lines), 1),
                    status_of(check) if check else "-",
                ]
            )
    return {"header": header, "table": table}


RECOVERY_TIMES = (
    ("kill_at_s", "killed at s"),
    ("restart_at_s", "restarted at s"),
    ("first_commit_after_restart_s", "restart to first commit s"),
    ("catch_up_s", "restart to caught up s"),
)


def recovery_table(data: RunData) -> dict:
    header = ["build", *[title for _, title in RECOVERY_TIMES], "lost lines", "duplicated lines", "counted in"]
    table = []
    for build in data.present("recovery", ARCHITECTURES):
        lost = {r["query"]: number(r) for r in data.select("recovery", "lost_lines", build)}
        duplicated = {r["query"]: number(r) for r in data.select("recovery", "duplicated_lines", build)}
        counted = [q for q in lost if lost[q] is not None]
        table.append(
            [
                build,
                *[spread_text(data.spread("recovery", m, build), 1) for m, _ in RECOVERY_TIMES],
                fmt(max((v for v in lost.values() if v is not None), default=None), 0),
                fmt(max((duplicated.get(q) or 0 for q in counted), default=None), 0),
                ", ".join(counted) or "no export",
            ]
        )
    return {"header": header, "table": table}


FAULTS_HEADER = ["build", "repeat", "fault", "landed at s", "outcome", "lost lines", "duplicated lines", "to recover s"]


def poison_outcomes(data: RunData, build: str) -> list[dict]:
    """Each poison file a build met (rows of step `faults`), per repeat: its name and kind,
    when it landed, when every query covered it, what that means (`outcome`), and the run's
    poison lines lost and duplicated (counted over its poison files together: `files`)."""
    one = lambda rows, metric, query=None: next(
        (number(r) for r in rows if r["metric"] == metric and (query is None or r["query"] == query)), None
    )
    found = []
    for repeat in sorted({int(r["repeat"]) for r in data.rows if r["step"] == "faults" and r["build"] == build}):
        rows = [r for r in data.rows if r["step"] == "faults" and r["build"] == build and r["repeat"] == str(repeat)]
        kill = one(
            [r for r in data.select("recovery", "kill_at_s", build) if r["repeat"] == str(repeat)], "kill_at_s"
        )  # in the same replay, when there was one
        files = [r for r in rows if r["metric"] == "landed_at_s"]
        for landed in files:
            at, covered = number(landed), one(rows, "covered_s", landed["query"])
            found.append(
                {
                    "repeat": repeat,
                    "file": landed["query"],
                    "kind": landed["detail"].split(",")[0],
                    "landed": at,
                    "covered": covered,
                    "files": len(files),
                    "lost": one(rows, "lost_lines"),
                    "duplicated": one(rows, "duplicated_lines"),
                    "outcome": "not passed by the end of the run"
                    if covered is None
                    else "quarantined, went on after the SIGKILL's restart"
                    if kill is not None and at is not None and at <= kill <= at + covered
                    else "quarantined, went on",
                }
            )
    return found


def faults_table(data: RunData) -> dict:
    """Every fault injected (experiments/harness/faults.py) with its outcome, one row each:
    the recovery step's kills and the poison files the live runs met. Landing times are in
    seconds since that replay started; to recover is restart to caught up for a kill, and
    landing to every query covering the file for a poison file."""
    table = []
    repeats = lambda step, build: sorted(
        {int(r["repeat"]) for r in data.rows if r["step"] == step and r["build"] == build and r["repeat"]}
    )
    one = lambda step, metric, build, repeat, query=None: next(
        (number(r) for r in data.select(step, metric, build, query) if r["repeat"] == str(repeat)), None
    )
    for build in ARCHITECTURES:
        for repeat in repeats("recovery", build):
            kill = next((r for r in data.select("recovery", "kill_at_s", build) if r["repeat"] == str(repeat)), None)
            if kill is None:
                continue
            counted = [
                r
                for r in data.select("recovery", "lost_lines", build)
                if r["repeat"] == str(repeat) and r["value"] != ""
            ]
            lost = max((cast(float, number(r)) for r in counted), default=None)  # a value: a number
            duplicated = max(
                (one("recovery", "duplicated_lines", build, repeat, r["query"]) or 0 for r in counted), default=None
            )
            catch_up = one("recovery", "catch_up_s", build, repeat)
            outcome = "restarted, caught up" if catch_up is not None else "restarted, never caught up"
            table.append(
                [
                    build,
                    str(repeat),
                    "SIGKILL",
                    fmt(number(kill), 1),
                    outcome,
                    fmt(lost, 0),
                    fmt(duplicated, 0),
                    fmt(catch_up, 1),
                ]
            )
        for met in poison_outcomes(data, build):
            # lost and duplicated are counted over the run's poison files together (their reasons)
            together = f" (its {met['files']} poison files)" if met["files"] > 1 else ""
            shown = lambda value, together=together: "-" if value is None else fmt(value, 0) + together
            table.append(
                [
                    build,
                    str(met["repeat"]),
                    f"{met['file']} ({met['kind']})",
                    fmt(met["landed"], 1),
                    met["outcome"],
                    shown(met["lost"]),
                    shown(met["duplicated"]),
                    fmt(met["covered"], 1),
                ]
            )
    return {"header": FAULTS_HEADER, "table": table}


LATE_COLUMNS = (
    ("counted_lines", "order lines counted (daily_revenue)"),
    ("window_lines_missing", "window pairs missing"),
    ("window_lines_extra", "window pairs extra"),
    ("window_rows_differing", "window rows differing"),
    ("window_lines_missing_after_batch", "pairs missing after its batch run"),
    ("window_rows_differing_after_batch", "rows differing after its batch run"),
)


def late_table(data: RunData) -> dict:
    header = [
        "build",
        *[title for _, title in LATE_COLUMNS],
        "dropped by the watermark (Spark)",
        "window_revenue verdict",
    ]
    table = []
    for build in data.present("late", ARCHITECTURES):
        dropped = _last(data.select("late", "watermark_dropped_rows", build, "window_revenue"))
        verdict = _last(data.select("late", "equivalence", build, "window_revenue"))
        table.append(
            [
                build,
                *[
                    spread_text(data.spread("late", m, build), 0) if data.select("late", m, build) else "-"
                    for m, _ in LATE_COLUMNS
                ],
                fmt(number(dropped), 0) if dropped is not None else "-",
                status_of(verdict) if verdict else "-",
            ]
        )
    return {"header": header, "table": table}


def late_input(data: RunData) -> dict[str, float | None]:
    return {r["metric"]: number(r) for r in data.rows if r["step"] == "late" and r["build"] == "input"}


def code_size_table(data: RunData) -> dict:
    header = [
        "build",
        "its own code lines",
        "shared code lines it imports",
        "total",
        "its own statements",
        "shared statements",
        "comment and docstring lines",
        "shared modules",
    ]
    table = []
    for build in data.present("code_size", ARCHITECTURES):
        own = _last(data.select("code_size", "code_lines", build, "build-specific"))
        shared = _last(data.select("code_size", "code_lines", build, "shared"))
        statements = [
            _last(data.select("code_size", "statements", build, part)) for part in ("build-specific", "shared")
        ]
        docs = [number(r) or 0 for r in data.select("code_size", "doc_lines", build)]
        if own is None or shared is None:
            continue
        total = (number(own) or 0) + (number(shared) or 0)
        table.append(
            [
                build,
                fmt(number(own), 0),
                fmt(number(shared), 0),
                fmt(total, 0),
                *[fmt(number(row), 0) if row else "-" for row in statements],
                fmt(sum(docs), 0),
                shared["detail"],
            ]
        )
    return {"header": header, "table": table}


def step_findings(data: RunData) -> list[str]:
    """Sentences from the throughput, reprocessing, recovery, late-data and code-size rows."""
    found = []
    knees = {b: knees_by_repeat(data, b) for b in throughput_builds(data)}
    if knees:
        parts = [f"{build} {' / '.join(texts)}" for build, texts in knees.items()]
        found.append(
            "Sustainable throughput in lines/s, per repeat (latency bounded over the whole step, files of "
            f"{data.environment.get('profile', {}).get('file_lines', '?')} lines, a search run's larger above "
            f"{data.environment.get('profile', {}).get('file_lines', 0) * UNITS_PER_SECOND} lines/s: "
            f"{UNITS_PER_SECOND} files a second; 'below N': unbounded at N, "
            "no lower rate judged bounded; '>= N': bounded up to the highest rate tried): " + ", ".join(parts) + "."
        )
    sizes = reprocess_sizes(data)
    if sizes:
        walls = {
            b: {n: _median(data.spread("reprocessing", "wall_s", b, lines=n)) for n in sizes}
            for b in data.present("reprocessing", REPROCESSING_BUILDS)
        }
        parts = []
        for build, by_size in walls.items():
            known = [(n, w) for n, w in by_size.items() if w is not None]
            if known:
                parts.append(
                    f"{build} "
                    + ", ".join(f"{w:.1f} s at {n:,} lines" for n, w in known)
                    + (
                        f" ({known[-1][1] / known[0][1]:.2f}x for {known[-1][0] / known[0][0]:.1f}x the lines)"
                        if len(known) > 1 and known[0][1]
                        else ""
                    )
                )
        if parts:
            found.append(
                "Reprocessing after the city_revenue_v1 -> city_revenue change (whole process, JVM start "
                "included): " + "; ".join(parts) + "."
            )
        wrong = [
            f"{r['build']} at {int(r['input_lines']):,} lines"
            for r in data.select("reprocessing", "equivalence")
            if status_of(r) != "identical"
        ]
        if wrong:
            found.append("The recomputed city_revenue differs from the oracle's for " + ", ".join(wrong) + ".")
    for build in data.present("recovery", ARCHITECTURES):
        # a value: a number
        lost = [cast(float, number(r)) for r in data.select("recovery", "lost_lines", build) if r["value"] != ""]
        duplicated = [
            cast(float, number(r)) for r in data.select("recovery", "duplicated_lines", build) if r["value"] != ""
        ]
        first = _median(data.spread("recovery", "first_commit_after_restart_s", build))
        catch = _median(data.spread("recovery", "catch_up_s", build))
        if lost or first is not None:
            found.append(
                f"Recovery of {build} after SIGKILL: first commit {fmt(first, 1)} s after the restart, caught "
                f"up after {fmt(catch, 1)} s; final results lost {fmt(max(lost, default=None), 0)} and "
                f"duplicated {fmt(max(duplicated, default=None), 0)} order lines (largest over the counted "
                "queries)."
            )
    poisoned = [(build, met) for build in ARCHITECTURES for met in poison_outcomes(data, build)]
    if poisoned:
        went_on = [build for build, met in poisoned if met["outcome"].startswith("quarantined, went on")]
        clean = [met for _, met in poisoned if met["lost"] == 0 and met["duplicated"] == 0]
        stuck = sorted({build for build, met in poisoned if not met["outcome"].startswith("quarantined, went on")})
        kinds = sorted({met["kind"] for _, met in poisoned})
        found.append(
            f"Poison files: the builds met {len(poisoned)} ({' and '.join(kinds)}) and went on past "
            f"{len(went_on)} of them"
            + (f" (not past them: {', '.join(stuck)})" if stuck else "")
            + f"; {len(clean)} of {len(poisoned)} with every bad line quarantined, none lost or counted "
            "twice, against the oracle."
        )
    late = late_input(data)
    if late.get("late_lines") is not None:
        parts = []
        for build in data.present("late", ARCHITECTURES):
            missing = _median(data.spread("late", "window_lines_missing", build))
            after = _median(data.spread("late", "window_lines_missing_after_batch", build))
            verdict = _last(data.select("late", "equivalence", build, "window_revenue"))
            if missing is not None:
                parts.append(
                    f"{build}'s window_revenue lacks {missing:,.0f} (line, window) pairs"
                    + (f", {after:,.0f} after its batch run" if after is not None else "")
                )
            elif verdict is not None:
                parts.append(f"{build}: window_revenue {status_of(verdict)}")
        found.append(
            f"Late data ({late['late_lines']:,.0f} of {fmt(late.get('valid_lines'), 0)} valid lines beyond "
            "the watermark): " + "; ".join(parts) + "."
        )
    sizes_table = code_size_table(data)["table"]
    if sizes_table:
        found.append(
            "Code size (lines of code, without comments and docstrings): "
            + ", ".join(f"{row[0]} {row[3]} ({row[1]} its own, {row[2]} shared)" for row in sizes_table)
            + "; in statements, which no wrapping or formatter changes, its own: "
            + ", ".join(f"{row[0]} {row[4]}" for row in sizes_table)
            + "."
        )
    return found
