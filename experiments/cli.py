"""The `lab` command line (DESIGN.md fixes its names)."""

from __future__ import annotations

import argparse
import errno
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from experiments.harness.builds import SPARK_BUILDS
from experiments.harness.profiles import STEPS
from experiments.progress import Progress
from shared.catalogue import QUERY_NAMES
from shared.settings import DEFAULT_KAFKA_BOOTSTRAP, DEFAULT_SPARK_MASTER, settings_help

EXIT_MISMATCH = 1
EXIT_USAGE = 2
BOOTSTRAP_HELP = f"Kafka bootstrap servers (default LAB_KAFKA_BOOTSTRAP or {DEFAULT_KAFKA_BOOTSTRAP})"


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual but prints a text with line breaks (the settings table
    of the epilog) as it is."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _with_settings_epilog(parser: argparse.ArgumentParser) -> None:
    """Every command's --help ends with the table of LAB_* settings (shared/settings.py)."""
    parser.epilog = settings_help()
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _with_settings_epilog(subparser)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 or more, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lab", description="Lambda vs Kappa on Spark: one sales workload, three builds, one oracle."
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_setup(commands)
    _add_generate(commands)
    _add_run(commands)
    _add_kappa(commands)
    _add_lambda(commands)
    _add_replay(commands)
    _add_oracle(commands)
    _add_verify(commands)
    _add_bench(commands)
    _add_experiments(commands)

    _with_settings_epilog(parser)
    return parser


def _add_setup(commands) -> None:
    setup = commands.add_parser(
        "setup",
        help="fetch the JVM jars (Delta, Kafka connector) into .lab/ivy and "
        "write the driver JVM's class archive into .lab/jvm",
    )
    setup_only = setup.add_mutually_exclusive_group()
    setup_only.add_argument("--jars", action="store_true", help="only the jars")
    setup_only.add_argument(
        "--class-archive", action="store_true", help="only the class archive (for the jars already resolved)"
    )
    setup.set_defaults(handler=cmd_setup)


def _add_generate(commands) -> None:
    gen = commands.add_parser("generate", help="write a realistic, deterministic sales input directory")
    gen.add_argument("--rows", type=_positive_int, required=True, help="order-line records to write")
    gen.add_argument("--seed", type=int, default=7, help="same seed, same bytes (default 7)")
    gen.add_argument("--out", required=True, help="output directory (created; a previous output is replaced)")
    gen.add_argument("--files", type=_positive_int, help="sales files (default: one per 10,000 rows)")
    gen.add_argument("--start", default="2019-01-01", help="first UTC day (default 2019-01-01)")
    gen.add_argument("--days", type=_positive_int, help="days spanned (default: ~1,500 lines a day)")
    gen.add_argument("--late-fraction", type=_fraction, default=0.0, help="lines beyond the watermark (default 0)")
    gen.add_argument(
        "--out-of-order-fraction", type=_fraction, default=0.02, help="lines out of order within the watermark"
    )
    gen.add_argument("--duplicate-fraction", type=_fraction, default=0.005, help="exact duplicate lines")
    gen.add_argument("--malformed-fraction", type=_fraction, default=0.01, help="lines that cannot be valid")
    gen.add_argument("--blank-fraction", type=_fraction, default=0.002, help="blank ',,,,,' lines")
    gen.add_argument("--header-fraction", type=_fraction, default=0.001, help="headers repeated mid-file")
    gen.add_argument("--no-catalogue", action="store_true", help="do not write catalogue/products.csv")
    gen.add_argument("--no-shipments", action="store_true", help="do not write shipments/")
    gen.add_argument(
        "--spreadsheet-files",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="save the first N sales files as spreadsheet programs do: a byte-order mark, "
        "\\r\\n line ends, no line end after the last line (default 0)",
    )
    gen.add_argument(
        "--windows-1252-files",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="save the last N sales files in Windows-1252, with accented city names on some "
        "lines (not UTF-8: quarantined not_utf8) and a runaway line (too_long) (default 0)",
    )
    gen.add_argument(
        "--binary-files",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="add a stray file of random bytes after each of the first N sales files "
        "(sales_0000_stray.csv), every line of it quarantined not_utf8 (default 0)",
    )
    gen.add_argument(
        "--binary-files-from",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="put the stray files after sales files K, K+1, ... instead of the first ones (default 0)",
    )
    gen.set_defaults(handler=cmd_generate)


