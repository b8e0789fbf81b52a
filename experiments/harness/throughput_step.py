"""`lab experiments`' sustainable-throughput step: per build, a search over input rates for the
highest one at which latency stays bounded for the whole run (DESIGN.md: "no upward trend").

The search, bounded by the profile:
0. when the latency step ran in the same run folder, its stepped load is the start of the
   ramp: its rates are judged from its rows (per repeat), and the ramp below goes on only
   above them, only if none was unbounded; with `search_on_live` (quick, standard) that ramp
   was already replayed once, as the probe pass of the latency step's follow run of each
   build (`probe_pass_metrics`), so no follow run of its own is started and there is one
   search, with the latency step's first pass;
1. ramp: one follow run (experiments/harness/follow.py) fed a stepped load of doubling rates,
   `search_start_lps`, 2x, 4x ... up to `search_max_lps`, each `search_step_seconds` long with
   a quiet gap between steps, after the live runs' warm-up step (`start_warmup_s` at half
   the lowest rate, in no figure: a build's first micro-batches plan its queries and create
   its tables);
2. doubling: while every rate judged was bounded, one more follow run of a ramp at 2x, 4x
   and 8x the highest (up to `search_limit_lps`), until a rate is unbounded: the search's
   first ramp is no cap;
3. bisection: up to `search_bisections` more follow runs of one rate each, halfway between
   the highest rate found bounded and the lowest found unbounded, until the two are within
   `KNEE_RATIO` (a rate above an unbounded one in the ramp carries its backlog, so it is
   recorded but not judged).
A probe's files grow with its rate (Profile.file_lines_at: at most UNITS_PER_SECOND files a
second), so a high rate measures the build and not the file source's listing.

A rate is bounded when every measured unit became visible and the lag of the step's commits
(live_figures.commit_lags: each commit's time minus the intended time of the newest unit it
made visible) rose by no more than the threshold of `live_figures.bounded` over the step; a
step with fewer than `live_figures.MIN_COMMITS` commits is not judged. Each probe is measured
exactly like the latency step (units = landed files, open-loop intended times, warm-up dropped,
latest over the queries), its rows go to metrics.csv with step `throughput` (its unit rows to
throughput/), and the knee is the row `sustainable_lps`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from experiments.harness.drain_step import cost_metrics
from experiments.harness.follow import Follower, run_follow
from experiments.harness.live_figures import (
    WARMUP_STEPS,
    Judged,
    judge,
    latency_metrics,
    rate_steps_over_files,
    read_verdict,
    replayer_metrics,
    unit_rows,
    verdict_rows,
    write_unit_rows,
)
from experiments.harness.profiles import DOUBLINGS_PER_RUN, KNEE_RATIO, search_ramp
from experiments.harness.run_folder import ALL_QUERIES, Metric, RunFolder
from experiments.inputs.schedule import LOG_JSON_NAME, read_replay_summary

STEP = "throughput"
PROBE_PASS = "live probe pass"  # the label of the probe pass's verdicts (search_on_live)


def latency_step_verdicts(rows: list[dict], build: str, repeat: int) -> list[Judged]:
    """The latency step's verdicts on the rates it measured for `build` in `repeat` (its
    `bounded` rows in metrics.csv): its stepped load is the search's ramp when it ran in this
    run folder."""
    mine = sorted(
        (
            r
            for r in rows
            if r["step"] == "latency"
            and r["build"] == build
            and r["metric"] == "bounded"
            and r["repeat"] == str(repeat)
        ),
        key=lambda r: float(r["rate_lps"]),
    )
    return [read_verdict(r, f"latency step, repeat {repeat}: ") for r in mine]


def knee(verdicts: Sequence[Judged]) -> tuple[float | None, float | None]:
    """(highest bounded rate below the lowest unbounded one, lowest unbounded rate)."""
    unbounded = [v.rate for v in verdicts if v.ok is False]
    upper = min(unbounded) if unbounded else None
    fine = [v.rate for v in verdicts if v.ok and (upper is None or v.rate < upper)]
    return (max(fine) if fine else None), upper


def next_rate(lower: float | None, upper: float) -> float:
    """Halfway between the bounded and the unbounded rate (from 0 when nothing was bounded),
    to whole lines per second."""
    return float(round(((lower or 0.0) + upper) / 2))


def _probe(
    run: RunFolder,
    follower: Follower,
    rates: list[float],
    label: str,
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    repeat: int,
    stage: Callable[[str], None],
) -> tuple[list[Metric], list[Judged]]:
    """One follow run of `rates`, stepped; its metrics (step throughput) and verdicts."""
    from experiments.inputs.prepared import prepare_input
    from experiments.progress import Progress

    # first a warm-up step at half the lowest rate: a build's first micro-batches (query planning,
    # table creation, JIT) come after it says it is ready, and they are not what a rate costs
    warm = min(rates) / 2
    file_lines = profile.file_lines_at(max(rates))
    counts = [max(2, profile.warmup_lines(min(rates)) // file_lines)] + [
        profile.whole_files(rate, profile.search_step_seconds, file_lines) for rate in rates
    ]
    live_input = prepare_input(
        data_root, sum(counts) * file_lines, profile.seed, Progress(quiet=True), prefix="search", files=sum(counts)
    )
    steps = rate_steps_over_files(live_input, [warm, *rates], counts)
    lines = sum(n for _, n in steps)
    workdir = work / f"search-{follower.name}-r{repeat}-{label}"
    stage(
        f"step throughput | {follower.name} | {label}: {', '.join(f'{r:g}' for r in rates)} lines/s, "
        f"{profile.search_step_seconds:g} s each, after {profile.start_warmup_s:g} s at {warm:g} lines/s"
    )
    live = run_follow(
        follower,
        live_input,
        workdir,
        rate_steps=steps,
        step_gap_s=profile.step_gap_s,
        interval=profile.interval,
        master=master,
        drain_timeout_s=profile.search_drain_timeout_s,
        stage=lambda message: stage(f"  {message}"),
    )
    log = run.keep_log(live.log, f"throughput-{follower.name}-r{repeat}-{label}")
    metrics = [
        Metric(
            m.step,
            m.build,
            m.metric,
            m.value,
            m.unit,
            query=label,
            repeat=m.repeat,
            input_lines=m.input_lines,
            detail=m.detail,
        )
        for m in cost_metrics(STEP, follower.name, live.measurement, repeat, lines, log)
    ]
    if live.measurement is None or live.measurement.exit_code != 0 or not (live.replay_dir / LOG_JSON_NAME).exists():
        # a follower that failed (not one that fell behind: that is what the search looks for)
        metrics.append(
            Metric(
                STEP,
                follower.name,
                "problem",
                None,
                "",
                repeat=repeat,
                input_lines=lines,
                query=label,
                detail=live.problem or f"{follower.name} failed, see {log}",
            )
        )
        return metrics, [Judged(rate, None, "the run failed") for rate in rates]
    rows = unit_rows(live.replay_dir, live.commit_log, live.queries, profile.warmup_s, WARMUP_STEPS)
    figures, verdicts = _judged_probe(run, follower.name, rows, rates, label, profile, repeat, lines, WARMUP_STEPS)
    return metrics + figures + verdict_rows(STEP, follower.name, verdicts, repeat), verdicts


def _judged_probe(
    run: RunFolder,
    build: str,
    rows,
    rates: Sequence[float],
    label: str,
    profile,
    repeat: int,
    lines: int,
    warmup_steps: int,
) -> tuple[list[Metric], list[Judged]]:
    """A probe's unit rows kept in the run folder, its `all` figures and its verdicts."""
    write_unit_rows(run.probe_units_path(build, repeat, label.replace(" ", "-")), rows)
    figures = [
        m
        for m in latency_metrics(
            build, rows, repeat, lines, profile.warmup_s, step_name=STEP, warmup_steps=warmup_steps
        )
        if m.query == ALL_QUERIES
    ]
    verdicts = [Judged(v.rate, v.ok, f"{label}: {v.why}") for v in judge(figures, rates, profile.search_step_seconds)]
    return figures, verdicts


