"""The one place a SparkSession is made, for jobs and tests alike."""
from __future__ import annotations

import glob
import os
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pyspark

from shared.settings import LabSettings

# delta-spark 4.4.1 (Python) has no 4.4.1 jar on Maven Central for Spark 4.2; 4.4.0 is the
# newest published delta-spark_4.2 artifact and is what the Python API talks to.
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
KAFKA_PACKAGE = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"
JVM_PACKAGES = (DELTA_PACKAGE, KAFKA_PACKAGE)
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def ivy_dir(settings: LabSettings | None = None) -> Path:
    """Project-local Ivy folder, under LabSettings.home (LAB_HOME, default <repo>/.lab)."""
    return (settings or LabSettings.from_env()).home / "ivy"


def resolved_jars(settings: LabSettings | None = None) -> list[str]:
    """Jars that `lab setup` resolved into the project-local Ivy folder, if it ran."""
    return sorted(glob.glob(str(ivy_dir(settings) / "jars" / "*.jar")))


@contextmanager
def _jvm_ignoring_sigterm():
    """Start the driver JVM with SIGTERM ignored (an ignored signal stays ignored across
    exec, and the JVM then installs no handler for it), as PySpark already does for SIGINT.

    Service managers and container runtimes send SIGTERM to the whole process group: the
    JVM would run its shutdown hooks and stop the SparkContext under the running queries.
    This way only the Python driver hears it, stops the queries between micro-batches and
    writes its exports; the JVM exits when the Python process does (its stdin closes).
    A SIGTERM in the few seconds of JVM start-up is ignored by Python too.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signal dispositions can only be changed from the main thread
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def create_spark_session(
    app_name: str = "lab",
    master: str | None = None,
    *,
    shuffle_partitions: int | None = None,
    ui: bool | None = None,
    extra_conf: dict[str, str] | None = None,
    settings: LabSettings | None = None,
):
    """A session with Delta and the Kafka connector, UTC time, warnings-only logs.

    master, shuffle_partitions, ui: when None, taken from `settings` (default
    LabSettings.from_env(): LAB_SPARK_MASTER, LAB_SHUFFLE_PARTITIONS, LAB_SPARK_UI).
    """
    from pyspark.sql import SparkSession

    settings = settings or LabSettings.from_env()

    # Python workers must run this very interpreter (the venv's), locally and on a cluster.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    master = master or settings.spark_master
    if shuffle_partitions is None:
        shuffle_partitions = settings.shuffle_partitions
    if ui is None:
        ui = settings.spark_ui
    log_opts = f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG}"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"{log_opts} -Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", f"{log_opts} -Duser.timezone=UTC")
        # Spark's default driver heap is 1 GiB whatever the machine: size it to this one.
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, shuffle_partitions)))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "true")
        # State in RocksDB, off the JVM heap, and each micro-batch checkpoints only the
        # changes it made (a changelog) instead of uploading a full snapshot of every store.
        # A checkpoint keeps the provider it was started with (Spark records it there).
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        # No extra micro-batch without input just to move the watermark and evict state: it
        # changes no result (update and append outputs are unchanged by eviction) and costs a
        # whole batch per stateful query at the end of every drain.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        # the legacy build stops its StreamingContext gracefully once its input is counted
        .config("spark.streaming.gracefulStopTimeout", "3s")
    )
    jars = resolved_jars(settings)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:  # `lab setup` has not run: let Spark resolve from Maven Central now
        builder = builder.config("spark.jars.packages", ",".join(JVM_PACKAGES)).config(
            "spark.jars.ivy", str(ivy_dir(settings))
        )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    with _jvm_ignoring_sigterm():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def resolve_jvm_packages(settings: LabSettings | None = None) -> list[str]:
    """Fetch the Delta and Kafka connector jars (and their dependencies) into the project."""
    from pyspark.sql import SparkSession

    settings = settings or LabSettings.from_env()
    ivy = ivy_dir(settings)
    ivy.mkdir(parents=True, exist_ok=True)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("lab-setup")
        .config("spark.jars.packages", ",".join(JVM_PACKAGES))
        .config("spark.jars.ivy", str(ivy))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    jars = resolved_jars(settings)
    wanted = {"delta-spark", "spark-sql-kafka"}
    missing = [w for w in wanted if not any(w in Path(j).name for j in jars)]
    if missing:
        raise RuntimeError(f"jar resolution did not produce {missing} in {ivy / 'jars'}")
    return jars