def _add_run(commands) -> None:
    run = commands.add_parser(
        "run",
        help="process all of an input directory with one build and write its results export",
        description="Process the input to its end and write WORKDIR/results/<build>/. Started again on the same "
        "workdir, kappa and lambda resume from their checkpoints (exactly once); --fresh starts over.",
    )
    run.add_argument("build", choices=SPARK_BUILDS)
    _input_workdir(run)
    _spark_options(run)
    run.add_argument("--fresh", action="store_true", help="discard this build's earlier state in WORKDIR first")
    kappa_options = run.add_argument_group("kappa")
    _kappa_options(kappa_options)
    follow_options = run.add_argument_group("following an arriving input (kappa, lambda, dstream)")
    follow_options.add_argument(
        "--follow",
        action="store_true",
        help="keep consuming as files (kappa: or messages) arrive, until SIGINT/SIGTERM; "
        "then finish what was read and export",
    )
    follow_options.add_argument(
        "--interval",
        default="5 seconds",
        help="processing-time trigger for --follow (kappa, lambda; dstream keeps its 4 s batches when following)",
    )
    follow_options.add_argument(
        "--batch-every",
        default="60 seconds",
        type=_batch_schedule,
        help='lambda --follow: run the batch layer every DURATION ("60 seconds", '
        '"5 minutes") or every N new master versions ("10 versions")',
    )
    run.set_defaults(handler=cmd_run)


def _add_kappa(commands) -> None:
    kappa = commands.add_parser("kappa", help="kappa versions: reprocess by replay, cut over, drop, status")
    kappa_commands = kappa.add_subparsers(dest="kappa_command", required=True, metavar="ACTION")
    replay_version = kappa_commands.add_parser(
        "replay", help="run a new version from the start of the log into new tables, then cut readers over"
    )
    _input_workdir(replay_version)
    _spark_options(replay_version)
    _kappa_options(replay_version, version_required=True)
    replay_version.set_defaults(handler=cmd_kappa_replay)
    drop = kappa_commands.add_parser("drop", help="delete a version that no longer serves")
    drop.add_argument("--workdir", required=True)
    drop.add_argument("--version", required=True)
    drop.set_defaults(handler=cmd_kappa_drop)
    status = kappa_commands.add_parser("status", help="which version serves, which exist")
    status.add_argument("--workdir", required=True)
    status.set_defaults(handler=cmd_kappa_status)

    q0 = kappa_commands.add_parser(
        "passthrough",
        help="q0: clean raw lines and forward them (rate/Kafka source; Kafka/console sink; continuous trigger)",
    )
    q0.add_argument("--source", choices=("kafka", "rate"), default="kafka")
    q0.add_argument("--sink", choices=("kafka", "console"), default="kafka")
    q0.add_argument("--trigger", choices=("continuous", "processing", "available-now"), default="continuous")
    q0.add_argument("--interval", default="1 second", help="trigger interval (continuous: its checkpoint interval)")
    q0.add_argument("--bootstrap", default=None, help=BOOTSTRAP_HELP)
    q0.add_argument("--topic", default="sales", help="input topic")
    q0.add_argument("--output-topic", default="sales_valid")
    q0.add_argument("--rows-per-second", type=_positive_int, default=1000, help="rate source")
    q0.add_argument("--checkpoint", help="checkpoint folder (needed with the Kafka sink)")
    q0.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C/SIGTERM)")
    _spark_options(q0)
    q0.set_defaults(handler=cmd_kappa_passthrough)


def _add_lambda(commands) -> None:
    lambda_parser = commands.add_parser(
        "lambda", help="the Lambda serving layer: batch run on demand, view versions, answers, status"
    )
    lambda_commands = lambda_parser.add_subparsers(dest="lambda_command", required=True, metavar="ACTION")
    batch = lambda_commands.add_parser(
        "batch",
        help="run the batch layer now (a running `lab run lambda --follow` on WORKDIR does it at its next "
        "look; otherwise this command runs it, publishes the new cutoff and writes the results export of what "
        "serving answers then)",
    )
    _input_workdir(batch)
    batch.add_argument(
        "--recompute",
        action="store_true",
        help="recompute every batch view of the serving view version from the whole master even "
        "when the published cutoff is the newest; prints the time and the rows read "
        "(the same as --version SERVING)",
    )
    batch.add_argument(
        "--version",
        default=None,
        help="reprocessing into a view version: recompute every batch view of VERSION from the whole "
        "master, publish it atomically and print the time and the rows read; the version that "
        "served stays readable (lab lambda query --version) until dropped",
    )
    batch.add_argument(
        "--queries",
        default=None,
        help="with a new --version: the comma-separated queries it computes (default: the whole "
        "catalogue); an existing version keeps the queries it records",
    )
    _spark_options(batch)
    batch.set_defaults(handler=cmd_lambda_batch)
    query = lambda_commands.add_parser("query", help="print the serving layer's current answer to one query (CSV)")
    query.add_argument("query", choices=QUERY_NAMES)
    query.add_argument(
        "--version",
        default=None,
        help="answer from this view version's views (default: the serving version); a version that "
        "no longer serves answers as it did when it stopped serving",
    )
    _input_workdir(query)
    _spark_options(query)
    query.set_defaults(handler=cmd_lambda_query)
    lambda_status = lambda_commands.add_parser(
        "status", help="the serving view version, its cutoff and views, how far the speed layer is, every version"
    )
    lambda_status.add_argument("--workdir", required=True)
    lambda_status.set_defaults(handler=cmd_lambda_status)
    lambda_drop = lambda_commands.add_parser("drop", help="delete a view version that does not serve")
    lambda_drop.add_argument("--workdir", required=True)
    lambda_drop.add_argument("--version", required=True)
    lambda_drop.set_defaults(handler=cmd_lambda_drop)


