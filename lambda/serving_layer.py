"""The serving layer: answer each query by merging the batch and the realtime views.

The serving pointer (serving.json, replaced atomically) names the serving view version
(lambda/versions.py) and the cutoff whose batch views are complete; readers use that
version's batch views of that cutoff plus its realtime views of the lines after it. Every
view is a view file of wide rows (lambda/views.py), so serving every query is one
aggregation over their union. A version that no longer serves is read the same way from
the cutoff it last served (`lab lambda query --version`).

Commit log (shared/commit_log.py, `ServingCommits`): a row per query when a cutoff is
published, and after each speed-layer commit once its cutoff is published, with the
highest input seq the served result then includes and, as `rows`, the rows of the served
result then: its keys in the batch view or a realtime view (`ServedKeys`, kept on the
driver from the views' own rows, so counting costs no Spark job).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pyspark.sql import DataFrame

from lambda_arch import versions
from lambda_arch.layout import FULFILMENT_STREAMS, SPEED_BACKFILL, SPEED_QUERIES, SPEED_VIEWS, LambdaConfig
from lambda_arch.master_dataset import max_seq_through
from lambda_arch.views import (
    export_columns,
    from_driver,
    keys_by_query,
    merge_wide,
    query_result,
    read_view_file,
    rows_by_query,
)
from shared import checkpoints
from shared.commit_log import CommitLog
from shared.sequence import file_name_of


def publish_cutoff(config: LambdaConfig, cutoff: int, note: str = "") -> None:
    """Readers use `config.version`'s views of `cutoff` from now on (one atomic rename)."""
    if versions.manifest(config) is None:
        versions.record(config)  # what the version computes, before anyone reads it
    versions.store(config).cut_over(config.version, note or f"batch views of master v{cutoff}", cutoff=cutoff)


def _serving_record(config: LambdaConfig) -> dict:
    """The serving pointer, read once: its version and cutoff belong to the same cut-over."""
    record = versions.store(config).pointer_record()
    if record is None:
        raise RuntimeError(f"no batch view is published yet ({config.serving_pointer}): run the batch layer")
    return record


def current_cutoff(config: LambdaConfig) -> int:
    return _serving_record(config)["cutoff"]


def published(config: LambdaConfig, version: str | None = None) -> tuple[LambdaConfig, int]:
    """(config of `version`, the cutoff it serves): the serving version by default; a
    retired one at the cutoff it last served."""
    serving = versions.serving_version(config)
    if version is None or version == serving:
        record = _serving_record(config)
        return versions.version_config(config, record["version"]), record["cutoff"]
    at = versions.version_config(config, versions.check_version(version))
    known = versions.manifest(at)
    if known is None:
        have = ", ".join(versions.store(config).names()) or "none"
        raise ValueError(f"no view version {version} in {config.versions_root} (have: {have})")
    if "retired" not in known:
        raise ValueError(
            f"view version {version} was never published (a batch run stopped before publishing "
            f"it): run `lab lambda batch --version {version}` again"
        )
    return at, known["retired"]["cutoff"]


def realtime_rows(config: LambdaConfig, cutoff: int) -> list[dict]:
    """Every realtime view row after `cutoff` so far (each micro-batch's file once)."""
    files = [
        path for name in SPEED_QUERIES for path in sorted(Path(config.realtime_views(cutoff, name)).glob("*.jsonl"))
    ]
    return [row for path in files for row in read_view_file(path)]


def view_rows(config: LambdaConfig, version: str | None = None) -> list[dict]:
    """The wide rows serving adds up now: the published cutoff's batch and realtime views
    (of the serving version, or of `version`)."""
    at, cutoff = published(config, version)
    return read_view_file(at.batch_views(cutoff)) + realtime_rows(at, cutoff)


def merged_views(spark, config: LambdaConfig, version: str | None = None) -> DataFrame:
    """Every query's served result as wide rows."""
    return merge_wide(from_driver(spark, view_rows(config, version)))


def serve(spark, config: LambdaConfig, query: str, version: str | None = None) -> DataFrame:
    """One query's served result, in the columns of its export."""
    return query_result(merged_views(spark, config, version), query)


def served_rows(spark, config: LambdaConfig, version: str | None = None) -> dict[str, list[dict]]:
    """Every query's served result as export rows (one Spark job for all of them)."""
    return rows_by_query(export_columns(merged_views(spark, config, version)).collect())


