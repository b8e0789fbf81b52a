"""The one place a SparkSession is made, for jobs and tests alike."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import subprocess
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


def class_archive(settings: LabSettings | None = None) -> Path:
    """The driver JVM's class-data-sharing archive that `lab setup` writes (Java's AppCDS).

    Every `lab` process starts its own JVM, and loading and verifying Spark's classes is
    a good part of its 15-40 s start on a small machine; mapping them from an archive saves
    4-5 s per process, for builds and baselines alike. Its name carries the Java binary, the
    Spark version and the jars: a change of any of them means a new archive, and until
    `lab setup` writes it the JVM starts without one (as it does when an archive does not fit).
    """
    settings = settings or LabSettings.from_env()
    java = (
        shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin"))
        if os.environ.get("JAVA_HOME")
        else shutil.which("java")
    )
    java = os.path.realpath(java) if java else "none"
    key = "\n".join(
        [
            java,
            str(os.stat(java).st_mtime_ns) if java != "none" else "",
            pyspark.__version__,
            *(Path(jar).name for jar in resolved_jars(settings)),
        ]
    )
    return settings.home / "jvm" / f"spark-{hashlib.sha256(key.encode()).hexdigest()[:16]}.jsa"


# Every lab JVM: Spark's logs through the lab's config, UTC.
JVM_OPTIONS = f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG} -Duser.timezone=UTC"
# Class-data-sharing messages off: an archive that does not fit this JVM is skipped without a word.
QUIET_CLASS_SHARING = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def lab_jvm_options(settings: LabSettings, long_lived: bool) -> str:
    """A lab JVM's options: `settings.batch_jvm_options` added for one that runs to its end
    and not for a `long_lived` one (shared/settings.DEFAULT_BATCH_JVM_OPTIONS says why)."""
    options = f"{JVM_OPTIONS} -Dlab.spark.errors={spark_errors_log(settings)}"
    return options if long_lived else f"{options} {settings.batch_jvm_options}".strip()


def lives_long(input_bytes: int, settings: LabSettings | None = None) -> bool:
    """Whether a process that runs to its end over `input_bytes` of sales files lives long
    enough to keep the JVM's default compilers (shared/settings.DEFAULT_BATCH_JVM_MAX_MB)."""
    settings = settings or LabSettings.from_env()
    return input_bytes > settings.batch_jvm_max_mb * 2**20


def spark_errors_log(settings: LabSettings | None = None) -> Path:
    """Where Spark's report of a failed streaming query goes (shared/log4j2.properties)."""
    return (settings or LabSettings.from_env()).home / "logs" / "spark-errors.log"