def _add_replay(commands) -> None:
    replay = commands.add_parser(
        "replay", help="turn an input directory into an arriving stream (landing directory or Kafka)"
    )
    replay.add_argument("--input", required=True, help="input directory (its top-level sales *.csv)")
    replay.add_argument("--to", choices=("landing", "kafka"), required=True)
    replay.add_argument("--landing", help="landing directory (with --to landing)")
    replay.add_argument("--topic", default="sales", help="Kafka topic (with --to kafka; default sales)")
    replay.add_argument("--bootstrap", default=None, help=BOOTSTRAP_HELP)
    replay.add_argument("--partitions", type=_positive_int, default=1, help="partitions of a topic it creates")
    replay.add_argument("--rate", type=float, default=None, help="lines per second (default: as fast as possible)")
    replay.add_argument(
        "--rate-steps",
        type=_rate_steps,
        default=None,
        metavar="RATE:LINES,...",
        help="a stepped load instead of --rate (--to landing): LINES lines at RATE lines/s, then "
        "the next step, e.g. 100:1000,200:2000; units belong to the step of their first line",
    )
    replay.add_argument(
        "--step-gap",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="silence between two rate steps, so a backlog can drain (default 0)",
    )
    replay.add_argument(
        "--files",
        type=_file_slice,
        default=None,
        metavar="FIRST:END",
        help="with --to landing: only the input's sales files FIRST..END-1 (name order), with the seqs "
        "and names they have in the whole input; the schedule starts at the first",
    )
    replay.add_argument("--log", help="folder for the emission log (replay_log.csv, replay_summary.json)")
    replay.add_argument(
        "--order",
        choices=("file", "event-time"),
        default="file",
        help="file: the files in name order, as they are (default); event-time: every line "
        "sorted by its Order Date (lines without one first), for exports whose names "
        "are not in time order",
    )
    replay.set_defaults(handler=cmd_replay)


def _add_oracle(commands) -> None:
    oracle = commands.add_parser(
        "oracle",
        help="compute the reference answers (an independent implementation in Python and pandas, no Spark)",
        description="Compute every query straight from the raw CSV files with the oracle: lines parsed in plain "
        "Python, queries in pandas, money as exact decimals, no Spark. Writes WORKDIR/results/oracle/.",
    )
    _input_workdir(oracle)
    oracle.set_defaults(handler=cmd_oracle)


def _add_verify(commands) -> None:
    verify = commands.add_parser("verify", help="run every build and the oracle, print the equivalence table")
    _input_workdir(verify)
    _spark_options(verify)
    verify.set_defaults(handler=cmd_verify)


def _add_bench(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="each build's drain in its own process against a Spark batch baseline and DuckDB; ratios",
        description="The drain step of `lab experiments` on an input of your choosing: each system in its own "
        "process (its own JVM) on the same input, REPEATS times: the Spark batch baseline (python -m "
        "experiments.baselines.spark_batch), DuckDB (python -m experiments.baselines.duckdb_batch) and `lab run` "
        "kappa, lambda and dstream. Every export is compared with the oracle's; the measurements (wall s of the "
        "whole process, CPU s and peak RSS of its process tree) are appended to a run folder's metrics.csv under "
        "--reports, its report is written, and the ratios F1-F3 and F5 are printed from it as medians of the "
        "repeats with their spread. Exit status 1 when an export differs from the oracle's or a run fails.",
    )
    source = bench.add_mutually_exclusive_group(required=True)
    source.add_argument("--rows", type=_positive_int, help="generate an input of N rows (cached in DATA/input-N-SEED)")
    source.add_argument("--input", help="benchmark on this input directory instead")
    bench.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    bench.add_argument("--repeats", type=_positive_int, default=3, help="runs of each system (default 3)")
    bench.add_argument(
        "--builds",
        default=None,
        help="comma-separated subset of spark_batch,duckdb,kappa,lambda,dstream (default: all)",
    )
    _spark_options(bench)
    bench.add_argument("--reports", default="reports", help="where the run folder goes (default reports)")
    bench.add_argument(
        "--data", default="data/bench", help="where generated inputs and work folders go (default data/bench)"
    )
    bench.add_argument("--timeout", type=float, default=3600.0, help="seconds one measured run may take (default 3600)")
    bench.set_defaults(handler=cmd_bench)


