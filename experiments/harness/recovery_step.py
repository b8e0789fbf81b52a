"""`lab experiments`' recovery step: each build killed with SIGKILL at a random moment of a
live run, restarted with the same command, and then measured from what it wrote.

Where the kill lands: when the latency step runs in the same `lab experiments` and the
profile says `recovery_on_live` (quick, standard), in the latency step's follow run of the
build: the recovery input is the live input's last slice, replayed after the measured
passes at `recovery_rate_lps`, and follow.py's `LastPass` kills the process group a seeded
20-60 % of that replay after its first file landed, restarts it at once and waits until it
covers the pass (`from_follow_run` turns that into the rows below): the build is warm and
processing when it dies, and no follow process is started for this step. Otherwise (the
step alone, a build the latency step did not follow, repeats after the first) one run per
build (its own workdir and landing directory):
1. `lab run BUILD --follow` starts (experiments/harness/follow.py's command); once it is
   ready, the open-loop replayer lands the recovery input at `recovery_rate_lps`, one file
   per unit, in a thread of this process (its own `lab replay` process);
2. experiments/harness/crash.py's `run_until` kills the build's whole process group
   (driver, JVM, Python workers) `delay` seconds after its first commit, `delay` drawn from a
   seeded generator between 20% and 60% of the replay's length: while lines keep arriving;
3. the same command again, at once; the replay goes on meanwhile (open loop: the backlog
   grows while the build is down). `run_until` sends it SIGTERM once every query's commits
   cover the last line (or `drain_timeout_s` after the replay ended, for a build that never
   covers it), and the build writes its results export.

What is measured (rows with step `recovery`; times in seconds since the replay started):
- `kill_at_s`, `restart_at_s`; `first_commit_after_restart_s` (restart to the first commit
  of any query in the commit log); `catch_up_s` (restart to the moment every query's commits
  cover every unit due before the restart: the backlog the crash left);
- lost and duplicated order lines in the final export against the oracle over the same
  input, counted per key of each query that has an `order_lines` column (city_revenue,
  daily_revenue, hourly_sales): for each key, the oracle's order_lines minus the build's
  when positive is lost, the build's minus the oracle's when positive is duplicated; and
  the same for the line accounting's valid lines (`line_accounting`);
- `recovery/<build>-r<repeat>.csv`, the timeline chart's points: each unit's intended time
  and last seq (`emitted`), and after each commit the lowest over queries of the highest seq
  committed (`committed`).
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from experiments.harness.crash import Kill, run_until
from experiments.harness.equivalence import lost_and_duplicated, order_line_counts
from experiments.harness.faults import LAST_PASS_KILL, poison_outcomes
from experiments.harness.follow import Follower, covered_by_all, empty_landing, replay_command
from experiments.harness.latency import covered_at, read_emitted_units
from experiments.harness.measure import wait_for
from experiments.harness.run_folder import Metric, RunFolder
from experiments.inputs.schedule import LOG_JSON_NAME, read_replay_summary
from shared.catalogue import CATALOGUE
from shared.commit_log import commit_log_path, read_commits
from shared.export import export_path, results_dir

STEP = "recovery"
FIRST_COMMIT = "first commit"
COUNTED_QUERIES = tuple(spec.name for spec in CATALOGUE if spec.counts_lines)
KILL_SHARE = (0.2, 0.6)  # the kill lands between these shares of the replay's length after its anchor
# (the first commit; in a latency run, the last pass's first file landing)
TIMELINE_COLUMNS = ("series", "t_s", "seq")
RUN_TIMEOUT_S = 1800.0


def line_counts(workdir: Path, build: str, oracle_results: Path) -> dict[str, tuple[int, int] | None]:
    """query (and `line_accounting`) -> (lost, duplicated) order lines; None when the build
    wrote no export for it."""
    counts: dict[str, tuple[int, int] | None] = {}
    for query in COUNTED_QUERIES:
        produced = export_path(workdir, build, query)
        counts[query] = (
            lost_and_duplicated(order_line_counts(oracle_results / f"{query}.csv"), order_line_counts(produced))
            if produced.exists()
            else None
        )
    accounting = results_dir(workdir, build) / "_accounting.json"
    if accounting.exists():
        mine = json.loads(accounting.read_text(encoding="utf-8"))["valid_lines"]
        truth = json.loads((oracle_results / "_accounting.json").read_text(encoding="utf-8"))["valid_lines"]
        counts["line_accounting"] = (max(0, truth - mine), max(0, mine - truth))
    else:
        counts["line_accounting"] = None
    return counts


def committed_progress(commits, queries: Sequence[str]) -> list[tuple[float, int]]:
    """(visible_at, lowest over queries of the highest seq committed so far) after each commit
    once every query has one."""
    highest: dict[str, int] = {}
    points = []
    for commit in sorted((c for c in commits if c.query in set(queries)), key=lambda c: c.visible_at):
        highest[commit.query] = max(highest.get(commit.query, -1), commit.max_seq)
        if len(highest) == len(set(queries)):
            points.append((commit.visible_at, min(highest.values())))
    return points


def timeline_rows(units, progress: list[tuple[float, int]], start: float) -> list[tuple[str, float, int]]:
    return [("emitted", round(u.intended_at - start, 3), u.last_seq) for u in units] + [
        ("committed", round(at - start, 3), seq) for at, seq in progress
    ]


def write_timeline(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TIMELINE_COLUMNS)
        writer.writerows(rows)


def recover_one(
    run: RunFolder,
    follower: Follower,
    live_input: Path,
    oracle_results: Path,
    work: Path,
    profile,
    master: str | None,
    repeat: int,
    seed: int,
    stage: Callable[[str], None],
) -> list[Metric]:
    from shared.inputs import inspect_input
    from shared.raw_lines import count_raw_lines

    build = follower.name
    workdir = (work / f"{build}-r{repeat}").resolve()
    landing = empty_landing(live_input, workdir / "landing")
    replay_dir = workdir / "replay"
    queries = follower.queries(landing)
    commit_log = commit_log_path(workdir, build)
    lines = sum(count_raw_lines(p) for p in inspect_input(live_input).sales_files)
    last_seq = lines - 1
    common = dict(repeat=repeat, input_lines=lines, rate_lps=profile.recovery_rate_lps)
    delay = kill_delay(profile, seed)
    command = follower.command(landing, workdir, profile.interval, master)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = run.log_path(f"recovery-{build}-r{repeat}")
    log.parent.mkdir(parents=True, exist_ok=True)
    replay: dict = {}

    def feed() -> None:  # once the build is ready, the replay, in its own process
        try:
            wait_for(lambda: follower.ready(workdir, landing), 600, f"{build} did not start")
            done = subprocess.run(
                replay_command(live_input, landing, replay_dir, "--rate", f"{profile.recovery_rate_lps:g}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            replay["exit_code"], replay["output"] = done.returncode, done.stdout
        except (RuntimeError, TimeoutError) as error:
            replay["exit_code"], replay["output"] = None, str(error)
        replay["ended"] = time.monotonic()

    def processing(text: str) -> bool:  # this run's signal handlers are in place
        return f"{build}: processing" in text

    def finished(text: str) -> bool:
        """Every query covers the last line, or the build had drain_timeout_s after both the
        replay's end and its restart and still does not."""
        if not processing(text) or "ended" not in replay:
            return False
        return (
            covered_by_all(commit_log, queries, last_seq)
            or time.monotonic() - max(replay["ended"], replay["restarted"]) > profile.drain_timeout_s
        )

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    stage(
        f"step recovery | {build} | follows, fed at {profile.recovery_rate_lps:g} lines/s; SIGKILL {delay:g} s "
        f"after its first commit (seed {seed})"
    )

    def first_commit(text: str) -> bool:  # a commit that includes input (or no input will come: stop waiting)
        if replay.get("ended") is not None and replay.get("exit_code") != 0:
            return True
        return processing(text) and commit_log.exists() and any(c.max_seq >= 0 for c in read_commits(commit_log))

    anchors = {FIRST_COMMIT: first_commit}
    stderr = workdir / "stderr-killed.txt"
    try:
        killed = run_until(command, env, Kill(FIRST_COMMIT, delay), anchors, 0.1, RUN_TIMEOUT_S, str(stderr))
        killed_at = time.time()
        shutil.copy(stderr, log)
        if replay.get("ended") is not None and replay.get("exit_code") != 0:
            return [
                Metric(
                    STEP, build, "problem", None, "", detail=f"no replay: {replay.get('output', '')[-500:]}", **common
                )
            ]
        if not killed.killed:
            feeder.join()
            return [
                Metric(
                    STEP,
                    build,
                    "problem",
                    None,
                    "",
                    detail=f"the run ended (exit {killed.exit_code}) before "
                    f"the kill {delay:g} s after its first commit",
                    **common,
                )
            ]
        stage(f"  {build}: killed {killed.seconds_after_start:.1f} s after its start; restarting")
        restarted_at, replay["restarted"] = time.time(), time.monotonic()
        stderr = workdir / "stderr-restart.txt"
        final = run_until(command, env, None, {}, 0.25, RUN_TIMEOUT_S, str(stderr), done=finished)
    except TimeoutError as error:
        feeder.join()
        return [Metric(STEP, build, "problem", None, "", detail=str(error), **common)]
    finally:
        if stderr.name == "stderr-restart.txt" and stderr.exists():
            with open(log, "a", encoding="utf-8") as out:
                out.write("\n--- restart ---\n" + stderr.read_text(encoding="utf-8", errors="replace"))
    feeder.join()
    if replay.get("exit_code") != 0 or not (replay_dir / LOG_JSON_NAME).exists():
        return [
            Metric(
                STEP,
                build,
                "problem",
                None,
                "",
                detail=f"the replay failed: {replay.get('output', '')[-500:]}",
                **common,
            )
        ]
    return recovery_metrics(
        run,
        build,
        replay_dir,
        commit_log,
        queries,
        workdir,
        oracle_results,
        killed_at,
        restarted_at,
        final.exit_code,
        common,
        kill_words=f"SIGKILL to the process group {delay:g} s after its first commit (seed {seed})",
        first_commit_words="its first commit-log row (the kill is timed from it)",
    ) + poison_outcomes(build, replay_dir, live_input, commit_log, queries, workdir, oracle_results, common)


