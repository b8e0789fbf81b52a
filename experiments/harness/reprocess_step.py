"""`lab experiments`' reprocessing step: recomputing every result after a logic change
(`city_revenue_v1`, which merges the two Portlands, to `city_revenue`), at two input sizes or
more, so the report shows how each architecture's recompute grows (DESIGN.md: "Lambda reruns
its batch layer, Kappa replays its log").

Per input size and build, in a fresh workdir, each command in its own process (own JVM),
measured by MeasuredCommand (wall, CPU and peak RSS of the process tree):

- the first computation: `lab run lambda` / `lab run kappa` (rows `initial_wall_s`,
  `initial_cpu_s`), which leaves what a deployed build has: Lambda's master dataset with a
  batch view up to half of it and the speed layer's views after that; Kappa's log and its
  serving version v1. At the size of the drain input, when the drains ran in this run
  folder, the last drain repeat is that first computation (the same command on the same
  input): its workdir is copied and its figures are reused, which saves two JVMs. With
  `profile.reprocess_on_live`, the latency step's follow run of the build (when it ran in
  this run folder and stopped cleanly) stands for the largest size: its workdir is copied
  and the recompute runs over the whole live input it landed (a deployed build that has been
  following its input; no `initial_*` rows: that first computation was live, not a run
  to time), which saves two more;
- the recompute (rows `wall_s`, `cpu_s`, `peak_rss_mb`, `exit_code`): Lambda `lab lambda
  batch --version v2` (the batch layer over the whole master dataset into a new view
  version, then published; v1 stays readable);
  Kappa `lab kappa replay --version v2` (every query from the start of the log into new
  tables, drained until a pass finds nothing new, then the cut-over, then the export).
  Kappa also reports the replay's own time without the JVM start (`catch_up_s`);
- the check: the recomputed `city_revenue` against the oracle's, in the export the
  recompute writes once its result serves (Kappa's after the cut-over, Lambda's after the
  handoff: what the serving layer answers), inside the measured process for both.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.harness.builds import BUILDS, REPROCESSING_BUILDS
from experiments.harness.drain_step import cost_metrics
from experiments.harness.equivalence import first_differences
from experiments.harness.measure import measure_command
from experiments.harness.run_folder import Metric, RunFolder
from experiments.harness.systems import lab_command, system_command
from experiments.inputs.prepared import prepare_input
from shared.export import export_path

STEP = "reprocessing"
QUERY = "city_revenue"
ROWS_PER_FILE = 1_000  # several files, so Lambda's drain leaves a speed layer for the batch run to absorb
NEW_VERSION = "v2"  # the version each build reprocesses into; v1 stays readable until dropped


def recompute_command(
    build: str, input_dir: Path, workdir: Path, master: str | None, version: str = NEW_VERSION
) -> list[str]:
    """The build's reprocessing into `version` (its registry entry's `reprocess`)."""
    reprocess = BUILDS[build].reprocess
    if reprocess is None:
        raise ValueError(f"the {build} build has no reprocessing command")
    return lab_command(reprocess(version), input_dir, workdir, master)


def recompute_summary(build: str) -> str:
    return f"{BUILDS[build].reprocess_summary} (--version {NEW_VERSION})"


def replay_outcome(log_text: str) -> dict:
    """The JSON object `lab kappa replay` prints when it has cut over ({} when absent)."""
    match = re.search(r"^\{\n.*?^\}$", log_text, re.M | re.S)
    try:
        return json.loads(match.group(0)) if match else {}
    except ValueError:
        return {}


def check_served(build: str, workdir: Path, oracle_results: Path) -> tuple[int | None, str]:
    """(rows differing from the oracle's city_revenue, verdict in words) in the export the
    recompute wrote (Lambda's batch run and Kappa's replay both write one once they serve)."""
    produced = export_path(workdir, build, QUERY)
    if not produced.exists():
        return None, f"not compared: no {QUERY} result after the recompute"
    count, shown = first_differences(oracle_results / f"{QUERY}.csv", produced)
    return count, (
        "identical: the recomputed city_revenue equals the oracle's"
        if count == 0
        else f"DIFFERS: {count} rows; first differences: {shown}"
    )


@dataclass(frozen=True)
class DrainDone:
    """A drain of this run folder that is the first computation at its input's size."""

    workdir: Path
    repeat: int
    wall_s: float
    cpu_s: float


def drains_done(run: RunFolder, work: Path) -> dict[str, DrainDone]:
    """Per build, the last drain repeat of this run folder that exited 0 (its workdir kept
    under the work folder's drains/)."""
    found: dict[str, DrainDone] = {}
    rows = [r for r in run.metrics() if r["step"] == "drain" and r["build"] in REPROCESSING_BUILDS and r["repeat"]]
    for build in REPROCESSING_BUILDS:
        figures: dict[int, dict[str, float]] = {}
        for r in rows:
            if r["build"] == build and r["metric"] in ("exit_code", "wall_s", "cpu_s") and r["value"] != "":
                figures.setdefault(int(r["repeat"]), {})[r["metric"]] = float(r["value"])
        good = [repeat for repeat, f in figures.items() if f.get("exit_code") == 0 and "wall_s" in f and "cpu_s" in f]
        if good and (work.parent / "drains" / f"{build}-r{max(good)}").is_dir():
            last = max(good)
            found[build] = DrainDone(
                work.parent / "drains" / f"{build}-r{last}", last, figures[last]["wall_s"], figures[last]["cpu_s"]
            )
    return found


def followed(run: RunFolder, work: Path, build: str) -> Path | None:
    """The workdir of the latency step's follow run of `build` in this run folder, when it
    exited 0 (its landing directory then holds every file it was fed)."""
    workdir = work.parent / "latency" / f"live-{build}"
    exits = [
        r["value"]
        for r in run.metrics()
        if r["step"] == "latency" and r["build"] == build and r["metric"] == "exit_code"
    ]
    return workdir if exits and exits[-1] != "" and float(exits[-1]) == 0 and (workdir / "landing").is_dir() else None


def _fresh_copy(source: Path, workdir: Path) -> Path:
    """`workdir` as a copy of `source` (a run's workdir; the original stays as it was)."""
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.copytree(source, workdir, symlinks=True)
    return workdir


def copy_followed(source: Path, work: Path, build: str, repeat: int) -> Path:
    """A copy of a follow run's workdir to recompute in; its landing directory is the input."""
    return _fresh_copy(source, work / f"{build}-live-r{repeat}")


def reprocess_one(
    run: RunFolder,
    build: str,
    input_dir: Path,
    input_lines: int,
    oracle_results: Path,
    work: Path,
    master: str | None,
    repeat: int,
    timeout_s: float,
    drained: DrainDone | None = None,
    workdir: Path | None = None,
) -> list[Metric]:
    """One build at one size; `drained`: the drain that already did the first computation
    on this input (its workdir is copied, its figures reused); `workdir`: a deployed build's
    workdir to recompute in as it is (a copy of a follow run's: no first computation here)."""
    deployed = workdir is not None
    workdir = workdir or work / f"{build}-{input_lines}-r{repeat}"
    initial_log = run.log_path(f"reprocessing-{build}-{input_lines}-r{repeat}-initial")
    recompute_log = run.log_path(f"reprocessing-{build}-{input_lines}-r{repeat}")
    common: dict[str, Any] = dict(repeat=repeat, input_lines=input_lines)
    if deployed:
        rows = []
    elif drained is not None:
        _fresh_copy(drained.workdir, workdir)
        rows = [
            Metric(
                STEP,
                build,
                "initial_wall_s",
                drained.wall_s,
                "s",
                detail=f"lab run {build}: the first "
                f"computation, whole process (the drain step's repeat {drained.repeat}, same input)",
                **common,
            ),
            Metric(
                STEP,
                build,
                "initial_cpu_s",
                drained.cpu_s,
                "s",
                detail=f"user + system over the process tree (the drain step's repeat {drained.repeat})",
                **common,
            ),
        ]
    else:
        try:
            initial = measure_command(system_command(build, input_dir, workdir, master), initial_log, timeout=timeout_s)
        except TimeoutError as error:
            return [Metric(STEP, build, "problem", None, "", detail=str(error), **common)]
        rows = [
            Metric(
                STEP,
                build,
                "initial_wall_s",
                initial.wall_s,
                "s",
                detail=f"lab run {build}: the first computation, whole process",
                **common,
            ),
            Metric(
                STEP, build, "initial_cpu_s", initial.cpu_s, "s", detail="user + system over the process tree", **common
            ),
        ]
        if initial.exit_code != 0:
            return rows + [
                Metric(
                    STEP,
                    build,
                    "problem",
                    None,
                    "",
                    detail=f"lab run {build} exited {initial.exit_code}, see {initial_log}",
                    **common,
                )
            ]
    # the first run's export goes: the one checked below is the recompute's own
    shutil.rmtree(export_path(workdir, build, QUERY).parent, ignore_errors=True)
    try:
        measured = measure_command(
            recompute_command(build, input_dir, workdir, master), recompute_log, timeout=timeout_s
        )
    except TimeoutError as error:
        return rows + [Metric(STEP, build, "problem", None, "", detail=str(error), **common)]
    rows += [
        Metric(
            m.step,
            m.build,
            m.metric,
            m.value,
            m.unit,
            repeat=repeat,
            input_lines=input_lines,
            detail=f"{recompute_summary(build)}; {m.detail}".rstrip("; "),
        )
        for m in cost_metrics(STEP, build, measured, repeat, input_lines, recompute_log)
    ]
    if measured.exit_code != 0:
        return rows
    outcome = replay_outcome(recompute_log.read_text(encoding="utf-8", errors="replace"))  # a replay's own
    if "catch_up_seconds" in outcome:
        rows.append(
            Metric(
                STEP,
                build,
                "catch_up_s",
                outcome["catch_up_seconds"],
                "s",
                detail=f"inside the process, JVM start excluded: {outcome.get('passes')} passes "
                f"over {outcome.get('input_rows')} input rows",
                **common,
            )
        )
    count, verdict = check_served(build, workdir, oracle_results)
    rows.append(Metric(STEP, build, "equivalence", count, "rows differing", query=QUERY, detail=verdict, **common))
    return rows


def run_reprocessing(
    run: RunFolder,
    builds: Sequence[str],
    profile,
    data_root: Path,
    work: Path,
    master: str | None,
    settings,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda build, s: None,
    timeout_s: float = 3600.0,
) -> None:
    import time

    from experiments.progress import Progress
    from experiments.reference.oracle import run_oracle
    from shared.export import results_dir

    drained = drains_done(run, work)
    drain_input = run.environment().get("drain_input")
    generated_drain = (
        drain_input
        and Path(drain_input).resolve()
        == prepare_input(data_root, profile.drain_rows, profile.seed, Progress(quiet=True)).resolve()
    )
    inputs = []
    for rows in profile.reprocess_rows:
        if rows == profile.drain_rows and drain_input and generated_drain:  # the drains' input: its runs come first
            input_dir, reuse = Path(drain_input), True
        else:
            input_dir, reuse = (
                prepare_input(
                    data_root,
                    rows,
                    profile.seed,
                    Progress(quiet=True),
                    prefix="reprocess",
                    files=max(2, rows // ROWS_PER_FILE),
                ),
                False,
            )
        oracle = run_oracle(input_dir, work / f"oracle-{rows}", settings)
        inputs.append((input_dir, oracle.raw_lines, results_dir(work / f"oracle-{rows}", "oracle"), reuse))
    live = {build: followed(run, work, build) for build in builds} if profile.reprocess_on_live else {}
    for repeat in range(1, profile.other_repeats + 1):
        for build in builds:
            started = time.monotonic()
            plan: list[tuple[Path, int, Path, bool, Path | None]] = [(*entry, None) for entry in inputs]
            followed_workdir = live.get(build)
            if followed_workdir and len(plan) > 1 and not plan[-1][3]:
                # the follow run stands for the largest generated size; each repeat recomputes in a copy of it
                workdir = copy_followed(followed_workdir, work, build, repeat)
                oracle = run_oracle(workdir / "landing", work / f"oracle-live-{build}-r{repeat}", settings)
                plan[-1] = (
                    workdir / "landing",
                    oracle.raw_lines,
                    results_dir(work / f"oracle-live-{build}-r{repeat}", "oracle"),
                    False,
                    workdir,
                )
            for input_dir, lines, oracle_results, reuse, deployed in plan:
                first = drained.get(build) if reuse and repeat == 1 else None
                stage(
                    f"step reprocessing | {build} | {lines:,} lines: "
                    + (
                        f"the drain's run (repeat {first.repeat})"
                        if first
                        else "the latency step's follow run"
                        if deployed
                        else "the first run"
                    )
                    + f", then {recompute_summary(build).split(':')[0]}"
                )
                metrics = reprocess_one(
                    run, build, input_dir, lines, oracle_results, work, master, repeat, timeout_s, first, deployed
                )
                run.append(metrics)
                wall = next((m.value for m in metrics if m.metric == "wall_s"), None)
                stage(f"{build}: recompute of {lines:,} lines " + (f"{wall:.1f} s" if wall is not None else "failed"))
            on_done(build, time.monotonic() - started)
