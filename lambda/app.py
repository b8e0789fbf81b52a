"""`lab run lambda`: ingest the input into the master dataset, run the batch layer up to
a cutoff, the speed layer after it, and answer every query through the serving layer.
`follow` keeps all of it running on an arriving input, the batch layer on a schedule.

The batch layer and the speed layer read disjoint master versions (<= cutoff, > cutoff),
so they run side by side: the speed layer's streaming queries work on their own threads
while the batch layer runs its jobs, and the two share the machine's cores. Serving
answers from a cutoff only once it is published (after its batch views are written):
speed-layer commits made before that are logged at the publication (ServingCommits).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from lambda_arch import versions
from lambda_arch.batch_layer import run_batch_layer
from lambda_arch.layout import (
    BUILD,
    MASTER_STREAMS,
    SPEED_BACKFILL,
    SPEED_DRAIN_FULFILMENT,
    SPEED_FULFILMENT,
    SPEED_QUERIES,
    LambdaConfig,
)
from lambda_arch.master_dataset import accounting, master_version, start_ingest
from lambda_arch.serving_layer import ServingCommits, current_cutoff, publish_cutoff, served_rows
from lambda_arch.speed_layer import speed_query_name, start_backfill, start_speed_layer
from lambda_arch.views import read_view_file
from shared.atomic import write_text_atomic
from shared.commit_log import CommitLog
from shared.finish import write_results
from shared.inputs import inspect_input
from shared.kafka import watching_broker
from shared.progress_log import BatchSteps
from shared.streaming import DELTA_READER_POLL, await_all, plain_failure, stop_between_batches


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
        CommitLog(config.commit_log).clear()  # the commit log describes this run only
    config = versions.serving_config(config)  # the serving view version's views (v1 on a new workdir)
    layout = inspect_input(config.input_dir, require_sales=config.source == "files")
    # Where a run spends its time, for `lab bench`'s profile (progress/run.phases.jsonl).
    with BatchSteps(config.progress_file("run.phases")).batch(0) as phase:
        with phase("ingest"):
            await_all([start_ingest(spark, config)])
        cutoff = choose_cutoff(spark, config, batch_fraction)
        # a follow run's stream-stream fulfilment of this cutoff, if one served it: the
        # drain's speed layer pairs these lines itself (speed_layer.py, fulfilment_drain)
        drop_speed_query(config, cutoff, SPEED_FULFILMENT)
        skipped = layout.not_applicable()
        commits = ServingCommits.resume(config, cutoff, [q for q in config.queries if q not in skipped])
        latest = master_version(spark, config)
        assert latest is not None  # choose_cutoff found one
        speed = start_speed_layer(spark, config, cutoff, commits) if cutoff < latest else []
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
            return _export(spark, config, layout, counts, results)


def _export(spark, config: LambdaConfig, layout, counts=None, results=None) -> dict[str, str]:
    counts = counts or accounting(spark, config)
    results = results if results is not None else served_rows(spark, config)
    return write_results(
        config.workdir,
        BUILD,
        layout,
        config.queries,
        raw_lines=counts["raw_lines"],
        valid_lines=counts["valid_lines"],
        quarantine=counts["quarantine"],
        quality_dir=config.quality_dir,
        result_rows=lambda query: results.get(query, []),
    )


def export_served(spark, config: LambdaConfig) -> dict[str, str]:
    """The results export of what the serving view version answers now (after `batch_now`)."""
    config = versions.serving_config(config)
    return _export(spark, config, inspect_input(config.input_dir, require_sales=config.source == "files"))


# ---------------------------------------------------------------------------------------
# Following an arriving input: ingest, speed layer and a scheduled batch layer
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSchedule:
    """When the batch layer runs again: every `seconds`, or once the master dataset has
    `versions` new versions since the cutoff."""

    seconds: float | None = None
    versions: int | None = None

    @classmethod
    def parse(cls, text: str) -> BatchSchedule:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|minutes?|versions?)\s*", text)
        if match is None:
            raise ValueError(
                f'--batch-every {text!r}: give a duration ("60 seconds", "5 minutes") '
                f'or a number of master versions ("10 versions")'
            )
        amount, unit = float(match.group(1)), match.group(2)
        if unit.startswith("version"):
            if amount < 1 or amount != int(amount):
                raise ValueError(f"--batch-every {text!r}: a whole number of versions, at least 1")
            return cls(versions=int(amount))
        seconds = amount * (60 if unit.startswith("m") else 1)
        if seconds <= 0:
            raise ValueError(f"--batch-every {text!r}: a positive duration")
        return cls(seconds=seconds)

    def due(self, since_seconds: float, new_versions: int) -> bool:
        if new_versions < 1:
            return False  # nothing new for the batch layer
        if self.versions is not None:
            return new_versions >= self.versions
        assert self.seconds is not None  # parse sets one of the two
        return since_seconds >= self.seconds


@dataclass
class _Serving:
    """What serves now: the published cutoff, its speed layer and its commit-log rows."""

    cutoff: int
    speed: list
    commits: ServingCommits


class LambdaFollower:
    """`lab run lambda --follow`: ingest as files arrive, keep the realtime views current,
    and hand over to a new batch view on `schedule`.

    A handoff to cutoff C' (the master's newest version when it starts):
    1. the batch layer computes the views of versions <= C' (the old cutoff's speed layer
       goes on serving meanwhile);
    2. a speed layer after C' starts and catches up with what the old one had read;
    3. the pointer is published (atomically): serving = batch(C') + realtime(after C');
    4. only then the old speed layer stops and its realtime views and checkpoints go.
    At every moment serving reads one cutoff's batch views and the realtime views after
    it: nothing counted twice, nothing left out. A kill at any step restarts from the
    published cutoff (what a later cutoff left half-done is removed and redone).
    """

    def __init__(
        self,
        spark,
        config: LambdaConfig,
        schedule: BatchSchedule,
        interval: str = "2 seconds",
        on_handoff: Callable[[int], None] | None = None,
        report: Callable[[str], None] = lambda m: None,
    ):
        config = versions.serving_config(config)  # handoffs stay within the serving view version
        self.spark, self.config, self.schedule, self.interval = spark, config, schedule, interval
        self.on_handoff, self.report = on_handoff, report
        self.layout = inspect_input(config.input_dir, require_sales=False)
        skipped = self.layout.not_applicable()
        self.queries = [q for q in config.queries if q not in skipped]
        self.serving: _Serving | None = None
        self.ingest = None
        self.handoffs = 0
        self.batch_started = time.monotonic()

    def _speed(self, cutoff: int) -> _Serving:
        """The speed layer of `cutoff` (whose batch views are written): fulfilment's backfill
        at once, the queries over the master once it has a version after the cutoff."""
        serving = _Serving(cutoff, [], ServingCommits.resume(self.config, cutoff, self.queries))
        serving.speed = start_backfill(
            self.spark, self.config, cutoff, serving.commits, available_now=False, interval=self.interval
        )
        self._ensure_speed(serving)
        return serving

    def _ensure_speed(self, serving: _Serving) -> None:
        """Start the speed layer after the cutoff once the master has a version after it
        (a Delta stream cannot start at a version that does not exist yet)."""
        if (
            not (self._speed_names(serving) & set(MASTER_STREAMS))
            and (master_version(self.spark, self.config) or -1) > serving.cutoff
        ):
            serving.speed += start_speed_layer(
                self.spark,
                self.config,
                serving.cutoff,
                serving.commits,
                available_now=False,
                interval=DELTA_READER_POLL,
            )

    def _forget_other_cutoffs(self, keep: int, just_stopped: int | None = None) -> None:
        """Realtime views and speed checkpoints of any cutoff but `keep` (older ones once
        `keep` serves; a newer one a kill left unpublished, redone by the next handoff)."""
        forget_other_cutoffs(self.config, keep, just_stopped)

    def _wait_caught_up(self, serving: _Serving, versions: dict[str, int], deadline_seconds: float = 600) -> None:
        """Until `serving`'s speed queries have read every master version in `versions`
        (speed query -> version), so the handoff never serves less than before."""
        deadline = time.monotonic() + deadline_seconds
        if any(version > serving.cutoff for version in versions.values()):
            self._ensure_speed(serving)
        while any(
            serving.commits.versions_read.get(name, serving.cutoff) < version
            for name, version in versions.items()
            if name in self._speed_names(serving)
        ):
            self._check(serving.speed)
            if time.monotonic() > deadline:
                raise TimeoutError(f"the speed layer after v{serving.cutoff} did not catch up in {deadline_seconds} s")
            time.sleep(0.2)

    def _catch_up_with(self, new: _Serving, old: _Serving) -> None:
        """Until `new` has read every master version and shipment file `old` has served."""
        self._wait_caught_up(new, dict(old.commits.versions_read))
        self._wait_shipments(new)

    def _wait_shipments(self, serving: _Serving, deadline_seconds: float = 600) -> None:
        """Until `serving`'s batch views or its fulfilment backfill have read every shipment
        file there is now, so the handoff never serves fewer fulfilment pairs than before."""
        folder = self.layout.shipments_dir
        if folder is None or SPEED_BACKFILL not in self._speed_names(serving):
            return
        present = {p.name for p in folder.glob("*.csv") if not p.name.startswith(("_", "."))}
        paired = set(json.loads(self.config.batch_shipments(serving.cutoff).read_text()))
        deadline = time.monotonic() + deadline_seconds
        while not present <= paired | serving.commits.shipment_files:
            self._check(serving.speed)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"fulfilment's backfill after v{serving.cutoff} did not read the shipments in {deadline_seconds} s"
                )
            time.sleep(0.2)

    def _speed_names(self, serving: _Serving) -> set[str]:
        running = {q.name for q in serving.speed}
        return {
            name for name in SPEED_QUERIES if speed_query_name(serving.cutoff, name, self.config.version) in running
        }

    def handoff(self) -> int | None:
        """One batch run to the master's newest version, then the switch; its cutoff."""
        cutoff = master_version(self.spark, self.config)
        if cutoff is None or (self.serving is not None and cutoff <= self.serving.cutoff):
            return None
        self.batch_started = time.monotonic()
        batch_rows = run_batch_layer(self.spark, self.config, cutoff)
        new = self._speed(cutoff)
        old = self.serving
        if old is not None:
            self._catch_up_with(new, old)  # most of the way while the old speed layer still serves
            # The old layer stops before the switch, and the new one catches up with its last
            # micro-batch: one the old read after the first catch-up would be in a commit
            # (visible) and then gone from serving once the pointer moves.
            stop_between_batches(old.speed)
            self._catch_up_with(new, old)
        publish_cutoff(self.config, cutoff)
        new.commits.publish(batch_rows)
        self.serving = new
        self._forget_other_cutoffs(cutoff, just_stopped=old.cutoff if old is not None else None)
        self.handoffs += 1
        self.report(f"lambda: batch views of master v{cutoff} serve now (handoff {self.handoffs})")
        if self.on_handoff is not None:
            self.on_handoff(cutoff)
        return cutoff

    def _check(self, queries) -> None:
        for query in queries:
            if not query.isActive and query.exception() is not None:
                raise plain_failure(query.name, str(query.exception()))

    def start(self) -> None:
        self.ingest = start_ingest(
            self.spark, self.config, available_now=False, interval=self.interval, require_sales=False
        )
        if self.config.serving_pointer.exists():  # a restart: serve what was published
            cutoff = current_cutoff(self.config)
            self._forget_other_cutoffs(cutoff)
            if Path(self.config.speed_checkpoint(cutoff, SPEED_DRAIN_FULFILMENT)).exists():
                # A drain (`lab run lambda`) served this cutoff: its fulfilment paired the lines
                # after it with the shipments the drain had, and keeps no join state for the
                # ones to come. A batch run over everything ingested replaces it (a drain's
                # speed layer runs only when the master has versions after its cutoff).
                self.handoff()
            else:
                self.serving = self._speed(cutoff)
                self.serving.commits.publish(read_view_file(self.config.batch_views(cutoff)))  # served again from now
        self.batch_started = time.monotonic()

    def step(self) -> None:
        """One look: failures, and a handoff when the schedule (or the first data) says so."""
        self._check([self.ingest, *(self.serving.speed if self.serving else [])])
        latest = master_version(self.spark, self.config)
        if latest is None:
            return
        if self.serving is None:
            self.handoff()  # the first batch view, as soon as there is a master version
            return
        self._ensure_speed(self.serving)
        asked = self.config.batch_request.exists()  # `lab lambda batch` from another process
        if asked or self.schedule.due(time.monotonic() - self.batch_started, latest - self.serving.cutoff):
            self.config.batch_request.unlink(missing_ok=True)
            self.handoff()

    def finish(self) -> None:
        """Stop ingesting (between micro-batches), let the speed layer read everything the
        master holds, stop it: the served answer then includes every ingested line."""
        stop_between_batches([self.ingest])
        self._check([self.ingest])
        latest = master_version(self.spark, self.config)
        if self.serving is None:
            if latest is not None:
                self.handoff()
        if self.serving is not None and latest is not None and latest > self.serving.cutoff:
            self._wait_caught_up(self.serving, {name: latest for name in MASTER_STREAMS})
        if self.serving is not None:
            stop_between_batches(self.serving.speed)


