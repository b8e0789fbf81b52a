"""`lab experiments`: the lab's steps, each writing into one run folder `reports/<run-id>/`.

1. inputs       the drain input and the live input, generated (or `--input` for the drains),
                reused while their manifests match (experiments/inputs/prepared.py),
                and the oracle over each (in this process: it has no Spark)
2. drains       drain_step.py: every system in its own process, repeated, every export against
                the oracle
3. latency      latency_step.py: each build following a landing directory fed by the open-loop
                replayer at every rate of the profile, plus the harness pass-through
4. throughput   throughput_step.py: per build, a search over rates for the highest one at which
                latency stays bounded (with the latency step, in the profiles that say so: the
                ramp above its rates is a probe pass of its follow runs)
5. reprocessing reprocess_step.py: city_revenue_v1 -> city_revenue, Lambda's batch recompute
                against Kappa's replay into a new version, at two input sizes or more
6. recovery     recovery_step.py: each build SIGKILLed at a random moment of a live run, restarted;
                lost and duplicated lines, time to its first new commit and to catch up (with
                the latency step, in the profiles that say so: during the last pass of its
                follow runs)
7. late         late_step.py: an input with lines beyond the watermark; what each build counted,
                dropped or corrected later
8. code_size    code_size.py: lines each build needs, its own and the shared ones
9. soak         soak_step.py (the soak profile, after the throughput step): each build following
                one replay at half its sustainable throughput for half an hour; latency, memory,
                CPU and Delta files per 5-minute window
10. report       experiments/report/, run by `lab experiments` after the steps: reads only the
                run folder (metrics.csv, latency/, recovery/, environment.json) and writes
                report.md and report.html, then reports/index.html and reports/latest

Each step appends its rows to metrics.csv as it goes; `--steps` runs some of them, and
`--run-dir` adds them to an existing run folder; `lab experiments report RUN_DIR` redoes the
report alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

from experiments.harness.builds import BUILDS
from experiments.harness.profiles import (
    ARCHITECTURES,
    DOUBLINGS_PER_RUN,
    DRAIN_SYSTEMS,
    LIVE_BUILDS,
    PROFILES,
    STEP_BUILDS,
    STEPS,
    Profile,
    search_ramp,
)
from experiments.harness.run_folder import RunFolder, environment, utc_now
from experiments.progress import Progress, TimeLeft
from shared.settings import LabSettings

# Rough seconds per measured process on a 2-core machine, for the time-left display only,
# measured here on 2026-11-27 (2,000-line drains of the standard profile and 1,000,000-line
# `lab bench` drains): a start (JVM, session, first micro-batches, export) and seconds per
# 10,000 input lines.
DRAIN_ESTIMATE_S = {
    "spark_batch": (15, 0.4),
    "duckdb": (1, 0.07),
    "kappa": (35, 0.9),
    "lambda": (22, 0.5),
    "dstream": (13, 1.7),
}
# A follow process beyond its replay: start until ready, catching up between passes and at
# the end, stop and export.
LIVE_START_STOP_S = {"passthrough": 10, "passthrough_delta": 15, "kappa": 60, "lambda": 55, "dstream": 45}
JVM_START_S = 20  # a process that starts Spark and does little else (a restart, a query)
# A build not measured yet is estimated as the slowest one.
UNKNOWN_DRAIN_S, UNKNOWN_LIVE_START_STOP_S = (35, 1.7), 60


def drain_estimate(system: str, lines: int) -> float:
    start, per_10k = DRAIN_ESTIMATE_S.get(system, UNKNOWN_DRAIN_S)
    return start + per_10k * lines / 10_000


def estimates(profile: Profile, steps, drain_systems, live_builds, builds=()) -> dict[str, float]:
    plan = {}
    for repeat in range(1, profile.repeats + 1):
        if "drains" in steps:
            plan.update({f"drain {s} r{repeat}": drain_estimate(s, profile.drain_rows) for s in drain_systems})
    if "drains" in steps:  # the cost model's sizes, once each
        plan.update({f"cost {s} {rows}": drain_estimate(s, rows) for rows in profile.cost_rows for s in drain_systems})
    killed = killed_live(profile, steps, live_builds, builds)
    if "latency" in steps:  # one follow process per build: every repeat is a pass of the rates in it
        replay_s = profile.repeats * len(profile.rates) * (profile.step_seconds + profile.step_gap_s)
        if recovery_on_live(profile, steps):  # the recovery replay as a last pass; a restart in the killed ones
            replay_s += profile.recovery_seconds
        probed = probed_live(profile, steps, live_builds)
        probe_s = len(profile.probe_rates()) * (profile.search_step_seconds + profile.step_gap_s)
        plan.update(
            {
                f"latency {b} r1": LIVE_START_STOP_S.get(b, UNKNOWN_LIVE_START_STOP_S)
                + profile.start_warmup_s
                + replay_s
                + (probe_s if b in probed else 0)
                + (JVM_START_S + drain_estimate(b, 0) / 2 if b in killed else 0)
                for b in live_builds
            }
        )
    for repeat in range(1, profile.other_repeats + 1):
        if "throughput" in steps:  # the latency step's rates start the ramp when it runs too
            ramp = (
                [r for r in search_ramp(profile) if "latency" not in steps or r > max(profile.rates)]
                if not search_on_live(profile, steps)
                else []
            )  # else in the latency step's follow runs
            probed = probed_live(profile, steps, live_builds)
            for b in step_builds("throughput", live_builds):
                ramp_s = (
                    LIVE_START_STOP_S.get(b, UNKNOWN_LIVE_START_STOP_S)
                    + len(ramp) * (profile.search_step_seconds + profile.step_gap_s)
                    + profile.start_warmup_s
                    if ramp
                    else 0
                )
                one_rate_s = (
                    LIVE_START_STOP_S.get(b, UNKNOWN_LIVE_START_STOP_S)
                    + profile.start_warmup_s
                    + profile.search_step_seconds
                )
                # a ramp of doublings brackets the knee within 2x: one bisection brings it within KNEE_RATIO;
                # a build judged on the latency rates alone (no probe pass) has one doubling run first
                doubling_s = (
                    0 if b in probed or ramp else one_rate_s + (DOUBLINGS_PER_RUN - 1) * profile.search_step_seconds
                )
                plan[f"throughput {b} r{repeat}"] = ramp_s + doubling_s + min(profile.search_bisections, 1) * one_rate_s
        if "reprocessing" in steps:
            # a first run and a recompute per size; at the drains' size the drain is the first run
            runs = sum(
                1 if rows == profile.drain_rows and "drains" in steps and repeat == 1 else 2
                for rows in profile.reprocess_rows
            )
            if profile.reprocess_on_live and "latency" in steps and len(profile.reprocess_rows) > 1:
                runs -= 1  # the follow run is the largest size's first run
            plan.update(
                {
                    f"reprocessing {b} r{repeat}": runs * drain_estimate(b, max(profile.reprocess_rows))
                    for b in step_builds("reprocessing", builds)
                }
            )
        if "recovery" in steps:
            plan.update(
                {
                    f"recovery {b} r{repeat}": 2 * JVM_START_S + profile.recovery_seconds + drain_estimate(b, 0) / 2
                    for b in step_builds("recovery", builds)
                    if repeat > 1 or b not in killed
                }
            )
        if "late" in steps:
            # at the same time, which on 2 cores takes about as long as one after the other: each
            # build's drain at one file a micro-batch, Lambda's batch run after it
            late = step_builds("late", builds)
            total = sum(1.5 * drain_estimate(b, profile.late_rows) for b in late) + JVM_START_S * sum(
                1 for b in late if BUILDS[b].correct_late
            )
            plan.update({f"late {b} r{repeat}": total / len(late) for b in late})
    if "soak" in steps:
        plan.update(
            {
                f"soak {b} r1": LIVE_START_STOP_S.get(b, UNKNOWN_LIVE_START_STOP_S)
                + profile.start_warmup_s
                + profile.soak_seconds
                for b in step_builds("soak", builds)
            }
        )
    return plan


def recovery_on_live(profile: Profile, steps) -> bool:
    """Whether the recovery replay is the last pass of the latency step's follow runs."""
    return profile.recovery_on_live and "latency" in steps and "recovery" in steps