def recovery_metrics(
    run: RunFolder,
    build: str,
    replay_dir: Path,
    commit_log: Path,
    queries: Sequence[str],
    workdir: Path,
    oracle_results: Path,
    killed_at: float,
    restarted_at: float,
    exit_code: int | None,
    common: dict,
    kill_words: str,
    first_commit_words: str,
    since_seq: int = 0,
) -> list[Metric]:
    """The recovery rows and timeline of one killed and restarted follow run: `replay_dir` the
    replay the kill landed in (times are since its start), `since_seq` the first line of it
    (the commits before are an earlier pass's), the export in `workdir` against
    `oracle_results` (the oracle over everything the run was fed)."""
    start = float(read_replay_summary(replay_dir)["start_epoch_s"])
    units = read_emitted_units(replay_dir)
    commits = read_commits(commit_log)
    progress = committed_progress(commits, queries)
    before = [seq for at, seq in progress if at < start]
    write_timeline(
        run.path / "recovery" / f"{build}-r{common['repeat']}.csv",
        timeline_rows(
            units, ([(start, before[-1])] if before else []) + [(at, seq) for at, seq in progress if at >= start], start
        ),
    )
    since = lambda at: None if at is None else round(at - start, 3)
    after_restart = [c.visible_at for c in commits if c.visible_at >= restarted_at and c.max_seq >= 0]
    backlog = [u.last_seq for u in units if u.intended_at <= restarted_at]
    caught_up = covered_at(commits, queries, max(backlog), restarted_at) if backlog else None
    replay_end = max(u.intended_at for u in units)
    with_input = [c.visible_at for c in commits if c.max_seq >= since_seq]
    rows = [
        Metric(
            STEP,
            build,
            "first_commit_s",
            since(min(with_input)) if with_input else None,
            "s since the replay started",
            detail=first_commit_words,
            **common,
        ),
        Metric(
            STEP,
            build,
            "replay_end_s",
            since(replay_end),
            "s since the replay started",
            detail="the last unit's intended emission",
            **common,
        ),
        Metric(
            STEP,
            build,
            "kill_at_s",
            since(killed_at),
            "s since the replay started",
            detail=f"{kill_words}; "
            + ("while the replay was still emitting" if killed_at < replay_end else "after the replay had ended"),
            **common,
        ),
        Metric(
            STEP,
            build,
            "restart_at_s",
            since(restarted_at),
            "s since the replay started",
            detail="the same command started again",
            **common,
        ),
        Metric(
            STEP,
            build,
            "first_commit_after_restart_s",
            round(min(after_restart) - restarted_at, 3) if after_restart else None,
            "s",
            detail="restart to its first commit-log row that includes input (any query)",
            **common,
        ),
        Metric(
            STEP,
            build,
            "catch_up_s",
            round(caught_up - restarted_at, 3) if caught_up else None,
            "s",
            detail=f"restart to every query covering the {len(backlog)} units due before the restart "
            f"(up to seq {max(backlog) if backlog else '-'})",
            **common,
        ),
        Metric(STEP, build, "exit_code", exit_code, "code", detail="the restarted run, stopped with SIGTERM", **common),
    ]
    for query, counted in line_counts(workdir, build, oracle_results).items():
        if counted is None:
            rows.append(
                Metric(
                    STEP,
                    build,
                    "lost_lines",
                    None,
                    "order lines",
                    query=query,
                    detail="no export of it after the restart",
                    **common,
                )
            )
            continue
        lost, duplicated = counted
        how = (
            "valid lines of the line accounting against the oracle's"
            if query == "line_accounting"
            else "per key: the oracle's order_lines minus the build's, where positive"
        )
        rows += [
            Metric(STEP, build, "lost_lines", lost, "order lines", query=query, detail=how, **common),
            Metric(
                STEP,
                build,
                "duplicated_lines",
                duplicated,
                "order lines",
                query=query,
                detail=how.replace(
                    "oracle's order_lines minus the build's", "build's order_lines minus the oracle's"
                ).replace("against", "beyond"),
                **common,
            ),
        ]
    return rows


