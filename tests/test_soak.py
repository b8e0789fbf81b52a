"""The soak step's figures (experiments/harness/soak_step.py) and its report section
(experiments/report/soak.py), from synthetic units, samples and file counts: no Spark."""

from __future__ import annotations

import pytest

from experiments.harness.live_figures import UnitRow
from experiments.harness.measure import Sample
from experiments.harness.profiles import DEFAULT_STEPS, PROFILES, STEPS
from experiments.harness.run_folder import ALL_QUERIES
from experiments.harness.soak_figures import FileCount, growth_metrics, window_metrics
from experiments.harness.soak_step import soak_rate
from experiments.report.data import RunData, not_measured
from experiments.report.soak import verdict_table, window_table
from experiments.report.writer import write_report
from tests.synthetic_run import HOSTILE, write_run

START = 1_000_000.0  # the measured replay's start, epoch s
WINDOW = 60.0


def _units(latency_at) -> list[UnitRow]:
    """One unit a second for three windows, its latency latency_at(intended second)."""
    return [UnitRow(i, 50 * i, 50 * i + 49, 0, 50.0, float(i), False, ALL_QUERIES, latency_at(i)) for i in range(180)]


def _samples(rss_at) -> list[Sample]:
    """A sample every 10 s, the tree using half a core, its RSS rss_at(second)."""
    return [Sample(START + t, rss_at(t), 0.5 * t) for t in range(0, 180, 10)]


def _figures(latency_at=lambda s: 2.0, rss_at=lambda t: 1000.0, counts=()):
    windows = window_metrics("kappa", _units(latency_at), _samples(rss_at), counts, START, WINDOW, 50.0, 9000)
    return windows, growth_metrics("kappa", windows, 50.0, 9000)


def _value(metrics, name, window=None, query=None):
    found = [
        m.value
        for m in metrics
        if m.metric == name and (window is None or m.repeat == window) and (query is None or m.query == query)
    ]
    assert len(found) == 1, (name, window, found)
    return found[0]


def test_each_window_has_its_units_percentiles_memory_cpu_and_files():
    counts = [FileCount(START + 50, "t/partials", 40), FileCount(START + 59, "t/partials", 45)]
    counts += [FileCount(START + 119, "t/partials", 3), FileCount(START + 119, "t/clean_lines", 120)]
    windows, _ = _figures(latency_at=lambda s: 1.0 + (s % 60) / 100, rss_at=lambda t: 1000.0 + t, counts=counts)
    assert sorted({m.repeat for m in windows}) == [1, 2, 3]
    assert _value(windows, "units", 1) == 60
    # nearest rank over 1.00 .. 1.59: p50 is the 30th value, p99 the 60th
    assert _value(windows, "latency_p50_s", 2) == pytest.approx(1.29)
    assert _value(windows, "latency_p99_s", 2) == pytest.approx(1.59)
    assert _value(windows, "rss_mb", 1) == pytest.approx(1025.0)  # median of 1000, 1010, ..., 1050
    assert _value(windows, "cpu_cores", 3) == pytest.approx(0.5)
    # the count at the window's last sample, per table; a window with no sample of a table has no row
    assert _value(windows, "delta_files", 1, "t/partials") == 45
    assert _value(windows, "delta_files", 2, "t/clean_lines") == 120
    assert not [m for m in windows if m.metric == "delta_files" and m.repeat == 3]


def test_a_unit_never_visible_is_counted_in_its_window():
    windows, _ = _figures(latency_at=lambda s: None if s == 130 else 2.0)
    assert _value(windows, "uncovered", 3) == 1 and _value(windows, "units", 3) == 60
    assert not [m for m in windows if m.metric == "uncovered" and m.repeat != 3]