def search_on_live(profile: Profile, steps) -> bool:
    """Whether the throughput search's ramp above the latency rates is a probe pass of the
    latency step's follow runs."""
    return profile.search_on_live and "latency" in steps and "throughput" in steps and bool(profile.probe_rates())


def probed_live(profile: Profile, steps, live_builds) -> tuple[str, ...]:
    """The builds whose latency-step follow runs replay the probe pass: every architecture the
    step follows (the live input is one for all of them, and each export is compared with the
    oracle over all of it). The pass-through has no export, and it commits every second, so
    the latency steps judge it: no probe (half a minute of the standard profile's 20)."""
    return tuple(b for b in live_builds if b in ARCHITECTURES) if search_on_live(profile, steps) else ()


def killed_live(profile: Profile, steps, live_builds, builds) -> tuple[str, ...]:
    """The recovery step's builds killed in the latency step's follow runs (their first repeat)."""
    return (
        tuple(b for b in step_builds("recovery", builds) if b in live_builds)
        if recovery_on_live(profile, steps)
        else ()
    )


def follow_options(profile: Profile) -> dict[str, tuple[str, ...]]:
    """The profile's `lab run --follow` arguments for a build (Lambda's batch layer schedule)."""
    return {"lambda": ("--batch-every", profile.lambda_batch_every)}


