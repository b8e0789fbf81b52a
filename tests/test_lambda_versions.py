"""Lambda's view versions (reprocessing: `lab lambda batch --version`, the old version
readable until dropped) and fulfilment between batch runs (a shipment that lands after a
handoff, for an order line before its cutoff, is served at once by the speed layer's
backfill, and counted once after the next handoff)."""

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from experiments.cli import main
from shared.catalogue import QUERY_NAMES
from shared.export import export_path
from tests import test_lambda
from tests.live import step_until

V1_QUERIES = tuple(q for q in QUERY_NAMES if q != "city_revenue")  # the naive logic: city_revenue_v1 only

# the Lambda tests' input (four files, three days, one saved by a spreadsheet) and its oracle
small_input, oracle = test_lambda.small_input, test_lambda.oracle


def _export_of(rows_by_query, query, folder) -> bytes:
    from shared.export import write_export

    return write_export(folder, "served", query, rows_by_query.get(query, [])).read_bytes()


def _oracle_bytes(oracle_workdir, query) -> bytes:
    return export_path(oracle_workdir, "oracle", query).read_bytes()


@pytest.mark.slow
def test_reprocessing_into_v2_keeps_v1_readable_until_dropped(spark, small_input, oracle, tmp_path, capsys):
    from lambda_arch.app import batch_now, run
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.serving_layer import current_cutoff, served_rows
    from lambda_arch.versions import manifest, serving_version
    from shared.commit_log import commit_log_path, read_commits
    from shared.sequence import SequenceMap

    workdir = tmp_path / "w"
    v1 = LambdaConfig(str(small_input), str(workdir), queries=V1_QUERIES)
    run(spark, v1)  # v1: batch views up to half the master, realtime views after
    v1_cutoff = current_cutoff(v1)
    assert serving_version(v1) == "v1" and manifest(v1)["keys"]["city_revenue_v1"] == ["city"]
    assert list(v1.realtime_views(v1_cutoff, "views").glob("batch-*.jsonl"))
    before = {q: _export_of(served_rows(spark, v1), q, tmp_path / "v1-before") for q in V1_QUERIES}
    logged_before = len(read_commits(commit_log_path(workdir, "lambda")))

    outcome = batch_now(spark, LambdaConfig(str(small_input), str(workdir)), version="v2")
    valid = json.loads((Path(oracle) / "results" / "oracle" / "_accounting.json").read_text())["valid_lines"]
    assert outcome["version"] == "v2" and outcome["previous"] == "v1" and outcome["seconds"] > 0
    assert outcome["master_rows_read"] == valid and outcome["cutoff"] > v1_cutoff
    config = LambdaConfig(str(small_input), str(workdir))
    assert serving_version(config) == "v2"

    # v2 serves: city_revenue (new logic) equals the oracle's byte for byte, and so does every query
    served = served_rows(spark, config)
    assert [q for q in QUERY_NAMES if _export_of(served, q, tmp_path / "v2") != _oracle_bytes(oracle, q)] == []
    # v1 stays readable, as it served: its batch view plus its realtime views, no city_revenue
    old = served_rows(spark, config, "v1")
    assert "city_revenue" not in old
    assert {q: _export_of(old, q, tmp_path / "v1-after") for q in V1_QUERIES} == before
    assert _export_of(old, "city_revenue_v1", tmp_path / "v1-after") == _oracle_bytes(oracle, "city_revenue_v1")
    assert manifest(config, "v1")["retired"]["cutoff"] == v1_cutoff

    # the publication is in the commit log: every v2 query, the input's last seq, its served rows
    last_seq = max(SequenceMap(small_input).range_of(p).last_seq for p in small_input.glob("*.csv"))
    published = read_commits(commit_log_path(workdir, "lambda"))[logged_before:]
    assert sorted(c.query for c in published) == sorted(QUERY_NAMES)
    assert all(c.max_seq == last_seq for c in published)
    assert {c.query: c.rows for c in published}["city_revenue"] == len(served["city_revenue"])

    # the CLI (no Spark needed for these): status, a query v1 cannot answer, drops
    lab = ["--quiet", "lambda"]
    assert main(lab + ["status", "--workdir", str(workdir)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["version"] == "v2" and [(v["version"], v["serving"], v["cutoff"]) for v in status["versions"]] == [
        ("v1", False, v1_cutoff),
        ("v2", True, outcome["cutoff"]),
    ]
    assert (
        main(lab + ["query", "city_revenue", "--version", "v1", "--input", str(small_input), "--workdir", str(workdir)])
        == 2
    )
    assert "v1 does not compute city_revenue" in capsys.readouterr().err
    assert main(lab + ["drop", "--version", "v2", "--workdir", str(workdir)]) == 2
    assert "v2 is the serving version" in capsys.readouterr().err
    assert main(lab + ["drop", "--version", "v1", "--workdir", str(workdir)]) == 0
    assert not (workdir / "lambda" / "versions" / "v1").exists()
    with pytest.raises(ValueError, match="no view version v1"):
        served_rows(spark, config, "v1")
    assert _export_of(served_rows(spark, config), "city_revenue", tmp_path / "v2-again") == _oracle_bytes(
        oracle, "city_revenue"
    )


def test_batch_version_is_refused_while_a_follow_process_runs(tmp_path, capsys):
    import os

    from lambda_arch.layout import LambdaConfig
    from shared.atomic import write_text_atomic

    config = LambdaConfig(str(tmp_path), str(tmp_path / "w"))
    write_text_atomic(config.follow_pid, str(os.getpid()))  # a live process: this one
    assert (
        main(
            [
                "--quiet",
                "lambda",
                "batch",
                "--version",
                "v2",
                "--input",
                str(tmp_path),
                "--workdir",
                str(tmp_path / "w"),
            ]
        )
        == 2
    )
    assert "--follow` runs on" in capsys.readouterr().err and not config.batch_request.exists()
    assert (
        main(
            [
                "--quiet",
                "lambda",
                "batch",
                "--queries",
                "city_revenue",
                "--input",
                str(tmp_path),
                "--workdir",
                str(tmp_path / "w"),
            ]
        )
        == 2
    )
    assert "give --version too" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------
# fulfilment between batch runs
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def arriving_input(generated_input):
    return generated_input(rows=2400, seed=9, files=12, days=3)


def _split_shipments(input_dir: Path) -> tuple[dict[str, str], str]:
    """Every shipments file with its even rows (landed at the start), and one file of the
    odd rows of them all (landed later)."""
    early, late = {}, []
    for path in sorted((input_dir / "shipments").glob("*.csv")):
        header, *rows = path.read_text(encoding="utf-8").splitlines()
        early[path.name] = "\n".join([header, *rows[0::2]]) + "\n"
        late += rows[1::2]
    return early, "\n".join([header, *late]) + "\n"


def _landing_with(input_dir: Path, folder: Path, shipments: dict[str, str], sales=()) -> Path:
    from shared.atomic import copy_file_atomic, write_text_atomic

    (folder / "shipments").mkdir(parents=True)
    shutil.copytree(input_dir / "catalogue", folder / "catalogue")
    shutil.copy(input_dir / "_manifest.json", folder / "_manifest.json")
    for name, text in shipments.items():
        write_text_atomic(folder / "shipments" / name, text)
    for path in sales:
        copy_file_atomic(path, folder / path.name)
    return folder


def _oracle_fulfilment(input_dir, folder, shipments, sales) -> bytes:
    from experiments.reference.oracle import run_oracle

    run_oracle(_landing_with(input_dir, folder / "in", shipments, sales), folder / "w")
    return _oracle_bytes(folder / "w", "fulfilment")


def _shipped_lines(export: bytes) -> int:
    return sum(int(row["shipped_lines"]) for row in csv.DictReader(io.StringIO(export.decode())))


@pytest.mark.slow
def test_a_shipment_landing_after_a_handoff_is_served_at_once_and_counted_once(spark, arriving_input, tmp_path):
    """Order lines land file by file, with half the shipments; after a handoff the other
    half lands (shipments of lines before the cutoff among them). Serving's fulfilment
    equals the oracle's over the landed lines and the landed shipments: right after the
    late shipments land (the backfill pairs them with the lines up to the cutoff), after
    more lines (the stream-stream join), and after the next handoff (the batch view reads
    them now, the backfill of the new cutoff skips them: no pair counted twice)."""
    from lambda_arch.app import BatchSchedule, LambdaConfig, LambdaFollower
    from lambda_arch.layout import SPEED_BACKFILL
    from lambda_arch.serving_layer import served_rows
    from lambda_arch.views import read_view_file
    from shared.atomic import copy_file_atomic, write_text_atomic
    from shared.raw_lines import count_raw_lines
    from tests.live import commits_cover

    early, late = _split_shipments(arriving_input)
    landing = _landing_with(arriving_input, tmp_path / "landing", early)
    config = LambdaConfig(str(landing), str(tmp_path / "w"))
    follower = LambdaFollower(spark, config, BatchSchedule(versions=2), interval="0.5 seconds")
    sources = iter(sorted(arriving_input.glob("sales_*.csv")))
    landed, last_seq, checks = [], -1, []

    def await_(condition, what: str) -> None:
        step_until(follower, condition, what)

    def land_sales() -> None:
        nonlocal last_seq
        source = next(sources)
        landed.append(copy_file_atomic(source, landing / f"{last_seq + 1:06d}-{source.name}"))
        last_seq += count_raw_lines(source)
        await_(commits_cover(config.workdir, "lambda", QUERY_NAMES, last_seq), f"serving never included {source.name}")

    def check(shipments: dict[str, str], label: str) -> int:
        served = _export_of(served_rows(spark, config), "fulfilment", tmp_path / f"served-{label}")
        expected = _oracle_fulfilment(arriving_input, tmp_path / f"oracle-{label}", shipments, landed)
        assert served == expected, f"{label}: fulfilment differs from the oracle's (handoffs: {follower.handoffs})"
        checks.append(label)
        return _shipped_lines(expected)

    follower.start()
    try:
        for _ in range(3):
            land_sales()
        await_(lambda: follower.handoffs == 2, "no second handoff")
        assert follower.serving.cutoff == 2  # the lines of 3 files in the batch views
        without_late = check(early, "before")
        write_text_atomic(landing / "shipments" / "shipments_late.csv", late)
        await_(lambda: "shipments_late.csv" in follower.serving.commits.shipment_files, "the backfill never read it")
        with_late = check({**early, "shipments_late.csv": late}, "late-shipments")
        backfilled = sum(
            row["shipped_lines"]
            for path in config.realtime_views(2, SPEED_BACKFILL).glob("*.jsonl")
            for row in read_view_file(path)
        )
        # the late half matters, and the backfill is what served it (lines before the cutoff)
        assert with_late > without_late and backfilled > 0
        land_sales()  # a line after the cutoff, paired by the stream-stream join
        check({**early, "shipments_late.csv": late}, "more-lines")
        land_sales()  # the next handoff: the batch views read the late shipments
        await_(lambda: follower.handoffs == 3, "no third handoff")
        assert "shipments_late.csv" in json.loads(config.batch_shipments(follower.serving.cutoff).read_text())
        check({**early, "shipments_late.csv": late}, "after-handoff")
    finally:
        follower.finish()
    assert checks == ["before", "late-shipments", "more-lines", "after-handoff"]
