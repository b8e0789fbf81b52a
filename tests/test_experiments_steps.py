"""The pieces of `lab experiments`' steps, without Spark: the stepped open-loop schedule,
latency per unit and rate step, the equivalence verdicts, Lambda's handoffs read from its
log, the profiles, the time-left display and the command line; and (slow) the quick profile
end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.harness import follow, latency_step, live_figures
from experiments.harness.equivalence import compare_build, first_differences
from experiments.harness.profiles import PROFILES
from experiments.harness.run_folder import ALL_QUERIES
from experiments.inputs.replay import replay_to_landing
from experiments.inputs.schedule import OpenLoopSchedule, RateStep, parse_rate_steps
from experiments.progress import TimeLeft
from shared.commit_log import CommitLog, commit_log_path
from tests.synthetic_run import write_replay_log

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------
# The stepped open-loop schedule
# ---------------------------------------------------------------------------------------


def test_a_stepped_schedule_is_fixed_in_advance_with_gaps():
    schedule = OpenLoopSchedule(None, parse_rate_steps("100:1000,200:2000,400:400"), gap_s=5)
    assert [p["start_s"] for p in schedule.phases] == [0.0, 15.0, 30.0]  # 1000/100 + 5, then 2000/200 + 5
    assert schedule.intended_s(500) == 5.0
    assert schedule.intended_s(1000) == 15.0 and schedule.intended_s(2000) == 20.0
    assert schedule.intended_s(3400) == 31.0
    assert schedule.intended_s(3800) == 32.0  # past the last step: the last rate goes on


@pytest.mark.parametrize("text", ["", "100", "100:0", "-5:10", "x:10", "100:10,,abc"])
def test_bad_rate_steps_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate_steps(text)


def test_a_rate_and_steps_together_are_refused():
    with pytest.raises(ValueError):
        OpenLoopSchedule(100.0, [RateStep(100.0, 10)])


def test_a_stepped_replay_records_its_steps(tmp_path):
    from experiments.inputs.generate import GeneratorOptions, generate

    generate(tmp_path / "in", GeneratorOptions(rows=40, seed=3, files=4))
    lines = [sum(1 for _ in open(p, encoding="utf-8")) for p in sorted((tmp_path / "in").glob("sales_*.csv"))]
    steps = [RateStep(10_000.0, lines[0] + lines[1]), RateStep(20_000.0, lines[2] + lines[3])]
    summary = replay_to_landing(
        tmp_path / "in", tmp_path / "landing", rate_steps=steps, step_gap_s=0.05, log_dir=tmp_path / "log"
    )
    assert [p["first_seq"] for p in summary.rate_steps] == [0, lines[0] + lines[1]]
    with open(tmp_path / "log" / "replay_log.csv", newline="") as handle:
        intended = [float(r["intended_s"]) for r in csv.DictReader(handle)]
    assert intended[2] == pytest.approx(summary.rate_steps[1]["start_s"], abs=1e-6)
    assert intended[2] - intended[1] >= 0.05  # the gap is silence
    assert json.loads((tmp_path / "log" / "replay_summary.json").read_text())["rate_steps"] == summary.rate_steps


# ---------------------------------------------------------------------------------------
# Latency per unit and rate step
# ---------------------------------------------------------------------------------------


def test_unit_rows_tag_steps_and_warmup_and_keep_uncovered_units(tmp_path):
    phases = [
        {"step": 0, "rate": 10.0, "first_seq": 0, "lines": 20, "start_s": 0.0},
        {"step": 1, "rate": 20.0, "first_seq": 20, "lines": 20, "start_s": 4.0},
    ]
    # 10-line units: two in each step; the first unit of each step is in its 1 s warm-up
    write_replay_log(tmp_path / "replay", phases, [(0, 9, 0.0), (10, 19, 1.0), (20, 29, 4.0), (30, 39, 5.5)])
    log = CommitLog(commit_log_path(tmp_path, "kappa"))
    log.append("a", 19, 1, visible_at=1002.0)  # units 0 and 1
    log.append("b", 9, 1, visible_at=1000.5)  # unit 0
    log.append("b", 29, 1, visible_at=1006.0)  # units 1 and 2
    log.append("a", 39, 1, visible_at=1007.0)  # units 2 and 3; b never covers unit 3
    rows = live_figures.unit_rows(tmp_path / "replay", commit_log_path(tmp_path, "kappa"), ("a", "b"), warmup_s=1.0)
    every = {(r.unit, r.query): r for r in rows}
    assert [every[(u, ALL_QUERIES)].latency_s for u in range(4)] == [2.0, 5.0, 3.0, None]
    assert [every[(u, "a")].step for u in range(4)] == [0, 0, 1, 1]
    assert [every[(u, "a")].warmup for u in range(4)] == [True, False, True, False]
    metrics = {
        (m.metric, m.query, m.rate_lps): m.value
        for m in live_figures.latency_metrics("kappa", rows, 1, 40, warmup_s=1.0)
    }
    assert metrics[("latency_p50_s", ALL_QUERIES, 10.0)] == 5.0
    assert metrics[("units_uncovered", ALL_QUERIES, 20.0)] == 1 and metrics[("units_measured", ALL_QUERIES, 20.0)] == 0
    assert ("latency_p50_s", ALL_QUERIES, 20.0) not in metrics  # nothing measured, no made-up figure
    assert metrics[("latency_max_s", "a", 20.0)] == pytest.approx(1.5)


def _unit(unit, step, intended, latency, warmup=False):
    return live_figures.UnitRow(
        unit, unit * 10, unit * 10 + 9, step, 10.0 * (step + 1), intended, warmup, ALL_QUERIES, latency
    )


def test_a_commits_lag_is_from_the_newest_unit_it_made_visible_and_it_belongs_to_that_units_step():
    rows = [
        _unit(0, 0, 0.0, 3.0, warmup=True),
        _unit(1, 0, 1.0, 2.0),  # both visible at 3.0: one commit
        _unit(2, 0, 2.0, 4.0),
        _unit(3, 1, 3.0, 3.0),  # one commit at 6.0, newest unit in step 1
        _unit(4, 1, 4.0, 3.5),
        _unit(5, 1, 5.0, None),
    ]  # 7.5; unit 5 never visible
    lags = live_figures.commit_lags(rows)
    assert [(c.at_s, c.lag_s, c.step, c.warmup) for c in lags] == [
        (3.0, 2.0, 0, False),
        (6.0, 3.0, 1, False),
        (7.5, 3.5, 1, False),
    ]
    metrics = {(m.metric, m.rate_lps): m.value for m in live_figures.latency_metrics("kappa", rows, 1, 60, 0.5)}
    assert metrics[("commits_measured", 10.0)] == 1 and metrics[("commits_measured", 20.0)] == 2
    assert metrics[("commit_lag_p50_s", 20.0)] == 3.0
    assert ("commit_lag_trend_s_per_min", 20.0) not in metrics  # two commits: no trend, never a made-up one
    # a commit whose newest unit is a warm-up unit is in no step's figures
    warm = live_figures.commit_lags([_unit(0, 0, 0.0, 1.0, warmup=True)])
    assert (
        warm[0].warmup
        and live_figures.latency_metrics("kappa", [_unit(0, 0, 0.0, 1.0, warmup=True)], 1, 10, 0.5)[-1].value == 0
    )


def test_the_warm_up_step_is_in_no_figure(tmp_path):
    phases = [
        {"step": 0, "rate": 5.0, "first_seq": 0, "lines": 20, "start_s": 0.0},
        {"step": 1, "rate": 10.0, "first_seq": 20, "lines": 40, "start_s": 5.0},
    ]
    write_replay_log(
        tmp_path / "replay",
        phases,
        [(0, 9, 0.0), (10, 19, 2.0), (20, 29, 5.0), (30, 39, 6.0), (40, 49, 7.0), (50, 59, 8.0)],
    )
    log = CommitLog(commit_log_path(tmp_path, "kappa"))
    log.append("a", 59, 1, visible_at=1010.0)  # the first commit, late: it covers every unit
    rows = live_figures.unit_rows(
        tmp_path / "replay", commit_log_path(tmp_path, "kappa"), ("a",), warmup_s=0.5, warmup_steps=1
    )
    assert [r.warmup for r in rows if r.query == "a"] == [True, True, True, False, False, False]
    metrics = live_figures.latency_metrics("kappa", rows, 1, 60, warmup_s=0.5, warmup_steps=1)
    assert {m.rate_lps for m in metrics} == {10.0}  # no row at the warm-up step's rate
    assert "rate step 1;" in next(m.detail for m in metrics if m.metric == "units_measured")


@pytest.mark.parametrize("name", ["quick", "standard"])
def test_the_latency_passes_take_whole_files_of_the_input_one_slice_each(tmp_path, name):
    from experiments.inputs.generate import GeneratorOptions, generate
    from shared.inputs import inspect_input
    from shared.raw_lines import count_raw_lines

    profile = PROFILES[name]
    files = profile.live_rows // profile.file_lines
    generate(tmp_path / "in", GeneratorOptions(rows=files * profile.file_lines, seed=7, files=files))
    warmup = latency_step.warmup_pass(tmp_path / "in", profile)
    passes = latency_step.live_passes(tmp_path / "in", profile, warmup)
    assert len(passes) == profile.repeats
    assert [rate for rate, _ in warmup.rate_steps] == [min(profile.rates) / 2]  # a warm-up pass of its own first
    assert all([rate for rate, _ in p.rate_steps] == list(profile.rates) for p in passes)
    assert warmup.files[0] == 0 and passes[0].files[0] == warmup.files[1] and passes[-1].files[1] == files
    assert all(a.files[1] == b.files[0] for a, b in zip(passes, passes[1:]))  # consecutive slices
    sales = list(inspect_input(tmp_path / "in").sales_files)
    for one in [warmup, *passes]:
        first, end = one.files
        assert sum(lines for _, lines in one.rate_steps) == sum(count_raw_lines(p) for p in sales[first:end])


def test_the_probe_and_the_recovery_replay_are_the_slices_after_the_latency_passes(tmp_path):
    from experiments.inputs.generate import GeneratorOptions, generate
    from shared.inputs import inspect_input
    from shared.raw_lines import count_raw_lines

    profile = PROFILES["quick"]
    rows = profile.live_input_rows(True, True)
    generate(tmp_path / "in", GeneratorOptions(rows=rows, seed=7, files=rows // profile.file_lines))
    passes = latency_step.live_passes(tmp_path / "in", profile, latency_step.warmup_pass(tmp_path / "in", profile))
    probe = latency_step.probe_pass(tmp_path / "in", profile, passes[-1])
    last = latency_step.recovery_pass(tmp_path / "in", profile, probe)
    sales = list(inspect_input(tmp_path / "in").sales_files)
    assert probe.files[0] == passes[-1].files[1] and probe.files[1] == last.files[0]  # then the probe pass
    assert [rate for rate, _ in probe.rate_steps] == profile.probe_rates()
    assert probe.files[1] - probe.files[0] == sum(profile.probe_lines()) // profile.file_lines
    assert last.files == (probe.files[1], len(sales))  # the rest of the input, after every pass
    assert [rate for rate, _ in last.rate_steps] == [profile.recovery_rate_lps]
    assert last.rate_steps[0][1] == sum(count_raw_lines(p) for p in sales[last.files[0] :])


# ---------------------------------------------------------------------------------------
# Equivalence, handoffs, profiles, time left, the command line
# ---------------------------------------------------------------------------------------


def _export(workdir: Path, build: str, query: str, text: str) -> None:
    from shared.export import export_path

    path = export_path(workdir, build, query)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_verdicts_count_and_show_the_first_differences(tmp_path):
    oracle = tmp_path / "oracle-work"
    _export(oracle, "oracle", "city_revenue", "city,state,revenue\nA,X,1.00\nB,Y,2.00\n")
    _export(oracle, "oracle", "daily_revenue", "date,revenue\n2019-01-01,1.00\n")
    work = tmp_path / "w"
    _export(work, "kappa", "city_revenue", "city,state,revenue\nA,X,1.00\nB,Y,3.00\n")
    _export(work, "kappa", "daily_revenue", "date,revenue\n2019-01-01,1.00\n")
    verdicts = {v.query: v for v in compare_build(work, "kappa", oracle / "results" / "oracle", {})}
    assert verdicts["daily_revenue"].status == "identical" and verdicts["daily_revenue"].differing_rows == 0
    differs = verdicts["city_revenue"]
    assert differs.status == "DIFFERS" and differs.differing_rows == 2 and differs.failing
    assert "oracle only: B,Y,2.00" in differs.detail and "build only: B,Y,3.00" in differs.detail
    assert verdicts["fulfilment"].status == "not applicable" and verdicts["fulfilment"].differing_rows is None
    assert first_differences(
        oracle / "results" / "oracle" / "daily_revenue.csv", work / "results" / "kappa" / "daily_revenue.csv"
    ) == (0, "")


def test_lambda_handoffs_are_read_from_its_progress_lines():
    log = (
        "[00:05] lambda: processing\n[01:02] lambda: batch views of master v4 serve now (handoff 1)\n"
        "[01:30] lambda: batch views of master v9 serve now (handoff 2)\n"
    )
    assert follow.lambda_handoffs(log, 1000.0) == [(1062.0, 4), (1090.0, 9)]


def test_covered_by_all_needs_every_query(tmp_path):
    log = CommitLog(commit_log_path(tmp_path, "x"))
    log.append("a", 10, 1)
    log.append("b", 5, 1)
    assert follow.covered_by_all(commit_log_path(tmp_path, "x"), ("a",), 10)
    assert not follow.covered_by_all(commit_log_path(tmp_path, "x"), ("a", "b"), 10)
    assert not follow.covered_by_all(commit_log_path(tmp_path, "x"), ("a", "c"), 1)


def test_every_profile_has_two_rates_or_more_and_whole_files():
    for profile in PROFILES.values():
        assert len(profile.rates) >= 2 and profile.rates == tuple(sorted(profile.rates))
        assert all(lines % profile.file_lines == 0 for lines in profile.step_lines())
    assert PROFILES["quick"].repeats == 1 and PROFILES["standard"].repeats >= 3


def test_a_percentage_line_at_its_end_is_printed_once_however_often_it_is_reported():
    import io

    from experiments.progress import Progress

    log = io.StringIO()  # not a terminal: a line every 10 s, the end at once
    progress = Progress(log)
    for _ in range(20):  # a follow run between arrivals: everything landed is processed
        progress.fraction(0, 0, "lines")
    progress.fraction(5, 10, "lines")  # within 10 s of the line before: not printed
    progress.fraction(10, 10, "lines")
    progress.fraction(10, 10, "lines")
    assert [line.split("] ", 1)[1] for line in log.getvalue().splitlines()] == [
        "lines 0/0 (100.0%)",
        "lines 10/10 (100.0%)",
    ]


def test_time_left_scales_the_estimates_by_what_finished():
    left = TimeLeft({"a": 10, "b": 10, "c": 20})
    assert left.seconds_left() == 40
    left.finish("a", 20)  # twice as slow as estimated
    assert left.seconds_left() == 60
    assert "1 min 00 s left" in left.text()


def test_the_command_line_takes_steps_report_and_compare():
    from experiments.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["experiments", "--profile", "standard", "--steps", "latency"])
    assert args.profile == "standard" and args.steps == "latency" and args.experiments_action is None
    assert parser.parse_args(["experiments", "report", "reports/x"]).run_dir == "reports/x"
    assert parser.parse_args(["experiments", "compare", "a", "b"]).run_b == "b"


def test_experiments_refuses_an_unknown_step(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.cli",
            "experiments",
            "--steps",
            "drains,nap",
            "--reports",
            str(tmp_path / "r"),
            "--data",
            str(tmp_path / "d"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "nap" in done.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())  # nothing started


@pytest.mark.slow
@pytest.mark.e2e
def test_a_follow_run_replays_the_probe_pass_after_its_measured_passes_and_it_is_judged(tmp_path):
    """The throughput search's probe pass (Profile.search_on_live) on the pass-through, the
    cheapest follower: replayed after the measured passes, in no figure of theirs, waited for
    like them, and judged from its commits."""
    import dataclasses

    from experiments.harness.run_folder import RunFolder
    from experiments.harness.throughput_step import PROBE_PASS, probe_pass_metrics
    from experiments.inputs.generate import GeneratorOptions, generate

    profile = dataclasses.replace(PROFILES["quick"], search_step_seconds=8.0)  # 6-7 commits a step after its warm-up
    rows = profile.live_input_rows(False, True)
    generate(tmp_path / "in", GeneratorOptions(rows=rows, seed=7, files=rows // profile.file_lines))
    warmup = latency_step.warmup_pass(tmp_path / "in", profile)
    passes = latency_step.live_passes(tmp_path / "in", profile, warmup)
    probe = latency_step.probe_pass(tmp_path / "in", profile, passes[-1])
    live = follow.run_follow(
        follow.followers()["passthrough"],
        tmp_path / "in",
        tmp_path / "work",
        warmup=warmup,
        passes=passes,
        probe_pass=probe,
        interval=profile.interval,
        drain_timeout_s=60.0,
    )
    assert live.ok, live.problem
    assert live.warmup_replay_dir == tmp_path / "work" / "replay-warmup"  # replayed, in no pass's figures
    assert live.replay_dirs == [live.replay_dir] and live.probe_replay_dir == tmp_path / "work" / "replay-probe"
    assert live.measured.wall_s < live.measurement.wall_s  # the cost figure ends before the probe
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    rows = probe_pass_metrics(run, live, profile)
    metrics = {(m.metric, m.query, m.rate_lps): m for m in rows}
    for rate in profile.probe_rates():  # each step of the probe pass (300 and 400 lines/s) judged
        assert metrics[("units_uncovered", ALL_QUERIES, rate)].value == 0
        assert metrics[("commits_measured", ALL_QUERIES, rate)].value >= live_figures.MIN_COMMITS
        verdict = metrics[("bounded", ALL_QUERIES, rate)]
        assert verdict.value is not None, verdict.detail
        assert verdict.detail.startswith(f"{PROBE_PASS}: lag of its")
    assert [m for m in rows if m.metric == "replay_lag_max_s" and m.query == PROBE_PASS][0].value is not None
    assert (run.path / "throughput" / "passthrough-r1-live-probe-pass.csv").exists()


# ---------------------------------------------------------------------------------------
# Every step, end to end, small: each step on its cheapest builds (a JVM is 15-40 s here)
# ---------------------------------------------------------------------------------------

# the quick profile, with one bisection of the pass-through's search and one doubling run (400, 800)
TINY = dict(search_bisections=1, search_limit_lps=800.0, soak_seconds=20.0, soak_window_s=10.0, soak_sample_s=2.0)
TINY_BUILDS = {
    "throughput": ("passthrough",),
    "reprocessing": ("kappa",),
    "recovery": ("kappa",),
    "late": ("kappa",),
    "soak": ("dstream",),
}


def _assert_poison_met(data, build: str) -> None:
    """The recovery replay's poison files (a stray binary file, a Windows-1252 export) were
    landed, the build went on past each, and quarantined exactly the oracle's lines."""
    from experiments.report.data import faults_table

    covered = {r["query"]: r["value"] for r in data.select("faults", "covered_s", build)}
    assert len(covered) == 2 and all(value != "" for value in covered.values()), covered
    assert any(name.endswith("_stray.csv") for name in covered), covered
    assert [r["value"] for r in data.select("faults", "lost_lines", build)] == ["0"]
    assert [r["value"] for r in data.select("faults", "duplicated_lines", build)] == ["0"]
    outcomes = [row[4] for row in faults_table(data)["table"] if row[0] == build]
    assert sum(o.startswith("quarantined, went on") for o in outcomes) == 2 and len(outcomes) == 3, outcomes


