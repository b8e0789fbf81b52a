"""`lab run dstream`: the legacy StreamingContext application.

It watches a landing directory with textFileStream; the runner replays the input's
sales files into it (written elsewhere, then renamed: textFileStream needs files to
appear atomically), waits until every raw line is counted, takes one snapshot of the
running totals and stops.

Every run builds a new StreamingContext and replays the whole input into it. The context
checkpoints to WORKDIR/dstream/checkpoint because updateStateByKey and windowed
reductions need a checkpoint folder, but nothing recovers from it: there is no
`StreamingContext.getOrCreate`, so a run that is stopped or fails starts again from the
first file (with `fresh`, the default, after deleting the folder).
"""
from __future__ import annotations

import csv
import shutil
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from legacy_dstream import pipeline as P
from shared.atomic import copy_file_atomic
from shared.commit_log import CommitLog, commit_log_path
from shared.export import QUERY_NAMES
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.raw_lines import count_raw_lines
from shared.quality import check_batch, expectations_from_input
from shared.sequence import SequenceMap, batch_max_seq
from shared.settings import WorkloadSettings

BUILD = "dstream"
# fulfilment needs a stream-stream join with state expiry: not written for the legacy build.
UNSUPPORTED = {"fulfilment": "not implemented in the legacy build (stream-stream join with state expiry)"}


@dataclass(frozen=True)
class DStreamConfig:
    input_dir: str
    workdir: str
    batch_seconds: float = 1.0
    queries: tuple[str, ...] = QUERY_NAMES
    settings: WorkloadSettings = field(default_factory=WorkloadSettings)
    timeout_seconds: float = 1800.0

    @property
    def root(self) -> Path:
        return Path(self.workdir) / BUILD

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def checkpoint(self) -> str:
        return str(self.root / "checkpoint")

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, BUILD)


def read_catalogue_dict(path: Path | None) -> dict | None:
    if path is None:
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["product"].strip(): (r["category"].strip(), Decimal(r["unit_cost"])) for r in csv.DictReader(handle)}


def batch_file_names(rdd) -> list[str]:
    """The files a textFileStream batch read: its lineage holds one NewHadoopRDD per file,
    named with the file's path (Spark's FileInputDStream; DStreams give no other way)."""
    names, seen, pending = [], set(), [rdd._jrdd.rdd()]
    while pending:
        node = pending.pop()
        if node.id() in seen:
            continue
        seen.add(node.id())
        if node.getClass().getSimpleName() == "NewHadoopRDD" and node.name():
            names.append(node.name())
        dependencies = node.dependencies().iterator()
        while dependencies.hasNext():
            pending.append(dependencies.next().rdd())
    return names


class _Snapshots:
    """Driver-side: the latest collected state of each query, taken when asked, and the
    commit log.

    foreachRDD functions run on the driver, one batch at a time (output operations of a
    batch run in the order they were registered, the line counter first); they must also
    be picklable, because the streaming checkpoint stores them (so no locks here: the
    commit log and the sequence map hold none when pickled).

    Commit log: each batch that read files makes every query's running state one commit:
    a row per query once its state RDD is computed, with max_seq = the highest seq of the
    files read so far (shared/sequence.py over the landing directory, whose names keep
    the input's name order) and rows = the state's rows (keys).
    """

    def __init__(self, commit_log: CommitLog | None = None, sequence: SequenceMap | None = None):
        self.lines_seen = 0
        self.wanted = False
        self.taken: dict[str, list] = {}
        self.commit_log, self.sequence = commit_log, sequence
        self.max_seq: int | None = None
        self.data_batch = None          # the time of the latest batch that read files

    def counter(self, time_, rdd):
        self.lines_seen += rdd.count()
        if self.sequence is not None:
            files = batch_file_names(rdd)
            if files:
                self.max_seq = batch_max_seq(self.sequence, files, self.max_seq)
                self.data_batch = time_

    def collector(self, name):
        def collect(time_, rdd):
            rows = None
            if self.wanted:
                self.taken[name] = rdd.collect()
                rows = len(self.taken[name])
            if name in QUERY_NAMES and self.commit_log is not None and time_ == self.data_batch:
                rows = rdd.count() if rows is None else rows   # computes (and so commits) the state
                self.commit_log.append(name, self.max_seq, rows)
        return collect