class ServedKeys:
    """query -> the keys the serving layer has a row for (batch view or realtime view)."""

    def __init__(self, keys: dict[str, set[tuple]] | None = None):
        self._keys = keys or {}
        self._lock = threading.Lock()

    def add(self, wide_rows) -> None:
        with self._lock:
            for query, keys in keys_by_query(wide_rows).items():
                self._keys.setdefault(query, set()).update(keys)

    def rows(self, query: str) -> int:
        with self._lock:
            return len(self._keys.get(query, ()))


class ServingCommits:
    """The commit-log rows of one cutoff's serving: at publication, then after each
    speed-layer commit. The speed layer may commit before the batch layer has published
    its cutoff (the two run side by side): serving cannot answer from those commits yet,
    so their rows wait for the publication, whose rows then include them.

    `max_seq` of a query: what the master versions it is served from include (the batch
    views: versions <= cutoff; the realtime views: the versions its speed query has
    wholly read); it only grows.
    """

    def __init__(self, config: LambdaConfig, cutoff: int, queries, served: ServedKeys | None = None):
        self.config, self.cutoff, self.queries = config, cutoff, list(queries)
        self.served = served or ServedKeys()
        self.commit_log = CommitLog(config.commit_log)
        self.versions_read: dict[str, int] = {}  # speed query -> last master version wholly read
        self.shipment_files: set[str] = set()  # shipment files the backfill has read (names)
        self.published = False
        self._lock = threading.Lock()

    @staticmethod
    def speed_queries_of(query: str) -> tuple[str, ...]:
        """The speed queries that read master versions for `query` (one of them runs; the
        backfill reads no master version)."""
        return FULFILMENT_STREAMS if query == "fulfilment" else (SPEED_VIEWS,)

    def _max_seq(self, query: str) -> int:
        read = (self.versions_read.get(name, self.cutoff) for name in self.speed_queries_of(query))
        version = max(self.cutoff, *read)
        return max_seq_through(self.config, version)

    def publish(self, batch_rows) -> None:
        """Call right after the cutoff's pointer is published, with the batch views' rows."""
        visible_at = time.time()  # readable since publish_cutoff returned
        self.served.add(batch_rows)
        with self._lock:
            self.published = True
            self._append(self.queries, visible_at)

    def speed_commit(self, speed_query: str, version_read: int | None, queries, wide_rows, shipment_files=()) -> None:
        """After a speed-layer micro-batch's view file is in place: it read master versions
        up to `version_read` (the backfill: shipment files `shipment_files`) and added
        `wide_rows` for `queries`."""
        self.served.add(wide_rows)
        with self._lock:
            self.shipment_files.update(shipment_files)
            visible_at = time.time()  # after the file is in place, and never before a publication
            previous = self.versions_read.get(speed_query, self.cutoff)
            if version_read is not None:
                self.versions_read[speed_query] = max(previous, version_read)
            if not self.published or (not wide_rows and self.versions_read.get(speed_query, previous) == previous):
                return  # not served yet (logged at publication), or nothing new to serve
            self._append([q for q in queries if q in self.queries], visible_at)

    def _append(self, queries, visible_at: float) -> None:
        by_seq: dict[int, list[str]] = {}
        for query in queries:
            by_seq.setdefault(self._max_seq(query), []).append(query)
        for max_seq, group in by_seq.items():
            self.commit_log.append_many(group, max_seq, {q: self.served.rows(q) for q in group}, visible_at)

    @classmethod
    def resume(cls, config: LambdaConfig, cutoff: int, queries) -> ServingCommits:
        """For a cutoff whose speed layer may have run before (a restart after a crash):
        the realtime views already there count as served, and so do the master versions
        their committed micro-batches read."""
        from shared.delta_versions import versions_committed

        commits = cls(config, cutoff, queries)
        commits.served.add(realtime_rows(config, cutoff))
        for name in SPEED_QUERIES:
            version = versions_committed(config.speed_checkpoint(cutoff, name))
            if version is not None and version > cutoff:
                commits.versions_read[name] = version
        backfill = config.speed_checkpoint(cutoff, SPEED_BACKFILL)
        for batch_id in checkpoints.committed_batches(backfill):
            commits.shipment_files.update(file_name_of(path) for path in checkpoints.files_of_batch(backfill, batch_id))
        return commits
