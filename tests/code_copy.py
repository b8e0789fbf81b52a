"""A copy of the lab's code to change in a test (what adding a query or a build touches),
run with the copy first on PYTHONPATH. (A plain module: tests import it by name.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "kappa", "lambda", "legacy_dstream", "experiments")


def copy_code(root: Path) -> Path:
    """The packages and pyproject.toml under root/code, lambda/ importable as lambda_arch."""
    copy = root / "code"
    for package in PACKAGES:
        shutil.copytree(REPOSITORY / package, copy / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPOSITORY / "pyproject.toml", copy / "pyproject.toml")
    (copy / "lambda_arch").symlink_to("lambda")  # the installed name of lambda/ (pyproject.toml)
    return copy


def edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of `old` (an anchor that moved fails here, clearly)."""
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{path.name}: the anchor {old!r} moved; update the test"
    path.write_text(text.replace(old, new), encoding="utf-8")


def run_in_copy(copy: Path, arguments: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python ARGUMENTS` with the copy's modules, not the installed ones; fails on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, *arguments],
        env={**os.environ, "PYTHONPATH": str(copy)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (arguments, done.stderr[-3000:])
    return done
