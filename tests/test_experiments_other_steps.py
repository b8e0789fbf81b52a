"""The throughput search, reprocessing, recovery, late-data and code-size steps without Spark:
their decisions and counts on made-up inputs, and their report sections on a synthetic run
folder (tests/synthetic_run.py). The steps themselves run in the slow end-to-end test of
tests/test_experiments_steps.py."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import textwrap

import pytest

from experiments.harness import (
    code_size,
    cost_model,
    faults,
    latency,
    live_figures,
    recovery_step,
    reprocess_step,
    throughput_step,
)
from experiments.harness.equivalence import lost_and_duplicated, order_line_counts
from experiments.harness.late_step import window_metrics
from experiments.harness.profiles import DRAIN_SYSTEMS, KNEE_RATIO, PROFILES, STEPS, search_ramp
from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.report import data as D
from experiments.report.writer import write_report
from shared.commit_log import Commit
from tests.synthetic_run import COST_LINES, HOSTILE, add_other_steps, cost_rows, write_run

# ---------------------------------------------------------------------------------------
# Sustainable throughput: when a rate is bounded, the knee, the next rate
# ---------------------------------------------------------------------------------------


def test_a_rate_is_unbounded_only_when_its_commits_lag_keeps_rising_or_a_unit_never_shows():
    steady = 0.001  # Kendall's p of lags rising commit after commit
    assert live_figures.bounded(0.5, steady, 1.0, 10, 0, 60)[0] is True  # +0.5 s over a minute: under 1 s
    assert live_figures.bounded(3.0, steady, 1.0, 10, 0, 60)[0] is False  # +3 s over a minute
    assert live_figures.bounded(3.0, steady, 20.0, 10, 0, 60)[0] is True  # under 20 % of a 20 s median lag
    ok, why = live_figures.bounded(3.0, 0.4, 1.0, 10, 0, 60)  # +3 s, but one jump, not a rise at every commit
    assert ok is True and "did not keep rising" in why and "p 0.400" in why
    ok, why = live_figures.bounded(0.0, 0.5, 1.0, 10, 2, 60)
    assert ok is False and "2 units never visible" in why
    ok, why = live_figures.bounded(0.0, 0.5, 1.0, live_figures.MIN_COMMITS - 1, 0, 60)  # too few commits
    assert ok is None and f"fewer than {live_figures.MIN_COMMITS}" in why
    assert live_figures.bounded(None, None, None, 0, 0, 60)[0] is None
    ok, why = live_figures.bounded(-60.0, 1.0, 30.0, 10, 0, 60)  # catching up after one late commit
    assert ok is None and "starting or stalled" in why


def _figures(rate, trend, lag, commits=10, uncovered=0, rising=0.001):
    return [
        Metric("throughput", "kappa", name, value, "s", query=ALL_QUERIES, rate_lps=rate)
        for name, value in (
            ("commit_lag_trend_s_per_min", trend),
            ("commit_lag_p50_s", lag),
            ("commit_lag_rising_p", rising),
            ("commits_measured", commits),
            ("units_uncovered", uncovered),
        )
    ]


def test_the_search_judges_rates_up_to_the_first_unbounded_one():
    metrics = (
        _figures(100.0, 0.1, 1.0) + _figures(200.0, 0.2, 1.1) + _figures(400.0, 40.0, 3.0) + _figures(800.0, 0.0, 9.0)
    )
    verdicts = live_figures.judge(metrics, [100.0, 200.0, 400.0, 800.0], step_seconds=10)
    assert [v.ok for v in verdicts] == [True, True, False, None]  # 800 carries 400's backlog: not judged
    assert throughput_step.knee(verdicts) == (200.0, 400.0)
    assert throughput_step.next_rate(200.0, 400.0) == 300.0 and throughput_step.next_rate(None, 100.0) == 50.0
    rows = {m.metric: m for m in throughput_step.knee_metrics("kappa", verdicts, PROFILES["quick"], 1)}
    assert rows["sustainable_lps"].value == 200.0 and rows["unbounded_lps"].value == 400.0
    assert "bounded at 200, not at 400" in rows["sustainable_lps"].detail


def test_a_search_bounded_everywhere_says_its_knee_is_a_lower_bound():
    verdicts = [live_figures.Judged(r, True, "") for r in (100.0, 200.0)]
    rows = throughput_step.knee_metrics("kappa", verdicts, PROFILES["quick"], 1)
    assert [m.metric for m in rows] == ["sustainable_lps"] and "at least this" in rows[0].detail
    # rates above the highest bounded one that could not be judged are named, not taken for the limit
    unjudged = verdicts + [live_figures.Judged(r, None, "") for r in (400.0, 800.0)]
    (row,) = throughput_step.knee_metrics("kappa", unjudged, PROFILES["quick"], 1)
    assert row.value == 200.0 and "up to 200 lines/s: at least this; 400, 800 not judged" in row.detail
    nothing = throughput_step.knee_metrics("kappa", [live_figures.Judged(100.0, False, "")], PROFILES["quick"], 1)
    assert nothing[0].value is None and nothing[1].value == 100.0


def test_the_ramp_doubles_up_to_the_profiles_bound_in_whole_files():
    profile = PROFILES["standard"]
    ramp = search_ramp(profile)
    assert ramp[0] == profile.search_start_lps and ramp[-1] <= profile.search_max_lps
    assert all(b == 2 * a for a, b in zip(ramp, ramp[1:]))
    assert [profile.whole_files(rate, 10) for rate in (100.0, 5.0)] == [20, 2]  # at least two files a step
    # a probe's units grow with its rate: at most four files a second
    assert [profile.file_lines_at(rate) for rate in (100.0, 200.0, 3200.0)] == [50, 50, 800]
    assert profile.whole_files(3200.0, 30, profile.file_lines_at(3200.0)) == 120


def test_a_follow_run_stands_for_a_reprocessing_size_only_when_it_stopped_cleanly(tmp_path):
    run = RunFolder.create(tmp_path / "reports", "standard")
    work = tmp_path / "work" / "reprocessing"
    for build, code in (("kappa", 0), ("lambda", 1)):
        (work.parent / "latency" / f"live-{build}" / "landing").mkdir(parents=True)
        run.append([Metric("latency", build, "exit_code", code, "code", repeat=1)])
    assert reprocess_step.followed(run, work, "kappa") == work.parent / "latency" / "live-kappa"
    assert reprocess_step.followed(run, work, "lambda") is None  # exited 1: its input may be half landed
    assert reprocess_step.followed(run, work, "dstream") is None  # never followed in this run folder
    copy = reprocess_step.copy_followed(work.parent / "latency" / "live-kappa", work, "kappa", 1)
    assert (copy / "landing").is_dir() and (work.parent / "latency" / "live-kappa" / "landing").is_dir()
    assert PROFILES["standard"].reprocess_on_live and not PROFILES["quick"].reprocess_on_live


def test_every_profile_reprocesses_two_sizes_or_more_and_standard_repeats_three_times():
    for profile in PROFILES.values():
        assert len(profile.reprocess_rows) >= 2 and list(profile.reprocess_rows) == sorted(profile.reprocess_rows)
        assert 0 < profile.late_fraction < 1 and profile.late_files >= 2
    assert PROFILES["standard"].repeats >= 3
    assert set(STEPS) >= {"throughput", "reprocessing", "recovery", "late", "code_size"}


# ---------------------------------------------------------------------------------------
# Reprocessing, recovery and late data: the counts
# ---------------------------------------------------------------------------------------


def test_the_kappa_replay_outcome_is_read_from_its_output():
    log = 'starting\n{\n  "version": "v2",\n  "catch_up_seconds": 12.5,\n  "passes": 2\n}\ncity_revenue  written\n'
    assert reprocess_step.replay_outcome(log) == {"version": "v2", "catch_up_seconds": 12.5, "passes": 2}
    assert reprocess_step.replay_outcome("no json here") == {}


def test_lost_and_duplicated_lines_are_counted_per_key():
    oracle = {("A",): 10, ("B",): 5, ("C",): 1}
    assert lost_and_duplicated(oracle, oracle) == (0, 0)
    # B lost 2, C missing entirely (1 lost), A counted 3 twice, D never existed: offsetting keys do not cancel
    assert lost_and_duplicated(oracle, {("A",): 13, ("B",): 3, ("D",): 4}) == (3, 7)


def test_exports_with_order_lines_are_read_by_key(tmp_path):
    path = tmp_path / "city_revenue.csv"
    path.write_text("city,state,revenue,order_lines\nPortland,ME,10.00,3\nPortland,OR,5.00,2\n")
    assert order_line_counts(path) == {("Portland", "ME"): 3, ("Portland", "OR"): 2}


def test_recovery_reads_progress_and_catch_up_from_the_commit_log():
    commits = [
        Commit("a", 100.0, 9, 1),
        Commit("b", 101.0, 9, 1),
        Commit("a", 110.0, 49, 1),
        Commit("b", 112.0, 29, 1),
        Commit("b", 115.0, 49, 1),
    ]
    assert recovery_step.committed_progress(commits, ("a", "b")) == [(101.0, 9), (110.0, 9), (112.0, 29), (115.0, 49)]
    assert latency.covered_at(commits, ("a", "b"), 29, after=105.0) == 112.0
    assert latency.covered_at(commits, ("a", "b"), 49, after=105.0) == 115.0
    assert latency.covered_at(commits, ("a", "b"), 50, after=105.0) is None


def test_a_kill_in_the_latency_steps_last_pass_gives_the_recovery_rows(tmp_path):
    """The latency step's follow run replayed lines 40-79 as its last pass (its replay
    starting at epoch 1000) and was killed at 1004, restarted at 1004.5: times since that
    replay, the backlog, the timeline from the state at its start, and a duplicated line."""
    from experiments.harness.follow import FollowRun
    from experiments.harness.measure import Measurement
    from shared.commit_log import CommitLog, commit_log_path
    from shared.export import export_path
    from tests.synthetic_run import write_replay_log

    workdir = tmp_path / "w"
    write_replay_log(
        workdir / "replay-last",
        [{"step": 0, "rate": 10.0, "first_seq": 40, "lines": 40, "start_s": 0.0}],
        [(40, 49, 0.0), (50, 59, 1.0), (60, 69, 2.0), (70, 79, 3.0)],
    )
    log = CommitLog(commit_log_path(workdir, "kappa"))
    for query, max_seq, at in (
        ("a", 39, 990.0),
        ("b", 39, 991.0),
        ("a", 59, 1003.0),
        ("b", 59, 1010.0),
        ("a", 79, 1012.0),
        ("b", 79, 1013.0),
    ):
        log.append(query, max_seq, 1, visible_at=at)
    oracle = tmp_path / "oracle"
    oracle.mkdir()
    (oracle / "city_revenue.csv").write_text("city,state,revenue,order_lines\nPortland,ME,10.00,80\n")
    produced = export_path(workdir, "kappa", "city_revenue")
    produced.parent.mkdir(parents=True)
    produced.write_text("city,state,revenue,order_lines\nPortland,ME,10.10,81\n")
    live = FollowRun(
        "kappa",
        workdir,
        workdir / "landing",
        workdir / "replay",
        ("a", "b"),
        measurement=Measurement(60.0, 90.0, 1000.0, 0, 9),
        last_replay_dir=workdir / "replay-last",
        killed_at=1004.0,
        restarted_at=1004.5,
    )
    run = RunFolder.create(tmp_path / "reports", "quick")
    rows = recovery_step.from_follow_run(run, live, oracle, 80, PROFILES["quick"], 1.5, 7010)
    figures = {(m.metric, m.query): m.value for m in rows}
    assert figures[("first_commit_s", "")] == 3.0  # the first commit with a line of the last pass
    assert (figures[("kill_at_s", "")], figures[("restart_at_s", "")]) == (4.0, 4.5)
    assert figures[("first_commit_after_restart_s", "")] == 5.5
    assert figures[("catch_up_s", "")] == 8.5  # every unit was due before the restart: up to seq 79, at 1013
    assert (figures[("lost_lines", "city_revenue")], figures[("duplicated_lines", "city_revenue")]) == (0, 1)
    assert figures[("lost_lines", "daily_revenue")] is None  # no export of it: said, not counted as zero
    assert faults.LAST_PASS_KILL in next(m.detail for m in rows if m.metric == "kill_at_s")
    assert all(m.repeat == 1 and m.rate_lps == PROFILES["quick"].recovery_rate_lps for m in rows)
    timeline = (run.path / "recovery" / "kappa-r1.csv").read_text().splitlines()
    committed = [line for line in timeline if line.startswith("committed")]
    assert committed == [
        "committed,0.0,39",
        "committed,3.0,39",
        "committed,10.0,59",
        "committed,12.0,59",
        "committed,13.0,79",
    ]


def test_poison_files_in_a_replay_are_timed_and_their_quarantined_lines_counted(tmp_path):
    """A replay that landed a stray binary file (lines 10-13, no valid line) and a
    Windows-1252 export (lines 14-23): each is timed from its landing to every query's
    commits covering it; the build quarantined one poison line fewer than the oracle."""
    from experiments.harness import faults
    from shared.commit_log import CommitLog, commit_log_path
    from shared.export import results_dir
    from tests.synthetic_run import write_replay_log

    source = tmp_path / "input"
    source.mkdir()
    (source / "_manifest.json").write_text(json.dumps({"options": {"windows_1252_files": 1, "binary_files": 1}}))
    for name in ("sales_0000.csv", "sales_0000_stray.csv", "sales_0001.csv"):
        (source / name).write_text("")
    replay = tmp_path / "replay"
    write_replay_log(
        replay,
        [{"step": 0, "rate": 10.0, "first_seq": 0, "lines": 24, "start_s": 0.0}],
        [(0, 9, 0.0), (10, 13, 1.0), (14, 23, 2.0)],
    )
    rows = list(csv.reader(open(replay / "replay_log.csv")))
    for row, name in zip(rows[1:], ("sales_0000.csv", "sales_0000_stray.csv", "sales_0001.csv")):
        row[4] = name
    csv.writer(open(replay / "replay_log.csv", "w", newline="")).writerows(rows)
    log = CommitLog(commit_log_path(tmp_path, "kappa"))
    for query, max_seq, at in (
        ("a", 9, 1000.5),
        ("b", 9, 1000.6),
        ("a", 13, 1001.5),
        ("a", 23, 1003.0),
        ("b", 23, 1004.0),
    ):  # b has no commit for the stray file: the next one covers it
        log.append(query, max_seq, 1, visible_at=at)
    for folder, not_utf8 in ((results_dir(tmp_path, "kappa"), 7), (tmp_path / "oracle", 8)):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "_accounting.json").write_text(
            json.dumps({"quarantine": {"not_utf8": not_utf8, "too_long": 1, "bad_quantity": 3}})
        )
    metrics = faults.poison_outcomes(
        "kappa",
        replay,
        source,
        commit_log_path(tmp_path, "kappa"),
        ("a", "b"),
        tmp_path,
        tmp_path / "oracle",
        dict(repeat=1),
    )
    figures = {(m.metric, m.query): m.value for m in metrics}
    assert figures[("landed_at_s", "poison file: sales_0000_stray.csv")] == 1.0
    assert figures[("covered_s", "poison file: sales_0000_stray.csv")] == 3.0  # b's commit at 1004
    assert figures[("covered_s", "poison file: sales_0001.csv")] == 2.0
    assert "Windows-1252" in next(m.detail for m in metrics if m.query == "poison file: sales_0001.csv")
    both = "poison files: sales_0000_stray.csv, sales_0001.csv"
    assert (figures[("lost_lines", both)], figures[("duplicated_lines", both)]) == (1, 0)
    assert all(m.step == faults.STEP and m.build == "kappa" for m in metrics)


def test_a_latency_run_that_never_reached_its_kill_is_a_problem_row(tmp_path):
    from experiments.harness.follow import FollowRun

    live = FollowRun(
        "lambda",
        tmp_path,
        tmp_path / "landing",
        tmp_path / "replay",
        ("a",),
        problem="lambda's commits did not cover pass 2",
    )
    rows = recovery_step.from_follow_run(
        RunFolder.create(tmp_path / "r", "quick"), live, tmp_path, 10, PROFILES["quick"], 1.0, 1
    )
    assert [(m.metric, m.value) for m in rows] == [("problem", None)] and "pass 2" in rows[0].detail


def test_the_recovery_replay_rides_on_the_latency_runs_only_when_both_steps_run():
    from experiments.harness.profiles import LIVE_BUILDS
    from experiments.harness.runner import estimates, killed_live

    standard = PROFILES["standard"]
    assert killed_live(standard, STEPS, LIVE_BUILDS, LIVE_BUILDS) == ("kappa", "lambda", "dstream")
    assert killed_live(standard, ("latency", "recovery"), ("passthrough", "dstream"), LIVE_BUILDS) == ("dstream",)
    assert killed_live(standard, ("recovery",), LIVE_BUILDS, LIVE_BUILDS) == ()
    assert killed_live(dataclasses.replace(standard, recovery_on_live=False), STEPS, LIVE_BUILDS, LIVE_BUILDS) == ()
    plan = estimates(standard, STEPS, (), LIVE_BUILDS, LIVE_BUILDS)
    assert not any(task.startswith("recovery") for task in plan)  # no follow run of its own
    alone = estimates(standard, ("recovery",), (), LIVE_BUILDS, LIVE_BUILDS)
    assert sorted(alone) == ["recovery dstream r1", "recovery kappa r1", "recovery lambda r1"]
    assert standard.live_input_rows(True) == standard.live_rows + standard.recovery_lines
    assert standard.recovery_lines == 800  # 8 s at 100 lines/s


def test_the_search_ramp_rides_on_the_latency_runs_only_when_both_steps_run():
    from experiments.harness.profiles import LIVE_BUILDS
    from experiments.harness.runner import LIVE_START_STOP_S, estimates, probed_live, search_on_live

    standard = PROFILES["standard"]
    assert standard.probe_rates() == [300.0, 400.0]  # the ladder above the latency rates
    assert standard.probe_lines() == [6_000, 8_000]  # 20 s at 300 and at 400 lines/s
    assert probed_live(standard, STEPS, LIVE_BUILDS) == ("kappa", "lambda", "dstream")
    assert probed_live(standard, STEPS, ("passthrough", "dstream")) == ("dstream",)
    assert probed_live(standard, STEPS, ("passthrough",)) == ()
    assert not search_on_live(standard, ("latency",)) and not search_on_live(standard, ("throughput",))
    assert not search_on_live(dataclasses.replace(standard, search_max_lps=200.0), STEPS)  # nothing above 200
    plan = estimates(standard, STEPS, (), LIVE_BUILDS, LIVE_BUILDS)
    unprobed = estimates(standard, tuple(s for s in STEPS if s != "throughput"), (), LIVE_BUILDS, LIVE_BUILDS)
    assert plan["latency kappa r1"] - unprobed["latency kappa r1"] == pytest.approx(40.0)
    # no ramp run of their own: one bisection run each (the probe pass brackets within 2x), and a
    # doubling run first for the pass-through, judged on the latency rates alone
    one_rate = {
        b: LIVE_START_STOP_S[b] + standard.start_warmup_s + standard.search_step_seconds
        for b in ("kappa", "passthrough")
    }
    assert plan["throughput kappa r1"] == pytest.approx(one_rate["kappa"])
    assert plan["throughput passthrough r1"] == pytest.approx(
        2 * one_rate["passthrough"] + 2 * standard.search_step_seconds
    )
    assert plan["latency passthrough r1"] == unprobed["latency passthrough r1"]  # judged on the latency rates
    assert standard.live_input_rows(True, True) == standard.live_rows + 14_000 + standard.recovery_lines


def test_the_probe_pass_is_the_ramp_of_one_search_and_no_follow_run_is_started(tmp_path, monkeypatch):
    """The latency step's follow run replayed the ramp above its rates (the probe pass) once:
    one search judges it with the latency step's first pass."""
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    for repeat in (1, 2):  # too few commits at every latency rate: none judged
        _latency_rows(
            run, "kappa", repeat, {50.0: (0.0, 5.0, 0), 100.0: (0.0, 5.0, 0), 200.0: (0.0, 5.0, 0)}, commits=2
        )
        _latency_rows(run, "passthrough", repeat, {50.0: (0.0, 0.5, 0), 100.0: (0.0, 0.5, 0), 200.0: (0.0, 0.5, 0)})
    run.append(
        [
            Metric(
                "throughput",
                "kappa",
                "bounded",
                1,
                "1 = bounded",
                query=ALL_QUERIES,
                repeat=1,
                rate_lps=400.0,
                detail=f"{throughput_step.PROBE_PASS}: lag of its 6 commits ...",
            )
        ]
    )
    probes = []
    monkeypatch.setattr(
        throughput_step, "_probe", lambda run_, follower, rates, label, *args: probes.append((label, rates)) or ([], [])
    )
    followers = {name: type("F", (), {"name": name})() for name in ("passthrough", "kappa")}
    throughput_step.run_throughput(
        run, followers, ("passthrough", "kappa"), PROFILES["standard"], tmp_path, tmp_path, None, lambda m: None
    )
    # no ramp run of their own (the pass-through had no probe pass: judged on the latency rates);
    # bounded at every rate judged, each goes on doubling past it in one run (judged nothing here)
    assert probes == [("double-1", [400.0, 800.0, 1600.0]), ("double-1", [800.0, 1600.0])]  # to standard's limit
    knees = {(r["build"], r["repeat"]): r for r in run.metrics() if r["metric"] == "sustainable_lps"}
    assert set(knees) == {("passthrough", "1"), ("kappa", "1")}  # one search: the probe ran once
    assert knees[("kappa", "1")]["value"] == "400" and "at least this" in knees[("kappa", "1")]["detail"]
    assert knees[("passthrough", "1")]["value"] == "200"
    assert "up to the highest rate tried (200 lines/s)" in knees[("passthrough", "1")]["detail"]
    assert "up to the highest rate tried (400 lines/s)" in knees[("kappa", "1")]["detail"]
    verdicts = sorted(
        (float(r["rate_lps"]), r["value"])
        for r in run.metrics()
        if r["step"] == "throughput" and r["metric"] == "bounded" and r["repeat"] == "1" and r["build"] == "kappa"
    )
    assert verdicts == [(50.0, ""), (100.0, ""), (200.0, ""), (400.0, "1")]


