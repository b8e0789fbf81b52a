"""Kappa q0: the pass-through query, which measures the harness itself (as Nexmark's q0 does).

Raw sales lines in, their valid typed lines out as Kafka-ready JSON, with nothing in between
but `classify_lines` and a projection: no state and no shuffle, so its latency and throughput
are those of the source, the cleaning and the sink alone. It also shows the parts of
Structured Streaming that the main application (kappa/app.py) does not use: the rate source,
the Kafka, console and memory sinks, and the continuous trigger.

What Spark 4.2's continuous trigger did with this lab (tried on Spark 4.2.0):
- It ran all of `classify_lines` + `valid_order_lines`. They are projections and a filter
  only, and continuous mode accepts their expressions: split, the higher-order functions
  transform/forall/exists, rlike, regexp_replace/regexp_extract, try_to_timestamp,
  try_cast, element_at, map_from_entries, to_json. So q0 cleans in continuous mode just as
  it does in micro-batches, and nothing is forwarded without cleaning.
- It accepted the kafka and rate sources and the kafka, console, memory (and noop) sinks.
- It refused these at start (the Spark message is quoted):
  aggregation "Continuous processing does not support Aggregate operations.",
  dropDuplicates "... does not support Deduplicate operations.", union "... Union
  operations.", current_timestamp "Continuous processing does not support current time
  operations.", the rate-micro-batch source "Data source rate-micro-batch does not support
  continuous processing.", foreachBatch "'foreachBatch' is not supported with continuous
  trigger.".
- The Delta sink starts, then fails: "Unknown type of trigger: ContinuousTrigger(1000)".
Continuous processing is at-least-once: after a failure its epochs are replayed, so the
output topic can hold a line twice. It also keeps one long-running task per source partition
busy for as long as it runs: with as many partitions as cores, every other Spark job (even
reading the memory sink's table) waits forever (seen with the rate source's default of one
partition per core on local[2]). The rate source here has one partition; a Kafka topic needs
fewer partitions than the cores.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.errors import IllegalArgumentException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from shared.cleaning import classify_lines, valid_order_lines
from shared.kafka import check_broker, kafka_messages
from shared.settings import DEFAULT_KAFKA_BOOTSTRAP

SOURCES = ("kafka", "rate")
SINKS = ("kafka", "console", "memory")
TRIGGERS = ("continuous", "processing", "available-now")
# The rate source's synthetic catalogue: (product, price each), picked by value % len.
RATE_PRODUCTS = (
    ("USB-C Charging Cable", "11.95"),
    ("AA Batteries (4-pack)", "3.84"),
    ("27in FHD Monitor", "149.99"),
    ("Wired Headphones", "11.99"),
)
RATE_ADDRESS = '"917 1st St, Dallas, TX 75001"'  # quoted: the address holds commas
# Continuous mode pins one core per source partition for as long as it runs; one rate
# partition leaves the other cores to the driver's own jobs (reading the memory sink, say).
RATE_PARTITIONS = 1


@dataclass(frozen=True)
class PassthroughConfig:
    source: str = "kafka"  # "kafka" (raw sales lines, one per message, as replay_to_kafka writes them) or "rate"
    sink: str = "kafka"  # "kafka", "console" or "memory" (table = query_name)
    trigger: str = "continuous"  # "continuous" (~ms latency, at-least-once), "processing" or "available-now"
    interval: str = "1 second"  # processing-time interval, or the continuous trigger's checkpoint interval
    bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    topic: str = "sales"  # input topic
    output_topic: str = "sales_valid"
    rows_per_second: int = 1000  # rate source
    checkpoint: str | None = None  # required for the kafka sink
    query_name: str = "kappa_q0_passthrough"

    def __post_init__(self):
        problems = unsupported(self)
        if problems:
            raise ValueError("unsupported q0 pass-through configuration: " + "; ".join(problems))


def unsupported(config: PassthroughConfig) -> list[str]:
    """Why this combination cannot run (empty when it can), checked before any query starts."""
    problems = []
    for name, value, choices in (
        ("source", config.source, SOURCES),
        ("sink", config.sink, SINKS),
        ("trigger", config.trigger, TRIGGERS),
    ):
        if value not in choices:
            problems.append(f"unknown {name} {value!r}: use {', '.join(choices)}")
    if config.sink == "kafka" and not config.checkpoint:
        problems.append("the kafka sink needs a checkpoint directory (it is what makes restarts resume)")
    if config.source == config.sink == "kafka" and config.topic == config.output_topic:
        problems.append(f"input and output topic are both {config.topic!r}: q0 would read its own output")
    if config.source == "rate" and config.trigger == "available-now":
        # the rate source never ends: available-now stops at once, with no rows (tried)
        problems.append("the rate source is unbounded: use the processing or continuous trigger with it")
    if config.source == "rate" and (
        isinstance(config.rows_per_second, bool)
        or not isinstance(config.rows_per_second, int)
        or config.rows_per_second < 1
    ):
        problems.append(f"rows_per_second must be a positive integer, got {config.rows_per_second!r}")
    return problems


def rate_lines(spark, rows_per_second: int) -> DataFrame:
    """Synthetic valid raw sales lines from the rate source (value -> product and quantity,
    timestamp -> Order Date), with `source_file` = 'rate' and `seq` = the rate's value."""
    rate = (
        spark.readStream.format("rate")
        .option("rowsPerSecond", rows_per_second)
        .option("numPartitions", RATE_PARTITIONS)
        .load()
    )
    n = F.col("value")
    pick = (n % len(RATE_PRODUCTS) + 1).cast("int")
    product = F.element_at(F.array(*[F.lit(p) for p, _ in RATE_PRODUCTS]), pick)
    price = F.element_at(F.array(*[F.lit(p) for _, p in RATE_PRODUCTS]), pick)
    line = F.concat_ws(
        ",",
        (n + 1).cast("string"),
        product,
        (n % 3 + 1).cast("string"),
        price,
        F.date_format("timestamp", "MM/dd/yy HH:mm"),
        F.lit(RATE_ADDRESS),
    )
    return rate.select(line.alias("value"), F.lit("rate").alias("source_file"), n.alias("seq"))


