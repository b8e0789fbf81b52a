"""The report's charts (matplotlib, Agg backend): each one a PNG file in the run folder's
charts/ and the same bytes as a base64 data URI for the self-contained report.html.

Bars and points come from metrics.csv rows (through RunData); the latency CDF and the
latency-over-time chart plot the per-unit files under latency/.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402

from experiments.harness.builds import BUILDS  # noqa: E402
from experiments.harness.run_folder import ALL_QUERIES  # noqa: E402
from experiments.report.data import RunData, cost_models  # noqa: E402

# The builds in their registry colours; the floors and baselines in theirs.
COLOURS = {
    **{name: build.colour for name, build in BUILDS.items()},
    "passthrough": "#7f7f7f",
    "passthrough_delta": "#bcbd22",
    "spark_batch": "#9467bd",
    "duckdb": "#8c564b",
    "oracle": "#444444",
}


@dataclass(frozen=True)
class Chart:
    name: str  # file stem under charts/
    title: str
    caption: str
    png: bytes

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def file(self) -> str:
        return f"charts/{self.name}.png"


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _colour(build: str) -> str:
    return COLOURS.get(build, "#17becf")


def drain_time_chart(data: RunData) -> Chart | None:
    systems = [s for s in data.drain_systems if data.by_repeat("drain", "wall_s", s)]
    if not systems:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, system in enumerate(systems):
        values = data.by_repeat("drain", "wall_s", system)
        spread = data.spread("drain", "wall_s", system)
        assert spread is not None  # systems have values
        ax.bar(
            i,
            spread.median,
            color=_colour(system),
            alpha=0.7,
            yerr=[[spread.median - spread.low], [spread.high - spread.median]],
            capsize=6,
        )
        ax.scatter([i] * len(values), list(values.values()), color="black", s=12, zorder=3)
    ax.set_xticks(range(len(systems)), systems)
    ax.set_ylabel("wall seconds, whole process")
    ax.set_title(f"Drain time: median, bars min-max, dots each repeat ({data.repeats} repeats)")
    return Chart(
        "drain_time",
        "Drain time with its spread",
        "Each system's drain of the same input in its own process; bar = median, whiskers = min-max, "
        "dots = each repeat (metrics.csv: step drain, metric wall_s).",
        _png(fig),
    )


def cost_chart(data: RunData) -> Chart | None:
    systems = [s for s in data.drain_systems if data.by_repeat("drain", "cpu_s", s)]
    live = [b for b in data.live_builds if data.by_repeat("latency", "cpu_s", b)]
    if not systems and not live:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, label in (
        (axes[0], "cpu_s", "CPU seconds (process tree)"),
        (axes[1], "peak_rss_mb", "peak RSS MiB (process tree)"),
    ):
        names, medians, lows, highs, colours = [], [], [], [], []
        for step, builds, suffix in (("drain", systems, ""), ("latency", live, " live")):
            for build in builds:
                spread = data.spread(step, metric, build)
                if spread is None:
                    continue
                names.append(build + suffix)
                medians.append(spread.median)
                lows.append(spread.median - spread.low)
                highs.append(spread.high - spread.median)
                colours.append(_colour(build))
        ax.barh(range(len(names)), medians, xerr=[lows, highs], color=colours, alpha=0.8, capsize=4)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    fig.suptitle("Cost: drains, and the live runs (whole follow process)")
    return Chart(
        "cost",
        "Cost",
        "CPU seconds and peak resident memory of each process tree, median with min-max "
        "(metrics.csv: metrics cpu_s and peak_rss_mb, steps drain and latency).",
        _png(fig),
    )


def cost_model_chart(data: RunData) -> Chart | None:
    """Wall time against input size on log-log axes: each run a point, each system's fitted line."""
    models = cost_models(data)
    if not models:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for system, model in models.items():
        lines = np.array([p.lines for p in model.points], dtype=float)
        ax.scatter(lines, [p.wall_s for p in model.points], color=_colour(system), s=18, zorder=3)
        xs = np.geomspace(lines.min(), lines.max(), 50)
        label = f"{system}: {model.fixed_s:.1f} s + {model.per_line_us:.1f} s per million lines"
        ax.plot(xs, [model.wall_at(x) for x in xs], color=_colour(system), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input lines")
    ax.set_ylabel("wall seconds of the whole process")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return Chart(
        "cost_model",
        "Cost model",
        "each drain run's wall time (a point) against its input lines, and each system's least-squares line "
        "wall = fixed + per line x lines (metrics.csv: wall_s of steps drain and cost; the line: fixed_s and "
        "per_line_us of step drain).",
        _png(fig),
    )


def _measured_units(data: RunData, build: str, rate: float | None = None) -> list[dict]:
    rows = []
    for (b, _repeat), units in sorted(data.units.items()):
        if b != build:
            continue
        rows += [
            u
            for u in units
            if u["query"] == ALL_QUERIES
            and u["warmup"] == "0"
            and u["latency_s"] != ""
            and (rate is None or float(u["rate_lps"]) == rate)
        ]
    return rows


def latency_cdf_chart(data: RunData) -> Chart | None:
    rates = data.rates
    if not rates or not data.units:
        return None
    fig, axes = plt.subplots(1, len(rates), figsize=(4 * len(rates), 3.8), sharey=True, squeeze=False)
    for ax, rate in zip(axes[0], rates):
        for build in data.live_builds:
            values = np.sort([float(u["latency_s"]) for u in _measured_units(data, build, rate)])
            if len(values):
                ax.step(
                    values, np.arange(1, len(values) + 1) / len(values), where="post", label=build, color=_colour(build)
                )
        ax.set_title(f"{rate:g} lines/s")
        ax.set_xlabel("latency s (every query visible)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction of units")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    return Chart(
        "latency_cdf",
        "Latency CDF per build",
        "Per rate, the share of units visible in every query within a latency, warm-up dropped, all "
        "repeats pooled (latency/*.csv, query 'all').",
        _png(fig),
    )


def latency_over_time_chart(data: RunData) -> Chart | None:
    builds = [b for b in data.live_builds if any(k[0] == b for k in data.units)]
    if not builds:
        return None
    fig, axes = plt.subplots(len(builds), 1, figsize=(9, 2.3 * len(builds)), sharex=True, squeeze=False)
    for ax, build in zip(axes[:, 0], builds):
        repeats = sorted(r for b, r in data.units if b == build)
        for repeat in repeats:
            units = [u for u in data.units[(build, repeat)] if u["query"] == ALL_QUERIES]
            covered = [u for u in units if u["latency_s"] != ""]
            ax.plot(
                [float(u["intended_s"]) for u in covered],
                [float(u["latency_s"]) for u in covered],
                ".",
                markersize=3,
                color=_colour(build),
                alpha=0.8 if repeat == repeats[-1] else 0.35,
                label=f"repeat {repeat}",
            )
            uncovered = [u for u in units if u["latency_s"] == ""]
            if uncovered:
                top = max((float(u["latency_s"]) for u in covered), default=1.0)
                ax.plot(
                    [float(u["intended_s"]) for u in uncovered],
                    [top] * len(uncovered),
                    "x",
                    color="red",
                    markersize=4,
                    label="never visible",
                )
        _shade_steps(ax, data, build)
        for handoff in data.select("latency", "handoff_at", build):
            start = _replay_start(data, build, int(handoff["repeat"]))
            if start is not None:
                ax.axvline(float(handoff["value"]) - start, color="black", linestyle="--", linewidth=0.8)
        ax.set_ylabel(f"{build}\nlatency s")
        ax.grid(alpha=0.3)
    axes[-1][0].set_xlabel("intended emission time, s since the replay started")
    return Chart(
        "latency_over_time",
        "Latency over time",
        "Each unit's latency (every query visible) at its intended emission time; shaded bands are the rate "
        "steps, red crosses units never visible, dashed lines Lambda's handoffs to a new batch cutoff "
        "(from its log, +-1 s).",
        _png(fig),
    )


def _replay_start(data: RunData, build: str, repeat: int) -> float | None:
    import json

    path = data.path / "replay" / f"{build}-r{repeat}.json"
    return float(json.loads(path.read_text(encoding="utf-8"))["start_epoch_s"]) if path.exists() else None


def _shade_steps(ax, data: RunData, build: str) -> None:
    import json

    paths = sorted((data.path / "replay").glob(f"{build}-r*.json"))
    if not paths:
        return
    summary = json.loads(paths[-1].read_text(encoding="utf-8"))
    for phase in summary.get("rate_steps") or []:
        end = phase["start_s"] + phase["lines"] / phase["rate"]
        ax.axvspan(phase["start_s"], end, color="#dddddd" if phase["step"] % 2 else "#eeeeee", zorder=0)
        ax.text(phase["start_s"], 1.0, f"{phase['rate']:g}/s", transform=ax.get_xaxis_transform(), fontsize=7, va="top")


def latency_vs_rate_chart(data: RunData) -> Chart | None:
    rates = data.rates
    if not rates:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for build in data.live_builds:
        for metric, style in (("latency_p50_s", "-o"), ("latency_p95_s", "--s")):
            xs, ys, lows, highs = [], [], [], []
            for rate in rates:
                spread = data.spread("latency", metric, build, ALL_QUERIES, rate)
                if spread is not None:
                    xs.append(rate)
                    ys.append(spread.median)
                    lows.append(spread.median - spread.low)
                    highs.append(spread.high - spread.median)
            if xs:
                ax.errorbar(
                    xs,
                    ys,
                    yerr=[lows, highs],
                    fmt=style,
                    color=_colour(build),
                    capsize=3,
                    label=f"{build} {metric.split('_')[1]}",
                )
    ax.set_xscale("log")
    ax.set_xticks(rates, [f"{r:g}" for r in rates])
    ax.set_xlabel("input rate, lines per second")
    ax.set_ylabel("latency s (every query visible)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    ax.set_title("Latency against rate: p50 (solid) and p95 (dashed), median over repeats, min-max")
    return Chart(
        "latency_vs_rate",
        "Latency against rate",
        "p50 and p95 per build and rate (metrics.csv: step latency, query 'all'); where a curve turns up, "
        "the build stops keeping up.",
        _png(fig),
    )


def throughput_chart(data: RunData) -> Chart | None:
    from experiments.report.data import throughput_builds, throughput_figure, throughput_rates

    builds = [b for b in throughput_builds(data) if throughput_rates(data, b)]
    if not builds:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for build in builds:
        rates, p95, states = [], [], []
        for rate in throughput_rates(data, build):
            spread = throughput_figure(data, "latency_p95_s", build, rate)
            verdicts = data.select("throughput", "bounded", build, ALL_QUERIES, rate)
            if spread is None:
                continue
            rates.append(rate)
            p95.append(spread.median)
            states.append(verdicts[-1]["value"] if verdicts else "")
        ax.plot(rates, p95, "-", color=_colour(build), alpha=0.6)
        for state, marker, label in (("1", "o", "bounded"), ("0", "x", "unbounded"), ("", "s", "not judged")):
            xs = [r for r, s in zip(rates, states) if s == state]
            ys = [v for v, s in zip(p95, states) if s == state]
            if xs:
                ax.scatter(xs, ys, marker=marker, color=_colour(build), s=40, label=f"{build} {label}")
        knee = data.spread("throughput", "sustainable_lps", build)
        if knee is not None:
            ax.axvline(knee.median, color=_colour(build), linestyle="--", linewidth=1)
            ax.text(
                knee.median,
                1.0,
                f" {build} knee {knee.median:,.0f}/s",
                color=_colour(build),
                fontsize=7,
                transform=ax.get_xaxis_transform(),
                va="top",
                rotation=90,
            )
    ax.set_xscale("log")
    every = sorted({r for build in builds for r in throughput_rates(data, build)})
    ax.set_xticks(every, [f"{r:g}" for r in every])
    ax.minorticks_off()
    ax.set_xlabel("input rate, lines per second (log)")
    ax.set_ylabel("p95 latency s (every query visible)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Sustainable throughput: latency against rate, knee dashed")
    return Chart(
        "throughput",
        "Latency against rate, with the knee",
        "p95 latency of each probed rate (metrics.csv: latency_p95_s of step throughput, or of step latency "
        "for the rates the latency step measured); o bounded, x "
        "unbounded (the lag of the commits kept rising or units never visible), squares not judged (too few "
        "commits in the step, or a stall); the dashed line is "
        "the highest bounded rate below the first unbounded one (sustainable_lps).",
        _png(fig),
    )


def reprocessing_chart(data: RunData) -> Chart | None:
    from experiments.harness.builds import REPROCESSING_BUILDS
    from experiments.report.data import reprocess_sizes

    sizes = reprocess_sizes(data)
    builds = data.present("reprocessing", REPROCESSING_BUILDS)
    if not sizes or not builds:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for build in builds:
        for metric, style, label in (("wall_s", "-o", "recompute"), ("initial_wall_s", ":^", "first run")):
            spreads = [(n, data.spread("reprocessing", metric, build, lines=n)) for n in sizes]
            points = [(n, s) for n, s in spreads if s is not None]
            if points:
                ax.errorbar(
                    [n for n, _ in points],
                    [s.median for _, s in points],
                    yerr=[[s.median - s.low for _, s in points], [s.high - s.median for _, s in points]],
                    fmt=style,
                    color=_colour(build),
                    capsize=3,
                    label=f"{build} {label}",
                )
    ax.set_xlabel("input lines")
    ax.set_ylabel("wall seconds, whole process")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Reprocessing city_revenue_v1 -> city_revenue against input size")
    return Chart(
        "reprocessing",
        "Reprocessing time against input size",
        "Lambda's batch recompute and Kappa's replay into v2, each in its own process (solid), beside the "
        "build's first run on the same input (dotted) (metrics.csv: step reprocessing, wall_s and "
        "initial_wall_s).",
        _png(fig),
    )


def recovery_chart(data: RunData) -> Chart | None:
    import csv

    from experiments.report.data import ARCHITECTURES

    runs = sorted((data.path / "recovery").glob("*-r*.csv")) if (data.path / "recovery").is_dir() else []
    builds = [b for b in ARCHITECTURES if any(p.stem.rpartition("-r")[0] == b for p in runs)]
    if not builds:
        return None
    fig, axes = plt.subplots(len(builds), 1, figsize=(10.5, 2.6 * len(builds)), squeeze=False)
    for ax, build in zip(axes[:, 0], builds):
        path = max(p for p in runs if p.stem.rpartition("-r")[0] == build)
        repeat = int(path.stem.rpartition("-r")[2])
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for series, style, label in (
            ("emitted", "-", "lines emitted (intended time)"),
            ("committed", "-", "lines in every query's results"),
        ):
            points = [(float(r["t_s"]), int(r["seq"])) for r in rows if r["series"] == series]
            if points:
                ax.step(
                    [t for t, _ in points],
                    [q for _, q in points],
                    style,
                    where="post",
                    label=label,
                    color="#999999" if series == "emitted" else _colour(build),
                )
        marks = {m: data.select("recovery", m, build) for m in ("kill_at_s", "restart_at_s")}
        at = {
            m: next((float(r["value"]) for r in rows_ if int(r["repeat"]) == repeat and r["value"]), None)
            for m, rows_ in marks.items()
        }
        replay_end = next(
            (
                float(r["value"])
                for r in data.select("recovery", "replay_end_s", build)
                if int(r["repeat"]) == repeat and r["value"]
            ),
            None,
        )
        if replay_end is not None:
            ax.axvspan(0, replay_end, color="#eeeeee", zorder=0, label="replay emitting")
        for metric, colour, label in (("kill_at_s", "red", "SIGKILL"), ("restart_at_s", "black", "restart")):
            if at[metric] is not None:
                ax.axvline(at[metric], color=colour, linestyle="--", linewidth=1, label=label)
        if at["restart_at_s"] is not None:
            for metric, colour, label in (
                ("first_commit_after_restart_s", "#2ca02c", "first commit"),
                ("catch_up_s", "#9467bd", "caught up"),
            ):
                value = next(
                    (
                        float(r["value"])
                        for r in data.select("recovery", metric, build)
                        if int(r["repeat"]) == repeat and r["value"]
                    ),
                    None,
                )
                if value is not None:
                    ax.axvline(at["restart_at_s"] + value, color=colour, linestyle=":", linewidth=1.2, label=label)
        ax.set_ylabel(f"{build}\nline seq")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))  # beside: the lines fill the plot
    axes[-1][0].set_xlabel("seconds since the replay started")
    return Chart(
        "recovery",
        "Recovery timeline",
        "Lines emitted by the open-loop replayer and lines every query's results include (recovery/*.csv, "
        "from the replay log and the commit log), with the SIGKILL, the restart, the first commit after "
        "it and the moment the backlog was caught up (metrics.csv: step recovery).",
        _png(fig),
    )


