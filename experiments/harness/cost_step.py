"""The drains step's runs at the cost model's sizes: every system's drain at the profile's
larger sizes (`Profile.cost_rows`), once each, in its own process, checked against the oracle.

With the drain runs at the drains' own size, these are the points of the cost model
(experiments/harness/cost_model.py), `wall = fixed + per_line x lines`: a drain of 2,000 lines
is mostly JVM start and per-job costs, so only sizes 100x apart and more tell what a line
costs. Their rows are the drain runs' metrics under step `cost`, so that the drain step's
figures stay those of one size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from experiments.harness.drain_step import oracle_metrics, run_drains
from experiments.harness.run_folder import RunFolder
from experiments.inputs.prepared import prepare_input
from experiments.progress import Progress
from experiments.reference.oracle import run_oracle
from shared.export import results_dir

STEP = "cost"


def run_cost(
    run: RunFolder,
    sizes: tuple[int, ...],
    seed: int,
    systems: tuple[str, ...],
    data_root: Path,
    work: Path,
    master: str | None,
    settings,
    timeout_s: float,
    progress: Progress,
    stage: Callable[[str], None],
    on_done: Callable[[str, float], None] = lambda system, seconds: None,
) -> None:
    """Each size: its generated input (cached under data_root), the oracle over it, then every
    system once. A successful run's work folder is removed after it: the largest inputs' tables
    would fill the disk, and its verdicts are rows by then."""
    for rows in sizes:
        input_dir = prepare_input(data_root, rows, seed, progress)
        oracle_dir = work / f"oracle-{rows}"
        progress.stage(f"step {STEP} | oracle over {input_dir}")
        oracle = run_oracle(input_dir, oracle_dir, settings)
        run.append(oracle_metrics(oracle, oracle.raw_lines, step=STEP))
        run_drains(
            run,
            input_dir,
            results_dir(oracle_dir, "oracle"),
            oracle.raw_lines,
            work / f"{rows}",
            systems,
            1,
            master,
            settings,
            timeout_s,
            stage,
            on_done=on_done,
            step=STEP,
            cleanup=True,
        )