def _add_experiments(commands) -> None:
    exp = commands.add_parser(
        "experiments",
        help="the whole lab, ending in a report under reports/",
        description="The lab's steps in one run folder reports/<run-id>/: inputs (generated, reused while they "
        "match), drains (spark_batch, duckdb, kappa, lambda, dstream, each in its own process, repeated, "
        "every export against the oracle), latency (each build and the harness pass-through following "
        "a landing directory fed by the open-loop replayer at every rate of the profile), throughput "
        "(the highest rate with latency bounded: the latency step's rates, a ramp above them, bisection), "
        "reprocessing (city_revenue_v1 -> city_revenue: lab lambda batch against lab kappa replay, at "
        "two sizes or more), recovery (SIGKILL at a random moment of a live run, restart, lost and "
        "duplicated lines, time to catch up), late (lines beyond the watermark: counted, dropped, "
        "corrected), code_size, soak (the soak profile: each build following a replay at half its "
        "sustainable throughput for half an hour), then the "
        "report (report.md, report.html, reports/index.html, reports/latest). Every measurement is a "
        "row of the run folder's metrics.csv. `lab experiments report RUN_DIR` redoes the report from "
        "the folder alone; `lab experiments compare RUN_A RUN_B` puts two runs side by side.",
    )
    exp.add_argument(
        "--profile",
        choices=("quick", "standard", "full", "soak"),
        default="quick",
        help="quick: small, one repeat; standard: three repeats of the drains, latency and the knee "
        "(`make experiments`); full: larger inputs, five repeats, the rate search in depth; soak: the "
        "throughput step, then each architecture following a replay at half its sustainable throughput "
        "for 30 minutes (`make soak`) (default quick)",
    )
    exp.add_argument(
        "--soak-minutes",
        type=float,
        default=None,
        help="how long each build's soak lasts (default the profile's: 30 minutes in soak)",
    )
    exp.add_argument(
        "--source",
        choices=("files", "kafka"),
        default="files",
        help="kappa's drain log: the input directory, or a Kafka topic the input is published to "
        f"(LAB_KAFKA_BOOTSTRAP, default {DEFAULT_KAFKA_BOOTSTRAP}; `make kafka-up` starts one); "
        "the live step always uses a landing directory",
    )
    exp.add_argument(
        "--input",
        help="drain this input directory instead of a generated one (the live step "
        "generates its own, cut into files for its rates)",
    )
    exp.add_argument("--reports", default="reports", help="where run folders go (default reports/)")
    exp.add_argument("--data", default="data/experiments", help="where inputs and work folders go")
    exp.add_argument(
        "--steps",
        default=None,
        help=f"comma-separated steps to run: {', '.join(STEPS)} (default the profile's: every step but soak, "
        "which the soak profile runs after throughput; the report always follows)",
    )
    exp.add_argument(
        "--systems",
        default=None,
        help="drain systems, comma-separated (default spark_batch,duckdb,kappa,lambda,dstream)",
    )
    exp.add_argument(
        "--live-builds", default=None, help="live builds, comma-separated (default passthrough,kappa,lambda,dstream)"
    )
    exp.add_argument(
        "--builds",
        default=None,
        help="builds of the steps after latency, comma-separated (default passthrough,kappa,lambda,"
        "dstream; the soak profile: kappa,lambda,dstream; each step takes those it can measure: throughput "
        "the live builds among them, reprocessing lambda and kappa, recovery, late, code_size and soak the "
        "three architectures)",
    )
    exp.add_argument("--run-dir", default=None, help="add the steps' rows to this existing run folder")
    exp.add_argument("--timeout", type=float, default=3600.0, help="seconds one drain may take (default 3600)")
    _spark_options(exp)
    exp.set_defaults(handler=cmd_experiments)
    exp_actions = exp.add_subparsers(dest="experiments_action", metavar="ACTION")
    exp_report = exp_actions.add_parser(
        "report", help="rebuild a run's report (and reports/index.html) from its folder alone"
    )
    exp_report.add_argument("run_dir", metavar="RUN_DIR")
    exp_report.set_defaults(handler=cmd_experiments_report)
    exp_compare = exp_actions.add_parser("compare", help="two runs side by side: reports/compare/<A>__<B>.html")
    exp_compare.add_argument("run_a", metavar="RUN_A")
    exp_compare.add_argument("run_b", metavar="RUN_B")
    exp_compare.set_defaults(handler=cmd_experiments_compare)


def _input_workdir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, help="input directory (sales *.csv, optional catalogue/ and shipments/)"
    )
    parser.add_argument("--workdir", required=True, help="work directory; results go to WORKDIR/results/<build>/")


def _spark_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", help=f"Spark master URL (default: LAB_SPARK_MASTER or {DEFAULT_SPARK_MASTER})")


def _kappa_options(parser, version_required: bool = False) -> None:
    parser.add_argument(
        "--source",
        choices=("files", "kafka"),
        default="files",
        help="the log: the input directory's sales files, or a Kafka topic",
    )
    parser.add_argument("--topic", default="sales", help="Kafka topic (with --source kafka)")
    parser.add_argument("--bootstrap", default=None, help=BOOTSTRAP_HELP)
    parser.add_argument(
        "--version",
        required=version_required,
        default=None,
        help="kappa version: its tables and checkpoints live in WORKDIR/kappa/<version>/",
    )
    parser.add_argument("--queries", default=None, help="comma-separated subset of the catalogue (default: all)")
    parser.add_argument(
        "--max-files-per-trigger",
        type=_positive_int,
        default=None,
        help="files per micro-batch with --source files (default: a drain takes whole files up to "
        "LAB_DRAIN_BATCH_MB per micro-batch; --follow takes what arrived, up to that size); "
        "dstream: files per batch of a drain (default: about 100,000 lines)",
    )


