"""mypy over the lab's code (`make lint`), with lambda/ checked under its import name.

lambda/ is installed as the package `lambda_arch` (`lambda` is a Python keyword) by an
import hook of the editable install, which mypy does not run: given the folder, mypy would
name its modules `lambda.*` and could not resolve a single `from lambda_arch ...` import.
So the sources mypy finds under lambda/ are renamed before the check; the folders and the
options come from [tool.mypy] in pyproject.toml, and more options from the command line.
"""

from __future__ import annotations

import sys

from mypy import build
from mypy.main import process_options
from mypy.modulefinder import BuildSource


def main(argv: list[str]) -> int:
    sources, options = process_options(argv)
    renamed = [
        BuildSource(
            s.path,
            "lambda_arch" + s.module[len("lambda") :] if s.module.split(".")[0] == "lambda" else s.module,
            s.text,
            s.base_dir,
        )
        for s in sources
    ]
    messages = build.build(renamed, options).errors
    errors = [m for m in messages if ": error:" in m]
    print("\n".join(errors) if errors else f"Success: no issues found in {len(renamed)} source files")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
