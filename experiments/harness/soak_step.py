"""`lab experiments --profile soak`: each build following one constant-rate replay for half an
hour (Profile.soak_seconds), to see whether it holds: latency, memory, CPU and the files of
its Delta tables per window of the run (Profile.soak_window_s, 5 minutes), and its results
export against the oracle at the end.

The rate is `soak_share` (half) of the build's sustainable throughput found by this run's
throughput step (the soak profile runs it first), else the profile's `soak_fallback_lps`,
said so in the row. As in every live run, a warm-up pass (`start_warmup_s` at half the rate)
is replayed and committed first, in no figure; the windows count from the measured replay's
start. Latency per unit is the latency step's (experiments/harness/live_figures.py); memory
and CPU are samples of the follow process's tree every `soak_sample_s` (MeasuredCommand's
series); the files of each Delta table under the build's workdir are counted from the
table's log every `soak_sample_s` (shared/delta_log.active_files: no JVM).

Rows (step `soak`): per window (its number in `repeat`, 1 the first, its minutes in the
detail) `latency_p50_s`, `latency_p99_s` and `units` (query `all`), `rss_mb` (median of the
window's samples), `cpu_cores` (CPU seconds over the window's seconds), `delta_files` (query:
the table; its count at the window's last sample); per build `soak_rate_lps`, the process's
cost, the export's equivalence, and the verdicts `p99_growth` (the last window's p99 over the
first's: at most P99_GROWTH_MAX) and `rss_growth` (the last window's memory over the second's,
once the first five minutes are over: at most RSS_GROWTH_MAX). The raw samples are in the run
folder's soak/ (with each unit's latency) for anyone who wants them; the report reads the rows only. The figures and
their targets: experiments/harness/soak_figures.py.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from experiments.harness.drain_step import cost_metrics, equivalence_metrics
from experiments.harness.equivalence import compare_build
from experiments.harness.follow import Follower, Pass, run_follow
from experiments.harness.latency_step import failure
from experiments.harness.live_figures import rate_steps_over_files, unit_rows, write_unit_rows
from experiments.harness.measure import Sample
from experiments.harness.run_folder import Metric, RunFolder, number
from experiments.harness.soak_figures import (
    P99_GROWTH_MAX,
    RSS_GROWTH_MAX,
    STEP,
    FileCount,
    growth_metrics,
    window_metrics,
)
from experiments.inputs.schedule import LOG_JSON_NAME, read_replay_summary


def soak_rate(rows: Sequence[Mapping], build: str, profile) -> tuple[float, str]:
    """The rate a build soaks at, and where it comes from: `profile.soak_share` of the newest
    `sustainable_lps` this run's throughput step found for it, else the profile's fallback."""
    knees = [
        number(r)
        for r in rows
        if r["step"] == "throughput" and r["build"] == build and r["metric"] == "sustainable_lps" and number(r)
    ]
    if knees:
        knee = knees[-1]
        assert knee is not None
        return round(profile.soak_share * knee, 1), (
            f"{profile.soak_share:.0%} of its sustainable throughput, {knee:g} lines/s (this run's throughput step)"
        )
    return profile.soak_fallback_lps, (
        f"the profile's {profile.soak_fallback_lps:g} lines/s: this run has no sustainable throughput for "
        f"{build} (run the throughput step first, as the soak profile does)"
    )


def delta_tables(workdir: Path) -> list[Path]:
    """Every Delta table under a build's workdir (a folder holding `_delta_log`)."""
    return sorted(log.parent for log in Path(workdir).rglob("_delta_log") if log.is_dir())


class FileCounter:
    """Counts the files of every Delta table under a workdir every `every` seconds, in a
    thread of its own, until `stop()`."""

    def __init__(self, workdir: Path, every: float):
        from shared.delta_log import active_files

        self.workdir, self.every = Path(workdir), every
        self.counts: list[FileCount] = []
        self._active_files = active_files
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FileCounter:
        self._thread.start()
        return self

    def stop(self) -> list[FileCount]:
        self._stop.set()
        self._thread.join()
        return self.counts

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            now = time.time()
            for table in delta_tables(self.workdir):
                try:
                    files = self._active_files(table)
                except (OSError, ValueError, KeyError):  # a checkpoint being written: the next sample counts
                    continue
                if files is not None:
                    self.counts.append(FileCount(round(now, 3), str(table.relative_to(self.workdir)), files))


