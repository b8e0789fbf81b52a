"""One SparkSession for the whole test run (local[2], few shuffle partitions, UI off)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def spark():
    from shared.spark import create_spark_session

    session = create_spark_session("lab-tests", master="local[2]", shuffle_partitions=2, ui=False)
    yield session
    session.stop()
