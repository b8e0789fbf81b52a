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

Percentiles and the bounded judgement: experiments/harness/live_figures.py.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from experiments.harness import faults
from experiments.harness.drain_step import cost_metrics, equivalence_metrics
from experiments.harness.equivalence import compare_build
from experiments.harness.follow import Follower, FollowRun, LastPass, Pass, run_follow
from experiments.harness.live_figures import (
    judge,
    latency_metrics,
    rate_steps_over_files,
    replayer_metrics,
    unit_rows,
    verdict_rows,
    write_unit_rows,
)
from experiments.harness.profiles import ARCHITECTURES
from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.inputs.schedule import LOG_JSON_NAME, read_replay_summary

STEP = "latency"


def run_metrics(run: FollowRun, repeat: int, input_lines: int, log: Path) -> list[Metric]:
    """The follow process's cost (rows of `repeat`), then per pass (repeat `repeat`, `repeat`
    + 1, ...) the replayer's own CPU and lag and Lambda's handoffs during it."""
    metrics = cost_metrics(
        STEP,
        run.build,
        run.cost,
        repeat,
        input_lines,
        log,
        scope="the follow process from its start to the end of the measured passes (JVM start "
        "included; a probe or last pass after them and the stop not)",
    )
    starts = []
    for number, replay_dir in enumerate(run.replay_dirs or [run.replay_dir], start=repeat):
        if not (replay_dir / LOG_JSON_NAME).exists():
            continue
        summary = read_replay_summary(replay_dir)
        starts.append((float(summary["start_epoch_s"]), number))
        metrics += replayer_metrics(STEP, run.build, summary, number, input_lines)
    # a handoff belongs to the pass it happened in (the last one started before it)
    pass_at = lambda at: max((number for start, number in starts if start <= at), default=repeat)
    metrics += [
        Metric(
            STEP,
            run.build,
            "handoff_at",
            round(at, 1),
            "UTC epoch s",
            repeat=pass_at(at),
            input_lines=input_lines,
            detail=f"batch views of master v{version} serve (+-1 s, from its log)",
        )
        for at, version in run.handoffs
    ]
    if failure(run):
        metrics.append(
            Metric(STEP, run.build, "problem", None, "", repeat=repeat, input_lines=input_lines, detail=failure(run))
        )
    return metrics


def failure(run: FollowRun) -> str:
    """Why a live run is not a complete one ("" when it is)."""
    reasons = [run.problem] if run.problem else []
    if run.measurement is not None and run.measurement.exit_code != 0:
        reasons.append(f"{run.build} exited with code {run.measurement.exit_code} (its output: logs/)")
    return "; ".join(reasons)


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
    assert after.files is not None  # the passes here are over files
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
    assert after.files is not None  # the passes here are over files
    steps = rate_steps_over_files(live_input, profile.probe_rates(), counts, after.files[1])
    return Pass((after.files[1], after.files[1] + sum(counts)), tuple(steps))


def recovery_pass(live_input: Path, profile, after: Pass) -> Pass:
    """The recovery replay as a last pass after the pass `after`: the rest of the live input
    (`profile.recovery_lines` lines, and the poison files among them) at
    `profile.recovery_rate_lps`."""
    from shared.inputs import inspect_input

    assert after.files is not None  # the passes here are over files
    first, end = after.files[1], len(inspect_input(live_input).sales_files)
    steps = rate_steps_over_files(live_input, [profile.recovery_rate_lps], [end - first], first)
    return Pass((first, end), tuple(steps))


def run_latency(
    run: RunFolder,
    followers: dict[str, Follower],
    builds: Sequence[str],
    live_input: Path,
    oracle_results: Path,
    input_lines: int,
    work: Path,
    profile,
    master: str | None,
    settings,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda build, s: None,
    recovery_builds: Sequence[str] | None = None,
    probe_builds: Sequence[str] = (),
) -> None:
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
        if last is not None and recovery_builds is not None and build in recovery_builds:
            seed = recovery_step.kill_seed(profile, 1, list(recovery_builds).index(build))
            kill = (recovery_step.kill_delay(profile, seed), seed)
        stage(
            f"step latency | {build} | rates {', '.join(f'{r:g}' for r in profile.rates)} lines/s | "
            f"{len(passes)} pass{'es' if len(passes) > 1 else ''} in one process"
            + (
                f", then the throughput probe at {', '.join(f'{r:g}' for r, _ in probing.rate_steps)} lines/s "
                f"({profile.search_step_seconds:g} s each)"
                if probing
                else ""
            )
            + (f", then the recovery replay at {profile.recovery_rate_lps:g} lines/s" if last else "")
            + (f", SIGKILL {kill[0]:g} s into it (seed {kill[1]})" if kill else "")
        )
        workdir = work / f"live-{build}"
        live = run_follow(
            follower,
            live_input,
            workdir,
            warmup=warmup,
            passes=passes,
            probe_pass=probing,
            last_pass=LastPass(last, kill[0] if kill else None) if last else None,
            step_gap_s=profile.step_gap_s,
            interval=profile.interval,
            master=master,
            drain_timeout_s=profile.drain_timeout_s,
            stage=lambda message: stage(f"  {message}"),
        )
        log = run.keep_log(live.log, f"latency-{build}")
        metrics = run_metrics(live, 1, input_lines, log)
        for repeat, replay_dir in enumerate(live.replay_dirs, start=1):
            if not (replay_dir / LOG_JSON_NAME).exists():
                continue
            shutil.copy(replay_dir / LOG_JSON_NAME, _mkparent(run.replay_summary_path(build, repeat)))
            rows = unit_rows(replay_dir, live.commit_log, live.queries, profile.warmup_s, 0)
            write_unit_rows(run.latency_path(build, repeat), rows)
            figures = latency_metrics(build, rows, repeat, input_lines, profile.warmup_s, warmup_steps=0)
            # each rate of the pass judged once, here (the throughput step and the report read the rows)
            metrics += figures + verdict_rows(STEP, build, judge(figures, profile.rates, profile.step_seconds), repeat)
        metrics += measured_anatomy(live, input_lines)
        if live.probe_replay_dir is not None:
            metrics += throughput_step.probe_pass_metrics(run, live, profile)
        if build in ARCHITECTURES:
            if live.ok:
                from experiments.harness.systems import run_statuses

                verdicts = compare_build(workdir, build, oracle_results, run_statuses(live.final_log), None, settings)
                after = " (the export of the run restarted after the last pass's SIGKILL)" if live.restarted_at else ""
                metrics += [
                    replace(m, detail=m.detail + after)
                    for m in equivalence_metrics(STEP, build, verdicts, 1, input_lines)
                ]
            else:
                metrics.append(
                    Metric(
                        STEP,
                        build,
                        "equivalence",
                        None,
                        "rows differing",
                        repeat=1,
                        input_lines=input_lines,
                        query=ALL_QUERIES,
                        detail=f"not compared: {failure(live)}",
                    )
                )
        if live.last_replay_dir is not None:
            metrics += faults.poison_outcomes(
                build,
                live.last_replay_dir,
                live_input,
                live.commit_log,
                live.queries,
                workdir,
                oracle_results,
                dict(repeat=1, input_lines=input_lines, rate_lps=profile.recovery_rate_lps),
            )
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