def kill_seed(profile, repeat: int, number: int) -> int:
    """The seed of the kill moment of the `number`-th build (0-based) in repeat `repeat`."""
    return profile.seed * 1000 + repeat * 10 + number


def kill_delay(profile, seed: int) -> float:
    """Seconds from the anchor to the kill: between KILL_SHARE of the recovery replay's length."""
    return round(random.Random(seed).uniform(*KILL_SHARE) * profile.recovery_lines / profile.recovery_rate_lps, 2)


def from_follow_run(
    run: RunFolder, live, oracle_results: Path, input_lines: int, profile, delay: float, seed: int
) -> list[Metric]:
    """The recovery rows of a latency-step follow run whose last pass was killed (follow.py's
    LastPass): a warm build, killed while the pass is replayed."""
    common = dict(repeat=1, input_lines=input_lines, rate_lps=profile.recovery_rate_lps)
    if live.killed_at is None or live.restarted_at is None or live.last_replay_dir is None:
        return [
            Metric(
                STEP,
                live.build,
                "problem",
                None,
                "",
                detail="the latency step's follow run did not reach its "
                f"last pass's kill: {live.problem or 'see its log'}",
                **common,
            )
        ]
    first_seq = read_emitted_units(live.last_replay_dir)[0].first_seq
    return recovery_metrics(
        run,
        live.build,
        live.last_replay_dir,
        live.commit_log,
        live.queries,
        live.workdir,
        oracle_results,
        live.killed_at,
        live.restarted_at,
        live.measurement.exit_code if live.measurement else None,
        common,
        kill_words=f"SIGKILL to the process group {delay:g} s after the first file of {LAST_PASS_KILL} landed "
        f"(seed {seed}), the build warm from the passes before",
        first_commit_words="its first commit-log row that includes a line of the last pass",
        since_seq=first_seq,
    )


