"""The report's soak section (the soak profile, experiments/harness/soak_step.py): per build and
5-minute window its latency, memory, CPU and Delta files, the two verdicts against their
targets, the export against the oracle, and one chart. Every figure is a `soak` row of
metrics.csv (the window's number is the row's `repeat`)."""

from __future__ import annotations

from experiments.harness.builds import ARCHITECTURES
from experiments.harness.run_folder import ALL_QUERIES
from experiments.harness.soak_figures import NEVER_VISIBLE, P99_GROWTH_MAX, RSS_GROWTH_MAX, STEP
from experiments.report.charts import Chart, _colour, _png, plt
from experiments.report.data import RunData, fmt, number, status_of

FAILING = ("DIFFERS", "MISSING", "not compared")


def soak_builds(data: RunData) -> list[str]:
    return data.present(STEP, ARCHITECTURES)


def _by_window(data: RunData, metric: str, build: str, query: str | None = None) -> dict[int, float]:
    return {
        int(r["repeat"]): float(r["value"])
        for r in data.select(STEP, metric, build, query)
        if r["value"] != "" and r["repeat"]
    }


def _files_by_window(data: RunData, build: str) -> dict[int, tuple[int, str, int]]:
    """window -> (files over every table, the table with most, its files)."""
    tables: dict[int, dict[str, int]] = {}
    for r in data.select(STEP, "delta_files", build):
        if r["value"] != "" and r["repeat"]:
            tables.setdefault(int(r["repeat"]), {})[r["query"]] = int(float(r["value"]))
    return {k: (sum(t.values()), *max(t.items(), key=lambda item: item[1])) for k, t in sorted(tables.items()) if t}


def _value(data: RunData, metric: str, build: str) -> tuple[float | None, str]:
    rows = data.select(STEP, metric, build)
    return (number(rows[-1]), rows[-1]["detail"]) if rows else (None, "")


def _export(data: RunData, build: str) -> str:
    rows = data.select(STEP, "equivalence", build)
    if not rows:
        return "not compared"
    failing = [f"{r['query']} {status_of(r)}" for r in rows if status_of(r) in FAILING]
    return "; ".join(failing) if failing else "identical to the oracle"


def _p99_cell(ratio: float | None, words: str) -> str:
    if ratio is not None:
        return f"{ratio:.2f}x, " + ("met" if ratio <= P99_GROWTH_MAX else "NOT met")
    return f"NOT met: {words.split(';')[0]}" if NEVER_VISIBLE in words else "-"


def verdict_table(data: RunData) -> dict:
    header = [
        "build",
        "rate lines/s",
        "windows",
        f"p99 last / first window (target <= {P99_GROWTH_MAX:g})",
        f"memory growth after window 1 (target < {RSS_GROWTH_MAX:.0%})",
        "Delta files at the end (largest table)",
        "export",
    ]
    table = []
    for build in soak_builds(data):
        rate, source = _value(data, "soak_rate_lps", build)
        p99, p99_words = _value(data, "p99_growth", build)
        rss, _ = _value(data, "rss_growth", build)
        files = _files_by_window(data, build)
        last = files[max(files)] if files else None
        table.append(
            [
                build,
                f"{fmt(rate, 1)} ({source})",
                str(len(_by_window(data, "units", build, ALL_QUERIES))),
                _p99_cell(p99, p99_words),
                "-" if rss is None else f"{rss:+.1%}, " + ("met" if rss < RSS_GROWTH_MAX else "NOT met"),
                "-" if last is None else f"{last[0]:,} ({last[1]}: {last[2]:,})",
                _export(data, build),
            ]
        )
    return {"header": header, "table": table}


def window_table(data: RunData) -> dict:
    header = ["build", "window", "units", "p50 s", "p99 s", "RSS MiB (median)", "CPU cores", "Delta files"]
    table = []
    for build in soak_builds(data):
        units = _by_window(data, "units", build, ALL_QUERIES)
        p50, p99 = _by_window(data, "latency_p50_s", build), _by_window(data, "latency_p99_s", build)
        rss, cpu = _by_window(data, "rss_mb", build), _by_window(data, "cpu_cores", build)
        files = _files_by_window(data, build)
        for k in sorted(units):
            table.append(
                [
                    build,
                    str(k),
                    fmt(units.get(k), 0),
                    fmt(p50.get(k)),
                    fmt(p99.get(k)),
                    fmt(rss.get(k), 0),
                    fmt(cpu.get(k)),
                    fmt(files[k][0], 0) if k in files else "-",
                ]
            )
    return {"header": header, "table": table}


def soak_findings(data: RunData) -> list[str]:
    found = []
    minutes = data.environment.get("profile", {}).get("soak_window_s", 300) / 60
    for build in soak_builds(data):
        rate, _ = _value(data, "soak_rate_lps", build)
        p99, p99_words = _value(data, "p99_growth", build)
        rss, rss_words = _value(data, "rss_growth", build)
        windows = len(_by_window(data, "units", build, ALL_QUERIES))
        parts = [f"Soak, {build} at {fmt(rate, 1)} lines/s over {windows} windows of {minutes:g} min"]
        if p99 is not None:
            parts.append(
                f"p99 {'held' if p99 <= P99_GROWTH_MAX else 'did NOT hold'}: {p99_words.split(';')[0]} = {p99:.2f}x"
            )
        elif NEVER_VISIBLE in p99_words:
            parts.append(f"latency did NOT hold: {p99_words.split(';')[0]}")
        if rss is not None:
            parts.append(f"memory {'held' if rss < RSS_GROWTH_MAX else 'grew'}: {rss_words.split(';')[0]} = {rss:+.1%}")
        parts.append(f"export {_export(data, build)}")
        found.append("; ".join(parts) + ".")
    return found


def soak_chart(data: RunData) -> Chart | None:
    builds = soak_builds(data)
    if not builds:
        return None
    window_min = data.environment.get("profile", {}).get("soak_window_s", 300) / 60
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    panels = (
        (axes[0][0], "latency s (every query visible)"),
        (axes[0][1], "resident memory MiB (median)"),
        (axes[1][0], "CPU cores used"),
        (axes[1][1], "files in the build's Delta tables"),
    )
    for build in builds:
        colour = _colour(build)
        at = lambda values: ([k * window_min for k in sorted(values)], [values[k] for k in sorted(values)])
        p50, p99 = _by_window(data, "latency_p50_s", build), _by_window(data, "latency_p99_s", build)
        axes[0][0].plot(*at(p50), color=colour, marker="o", label=f"{build} p50")
        axes[0][0].plot(*at(p99), color=colour, marker="o", linestyle="--", label=f"{build} p99")
        axes[0][1].plot(*at(_by_window(data, "rss_mb", build)), color=colour, marker="o", label=build)
        axes[1][0].plot(*at(_by_window(data, "cpu_cores", build)), color=colour, marker="o", label=build)
        files = {k: v[0] for k, v in _files_by_window(data, build).items()}
        axes[1][1].plot(*at(files), color=colour, marker="o", label=build)
    for ax, label in panels:
        ax.set_ylabel(label)
        ax.set_xlabel("minutes into the replay (end of each window)")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=7)
    axes[0][1].legend(fontsize=7)
    return Chart(
        "soak",
        "Soak",
        f"per {window_min:g}-minute window of each build's soak: p50 and p99 latency of the window's units, the "
        "median resident memory and the CPU cores of the follow process's tree, and the data files of its Delta "
        "tables at the window's last sample (metrics.csv: step soak, the window in repeat).",
        _png(fig),
    )
