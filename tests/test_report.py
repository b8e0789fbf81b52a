"""The report step reads only the run folder: its figures come from metrics.csv rows,
strings from data are escaped in HTML, the charts are embedded, and reports/ gets an index,
comparisons and a `latest` link. (No Spark: a synthetic run folder, tests/synthetic_run.py.)"""

from __future__ import annotations

import re
import shutil
import statistics

import pytest

from experiments.harness.run_folder import METRICS_COLUMNS, RunFolder
from experiments.report import data as D
from experiments.report.index import compare, publish, write_index
from experiments.report.writer import write_report
from tests.synthetic_run import HOSTILE, RATES, WALLS, write_run


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "reports")


def test_metrics_csv_is_tidy_and_has_one_header(run):
    lines = run.metrics_path.read_text().splitlines()
    assert lines[0] == ",".join(METRICS_COLUMNS)
    assert sum(1 for line in lines if line.startswith("run_id,")) == 1
    rows = run.metrics()
    assert {r["run_id"] for r in rows} == {run.run_id}
    assert {r["step"] for r in rows} == {"drain", "latency", "profile"}


def test_drain_figures_are_medians_and_per_repeat_ratios_of_the_rows(run):
    data = D.RunData.load(run.path)
    table = {row[0]: row for row in D.drain_table(data)["table"]}
    kappa_median = statistics.median(WALLS["kappa"])
    assert table["kappa"][2] == f"{kappa_median:.1f} ({min(WALLS['kappa']):.1f}-{max(WALLS['kappa']):.1f}, n=3)"
    ratios = sorted(k / b for k, b in zip(WALLS["kappa"], WALLS["spark_batch"]))
    assert table["kappa"][5] == f"{ratios[1]:.2f}x ({ratios[0]:.2f}-{ratios[2]:.2f}, n=3)"


def test_latency_percentiles_come_from_the_rows_of_each_rate(run):
    data = D.RunData.load(run.path)
    assert data.rates == list(RATES)
    p95 = [float(r["value"]) for r in data.select("latency", "latency_p95_s", "kappa", "all", RATES[-1])]
    assert len(p95) == 3
    row = next(r for r in D.latency_table(data)["table"] if r[0] == "kappa" and r[1] == f"{RATES[-1]:g}")
    assert row[3].startswith(f"{statistics.median(p95):.2f}")
    assert row[6] == "30"  # 10 measured units a repeat (12 minus 2 of warm-up), 3 repeats


def test_the_report_escapes_data_embeds_charts_and_keeps_equivalence(run):
    write_report(run.path)
    html = (run.path / "report.html").read_text()
    markdown = (run.path / "report.md").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert all(
        (run.path / "charts" / f"{name}.png").stat().st_size > 1000
        for name in ("latency_cdf", "latency_over_time", "latency_vs_rate", "drain_time", "cost")
    )
    assert "| city_revenue | identical | identical | DIFFERS (2 rows) | identical | identical |" in markdown
    assert "kappa/city_revenue" in markdown and "Findings" in markdown
    assert "Reprocessing" in markdown  # named as not measured, never silently missing


def test_findings_name_the_measured_winner_and_the_differences(run):
    data = D.RunData.load(run.path)
    text = " ".join(D.findings(data))
    assert "fastest architecture: dstream" in text  # medians: dstream 50, kappa 75, lambda 100
    assert "1 of" in text and "kappa/city_revenue" in text
    assert "Lowest: kappa" in text  # the synthetic latencies put kappa lowest of the three


def test_a_run_that_agrees_says_so(tmp_path):
    run = write_run(tmp_path / "reports", differs=False)
    text = " ".join(D.findings(D.RunData.load(run.path)))
    assert "is identical to the oracle's or not applicable" in text and "repeats agree" in text


def test_index_compare_and_latest(tmp_path):
    root = tmp_path / "reports"
    first = write_run(root, "20260101T000000Z-quick-aaaa")
    second = write_run(root, "20260102T000000Z-quick-bbbb", seed=2)
    publish(first.path)
    publish(second.path)  # compares itself with the previous run of its profile
    assert (root / "latest").is_symlink() and (root / "latest").resolve() == second.path.resolve()
    index = (root / "index.html").read_text()
    assert index.index(second.run_id) < index.index(first.run_id)  # newest first
    pages = list((root / "compare").glob("*.html"))
    assert [p.name for p in pages] == [f"{first.run_id}__{second.run_id}.html"]
    page = compare(second.path, first.path).read_text()
    assert "drain wall s: kappa" in page and "1.00x" in page  # same walls in both synthetic runs
    assert f"compare/{second.run_id}__{first.run_id}.html" in (root / "index.html").read_text()


def test_report_rebuilds_from_the_folder_alone(run, tmp_path):
    moved = tmp_path / "elsewhere" / run.path.name
    shutil.copytree(run.path, moved)
    shutil.rmtree(run.path)
    write_report(moved)
    write_index(moved.parent)
    assert "report.html" in (moved.parent / "index.html").read_text()


def test_a_folder_without_metrics_is_refused(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    with pytest.raises(D.RunFolderError):
        write_report(folder)


def test_appending_to_a_metrics_file_of_other_columns_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "r")
    folder.path.mkdir()
    folder.metrics_path.write_text("a,b\n")
    from experiments.harness.run_folder import Metric

    with pytest.raises(ValueError):
        folder.append([Metric("drain", "kappa", "wall_s", 1.0, "s")])
    assert HOSTILE  # the fixture's hostile string is what the escaping test looks for