def probe_pass_metrics(run: RunFolder, live, profile) -> list[Metric]:
    """The rows of the probe pass of a latency-step follow run (FollowRun.probe_replay_dir):
    the search's ramp above the latency rates, judged as a ramp of its own is (repeat 1)."""
    rows = unit_rows(live.probe_replay_dir, live.commit_log, live.queries, profile.warmup_s)
    lines = sum(r.last_seq - r.first_seq + 1 for r in rows if r.query == ALL_QUERIES)
    figures, verdicts = _judged_probe(run, live.build, rows, profile.probe_rates(), PROBE_PASS, profile, 1, lines, 0)
    summary = read_replay_summary(live.probe_replay_dir)
    # did the harness deliver the rate? (a late emission counts in latency, from its intended time)
    return (
        figures
        + verdict_rows(STEP, live.build, verdicts, 1)
        + replayer_metrics(STEP, live.build, summary, 1, lines, query=PROBE_PASS)
    )


def probe_pass_verdicts(rows: list[dict], build: str) -> dict[int, list[Judged]]:
    """The probe pass's verdicts of `build` already in metrics.csv, per repeat."""
    found: dict[int, list[Judged]] = {}
    for r in rows:
        if (
            r["step"] == STEP
            and r["build"] == build
            and r["metric"] == "bounded"
            and r["detail"].startswith(f"{PROBE_PASS}:")
        ):
            found.setdefault(int(r["repeat"]), []).append(read_verdict(r))
    return found


