"""`lab experiments`' latency step: each build (and the harness pass-through) following a
landing directory in its own process while the open-loop replayer feeds it a stepped load,
one rate after another; latency per unit and query read from the build's commit log.

Definitions (shared/DESIGN.md, "Measurement definitions"): a unit is one landed file; its
latency for a query is the first commit of that query whose `max_seq` covers the unit's last
line, minus the unit's *intended* emission time (open loop: a replayer that falls behind
cannot hide latency). For Lambda the commit log is what its serving layer can answer. The
`all` row of a unit is the latest over the build's queries: when its last result showed it.
Every live run starts with a warm-up (`start_warmup_s` at half the lowest rate) whose units
are in no figure: a build's first micro-batches plan its queries, create its tables and
compile its code after it says it is ready. In this step the warm-up is a pass of its own,
committed before the first measured pass starts. Units due in the first `warmup_s` seconds
of each rate step are left out of that step's figures (the warm-up, stated in the report); a
unit no commit covered before the run was stopped is counted as uncovered, never dropped
silently.

Percentiles are nearest-rank (numpy's `inverted_cdf`): p95 is a latency some unit had.
Whether latency stayed bounded at a rate is read from the commits, not from the units: a
micro-batch makes many units visible at once, so unit latencies are a saw-tooth of the batch
period, and a trend over one or two teeth follows where the batches fall, not a backlog. The
lag of a commit is its time minus the intended time of the newest unit it made visible (how
fresh the results it published were); its trend over the step's commits (least squares,
seconds of lag gained per minute, and a Mann-Kendall test of whether it rose commit after
commit) says whether a backlog built up (`bounded`), and a step that spans too few of the
build's commits is not judged.
"""
from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from experiments.harness.drain_step import cost_metrics, equivalence_metrics
from experiments.harness.equivalence import compare_build
from experiments.harness import faults
from experiments.harness.follow import Follower, FollowRun, LastPass, Pass, run_follow
from experiments.harness.latency import EmittedUnit, latest_over_queries, read_emitted_units, unit_latencies
from experiments.harness.profiles import ARCHITECTURES
from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.inputs.replay import LOG_JSON_NAME, read_replay_summary
from experiments.stats import percentile, rising_p, trend_per_minute
from shared.commit_log import read_commits

STEP = "latency"
UNIT_COLUMNS = ("unit", "first_seq", "last_seq", "step", "rate_lps", "intended_s", "warmup", "query", "latency_s")
PERCENTILES = (("latency_p50_s", 50), ("latency_p95_s", 95), ("latency_p99_s", 99), ("latency_max_s", 100))


# Latency stayed bounded at a rate unless a unit never became visible or the lag of the step's
# commits kept rising: rose by more than RISE_FLOOR_S, or RISE_SHARE of their median lag if
# larger, over the step (least squares), and rose commit after commit (a Mann-Kendall test:
# Kendall's tau of lag against time, one-sided p below RISING_P). The second condition keeps
# two kinds of noise out: a build's lag swings by about one micro-batch from commit to commit
# (Kappa's between 8.5 and 17.4 s within one step), and a one-off stall lifts every later lag
# once (the pass-through's 0.3 -> 1.3 s at 50 lines/s in one run) without a backlog building.
RISE_FLOOR_S = 1.0
RISE_SHARE = 0.2
RISING_P = 0.05
# Fewer commits than this in a step: too few to see a trend in (at 4, lags rising at every
# commit give p = 1/24), so the rate is not judged; a step must span several of the build's commits.
MIN_COMMITS = 4
# Lag falling by this share of a second or more per second of the step: the commits were
# catching up with units that waited for the same late commit (the build was starting or
# stalled, not processing), so the step says nothing about the rate; it is not judged.
STALL_SHARE = 0.9


