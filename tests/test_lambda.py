"""The Lambda build: its exports equal the oracle's whatever the cutoff, the handoff
between batch and speed layer counts every line once, re-ingest and replayed batches add
nothing, the commit log says what serving answers, and ingest records the quality gate."""

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from shared.catalogue import QUERY_NAMES
from shared.export import export_path


@pytest.fixture(scope="module")
def small_input(generated_input):
    return generated_input(
        rows=2400, seed=5, files=4, days=3, spreadsheet_files=1, windows_1252_files=1, binary_files=1
    )


@pytest.fixture(scope="module")
def oracle(small_input, tmp_path_factory):
    from experiments.reference.oracle import run_oracle

    workdir = tmp_path_factory.mktemp("lambda-oracle")
    run_oracle(small_input, workdir)
    return workdir


def _same_exports(workdir, oracle_workdir) -> list[str]:
    differ = [
        q
        for q in QUERY_NAMES
        if export_path(workdir, "lambda", q).read_bytes() != export_path(oracle_workdir, "oracle", q).read_bytes()
    ]
    accounting = [
        json.loads((Path(w) / "results" / b / "_accounting.json").read_text())
        for w, b in ((workdir, "lambda"), (oracle_workdir, "oracle"))
    ]
    return differ + (["_accounting.json"] if accounting[0] != accounting[1] else [])


def _last_rows(workdir) -> dict:
    from shared.commit_log import commit_log_path, read_commits

    return {c.query: c for c in read_commits(commit_log_path(workdir, "lambda"))}