def quarantine_chart(reasons: dict[str, float]) -> Chart | None:
    if not reasons:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.barh(list(reasons), list(reasons.values()), color="#d62728")
    ax.invert_yaxis()
    ax.set_xlabel("lines")
    ax.set_title(f"Quarantined lines of the drain input by reason ({sum(reasons.values()):,.0f} in all, oracle)")
    return Chart(
        "quarantine",
        "Quarantined lines by reason",
        "The oracle's count of each quarantine reason (metrics.csv: metric quarantine).",
        _png(fig),
    )


def anatomy_chart(data: RunData) -> Chart | None:
    """One stacked bar per build and streaming query: the median ms of each part of its live
    micro-batches, the floors first."""
    anatomy = data.anatomy()
    if not anatomy:
        return None
    labels = [f"{build} / {query}" for build, query in anatomy]
    parts = sorted(
        {part for parts in anatomy.values() for part in parts}, key=lambda p: (p.startswith("sink_"), p == "other", p)
    )
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(parts), 2)))
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 0.3 * (len(parts) // 4 + 1) + 2.0))
    left = np.zeros(len(labels))
    for part, colour in zip(parts, colours):
        widths = np.array([parts_of.get(part, 0.0) / 1000 for parts_of in anatomy.values()])
        ax.barh(labels, widths, left=left, color=colour, label=part.replace("_", " "))
        left += widths
    ax.invert_yaxis()
    ax.set_xlabel("seconds per micro-batch (median of each part over the measured passes)")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))  # below: no bar hidden
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Anatomy of a live micro-batch")
    return Chart(
        "latency_anatomy",
        "Anatomy of a live micro-batch",  # in the latency section
        "Per build and streaming query, where a micro-batch of the latency step's measured passes spends "
        "its time: Spark's progress reports (find input = listing the landing directory, plan, offsets "
        "log, sink, checkpoint commit) with the sink split into the build's own timed steps (sink ...); "
        "DStream's batches are its timed steps. The two pass-throughs are the floors (metrics.csv: "
        "step latency, metrics batch_<part>_ms).",
        _png(fig),
    )


def all_charts(data: RunData, reasons: dict[str, float]) -> list[Chart]:
    charts = [
        latency_cdf_chart(data),
        latency_over_time_chart(data),
        latency_vs_rate_chart(data),
        anatomy_chart(data),
        drain_time_chart(data),
        cost_chart(data),
        cost_model_chart(data),
        quarantine_chart(reasons),
        throughput_chart(data),
        reprocessing_chart(data),
        recovery_chart(data),
    ]
    return [c for c in charts if c is not None]


def save(charts: list[Chart], run_dir: Path) -> None:
    folder = Path(run_dir) / "charts"
    folder.mkdir(exist_ok=True)
    for chart in charts:
        (folder / f"{chart.name}.png").write_bytes(chart.png)
