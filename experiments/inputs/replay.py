"""The replayer's landing-directory target: an input's sales files land one unit at a time.

The shipments are a stream too: the generator writes shipments file k for the time slice of
sales file k (`shipments_0007.csv` beside `sales_0007.csv`), and the replayer lands it just
before that sales file, so a build's join holds the shipments of the last few days, as it
would in production, not the whole input's (which made each micro-batch of a stream-stream
join scan state that grew with the input). Landed before its sales file, a shipment is never
behind the order lines it pairs with, so no watermark drops a pair (docs/design.md).

A unit is one sales file, copied under a hidden temporary name (`.<name>.tmp`, which Spark's
file source and `textFileStream` ignore) and renamed into place, so it appears whole; the
landed name `{seq:06d}-{original name}` makes name order emission order. In event-time order
(experiments/inputs/stream.py) the landed files hold the sorted lines, cut to the sizes of
the input files (`{seq:06d}-event-time.csv`). Units are emitted on the open-loop schedule of
experiments/inputs/schedule.py; the Kafka target is experiments/inputs/kafka_replay.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from experiments.inputs.schedule import OpenLoopSchedule, RateStep, ReplayRun, ReplaySummary, validated_rate
from experiments.inputs.stream import (
    FILE_ORDER,
    ProgressCallback,
    ReplayError,
    SalesFile,
    event_time_order,
    sales_files,
    source_names,
    validated_order,
)
from shared.atomic import copy_file_atomic, write_bytes_atomic
from shared.inputs import inspect_input

LANDING_SEQ_WIDTH = 6


# ---------------------------------------------------------------------------------------
# Landing directory: one file per unit, atomic appearance
# ---------------------------------------------------------------------------------------


def replay_to_landing(
    input_dir: str | os.PathLike,
    landing_dir: str | os.PathLike,
    rate_lines_per_second: float | None = None,
    *,
    log_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    order: str = FILE_ORDER,
    rate_steps: Iterable[RateStep] | None = None,
    step_gap_s: float = 0.0,
    file_slice: tuple[int, int] | None = None,
) -> ReplaySummary:
    """Land each sales file of `input_dir` in `landing_dir` as `{seq:06d}-{name}`, file k
    when its first line is due (start + lines before k / rate; all at once without a rate).

    `file_slice` (first, end): only the input's files first..end-1 (name order), with the
    seqs and landed names they have in the whole input, the schedule starting at the
    first one: several replays of consecutive slices into one landing directory are one
    stream, each with its own open-loop schedule (the harness waits between them).

    With order="event-time" landing file k holds the next lines of the input sorted by
    `event_time_order`, as many as input file k has, named `{seq:06d}-event-time.csv`:
    the units, their seq ranges and the schedule stay those of file order.

    `rate_steps` (instead of a rate) is a stepped load: see OpenLoopSchedule.

    The landing directory is created if missing; it must not already hold a file of the
    same name (a file source would skip or misread a rewritten file). The input's catalogue
    and first shipments are placed in it first (land_reference_data); each later shipments
    file lands just before its sales file.
    """
    rate = validated_rate(rate_lines_per_second)  # before anything is created
    rate_steps = tuple(rate_steps) if rate_steps is not None else None
    OpenLoopSchedule(rate, rate_steps, step_gap_s)  # refuses a bad schedule before anything is created
    order = validated_order(order)
    files = sales_files(input_dir)
    units = _landing_units(files, order)  # sorted before the clock starts
    if file_slice is not None:
        files, units = _sliced(files, file_slice), _sliced(units, file_slice)
    landing = _prepared_landing(input_dir, landing_dir, [unit.name for unit in units])
    land_reference_data(input_dir, landing)
    run = ReplayRun("landing", input_dir, str(landing), rate, files, progress, order, rate_steps, step_gap_s)
    try:
        for sales_file, unit in zip(files, units, strict=True):  # a unit is its sales file's slice of the lines
            intended = run.wait_for(unit.first_seq)
            target = landing / unit.name
            _land_shipments(shipments_of(sales_file.path), landing)
            _land(unit, target)
            run.record(unit.unit, unit.first_seq, unit.lines, unit.source_file, target.name, intended)
    except BaseException as error:
        run.abandon(log_dir, error)
        raise
    return run.finish(log_dir)


def _sliced(items: list, file_slice: tuple[int, int]) -> list:
    first, end = file_slice
    if not 0 <= first < end <= len(items):
        raise ValueError(f"file slice {first}:{end} is not within the input's {len(items)} sales files")
    return items[first:end]


class _LandingUnit(NamedTuple):
    unit: int
    first_seq: int
    lines: int
    source_file: str  # the input file it copies, or the input files its lines come from
    name: str  # its name in the landing directory
    copy_of: Path | None  # file order: the input file, copied byte for byte
    lines_raw: list[bytes] | None  # event-time order: the lines to write


def _landing_units(files: list[SalesFile], order: str) -> list[_LandingUnit]:
    # Wider than six digits only past a million files, so name order stays emission order.
    width = max(LANDING_SEQ_WIDTH, len(str(len(files) - 1)))
    if order == FILE_ORDER:
        return [
            _LandingUnit(
                f.file_seq, f.first_seq, f.lines, f.path.name, f"{f.file_seq:0{width}d}-{f.path.name}", f.path, None
            )
            for f in files
        ]
    lines = event_time_order(files)
    units = []
    for f in files:
        unit_lines = lines[f.first_seq : f.first_seq + f.lines]
        units.append(
            _LandingUnit(
                f.file_seq,
                f.first_seq,
                f.lines,
                source_names(unit_lines),
                f"{f.file_seq:0{width}d}-event-time.csv",
                None,
                [line.raw for line in unit_lines],
            )
        )
    return units


def _land(unit: _LandingUnit, target: Path) -> None:
    """Write one unit as `.<name>.tmp` in the landing folder, then rename it into place."""
    if unit.copy_of is not None:
        copy_file_atomic(unit.copy_of, target)
        return
    assert unit.lines_raw is not None  # not a copy: its lines are kept
    # each line ends with \n, so a file holds exactly its lines
    write_bytes_atomic(target, b"".join(raw + b"\n" for raw in unit.lines_raw))


SHIPMENTS = "shipments"
REFERENCE_DATA = ("catalogue", SHIPMENTS)


def shipments_of(sales_file: Path) -> Path | None:
    """The shipments file of a sales file's time slice (`shipments/shipments_0007.csv` for
    `sales_0007.csv`), if the input has one."""
    if not sales_file.name.startswith("sales_"):
        return None
    candidate = sales_file.parent / SHIPMENTS / f"{SHIPMENTS}_{sales_file.name.removeprefix('sales_')}"
    return candidate if candidate.is_file() else None


def land_reference_data(
    input_dir: str | os.PathLike, landing: str | os.PathLike, *, streamed_shipments: bool = True
) -> list[str]:
    """Place the input's catalogue/ and shipments/ in the landing directory before the
    stream starts, each folder at once (copied beside it, then renamed), unless the landing
    directory already has it. The folders placed.

    With `streamed_shipments` the shipments folder holds only the files that no later sales
    file brings (the first sales file's, and any paired with none): the replay lands the
    others one by one (see the module doc). Without it, every shipments file is there from
    the start (a Kafka run's reference folder: its topic carries the sales only)."""
    placed = []
    sales = inspect_input(input_dir, require_sales=False).sales_files if streamed_shipments else ()
    later = {shipments_of(path) for path in sales[1:]}
    for part in REFERENCE_DATA:
        source, target = Path(input_dir) / part, Path(landing) / part
        if source.is_dir() and not target.exists():
            partial = target.with_name(f".{part}.partial")
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(
                source, partial, ignore=lambda folder, names: [n for n in names if Path(folder, n) in later]
            )
            os.replace(partial, target)
            placed.append(part)
    return placed


def _land_shipments(shipments: Path | None, landing: Path) -> None:
    """The shipments file of the next sales file, unless it is there already."""
    if shipments is not None and not (landing / SHIPMENTS / shipments.name).exists():
        copy_file_atomic(shipments, landing / SHIPMENTS / shipments.name)


def _prepared_landing(input_dir, landing_dir, names: list[str]) -> Path:
    landing = Path(landing_dir).expanduser().resolve()
    if landing == Path(input_dir).expanduser().resolve():
        raise ReplayError(f"the landing directory {landing} is the input directory: choose another one")
    landing.mkdir(parents=True, exist_ok=True)
    taken = [name for name in names if (landing / name).exists()]
    if taken:
        raise ReplayError(
            f"landing directory {landing} already holds {taken[0]} (from an earlier replay?): "
            "land into an empty or new directory"
        )
    return landing