@pytest.mark.slow
@pytest.mark.e2e
def test_every_step_end_to_end_on_a_small_input(tmp_path, monkeypatch):
    """`lab experiments`' run on the quick profile (plus a bisection, TINY) on its cheapest
    builds: drains of DuckDB and dstream, latency and the throughput search of the
    pass-through, reprocessing, recovery and late data on kappa, code size, a 20-second soak
    of dstream (its older results pruned every 3 batches); then the report from the folder
    alone."""
    import dataclasses

    from experiments.harness.profiles import STEPS
    from experiments.harness.runner import run_experiments
    from experiments.progress import Progress
    from experiments.report.data import RunData, cost_failures, cost_models, equivalence, not_measured, status_of
    from experiments.report.index import publish
    from shared.catalogue import QUERY_NAMES

    monkeypatch.setenv("LAB_COMPACT_EVERY_BATCHES", "3")  # the builds' processes read it
    profile = dataclasses.replace(PROFILES["quick"], **TINY)
    report = publish(
        run_experiments(
            profile,
            steps=STEPS,
            reports_root=tmp_path / "reports",
            data_root=tmp_path / "data",
            progress=Progress(quiet=True),
            systems=("duckdb", "dstream"),
            live_builds=("passthrough",),
            builds=TINY_BUILDS,
        )
    )
    data = RunData.load(report.parent)
    assert data.drain_systems == ["duckdb", "dstream"] and equivalence(data, "drain")["failing"] == []
    assert cost_failures(data) == [] and set(cost_models(data)) == {"duckdb", "dstream"}  # two sizes each
    assert all(data.select("latency", "latency_p50_s", "passthrough", ALL_QUERIES, rate) for rate in data.rates)
    assert data.select("throughput", "sustainable_lps", "passthrough") or data.select(
        "throughput", "unbounded_lps", "passthrough"
    )
    assert {r["metric"] for r in data.select("throughput", "bounded", "passthrough")} == {"bounded"}
    # the pass-through has no probe pass (the architectures do): judged on the latency rates, then,
    # bounded at each, one doubling run of its own up to the search's limit (a bisection only if one was not)
    judged = {float(r["rate_lps"]) for r in data.select("throughput", "bounded", "passthrough")}
    assert set(profile.rates) | {400.0, 800.0} <= judged <= set(profile.rates) | {300.0, 400.0, 800.0}, judged
    probes = {r["query"] for r in data.select("throughput", "wall_s", "passthrough")}
    assert "double-1" in probes and probes <= {"double-1", "bisect-1"}, probes
    check = data.select("reprocessing", "equivalence", "kappa", "city_revenue")
    assert [r["value"] for r in check] == ["0"] * len(profile.reprocess_rows), check  # every size
    assert data.select("reprocessing", "wall_s", "kappa") and data.select("reprocessing", "catch_up_s", "kappa")
    problems = [r["detail"] for r in data.rows if r["metric"] == "problem"]
    assert not problems, problems
    for metric in ("kill_at_s", "restart_at_s", "first_commit_after_restart_s", "catch_up_s"):
        assert data.select("recovery", metric, "kappa")[0]["value"] != "", metric
    lost = {
        (r["metric"], r["query"]): r["value"]
        for r in data.rows
        if r["step"] == "recovery" and r["metric"] in ("lost_lines", "duplicated_lines")
    }
    assert set(lost.values()) == {"0"} and ("lost_lines", "line_accounting") in lost  # Kappa: exactly once
    _assert_poison_met(data, "kappa")
    assert (report.parent / "recovery" / "kappa-r1.csv").exists()
    assert float(data.select("late", "late_lines", "input")[0]["value"]) > 0
    assert data.select("late", "window_lines_missing", "kappa")
    assert data.select("code_size", "code_lines", "kappa", "build-specific")
    assert [status_of(r) for r in data.select("soak", "equivalence", "dstream")] == ["identical"] * len(QUERY_NAMES)
    assert len(data.select("soak", "latency_p99_s", "dstream")) == 2  # two 10-second windows
    assert data.select("soak", "p99_growth", "dstream") and data.select("soak", "rss_growth", "dstream") == []
    published = [r for r in data.select("soak", "delta_files", "dstream") if r["query"] == "dstream/tables/results"]
    assert published and max(int(r["value"]) for r in published) <= 3  # pruned as it ran
    assert not_measured(data) == []
    html = (report.parent / "report.html").read_text()
    for section in ("throughput", "reprocessing", "recovery", "late", "code-size", "soak"):
        assert f'<h2 id="{section}">' in html


