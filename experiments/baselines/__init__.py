"""Baselines `lab bench` measures the builds against: the same queries over the same input
as plain batch jobs, one folder per system (spark_batch.py, duckdb_batch.py). Each writes
the results export under WORKDIR/results/<baseline>/ so it is checked against the oracle
like any build, and each runs as its own process:

    python -m experiments.baselines.spark_batch --input DIR --workdir W [--master URL]
    python -m experiments.baselines.duckdb_batch --input DIR --workdir W
"""