@pytest.mark.slow
def test_run_equals_oracle_and_rerun_adds_nothing(spark, small_input, oracle, tmp_path, monkeypatch):
    """...and every master version's seq is in the master's version map before the version
    is visible: the speed layer may read it the moment ingest commits it, and its serving
    commit must not claim less than it serves (live, nothing would correct it until more
    input arrived). A follow run on the drain's workdir then serves the same answer."""
    from lambda_arch.app import BatchSchedule, LambdaFollower, _export, run
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import accounting, master_seq_log, master_version
    from shared import checkpoints
    from shared.commit_log import NO_SEQ
    from shared.delta_log import next_version
    from shared.inputs import inspect_input
    from shared.sequence import SequenceMap

    config = LambdaConfig(str(small_input), str(tmp_path / "w"))
    real_append, seen = checkpoints.append_once, []

    def checked_append(frame, table, app_id, batch_id):
        if Path(table) == Path(config.master):
            version, seq_map = next_version(table), master_seq_log(config)  # the version this append creates
            seen.append((version, seq_map.max_seq_through(version), seq_map.max_seq_through(version - 1)))
        return real_append(frame, table, app_id, batch_id)

    monkeypatch.setattr(checkpoints, "append_once", checked_append)
    status = run(spark, config, fresh=True)
    assert len(seen) == 2 and all(new > before and new != NO_SEQ for _, new, before in seen), seen
    assert set(status.values()) == {"written"}
    assert _same_exports(config.workdir, oracle) == []
    # two ingest batches (four files), the cutoff between them: both layers answered
    assert master_version(spark, config) == 1
    assert json.loads(config.serving_pointer.read_text())["cutoff"] == 0
    assert list(config.realtime_views(0, "views").glob("batch-*.jsonl"))
    # the commit log: publication, then the speed layer up to the input's last line;
    # `rows` = the served result's rows, so the last row of each query = its export's rows
    last_seq = max(SequenceMap(small_input).range_of(p).last_seq for p in small_input.glob("*.csv"))
    last = _last_rows(config.workdir)
    assert set(last) == set(QUERY_NAMES)
    for query, commit in last.items():
        assert commit.max_seq == last_seq, query
        assert commit.rows == len(export_path(config.workdir, "lambda", query).read_text().splitlines()) - 1, query
    # the same input again, without --fresh: nothing new in the master or the accounting
    before = accounting(spark, config)
    run(spark, config)
    assert master_version(spark, config) == 1
    assert accounting(spark, config) == before
    assert _same_exports(config.workdir, oracle) == []
    # the drain's speed layer paired its lines with the shipment files there were (no
    # stream-stream join state): a follow run on its workdir starts with a batch run
    # over everything ingested, and then serves the same answer
    assert list(config.realtime_views(0, "fulfilment_drain").glob("batch-*.jsonl"))
    assert not Path(config.speed_checkpoint(0, "fulfilment")).exists()
    follower = LambdaFollower(spark, config, BatchSchedule(versions=1), interval="0.5 seconds")
    follower.start()
    follower.finish()
    _export(spark, config, inspect_input(small_input))
    assert _same_exports(config.workdir, oracle) == []
    assert follower.handoffs == 1 and json.loads(config.serving_pointer.read_text())["cutoff"] == 1
    assert not config.realtime_views(0, "fulfilment_drain").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_every_cutoff_serves_each_line_once(spark, small_input, oracle, tmp_path, fraction):
    """All in the batch layer (cutoff = the last version, no speed layer) or nearly all in
    the speed layer (cutoff 0 of 3 versions): the same exports."""
    from lambda_arch.app import run
    from lambda_arch.layout import LambdaConfig

    config = LambdaConfig(str(small_input), str(tmp_path / "w"), max_files_per_trigger=1)
    run(spark, config, fresh=True, batch_fraction=fraction)
    assert json.loads(config.serving_pointer.read_text())["cutoff"] == (0 if fraction == 0.0 else 3)
    assert _same_exports(config.workdir, oracle) == []


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_ingest_gives_the_same_exports_as_the_landing_directory(
    spark, small_input, oracle, tmp_path, kafka_bootstrap, new_topic
):
    """`--source kafka`: the master is ingested from the topic the replayer writes; the
    exports equal the oracle's, and the serving commits include the topic's last line."""
    from experiments.inputs.kafka_replay import replay_to_kafka
    from lambda_arch.app import LambdaConfig, run
    from shared.raw_lines import count_raw_lines

    topic = new_topic("lambda-sales")
    replay_to_kafka(small_input, kafka_bootstrap, topic)
    config = LambdaConfig(
        str(small_input), str(tmp_path / "w"), source="kafka", kafka_bootstrap=kafka_bootstrap, kafka_topic=topic
    )
    run(spark, config)
    assert _same_exports(tmp_path / "w", oracle) == []
    last_seq = sum(count_raw_lines(p) for p in small_input.glob("sales_*.csv")) - 1
    assert {q: c.max_seq for q, c in _last_rows(tmp_path / "w").items()} == {q: last_seq for q in QUERY_NAMES}


@pytest.mark.slow
def test_batch_recompute_on_demand_reports_its_time_and_rows_and_serves_the_same(spark, small_input, oracle, tmp_path):
    """`lab lambda batch`: nothing to do when the cutoff is the newest version; with
    --recompute (reprocessing) every view again from the whole master, timed, with the rows
    it read, and serving answers exactly as before."""
    from lambda_arch.app import LambdaConfig, batch_now, export_served, run

    config = LambdaConfig(str(small_input), str(tmp_path / "w"))
    run(spark, config)
    first = batch_now(spark, config)  # the drain's cutoff was mid-way: this one takes the rest
    assert first is not None and batch_now(spark, config) is None
    again = batch_now(spark, config, recompute=True)
    valid = json.loads((Path(oracle) / "results" / "oracle" / "_accounting.json").read_text())["valid_lines"]
    assert again["cutoff"] == first["cutoff"] and again["master_rows_read"] == valid and again["seconds"] > 0
    export_served(spark, config)  # what `lab lambda batch` writes after it
    assert _same_exports(tmp_path / "w", oracle) == []


def _fake_started(checkpoint: str, query_id: str = "11111111-2222-3333-4444-555555555555") -> None:
    """What Spark writes when a query starts: the query id in the checkpoint's metadata."""
    Path(checkpoint).mkdir(parents=True, exist_ok=True)
    (Path(checkpoint) / "metadata").write_text(json.dumps({"id": query_id}) + "\n")