def write_samples(run: RunFolder, build: str, samples: Sequence[Sample], counts: Sequence[FileCount]) -> None:
    """The raw samples, beside the rows (soak/<build>-memory.csv and soak/<build>-files.csv)."""
    folder = run.path / STEP
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{build}-memory.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at_epoch_s", "rss_mb", "cpu_s"])
        writer.writerows((s.at_epoch_s, s.rss_mb, s.cpu_s) for s in samples)
    with open(folder / f"{build}-files.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["at_epoch_s", "table", "files"])
        writer.writerows((c.at_epoch_s, c.table, c.files) for c in counts)


def run_soak(
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
) -> None:
    """Each build's soak in its own follow process, one after the other (see the module doc)."""
    from experiments.harness.systems import run_statuses
    from experiments.inputs.prepared import prepare_input
    from experiments.progress import Progress
    from experiments.reference.oracle import run_oracle
    from shared.export import results_dir

    for build in builds:
        rate, source = soak_rate(run.metrics(), build, profile)
        file_lines = profile.file_lines_at(rate)
        warm = profile.whole_files(rate / 2, profile.start_warmup_s, file_lines)
        measured = profile.whole_files(rate, profile.soak_seconds, file_lines)
        lines = (warm + measured) * file_lines
        stage(
            f"step soak | {build} | {rate:g} lines/s ({source}) for {profile.soak_seconds / 60:g} min, "
            f"{lines:,} lines in {warm + measured} files"
        )
        soak_input = prepare_input(
            data_root, lines, profile.seed, Progress(quiet=True), prefix="soak", files=warm + measured
        )
        oracle = run_oracle(soak_input, work / f"oracle-{build}", settings)
        warmup = Pass((0, warm), tuple(rate_steps_over_files(soak_input, [rate / 2], [warm])))
        replay = Pass((warm, warm + measured), tuple(rate_steps_over_files(soak_input, [rate], [measured], warm)))
        workdir = work / f"soak-{build}"
        counter = FileCounter(workdir, profile.soak_sample_s).start()
        try:
            live = run_follow(
                followers[build],
                soak_input,
                workdir,
                warmup=warmup,
                passes=[replay],
                interval=profile.interval,
                master=master,
                drain_timeout_s=profile.drain_timeout_s,
                stage=lambda message: stage(f"  {message}"),
                series_every_s=profile.soak_sample_s,
            )
        finally:
            counts = counter.stop()
        log = run.keep_log(live.log, f"soak-{build}")
        write_samples(run, build, live.series, counts)
        metrics = [Metric(STEP, build, "soak_rate_lps", rate, "lines/s", input_lines=oracle.raw_lines, detail=source)]
        metrics += cost_metrics(
            STEP, build, live.cost, 1, oracle.raw_lines, log, rate_lps=rate, scope="the follow process, start to stop"
        )
        if (live.replay_dir / LOG_JSON_NAME).exists():
            start = float(read_replay_summary(live.replay_dir)["start_epoch_s"])
            rows = unit_rows(live.replay_dir, live.commit_log, live.queries, 0.0)
            write_unit_rows(run.path / STEP / f"{build}-units.csv", rows)
            windows = window_metrics(
                build, rows, live.series, counts, start, profile.soak_window_s, rate, oracle.raw_lines
            )
            metrics += windows + growth_metrics(build, windows, rate, oracle.raw_lines)
        if live.ok:
            verdicts = compare_build(
                workdir,
                build,
                results_dir(work / f"oracle-{build}", "oracle"),
                run_statuses(live.final_log),
                None,
                settings,
            )
            metrics += equivalence_metrics(STEP, build, verdicts, 1, oracle.raw_lines, rate)
        else:
            metrics.append(
                Metric(STEP, build, "problem", None, "", repeat=1, input_lines=oracle.raw_lines, detail=failure(live))
            )
        run.append(metrics)
        stage(f"  {build}: " + outcome_words(metrics))
        on_done(build, live.measurement.wall_s if live.measurement else 0.0)


def outcome_words(metrics: Sequence[Metric]) -> str:
    """One line for the progress display: the verdicts and the equivalence."""
    value = lambda name: next((m.value for m in metrics if m.metric == name), None)
    p99, rss = value("p99_growth"), value("rss_growth")
    compared = [m for m in metrics if m.metric == "equivalence"]
    differing = [m.query for m in compared if m.value]
    problem = next((m.detail for m in metrics if m.metric == "problem"), "")
    export = (
        f"export differs on {', '.join(differing)}"
        if differing
        else "export identical to the oracle's"
        if compared
        else f"export not compared ({problem})"
    )
    return (
        f"p99 last/first window {f'{p99:g}x' if p99 is not None else 'n/a'} (target <= {P99_GROWTH_MAX:g}), "
        f"memory growth {f'{rss:+.1%}' if rss is not None else 'n/a'} (target < {RSS_GROWTH_MAX:.0%}), {export}"
    )
