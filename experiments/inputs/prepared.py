"""Generated inputs the steps share: made once per options, then reused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from experiments.inputs.generate import GeneratorOptions, generate
from experiments.inputs.manifest import OPTIONS_KEY, manifest_options
from experiments.progress import Progress
from shared.inputs import MANIFEST_FILE
from shared.settings import WorkloadSettings


def prepare_input(
    data: Path,
    rows: int,
    seed: int,
    progress: Progress,
    prefix: str = "input",
    files: int | None = None,
    late_fraction: float = 0.0,
    poison_after: int | None = None,
) -> Path:
    """A generated input in DATA/<prefix>-<rows>[-f<files>][-late<fraction>][-poison<k>]-<seed>,
    reused when its manifest (written last, so present only when complete) records the same
    options. `poison_after`: the input carries the fault injector's poison files
    (experiments/harness/faults.py), a stray binary file after sales file k and its last
    sales file saved in Windows-1252."""

    poison: dict[str, Any] = (
        {} if poison_after is None else dict(windows_1252_files=1, binary_files=1, binary_files_from=poison_after)
    )
    options = GeneratorOptions(
        rows=rows,
        seed=seed,
        files=files,
        late_fraction=late_fraction,
        watermark_seconds=WorkloadSettings.from_env().watermark_seconds,
        **poison,
    )
    target = data / (
        f"{prefix}-{rows}"
        + (f"-f{files}" if files else "")
        + (f"-late{late_fraction:g}" if late_fraction else "")
        + (f"-poison{poison_after}" if poison else "")
        + f"-{seed}"
    )
    manifest = target / MANIFEST_FILE
    if manifest.exists():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8")).get(OPTIONS_KEY)
        except ValueError:
            recorded = None
        if recorded == json.loads(json.dumps(manifest_options(options))):
            progress.stage(f"reusing the generated input {target}")
            return target.resolve()
    progress.stage(f"generating {rows:,} rows (seed {seed}) into {target}")
    generate(target, options, progress=lambda done, total: progress.fraction(done, total, "rows"))
    return target.resolve()