def test_late_window_metrics_count_pairs_against_the_truth(tmp_path):
    truth, build = tmp_path / "oracle", tmp_path / "build.csv"
    truth.mkdir()
    header = "window_start,window_end,revenue,order_lines\n"
    (truth / "window_revenue.csv").write_text(
        header + "2019-01-01 00:00:00,2019-01-01 01:00:00,9.00,3\n2019-01-01 00:30:00,2019-01-01 01:30:00,4.00,2\n"
    )
    build.write_text(
        header + "2019-01-01 00:00:00,2019-01-01 01:00:00,6.00,2\n2019-01-01 00:30:00,2019-01-01 01:30:00,4.00,2\n"
    )
    rows = {m.metric: m.value for m in window_metrics("kappa", truth, build, "", {"repeat": 1})}
    assert rows == {"window_lines_missing": 1, "window_lines_extra": 0, "window_rows_differing": 2}


# ---------------------------------------------------------------------------------------
# Code size
# ---------------------------------------------------------------------------------------


def test_code_lines_leave_out_blanks_comments_and_docstrings():
    source = textwrap.dedent('''\
        """Module doc,
        two lines."""
        # a comment
        x = 1  # code with a comment

        def f():
            """Function doc."""
            return """a string
        that is code"""
        ''')
    assert code_size.count_lines(source) == (4, 4)
    assert code_size.count_statements(source) == 3  # x = 1, def f():, return ...


