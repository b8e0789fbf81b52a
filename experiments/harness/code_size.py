"""`lab experiments`' code-size step: the lines of Python each build needs, counted from the
repository, split into its own folder and the shared modules it uses.

- build-specific: every `.py` file under the build's folder (`kappa/`, `lambda/`,
  `legacy_dstream/`);
- shared: the modules of `shared/` the build imports, directly or through another shared
  module (read from the `import` statements with `ast`, function-level imports included),
  so a shared module only one build uses counts for that build alone;
- a line counts when it holds code: not blank, not only a comment, not part of a docstring
  (module, class or function documentation). Docstring and comment lines are counted
  separately (`doc_lines`), since this lab documents its code heavily;
- a statement (a logical line) counts once however it is wrapped (`statements`): the
  formatter (ruff format) wraps long calls over many lines, more in some builds' code than
  in others', and would move the line counts without a change of code.

No Spark: it reads the files of the repository this module is in.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from experiments.harness.builds import BUILDS
from experiments.harness.run_folder import Metric, RunFolder

STEP = "code_size"
REPOSITORY = Path(__file__).resolve().parents[2]
BUILD_FOLDERS = {name: build.folder for name, build in BUILDS.items() if build.folder}  # the architectures
SHARED = "shared"
# the package name each folder is imported as (lambda/ is `lambda_arch`: `lambda` is a keyword)
PACKAGES = {
    **{build.folder: build.package or build.folder for build in BUILDS.values() if build.folder},
    SHARED: SHARED,
}


@dataclass(frozen=True)
class FileCount:
    path: Path
    code: int  # lines with code
    doc: int  # lines only of comments or docstrings
    statements: int = 0  # logical lines of code: what no line wrapping or formatter changes


def docstrings(source: str) -> list[tuple[int, int]]:
    """(first line, last line) of every module, class and function docstring of the source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                assert first.end_lineno is not None  # ast.parse sets it
                found.append((first.lineno, first.end_lineno))
    return found


def count_lines(source: str) -> tuple[int, int]:
    """(code lines, documentation lines) of Python source: a code line has a token that is
    neither a comment nor part of a docstring; a documentation line has a comment or a
    docstring and no code; blank lines are neither."""
    docstring_lines = {line for first, last in docstrings(source) for line in range(first, last + 1)}
    code: set[int] = set()
    doc: set[int] = set(docstring_lines)
    skip = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip:
            continue
        lines = range(token.start[0], token.end[0] + 1)
        if token.type == tokenize.COMMENT:
            doc.update(lines)
        elif not (token.type == tokenize.STRING and token.start[0] in docstring_lines):
            code.update(lines)
    return len(code), len(doc - code)


def count_file(path: Path) -> FileCount:
    source = path.read_text(encoding="utf-8")
    code, doc = count_lines(source)
    return FileCount(path, code, doc, count_statements(source))


def count_statements(source: str) -> int:
    """Logical lines of Python source that are code: each simple statement or compound
    statement's header once, however many physical lines it is wrapped over; docstrings
    are not counted. A formatter that re-wraps calls changes `count_lines`, not this."""
    docstring_starts = {first for first, _ in docstrings(source)}
    count, start = 0, None
    layout = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in layout:
            continue
        if token.type == tokenize.NEWLINE:
            count += start is not None and start not in docstring_starts
            start = None
        elif start is None and token.type != tokenize.ENDMARKER:
            start = token.start[0]
    return count


def _module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    parts[0] = PACKAGES.get(parts[0], parts[0])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def shared_imports(path: Path, root: Path) -> set[str]:
    """The `shared.*` modules a file imports (any import statement, at any depth)."""
    found: set[str] = set()
    package = _module_name(path, root).rpartition(".")[0] if path.name != "__init__.py" else _module_name(path, root)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    # importing shared.x runs shared/__init__.py first: every parent package counts too
    found |= {".".join(name.split(".")[:i]) for name in found for i in range(1, name.count(".") + 1)}
    return {name for name in found if name == SHARED or name.startswith(SHARED + ".")}


def python_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def shared_closure(start: set[str], root: Path) -> set[Path]:
    """The files of shared/ reached from the modules in `start` through their imports."""
    by_module = {_module_name(p, root): p for p in python_files(root / SHARED)}
    reached: set[Path] = set()
    pending = [m for m in start if m in by_module]
    while pending:
        path = by_module[pending.pop()]
        if path in reached:
            continue
        reached.add(path)
        pending += [m for m in shared_imports(path, root) if m in by_module and by_module[m] not in reached]
    return reached


def build_sizes(root: Path = REPOSITORY) -> dict[str, dict]:
    """Per build: its own files and the shared files it needs, with their counts."""
    sizes = {}
    for build, folder in BUILD_FOLDERS.items():
        own = [count_file(p) for p in python_files(root / folder)]
        imported = set().union(*(shared_imports(f.path, root) for f in own)) if own else set()
        shared = [count_file(p) for p in sorted(shared_closure(imported, root))]
        sizes[build] = {"folder": folder, "own": own, "shared": shared}
    return sizes


# (metric, unit, the FileCount field it sums, what it counts)
COUNTS = (
    ("code_lines", "lines", "code", "not blank, comment or docstring"),
    ("statements", "statements", "statements", "logical lines: the same however the code is wrapped or formatted"),
    ("doc_lines", "lines", "doc", "comment and docstring lines"),
)


def code_size_metrics(root: Path = REPOSITORY) -> list[Metric]:
    rows = []
    for build, size in build_sizes(root).items():
        parts = {
            "build-specific": (size["own"], f"{size['folder']}/: {len(size['own'])} .py files"),
            "shared": (
                size["shared"],
                f"{len(size['shared'])} modules of shared/ it imports: "
                + ", ".join(f.path.stem for f in size["shared"]),
            ),
        }
        rows += [
            # code_lines names the files (the report lists the shared modules); the others say what they count
            Metric(
                STEP,
                build,
                metric,
                sum(getattr(f, field) for f in files),
                unit,
                query=part,
                detail=where if metric == "code_lines" else what,
            )
            for metric, unit, field, what in COUNTS
            for part, (files, where) in parts.items()
        ]
    every_shared = [count_file(p) for p in python_files(root / SHARED)]
    rows.append(
        Metric(
            STEP,
            SHARED,
            "code_lines",
            sum(f.code for f in every_shared),
            "lines",
            query="shared",
            detail=f"all of shared/: {len(every_shared)} .py files",
        )
    )
    return rows


def run_code_size(run: RunFolder, stage: Callable[[str], None], root: Path = REPOSITORY) -> None:
    stage(f"step code_size | counting the lines of {', '.join(BUILD_FOLDERS.values())} and shared/")
    run.append(code_size_metrics(root))
