"""Landing the input into the directory textFileStream watches: which input file lands
under which name, in which group (the plan: `LandingFile`, `landing_plan`, `file_groups`,
`landing_ranges`), and the feed that lands one group just after each batch tick
(`feed_groups`) or, following, what arrives in the input (`Landing`).

Files land whole and atomically (written elsewhere, then renamed: textFileStream needs
files to appear at once). Apart from the application (app.py): plain Python over files, no
Spark; the application starts the feed on a thread of its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from legacy_dstream.config import SCAN_SECONDS, DStreamConfig
from shared.atomic import copy_file_atomic, write_bytes_atomic
from shared.console import warn
from shared.inputs import inspect_input
from shared.sequence import LANDING_ADVICE, SeqRange, SequenceOrderError, counted, file_state, seq_ranges


@dataclass(frozen=True)
class LandingFile:
    source: Path
    name: str  # in the landing directory: `{index:06d}-{source name}`, so name order = input order
    lines: int  # raw lines (shared/raw_lines.py)
    counted_as: tuple[int, int] | None = None  # the source's (size, mtime) when counted; None: it was gone


def landing_plan(sales_files: Sequence[Path], first_index: int = 0) -> list[LandingFile]:
    """The files' landing names, numbered on from `first_index`, with their raw lines (a
    file gone since it was listed keeps its place, with no lines: see `land`)."""
    return [
        _planned(source, f"{index:06d}-{source.name}") for index, source in enumerate(sales_files, start=first_index)
    ]


def _planned(source: Path, name: str) -> LandingFile:
    return LandingFile(source, name, *counted(source))


def land(item: LandingFile, target: Path) -> Path:
    """Copy one planned file into the landing directory. An input file fed by hand may have
    changed since it was counted (a copy in place that was not finished) or be gone: the
    run goes on (a gone file lands empty, so the drain that waits for it ends) and says so."""
    now = file_state(item.source)
    if now is not None and now == item.counted_as:
        try:
            return copy_file_atomic(item.source, target)
        except FileNotFoundError:
            now = None
    if now is None or item.counted_as is None:
        warn(f"{item.source} disappeared before it was landed: none of its lines is read")
        return write_bytes_atomic(target, b"")
    warn(f"{item.source} changed after it was counted: it is landed as it is now; {LANDING_ADVICE}")
    return copy_file_atomic(item.source, target)


def file_groups(
    plan: Sequence[LandingFile], lines_per_batch: int, files_per_batch: int | None = None
) -> list[list[LandingFile]]:
    """Consecutive files of about `lines_per_batch` raw lines each (a file is never split;
    a group closes once it holds at least that many), or of `files_per_batch` files."""
    groups, current, lines = [], [], 0
    for landing in plan:
        current.append(landing)
        lines += landing.lines
        if len(current) == files_per_batch if files_per_batch else lines >= lines_per_batch:
            groups.append(current)
            current, lines = [], 0
    if current:
        groups.append(current)
    return groups


def landing_ranges(plan: Sequence[LandingFile]) -> dict[str, SeqRange]:
    """Each landing name's global line range: shared/sequence.py's numbering of the landing
    directory (name order), from the line counts the plan already has."""
    return seq_ranges((landing.name, landing.lines) for landing in plan)


def seconds_to_next_tick(batch_seconds: float, now: float | None = None) -> float:
    """Time until the next batch of a StreamingContext with this interval: its timer ticks
    at whole multiples of the interval since the epoch (Spark's RecurringTimer)."""
    period_ms = int(round(batch_seconds * 1000))
    now_ms = (time.time() if now is None else now) * 1000
    return ((int(now_ms // period_ms) + 1) * period_ms - now_ms) / 1000


def feed_groups(
    groups: Sequence[Sequence[LandingFile]],
    landing: Path,
    batch_seconds: float,
    stop: threading.Event,
    not_before_ns: int = 0,
) -> None:
    """Land the groups one by one, each just after the tick that picked up the one before,
    so each batch reads one group (a group landing late only moves to the next batch:
    textFileStream keeps unread files for a minute).

    The feed does not wait for processing: batches that read nothing would otherwise come
    between the groups, and each of them costs a job over the whole running state
    (app.py `_Drain.materialize`). Queued batches hold no
    data until they run, so running ahead costs nothing; the ones that read nothing come
    after the last group, and the stop drops them.

    `not_before_ns`: textFileStream ignores files older than the stream itself; a file system
    with coarse modification times could date a new file before it, so such a file is
    re-dated (it is read once its time has passed, at the latest one tick later)."""
    landing.mkdir(parents=True, exist_ok=True)
    margin = min(0.05, batch_seconds / 10)
    landed_at = None
    for group in groups:
        if landed_at is not None:
            tick = landed_at + seconds_to_next_tick(batch_seconds, landed_at)
            if stop.wait(max(0.0, tick + margin - time.time())):
                return
        elif stop.is_set():
            return
        for item in group:
            target = land(item, landing / item.name)
            if os.stat(target).st_mtime_ns < not_before_ns:
                later = not_before_ns + 1_000_000_000
                os.utime(target, ns=(later, later))
        landed_at = time.time()


class Landing:
    """The landing directory textFileStream watches, and the plan of what lands there: the
    input's sales files in name order, each landed whole as `{index:06d}-{name}` (its seq
    range numbered as shared/sequence.py numbers the input). A restart plans the same
    names, so what an earlier run landed is recognised and not landed again. With
    `follow`, the input is scanned again every batch interval and new files are planned
    after the others (the replayer names them in emission order)."""

    def __init__(self, folder: Path, input_dir: Path, list_files: Callable[[Path], Sequence[Path]] | None = None):
        self.folder, self.input_dir = Path(folder), Path(input_dir)
        self.list_files = list_files or (lambda folder: inspect_input(folder, require_sales=False).sales_files)
        self.plan: list[LandingFile] = []
        self.ranges: dict[str, SeqRange] = {}  # grows in place: the drain reads it
        self._lock = threading.Lock()
        self._unchecked: list[LandingFile] = []  # landed since the last `check_landed`
        self.scan()

    def scan(self) -> list[LandingFile]:
        """Plan the input's sales files not planned yet; returns them."""
        with self._lock:
            known = {item.source.name for item in self.plan}
            new = [path for path in self.list_files(self.input_dir) if path.name not in known]
            if new and self.plan and new[0].name < self.plan[-1].source.name:
                raise SequenceOrderError(
                    f"{new[0].name} appeared in {self.input_dir} after "
                    f"{self.plan[-1].source.name}, which sorts after it: landed files are "
                    "numbered in name order, so a new file must sort last"
                )
            added = landing_plan(new, first_index=len(self.plan))
            self.plan += added
            self.ranges.update(landing_ranges(self.plan))  # in place: the drain reads this dict
            return added

    def planned(self) -> list[str]:
        return [item.name for item in self.plan]

    def landed(self) -> list[str]:
        return [item.name for item in self.plan if (self.folder / item.name).exists()]

    def lines(self, names=None) -> int:
        """Raw lines of the planned files (or of `names` among them)."""
        return sum(item.lines for item in self.plan if names is None or item.name in names)

    def lines_per_mb(self, batch_mb: int) -> int:
        """How many raw lines of this input make about `batch_mb` MiB."""
        size = sum(item.source.stat().st_size for item in self.plan)
        return max(1, int(batch_mb * 2**20 * self.lines() / size)) if size else 1

    def _unlanded(self, items: Sequence[LandingFile]) -> list[LandingFile]:
        return [item for item in items if not (self.folder / item.name).exists()]

    def feed(self, config: DStreamConfig, stop: threading.Event, not_before_ns: int) -> None:
        """Land what is not landed yet, in groups of the configured size, one per batch."""
        groups = file_groups(
            self._unlanded(self.plan),
            config.lines_per_batch or self.lines_per_mb(config.batch_mb),
            config.files_per_batch,
        )
        feed_groups(groups, self.folder, config.batch_seconds, stop, not_before_ns)

    def land_all(self, batch_seconds: float, stop: threading.Event, not_before_ns: int) -> None:
        """Land what is planned and not landed yet, at once."""
        unlanded = self._unlanded(self.plan)
        if unlanded:
            feed_groups([unlanded], self.folder, batch_seconds, stop, not_before_ns)
            self._unchecked += unlanded

    def check_landed(self) -> list[str]:
        """The input files landed since the previous call whose size differs now from their
        landed copy: a file copied into the input in place, not finished when it was landed.
        The lines it gained are read by no batch: each is reported once. (A file gone since
        was read whole; one rewritten to the same size is not seen.)"""
        checked, self._unchecked = self._unchecked, []
        changed = []
        for item in checked:
            now, copy = file_state(item.source), file_state(self.folder / item.name)
            if now is not None and copy is not None and now[0] != copy[0]:
                changed.append(item.source.name)
                warn(
                    f"{item.source} changed after it was landed ({copy[0]:,} -> {now[0]:,} bytes): lines it "
                    f"gained since are not processed; {LANDING_ADVICE}"
                )
        return changed

    def follow(
        self, batch_seconds: float, stop: threading.Event, not_before_ns: int, others: Sequence[Landing] = ()
    ) -> None:
        """Land what is not landed yet, then every `SCAN_SECONDS` what arrived (here and in
        `others`), until `stop`: the next batch reads it."""
        while True:
            for landing in (self, *others):
                landing.land_all(batch_seconds, stop, not_before_ns)
            if stop.wait(min(SCAN_SECONDS, batch_seconds)):
                return
            for landing in (self, *others):
                landing.check_landed()  # one scan after landing: a copy in place is finished by then
                landing.scan()


def shipment_files(folder: Path) -> list[Path]:
    """shipments/*.csv in name order, as the oracle reads them."""
    return sorted(path for path in folder.glob("*.csv") if path.is_file()) if folder.is_dir() else []