def follow(
    spark,
    config: LambdaConfig,
    should_stop: Callable[[], bool],
    schedule: BatchSchedule,
    interval: str = "2 seconds",
    fresh: bool = False,
    on_handoff: Callable[[int], None] | None = None,
    report: Callable[[str], None] = lambda message: None,
) -> dict[str, str]:
    """Run until `should_stop()`, then finish what was ingested and write the export."""
    if fresh:
        shutil.rmtree(config.root, ignore_errors=True)
        CommitLog(config.commit_log).clear()
    follower = LambdaFollower(spark, config, schedule, interval, on_handoff, report)
    config.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config.follow_pid, str(os.getpid()))
    try:
        follower.start()
        try:
            with watching_broker(config.kafka[0] if config.kafka else None):
                while not should_stop():
                    follower.step()
                    time.sleep(0.25)
        except BaseException:
            stop_between_batches(
                [
                    q
                    for q in [follower.ingest, *(follower.serving.speed if follower.serving else [])]
                    if q is not None and q.isActive
                ]
            )
            raise
        follower.finish()
    finally:
        config.follow_pid.unlink(missing_ok=True)
    if follower.serving is None:
        raise RuntimeError("lambda --follow stopped before any line was ingested: nothing to export")
    return _export(spark, config, follower.layout)