def bounded(trend_s_per_min: float | None, rising_p: float | None, lag_p50_s: float | None, commits: int,
            uncovered: int, step_seconds: float) -> tuple[bool | None, str]:
    """Did latency stay bounded over one rate step? (True, False, or None when there is too
    little to judge) and the reason in words. The step's commits (CommitLag): how many, their
    lag's least-squares trend, the p of its rising (`rising_p`) and their median lag."""
    if uncovered:
        return False, f"{uncovered} units never visible before the run was stopped"
    if commits < MIN_COMMITS or trend_s_per_min is None or rising_p is None:
        return None, (f"{commits} commit{'s' if commits != 1 else ''} made its units visible: fewer than "
                      f"{MIN_COMMITS}, too few for a trend (the step must span several of the build's micro-batches)")
    if trend_s_per_min <= -STALL_SHARE * 60:
        return None, (f"lag trend {trend_s_per_min:+.2f} s/min: the commits caught up with units that waited for "
                      f"the same late commit (the build was starting or stalled), so the step says nothing about "
                      f"the rate")
    rise = trend_s_per_min * step_seconds / 60
    limit = max(RISE_FLOOR_S, RISE_SHARE * (lag_p50_s or 0.0))
    rising = rise > limit and rising_p < RISING_P
    words = (f"lag of its {commits} commits {'kept rising' if rising else 'did not keep rising'}: "
             f"{rise:+.2f} s over the {step_seconds:g} s step ({trend_s_per_min:+.2f} s/min; a backlog adds more "
             f"than {limit:.2f} s, {RISE_FLOOR_S:g} s or {RISE_SHARE:.0%} of the median lag {lag_p50_s or 0:.2f} s) "
             f"and Kendall's p {rising_p:.3f} (rising commit after commit below {RISING_P:g})")
    return not rising, words


@dataclass(frozen=True)
class UnitRow:
    unit: int
    first_seq: int
    last_seq: int
    step: int
    rate_lps: float
    intended_s: float     # since the replay's start
    warmup: bool
    query: str
    latency_s: float | None


@dataclass(frozen=True)
class CommitLag:
    """A commit that made units visible (latest over the queries), as the units show it."""
    at_s: float       # since the replay's start
    lag_s: float      # at_s minus the intended time of the newest unit it made visible
    step: int         # that newest unit's rate step
    rate_lps: float
    warmup: bool      # that newest unit was in a warm-up


# Units whose results became visible within this of each other were made visible by one commit
# (the unit rows keep milliseconds; a build's commits are a second or more apart).
SAME_COMMIT_S = 0.05


def commit_lags(rows: Sequence[UnitRow]) -> list[CommitLag]:
    """The commits behind the `all` rows of one replay, in time order. A commit belongs to the
    step of the newest unit it made visible (not of every unit it covered: a commit that also
    finishes the step before is that much fresher than its oldest unit shows)."""
    shown = sorted(((r.intended_s + r.latency_s, r) for r in rows
                    if r.query == ALL_QUERIES and r.latency_s is not None), key=lambda pair: pair[0])
    groups: list[list[tuple[float, UnitRow]]] = []
    for at, row in shown:
        if groups and at - groups[-1][-1][0] <= SAME_COMMIT_S:
            groups[-1].append((at, row))
        else:
            groups.append([(at, row)])
    lags = []
    for group in groups:
        at = max(a for a, _ in group)
        newest = max((r for _, r in group), key=lambda r: r.intended_s)
        lags.append(CommitLag(round(at, 3), round(at - newest.intended_s, 4), newest.step, newest.rate_lps,
                              newest.warmup))
    return lags


def phase_of(unit: EmittedUnit, phases: list[dict]) -> dict:
    return next((p for p in reversed(phases) if p["first_seq"] <= unit.first_seq), phases[0])