def _file_slice(text: str) -> tuple[int, int]:
    first, sep, end = text.partition(":")
    try:
        if sep and 0 <= int(first) < int(end):
            return int(first), int(end)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"bad file slice {text!r}: write FIRST:END with 0 <= FIRST < END (e.g. 12:40)")


def _rate_steps(text: str):
    from experiments.inputs.schedule import parse_rate_steps

    try:
        return parse_rate_steps(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _batch_schedule(text: str) -> str:
    from lambda_arch.app import BatchSchedule

    try:
        BatchSchedule.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _bootstrap(args) -> str:
    from shared.settings import LabSettings

    return args.bootstrap or LabSettings.from_env().kafka_bootstrap


def _kappa_config(args):
    """The kappa configuration `lab kappa replay` works on."""
    from experiments.harness.builds import RunRequest, kappa_config
    from shared.settings import LabSettings, WorkloadSettings

    return kappa_config(
        RunRequest(
            args.input,
            args.workdir,
            WorkloadSettings.from_env(),
            source=args.source,
            kafka_topic=args.topic,
            kafka_bootstrap=_bootstrap(args),
            version=args.version,
            queries=_queries(args),
            max_files_per_trigger=args.max_files_per_trigger,
            drain_batch_mb=LabSettings.from_env().drain_batch_mb,
        )
    )


def _queries(args) -> tuple[str, ...] | None:
    return tuple(q.strip() for q in args.queries.split(",")) if getattr(args, "queries", None) else None


def cmd_setup(args, progress: Progress) -> int:
    from shared.spark import build_class_archive, resolve_jvm_packages

    if not args.class_archive:
        progress.stage("resolving the Delta and Kafka connector jars from Maven Central")
        jars = resolve_jvm_packages()
        progress.stage(f"{len(jars)} jars ready")
    if args.jars:
        return 0
    progress.stage("writing the driver JVM's class archive (each later JVM starts a few seconds sooner)")
    archive = build_class_archive()
    progress.stage(
        f"class archive {archive}"
        if archive
        else "no class archive: this JVM could not write one (every JVM starts without it)"
    )
    return 0


def cmd_generate(args, progress: Progress) -> int:
    from experiments.inputs.generate import GeneratorOptions, generate
    from shared.settings import WorkloadSettings

    options = GeneratorOptions(
        rows=args.rows,
        seed=args.seed,
        files=args.files,
        start=args.start,
        days=args.days,
        late_fraction=args.late_fraction,
        out_of_order_fraction=args.out_of_order_fraction,
        duplicate_fraction=args.duplicate_fraction,
        malformed_fraction=args.malformed_fraction,
        blank_fraction=args.blank_fraction,
        repeated_header_fraction=args.header_fraction,
        catalogue=not args.no_catalogue,
        shipments=not args.no_shipments,
        spreadsheet_files=args.spreadsheet_files,
        windows_1252_files=args.windows_1252_files,
        binary_files=args.binary_files,
        binary_files_from=args.binary_files_from,
        # out-of-order lines inside, late lines beyond the watermark the builds will use
        watermark_seconds=WorkloadSettings.from_env().watermark_seconds,
    )
    progress.stage(f"generating {args.rows:,} rows into {args.out}")
    summary = generate(args.out, options, progress=lambda done, total: progress.fraction(done, total, "rows"))
    progress.stage(
        f"wrote {summary.raw_lines:,} raw lines ({summary.valid_lines:,} valid) in "
        f"{len(summary.sales_files)} sales files"
    )
    return 0


def _session(args, app_name: str, long_lived: bool = False):
    from shared.spark import create_spark_session

    return create_spark_session(app_name, master=args.master, long_lived=long_lived)


def _stop_session(spark) -> None:
    from shared.spark import stop_spark_session

    stop_spark_session(spark)


@contextmanager
def _spark_for(args, app_name: str, progress: Progress, what: str):
    """A Spark session for one command, announced and stopped whatever happens."""
    progress.stage(f"starting Spark for {what}")
    spark = _session(args, app_name)
    try:
        yield spark
    finally:
        _stop_session(spark)


def cmd_run(args, progress: Progress) -> int:
    import signal

    from experiments.harness.builds import BUILDS, RunRequest
    from shared.inputs import inspect_input
    from shared.settings import LabSettings, WorkloadSettings
    from shared.spark import lives_long

    build = BUILDS[args.build]
    stop = {"asked": False}
    request = RunRequest(
        args.input,
        args.workdir,
        WorkloadSettings.from_env(),
        fresh=args.fresh,
        source=args.source,
        follow=args.follow,
        interval=args.interval,
        should_stop=lambda: stop["asked"],
        kafka_bootstrap=_bootstrap(args),
        kafka_topic=args.topic,
        version=args.version,
        queries=_queries(args),
        max_files_per_trigger=args.max_files_per_trigger,
        drain_batch_mb=LabSettings.from_env().drain_batch_mb,
        progress=lambda done, total: progress.fraction(done, total, "lines"),
        report=progress.stage,
        batch_every=args.batch_every,
    )
    # fail fast, before a Spark session starts
    build.check(request)
    layout = inspect_input(args.input, require_sales=request.source == "files" and not request.follow)
    if request.source == "kafka":
        from shared.kafka import check_broker

        check_broker(request.kafka_bootstrap)
    if request.follow:

        def ask_to_stop(signum, _frame):
            progress.stage(f"signal {signum}: stopping the streaming queries between micro-batches")
            stop["asked"] = True

        signal.signal(signal.SIGTERM, ask_to_stop)
        signal.signal(signal.SIGINT, ask_to_stop)
    spark = None
    if build.uses_spark:
        progress.stage(f"starting Spark for the {args.build} build")
        # a follow service lives long; so does a drain of a large input (the JVM's compilers pay)
        long_lived = request.follow or (request.source == "files" and lives_long(layout.sales_bytes))
        spark = _session(args, f"lab-{args.build}", long_lived=long_lived)
    try:
        # dstream keeps its own batch interval (--interval does not apply)
        every = "" if args.build == "dstream" else f" every {request.interval}"
        progress.stage(
            f"{args.build}: processing {args.input}"
            + (f", following the {request.source} log{every}; Ctrl-C or SIGTERM stops it" if request.follow else "")
        )
        status = build.run(spark, request)
    finally:
        if spark is not None:
            _stop_session(spark)
    for query, state in status.items():
        print(f"{query:18} {state}")
    return 0


def cmd_kappa_replay(args, progress: Progress) -> int:
    from kappa import app

    config = _kappa_config(args)
    with _spark_for(args, "lab-kappa-replay", progress, "the replay") as spark:
        progress.stage(f"kappa {config.version}: replaying the log from its start into new tables")
        outcome = app.replay(spark, config)
        progress.stage(
            f"caught up in {outcome['catch_up_seconds']} s ({outcome['passes']} passes, "
            f"{outcome['input_rows']} input rows); readers now use {config.version}"
        )
        status = app.export_results(spark, config)
    print(json.dumps(outcome, indent=2))
    for query, state in status.items():
        print(f"{query:18} {state}")
    return 0


def cmd_kappa_passthrough(args, progress: Progress) -> int:
    import signal
    import time

    from kappa.passthrough import PassthroughConfig, start_passthrough

    config = PassthroughConfig(
        source=args.source,
        sink=args.sink,
        trigger=args.trigger,
        interval=args.interval,
        bootstrap=_bootstrap(args),
        topic=args.topic,
        output_topic=args.output_topic,
        rows_per_second=args.rows_per_second,
        checkpoint=args.checkpoint,
    )
    stop = {"asked": False}
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.update(asked=True))
    spark = _session(args, "lab-kappa-q0")
    try:
        query = start_passthrough(spark, config)
        progress.stage(f"q0 running: {config.source} -> {config.sink}, {config.trigger} trigger")
        ends = time.monotonic() + args.seconds if args.seconds else None
        while query.isActive and not stop["asked"] and (ends is None or time.monotonic() < ends):
            time.sleep(0.5)
        if query.exception() is not None:
            raise RuntimeError(f"q0 failed: {query.exception()}")
        query.stop()
    finally:
        _stop_session(spark)
    return 0