def _class_archive_options(settings: LabSettings) -> str:
    archive = class_archive(settings)
    return f" -XX:SharedArchiveFile={archive} -Xshare:auto {QUIET_CLASS_SHARING}" if archive.exists() else ""


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
    long_lived: bool = False,
):
    """A session with Delta and the Kafka connector, UTC time, warnings-only logs.

    master, shuffle_partitions, ui: when None, taken from `settings` (default
    LabSettings.from_env(): LAB_SPARK_MASTER, LAB_SHUFFLE_PARTITIONS, LAB_SPARK_UI).
    long_lived: a process that lives for minutes, a `--follow` service or the test session
    (its JVM: `lab_jvm_options`).
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
    jvm_options = lab_jvm_options(settings, long_lived)
    driver_opts = jvm_options + _class_archive_options(settings)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", driver_opts)
        .config("spark.executor.extraJavaOptions", jvm_options)
        # Spark's default driver heap is 1 GiB whatever the machine: size it to this one.
        .config("spark.driver.memory", settings.driver_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, shuffle_partitions)))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        # A glob (landing/*.csv) gives the file index one root path per matching file, and
        # past 32 roots Spark lists them with a Spark job: 213 files took 2 s per listing
        # here, at every trigger of every file stream; on the driver, 0.2 s.
        .config("spark.sql.sources.parallelPartitionDiscovery.threshold", "10000")
        # Generated classes kept per JVM (default 100): a live micro-batch of Kappa or Lambda runs
        # more distinct generated classes than that, so each batch evicted and recompiled the ones
        # the next needed (Janino was 18% of a follow JVM's samples in a flight recording; a
        # Kappa log batch of 50 lines went from about 2.9 to 2.5 s, measured alone)
        .config("spark.sql.codegen.cache.maxEntries", "2000")
        # PySpark 4 records the Python call site of every DataFrame function for its error
        # messages: about six Py4J round trips per F.col, F.lit, cast or alias. A live
        # micro-batch builds its plans anew (Lambda's realtime views: 3,700 round trips), so
        # this was half of building them: 1.9 s -> 1.0 s for six views' plan, before any job.
        # The lab reports a failure in one line of its own and never shows that context.
        .config("spark.python.sql.dataFrameDebugging.enabled", "false")
        # A file listed by a micro-batch and gone before its task reads it (a landing directory
        # fed by hand) is skipped, not a failed query that a restart fails again; the build's
        # sequence map reports it (shared/sequence.py). The second covers textFileStream's RDDs.
        .config("spark.sql.files.ignoreMissingFiles", "true")
        .config("spark.files.ignoreMissingFiles", "true")
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "true")
        # State in RocksDB, off the JVM heap, and each micro-batch checkpoints only the
        # changes it made (a changelog) instead of uploading a full snapshot of every store.
        # A checkpoint keeps the provider it was started with (Spark records it there).
        .config(
            "spark.sql.streaming.stateStore.providerClass",
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
        )
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        # Counting a store's rows costs a read before every write and delete (Spark's
        # performance notes): the lab never reads that metric (numRowsTotal, then 0). The
        # Lambda speed layer's join in a 1,000,000-line drain: 43 s -> 35 s.
        .config("spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows", "false")
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


def stop_spark_session(spark) -> None:
    """Stop the session, the state stores' maintenance thread first: left running, it can
    fire while the context goes away and log an RPC or file error with a stack trace
    (Spark's own shutdown does not stop it before the RPC environment). StateStore is
    Spark's internal object (no public API stops it); the session stops whatever happens."""
    try:
        spark._jvm.org.apache.spark.sql.execution.streaming.state.StateStore.stop()
    finally:
        spark.stop()


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


# What the archive run does: the classes a lab process loads in its first minute (SQL with
# decimals, Delta reads and writes, a streaming query with state and a file source).
_ARCHIVE_WORKLOAD = """
import sys, tempfile
from shared.spark import create_spark_session
spark = create_spark_session("lab-setup-class-archive", "local[2]", extra_conf={
    "spark.driver.extraJavaOptions": sys.argv[1]})
root = tempfile.mkdtemp(prefix="lab-class-archive-")
frame = spark.range(2000).selectExpr("id % 7 AS city", "CAST(id AS DECIMAL(12, 2)) AS amount",
                                      "TIMESTAMP '2019-01-01 00:00:00' + make_interval(0, 0, 0, 0, 0, 0, id) AS at")
frame.write.format("delta").save(root + "/table")
frame.write.csv(root + "/csv", header=True)
spark.read.format("delta").load(root + "/table").groupBy("city").sum("amount").collect()
stream = (spark.readStream.schema(frame.schema).csv(root + "/csv", header=True)
          .withWatermark("at", "10 minutes").groupBy("city").count())
(stream.writeStream.format("delta").outputMode("complete").option("checkpointLocation", root + "/checkpoint")
 .trigger(availableNow=True).start(root + "/out").awaitTermination())
spark.stop()
"""


def build_class_archive(settings: LabSettings | None = None) -> Path | None:
    """Write `class_archive()` by running a small workload in a JVM that dumps the classes it
    loaded at exit. Returns the archive, or None when this JVM cannot write one (the lab
    then starts without it)."""
    settings = settings or LabSettings.from_env()
    archive = class_archive(settings)
    archive.parent.mkdir(parents=True, exist_ok=True)
    for stale in archive.parent.glob("spark-*.jsa"):
        if stale != archive:
            stale.unlink()
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    options = f"{JVM_OPTIONS} -XX:ArchiveClassesAtExit={partial} {QUIET_CLASS_SHARING}"
    # output through a pipe: run() then returns at its end of file, once the JVM (which holds
    # the pipe too, and outlives the Python process) has written the archive and exited
    finished = subprocess.run(
        [sys.executable, "-c", _ARCHIVE_WORKLOAD, options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "LAB_HOME": str(settings.home)},
        check=False,
    )
    archive.with_suffix(".log").write_bytes(finished.stdout)
    if finished.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, archive)
    return archive
