"""Input sequence numbers of sales files: which global line `seq` range a file holds.

The replayer (experiments/inputs/stream.py) numbers every raw line of its stream globally, 0-based,
in file-name order; a landing directory's files are named `{unit:06d}-{original name}`, so
name order is emission order and numbering the landing directory in name order gives the
replayer's own `seq`. A static input directory is numbered the same way (DESIGN.md, "The
commit log"). Lines are counted exactly as shared/raw_lines.py counts them, and the sales
files are the ones shared/inputs.py lists (top-level *.csv, no `.`/`_` names).

A build asks for the files a micro-batch read (Spark's `_metadata.file_name`, or a path
such as `file:/landing/000003-x.csv`). A landing directory grows while the build runs:
an unknown name triggers a re-scan. Landed files are immutable, so each file is counted
once; a new file that sorts before one already numbered would renumber it, which breaks
the contract (name order = emission order), so that is an error rather than a silent shift.

A landing directory fed by hand can break "immutable": a file copied in place (not
written elsewhere and renamed) may still be growing when it is listed, and a file can
disappear between listing and reading. Neither may stop a run (Spark skips a missing
file: shared/spark.py sets ignoreMissingFiles), and neither may pass unseen: a file that
is gone when counted has no lines and is reported; each file's size and modification
time when counted are kept, and `check_recent` (at every batch, for the files counted at
the batch before) reports a file that changed since, whose new lines no build will read.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

from shared.console import warn
from shared.inputs import inspect_input
from shared.raw_lines import count_raw_lines


class SeqRange(NamedTuple):
    first_seq: int
    last_seq: int  # first_seq - 1 for a file without lines

    @property
    def lines(self) -> int:
        return self.last_seq - self.first_seq + 1


class UnknownSalesFileError(KeyError):
    """A file name that is not (or not yet) a sales file of the directory."""


class SequenceOrderError(RuntimeError):
    """A file appeared that sorts before files already numbered."""


def file_name_of(name_or_path: str | os.PathLike) -> str:
    """The bare file name of a name, a path or a `file:` URI."""
    return str(name_or_path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def seq_ranges(line_counts: Iterable[tuple[str, int]]) -> dict[str, SeqRange]:
    """(name, lines) in name order -> each name's global line range."""
    ranges, first = {}, 0
    for name, lines in line_counts:
        ranges[name] = SeqRange(first, first + lines - 1)
        first += lines
    return ranges


LANDING_ADVICE = (
    "land files by writing them elsewhere (or under a name that starts with '.') and renaming "
    "them into the directory, as `lab replay` does"
)


def file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def counted(path: Path) -> tuple[int, tuple[int, int] | None]:
    """(raw lines, (size, mtime) when counted) of a file; (0, None) for one that is gone."""
    state = file_state(path)
    try:
        return (count_raw_lines(path), state) if state is not None else (0, None)
    except FileNotFoundError:
        return 0, None