def _quality_gate(config: DStreamConfig):
    """foreachRDD: the Great Expectations suite on each batch's valid lines."""
    expectations = expectations_from_input(config.input_dir)
    directory = config.quality_dir

    def gate(batch_time, rdd):
        import pandas as pd

        records = rdd.map(lambda o: o._asdict()).collect()
        if records:
            name = f"batch-{batch_time:%Y%m%dT%H%M%S%f}"
            check_batch(pd.DataFrame.from_records(records), expectations, directory, name)

    return gate


def build_context(spark, config: DStreamConfig, snapshots: _Snapshots, catalogue: dict | None):
    from pyspark.streaming import StreamingContext

    ssc = StreamingContext(spark.sparkContext, config.batch_seconds)
    ssc.checkpoint(config.checkpoint)
    raw = ssc.textFileStream(str(config.landing))
    raw.foreachRDD(snapshots.counter)
    parsed = P.parse(raw)
    lines = P.order_lines(parsed)
    lines.foreachRDD(_quality_gate(config))
    streams = {"line_accounting": P.line_accounting(parsed)}
    simple = ("city_revenue", "daily_revenue", "product_sales", "hourly_sales", "city_revenue_v1")
    for query in config.queries:
        if query in simple:
            streams[query] = getattr(P, query)(lines)
        elif query == "window_revenue":
            streams[query] = P.window_revenue(lines, config.settings)
        elif query == "category_revenue" and catalogue is not None:
            streams[query] = P.category_revenue(lines, catalogue)
    for name, stream in streams.items():
        stream.foreachRDD(snapshots.collector(name))
    return ssc


def replay_files(files, landing: Path, pause_seconds: float = 0.0) -> None:
    """Copy each file into the landing folder atomically: a hidden temp name, then rename."""
    landing.mkdir(parents=True, exist_ok=True)
    for seq, source in enumerate(files):
        copy_file_atomic(source, landing / f"{seq:06d}-{source.name}")
        if pause_seconds:
            time.sleep(pause_seconds)


def run(spark, config: DStreamConfig, fresh: bool = True, progress=None) -> dict[str, str]:
    layout = inspect_input(config.input_dir)
    if fresh and config.root.exists():
        shutil.rmtree(config.root)
    commit_log = CommitLog(config.commit_log)
    if fresh:
        commit_log.clear()   # the commit log describes this run only
    config.landing.mkdir(parents=True, exist_ok=True)
    catalogue = read_catalogue_dict(layout.catalogue)
    expected = sum(count_raw_lines(p) for p in layout.sales_files)
    snapshots = _Snapshots(commit_log, SequenceMap(config.landing))
    ssc = build_context(spark, config, snapshots, catalogue)
    ssc.start()
    try:
        time.sleep(config.batch_seconds)  # files must be newer than the context's start
        replay_files(layout.sales_files, config.landing)
        deadline = time.monotonic() + config.timeout_seconds
        while snapshots.lines_seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"dstream saw {snapshots.lines_seen} of {expected} lines before the timeout")
            if progress:
                progress(snapshots.lines_seen, expected)
            time.sleep(0.2)
        snapshots.wanted = True  # the next batch collects every running total
        while len(snapshots.taken) < 1 + len([q for q in config.queries if q in _streamed(config, catalogue)]):
            if time.monotonic() > deadline:
                raise TimeoutError("dstream did not deliver its final snapshot in time")
            time.sleep(0.2)
    finally:
        # graceful: let the running batch finish, so no Python worker is killed mid-task
        ssc.stop(stopSparkContext=False, stopGraceFully=True)
    return _write(config, layout, snapshots.taken, expected)


def _streamed(config: DStreamConfig, catalogue) -> set[str]:
    names = set(config.queries) - set(UNSUPPORTED)
    if catalogue is None:
        names.discard("category_revenue")
    return names


def _write(config: DStreamConfig, layout, taken: dict, expected: int) -> dict[str, str]:
    outcomes = {k: v[0] for k, v in taken["line_accounting"]}
    valid = outcomes.pop("valid", 0)
    # raw lines counted from the files themselves, so a lost line shows as unbalanced
    return write_results(config.workdir, BUILD, layout, config.queries, raw_lines=expected, valid_lines=valid,
                         quarantine=outcomes, quality_dir=config.quality_dir, unsupported=UNSUPPORTED,
                         result_rows=lambda query: [P.export_row(query, k, v) for k, v in taken[query]])