def cmd_kappa_drop(args, progress: Progress) -> int:
    from kappa.versions import drop_version

    print(f"dropped {drop_version(args.workdir, args.version)}")
    return 0


def cmd_kappa_status(args, progress: Progress) -> int:
    from kappa.versions import pointer_path, versions

    pointer = pointer_path(args.workdir)
    print(pointer.read_text() if pointer.exists() else "no version serves yet")
    print("versions:", ", ".join(versions(args.workdir)) or "none")
    return 0


def _lambda_config(args):
    from lambda_arch.layout import LambdaConfig
    from shared.settings import WorkloadSettings

    return LambdaConfig(args.input, args.workdir, settings=WorkloadSettings.from_env())


def cmd_lambda_batch(args, progress: Progress) -> int:
    from lambda_arch.app import batch_now, export_served, is_following, request_batch
    from lambda_arch.versions import check_version

    config = _lambda_config(args)
    queries = _queries(args)
    if args.version is not None:
        check_version(args.version)
    if queries is not None and args.version is None:
        raise ValueError("--queries names the logic of a new view version: give --version too")
    if queries is not None and set(queries) - set(QUERY_NAMES):
        raise ValueError(
            f"unknown queries {sorted(set(queries) - set(QUERY_NAMES))}; the catalogue is {', '.join(QUERY_NAMES)}"
        )
    reprocessing = args.recompute or args.version is not None  # this process runs the batch layer
    if reprocessing and is_following(config):
        option = "--recompute" if args.version is None else f"--version {args.version}"
        raise ValueError(
            f"a `lab run lambda --follow` runs on {args.workdir}: stop it (SIGTERM) before "
            f"{option}, then start it again (it follows the serving view version), or let its next "
            "scheduled batch run pick up new lines"
        )
    if not reprocessing and request_batch(config):
        progress.stage(
            f"asked the running `lab run lambda --follow` on {args.workdir} for a batch run; "
            "`lab lambda status` shows the new cutoff once it serves"
        )
        return 0
    with _spark_for(args, "lab-lambda-batch", progress, "the batch layer") as spark:
        outcome = batch_now(spark, config, recompute=args.recompute, version=args.version, queries=queries)
        # what serving answers now, as `lab kappa replay` writes its export after the cut-over
        written = export_served(spark, config) if outcome is not None else {}
    if outcome is None:
        progress.stage("nothing new to batch (--recompute recomputes the views anyway)")
    else:
        retired = (
            f"; {outcome['previous']} stays readable until `lab lambda drop --version {outcome['previous']}`"
            if outcome["previous"] not in (None, outcome["version"])
            else ""
        )
        progress.stage(
            f"view version {outcome['version']}: batch views of master v{outcome['cutoff']} serve now: "
            f"{outcome['master_rows_read']:,} master rows read in {outcome['seconds']:.1f} s{retired}"
        )
        print(json.dumps(outcome))
        for query, state in written.items():
            print(f"{query:18} {state}")
    return 0