def search(
    run: RunFolder,
    follower: Follower,
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    repeat: int,
    stage: Callable[[str], None],
    probed_on_live: bool = False,
) -> list[Judged]:
    """The ramp (the latency step's rates when it ran in this run folder for this build and
    repeat, then the probe pass's rates when the latency step replayed them, else a ramp
    above them only if none was unbounded), then the bisections; every probe's rows appended
    as it ends. `probed_on_live`: the latency step's follow runs had the probe pass, so a
    build without one (the pass-through) is judged on the latency rates alone."""
    rows = run.metrics()
    verdicts = latency_step_verdicts(rows, follower.name, repeat)
    probed = probe_pass_verdicts(rows, follower.name)
    if verdicts:
        stage(
            f"step throughput | {follower.name} | the latency step's rates, repeat {repeat}: "
            + ", ".join(f"{v.rate:g} {'ok' if v.ok else 'no' if v.ok is False else '?'}" for v in verdicts)
        )
        run.append(verdict_rows(STEP, follower.name, verdicts, repeat))
        if probed or probed_on_live:  # the ramp above them ran once, in the latency step's follow runs
            verdicts += probed.get(repeat, [])
            ramp = []
        else:
            ramp = (
                [r for r in search_ramp(profile) if r > max(v.rate for v in verdicts)]
                if knee(verdicts)[1] is None
                else []
            )
    else:
        ramp = search_ramp(profile)
    if ramp:
        metrics, found = _probe(run, follower, ramp, "ramp", profile, data_root, work, master, repeat, stage)
        run.append(metrics)
        verdicts += found
    number = 0
    while knee(verdicts)[1] is None and any(v.ok for v in verdicts):
        # every rate judged was bounded: doubling on, DOUBLINGS_PER_RUN rates a run, until one is not
        highest = max(v.rate for v in verdicts)
        rates = [highest * 2**k for k in range(1, DOUBLINGS_PER_RUN + 1) if highest * 2**k <= profile.search_limit_lps]
        if not rates:
            break
        number += 1
        more, found = _probe(run, follower, rates, f"double-{number}", profile, data_root, work, master, repeat, stage)
        run.append(more)
        verdicts += found
        if not any(v.ok is not None for v in found):
            break  # not judged: doubling again would not be either
    for number in range(1, profile.search_bisections + 1):
        lower, upper = knee(verdicts)
        if upper is None:
            break  # bounded up to the search's limit: nothing to bisect
        if lower is not None and upper / lower <= KNEE_RATIO:
            break  # bracketed closely enough
        rate = next_rate(lower, upper)
        if rate in {v.rate for v in verdicts} or rate <= 0:
            break  # the interval cannot be split further at whole rates
        more, found = _probe(run, follower, [rate], f"bisect-{number}", profile, data_root, work, master, repeat, stage)
        run.append(more)
        verdicts += found
    return verdicts