def run_recovery(
    run: RunFolder,
    followers: dict[str, Follower],
    builds: Sequence[str],
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    settings,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda build, s: None,
    killed_live: Sequence[str] = (),
) -> None:
    """`killed_live`: builds whose first repeat the latency step measured (its follow run's
    last pass killed, `from_follow_run`): no run of their own for that repeat."""
    from experiments.inputs.prepared import prepare_input
    from experiments.progress import Progress
    from experiments.reference.oracle import run_oracle

    plan = [
        (repeat, number, build)
        for repeat in range(1, profile.other_repeats + 1)
        for number, build in enumerate(builds)
        if repeat > 1 or build not in killed_live
    ]
    if killed_live:
        stage(
            f"step recovery | {', '.join(b for b in builds if b in killed_live)} | measured in the latency "
            "step's follow runs (their last pass killed)"
        )
    if not plan:
        return
    files = profile.recovery_lines // profile.file_lines
    live_input = prepare_input(
        data_root,
        profile.recovery_lines,
        profile.seed,
        Progress(quiet=True),
        prefix="recovery",
        files=files,
        poison_after=0,
    )
    run_oracle(live_input, work / "oracle", settings)
    run.update_environment(recovery_input=str(live_input))
    for repeat, number, build in plan:
        started = time.monotonic()
        rows = recover_one(
            run,
            followers[build],
            live_input,
            results_dir(work / "oracle", "oracle"),
            work,
            profile,
            master,
            repeat,
            kill_seed(profile, repeat, number),
            stage,
        )
        run.append(rows)
        stage(outcome_words(build, rows))
        on_done(build, time.monotonic() - started)


def outcome_words(build: str, rows: Sequence[Metric]) -> str:
    figures = {(m.metric, m.query): m.value for m in rows}
    return (
        f"{build}: first commit {figures.get(('first_commit_after_restart_s', ''))} s after the restart, "
        f"caught up after {figures.get(('catch_up_s', ''))} s; lost/duplicated daily_revenue lines "
        f"{figures.get(('lost_lines', 'daily_revenue'))}/{figures.get(('duplicated_lines', 'daily_revenue'))}"
    )