def step_builds(step: str, chosen) -> tuple[str, ...]:
    """The chosen builds a step can measure, in the step's order. `chosen`: builds, or a
    mapping of step -> builds (a step it does not name gets none)."""
    if isinstance(chosen, Mapping):
        chosen = chosen.get(step, ())
    return tuple(b for b in STEP_BUILDS[step] if b in chosen)


def run_experiments(
    profile: str | Profile = "quick",
    source: str = "files",
    master: str | None = None,
    input_dir: str | None = None,
    reports_root: Path = Path("reports"),
    data_root: Path = Path("data/experiments"),
    progress: Progress | None = None,
    steps: tuple[str, ...] | None = None,
    systems: tuple[str, ...] = DRAIN_SYSTEMS,
    live_builds: tuple[str, ...] = LIVE_BUILDS,
    run_dir: str | None = None,
    timeout_s: float = 3600.0,
    builds: tuple[str, ...] | Mapping[str, tuple[str, ...]] | None = None,
) -> Path:
    """`profile`: a name of PROFILES or a Profile; `steps`: the steps to run (default the
    profile's). `builds`: the builds of the steps after latency (each step takes those it can
    measure; throughput those of `live_builds` among them; default the profile's, else every
    live build), or a mapping step -> builds. Returns the run folder (the report is written
    from it alone: experiments/report/index.publish)."""
    from experiments.harness.drain_step import oracle_metrics, run_drains
    from experiments.harness.follow import followers
    from experiments.harness.latency_step import run_latency
    from experiments.inputs.prepared import prepare_input
    from experiments.reference.oracle import run_oracle
    from shared.export import results_dir
    from shared.inputs import inspect_input

    progress = progress or Progress()
    chosen = profile if isinstance(profile, Profile) else PROFILES[profile]
    steps = chosen.steps if steps is None else steps
    builds = (chosen.builds or LIVE_BUILDS) if builds is None else builds
    named = set().union(*builds.values()) if isinstance(builds, Mapping) else set(builds)
    unknown = (
        set(steps) - set(STEPS)
        or set(systems) - set(DRAIN_SYSTEMS)
        or set(live_builds) - set(LIVE_BUILDS)
        or named - set(LIVE_BUILDS)
        or (set(builds) - set(STEPS) if isinstance(builds, Mapping) else set())
    )
    if unknown:
        raise ValueError(
            f"unknown steps or builds {sorted(unknown)}: steps {', '.join(STEPS)}; drain systems "
            f"{', '.join(DRAIN_SYSTEMS)}; live builds and builds {', '.join(LIVE_BUILDS)}"
        )
    lab = LabSettings.from_env()
    settings = lab.workload
    master_url = master or lab.spark_master
    if run_dir:
        run = RunFolder(Path(run_dir))
        if not run.environment_path.exists():
            raise FileNotFoundError(f"{run.path} is not a run folder (no environment.json)")
    else:
        run = RunFolder.create(reports_root, chosen.name)
        run.write_environment(environment(chosen.as_json(), source, master_url, input_dir))
    progress.stage(f"run {run.run_id}: profile {chosen.name} ({chosen.description}), steps {', '.join(steps)}")
    work = (Path(data_root) / "work" / run.run_id).resolve()
    time_left = TimeLeft(estimates(chosen, steps, systems, live_builds, builds))
    started = time.monotonic()

    def stage(message: str) -> None:
        progress.stage(f"{message}  [{time_left.text()}]")

    if "drains" in steps:
        drain_input = (
            Path(input_dir).expanduser().resolve()
            if input_dir
            else prepare_input(Path(data_root), chosen.drain_rows, chosen.seed, progress)
        )
        inspect_input(drain_input)
        progress.stage(f"step inputs | oracle over the drain input {drain_input}")
        oracle = run_oracle(drain_input, work / "oracle", settings)
        run.append(oracle_metrics(oracle, oracle.raw_lines))
        run.update_environment(drain_input=str(drain_input))
        kafka = _publish_to_kafka(drain_input, run.run_id, progress, lab.kafka_bootstrap) if source == "kafka" else None
        run_drains(
            run,
            drain_input,
            results_dir(work / "oracle", "oracle"),
            oracle.raw_lines,
            work / "drains",
            systems,
            chosen.repeats,
            master,
            settings,
            timeout_s,
            stage,
            kafka,
            on_done=lambda system, seconds: time_left.finish(
                f"drain {system} r{_repeat(time_left, 'drain', system)}", seconds
            ),
        )
        if chosen.cost_rows and (input_dir or source != "files"):
            stage(
                "step drains | no cost model: its larger sizes are generated inputs read from files, which would "
                "not fit with drains of " + ("your own input" if input_dir else "a Kafka topic")
            )
        elif chosen.cost_rows:  # the cost model's larger sizes, then its fit over every size
            from experiments.harness.cost_model import fit_metrics
            from experiments.harness.cost_step import run_cost

            run_cost(
                run,
                chosen.cost_rows,
                chosen.seed,
                systems,
                Path(data_root),
                work / "cost",
                master,
                settings,
                timeout_s,
                progress,
                stage,
                on_done=lambda system, seconds: time_left.finish(
                    # the sizes run in order, each system once: its n-th finished run is the n-th size
                    f"cost {system} {chosen.cost_rows[sum(t.startswith(f'cost {system} ') for t in time_left.done)]}",
                    seconds,
                ),
            )
            run.append(fit_metrics(run.metrics(), systems))
    if "latency" in steps:
        probed = probed_live(chosen, steps, live_builds)
        rows = chosen.live_input_rows(recovery_on_live(chosen, steps), bool(probed))
        # the recovery replay, the live input's last slice, carries the fault injector's poison files
        # (after its first file, and its last file): every build meets them there, warm
        poison_after = (rows - chosen.recovery_lines) // chosen.file_lines if recovery_on_live(chosen, steps) else None
        live_input = prepare_input(
            Path(data_root),
            rows,
            chosen.seed,
            progress,
            prefix="live",
            files=rows // chosen.file_lines,
            poison_after=poison_after,
        )
        progress.stage(f"step inputs | oracle over the live input {live_input}")
        live_oracle = run_oracle(live_input, work / "oracle-live", settings)
        run.update_environment(live_input=str(live_input))
        run_latency(
            run,
            followers(follow_options(chosen)),
            live_builds,
            live_input,
            results_dir(work / "oracle-live", "oracle"),
            live_oracle.raw_lines,
            work / "latency",
            chosen,
            master,
            settings,
            stage,
            on_done=lambda build, seconds: time_left.finish(
                f"latency {build} r{_repeat(time_left, 'latency', build)}", seconds
            ),
            recovery_builds=step_builds("recovery", builds) if recovery_on_live(chosen, steps) else None,
            probe_builds=probed,
        )
    done = lambda step: (
        lambda build, seconds: time_left.finish(f"{step} {build} r{_repeat(time_left, step, build)}", seconds)
    )
    if "throughput" in steps:
        from experiments.harness.throughput_step import run_throughput

        searched = step_builds("throughput", builds if isinstance(builds, Mapping) else set(live_builds) & set(builds))
        run_throughput(
            run,
            followers(follow_options(chosen)),
            searched,
            chosen,
            Path(data_root),
            work / "throughput",
            master,
            stage,
            on_done=done("throughput"),
            probed_on_live=search_on_live(chosen, steps),
        )
    if "reprocessing" in steps:
        from experiments.harness.reprocess_step import run_reprocessing

        run_reprocessing(
            run,
            step_builds("reprocessing", builds),
            chosen,
            Path(data_root),
            work / "reprocessing",
            master,
            settings,
            stage,
            on_done=done("reprocessing"),
        )
    if "recovery" in steps:
        from experiments.harness.recovery_step import run_recovery

        run_recovery(
            run,
            followers(follow_options(chosen)),
            step_builds("recovery", builds),
            chosen,
            Path(data_root),
            work / "recovery",
            master,
            settings,
            stage,
            on_done=done("recovery"),
            killed_live=killed_live(chosen, steps, live_builds, builds),
        )
    if "late" in steps:
        from experiments.harness.late_step import run_late

        run_late(
            run,
            step_builds("late", builds),
            chosen,
            Path(data_root),
            work / "late",
            master,
            settings,
            stage,
            on_done=done("late"),
        )
    if "code_size" in steps:
        from experiments.harness.code_size import run_code_size

        run_code_size(run, stage)
    if "soak" in steps:
        from experiments.harness.soak_step import run_soak

        run_soak(
            run,
            followers(follow_options(chosen)),
            step_builds("soak", builds),
            chosen,
            Path(data_root),
            work / "soak",
            master,
            settings,
            stage,
            on_done=done("soak"),
        )
    run.update_environment(
        finished_utc=utc_now(),
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
        measured_minutes=round((time.monotonic() - started) / 60, 1),
        work_folders=str(work),
    )
    return run.path


def _repeat(time_left: TimeLeft, step: str, name: str) -> int:
    """The repeat a finished task belongs to: one more than those of its kind already done."""
    return 1 + sum(1 for task in time_left.done if task.startswith(f"{step} {name} r"))


def _publish_to_kafka(input_dir: Path, run_id: str, progress: Progress, bootstrap: str) -> dict:
    """Publish the drain input to a topic of its own once; kappa's drains then read it from
    there (lambda and dstream keep the input directory: neither has a Kafka path)."""
    from experiments.inputs.kafka_replay import replay_to_kafka

    topic = f"lab-{run_id}"
    progress.stage(f"step inputs | publishing the drain input to Kafka topic {topic} at {bootstrap}")
    replay_to_kafka(input_dir, bootstrap, topic)
    return {"topic": topic, "bootstrap": bootstrap}