def knee_metrics(build: str, verdicts: Sequence[Judged], profile, repeat: int) -> list[Metric]:
    lower, upper = knee(verdicts)
    tried = ", ".join(
        f"{v.rate:g}" + ("" if v.ok is None else (" ok" if v.ok else " no"))
        for v in sorted(verdicts, key=lambda v: v.rate)
    )
    if upper is None and lower is not None:
        above = [f"{v.rate:g}" for v in sorted(verdicts, key=lambda v: v.rate) if v.rate > lower]
        if above:  # tried higher, but too few commits there to judge
            detail = (
                f"bounded at every rate judged, up to {lower:g} lines/s: at least this; {', '.join(above)} not "
                f"judged; rates {tried}"
            )
        else:  # the highest rate tried was bounded
            bound = "the search's limit" if lower * 2 > profile.search_limit_lps else "the highest rate tried"
            detail = f"bounded at every rate judged, up to {bound} ({lower:g} lines/s): at least this; rates {tried}"
    elif lower is None:
        detail = (
            f"no rate tried was bounded; unbounded from {upper:g} lines/s; rates {tried}"
            if upper
            else f"no rate could be judged; rates {tried}"
        )
    else:
        detail = f"bounded at {lower:g}, not at {upper:g} lines/s; rates {tried}"
    rows = [Metric(STEP, build, "sustainable_lps", lower, "lines/s", query=ALL_QUERIES, repeat=repeat, detail=detail)]
    if upper is not None:
        rows.append(
            Metric(
                STEP,
                build,
                "unbounded_lps",
                upper,
                "lines/s",
                query=ALL_QUERIES,
                repeat=repeat,
                detail="the lowest rate at which latency kept rising or units were never visible",
            )
        )
    return rows


def run_throughput(
    run: RunFolder,
    followers: dict[str, Follower],
    builds: Sequence[str],
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda build, s: None,
    probed_on_live: bool = False,
) -> None:
    """The search per build (see the module doc). `probed_on_live`: the latency step's follow
    runs had the probe pass in this run (as do a folder's rows that hold its verdicts)."""
    import time

    rows = run.metrics()
    latency_rows = [r for r in rows if r["step"] == "latency" and r["build"] in builds and r["repeat"]]
    measured = {int(r["repeat"]) for r in latency_rows}
    # one search per repeat of the latency step (its rates are the ramp), else other_repeats; one
    # search only when the ramp above those rates was the latency runs' probe pass: it ran once
    repeats = sorted(measured) or list(range(1, profile.other_repeats + 1))
    probed_on_live = bool(measured) and (probed_on_live or any(probe_pass_verdicts(rows, build) for build in builds))
    if probed_on_live:
        repeats = repeats[:1]
    for repeat in repeats:
        for build in builds:
            started = time.monotonic()
            if measured and not latency_step_verdicts(latency_rows, build, repeat):
                # the latency step ran but this pass did not (the build had not caught up with the pass
                # before): its rates are judged from the passes that ran, not by a ramp of their own
                run.append(
                    [
                        Metric(
                            STEP,
                            build,
                            "sustainable_lps",
                            None,
                            "lines/s",
                            query=ALL_QUERIES,
                            repeat=repeat,
                            detail=f"not judged: the latency step's pass {repeat} did not run for {build}",
                        )
                    ]
                )
                on_done(build, time.monotonic() - started)
                continue
            verdicts = search(run, followers[build], profile, data_root, work, master, repeat, stage, probed_on_live)
            knee = knee_metrics(build, verdicts, profile, repeat)
            run.append(knee)
            stage(f"{build}: sustainable throughput {knee[0].detail}")
            on_done(build, time.monotonic() - started)
