"""Kappa q0 (kappa/passthrough.py): rate source, Kafka/console/memory sinks, continuous trigger.

Kafka tests (`-m kafka`) run against the real broker of `make kafka-up` (or
LAB_KAFKA_BOOTSTRAP), each on topics of its own. Every query is stopped in `finally`, and
every wait is bounded.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from kappa.passthrough import RATE_PRODUCTS, PassthroughConfig, start_passthrough

WAIT_S = 40.0
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00$")
TWO_PLACES = re.compile(r"^\d+\.\d{2}$")


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def stop(query) -> None:
    if query is not None and query.isActive:
        query.stop()


def wait_until(condition, timeout_s: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.25)


def assert_typed_line(line: dict) -> None:
    """Money as exact two-place strings, revenue = quantity x price, UTC order time."""
    assert TWO_PLACES.match(line["price"]) and TWO_PLACES.match(line["revenue"]), line
    assert Decimal(line["revenue"]) == line["quantity"] * Decimal(line["price"]), line
    assert TIMESTAMP.match(line["order_ts"]), line
    assert line["order_id"] and line["city"] and re.fullmatch(r"[A-Z]{2}", line["state"]), line


# ---------------------------------------------------------------------------------------
# Rate source -> memory sink (no broker needed)
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", ["processing", "continuous"])
def test_rate_to_memory_gives_valid_json_lines(spark, trigger):
    config = PassthroughConfig(
        source="rate",
        sink="memory",
        trigger=trigger,
        interval="500 milliseconds",
        rows_per_second=50,
        query_name=unique("q0_rate_memory"),
    )
    query = None
    try:
        query = start_passthrough(spark, config)
        table = spark.table(config.query_name)  # the memory sink's table, re-read on each action
        wait_until(lambda: table.count() >= 20 or query.exception() is not None, what="20 rows in memory")
        assert query.exception() is None, query.exception()
        rows = table.collect()
    finally:
        stop(query)
    prices = dict(RATE_PRODUCTS)
    for row in rows:
        line = json.loads(row.value)
        n = line["seq"]
        assert row.seq == n and row.key == line["order_id"] == str(n + 1)
        assert line["product"] == RATE_PRODUCTS[n % len(RATE_PRODUCTS)][0]
        assert line["price"] == prices[line["product"]] and line["quantity"] == n % 3 + 1
        assert (line["street"], line["city"], line["state"], line["zip"]) == ("917 1st St", "Dallas", "TX", "75001")
        assert dict((h.key, bytes(h.value).decode()) for h in row.headers) == {"seq": str(n)}
        assert_typed_line(line)


# ---------------------------------------------------------------------------------------
# Unsupported combinations: refused before anything starts
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, words",
    [
        (dict(source="files"), "unknown source 'files'"),
        (dict(sink="delta", checkpoint="/tmp/x"), "unknown sink 'delta'"),
        (dict(trigger="once", checkpoint="/tmp/x"), "unknown trigger 'once'"),
        (dict(sink="kafka"), "needs a checkpoint"),
        (dict(topic="t", output_topic="t", checkpoint="/tmp/x"), "read its own output"),
        (dict(source="rate", sink="memory", trigger="available-now"), "rate source is unbounded"),
        (dict(source="rate", sink="memory", rows_per_second=0), "rows_per_second must be a positive integer"),
    ],
)
def test_unsupported_combinations_are_refused(settings, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        PassthroughConfig(**settings)


def test_bad_interval_is_refused_before_start(spark):
    active = {q.id for q in spark.streams.active}
    for trigger in ("processing", "continuous"):
        config = PassthroughConfig(
            source="rate", sink="memory", trigger=trigger, interval="soon", query_name=unique("q0_bad")
        )
        with pytest.raises(ValueError, match="bad interval 'soon'"):
            start_passthrough(spark, config)
    assert {q.id for q in spark.streams.active} == active


# ---------------------------------------------------------------------------------------
# Kafka: against the real broker
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_input(generated_input) -> Path:
    return generated_input(rows=300, files=2, seed=3)


@pytest.fixture
def topics(new_topic):
    """Fresh input and output topics for one test, deleted afterwards."""
    return {"input": new_topic("q0-in"), "output": new_topic("q0-out")}


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=15)


def consume(bootstrap: str, topic: str, expected: int, timeout_s: float = WAIT_S) -> list:
    """Messages from the beginning until `expected` arrive (+1 s, so a duplicate shows) or time out."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("q0-test"),
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages, deadline, grace_until = [], time.monotonic() + timeout_s, None
        while time.monotonic() < min(deadline, grace_until or deadline):
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= expected and grace_until is None:
                grace_until = time.monotonic() + 1.0
        return messages
    finally:
        consumer.close()


@pytest.mark.kafka
def test_kafka_to_kafka_continuous_delivers_every_valid_line(spark, kafka_bootstrap, tiny_input, topics, tmp_path):
    from experiments.inputs.kafka_replay import replay_to_kafka
    from experiments.reference.oracle import compute

    raw_lines = replay_to_kafka(tiny_input, kafka_bootstrap, topics["input"]).lines
    valid_lines = compute(tiny_input).valid_lines
    assert 0 < valid_lines < raw_lines  # the input has bad lines for the cleaning to drop
    create_topic(kafka_bootstrap, topics["output"])
    config = PassthroughConfig(
        bootstrap=kafka_bootstrap,
        topic=topics["input"],
        output_topic=topics["output"],
        trigger="continuous",
        interval="500 milliseconds",
        checkpoint=str(tmp_path / "checkpoint"),
        query_name=unique("q0_kafka_continuous"),
    )
    query = None
    try:
        query = start_passthrough(spark, config)
        messages = consume(kafka_bootstrap, topics["output"], valid_lines)
        assert query.exception() is None, query.exception()
    finally:
        stop(query)
    seqs = [int(dict(m.headers())["seq"]) for m in messages]
    assert len(messages) == valid_lines and len(set(seqs)) == valid_lines
    assert all(0 <= s < raw_lines for s in seqs)
    for message in messages:
        line = json.loads(message.value())
        assert message.key().decode() == line["order_id"] and line["seq"] == int(dict(message.headers())["seq"])
        assert_typed_line(line)


@pytest.mark.kafka
def test_kafka_available_now_to_console_reads_everything_and_stops(spark, kafka_bootstrap, tiny_input, topics):
    from experiments.inputs.kafka_replay import replay_to_kafka

    raw_lines = replay_to_kafka(tiny_input, kafka_bootstrap, topics["input"]).lines
    config = PassthroughConfig(
        bootstrap=kafka_bootstrap,
        topic=topics["input"],
        sink="console",
        trigger="available-now",
        query_name=unique("q0_kafka_console"),
    )
    query = None
    try:
        query = start_passthrough(spark, config)
        assert query.awaitTermination(WAIT_S), f"available-now did not stop within {WAIT_S:g} s"
        assert query.exception() is None, query.exception()
        assert sum(p["numInputRows"] for p in query.recentProgress) == raw_lines
    finally:
        stop(query)