def cmd_lambda_query(args, progress: Progress) -> int:
    from lambda_arch.serving_layer import published, served_rows
    from shared.catalogue import QUERIES
    from shared.export import render

    config = _lambda_config(args)
    at, _cutoff = published(config, args.version)  # a clear error for a version unknown or never published
    if args.query not in at.queries:
        raise ValueError(
            f"view version {at.version} does not compute {args.query} (it computes {', '.join(at.queries)})"
        )
    with _spark_for(args, "lab-lambda-query", progress, "the serving layer") as spark:
        rows = served_rows(spark, config, args.version).get(args.query, [])
    sys.stdout.write(render(QUERIES[args.query], rows))
    return 0


def cmd_lambda_status(args, progress: Progress) -> int:
    from lambda_arch.app import status

    print(json.dumps(status(args.workdir), indent=2))
    return 0


def cmd_lambda_drop(args, progress: Progress) -> int:
    from lambda_arch.layout import LambdaConfig
    from lambda_arch.versions import drop_version

    print(f"dropped {drop_version(LambdaConfig('', args.workdir), args.version)}")
    return 0


def cmd_replay(args, progress: Progress) -> int:
    from experiments.inputs.kafka_replay import replay_to_kafka
    from experiments.inputs.replay import replay_to_landing

    show = lambda done, total: progress.fraction(done, total, "lines")
    if args.rate_steps is not None and args.rate is not None:
        raise ValueError("give either --rate or --rate-steps, not both")
    if args.to == "landing":
        if not args.landing:
            raise ValueError("--to landing needs --landing DIR")
        summary = replay_to_landing(
            args.input,
            args.landing,
            args.rate,
            log_dir=args.log,
            progress=show,
            order=args.order,
            rate_steps=args.rate_steps,
            step_gap_s=args.step_gap,
            file_slice=args.files,
        )
    else:
        if args.rate_steps is not None or args.files is not None:
            raise ValueError("--rate-steps and --files are for --to landing")
        bootstrap = _bootstrap(args)
        summary = replay_to_kafka(
            args.input,
            bootstrap,
            args.topic,
            args.rate,
            partitions=args.partitions,
            log_dir=args.log,
            progress=show,
            order=args.order,
        )
    progress.stage(
        f"replayed {summary.lines:,} lines in {summary.duration_s:.1f} s "
        f"(max lag behind schedule {summary.lag_max_s or 0:.3f} s)"
    )
    return 0


def cmd_oracle(args, progress: Progress) -> int:
    from experiments.reference.oracle import run_oracle
    from shared.settings import WorkloadSettings

    progress.stage(f"oracle: reading {args.input}")
    result = run_oracle(args.input, args.workdir, WorkloadSettings.from_env())
    print(
        f"raw lines {result.raw_lines:,} = valid {result.valid_lines:,} + quarantined "
        f"{result.raw_lines - result.valid_lines:,}"
    )
    for query in result.results:
        print(f"{query:18} written")
    for query, why in result.not_applicable.items():
        print(f"{query:18} not applicable: {why}")
    return 0


