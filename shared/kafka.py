"""Kafka helpers every build and the replayer share: the broker check and the log source."""
from __future__ import annotations

import socket


class KafkaUnavailableError(RuntimeError):
    """The Kafka broker cannot be reached."""


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
        "`make kafka-up` or pass the address of a running one (--bootstrap)")


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


def kafka_messages(spark, bootstrap: str, topic: str, max_offsets_per_trigger: int | None = None,
                   include_headers: bool = False):
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


def last_seq_before(bootstrap: str, topic: str, end_offsets: dict[int, int], timeout_s: float = 10.0) -> int | None:
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
            message = consumer.poll(timeout_s)
            if message is None or message.error():
                raise RuntimeError(f"cannot read {topic}[{partition.partition}]@{partition.offset} for its seq header")
            headers = dict(message.headers() or [])  # key (str) -> value (bytes)
            if "seq" not in headers:
                return None  # not a replayer's topic: no sequence numbers to report
            seqs.append(int(headers["seq"]))
        return max(seqs)
    finally:
        consumer.close()
