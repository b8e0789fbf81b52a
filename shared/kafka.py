"""Kafka helpers every build and the replayer share: the broker check and the log source."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from shared.console import say, warn


class KafkaUnavailableError(RuntimeError):
    """The Kafka broker cannot be reached."""


# A broker that goes away while a build reads it: Spark's Kafka source keeps asking for the
# topic's offsets, each attempt waiting up to the client's default.api.timeout.ms (60 s), and
# gives up after fetchOffset.numRetries (3): an outage of up to about 3 minutes is ridden out
# (tests/test_faults.py stops the broker for 30 s mid-replay), a longer one stops the run
# with BROKER_GONE. The build's own reads of the topic wait as long (last_seq_before).
BROKER_PATIENCE_S = 180.0
BROKER_GONE = (
    "the Kafka broker has not answered for about 3 minutes; start it again (or check --bootstrap) "
    "and run the same command: the build continues where it stopped, from its checkpoint"
)


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]]:
    """host:port pairs of a bootstrap list ("h1:9092,PLAINTEXT://h2:9092,[::1]:9092")."""
    addresses = []
    for item in (part.strip() for part in bootstrap.split(",")):
        item = item.split("://", 1)[-1]
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"bad Kafka bootstrap address {item!r} in {bootstrap!r}: expected host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def unavailable(bootstrap: str, detail: str) -> KafkaUnavailableError:
    return KafkaUnavailableError(
        f"cannot reach the Kafka broker at {bootstrap} ({detail}); start the lab's broker with "
        "`make kafka-up` or pass the address of a running one (--bootstrap)"
    )


def check_broker(bootstrap: str, timeout_s: float = 5.0) -> None:
    """A plain TCP connect first, before any client starts: librdkafka and Spark's Kafka
    source would retry a dead address for ever."""
    errors = []
    for host, port in bootstrap_addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=min(timeout_s, 5.0)):
                return
        except OSError as error:
            errors.append(f"{host}:{port}: {error.strerror or error}")
    raise unavailable(bootstrap, "; ".join(errors))


@contextmanager
def watching_broker(bootstrap: str | None, every_s: float = 5.0) -> Iterator[None]:
    """While a follow run reads Kafka (`bootstrap`; None: it does not): one line on stderr
    when the broker stops answering and one when it is back, instead of the Kafka client's
    line a second (silenced in shared/log4j2.properties). The check is a TCP connect."""
    if bootstrap is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        down_since = None
        while not stop.wait(every_s):
            try:
                check_broker(bootstrap, timeout_s=2.0)
            except KafkaUnavailableError:
                if down_since is None:
                    down_since = time.strftime("%H:%M:%S")
                    warn(
                        f"the Kafka broker at {bootstrap} does not answer (since {down_since}); "
                        f"the run waits for it up to about {BROKER_PATIENCE_S / 60:.0f} minutes"
                    )
                continue
            if down_since is not None:
                say(f"the Kafka broker at {bootstrap} answers again (it did not from {down_since})")
                down_since = None

    watcher = threading.Thread(target=watch, name="lab-broker-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()


def kafka_messages(
    spark, bootstrap: str, topic: str, max_offsets_per_trigger: int | None = None, include_headers: bool = False
):
    """A topic as a stream from its earliest offset, after checking the broker answers."""
    check_broker(bootstrap)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "true")
        .option("includeHeaders", str(include_headers).lower())
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", max_offsets_per_trigger)
    return reader.load()


def last_seq_before(
    bootstrap: str, topic: str, end_offsets: dict[int, int], timeout_s: float = BROKER_PATIENCE_S
) -> int | None:
    """The highest `seq` header among the last messages before `end_offsets` (partition ->
    offset after the last message read): what a batch that read up to there includes.
    The replayer writes lines in seq order within each partition, so the last message of
    each partition carries that partition's highest seq."""
    from confluent_kafka import Consumer, TopicPartition

    wanted = [TopicPartition(topic, partition, offset - 1) for partition, offset in end_offsets.items() if offset > 0]
    if not wanted:
        return None
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lab-seq-lookup", "enable.auto.commit": False})
    try:
        seqs = []
        for partition in wanted:
            consumer.assign([partition])
            deadline = time.monotonic() + timeout_s
            while True:  # an error event ("all brokers down") is news, not the end: librdkafka reconnects
                message = consumer.poll(max(0.1, deadline - time.monotonic()))
                if message is not None and not message.error():
                    break
                if time.monotonic() >= deadline:
                    raise KafkaUnavailableError(
                        f"cannot read {topic}[{partition.partition}]@{partition.offset} "
                        f"for its seq header: {BROKER_GONE}"
                    )
            headers = dict(message.headers() or [])  # key (str) -> value (bytes)
            if "seq" not in headers:
                return None  # not a replayer's topic: no sequence numbers to report
            seq = headers["seq"]
            assert seq is not None  # the replayer always gives seq a value
            seqs.append(int(seq))
        return max(seqs)
    finally:
        consumer.close()