@pytest.mark.slow
def test_a_replayed_ingest_batch_lands_once(spark, small_input, tmp_path):
    from pyspark.sql import functions as F

    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import accounting, ingest_batch, max_seq_through
    from shared.cleaning import classify_lines
    from shared.delta_log import latest_version

    config = LambdaConfig(str(small_input), str(tmp_path / "w"))
    _fake_started(config.checkpoint("ingest"))
    first = sorted(small_input.glob("*.csv"))[0]
    # a micro-batch as the ingest query hands it over: classified in its streaming plan
    raw = classify_lines(spark.read.text(str(first)).select("value", F.lit(first.name).alias("source_file")))
    write = ingest_batch(config)
    write(raw, 0)
    once = accounting(spark, config)
    write(raw, 0)  # the same batch again, as after a kill before Spark's commit
    assert accounting(spark, config) == once
    assert latest_version(config.master) == 0
    master = spark.read.format("delta").load(config.master)
    assert master.count() == once["valid_lines"] > 0
    quarantine = spark.read.parquet(config.quarantine)
    assert quarantine.count() == sum(once["quarantine"].values()) > 0
    assert {r.ingest_batch for r in quarantine.select("ingest_batch").distinct().collect()} == {0}
    assert once["raw_lines"] == once["valid_lines"] + sum(once["quarantine"].values())
    assert once["raw_lines"] == len(first.read_bytes().decode("utf-8-sig").splitlines())
    assert max_seq_through(config, 0) == once["raw_lines"] - 1
    report = json.loads((config.quality_dir / "batch-000000.json").read_text())
    assert report["success"] and report["checked_rows"] == once["valid_lines"]


@pytest.mark.slow
def test_a_replayed_speed_batch_lands_once_and_is_logged_once_served(spark, tmp_path):
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import master_seq_log
    from lambda_arch.serving_layer import ServingCommits, publish_cutoff, realtime_rows, served_rows
    from lambda_arch.speed_layer import _views_batch
    from lambda_arch.views import write_view_file
    from shared.cleaning import ORDER_LINE_COLUMNS
    from shared.commit_log import read_commits
    from shared.delta_versions import DELTA_END_INDEX

    queries = ("city_revenue", "hourly_sales")
    config = LambdaConfig(str(tmp_path), str(tmp_path / "w"), queries=queries)
    offsets = Path(config.speed_checkpoint(0, "views")) / "offsets"
    offsets.mkdir(parents=True)
    (offsets / "0").write_text("v1\n{}\n" + json.dumps({"reservoirVersion": 2, "index": DELTA_END_INDEX}) + "\n")
    master_seq_log(config).record(0, 0, 19)
    master_seq_log(config).record(1, 2, 41)
    line = ("o1", "p", 2, Decimal("1.50"), Decimal("3.00"), dt.datetime(2019, 1, 1, 10), "s", "Austin", "TX", "73301")
    lines = spark.createDataFrame(
        [line, line],
        ", ".join(
            f"{c} {t}"
            for c, t in zip(
                ORDER_LINE_COLUMNS,
                (
                    "string",
                    "string",
                    "int",
                    "decimal(12,2)",
                    "decimal(22,2)",
                    "timestamp",
                    "string",
                    "string",
                    "string",
                    "string",
                ),
            )
        ),
    )
    batch_rows = [
        {
            "query": "city_revenue",
            "city": c,
            "state": s,
            "revenue": Decimal("1.00"),
            "order_lines": 1,
            **{
                k: None
                for k in (
                    "date",
                    "product",
                    "hour",
                    "window_start",
                    "window_end",
                    "category",
                    "ship_date",
                    "quantity",
                    "margin",
                    "shipped_lines",
                    "seconds_to_ship",
                )
            },
        }
        for c, s in (("Austin", "TX"), ("Boston", "MA"))
    ]
    write_view_file(config.batch_views(0), batch_rows)
    commits = ServingCommits(config, 0, queries)
    _views_batch(config, 0, list(queries), None, commits)(lines, 0)
    assert read_commits(config.commit_log) == []  # cutoff 0 not published yet: not served
    publish_cutoff(config, 0)
    commits.publish(batch_rows)
    # replayed by a restarted process (after a kill before Spark's commit): the same file again
    restarted = ServingCommits.resume(config, 0, queries)
    _views_batch(config, 0, list(queries), None, restarted)(lines, 0)
    restarted.publish(batch_rows)
    assert len(list(config.realtime_views(0, "views").glob("*.jsonl"))) == 1
    assert sorted((r["query"], r["order_lines"]) for r in realtime_rows(config, 0)) == [
        ("city_revenue", 2),
        ("hourly_sales", 2),
    ]
    served = served_rows(spark, config)
    assert sorted((r["city"], r["revenue"], r["order_lines"]) for r in served["city_revenue"]) == [
        ("Austin", Decimal("7.00"), 3),
        ("Boston", Decimal("1.00"), 1),
    ]
    # published with the speed commit in it: versions <= 2 (seq 41); rows = served keys
    logged = [(c.query, c.max_seq, c.rows) for c in read_commits(config.commit_log)]
    assert logged[:2] == [("city_revenue", 41, 2), ("hourly_sales", 41, 1)]
    assert logged[2:] == logged[:2]  # the restart publishes again: harmless, latency takes the first


