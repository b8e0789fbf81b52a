"""`lab experiments`: generation, the systems under test, measurement and reporting as
separate steps. Each step writes files in the run folder; the report step reads only
those files (timings.csv, equivalence-*.json, environment.json)."""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments.progress import Progress
from shared.atomic import write_text_atomic
from shared.settings import LabSettings, WorkloadSettings


@dataclass(frozen=True)
class Profile:
    name: str
    rows: int
    repeats: int
    seed: int = 7


PROFILES = {
    "quick": Profile("quick", rows=50_000, repeats=2),
    "standard": Profile("standard", rows=200_000, repeats=3),
    "full": Profile("full", rows=1_000_000, repeats=5),
}
TIMINGS_COLUMNS = ("run_id", "profile", "repeat", "build", "seconds", "raw_lines", "master", "source")


def prepare_input(profile: Profile, data_root: Path, progress: Progress,
                  settings: WorkloadSettings = WorkloadSettings()) -> Path:
    """Generate the profile's input once (out-of-order lines inside the builds' watermark);
    reuse it while its manifest matches."""
    from experiments.inputs.generate import GeneratorOptions, generate

    target = data_root / f"input-{profile.name}-seed{profile.seed}"
    options = GeneratorOptions(rows=profile.rows, seed=profile.seed, watermark_seconds=settings.watermark_seconds)
    manifest = target / "_manifest.json"
    if manifest.exists():
        recorded = json.loads(manifest.read_text()).get("options", {})
        if (recorded.get("rows"), recorded.get("seed"), recorded.get("watermark_seconds")) == (
                options.rows, options.seed, options.watermark_seconds):
            progress.stage(f"reusing the generated input {target}")
            return target
    progress.stage(f"generating {profile.rows:,} rows (seed {profile.seed}) into {target}")
    generate(target, options, progress=lambda done, total: progress.fraction(done, total, "rows"))
    return target


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        return (out.stderr or out.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def environment(spark, profile: Profile, source: str, input_dir: Path, settings: WorkloadSettings) -> dict:
    import delta
    import pyspark

    from shared.spark import DELTA_PACKAGE, KAFKA_PACKAGE

    return {
        "started_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "processor": platform.machine(),
                    "cpus": os.cpu_count(), "memory_gib": _memory_gib()},
        "spark_master": spark.sparkContext.master,
        "versions": {"python": platform.python_version(), "pyspark": pyspark.__version__,
                     "delta_spark_python": getattr(delta, "__version__", "4.4.1"),
                     "delta_jar": DELTA_PACKAGE, "kafka_connector": KAFKA_PACKAGE, "java": _java_version()},
        "profile": asdict(profile), "source": source, "input": str(input_dir),
        "settings": asdict(settings),
        "spark_conf": {k: v for k, v in spark.sparkContext.getConf().getAll()
                       if k in ("spark.sql.shuffle.partitions", "spark.default.parallelism", "spark.master")},
    }


def run_experiments(profile: str = "quick", source: str = "files", master: str | None = None,
                    input_dir: str | None = None, reports_root: Path = Path("reports"),
                    data_root: Path = Path("data/experiments"), progress: Progress | None = None) -> Path:
    from experiments.report.writer import write_report
    from experiments.harness.verify import SPARK_BUILDS, compare_all, run_builds
    from shared.inputs import inspect_input
    from shared.spark import create_spark_session

    progress = progress or Progress()
    chosen = PROFILES[profile]
    lab = LabSettings.from_env()
    settings = lab.workload
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{chosen.name}"
    run_dir = reports_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    data = Path(input_dir) if input_dir else prepare_input(chosen, data_root, progress, settings)
    inspect_input(data)
    progress.stage("starting Spark")
    spark = create_spark_session("lab-experiments", master=master, settings=lab)
    try:
        write_text_atomic(run_dir / "environment.json",
                          json.dumps(environment(spark, chosen, source, data, settings), indent=2))
        workdir = data_root / "work" / run_id
        options = kafka_log(data, run_id, progress, lab.kafka_bootstrap) if source == "kafka" else {}
        for repeat in range(1, chosen.repeats + 1):
            progress.stage(f"repeat {repeat}/{chosen.repeats}: oracle and {', '.join(SPARK_BUILDS)}")
            statuses, seconds = run_builds(spark, data, workdir, SPARK_BUILDS, settings, progress.stage, options)
            outcome = compare_all(workdir, statuses, SPARK_BUILDS, data, settings)
            outcome.seconds = seconds
            write_text_atomic(run_dir / f"equivalence-{repeat}.json", json.dumps(outcome.to_json(), indent=2))
            raw = (outcome.accounting.get("oracle") or {}).get("raw_lines", "")
            _append_timings(run_dir / "timings.csv", [
                {"run_id": run_id, "profile": chosen.name, "repeat": repeat, "build": build,
                 "seconds": f"{value:.3f}", "raw_lines": raw, "master": spark.sparkContext.master, "source": source}
                for build, value in seconds.items()
            ])
        _keep_results(workdir, run_dir)
    finally:
        spark.stop()
    progress.stage("writing the report")
    report = write_report(run_dir)
    progress.stage(f"report written: {report}")
    return report


def kafka_log(input_dir: Path, run_id: str, progress: Progress, bootstrap: str) -> dict[str, dict]:
    """Publish the input to a topic of its own once; kappa then replays it from there
    (lambda and dstream keep the landing directory: neither has a Kafka path)."""
    from experiments.inputs.replay import replay_to_kafka

    topic = f"lab-{run_id}".replace(":", "-")
    progress.stage(f"publishing the input to Kafka topic {topic} at {bootstrap}")
    replay_to_kafka(input_dir, bootstrap, topic)
    return {"kappa": {"source": "kafka", "kafka_bootstrap": bootstrap, "kafka_topic": topic}}


def _append_timings(path: Path, rows: list[dict]) -> None:
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=TIMINGS_COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def _keep_results(workdir: Path, run_dir: Path) -> None:
    """The last repeat's results exports go with the report, so a reader can diff them."""
    source = workdir / "results"
    if source.exists():
        shutil.copytree(source, run_dir / "results", dirs_exist_ok=True)