def is_following(config: LambdaConfig) -> bool:
    """Whether a `lab run lambda --follow` process runs on this workdir now."""
    try:
        os.kill(int(config.follow_pid.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def request_batch(config: LambdaConfig) -> bool:
    """Ask the follow process on this workdir for a batch run now; False when none runs."""
    if not is_following(config):
        return False
    write_text_atomic(config.batch_request, str(time.time()))
    return True


def drop_speed_query(config: LambdaConfig, cutoff: int, name: str) -> None:
    """One speed query of `cutoff`: its realtime views, then its checkpoint."""
    shutil.rmtree(config.realtime_views(cutoff, name), ignore_errors=True)
    shutil.rmtree(config.speed_checkpoint(cutoff, name), ignore_errors=True)


def forget_other_cutoffs(config: LambdaConfig, keep: int, just_stopped: int | None = None) -> None:
    """The views and speed checkpoints of `config.version` at any cutoff but `keep` (older
    ones once `keep` serves; a newer one a kill left unpublished). Other versions' views
    are left alone: they stay readable until dropped.

    `just_stopped`: a cutoff whose speed queries this process has just stopped. Its
    checkpoints stay until a later call: Spark's state store maintenance thread may still
    be uploading a RocksDB snapshot into them, and fails with a stack trace in the log
    when the folder goes under it (it unloads a stopped query's stores at its next run)."""
    root = config.version_root
    for folder, kept in ((root / "realtime_views", {keep}), (root / "checkpoints", {keep, just_stopped})):
        for path in folder.glob("*after_v*") if folder.is_dir() else ():
            if not any(f"after_v{cutoff:06d}" in path.name for cutoff in kept - {None}):
                shutil.rmtree(path, ignore_errors=True)
    for kept_file, folder in (
        (config.batch_views(keep), root / "batch_views"),
        (config.batch_shipments(keep), root / "batch_shipments"),
    ):
        for path in folder.glob("v*.json*") if folder.is_dir() else ():
            if path.name != kept_file.name:
                path.unlink(missing_ok=True)


def batch_now(
    spark,
    config: LambdaConfig,
    recompute: bool = False,
    version: str | None = None,
    queries: tuple[str, ...] | None = None,
) -> dict | None:
    """With no follow process: the batch layer over the master's newest version, published
    (the speed layer of the old cutoff is not running, so nothing is lost by its views
    going). None when the published cutoff is already the newest, unless `recompute`
    (reprocessing in place: every view of the serving version again from the whole master)
    or `version` (reprocessing into a view version: every batch view of `version` from the
    whole master, then published in place of the serving version, which stays readable
    until dropped; a new version computes `queries`, default `config.queries`, an existing
    one the queries it records). Returns the version, the cutoff, the seconds the batch
    run took and the master rows it read."""
    latest = master_version(spark, config)
    if latest is None:
        raise RuntimeError(f"the master dataset in {config.master} is empty: run `lab run lambda` first")
    serving = versions.serving_config(config)
    if version is None or version == serving.version:
        target = serving
        if queries is not None and set(queries) != set(target.queries):
            raise ValueError(
                f"view version {target.version} computes {', '.join(target.queries)}: other logic "
                f"goes into a new version (`lab lambda batch --version NEW --queries ...`)"
            )
    else:
        target = versions.version_config(replace(config, queries=queries or config.queries), version)
        known = versions.manifest(target)
        if known is not None and queries is not None and set(queries) != set(known["queries"]):
            raise ValueError(
                f"view version {version} computes {', '.join(known['queries'])}: name a new version "
                f"for other logic, or drop {version} first"
            )
    published = config.serving_pointer.exists()
    if published and version is None and not recompute and current_cutoff(config) >= latest:
        return None
    started = time.monotonic()
    batch_rows = run_batch_layer(spark, target, latest)
    seconds = round(time.monotonic() - started, 3)
    # the newest version holds every line ingested: the ingest log's valid lines, no Spark job
    rows_read = accounting(spark, config)["valid_lines"]
    previous = versions.serving_version(config)
    if published and previous != target.version:
        versions.retire(serving, current_cutoff(config))  # readable as it served, until dropped
    versions.record(target, last_batch={"cutoff": latest, "seconds": seconds, "master_rows_read": rows_read})
    publish_cutoff(target, latest, f"lab lambda batch: every view from master v{latest}")
    ServingCommits(target, latest, target.queries).publish(batch_rows)
    forget_other_cutoffs(target, latest)
    return {
        "version": target.version,
        "previous": previous,
        "cutoff": latest,
        "seconds": seconds,
        "master_rows_read": rows_read,
    }


def status(workdir) -> dict:
    """What serves now, read from the files (no Spark): the serving view version, its
    cutoff, views and speed progress, and every view version (which serves)."""
    from lambda_arch.master_dataset import max_seq_through
    from shared import checkpoints
    from shared.delta_versions import versions_read

    config = versions.serving_config(LambdaConfig("", str(workdir)))
    cutoff = current_cutoff(config) if config.serving_pointer.exists() else None
    latest = master_version(None, config)
    speed = {}
    if cutoff is not None:
        for name in SPEED_QUERIES:
            checkpoint = config.speed_checkpoint(cutoff, name)
            done = checkpoints.committed_batches(checkpoint)
            version = versions_read(checkpoint, done[-1]) if done else None
            speed[name] = {
                "micro_batches": len(done),
                "master_version_read": max(cutoff, version or cutoff),
                "realtime_view_files": len(list(config.realtime_views(cutoff, name).glob("*.jsonl"))),
            }
    return {
        "following": is_following(config),
        "version": versions.serving_version(config),
        "cutoff": cutoff,
        "batch_views": str(config.batch_views(cutoff)) if cutoff is not None else None,
        "cutoff_includes_seq_through": max_seq_through(config, cutoff) if cutoff is not None else None,
        "master_latest_version": latest,
        "master_includes_seq_through": max_seq_through(config, latest) if latest is not None else None,
        "speed_layer": speed,
        "versions": versions.versions_status(config),
    }
