"""`lab run lambda`: ingest the input into the master dataset, run the batch layer up to
a cutoff, the speed layer after it, and answer every query through the serving layer."""
from __future__ import annotations

import shutil
from dataclasses import replace

from lambda_arch.batch_layer import run_batch_layer
from lambda_arch.layout import BUILD, LambdaConfig
from lambda_arch.master_dataset import accounting, master_version, start_ingest
from lambda_arch.serving_layer import log_published_cutoff, publish_cutoff, serve
from lambda_arch.speed_layer import SpeedCommitLogger, start_speed_layer
from shared.commit_log import CommitLog
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.results import export_rows
from shared.streaming import await_all


def choose_cutoff(spark, config: LambdaConfig, fraction: float) -> int:
    """A master version about `fraction` of the way through its history."""
    latest = master_version(spark, config)
    if latest is None:
        raise RuntimeError("the master dataset is empty: nothing was ingested")
    return min(latest, int(latest * fraction))


def run(spark, config: LambdaConfig, fresh: bool = False, batch_fraction: float = 0.5) -> dict[str, str]:
    """Process the whole input; the batch layer covers about `batch_fraction` of the
    master dataset's versions and the speed layer the rest, so both paths are exercised."""
    if fresh:
        shutil.rmtree(config.root, ignore_errors=True)
        CommitLog(config.commit_log).clear()   # the commit log describes this run only
    layout = inspect_input(config.input_dir)
    if config.max_files_per_trigger is None:  # several ingest batches, so a cutoff falls between them
        config = replace(config, max_files_per_trigger=max(1, len(layout.sales_files) // 4))
    await_all([start_ingest(spark, config)])
    cutoff = choose_cutoff(spark, config, batch_fraction)
    batch_views = run_batch_layer(spark, config, cutoff)
    publish_cutoff(config, cutoff)
    log_published_cutoff(spark, config, cutoff, list(batch_views))
    if cutoff < master_version(spark, config):
        _run_speed_layer(spark, config, cutoff)
    counts = accounting(spark, config)
    return write_results(config.workdir, BUILD, layout, config.queries, raw_lines=counts["raw_lines"],
                         valid_lines=counts["valid_lines"], quarantine=counts["quarantine"],
                         quality_dir=config.quality_dir,
                         result_rows=lambda query: export_rows(serve(spark, config, query), query))


def _run_speed_layer(spark, config: LambdaConfig, cutoff: int) -> None:
    """The speed layer to the end of the master dataset, each commit in the commit log."""
    commits = SpeedCommitLogger(config).attach(spark)
    queries = []
    try:
        queries = start_speed_layer(spark, config, cutoff)
        await_all(queries)
    finally:
        commits.detach(spark, queries)
