"""`lab run lambda`: ingest the input into the master dataset, run the batch layer up to
a cutoff, the speed layer after it, and answer every query through the serving layer."""
from __future__ import annotations

import shutil
from dataclasses import replace

from lambda_arch.batch_layer import run_batch_layer
from lambda_arch.layout import BUILD, LambdaConfig
from lambda_arch.master_dataset import accounting, master_version, start_ingest
from lambda_arch.serving_layer import publish_cutoff, serve
from lambda_arch.speed_layer import start_speed_layer
from shared.export import clear_results, results_dir, write_accounting
from shared.inputs import inspect_input
from shared.quality import write_summary
from shared.results import write_spark_export
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
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    layout = inspect_input(config.input_dir)
    if config.max_files_per_trigger is None:  # several ingest batches, so a cutoff falls between them
        config = replace(config, max_files_per_trigger=max(1, len(layout.sales_files) // 4))
    await_all([start_ingest(spark, config)])
    cutoff = choose_cutoff(spark, config, batch_fraction)
    run_batch_layer(spark, config, cutoff)
    publish_cutoff(config, cutoff)
    if cutoff < master_version(spark, config):
        await_all(start_speed_layer(spark, config, cutoff))
    skipped = layout.not_applicable()
    clear_results(config.workdir, BUILD)
    counts = accounting(spark, config)
    write_accounting(config.workdir, BUILD, counts["raw_lines"], counts["valid_lines"], counts["quarantine"])
    write_summary(config.quality_dir, results_dir(config.workdir, BUILD))
    status = {}
    for query in config.queries:
        if query in skipped:
            status[query] = "not applicable: " + skipped[query]
            continue
        write_spark_export(serve(spark, config, query), config.workdir, BUILD, query)
        status[query] = "written"
    return status