def test_latest_version_is_the_newest_commit(spark, tmp_path):
    from delta.tables import DeltaTable

    from shared.delta_log import latest_version

    table = str(tmp_path / "t")
    assert latest_version(table) is None
    for _ in range(3):
        spark.range(2).write.format("delta").mode("append").save(table)
    assert latest_version(table) == 2 == DeltaTable.forPath(spark, table).history(1).collect()[0]["version"]


def test_ingest_batches_are_sized_and_at_least_two(tmp_path):
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import files_per_trigger
    from shared.inputs import InputLayout

    files = []
    for i in range(10):
        files.append(tmp_path / f"s{i}.csv")
        files[-1].write_bytes(b"x" * 2**20)  # 1 MiB each
    ten, one = InputLayout(tmp_path, tuple(files), None, None), InputLayout(tmp_path, tuple(files[:1]), None, None)
    config = LambdaConfig(str(tmp_path), str(tmp_path / "w"))
    assert files_per_trigger(config, ten) == 5  # 10 MiB < 64 MiB: still two batches
    assert files_per_trigger(LambdaConfig("i", "w", batch_mb=3), ten) == 3
    assert files_per_trigger(LambdaConfig("i", "w", max_files_per_trigger=1), ten) == 1
    assert files_per_trigger(config, one) == 1


@pytest.mark.slow
def test_ingest_records_a_failing_quality_gate_with_examples(spark, tmp_path):
    from pyspark.sql import functions as F

    from lambda_arch.layout import LambdaConfig
    from lambda_arch.master_dataset import accounting, ingest_batch
    from shared.cleaning import classify_lines
    from shared.quality import summarize

    root = tmp_path / "in"
    (root / "catalogue").mkdir(parents=True)
    (root / "catalogue" / "products.csv").write_text("product,category,unit_cost,list_price\nWidget,Tools,2.00,5.00\n")
    sales = root / "sales_0000.csv"
    sales.write_text(
        "Order ID,Product,Quantity Ordered,Price Each,Order Date,Purchase Address\n"
        '1,Widget,2,4.00,01/02/19 10:30,"1 A St, Austin, TX 73301"\n'
        '2,Widget,1,5.00,01/02/19 11:00,"2 B St, Austin, TX 73301"\n'
        ",,,,,\n"
    )
    config = LambdaConfig(str(root), str(tmp_path / "w"))
    _fake_started(config.checkpoint("ingest"))
    raw = spark.read.text(str(sales)).select("value", F.lit(sales.name).alias("source_file"))
    ingest_batch(config)(classify_lines(raw), 0)  # as the ingest query hands a micro-batch over: classified
    assert accounting(spark, config) == {"raw_lines": 4, "valid_lines": 2, "quarantine": {"header": 1, "blank": 1}}
    report = json.loads((config.quality_dir / "batch-000000.json").read_text())
    assert report["checked_rows"] == 2 and not report["success"]
    failed = [r for r in report["results"] if not r["success"]]
    assert [(r["check"], r["unexpected_count"], r["unexpected_examples"]) for r in failed] == [
        ("price matches catalogue", 1, ["order_id 1: price=4.00, catalogue_price=5.00"])
    ]
    assert summarize(config.quality_dir)["failed_batches"] == 1


