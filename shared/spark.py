"""The one place a SparkSession is made, for jobs and tests alike."""
from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import pyspark

# delta-spark 4.4.1 (Python) has no 4.4.1 jar on Maven Central for Spark 4.2; 4.4.0 is the
# newest published delta-spark_4.2 artifact and is what the Python API talks to.
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"
KAFKA_PACKAGE = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"
JVM_PACKAGES = (DELTA_PACKAGE, KAFKA_PACKAGE)
DEFAULT_MASTER = "local[2]"
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


def lab_home() -> Path:
    """Project-local state (resolved jars, broker, cluster): LAB_HOME or <repo>/.lab."""
    if os.environ.get("LAB_HOME"):
        return Path(os.environ["LAB_HOME"]).resolve()
    repo = Path(__file__).resolve().parent.parent
    if (repo / "pyproject.toml").exists():
        return repo / ".lab"
    return Path.home() / ".cache" / "lambda-kappa-lab"


def ivy_dir() -> Path:
    return lab_home() / "ivy"


def resolved_jars() -> list[str]:
    """Jars that `lab setup` resolved into the project-local Ivy folder, if it ran."""
    return sorted(glob.glob(str(ivy_dir() / "jars" / "*.jar")))


def spark_master(master: str | None = None) -> str:
    return master or os.environ.get("LAB_SPARK_MASTER") or DEFAULT_MASTER


def create_spark_session(
    app_name: str = "lab",
    master: str | None = None,
    *,
    shuffle_partitions: int | None = None,
    ui: bool | None = None,
    extra_conf: dict[str, str] | None = None,
):
    """A session with Delta and the Kafka connector, UTC time, warnings-only logs.

    master: a Spark master URL; default LAB_SPARK_MASTER or local[2].
    """
    from pyspark.sql import SparkSession

    # Python workers must run this very interpreter (the venv's), locally and on a cluster.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    master = spark_master(master)
    if shuffle_partitions is None:
        shuffle_partitions = int(os.environ.get("LAB_SHUFFLE_PARTITIONS", "4"))
    if ui is None:
        ui = os.environ.get("LAB_SPARK_UI", "0") == "1"
    log_opts = f"-Dlog4j.configurationFile=file:{LOG4J_CONFIG}"
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", f"{log_opts} -Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", f"{log_opts} -Duser.timezone=UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(max(2, shuffle_partitions)))
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.streaming.metricsEnabled", "true")
        # the legacy build stops its StreamingContext gracefully once its input is counted
        .config("spark.streaming.gracefulStopTimeout", "3s")
    )
    jars = resolved_jars()
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:  # `lab setup` has not run: let Spark resolve from Maven Central now
        builder = builder.config("spark.jars.packages", ",".join(JVM_PACKAGES)).config(
            "spark.jars.ivy", str(ivy_dir())
        )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def resolve_jvm_packages() -> list[str]:
    """Fetch the Delta and Kafka connector jars (and their dependencies) into the project."""
    from pyspark.sql import SparkSession

    ivy = ivy_dir()
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
    jars = resolved_jars()
    wanted = {"delta-spark", "spark-sql-kafka"}
    missing = [w for w in wanted if not any(w in Path(j).name for j in jars)]
    if missing:
        raise RuntimeError(f"jar resolution did not produce {missing} in {ivy / 'jars'}")
    return jars
