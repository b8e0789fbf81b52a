"""The replayer's Kafka target: one message per raw line (docs/data-rules.md: every physical
line, headers and blank lines included), key = source file name, headers `seq` (the line's
global 0-based sequence number) and `file_seq` (its file's 0-based sequence number, the same
number the landing directory puts in front of the file name). Lines are produced in chunks,
one schedule unit each (experiments/inputs/schedule.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping

from experiments.inputs.schedule import ReplayRun, ReplaySummary, validated_rate
from experiments.inputs.stream import (
    FILE_ORDER,
    Line,
    ProgressCallback,
    ReplayError,
    lines_in_order,
    sales_files,
    source_names,
    validated_order,
)
from shared.kafka import BROKER_PATIENCE_S, check_broker, unavailable
from shared.kafka import KafkaUnavailableError as BrokerUnavailable

MAX_KAFKA_CHUNK_LINES = 1000
# With a rate, a Kafka chunk spans about this much schedule time, so lines inside a chunk
# are never more than ~10 ms early (one chunk = a burst of lines emitted together).
KAFKA_CHUNK_SECONDS = 0.01
KAFKA_LINGER_MS = 5
# A message not acknowledged within this fails: as long as the builds wait for a broker that
# went away (shared/kafka.BROKER_PATIENCE_S) and a minute more, so a replay rides out any
# outage that they ride out.
KAFKA_DELIVERY_TIMEOUT_MS = int(BROKER_PATIENCE_S * 1000) + 60_000
KAFKA_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")


class KafkaUnavailableError(ReplayError, BrokerUnavailable):
    """The Kafka broker cannot be reached."""


class KafkaDeliveryError(ReplayError):
    """Some messages were not acknowledged by the broker."""


def replay_to_kafka(
    input_dir: str | os.PathLike,
    bootstrap: str,
    topic: str,
    rate_lines_per_second: float | None = None,
    *,
    partitions: int = 1,
    replication_factor: int = -1,
    chunk_lines: int | None = None,
    log_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    client_config: Mapping[str, object] | None = None,
    connect_timeout_s: float = 10.0,
    flush_timeout_s: float = 120.0,
    order: str = FILE_ORDER,
) -> ReplaySummary:
    """Produce every raw line of `input_dir`'s sales files to `topic`, in order (file order,
    or with order="event-time" sorted by `event_time_order`; a message's key and `file_seq`
    always name its own input file).

    The topic is created with `partitions` (default 1: one partition keeps the global line
    order; with more, the file-name key still keeps each file's lines in order) and
    `replication_factor` (-1 = the broker's default) when missing; an existing topic is kept
    as it is, with a note when its partition count differs. `chunk_lines` lines form one
    schedule unit (default: about 10 ms of the rate, at most 1000). `client_config` adds
    librdkafka settings (security, for example) to the admin client and the producer.
    Raises KafkaUnavailableError within about `connect_timeout_s` when the broker cannot be
    reached, and KafkaDeliveryError when a message is not acknowledged.
    """
    _validate_kafka_arguments(topic, partitions, chunk_lines)
    order = validated_order(order)
    files = sales_files(input_dir)
    rate = validated_rate(rate_lines_per_second)
    chunk = chunk_lines or _default_chunk_lines(rate)
    config = {"bootstrap.servers": bootstrap, **(client_config or {})}

    try:
        check_broker(bootstrap, connect_timeout_s)
    except BrokerUnavailable as error:
        raise KafkaUnavailableError(str(error)) from None
    topic_fields = _ensure_topic(config, topic, partitions, replication_factor, connect_timeout_s)
    producer = _producer(config)
    deliveries = _DeliveryTracker()

    lines = lines_in_order(files, order)  # event-time order: sorted here, before the clock starts
    run = ReplayRun("kafka", input_dir, f"{bootstrap}/{topic}", rate, files, progress, order)
    try:
        for unit, (first_seq, chunk_of_lines) in enumerate(_chunks(lines, chunk, whole_files=order == FILE_ORDER)):
            intended = run.wait_for(first_seq)
            _produce_chunk(producer, topic, first_seq, chunk_of_lines, deliveries)
            run.record(unit, first_seq, len(chunk_of_lines), source_names(chunk_of_lines), topic, intended)
            deliveries.raise_if_failed()
        _flush(producer, deliveries, run.total_lines, flush_timeout_s)
    except BaseException as error:
        run.abandon(log_dir, error, **topic_fields)
        raise
    return run.finish(log_dir, **topic_fields)


def _validate_kafka_arguments(topic: str, partitions: int, chunk_lines: int | None) -> None:
    if not isinstance(topic, str) or not KAFKA_TOPIC_RE.fullmatch(topic) or topic in (".", ".."):
        raise ValueError(f"bad Kafka topic name {topic!r}: 1-249 characters of A-Z a-z 0-9 . _ -")
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive integer, got {partitions!r}")
    if chunk_lines is not None and (
        isinstance(chunk_lines, bool) or not isinstance(chunk_lines, int) or chunk_lines < 1
    ):
        raise ValueError(f"chunk_lines must be a positive integer or None, got {chunk_lines!r}")


def _default_chunk_lines(rate: float | None) -> int:
    if rate is None:
        return MAX_KAFKA_CHUNK_LINES
    return max(1, min(MAX_KAFKA_CHUNK_LINES, int(rate * KAFKA_CHUNK_SECONDS)))


def _chunks(lines: Iterable[Line], chunk_lines: int, whole_files: bool) -> Iterator[tuple[int, list[Line]]]:
    """(global seq of the first line, lines) in emission order, at most chunk_lines each.
    With whole_files (file order) a chunk never spans two files, so each log row names one
    source file. Lines are taken lazily, as they are emitted."""
    seq = 0
    chunk: list[Line] = []
    for line in lines:
        if chunk and whole_files and line.sales.file_seq != chunk[-1].sales.file_seq:
            yield seq, chunk
            seq, chunk = seq + len(chunk), []
        chunk.append(line)
        if len(chunk) == chunk_lines:
            yield seq, chunk
            seq, chunk = seq + len(chunk), []
    if chunk:
        yield seq, chunk


def _ensure_topic(config: dict, topic: str, partitions: int, replication_factor: int, timeout_s: float) -> dict:
    """The topic's fields for the summary, creating it when missing."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(dict(config))
    existing = _topic_partitions(admin, topic, config["bootstrap.servers"], timeout_s)
    created = False
    if existing is None:
        future = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
            operation_timeout=timeout_s,
        )[topic]
        try:
            future.result(timeout=timeout_s + 5)
            created, existing = True, partitions
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another client raced us
                raise ReplayError(f"cannot create Kafka topic {topic!r}: {error.args[0].str()}") from None
            existing = _topic_partitions(admin, topic, config["bootstrap.servers"], timeout_s)
    notes = []
    if existing != partitions:
        notes.append(
            f"topic {topic!r} already exists with {existing} partitions (asked for {partitions}); "
            "kept as it is: line order holds within each file (the message key), not across files"
        )
    return {"topic": topic, "partitions": existing, "topic_created": created, "notes": notes}


def _topic_partitions(admin, topic: str, bootstrap: str, timeout_s: float) -> int | None:
    from confluent_kafka import KafkaException

    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as error:
        raise KafkaUnavailableError(
            str(unavailable(bootstrap, f"no metadata within {timeout_s:g} s: {error.args[0].str()}"))
        ) from None
    found = metadata.topics.get(topic)
    return None if found is None or found.error is not None else len(found.partitions)


def _producer(config: dict):
    from confluent_kafka import Producer

    # Idempotence (with acks=all) means retries neither duplicate nor reorder a line.
    return Producer(
        {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": KAFKA_LINGER_MS,
            "message.timeout.ms": KAFKA_DELIVERY_TIMEOUT_MS,
            **config,
        }
    )


class _DeliveryTracker:
    """The delivery callback: counts acknowledgements and keeps the first failure."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error, message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"line seq {_seq_header(message)}: {error.str()}"

    def raise_if_failed(self) -> None:
        if self.failed:
            raise KafkaDeliveryError(f"{self.failed} message(s) failed delivery; first: {self.first_error}")


def _seq_header(message) -> str:
    return next((value.decode() for key, value in (message.headers() or []) if key == "seq"), "?")


def _produce_chunk(producer, topic: str, first_seq: int, lines: list[Line], deliveries: _DeliveryTracker) -> None:
    for seq, line in enumerate(lines, start=first_seq):
        key = line.sales.path.name.encode("utf-8")  # its own file, in either order
        headers = [("seq", str(seq).encode("ascii")), ("file_seq", str(line.sales.file_seq).encode("ascii"))]
        while True:
            try:
                producer.produce(topic, value=line.raw, key=key, headers=headers, on_delivery=deliveries)
                break
            except BufferError:
                producer.poll(0.05)  # local queue full: wait for acknowledgements (shows as lag)
                deliveries.raise_if_failed()
    producer.poll(0)  # serve delivery callbacks without waiting


def _flush(producer, deliveries: _DeliveryTracker, expected: int, timeout_s: float) -> None:
    undelivered = producer.flush(timeout_s)
    deliveries.raise_if_failed()
    if undelivered:
        raise KafkaDeliveryError(f"{undelivered} message(s) still unacknowledged after {timeout_s:g} s")
    if deliveries.delivered != expected:
        raise KafkaDeliveryError(f"{deliveries.delivered} messages acknowledged, expected {expected}")