def cmd_verify(args, progress: Progress) -> int:
    from experiments.harness.verify import SPARK_BUILDS, equivalence_table, format_text_table, verify
    from shared.atomic import write_text_atomic
    from shared.export import results_dir
    from shared.inputs import inspect_input
    from shared.settings import WorkloadSettings

    inspect_input(args.input)
    with _spark_for(args, "lab-verify", progress, "the builds and the oracle") as spark:
        outcome = verify(spark, args.input, args.workdir, settings=WorkloadSettings.from_env(), stage=progress.stage)
    print(format_text_table(["query", *SPARK_BUILDS], equivalence_table(outcome)))
    for warning in outcome.warnings:  # about the input itself: shown, but not a failure
        print(f"warning: {warning}")
    write_text_atomic(results_dir(args.workdir, "verify.json"), json.dumps(outcome.to_json(), indent=2, default=str))
    for problem in outcome.accounting_problems:
        print(f"accounting: {problem}")
    for problem in outcome.quality_problems:
        print(f"data quality: {problem}")
    verdict = (
        "all produced results are identical to the oracle"
        if outcome.ok
        else (
            f"{len(outcome.mismatches)} mismatches, {len(outcome.accounting_problems)} accounting problems, "
            f"{len(outcome.quality_problems)} data-quality problems"
        )
    )
    print(verdict)
    return 0 if outcome.ok else EXIT_MISMATCH


def cmd_bench(args, progress: Progress) -> int:
    from experiments.harness.profiles import DRAIN_SYSTEMS, bench_profile
    from experiments.harness.runner import run_experiments
    from experiments.report.bench_summary import failures, summary
    from experiments.report.data import RunData
    from experiments.report.index import publish

    run_dir = run_experiments(
        profile=bench_profile(args.rows or 0, args.repeats, args.seed),
        master=args.master,
        input_dir=args.input,
        reports_root=Path(args.reports),
        data_root=Path(args.data),
        progress=progress,
        steps=("drains",),
        systems=_names(args.builds) or DRAIN_SYSTEMS,
        timeout_s=args.timeout,
    )
    progress.stage("report | from the run folder alone")
    report = publish(run_dir)
    data = RunData.load(run_dir)
    print(summary(data, str(report)))
    return 1 if failures(data) else 0


def _names(text: str | None) -> tuple[str, ...] | None:
    return tuple(n.strip() for n in text.split(",") if n.strip()) if text else None


def cmd_experiments(args, progress: Progress) -> int:
    from dataclasses import replace

    from experiments.harness.profiles import DRAIN_SYSTEMS, LIVE_BUILDS, PROFILES
    from experiments.harness.runner import run_experiments
    from experiments.report.index import publish

    profile = PROFILES[args.profile]
    if args.soak_minutes is not None:
        if args.soak_minutes <= 0:
            raise ValueError("--soak-minutes must be positive")
        profile = replace(profile, soak_seconds=args.soak_minutes * 60)
    run_dir = run_experiments(
        profile=profile,
        source=args.source,
        master=args.master,
        input_dir=args.input,
        reports_root=Path(args.reports),
        data_root=Path(args.data),
        progress=progress,
        steps=_names(args.steps),
        systems=_names(args.systems) or DRAIN_SYSTEMS,
        live_builds=_names(args.live_builds) or LIVE_BUILDS,
        run_dir=args.run_dir,
        timeout_s=args.timeout,
        builds=_names(args.builds),
    )
    progress.stage("step report | from the run folder alone")
    report = publish(run_dir)
    progress.stage(f"report written: {report}")
    print(f"report: {report}")
    return 0


def cmd_experiments_report(args, progress: Progress) -> int:
    from experiments.report.index import write_index
    from experiments.report.writer import write_report

    run_dir = Path(args.run_dir)
    report = write_report(run_dir)
    write_index(run_dir.resolve().parent)
    print(f"report: {report.with_suffix('.html')}")
    return 0


def cmd_experiments_compare(args, progress: Progress) -> int:
    from experiments.report.index import compare

    print(f"comparison: {compare(args.run_a, args.run_b)}")
    return 0


def _failed(args, error: Exception) -> int:
    """One line for the error; for a full disk (an OSError, or a streaming query's failure
    that says so), one more: which file system, and what to do."""
    from shared.streaming import DISK_FULL

    print(f"lab {args.command}: error: {error}", file=sys.stderr)
    if DISK_FULL in str(error):  # ENOSPC's own words, in an OSError and in Spark's report alike
        print(f"lab {args.command}: {_disk_full(getattr(args, 'workdir', None))}", file=sys.stderr)
    return EXIT_USAGE


def _disk_full(workdir: str | None) -> str:
    """What to do when a run stopped on a full file system: which one, how full, and that a
    restart continues (every table write is a Delta commit or an atomic rename, so what a
    reader sees was written whole)."""
    import shutil

    where = Path(workdir or ".").resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    return (
        f"the file system of {where} is full ({free / 2**20:,.1f} MiB free): free some space (or choose another "
        "--workdir) and run the same command; it continues from its checkpoints"
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    progress = Progress(quiet=args.quiet)
    try:
        return args.handler(args, progress)
    except (ValueError, FileNotFoundError, RuntimeError, TimeoutError) as error:
        # Bad arguments, bad input and a full disk end with what happened, not a traceback.
        return _failed(args, error)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        return _failed(args, error)
    except KeyboardInterrupt:
        print(f"lab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