class SequenceMap:
    """Sales file name -> SeqRange over one input or landing directory (thread-safe)."""

    def __init__(self, directory: str | os.PathLike, on_warning=warn):
        self.directory = Path(directory)
        self._lines: dict[str, int] = {}  # name -> raw lines; files never change
        self._ranges: dict[str, SeqRange] = {}
        self._counted_as: dict[str, tuple[int, int] | None] = {}  # name -> (size, mtime) when counted
        self._reported: set[str] = set()
        self._unchecked: list[str] = []  # counted since the last check_recent()
        self.on_warning = on_warning
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # picklable (a DStream checkpoint pickles the functions that hold one); locks are not
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def range_of(self, name_or_path: str | os.PathLike) -> SeqRange:
        name = file_name_of(name_or_path)
        with self._lock:
            found = self._lookup(name)
            if found is None:
                self._rescan(name)
                found = self._lookup(name)
        if found is None:
            raise UnknownSalesFileError(f"{name!r} is not a sales file of {self.directory}")
        return found

    def max_seq(self, names_or_paths: Iterable[str | os.PathLike]) -> int | None:
        """The highest last_seq of the files a batch included; None for no files. A file
        that was listed but is gone (Spark skipped it) has no lines: it is reported."""
        last = []
        for name_or_path in names_or_paths:
            try:
                last.append(self.range_of(name_or_path).last_seq)
            except UnknownSalesFileError:
                name = file_name_of(name_or_path)
                if any((self.directory / n).exists() for n in (name, unquote(name))):
                    raise
                with self._lock:
                    self._report_gone(name)
        return max(last) if last else None

    def _lookup(self, name: str) -> SeqRange | None:
        # Spark's _metadata.file_name is the decoded name; a URI may carry %-escapes.
        return self._ranges.get(name) or self._ranges.get(unquote(name))

    def _rescan(self, wanted: str) -> None:
        """Counts the files listed now that are new, in name order, up to `wanted` (a file
        after it may still be arriving: it is counted when a batch has read it)."""
        listed = [path.name for path in inspect_input(self.directory, require_sales=False).sales_files]
        known = list(self._ranges)  # in name order; a file gone since keeps its numbers
        new = [name for name in listed if name not in self._ranges]
        if new and known and new[0] < known[-1]:
            raise SequenceOrderError(
                f"{self.directory}: a new sales file ({new[0]}) sorts before files already numbered "
                f"(the last is {known[-1]}): name order must be emission order"
            )
        wanted_names = {wanted, unquote(wanted)}
        upto = next((i for i, name in enumerate(new) if name in wanted_names), None)
        if upto is None:
            return
        for name in new[: upto + 1]:
            self._lines[name], self._counted_as[name] = counted(self.directory / name)
            if self._counted_as[name] is None:
                self._report_gone(name)
            self._unchecked.append(name)
        self._ranges = seq_ranges((name, self._lines[name]) for name in known + new[: upto + 1])

    def _report_gone(self, name: str) -> None:
        """A file listed (by a batch, or here) and gone before it was read: once, with the lock held."""
        if name not in self._reported:
            self._reported.add(name)
            self.on_warning(
                f"{self.directory / name} disappeared between listing and reading: none of its "
                "lines is counted, and no build reads it"
            )

    def changed_files(self, names: Iterable[str] | None = None) -> list[str]:
        """The files (all counted ones, or `names`) whose size or modification time changed
        since they were counted; each is reported once, through `on_warning`."""
        with self._lock:
            candidates = list(self._counted_as) if names is None else [n for n in names if n in self._counted_as]
            changed = []
            for name in candidates:
                if name in self._reported:
                    continue
                now, then = file_state(self.directory / name), self._counted_as[name]
                if now != then:
                    assert then is not None  # a file gone when counted is in _reported
                    self._reported.add(name)
                    changed.append(name)
                    what = "disappeared" if now is None else f"changed ({then[0]:,} -> {now[0]:,} bytes)"
                    self.on_warning(
                        f"{self.directory / name} {what} after it was read: lines it gained since "
                        f"are not processed by any build; {LANDING_ADVICE}"
                    )
            return changed

    def check_recent(self) -> list[str]:
        """`changed_files` over the files counted since the previous call: a file copied in
        place is usually complete by the next batch, so this catches one that was not."""
        with self._lock:
            recent, self._unchecked = self._unchecked, []
        return self.changed_files(recent)


def batch_max_seq(
    sequence_map: SequenceMap, file_names: Iterable[str | os.PathLike], previous: int | None = None
) -> int | None:
    """The highest seq a result includes after a batch that read `file_names`, given the
    highest it included before (`previous`): results only grow, so it never goes down."""
    candidates = [seq for seq in (previous, sequence_map.max_seq(file_names)) if seq is not None]
    return max(candidates) if candidates else None


class LogBatchSeq:
    """The highest input seq a micro-batch of the raw log read, from its checkpoint: the
    files its source log lists (landing directory) or, for a Kafka topic, the `seq`
    header of the last message before its end offsets. Kappa's `log` query and Lambda's
    ingest both read the log this way."""

    def __init__(
        self, checkpoint: str, input_dir: str | os.PathLike | None = None, kafka: tuple[str, str] | None = None
    ):
        """`input_dir` for the landing directory, or `kafka` = (bootstrap, topic)."""
        self.checkpoint, self.kafka = checkpoint, kafka
        self.sequence: SequenceMap | None = None
        if kafka is None:
            assert input_dir is not None  # no topic: the landing directory is given
            self.sequence = SequenceMap(input_dir)

    def of_batch(self, batch_id: int, files: Iterable[str] | None = None) -> int | None:
        """`files`: the batch's source files when the caller has them from the data itself
        (landing directory only); else they are read from the checkpoint's source log."""
        from shared import checkpoints

        if self.kafka is None:
            assert self.sequence is not None  # made with kafka None
            self.sequence.check_recent()  # the files of earlier batches, now that they were read
            return self.sequence.max_seq(
                checkpoints.files_of_batch(self.checkpoint, batch_id) if files is None else files
            )
        from shared.kafka import last_seq_before

        bootstrap, topic = self.kafka
        ends = checkpoints.kafka_end_offsets(self.checkpoint, batch_id).get(topic, {})
        return last_seq_before(bootstrap, topic, ends)
