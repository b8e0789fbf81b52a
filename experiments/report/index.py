"""reports/: index.html (every run with its headline numbers), compare/<A>__<B>.html (two
runs side by side) and the `latest` symlink, replaced atomically.

    publish(run_dir)        the run's report, a comparison with the previous run of its
                            profile, the index and `latest` (what `lab experiments` ends with)
    compare(run_a, run_b)   `lab experiments compare RUN_A RUN_B`
"""

from __future__ import annotations

import os
from pathlib import Path

from experiments.report import data as D
from experiments.report.writer import template_environment, write_report

LATEST = "latest"
COMPARE_DIR = "compare"


def run_folders(reports_root: Path) -> list[Path]:
    """Every run folder under reports_root (a folder with environment.json and metrics.csv),
    newest first (run ids start with their UTC start time)."""
    root = Path(reports_root)
    found = (
        [
            p
            for p in root.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / D.ENVIRONMENT_FILE).exists() and (p / D.METRICS_FILE).exists()
        ]
        if root.is_dir()
        else []
    )
    return sorted(found, key=lambda p: p.name, reverse=True)


def _summary(data: D.RunData) -> dict:
    environment = data.environment
    return {
        "run_id": data.run_id,
        "profile": environment.get("profile", {}).get("name", "-"),
        "started": environment.get("started_utc", "-"),
        "master": environment.get("spark_master", "-"),
        "verdict": D.verdict(data),
        "figures": {k: D.fmt(v, 2) for k, v in D.headline(data).items()},
        "numbers": D.headline(data),
        "findings": D.findings(data),
    }


def write_index(reports_root: Path) -> Path:
    root = Path(reports_root)
    runs = []
    for folder in run_folders(root):
        try:
            runs.append(_summary(D.RunData.load(folder)))
        except (D.RunFolderError, ValueError, KeyError) as error:  # a half-written or foreign folder
            runs.append(
                {
                    "run_id": folder.name,
                    "profile": "-",
                    "started": "-",
                    "master": "-",
                    "verdict": f"unreadable: {error}",
                    "figures": {},
                    "numbers": {},
                    "findings": [],
                }
            )
    figures = []
    for run in runs:
        figures += [f for f in run["figures"] if f not in figures]
    comparisons = (
        sorted((p.name for p in (root / COMPARE_DIR).glob("*.html")), reverse=True)
        if (root / COMPARE_DIR).is_dir()
        else []
    )
    path = root / "index.html"
    path.write_text(
        template_environment().get_template("index.html").render(runs=runs, figures=figures, comparisons=comparisons),
        encoding="utf-8",
    )
    return path


def point_latest(reports_root: Path, run_dir: Path) -> Path:
    """reports/latest -> the run folder, replaced in one rename (readers never see it missing)."""
    link = Path(reports_root) / LATEST
    temporary = link.with_name(f".{LATEST}.{os.getpid()}")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(Path(run_dir).name, temporary)
    os.replace(temporary, link)
    return link


def compare(run_a: str | Path, run_b: str | Path, reports_root: Path | None = None) -> Path:
    """A page with both runs' headline figures side by side, and the ratio B / A."""
    a, b = D.RunData.load(run_a), D.RunData.load(run_b)
    root = Path(reports_root) if reports_root else Path(run_b).resolve().parent
    first, second = _summary(a), _summary(b)
    rows = []
    for figure in list(dict.fromkeys([*first["numbers"], *second["numbers"]])):
        x, y = first["numbers"].get(figure), second["numbers"].get(figure)
        rows.append([figure, D.fmt(x, 2), D.fmt(y, 2), f"{y / x:.2f}x" if x and y is not None else "-"])
    folder = root / COMPARE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{a.run_id}__{b.run_id}.html"
    path.write_text(
        template_environment().get_template("compare.html").render(a=first, b=second, rows=rows), encoding="utf-8"
    )
    write_index(root)
    return path


def publish(run_dir: str | Path) -> Path:
    """The run's report, a comparison with the previous run of the same profile, the index,
    and `latest`; returns the report.html path."""
    run_dir = Path(run_dir).resolve()
    root = run_dir.parent
    write_report(run_dir)
    profile = D.RunData.load(run_dir).environment.get("profile", {}).get("name")
    earlier = [
        p
        for p in run_folders(root)
        if p.name < run_dir.name and D.RunData.load(p).environment.get("profile", {}).get("name") == profile
    ]
    if earlier:
        compare(earlier[0], run_dir, root)
    write_index(root)
    point_latest(root, run_dir)
    return run_dir / "report.html"