def test_growth_compares_the_last_window_with_the_first_and_memory_with_the_second():
    _, growth = _figures(latency_at=lambda s: 2.0 if s < 120 else 3.0, rss_at=lambda t: 900.0 if t < 60 else 1000.0)
    assert _value(growth, "p99_growth") == pytest.approx(1.5)
    assert "target <= 1.2" in next(m.detail for m in growth if m.metric == "p99_growth")
    assert _value(growth, "rss_growth") == pytest.approx(0.0)  # the first window's 900 MiB is left out
    _, leaking = _figures(rss_at=lambda t: 1000.0 + 2 * t)
    assert _value(leaking, "rss_growth") == pytest.approx((1000 + 2 * 145) / (1000 + 2 * 85) - 1, abs=1e-3)


def test_the_rate_is_half_the_knee_this_run_found_else_the_profiles():
    profile = PROFILES["soak"]
    rows = [
        {"step": "throughput", "build": "kappa", "metric": "sustainable_lps", "value": "150"},
        {"step": "throughput", "build": "kappa", "metric": "sustainable_lps", "value": "200"},
        {"step": "throughput", "build": "lambda", "metric": "sustainable_lps", "value": ""},
    ]
    assert soak_rate(rows, "kappa", profile)[0] == 100.0
    rate, source = soak_rate(rows, "lambda", profile)
    assert rate == profile.soak_fallback_lps and "no sustainable throughput" in source


def test_the_soak_is_its_own_profile_and_no_other_profile_runs_it():
    assert "soak" in STEPS and "soak" not in DEFAULT_STEPS
    assert PROFILES["soak"].steps == ("throughput", "soak") and PROFILES["soak"].soak_seconds == 1800
    assert all("soak" not in p.steps for name, p in PROFILES.items() if name != "soak")


def test_the_report_shows_the_verdicts_and_escapes_a_table_name(tmp_path):
    run = write_run(tmp_path / "reports")
    windows, growth = _figures(
        latency_at=lambda s: 2.0 if s < 120 else 3.0, counts=[FileCount(START + 170, f"t/{HOSTILE}", 7)]
    )
    run.append(windows + growth)
    data = RunData.load(run.path)
    verdicts = verdict_table(data)["table"]
    assert [row[0] for row in verdicts] == ["kappa"]
    assert verdicts[0][3] == "1.50x, NOT met" and verdicts[0][4] == "+0.0%, met"
    assert [row[1] for row in window_table(data)["table"]] == ["1", "2", "3"]
    assert "Soak" not in [name for name, _ in not_measured(data)]
    write_report(run.path)
    html = (run.path / "report.html").read_text(encoding="utf-8")
    assert '<h2 id="soak">' in html and "charts/soak.png" not in html and (run.path / "charts" / "soak.png").exists()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "Soak, kappa" in (run.path / "report.md").read_text(encoding="utf-8")


def test_units_never_visible_in_the_last_window_fail_the_latency_verdict():
    """A build that fell behind for good: its last windows have no latency, only units never
    made visible; the verdict says so instead of comparing the windows that still had one."""
    _, growth = _figures(latency_at=lambda s: 2.0 if s < 100 else None)
    row = next(m for m in growth if m.metric == "p99_growth")
    assert row.value is None and row.detail.startswith("window 3: 60 of 60 units never visible")


def test_a_short_tail_joins_the_last_window_and_samples_after_the_replay_are_left_out():
    """A replay a few seconds longer than its windows (a 30-minute replay ends just past its
    sixth): the tail is part of the last window, not a window of its own; the drain and the
    stop after the last unit (their memory) are in no window."""
    units = [UnitRow(i, i, i, 0, 50.0, float(i), False, ALL_QUERIES, 1.0) for i in range(190)]
    samples = _samples(lambda t: 1000.0) + [Sample(START + 300, 5000.0, 150.0)]
    windows = window_metrics("kappa", units, samples, [], START, WINDOW, 50.0, 9500)
    assert sorted({m.repeat for m in windows}) == [1, 2, 3]
    assert _value(windows, "units", 3) == 70
    assert _value(windows, "rss_mb", 3) == 1000.0