def kafka_lines(spark, config: PassthroughConfig) -> DataFrame:
    """Raw lines from the input topic: `value`, `source_file` (the message key, as
    replay_to_kafka writes it) and `seq` (its `seq` header)."""
    messages = kafka_messages(spark, config.bootstrap, config.topic, include_headers=True)
    seq = F.element_at(F.map_from_entries("headers"), F.lit("seq")).cast("string").cast("long")
    return messages.select(
        F.col("value").cast("string").alias("value"), F.col("key").cast("string").alias("source_file"), seq.alias("seq")
    )


def passthrough_frame(raw: DataFrame) -> DataFrame:
    """Valid lines of `raw` as Kafka-ready columns: key (order id), value (JSON of the typed
    line, money as exact decimal strings, order_ts as UTC 'yyyy-MM-dd HH:mm:ss'), plus `seq`
    and a `seq` header when `raw` has a seq. A projection only, so continuous mode takes it."""
    has_seq = "seq" in raw.columns
    lines = valid_order_lines(classify_lines(raw), keep=("seq",) if has_seq else ())
    fields: list[Column | str] = [
        "order_id",
        "product",
        "quantity",
        F.col("price").cast("string").alias("price"),
        F.col("revenue").cast("string").alias("revenue"),
        F.date_format("order_ts", "yyyy-MM-dd HH:mm:ss").alias("order_ts"),
        "street",
        "city",
        "state",
        "zip",
    ]
    fields += ["seq"] if has_seq else []
    columns: list[Column | str] = [F.col("order_id").alias("key"), F.to_json(F.struct(*fields)).alias("value")]
    if has_seq:
        header = F.struct(F.lit("seq").alias("key"), F.col("seq").cast("string").cast("binary").alias("value"))
        columns += ["seq", F.array(header).alias("headers")]
    return lines.select(*columns)


def start_passthrough(spark, config: PassthroughConfig):
    """Start q0 and return its StreamingQuery (the caller stops it). Unsupported
    combinations raise ValueError before anything starts: PassthroughConfig refuses them
    when built, and a bad interval is refused here."""
    raw = kafka_lines(spark, config) if config.source == "kafka" else rate_lines(spark, config.rows_per_second)
    writer = passthrough_frame(raw).writeStream.queryName(config.query_name).outputMode("append")
    if config.checkpoint:
        writer = writer.option("checkpointLocation", config.checkpoint)
    return _with_sink(_with_trigger(writer, config), config).start()


def _with_trigger(writer, config: PassthroughConfig):
    if config.trigger == "available-now":
        return writer.trigger(availableNow=True)
    try:  # Spark parses the interval here, before start: report it as a bad argument
        if config.trigger == "continuous":
            return writer.trigger(continuous=config.interval)
        return writer.trigger(processingTime=config.interval)
    except IllegalArgumentException as error:
        raise ValueError(f"bad interval {config.interval!r} for the {config.trigger} trigger: {error}") from error


def _with_sink(writer, config: PassthroughConfig):
    if config.sink == "kafka":
        check_broker(config.bootstrap)
        return (
            writer.format("kafka")
            .option("kafka.bootstrap.servers", config.bootstrap)
            .option("topic", config.output_topic)
        )
    if config.sink == "console":
        return writer.format("console").option("truncate", "false")
    return writer.format("memory")
