"""The code's layers: a module imports only from its own layer or the ones below it, no two
modules import each other (directly or round a cycle, imports inside functions included), and
the report reads the run folder, never a step of the harness."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# folder -> the package name it is imported as (pyproject.toml's package-dir)
PACKAGES = {
    "shared": "shared",
    "kappa": "kappa",
    "lambda": "lambda_arch",
    "legacy_dstream": "legacy_dstream",
    "experiments": "experiments",
}
# lowest first: shared <- builds <- inputs, reference and utilities <- harness <- report <- the command line
LAYERS = (
    ("shared",),
    ("kappa", "lambda_arch", "legacy_dstream", "experiments.baselines"),
    ("experiments.inputs", "experiments.reference", "experiments.progress", "experiments.stats"),
    ("experiments.harness",),
    ("experiments.report",),
    ("experiments.cli",),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    parts[0] = PACKAGES[parts[0]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for folder in PACKAGES for path in (REPO / folder).rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The lab's modules `path` imports, anywhere in it (a `from package import module` names the module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and not name.endswith("__init__"):
                found.add(name)
    return found


def _layer(module: str) -> int:
    matches = [
        (len(prefix), index)
        for index, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} is in no layer: add its package to LAYERS"
    return max(matches)[1]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    return {name: _imports(path, set(modules)) - {name} - packages for name, path in modules.items()}


def test_every_module_imports_only_from_its_layer_or_below():
    upward = sorted(
        f"{module} ({_layer(module)}) imports {imported} ({_layer(imported)})"
        for module, imported_set in _graph().items()
        for imported in imported_set
        if _layer(imported) > _layer(module)
    )
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    graph = _graph()
    cycles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(path[path.index(imported) :] + [imported]))
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_the_report_reads_no_step():
    steps = [
        f"{module} imports {imported}"
        for module, imported_set in _graph().items()
        if module.startswith("experiments.report")
        for imported in imported_set
        if imported.startswith("experiments.harness.") and imported.endswith("_step")
    ]
    assert not steps, "\n".join(steps)


def test_the_layer_check_sees_a_cycle_and_an_upward_import(tmp_path):
    # the checks above must be able to fail: a module importing from above, and two modules round a cycle
    upward = tmp_path / "up.py"
    upward.write_text("def f():\n    from experiments.report import data\n", encoding="utf-8")
    assert "experiments.report.data" in _imports(upward, set(_modules()))
    assert _layer("experiments.report.data") > _layer("shared.cleaning")


def test_test_modules_share_helpers_only_through_helper_modules():
    """A test module imports no other test module: what tests share lives in a helper module
    of tests/ (live.py, code_copy.py, raw_line_cases.py, synthetic_run.py) or conftest.py."""
    tests = REPO / "tests"
    borrowed = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else ([alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            )
            borrowed += [f"{path.name}: {name}" for name in names if name.startswith("tests.test_")]
    assert borrowed == []
