"""The report's scorecard (experiments/report/scorecard.py) and its per-query table, on synthetic
run folders (tests/synthetic_run.py): no Spark."""

from __future__ import annotations

import pytest

from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.report import data as D
from experiments.report.scorecard import NOT_MEASURED, scorecard
from experiments.report.writer import write_report
from tests.synthetic_run import add_other_steps, write_run


@pytest.fixture
def full_run(tmp_path):
    run = write_run(tmp_path / "reports", repeats=3)
    add_other_steps(run)
    return run


def _rows(run) -> dict:
    return {row.key: row for row in scorecard(D.RunData.load(run.path))["rows"]}


def test_each_cell_is_the_rows_median_with_its_spread_and_the_best_is_marked(full_run):
    data = D.RunData.load(full_run.path)
    card = scorecard(data)
    assert card["architectures"] == ["kappa", "lambda", "dstream"]
    p50 = {row.key: row for row in card["rows"]}["p50"]
    rate = max(data.rates)
    assert p50.dimension == f"Freshness p50, every query visible at {rate:g} lines/s" and p50.anchor == "latency"
    for build, cell in zip(card["architectures"], p50.cells):
        spread = data.spread("latency", "latency_p50_s", build, ALL_QUERIES, rate)
        assert cell.value == spread.median and cell.text.startswith(D.spread_text(spread, 2, " s"))
    lowest = min(c.value for c in p50.cells)
    assert [c.best for c in p50.cells] == [c.value == lowest for c in p50.cells] and sum(c.best for c in p50.cells) == 1


def test_every_dimension_a_review_weighs_has_a_row_that_names_its_metrics(full_run):
    rows = _rows(full_run)
    assert list(rows) == [
        "p50",
        "p99",
        "throughput",
        "drain_cost",
        "cpu",
        "memory",
        "reprocessing",
        "first_commit",
        "lost",
        "late",
        "code",
        "per_event",
    ]
    metrics = {r["metric"] for r in D.RunData.load(full_run.path).rows}
    for row in rows.values():
        if row.key != "per_event":
            assert row.source.split(",")[0].split(" ")[0] in metrics, row


def test_ties_are_all_best_and_a_row_of_equal_values_marks_none(full_run):
    rows = _rows(full_run)
    lost = rows["lost"].cells  # kappa and lambda 0 / 0, dstream lost 7
    assert [c.best for c in lost] == [True, True, False] and lost[2].text == "7 lost / 0 duplicated"
    assert not any(c.best for c in rows["first_commit"].cells)  # 20.0 s each


def test_a_knee_that_is_only_a_bound_is_shown_and_not_ranked(tmp_path):
    run = RunFolder.create(tmp_path, "standard")
    run.write_environment({"spark_master": "local[2]"})
    run.append(
        [
            Metric("throughput", "kappa", "sustainable_lps", 1600, "lines/s", query=ALL_QUERIES, repeat=1),
            Metric("throughput", "lambda", "sustainable_lps", 300, "lines/s", query=ALL_QUERIES, repeat=1),
            Metric("throughput", "lambda", "unbounded_lps", 400, "lines/s", query=ALL_QUERIES, repeat=1),
        ]
    )
    cells = _rows(run)["throughput"].cells
    assert cells[0].text == ">= 1,600 lines/s" and cells[0].value is None  # bounded up to the search's limit
    assert cells[1].text == "300 lines/s" and cells[1].value == 300 and cells[2].text == NOT_MEASURED
    assert not any(c.best for c in cells)  # one ranked value: nothing to compare it with


def test_the_sentences_come_from_the_table_and_name_the_machine(full_run):
    card = scorecard(D.RunData.load(full_run.path))
    rows = {row.key: row for row in card["rows"]}
    sentences = card["sentences"]
    assert 3 <= len(sentences) <= 6
    assert sentences[0].startswith("Freshness on this 2-CPU machine, Spark master local[2]: kappa")
    assert rows["p50"].cells[0].text.split(";")[0] in sentences[0]
    assert any("lost and duplicated no order line" in s and "dstream: 7 lost / 0 duplicated" in s for s in sentences)
    assert any("lambda corrects it with its batch layer" in s for s in sentences)


def test_the_report_opens_with_the_scorecard_linked_to_its_sections(full_run):
    write_report(full_run.path)
    html = (full_run.path / "report.html").read_text()
    assert html.index('<h2 id="scorecard">') < html.index('<h2 id="findings">')
    assert '<a href="#latency">Freshness p50' in html and '<a href="#late">Late data' in html
    assert "<strong>0 lost / 0 duplicated</strong>" in html
    markdown = (full_run.path / "report.md").read_text()
    assert "| Recovery after SIGKILL: order lines lost / duplicated | **0 lost / 0 duplicated** |" in markdown


def test_queries_with_the_same_figures_at_every_rate_are_one_row(tmp_path):
    run = RunFolder.create(tmp_path, "standard")
    run.write_environment({"spark_master": "local[2]"})
    latencies = {"city_revenue": 4.0, "daily_revenue": 4.0, "window_revenue": 6.5}
    for query, p50 in latencies.items():
        for rate in (100.0, 200.0):
            run.append(
                [
                    Metric("latency", "kappa", "latency_p50_s", p50, "s", query=query, repeat=1, rate_lps=rate),
                    Metric("latency", "kappa", "units_measured", 10, "units", query=query, repeat=1, rate_lps=rate),
                ]
            )
    table = D.per_query_latency_table(D.RunData.load(run.path))["table"]
    assert [(row[1], row[2], row[3]) for row in table] == [
        ("city_revenue, daily_revenue", "100", "4.00"),
        ("city_revenue, daily_revenue", "200", "4.00"),
        ("window_revenue", "100", "6.50"),
        ("window_revenue", "200", "6.50"),
    ]


def test_figures_within_ten_percent_of_the_best_are_marked_with_it_and_a_row_of_near_ties_marks_none(tmp_path):
    def knees(values: dict[str, float]):
        run = RunFolder.create(tmp_path, "standard")
        run.write_environment({"spark_master": "local[2]"})
        for build, knee in values.items():
            run.append(
                [
                    Metric("throughput", build, "sustainable_lps", knee, "lines/s", query=ALL_QUERIES, repeat=1),
                    Metric("throughput", build, "unbounded_lps", 2 * knee, "lines/s", query=ALL_QUERIES, repeat=1),
                ]
            )
        return [c.best for c in _rows(run)["throughput"].cells]

    assert knees({"kappa": 300, "lambda": 280, "dstream": 100}) == [True, True, False]
    assert knees({"kappa": 300, "lambda": 290, "dstream": 295}) == [False, False, False]
