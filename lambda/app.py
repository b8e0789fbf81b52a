"""`lab run lambda`: ingest the input into the master dataset, run the batch layer up to
a cutoff, the speed layer after it, and answer every query through the serving layer.

The batch layer and the speed layer read disjoint master versions (<= cutoff, > cutoff),
so they run side by side: the speed layer's streaming queries work on their own threads
while the batch layer runs its jobs, and the two share the machine's cores. Serving
answers from a cutoff only once it is published (after its batch views are written):
speed-layer commits made before that are logged at the publication (ServingCommits).
"""
from __future__ import annotations

import shutil

from lambda_arch.batch_layer import run_batch_layer
from lambda_arch.layout import BUILD, LambdaConfig
from lambda_arch.master_dataset import accounting, master_version, start_ingest
from lambda_arch.serving_layer import ServingCommits, publish_cutoff, served_rows
from lambda_arch.speed_layer import start_speed_layer
from shared.commit_log import CommitLog
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.progress_log import BatchSteps
from shared.streaming import await_all, stop_between_batches


def choose_cutoff(spark, config: LambdaConfig, fraction: float) -> int:
    """A master version about `fraction` of the way through its history."""
    latest = master_version(spark, config)
    if latest is None:
        raise RuntimeError("the master dataset is empty: nothing was ingested")
    return min(latest, int(latest * fraction))


def run(spark, config: LambdaConfig, fresh: bool = False, batch_fraction: float = 0.5) -> dict[str, str]:
    """Process the whole input; the batch layer covers about `batch_fraction` of the
    master dataset's versions and the speed layer the rest, so both paths are exercised
    (the ingest makes at least two versions when the input has two files or more)."""
    if fresh:
        shutil.rmtree(config.root, ignore_errors=True)
        CommitLog(config.commit_log).clear()   # the commit log describes this run only
    layout = inspect_input(config.input_dir)
    # Where a run spends its time, for `lab bench`'s profile (progress/run.phases.jsonl).
    with BatchSteps(config.progress_file("run.phases")).batch(0) as phase:
        with phase("ingest"):
            await_all([start_ingest(spark, config)])
        cutoff = choose_cutoff(spark, config, batch_fraction)
        skipped = layout.not_applicable()
        commits = ServingCommits.resume(config, cutoff, [q for q in config.queries if q not in skipped])
        speed = start_speed_layer(spark, config, cutoff, commits) if cutoff < master_version(spark, config) else []
        try:
            with phase("batch_layer"):
                batch_rows = run_batch_layer(spark, config, cutoff)
            with phase("publish"):
                publish_cutoff(config, cutoff)
                commits.publish(batch_rows)
            with phase("speed_layer_after_batch_layer"):
                await_all(speed)
        except BaseException:
            stop_between_batches([q for q in speed if q.isActive])
            raise
        with phase("serving"):
            counts = accounting(spark, config)
            results = served_rows(spark, config)
        with phase("export"):
            return write_results(config.workdir, BUILD, layout, config.queries, raw_lines=counts["raw_lines"],
                                 valid_lines=counts["valid_lines"], quarantine=counts["quarantine"],
                                 quality_dir=config.quality_dir, result_rows=lambda query: results.get(query, []))
