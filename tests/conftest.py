"""One SparkSession for the whole test run (local[2], few shuffle partitions, UI off)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spark():
    from shared.spark import create_spark_session

    # long-lived: one JVM runs every in-process test (three modules: 139-141 s, 159-164 s with C1 only)
    session = create_spark_session("lab-tests", master="local[2]", shuffle_partitions=2, ui=False, long_lived=True)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The broker of `make kafka-up` (or LAB_KAFKA_BOOTSTRAP). Under `make test` the variable
    is set and a missing broker fails the test; a bare pytest run without a broker skips."""
    from shared.settings import LabSettings

    bootstrap = LabSettings.from_env().kafka_bootstrap
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError:
        if "LAB_KAFKA_BOOTSTRAP" in os.environ:
            pytest.fail(f"no Kafka broker at {bootstrap}")
        pytest.skip(f"no Kafka broker at {bootstrap} (start one with `make kafka-up`)")
    return bootstrap


@pytest.fixture
def new_topic(kafka_bootstrap):
    """Makes topic names no other test uses; deletes those topics afterwards, so tests
    leave the shared broker tidy (its retention is off)."""
    from confluent_kafka.admin import AdminClient

    names = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}-{uuid.uuid4().hex[:12]}")
        return names[-1]

    yield make
    if names:
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        for future in admin.delete_topics(names, operation_timeout=10).values():
            try:
                future.result(timeout=15)
            except Exception:  # never created (a failed test): nothing to tidy
                pass


@pytest.fixture(scope="session")
def generated_input(tmp_path_factory):
    """The one factory of generated inputs: `generated_input(rows=..., seed=..., ...)` (the
    options of GeneratorOptions) is an input directory made once per session for those
    options. Tests read it as it is; one that changes an input copies it first."""
    from experiments.inputs.generate import GeneratorOptions, generate

    made: dict[tuple, Path] = {}

    def make(**options) -> Path:
        key = tuple(sorted(options.items()))
        if key not in made:
            root = tmp_path_factory.mktemp("input") / "in"
            generate(root, GeneratorOptions(**options))
            made[key] = root
        return made[key]

    return make
