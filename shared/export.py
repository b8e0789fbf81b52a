"""The results export: one writer formats every build's rows and the oracle's.

Builds hand over plain Python values (str, int, Decimal, datetime.date,
datetime.datetime in UTC wall-clock time); this module alone decides how they
look on disk, so equal results are byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from shared.atomic import write_text_atomic
from shared.catalogue import DATE, INTEGER, MONEY, QUERIES, STRING, TIMESTAMP, QuerySpec
from shared.settings import QUARANTINE_REASONS

CENT = Decimal("0.01")


def results_dir(workdir: str | os.PathLike, build: str) -> Path:
    return Path(workdir) / "results" / build


def export_path(workdir: str | os.PathLike, build: str, query: str) -> Path:
    return results_dir(workdir, build) / f"{query}.csv"


def format_value(value, kind: str) -> str:
    if value is None:
        raise ValueError(f"null {kind} value in a results export")
    if kind == STRING:
        return str(value)
    if kind == INTEGER:
        if isinstance(value, bool) or int(value) != value:
            raise ValueError(f"not an integer: {value!r}")
        return str(int(value))
    if kind == MONEY:
        if isinstance(value, float):
            raise TypeError(f"money must be exact, got the float {value!r}")
        return format(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP), "f")
    if kind == DATE:
        if isinstance(value, dt.datetime):
            raise TypeError(f"a date column got a timestamp: {value!r}")
        return value.isoformat() if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)).isoformat()
    if kind == TIMESTAMP:
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return dt.datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M:%S")
    raise ValueError(f"unknown column kind {kind}")


def _sort_key(value, kind: str):
    if kind == INTEGER:
        return int(value)
    if kind == MONEY:
        return Decimal(value)
    return format_value(value, kind)  # ISO dates and times sort chronologically as text


def render(spec: QuerySpec, rows: Iterable[Mapping]) -> str:
    """The export's exact text for rows given as mappings from column name to value."""
    types = spec.types
    rows = list(rows)
    for row in rows:
        missing = [c for c in spec.columns if c not in row]
        if missing:
            raise ValueError(f"{spec.name}: row lacks columns {missing}: {dict(row)!r}")
    rows.sort(key=lambda r: tuple(_sort_key(r[c], types[c]) for c in spec.key_columns))
    keys = [tuple(format_value(r[c], types[c]) for c in spec.key_columns) for r in rows]
    repeated = sorted({k for k, nxt in zip(keys, keys[1:]) if k == nxt})
    if repeated:
        raise ValueError(f"{spec.name}: the key {repeated[0]} appears more than once")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(spec.columns)
    for row in rows:
        writer.writerow([format_value(row[c], types[c]) for c in spec.columns])
    return out.getvalue()


def write_export(workdir: str | os.PathLike, build: str, query: str, rows: Iterable[Mapping]) -> Path:
    """Write one results export atomically (a reader never sees half a file)."""
    spec = QUERIES[query]
    return write_text_atomic(export_path(workdir, build, query), render(spec, rows))


ACCOUNTING_FILE = "_accounting.json"


def clear_results(workdir: str | os.PathLike, build: str) -> None:
    """Remove a build's previous exports, so a file from an earlier run cannot pass for this one."""
    shutil.rmtree(results_dir(workdir, build), ignore_errors=True)


def write_accounting(
    workdir: str | os.PathLike, build: str, raw_lines: int, valid_lines: int, quarantine: Mapping[str, int]
) -> Path:
    """The line accounting of one build: raw = valid + quarantined, by reason."""
    unknown = set(quarantine) - set(QUARANTINE_REASONS)
    if unknown:
        raise ValueError(f"unknown quarantine reasons {sorted(unknown)}")
    reasons = {reason: int(quarantine.get(reason, 0)) for reason in QUARANTINE_REASONS}
    quarantined = sum(reasons.values())
    summary = {
        "raw_lines": int(raw_lines),
        "valid_lines": int(valid_lines),
        "quarantined_lines": quarantined,
        "balanced": int(raw_lines) == int(valid_lines) + quarantined,
        "quarantine": reasons,
    }
    return write_text_atomic(results_dir(workdir, build) / ACCOUNTING_FILE, json.dumps(summary, indent=2) + "\n")


def read_accounting(workdir: str | os.PathLike, build: str) -> dict | None:
    path = results_dir(workdir, build) / ACCOUNTING_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
