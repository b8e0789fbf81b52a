"""The report: reads only a run folder's files and writes report.md, report.html and charts."""
from __future__ import annotations

import csv
import html
import json
import statistics
from pathlib import Path

from experiments.harness.verify import SPARK_BUILDS
from shared.export import QUERY_NAMES

BUILD_ORDER = ("oracle", *SPARK_BUILDS)


def _load(run_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    environment = json.loads((run_dir / "environment.json").read_text())
    with open(run_dir / "timings.csv", newline="", encoding="utf-8") as handle:
        timings = list(csv.DictReader(handle))
    repeats = sorted(run_dir.glob("equivalence-*.json"), key=lambda p: int(p.stem.split("-")[1]))
    return environment, timings, [json.loads(p.read_text()) for p in repeats]


def timing_summary(timings: list[dict]) -> list[dict]:
    """Median and spread of each build's wall time over the repeats."""
    summary = []
    for build in BUILD_ORDER:
        values = sorted(float(r["seconds"]) for r in timings if r["build"] == build)
        if values:
            summary.append({"build": build, "runs": len(values), "median": statistics.median(values),
                            "min": values[0], "max": values[-1]})
    return summary


def equivalence_cells(equivalence: dict) -> dict[tuple[str, str], str]:
    cells = {}
    for c in equivalence["comparisons"]:
        shown = c["status"] in ("DIFFERS", "explained by the watermark")
        cells[(c["query"], c["build"])] = c["status"] + (f" ({c['detail']})" if shown else "")
    return cells


def _repeat_consistency(repeats: list[dict]) -> str:
    verdicts = ["ok" if r["ok"] else "mismatch" for r in repeats]
    return ", ".join(f"repeat {i}: {v}" for i, v in enumerate(verdicts, 1))


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4))


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def timing_chart(summary: list[dict], path: Path) -> Path:
    builds = [s["build"] for s in summary]
    medians = [s["median"] for s in summary]
    lower = [s["median"] - s["min"] for s in summary]
    upper = [s["max"] - s["median"] for s in summary]
    fig, ax = _figure()
    ax.bar(builds, medians, yerr=[lower, upper], capsize=6, color=["#888888", "#1f77b4", "#ff7f0e", "#2ca02c"][: len(builds)])
    ax.set_ylabel("seconds to process the whole input")
    ax.set_title(f"Processing time per build: median, bars = min-max over {summary[0]['runs']} runs")
    return _save(fig, path)


def accounting_chart(accounting: dict, path: Path) -> Path:
    reasons = accounting["quarantine"]
    fig, ax = _figure()
    ax.barh(list(reasons), list(reasons.values()), color="#d62728")
    ax.invert_yaxis()
    ax.set_xlabel("lines")
    ax.set_title(f"Quarantined lines by reason ({accounting['quarantined_lines']:,} of {accounting['raw_lines']:,} raw)")
    return _save(fig, path)


def _md(value) -> str:
    return str(value).replace("|", "\\|")


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    environment, timings, repeats = _load(run_dir)
    summary = timing_summary(timings)
    last = repeats[-1]
    cells = equivalence_cells(last)
    oracle_accounting = last["accounting"]["oracle"]
    charts = [timing_chart(summary, run_dir / "processing_time.png"),
              accounting_chart(oracle_accounting, run_dir / "quarantine.png")]
    sections = _sections(environment, summary, last, cells, repeats, oracle_accounting)
    (run_dir / "report.md").write_text(_markdown(sections, charts), encoding="utf-8")
    (run_dir / "report.html").write_text(_html(sections, charts), encoding="utf-8")
    return run_dir / "report.md"


def _sections(environment, summary, last, cells, repeats, oracle_accounting) -> list[tuple[str, list[str] | None, list[list[str]], list[str]]]:
    """(title, table header or None, table rows, paragraphs) for each section."""
    verdict = "every produced result is byte-identical to the oracle" if last["ok"] else \
        "MISMATCHES: see the table"
    equivalence_rows = [[q, *[cells.get((q, b), "") for b in SPARK_BUILDS]] for q in QUERY_NAMES]
    accounting_rows = []
    for build in BUILD_ORDER:
        counts = last["accounting"].get(build)
        if counts:
            accounting_rows.append([build, f"{counts['raw_lines']:,}", f"{counts['valid_lines']:,}",
                                    f"{counts['quarantined_lines']:,}", "yes" if counts["balanced"] else "NO"])
        else:
            accounting_rows.append([build, "-", "-", "-", "missing"])
    timing_rows = [[s["build"], str(s["runs"]), f"{s['median']:.1f}", f"{s['min']:.1f}", f"{s['max']:.1f}"] for s in summary]
    env_rows = [
        ["started (UTC)", environment["started_utc"]],
        ["machine", f"{environment['machine']['platform']}, {environment['machine']['cpus']} CPUs, "
                    f"{environment['machine']['memory_gib']} GiB"],
        ["Spark master", environment["spark_master"]],
        *[[name, version] for name, version in environment["versions"].items()],
        ["profile", f"{environment['profile']['name']}: {environment['profile']['rows']:,} rows, seed "
                    f"{environment['profile']['seed']}, {environment['profile']['repeats']} repeats"],
        ["source", environment["source"]],
        ["input", environment["input"]],
        *[[k, str(v)] for k, v in environment["settings"].items()],
    ]
    return [
        ("Equivalence with the oracle", ["query", *SPARK_BUILDS], equivalence_rows, [
            f"Verdict (last repeat): {verdict}. Consistency over repeats: {_repeat_consistency(repeats)}.",
            "`identical` means the build's results export is byte-identical to the oracle's; "
            "`not implemented` marks what a build does not compute yet, never counted as passing.",
            *[f"Warning: {warning}" for warning in last.get("warnings", [])],  # about the input (lab verify's)
        ]),
        ("Line accounting", ["build", "raw lines", "valid", "quarantined", "raw = valid + quarantined"],
         accounting_rows, ["Every raw line is either a valid order line or quarantined with a reason."]),
        ("Processing time", ["build", "runs", "median s", "min s", "max s"], timing_rows, [
            "Wall time of one fresh run over the whole input, Spark session already started "
            "(the oracle is single-threaded Python). The machine is shared: read medians and spreads, not single runs.",
            "Latency, sustainable throughput, reprocessing, recovery and cost are not measured yet in this "
            "version of the lab.",
        ]),
        ("Environment", ["what", "value"], env_rows, []),
    ]


def _markdown(sections, charts) -> str:
    lines = ["# Lambda vs Kappa lab report", ""]
    for title, header, rows, paragraphs in sections:
        lines += [f"## {title}", ""]
        lines += [p + "\n" for p in paragraphs]
        if header:
            lines.append("| " + " | ".join(_md(h) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
            lines.append("")
    lines += ["## Charts", ""] + [f"![{c.stem}]({c.name})" for c in charts]
    return "\n".join(lines) + "\n"


def _html(sections, charts) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Lambda vs Kappa lab report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "th{background:#f3f3f3}</style></head><body><h1>Lambda vs Kappa lab report</h1>"]
    for title, header, rows, paragraphs in sections:
        parts.append(f"<h2>{e(title)}</h2>")
        parts += [f"<p>{e(p)}</p>" for p in paragraphs]
        if header:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
            parts.append("</table>")
    parts.append("<h2>Charts</h2>")
    parts += [f"<p><img src='{e(c.name)}' alt='{e(c.stem)}'></p>" for c in charts]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