def test_a_statement_counts_once_however_it_is_wrapped():
    flat = "total = add(1, 2)\nif total:\n    print(total)\n"
    wrapped = "total = add(\n    1,\n    2,\n)  # one call\nif total:\n    print(\n        total\n    )\n"
    assert code_size.count_statements(flat) == code_size.count_statements(wrapped) == 3
    assert code_size.count_lines(wrapped)[0] == 8


def test_a_build_counts_the_shared_modules_it_imports_through_each_other(tmp_path):
    for path, text in {
        "kappa/app.py": "from shared import a\nimport shared.b as b\n",
        "lambda/app.py": "from lambda_arch.views import v\n",
        "lambda/views.py": "v = 1\n",
        "legacy_dstream/app.py": "def f():\n    from shared.c import g\n",
        "shared/__init__.py": "",
        "shared/a.py": "from shared.d import x\n",
        "shared/b.py": "y = 2\n",
        "shared/c.py": "g = 3\n",
        "shared/d.py": "x = 4\n",
        "shared/unused.py": "z = 5\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    sizes = code_size.build_sizes(tmp_path)
    assert sorted(f.path.stem for f in sizes["kappa"]["shared"]) == ["__init__", "a", "b", "d"]
    assert sizes["lambda"]["shared"] == [] and sum(f.code for f in sizes["lambda"]["own"]) == 2
    assert sorted(f.path.stem for f in sizes["dstream"]["shared"]) == ["__init__", "c"]  # the package runs too
    rows = {(m.build, m.metric, m.query): m.value for m in code_size.code_size_metrics(tmp_path)}
    assert rows[("kappa", "code_lines", "shared")] == 3 and rows[("shared", "code_lines", "shared")] == 5


# ---------------------------------------------------------------------------------------
# The report sections of these steps
# ---------------------------------------------------------------------------------------


@pytest.fixture
def full_run(tmp_path):
    run = write_run(tmp_path / "reports", repeats=1)
    add_other_steps(run)
    return run


def test_every_step_has_its_section_chart_and_finding(full_run):
    write_report(full_run.path)
    html = (full_run.path / "report.html").read_text()
    markdown = (full_run.path / "report.md").read_text()
    for name in ("throughput", "reprocessing", "recovery", "soak"):
        assert (full_run.path / "charts" / f"{name}.png").stat().st_size > 1000
        assert re.search(rf'<h2 id="{name}">', html) and f"charts/{name}.png" in markdown
    assert '<h2 id="cost-model">' in html and "charts/cost_model.png" in markdown
    assert "dstream at 200,000 lines: exit code 1" in html
    assert "Not measured in this version" not in markdown and "Not measured in this version" not in html
    assert "| kappa | 200 | 400 |" in markdown  # the knee and the first unbounded rate
    assert "<script>" not in html and HOSTILE not in html  # the why of each rate is escaped
    text = " ".join(D.findings(D.RunData.load(full_run.path)))
    assert "kappa 200" in text and "passthrough >= 400" in text, text  # per repeat: the knee, or bounded up to the top
    assert "Recovery of dstream after SIGKILL" in text and "lost 7" in text
    assert "met 3 (a stray binary file) and" in text and "went on past 2 of them (not past them: dstream)" in text
    assert "kappa's window_revenue lacks 180 (line, window) pairs" in text and "0 after its batch run" in text


def test_the_figures_of_the_new_sections_are_the_rows(full_run):
    data = D.RunData.load(full_run.path)
    reprocessing = {(r[0], r[1]): r for r in D.reprocess_table(data)["table"]}
    assert reprocessing[("kappa", "4,000")][3] == f"{30 + 4000 * 0.006:.1f}"
    assert reprocessing[("lambda", "4,000")][2:4] == ["-", f"{30 + 4000 * 0.004:.1f}"]  # no first run: a follow run
    injected = {(r[0], r[2].split(" (")[0]): r for r in D.faults_table(data)["table"]}
    assert injected[("dstream", "SIGKILL")][3:] == ["10.0", "restarted, caught up", "7", "0", "27.0"]
    assert injected[("kappa", "poison file: sales_0001_stray.csv")][3:] == [
        "1.5",
        "quarantined, went on",
        "0",
        "0",
        "2.5",
    ]
    assert injected[("dstream", "poison file: sales_0001_stray.csv")][4] == "not passed by the end of the run"
    # lambda's landed at 9.0 s, was killed at 9.0 s and covered at 11.5 s: the outcome says so
    assert (
        injected[("lambda", "poison file: sales_0001_stray.csv")][4]
        == "quarantined, went on after the SIGKILL's restart"
    )
    recovery = {r[0]: r for r in D.recovery_table(data)["table"]}
    assert recovery["dstream"][5] == "7" and recovery["kappa"][5] == "0" and recovery["kappa"][4] == "25.0"
    late = {r[0]: r for r in D.late_table(data)["table"]}
    assert late["lambda"][2] == "90" and late["lambda"][5] == "0" and late["dstream"][-1] == "not applicable"
    sizes = {r[0]: r for r in D.code_size_table(data)["table"]}
    own = next(m for m in data.select("code_size", "code_lines", "kappa", "build-specific"))
    assert sizes["kappa"][1] == D.fmt(float(own["value"]), 0)


def test_the_cost_model_fits_each_systems_drains_at_every_size_and_ranks_by_the_cost_of_a_line(tmp_path):
    run = RunFolder.create(tmp_path, "standard")
    run.write_environment({"spark_master": "local[2]"})
    run.append([Metric("drain", "oracle", "raw_lines", 2_000, "lines", input_lines=2_000)])
    for system, (fixed, per_million) in COST_LINES.items():  # the drain step's runs, on the line too
        for repeat in (1, 2, 3):
            wall = fixed + per_million * 2_000 / 1e6
            run.append(
                [
                    Metric("drain", system, "wall_s", wall, "s", repeat=repeat, input_lines=2_000),
                    Metric("drain", system, "exit_code", 0, "code", repeat=repeat, input_lines=2_000),
                ]
            )
    run.append(cost_rows())
    run.append(cost_model.fit_metrics(run.metrics(), DRAIN_SYSTEMS))
    data = D.RunData.load(run.path)
    models = D.cost_models(data)
    assert list(models) == ["spark_batch", "duckdb", "kappa", "lambda"]  # dstream: one size left, no line
    assert models["kappa"].fixed_s == pytest.approx(75.0) and models["kappa"].per_line_us == pytest.approx(90)
    assert models["kappa"].sizes == [2_000, 20_000, 200_000] and len(models["kappa"].points) == 5
    table = {row[0]: row for row in D.cost_table(data)["table"]}
    assert table["lambda"][1:5] == ["5 (2,000, 20,000, 200,000 lines)", "100.0", "60.0", "90.0"]
    assert table["lambda"][5:] == ["- to 700", "0%"]  # the drain rows here carry no memory
    assert D.cost_failures(data) == ["dstream at 200,000 lines: exit code 1 (see logs/x.log)"]
    finding = D.cost_finding(data)
    assert "lambda 60.0 s, kappa 90.0 s (baselines: spark_batch 40.0 s, duckdb 6.0 s); cheapest per line: lambda" in (
        finding or ""
    )
    assert "the fixed cost is 100% of lambda's time, 100% of kappa's time, so the drain ranking reads start-up" in (
        finding or ""
    )


def test_a_run_without_the_new_steps_names_them_as_not_measured(tmp_path):
    run = write_run(tmp_path / "reports", repeats=1)
    names = [name for name, _ in D.not_measured(D.RunData.load(run.path))]
    assert names == [
        "Cost model",
        "Sustainable throughput",
        "Reprocessing",
        "Recovery and faults",
        "Late data",
        "Code size",
        "Soak",
    ]


def _latency_rows(run, build, repeat, figures, commits=10, step_seconds=10):
    """figures: rate -> (lag trend, median lag, uncovered), written as the latency step writes
    them: the figures, then its verdict on each rate."""
    rows = []
    for rate, (trend, lag, uncovered) in figures.items():
        rows += [
            Metric("latency", build, name, value, "s", query=ALL_QUERIES, repeat=repeat, rate_lps=rate)
            for name, value in (
                ("commit_lag_trend_s_per_min", trend),
                ("commit_lag_p50_s", lag),
                ("commit_lag_rising_p", 0.001),
                ("commits_measured", commits),
                ("units_measured", 10),
                ("units_uncovered", uncovered),
            )
        ]
    verdicts = live_figures.judge(rows, list(figures), step_seconds)
    run.append(rows + live_figures.verdict_rows("latency", build, verdicts, repeat))


def test_the_search_starts_from_the_latency_steps_rates_and_bisects(tmp_path, monkeypatch):
    import dataclasses

    from experiments.harness.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    _latency_rows(run, "kappa", 1, {100.0: (0.1, 1.0, 0), 200.0: (0.2, 1.0, 0), 400.0: (50.0, 9.0, 0)})
    probes = []

    def probe(run_, follower, rates, label, *args):
        probes.append((label, rates))
        return [], [live_figures.Judged(r, True, "probe") for r in rates]

    monkeypatch.setattr(throughput_step, "_probe", probe)
    profile = dataclasses.replace(PROFILES["quick"], search_bisections=2, step_seconds=10)
    follower = type("F", (), {"name": "kappa"})()
    verdicts = throughput_step.search(run, follower, profile, tmp_path, tmp_path, None, 1, lambda message: None)
    # no ramp: the latency step found 400 unbounded; one bisection brackets the knee within 1.5x
    assert probes == [("bisect-1", [300.0])]
    assert throughput_step.knee(verdicts) == (300.0, 400.0)
    judged = {float(r["rate_lps"]): r for r in run.metrics() if r["step"] == "throughput" and r["metric"] == "bounded"}
    assert judged[400.0]["value"] == "0" and judged[400.0]["detail"].startswith("latency step, repeat 1")


def test_the_search_ramps_above_the_latency_rates_only_when_all_were_bounded(tmp_path, monkeypatch):
    from experiments.harness.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    _latency_rows(run, "passthrough", 1, {50.0: (0.0, 1.0, 0), 100.0: (0.0, 1.0, 0), 200.0: (0.0, 1.0, 0)})
    probes = []
    monkeypatch.setattr(
        throughput_step,
        "_probe",
        lambda run_, follower, rates, label, *args: (
            probes.append((label, rates)) or ([], [live_figures.Judged(r, False, "probe") for r in rates])
        ),
    )
    follower = type("F", (), {"name": "passthrough"})()
    profile = dataclasses.replace(PROFILES["quick"], search_start_lps=100.0, search_max_lps=400.0)
    verdicts = throughput_step.search(run, follower, profile, tmp_path, tmp_path, None, 1, lambda m: None)
    assert probes == [("ramp", [400.0])]  # the ramp is 100-400: only 400 is above 200
    assert throughput_step.knee(verdicts) == (200.0, 400.0)


def test_the_search_doubles_past_its_ramp_until_a_rate_is_unbounded_then_bisects(tmp_path, monkeypatch):
    """No cap: bounded at every latency rate, the search doubles on (three rates a run) until
    one is unbounded, then bisects until the bracket is within 1.5x."""
    import dataclasses

    from experiments.harness.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    _latency_rows(run, "passthrough", 1, {50.0: (0.0, 1.0, 0), 100.0: (0.0, 1.0, 0), 200.0: (0.0, 1.0, 0)})
    probes = []

    def probe(run_, follower, rates, label, *args):  # this build keeps up to 2,500 lines/s
        probes.append((label, rates))
        return [], live_figures.judge_values(
            lambda name, rate: {
                "units_uncovered": 0,
                "commits_measured": 9,
                "commit_lag_p50_s": 1.0,
                "commit_lag_rising_p": 0.5 if rate <= 2500 else 0.0,
                "commit_lag_trend_s_per_min": 0.0 if rate <= 2500 else 60.0,
            }[name],
            rates,
            30.0,
        )

    monkeypatch.setattr(throughput_step, "_probe", probe)
    profile = dataclasses.replace(PROFILES["standard"], search_bisections=3, search_limit_lps=51_200.0)
    follower = type("F", (), {"name": "passthrough"})()
    verdicts = throughput_step.search(
        run, follower, profile, tmp_path, tmp_path, None, 1, lambda m: None, probed_on_live=True
    )
    assert probes == [
        ("double-1", [400.0, 800.0, 1600.0]),
        ("double-2", [3200.0, 6400.0, 12800.0]),
        ("bisect-1", [2400.0]),
    ]  # 1,600-3,200 is 2x apart; 2,400-3,200 within 1.5x
    lower, upper = throughput_step.knee(verdicts)
    assert (lower, upper) == (2400.0, 3200.0) and upper / lower <= KNEE_RATIO


def test_reprocessing_reuses_the_last_drain_that_exited_cleanly(tmp_path):
    from experiments.harness.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    work = tmp_path / "work" / "reprocessing"
    for repeat, code in ((1, 0), (2, 0), (3, 1)):  # repeat 3 failed: repeat 2 is the one to reuse
        (work.parent / "drains" / f"kappa-r{repeat}").mkdir(parents=True)
        run.append(
            [
                Metric("drain", "kappa", "exit_code", code, "code", repeat=repeat),
                Metric("drain", "kappa", "wall_s", 50.0 + repeat, "s", repeat=repeat),
                Metric("drain", "kappa", "cpu_s", 90.0 + repeat, "s", repeat=repeat),
            ]
        )
    run.append(
        [
            Metric("drain", "lambda", "exit_code", 0, "code", repeat=1),
            Metric("drain", "lambda", "wall_s", 40.0, "s", repeat=1),
            Metric("drain", "lambda", "cpu_s", 70.0, "s", repeat=1),
        ]
    )  # no workdir kept: not reused
    found = reprocess_step.drains_done(run, work)
    assert set(found) == {"kappa"}
    assert found["kappa"] == reprocess_step.DrainDone(work.parent / "drains" / "kappa-r2", 2, 52.0, 92.0)


def test_a_pass_the_latency_step_did_not_run_gets_no_ramp_of_its_own(tmp_path, monkeypatch):
    """Kappa's latency run had two passes, Lambda's one (it had not caught up with the
    first): the search judges each pass that ran and starts no follow run for the missing one."""
    from experiments.harness.run_folder import RunFolder

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    bounded_below_200 = {50.0: (0.0, 1.0, 0), 100.0: (0.0, 1.0, 0), 200.0: (0.0, 1.0, 3)}
    for repeat in (1, 2):
        _latency_rows(run, "kappa", repeat, bounded_below_200)
    _latency_rows(run, "lambda", 1, bounded_below_200)
    probes = []
    monkeypatch.setattr(
        throughput_step,
        "_probe",
        lambda run_, follower, rates, label, *args: probes.append((follower.name, label)) or ([], []),
    )
    followers = {name: type("F", (), {"name": name})() for name in ("kappa", "lambda")}
    throughput_step.run_throughput(
        run, followers, ("kappa", "lambda"), PROFILES["quick"], tmp_path, tmp_path, None, lambda m: None
    )
    assert probes == []  # every judged ladder had an unbounded rate; the missing pass starts nothing
    knees = {(r["build"], r["repeat"]): r for r in run.metrics() if r["metric"] == "sustainable_lps"}
    assert set(knees) == {("kappa", "1"), ("kappa", "2"), ("lambda", "1"), ("lambda", "2")}
    assert knees[("kappa", "2")]["value"] == "100" and knees[("lambda", "1")]["value"] == "100"
    assert knees[("lambda", "2")]["value"] == "" and "did not run" in knees[("lambda", "2")]["detail"]


def test_a_cost_line_that_does_not_rise_is_not_ranked(tmp_path):
    run = RunFolder.create(tmp_path, "standard")
    run.write_environment({"spark_master": "local[2]"})
    for system, walls in (("kappa", (30.0, 29.0)), ("lambda", (20.0, 40.0))):
        for lines, wall in zip((2_000, 200_000), walls):
            run.append(
                [
                    Metric("cost", system, "wall_s", wall, "s", repeat=1, input_lines=lines),
                    Metric("cost", system, "exit_code", 0, "code", repeat=1, input_lines=lines),
                ]
            )
    run.append(cost_model.fit_metrics(run.metrics(), ("kappa", "lambda")))
    finding = D.cost_finding(D.RunData.load(run.path)) or ""
    assert "lambda 101.0 s; cheapest per line: lambda" in finding
    assert "kappa: time did not grow with the input, no cost per line to rank" in finding