def unit_rows(replay_dir: Path, commit_log: Path, queries: Sequence[str], warmup_s: float,
              warmup_steps: int = 0) -> list[UnitRow]:
    """One row per unit and query (and `all`), tagged with its rate step and warm-up: due in
    the first `warmup_s` of its step, or in one of the first `warmup_steps` steps."""
    summary = read_replay_summary(replay_dir)
    start = float(summary["start_epoch_s"])
    phases = summary.get("rate_steps") or [{"step": 0, "rate": summary.get("rate_lines_per_second") or 0,
                                             "first_seq": 0, "start_s": 0.0}]
    units = read_emitted_units(replay_dir)
    wanted = set(queries)
    pairs = unit_latencies(units, [c for c in read_commits(commit_log) if c.query in wanted])
    latest = latest_over_queries(pairs, units, queries)
    by_unit = {u.unit: u for u in units}
    rows = []

    def row(unit: EmittedUnit, query: str, latency: float | None) -> UnitRow:
        phase = phase_of(unit, phases)
        intended_s = unit.intended_at - start
        return UnitRow(unit.unit, unit.first_seq, unit.last_seq, int(phase["step"]), float(phase["rate"]),
                       round(intended_s, 3),
                       int(phase["step"]) < warmup_steps or intended_s - float(phase["start_s"]) < warmup_s, query,
                       None if latency is None else round(latency, 4))

    for pair in pairs:
        rows.append(row(by_unit[pair.unit], pair.query, pair.latency_s))
    for query in sorted(wanted - {p.query for p in pairs}):   # a query with no commit at all: every unit uncovered
        rows += [row(unit, query, None) for unit in units]
    rows += [row(unit, ALL_QUERIES, value) for unit, value in zip(units, latest)]
    return rows