@pytest.fixture(scope="module")
def arriving_input(generated_input):
    return generated_input(rows=2400, seed=9, files=12, days=3, windows_1252_files=2, binary_files=1)


def _oracle_over(input_dir, sales_files, folder):
    """The oracle's exports over the input's catalogue and shipments and these sales files."""
    from experiments.reference.oracle import run_oracle
    from shared.atomic import copy_file_atomic
    from tests.live import empty_landing

    subset = empty_landing(input_dir, folder / "in", streamed_shipments=False)
    for path in sales_files:
        copy_file_atomic(path, subset / path.name)
    run_oracle(subset, folder / "w")
    return folder / "w"


def _serving_matches_oracle(spark, config, oracle_workdir, folder) -> list[str]:
    from lambda_arch.serving_layer import served_rows
    from shared.export import write_export

    served = served_rows(spark, config)
    return [
        q
        for q in QUERY_NAMES
        if write_export(folder, "served", q, served.get(q, [])).read_bytes()
        != export_path(oracle_workdir, "oracle", q).read_bytes()
    ]


@pytest.mark.slow
@pytest.mark.e2e  # 100 s: `make test-e2e` (CI runs it after `make test`, which keeps its 15 minutes)
def test_follow_hands_over_again_and_again_and_serves_every_landed_line_once(spark, arriving_input, tmp_path):
    """Files land one by one; the batch layer runs every two new master versions (six
    handoffs), the speed layer serves what came after each cutoff. After every file, once
    the commit log says serving includes it, the served answer of every query equals the
    oracle's over exactly the files landed so far: nothing counted twice, nothing lost,
    before and after each handoff. The export after `finish` equals the oracle's too."""
    import time

    from lambda_arch.app import BatchSchedule, LambdaConfig, LambdaFollower
    from shared.atomic import copy_file_atomic
    from shared.commit_log import commit_log_path, read_commits
    from shared.raw_lines import count_raw_lines
    from tests.live import empty_landing

    # the sales files land by hand here: every shipments file is there from the start
    landing = empty_landing(arriving_input, tmp_path / "landing", streamed_shipments=False)
    config = LambdaConfig(str(landing), str(tmp_path / "w"))
    follower = LambdaFollower(spark, config, BatchSchedule(versions=2), interval="0.5 seconds")
    follower.start()
    sources = sorted(arriving_input.glob("sales_*.csv"))
    landed, last_seq, checked_after_handoff = [], -1, set()
    try:
        for index, source in enumerate(sources):
            target = landing / f"{last_seq + 1:06d}-{source.name}"
            copy_file_atomic(source, target)
            landed.append(target)
            last_seq += count_raw_lines(source)
            deadline = time.monotonic() + 300
            # a stray binary file has no valid line: it changes no view, so no serving commit
            # names it (the next file's does); serving must still equal the oracle's answer
            while not source.name.endswith("_stray.csv"):  # until serving includes the new file
                follower.step()
                commits = read_commits(commit_log_path(config.workdir, "lambda"))
                newest = {c.query: c.max_seq for c in commits}
                if len(newest) == len(QUERY_NAMES) and min(newest.values()) >= last_seq:
                    break
                assert time.monotonic() < deadline, f"serving never included {target.name}: {newest}"
                time.sleep(0.2)
            oracle = _oracle_over(arriving_input, landed, tmp_path / f"oracle-{index}")
            assert _serving_matches_oracle(spark, config, oracle, tmp_path / f"served-{index}") == [], (
                f"after {target.name} (handoffs so far: {follower.handoffs})"
            )
            checked_after_handoff.add(follower.handoffs)
    finally:
        follower.finish()
    assert follower.handoffs >= 5 and len(checked_after_handoff) >= 5
    assert sorted(p.name for p in (config.version_root / "batch_views").iterdir()) == [
        config.batch_views(follower.serving.cutoff).name
    ]
    from lambda_arch.app import _export
    from shared.inputs import inspect_input

    _export(spark, config, inspect_input(landing))
    oracle = _oracle_over(arriving_input, landed, tmp_path / "oracle-all")
    assert [
        q
        for q in QUERY_NAMES
        if export_path(config.workdir, "lambda", q).read_bytes() != export_path(oracle, "oracle", q).read_bytes()
    ] == []


