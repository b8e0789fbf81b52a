"""The measured systems as processes: the command that runs each (a build, or a baseline) over an
input, the statuses it prints at its end, and where its run spent its time (its profile)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from experiments.harness.measure import python_command
from shared.catalogue import QUERY_NAMES


def lab_command(
    arguments, input_dir: Path, workdir: Path, master: str | None, module: str = "experiments.cli"
) -> list[str]:
    """`lab ARGUMENTS` (or another module's command line) on one input and workdir, on `master`
    when given: how every measured process is started."""
    return python_command(
        "-m",
        module,
        *arguments,
        "--input",
        str(input_dir),
        "--workdir",
        str(workdir),
        *(["--master", master] if master else []),
    )


def system_command(system: str, input_dir: Path, workdir: Path, master: str | None) -> list[str]:
    """A build's `lab run` from scratch, or a baseline (DuckDB has no Spark master)."""
    if system == "spark_batch":
        return lab_command((), input_dir, workdir, master, module="experiments.baselines.spark_batch")
    if system == "duckdb":
        return lab_command((), input_dir, workdir, None, module="experiments.baselines.duckdb_batch")
    return lab_command(("run", system, "--fresh"), input_dir, workdir, master)


def run_statuses(log_path: Path) -> dict[str, str]:
    """The `<query> <status>` lines a build or baseline prints at its end."""
    statuses = {}
    if log_path.exists():
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            query, _, status = line.partition(" ")
            if query in QUERY_NAMES and status.strip():
                statuses[query] = status.strip()
    return statuses


def streaming_profile(build: str) -> Callable[[Path], list[dict]]:
    """The profile of a build that records progress (shared/progress_log.py) under
    WORKDIR/<build>/.../progress/: per streaming query and per part of Spark's `durationMs`
    (getBatch, queryPlanning, addBatch, walCommit, commitOffsets, triggerExecution, ...),
    per step inside a foreachBatch's addBatch (`<query>.steps.jsonl`: `addBatch.<step>`)
    and per phase of a run (`<name>.phases.jsonl`: Lambda's ingest, batch layer, ...): the
    sum over its micro-batches (or runs)."""

    def profile(workdir: Path) -> list[dict]:
        from shared.progress_log import read_progress

        rows = []
        for path in sorted((workdir / build).glob("**/progress/*.jsonl")):
            stem = path.name.removesuffix(".jsonl")
            query, _, kind = stem.partition(".")
            key, prefix = {"steps": ("stepsMs", "addBatch."), "phases": ("stepsMs", "")}.get(kind, ("durationMs", ""))
            sums: dict[str, float] = {}
            records = read_progress(path)
            for record in records:
                for part, ms in (record.get(key) or {}).items():
                    sums[prefix + part] = sums.get(prefix + part, 0) + ms
            rows += [
                {"query": query, "part": part, "ms": ms, "batches": len(records)} for part, ms in sorted(sums.items())
            ]
        return rows

    return profile


def spark_batch_profile(workdir: Path) -> list[dict]:
    """The baseline's own step timings (experiments/baselines/spark_batch.py)."""
    from experiments.baselines.spark_batch import PROFILE_FILE

    path = workdir / PROFILE_FILE
    if not path.exists():
        return []
    return [
        {"query": step["query"], "part": step["part"], "ms": step["ms"], "batches": ""}
        for step in json.loads(path.read_text(encoding="utf-8"))
    ]


PROFILERS: dict[str, Callable[[Path], list[dict]]] = {
    "kappa": streaming_profile("kappa"),
    "lambda": streaming_profile("lambda"),
    "spark_batch": spark_batch_profile,
}
