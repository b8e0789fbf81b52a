"""The report: reads only a run folder's files and writes report.md, a self-contained
report.html (charts embedded as data URIs) and the charts as PNG files beside them.

    write_report(run_dir)    # also `lab experiments report RUN_DIR`

Templates (Jinja2, autoescaped for HTML: every string from data is escaped) are in
experiments/report/templates/.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from experiments.report import charts as C
from experiments.report import data as D
from experiments.report import soak as S
from experiments.report.scorecard import scorecard

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _md(value) -> str:
    """A string safe in a markdown table cell or list item."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _md_table(table: dict) -> str:
    if not table or not table.get("table"):
        return "_Not measured in this run._"
    lines = ["| " + " | ".join(_md(h) for h in table["header"]) + " |", "|" + "---|" * len(table["header"])]
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table["table"]]
    return "\n".join(lines)


def template_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["md"] = _md
    environment.filters["mdtable"] = _md_table
    return environment


def methods(data: D.RunData) -> list[tuple[str, str]]:
    """How each figure is measured: (name, text) pairs from templates/methods.txt."""
    text = template_environment().get_template("methods.txt").render(**D.method_context(data))
    pairs = []
    for block in text.split("## ")[1:]:
        name, _, body = block.partition("\n")
        pairs.append((name.strip(), " ".join(line.strip() for line in body.splitlines() if line.strip())))
    return pairs


def watermark_table(data: D.RunData) -> dict | None:
    rows = data.select("drain", "watermark_dropped_rows")
    if not rows:
        return None
    return {
        "header": ["build", "streaming query", "repeat", "rows dropped"],
        "table": [[r["build"], r["query"], r["repeat"], D.fmt(D.number(r), 0)] for r in rows],
    }


def context(data: D.RunData) -> dict:
    accounting = D.accounting_table(data)
    charts = C.all_charts(data, accounting["reasons"]) + [c for c in (S.soak_chart(data),) if c]
    environment = data.environment
    profile = environment.get("profile", {})
    return {
        "run_id": data.run_id,
        "profile_name": environment.get("profile", {}).get("name", "-"),
        "repeats": data.repeats,
        "spark_master": environment.get("spark_master", "-"),
        "findings": D.findings(data) + S.soak_findings(data) or ["Nothing was measured in this run folder yet."],
        "scorecard": scorecard(data),
        "eq_drain": D.equivalence(data, "drain"),
        "eq_live": D.equivalence(data, "latency"),
        "watermark": watermark_table(data),
        "latency": D.latency_table(data),
        "latency_per_query": D.per_query_latency_table(data),
        "live_cost": D.live_cost_table(data),
        "drain": D.drain_table(data),
        "cost_model": D.cost_table(data),
        "cost_failures": D.cost_failures(data),
        "cost_ran": data.step_ran("cost"),
        "profile": D.profile_table(data),
        "accounting": accounting,
        "charts": charts,
        "methods": methods(data),
        "not_measured": D.not_measured(data),
        "throughput": D.throughput_table(data),
        "throughput_rates": D.throughput_rate_table(data),
        "reprocessing": D.reprocess_table(data),
        "recovery": D.recovery_table(data),
        "faults": D.faults_table(data),
        "recovery_details": [
            f"{r['build']}, {r['query']}: {r['metric'].replace('_', ' ')} {r['value'] or '-'} ({r['detail']})"
            for r in data.rows
            if r["step"] == "recovery" and r["metric"] in ("lost_lines", "duplicated_lines")
        ],
        "late": D.late_table(data),
        "late_input": {k: D.fmt(v, 0) for k, v in D.late_input(data).items()},
        "late_details": [
            f"{r['build']}, {r['query']}: {r['detail']}"
            for r in data.select("late", "equivalence")
            if D.status_of(r) != "identical"
        ],
        "code_size": D.code_size_table(data),
        "soak_ran": data.step_ran("soak"),
        "soak_verdicts": S.verdict_table(data),
        "soak_windows": S.window_table(data),
        "soak_minutes": f"{float(profile.get('soak_seconds', 0)) / 60:g}",
        "soak_window": f"{float(profile.get('soak_window_s', 0)) / 60:g}",
        "soak_sample": f"{float(profile.get('soak_sample_s', 0)):g}",
        "environment": D.environment_rows(data),
        "warmup_s": environment.get("profile", {}).get("warmup_s", "-"),
        "drain_lines": D.fmt(data.drain_input_lines, 0),
    }


def write_report(run_dir: str | Path) -> Path:
    """Write report.md, report.html and charts/*.png from the run folder; returns report.md."""
    run_dir = Path(run_dir).resolve()  # reports/latest names its run by the folder it points at
    data = D.RunData.load(run_dir)
    values = context(data)
    C.save(values["charts"], run_dir)
    templates = template_environment()
    (run_dir / "report.md").write_text(templates.get_template("report.md").render(values), encoding="utf-8")
    (run_dir / "report.html").write_text(templates.get_template("report.html").render(values), encoding="utf-8")
    return run_dir / "report.md"