@pytest.mark.slow
def test_a_handoff_while_lines_keep_arriving_runs_two_speed_layers_at_once(
    spark, arriving_input, tmp_path, monkeypatch
):
    """Files land while the batch layer recomputes, so the next cutoff's speed layer starts
    before the old one stops (two speed layers at once, which Spark allows only under two
    query names); serving then includes every landed line once. At the next handoff a file
    lands after the new speed layer has caught up, and the old one, still serving, reads it
    and commits (the commit log says it is visible): the handoff serves it too (CI once saw
    every query lose such a file when the old layer read it just before the switch)."""
    import time

    import lambda_arch.app as lambda_app
    from lambda_arch.app import BatchSchedule, LambdaConfig, LambdaFollower
    from lambda_arch.layout import MASTER_STREAMS
    from lambda_arch.master_dataset import master_version
    from shared.atomic import copy_file_atomic
    from shared.raw_lines import count_raw_lines
    from tests.live import commits_cover, empty_landing, step_until

    # the sales files land by hand here: every shipments file is there from the start
    landing = empty_landing(arriving_input, tmp_path / "landing", streamed_shipments=False)
    config = LambdaConfig(str(landing), str(tmp_path / "w"))
    # files with valid lines: each makes a master version (a stray binary file makes none)
    sources = iter([p for p in sorted(arriving_input.glob("sales_*.csv")) if not p.name.endswith("_stray.csv")][:4])
    landed, last_seq = [], -1

    def land_next() -> None:
        nonlocal last_seq
        source = next(sources)
        landed.append(copy_file_atomic(source, landing / f"{last_seq + 1:06d}-{source.name}"))
        last_seq += count_raw_lines(source)

    def await_(condition, what: str) -> None:
        step_until(follower, condition, what)

    def serving_matches_the_oracle(name: str) -> list[str]:
        oracle = _oracle_over(arriving_input, landed, tmp_path / f"oracle-{name}")
        return _serving_matches_oracle(spark, config, oracle, tmp_path / f"served-{name}")

    def wait_until(condition, what: str) -> None:
        deadline = time.monotonic() + 300
        while not condition():
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    batch_layer = lambda_app.run_batch_layer

    def batch_layer_while_a_file_lands(spark_, config_, cutoff):
        rows = batch_layer(spark_, config_, cutoff)
        if follower.handoffs == 1:  # the second handoff: a new master version before the switch
            land_next()
            wait_until(
                lambda: (master_version(spark_, config_) or -1) > cutoff,
                "the master never took the file landed mid-batch",
            )
        return rows

    wait_shipments = LambdaFollower._wait_shipments

    def old_layer_serves_a_file_meanwhile(self, serving, *args, **kwargs):
        """In the third handoff's catch-up: a file lands, the old speed layer reads it."""
        if self.handoffs == 2 and len(landed) == 3:
            land_next()
            old = self.serving
            old_readers = self._speed_names(old) & set(MASTER_STREAMS)
            wait_until(
                lambda: (
                    (master_version(self.spark, self.config) or -1) > serving.cutoff
                    and min(old.commits.versions_read.get(name, -1) for name in old_readers)
                    >= master_version(self.spark, self.config)
                ),
                "the old speed layer never read the file landed mid-handoff",
            )
            assert not self._speed_names(serving) & set(MASTER_STREAMS), "the race is not set up"
        return wait_shipments(self, serving, *args, **kwargs)

    monkeypatch.setattr(lambda_app, "run_batch_layer", batch_layer_while_a_file_lands)
    monkeypatch.setattr(LambdaFollower, "_wait_shipments", old_layer_serves_a_file_meanwhile)
    follower = LambdaFollower(spark, config, BatchSchedule(versions=1), interval="0.5 seconds")
    follower.start()
    try:
        land_next()
        await_(lambda: follower.handoffs == 1, "no first handoff")
        land_next()  # the next version is due: the batch layer runs, a third file lands meanwhile
        await_(lambda: follower.handoffs == 2, "no second handoff")
        # Without stepping: the third file's version makes the next handoff due at once.
        wait_until(commits_cover(config.workdir, "lambda", QUERY_NAMES, last_seq), "serving never caught up")
        assert len(landed) == 3 and serving_matches_the_oracle("3") == []
        await_(lambda: follower.handoffs == 3, "no third handoff")
        assert len(landed) == 4 and commits_cover(config.workdir, "lambda", QUERY_NAMES, last_seq)()
        assert serving_matches_the_oracle("4") == []
    finally:
        follower.finish()