@pytest.mark.slow
@pytest.mark.e2e
def test_the_recovery_kill_lands_in_the_latency_runs_last_pass_and_kappa_loses_nothing(tmp_path):
    """The quick profile's latency and recovery steps on Kappa: its follow run replays the
    recovery input as a last pass after the measured one, is SIGKILLed while that replay
    emits, starts again and catches up. Recovery rows from it (no run of its own), no line
    lost or counted twice, and the latency step's export still identical to the oracle's."""
    from experiments.harness.faults import LAST_PASS_KILL
    from experiments.harness.runner import run_experiments
    from experiments.progress import Progress
    from experiments.report.data import RunData
    from experiments.report.index import publish

    report = publish(
        run_experiments(
            PROFILES["quick"],
            steps=("latency", "recovery"),
            live_builds=("kappa",),
            builds={"recovery": ("kappa",)},
            reports_root=tmp_path / "reports",
            data_root=tmp_path / "data",
            progress=Progress(quiet=True),
        )
    )
    data = RunData.load(report.parent)
    problems = [r["detail"] for r in data.rows if r["metric"] == "problem"]
    assert not problems, problems
    kill = data.select("recovery", "kill_at_s", "kappa")
    assert len(kill) == 1 and LAST_PASS_KILL in kill[0]["detail"] and "still emitting" in kill[0]["detail"]
    for metric in ("restart_at_s", "first_commit_after_restart_s", "catch_up_s", "exit_code"):
        assert [r["value"] != "" for r in data.select("recovery", metric, "kappa")] == [True], metric
    counted = {
        (r["metric"], r["query"]): r["value"]
        for r in data.rows
        if r["step"] == "recovery" and r["metric"] in ("lost_lines", "duplicated_lines")
    }
    assert set(counted.values()) == {"0"} and ("duplicated_lines", "line_accounting") in counted
    verdicts = data.select("latency", "equivalence", "kappa")
    assert verdicts and all(
        r["value"] == "0" and "restarted after the last pass's SIGKILL" in r["detail"] for r in verdicts
    )
    assert "recovery_input" not in data.environment  # no follow run of its own
    _assert_poison_met(data, "kappa")
    assert (report.parent / "recovery" / "kappa-r1.csv").exists()
    assert (report.parent / "logs" / "recovery-kappa-r1.log").exists()