def write_unit_rows(path: Path, rows: list[UnitRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(UNIT_COLUMNS)
        for r in rows:
            writer.writerow([r.unit, r.first_seq, r.last_seq, r.step, f"{r.rate_lps:g}", f"{r.intended_s:.3f}",
                             int(r.warmup), r.query, "" if r.latency_s is None else f"{r.latency_s:.4f}"])


def read_unit_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def latency_metrics(build: str, rows: list[UnitRow], repeat: int, input_lines: int, warmup_s: float,
                    step_name: str = STEP, warmup_steps: int = 0) -> list[Metric]:
    """Per rate step and query: percentiles over the measured units, counts, and (for `all`)
    the step's commits and their lag. `step_name`: the metrics.csv step the rows belong to;
    the first `warmup_steps` steps (the warm-up before the rates) have no rows."""
    metrics = []
    lags = commit_lags(rows)
    groups: dict[tuple[int, float, str], list[UnitRow]] = {}
    for r in rows:
        if r.step >= warmup_steps:
            groups.setdefault((r.step, r.rate_lps, r.query), []).append(r)
    for (step, rate, query), members in sorted(groups.items()):
        measured = [r for r in members if not r.warmup]
        covered = [r for r in measured if r.latency_s is not None]
        common = dict(query=query, repeat=repeat, input_lines=input_lines, rate_lps=rate)
        how = (f"rate step {step + 1 - warmup_steps}; {len(covered)} units after a {warmup_s:g} s warm-up; nearest rank"
               + ("; latest over queries per unit" if query == ALL_QUERIES else ""))
        if covered:
            values = [r.latency_s for r in covered]
            metrics += [Metric(step_name, build, name, round(percentile(values, q), 4), "s", detail=how, **common)
                        for name, q in PERCENTILES]
        metrics += [Metric(step_name, build, "units_measured", len(covered), "units", detail=how, **common),
                    Metric(step_name, build, "units_warmup", len(members) - len(measured), "units",
                           detail=f"due in the first {warmup_s:g} s of the step", **common),
                    Metric(step_name, build, "units_uncovered", len(measured) - len(covered), "units",
                           detail="no commit covered them before the run was stopped", **common)]
        if query == ALL_QUERIES:
            metrics += commit_metrics(step_name, build, [c for c in lags if c.step == step and not c.warmup], common)
    return metrics


def commit_metrics(step_name: str, build: str, lags: Sequence[CommitLag], common: dict) -> list[Metric]:
    """One rate step's commits: how many, their median lag, its trend and the p of its rising
    (what `bounded` judges)."""
    how = "commits that made the step's measured units visible; lag = commit time - newest unit's intended time"
    metrics = [Metric(step_name, build, "commits_measured", len(lags), "commits", detail=how, **common)]
    if lags:
        metrics.append(Metric(step_name, build, "commit_lag_p50_s", round(percentile([c.lag_s for c in lags], 50), 4),
                              "s", detail=how + "; nearest rank", **common))
    if len(lags) < MIN_COMMITS:   # a slope over fewer follows where the batches fell: no figure that reads as one
        return metrics
    times, values = [c.at_s for c in lags], [c.lag_s for c in lags]
    trend = trend_per_minute(times, values)
    if trend is not None:
        metrics.append(Metric(step_name, build, "commit_lag_trend_s_per_min", round(trend, 4), "s per min",
                              detail="least-squares slope of the commits' lag over the step", **common))
    metrics.append(Metric(step_name, build, "commit_lag_rising_p", round(rising_p(times, values), 5), "p",
                          detail="Mann-Kendall: one-sided p of Kendall's tau of the commits' lag against time",
                          **common))
    return metrics


def replayer_metrics(step: str, build: str, summary: dict, repeat: int, input_lines: int,
                     query: str = "") -> list[Metric]:
    """The replayer's own CPU and its lag behind the open-loop schedule, from one replay's summary."""
    return [Metric(step, build, "replayer_cpu_s", round(summary["cpu_seconds"], 3), "s", query=query, repeat=repeat,
                   input_lines=input_lines, detail="the replayer process's own CPU while it emitted"),
            Metric(step, build, "replay_lag_max_s", round(summary["lag_max_s"] or 0, 4), "s", query=query,
                   repeat=repeat, input_lines=input_lines,
                   detail="latest emission behind its intended time (counted in latency)")]


def run_metrics(run: FollowRun, repeat: int, input_lines: int, log: Path) -> list[Metric]:
    """The follow process's cost (rows of `repeat`), then per pass (repeat `repeat`, `repeat`
    + 1, ...) the replayer's own CPU and lag and Lambda's handoffs during it."""
    metrics = cost_metrics(STEP, run.build, run.cost, repeat, input_lines, log,
                           scope="the follow process from its start to the end of the measured passes (JVM start "
                                 "included; a probe or last pass after them and the stop not)")
    starts = []
    for number, replay_dir in enumerate(run.replay_dirs or [run.replay_dir], start=repeat):
        if not (replay_dir / LOG_JSON_NAME).exists():
            continue
        summary = read_replay_summary(replay_dir)
        starts.append((float(summary["start_epoch_s"]), number))
        metrics += replayer_metrics(STEP, run.build, summary, number, input_lines)
    # a handoff belongs to the pass it happened in (the last one started before it)
    pass_at = lambda at: max((number for start, number in starts if start <= at), default=repeat)
    metrics += [Metric(STEP, run.build, "handoff_at", round(at, 1), "UTC epoch s", repeat=pass_at(at),
                       input_lines=input_lines, detail=f"batch views of master v{version} serve (+-1 s, from its log)")
                for at, version in run.handoffs]
    if failure(run):
        metrics.append(Metric(STEP, run.build, "problem", None, "", repeat=repeat, input_lines=input_lines,
                              detail=failure(run)))
    return metrics


def failure(run: FollowRun) -> str:
    """Why a live run is not a complete one ("" when it is)."""
    reasons = [run.problem] if run.problem else []
    if run.measurement is not None and run.measurement.exit_code != 0:
        reasons.append(f"{run.build} exited with code {run.measurement.exit_code} (its output: logs/)")
    return "; ".join(reasons)


WARMUP_STEPS = 1   # a standalone live run's first rate step (Profile.start_warmup_s), in no figure


def warmup_pass(live_input: Path, profile) -> Pass:
    """The latency step's warm-up: `profile.start_warmup_s` at half the lowest rate over the
    live input's first files, replayed and committed before the first measured pass (a
    build's first micro-batches plan its queries, create its tables and compile its code
    after it says it is ready: no rate's figure should carry them)."""
    lowest = min(profile.rates)
    warm = profile.warmup_lines(lowest) // profile.file_lines
    return Pass((0, warm), tuple(rate_steps_over_files(live_input, [lowest / 2], [warm], 0)))


def live_passes(live_input: Path, profile, after: Pass) -> list[Pass]:
    """The latency step's measured replays: `profile.repeats` passes over consecutive slices
    of the live input after the pass `after` (the warm-up), each every rate of the profile
    in turn (whole files, in name order)."""
    ladder = [lines // profile.file_lines for lines in profile.step_lines()]
    passes, first = [], after.files[1]
    for _ in range(profile.repeats):
        steps = rate_steps_over_files(live_input, profile.rates, ladder, first)
        passes.append(Pass((first, first + sum(ladder)), tuple(steps)))
        first += sum(ladder)
    return passes


def probe_pass(live_input: Path, profile, after: Pass) -> Pass:
    """The throughput search's ramp above the latency rates (Profile.probe_rates), one
    `search_step_seconds` step each, over the live input's files after `after`."""
    counts = [lines // profile.file_lines for lines in profile.probe_lines()]
    steps = rate_steps_over_files(live_input, profile.probe_rates(), counts, after.files[1])
    return Pass((after.files[1], after.files[1] + sum(counts)), tuple(steps))


def recovery_pass(live_input: Path, profile, after: Pass) -> Pass:
    """The recovery replay as a last pass after the pass `after`: the rest of the live input
    (`profile.recovery_lines` lines, and the poison files among them) at
    `profile.recovery_rate_lps`."""
    from shared.inputs import inspect_input

    first, end = after.files[1], len(inspect_input(live_input).sales_files)
    steps = rate_steps_over_files(live_input, [profile.recovery_rate_lps], [end - first], first)
    return Pass((first, end), tuple(steps))


def rate_steps_over_files(live_input: Path, rates: Sequence[float], files_per_step: Sequence[int],
                          first: int = 0) -> list[tuple[float, int]]:
    """(rate, raw lines) per step: `files_per_step[i]` files of the input, in name order from
    file `first`, at `rates[i]` (the live inputs are generated with exactly those files)."""
    from shared.inputs import inspect_input
    from shared.raw_lines import count_raw_lines

    files = inspect_input(live_input).sales_files
    per_step = list(files_per_step)
    if first + sum(per_step) > len(files):
        raise ValueError(f"{live_input} has {len(files)} sales files, fewer than the {first + sum(per_step)} "
                         "the rate steps need")
    steps = []
    for rate, count in zip(rates, per_step):
        steps.append((rate, sum(count_raw_lines(p) for p in files[first:first + count])))
        first += count
    return steps


def run_latency(run: RunFolder, followers: dict[str, Follower], builds: Sequence[str], live_input: Path,
                oracle_results: Path, input_lines: int, work: Path, profile, master: str | None, settings,
                stage: Callable[[str], None], on_done: Callable[[str, float], None] = lambda build, s: None,
                recovery_builds: Sequence[str] | None = None, probe_builds: Sequence[str] = ()) -> None:
    """Per build, one follow process fed `profile.repeats` passes of the rate ladder (the
    repeats of this step: each pass starts once the pass before is committed); each pass's
    figures are the rows of its repeat. The process's cost and the results export against
    the oracle over the whole live input are rows of repeat 1.

    `recovery_builds` (the recovery step's builds, when the live input ends with its replay:
    Profile.live_input_rows): every build's follow run replays that slice as a last pass (its
    export is compared with the oracle over the whole live input), and the ones of these
    builds are killed during it and restarted; their recovery rows come from it
    (recovery_step.from_follow_run). The pass-through has no export: it stops after its passes.

    `probe_builds` (when the live input holds the throughput search's probe pass after the
    measured passes: Profile.search_on_live): those builds' follow runs replay it, the search's
    ramp above the latency rates; its rows are the throughput step's, repeat 1."""
    from experiments.harness import recovery_step, throughput_step

    warmup = warmup_pass(live_input, profile)
    passes = live_passes(live_input, profile, warmup)
    probe = probe_pass(live_input, profile, passes[-1]) if probe_builds else None
    final = recovery_pass(live_input, profile, probe or passes[-1]) if recovery_builds is not None else None
    for build in builds:
        follower = followers[build]
        probing = probe if build in probe_builds else None
        last = final if build in ARCHITECTURES else None
        kill = None
        if last is not None and build in recovery_builds:
            seed = recovery_step.kill_seed(profile, 1, list(recovery_builds).index(build))
            kill = (recovery_step.kill_delay(profile, seed), seed)
        stage(f"step latency | {build} | rates {', '.join(f'{r:g}' for r in profile.rates)} lines/s | "
              f"{len(passes)} pass{'es' if len(passes) > 1 else ''} in one process"
              + (f", then the throughput probe at {', '.join(f'{r:g}' for r, _ in probing.rate_steps)} lines/s "
                 f"({profile.search_step_seconds:g} s each)" if probing else "")
              + (f", then the recovery replay at {profile.recovery_rate_lps:g} lines/s" if last else "")
              + (f", SIGKILL {kill[0]:g} s into it (seed {kill[1]})" if kill else ""))
        workdir = work / f"live-{build}"
        live = run_follow(follower, live_input, workdir, warmup=warmup, passes=passes, probe_pass=probing,
                          last_pass=LastPass(last, kill[0] if kill else None) if last else None,
                          step_gap_s=profile.step_gap_s, interval=profile.interval, master=master,
                          drain_timeout_s=profile.drain_timeout_s, stage=lambda message: stage(f"  {message}"))
        log = run.keep_log(live.log, f"latency-{build}")
        metrics = run_metrics(live, 1, input_lines, log)
        for repeat, replay_dir in enumerate(live.replay_dirs, start=1):
            if not (replay_dir / LOG_JSON_NAME).exists():
                continue
            shutil.copy(replay_dir / LOG_JSON_NAME, _mkparent(run.replay_summary_path(build, repeat)))
            rows = unit_rows(replay_dir, live.commit_log, live.queries, profile.warmup_s, 0)
            write_unit_rows(run.latency_path(build, repeat), rows)
            metrics += latency_metrics(build, rows, repeat, input_lines, profile.warmup_s, warmup_steps=0)
        metrics += measured_anatomy(live, input_lines)
        if live.probe_replay_dir is not None:
            metrics += throughput_step.probe_pass_metrics(run, live, profile)
        if build in ARCHITECTURES:
            if live.ok:
                from experiments.harness.systems import run_statuses

                verdicts = compare_build(workdir, build, oracle_results, run_statuses(live.final_log), None, settings)
                after = " (the export of the run restarted after the last pass's SIGKILL)" if live.restarted_at else ""
                metrics += [replace(m, detail=m.detail + after)
                            for m in equivalence_metrics(STEP, build, verdicts, 1, input_lines)]
            else:
                metrics.append(Metric(STEP, build, "equivalence", None, "rows differing", repeat=1,
                                      input_lines=input_lines, query=ALL_QUERIES,
                                      detail=f"not compared: {failure(live)}"))
        if live.last_replay_dir is not None:
            metrics += faults.poison_outcomes(build, live.last_replay_dir, live_input, live.commit_log, live.queries,
                                              workdir, oracle_results, dict(repeat=1, input_lines=input_lines,
                                                                            rate_lps=profile.recovery_rate_lps))
        run.append(metrics)
        if kill:
            if live.restart_log.exists():
                run.keep_log(live.restart_log, f"recovery-{build}-r1")
            recovered = recovery_step.from_follow_run(run, live, oracle_results, input_lines, profile, *kill)
            run.append(recovered)
            stage(recovery_step.outcome_words(build, recovered))
        on_done(build, live.measurement.wall_s if live.measurement else 0.0)


def measured_anatomy(live: FollowRun, input_lines: int) -> list[Metric]:
    """The anatomy of the run's micro-batches (experiments/harness/anatomy.py) that started
    during its measured passes: from the first pass's replay start to their end."""
    from experiments.harness.anatomy import anatomy_metrics

    if not live.replay_dirs or live.measured is None or not (live.replay_dirs[0] / LOG_JSON_NAME).exists():
        return []
    since = float(read_replay_summary(live.replay_dirs[0])["start_epoch_s"])
    return anatomy_metrics(live.build, live.workdir, since, live.started_epoch_s + live.measured.wall_s, input_lines)


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