def test_the_batch_schedule_reads_a_duration_or_a_number_of_versions():
    from lambda_arch.app import BatchSchedule

    assert BatchSchedule.parse("60 seconds") == BatchSchedule(seconds=60)
    assert BatchSchedule.parse("5 minutes") == BatchSchedule(seconds=300)
    assert BatchSchedule.parse("10 versions") == BatchSchedule(versions=10)
    for wrong in ("soon", "0 seconds", "1.5 versions", "-3 s"):
        with pytest.raises(ValueError, match="--batch-every"):
            BatchSchedule.parse(wrong)
    every_two = BatchSchedule(versions=2)
    assert not every_two.due(1_000, 1) and every_two.due(0, 2)
    minute = BatchSchedule(seconds=60)
    assert not minute.due(59, 5) and minute.due(60, 1) and not minute.due(600, 0)  # nothing new, no run


def test_status_reads_the_files_without_spark(tmp_path):
    from lambda_arch.app import status

    assert status(tmp_path) == {
        "following": False,
        "version": None,
        "cutoff": None,
        "batch_views": None,
        "cutoff_includes_seq_through": None,
        "master_latest_version": None,
        "master_includes_seq_through": None,
        "speed_layer": {},
        "versions": [],
    }


@pytest.mark.slow
def test_follow_as_a_service_replayed_at_a_known_rate_gives_readable_latency(arriving_input, tmp_path):
    """`lab run lambda --follow` fed by the replayer at 1,500 lines/s and stopped by SIGTERM
    to its group: exit 0, no stack trace, exports equal the oracle's, and every emitted
    unit is in a serving commit of every query, after its emission (DESIGN.md's latency)."""
    from experiments.inputs.replay import replay_to_landing
    from experiments.reference.oracle import run_oracle
    from shared.raw_lines import count_raw_lines
    from tests.live import assert_latency_readable, commits_cover, empty_landing, follow_until

    landing = empty_landing(arriving_input, tmp_path / "landing")
    workdir = tmp_path / "w"
    last_seq = sum(count_raw_lines(p) for p in arriving_input.glob("sales_*.csv")) - 1

    out, _ = follow_until(
        "lambda",
        landing,
        workdir,
        extra=["--interval", "1 second", "--batch-every", "3 versions"],
        started=lambda: (workdir / "lambda" / "follow.pid").exists(),
        feed=lambda: replay_to_landing(
            arriving_input, landing, rate_lines_per_second=1500, log_dir=tmp_path / "replay"
        ),
        caught_up=commits_cover(workdir, "lambda", QUERY_NAMES, last_seq),
    )
    assert "city_revenue       written" in out
    run_oracle(landing, tmp_path / "oracle")
    assert [
        q
        for q in QUERY_NAMES
        if export_path(workdir, "lambda", q).read_bytes() != export_path(tmp_path / "oracle", "oracle", q).read_bytes()
    ] == []
    assert_latency_readable(tmp_path / "replay", workdir, "lambda", QUERY_NAMES)
