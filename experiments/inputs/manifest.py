"""What the generator writes into an input's `_manifest.json` (shared/inputs.MANIFEST_FILE), and how.

The manifest is the generator's last file, so a folder holding one is a complete output. It
names the generator and the format version, and records the options as asked
(`manifest_options`), the plan resolved from them, the order-time range of the valid lines
and the summary of what was written. It is apart from the generator because other code reads
it, by the key names defined here: the prepared inputs compare its options
(experiments/inputs/prepared.py), the fault injector reads its options and the late step its
summary. The order-time range's key is in shared/inputs.py instead, so that the quality gate
(shared/, which may not import experiments/) can read it by the same name.

The generator (experiments/inputs/generate.py) imports this module, not the other way round:
it hands over its options dataclass and its plan and summary already turned into JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from shared.atomic import atomic_text
from shared.inputs import MANIFEST_ORDER_TIME_RANGE

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# Names the writer in every manifest. A previous output is recognised by it
# (is_generator_manifest): changed, the generator would refuse to replace existing outputs.
GENERATOR_ID = "lambda-kappa-lab experiments.inputs.generate"
MANIFEST_FORMAT_VERSION = 1
# Keys read beyond the generator: the options as recorded, the summary, and in the summary
# the count of sales lines per kind (generate.LINE_KINDS).
OPTIONS_KEY = "options"
SUMMARY_KEY = "summary"
LINES_BY_KIND_KEY = "lines_by_kind"
# File options recorded only when set (see manifest_options).
_RECORDED_WHEN_SET = ("spreadsheet_files", "windows_1252_files", "binary_files", "binary_files_from")


def manifest_options(options: DataclassInstance) -> dict:
    """The options (a GeneratorOptions) as the manifest records them. The file options are left
    out at their default (0), so a default output stays byte-identical to one written before the
    option existed."""
    recorded = asdict(options)
    for name in _RECORDED_WHEN_SET:
        if not recorded[name]:
            del recorded[name]
    return recorded


def write_manifest(
    path: Path,
    options: DataclassInstance,
    resolved: dict,
    order_time_range: tuple[str | None, str | None],
    summary: dict,
) -> None:
    """Write the manifest to `path` atomically: `options` as manifest_options records them, the
    plan's `resolved` values, the (min, max) order time of the valid lines (ISO, UTC; None when
    there are none) and the `summary`, both as JSON."""
    earliest, latest = order_time_range
    manifest = {
        "generator": GENERATOR_ID,
        "format_version": MANIFEST_FORMAT_VERSION,
        OPTIONS_KEY: manifest_options(options),
        "resolved": resolved,
        MANIFEST_ORDER_TIME_RANGE: {"min": earliest, "max": latest},
        SUMMARY_KEY: summary,
    }
    with atomic_text(path) as handle:
        handle.write(json.dumps(manifest, indent=2) + "\n")


def is_generator_manifest(path: Path) -> bool:
    """Whether `path` holds a manifest this generator wrote (False when it cannot be read)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("generator") == GENERATOR_ID
