"""Every module of every package imports (lambda/ is imported as lambda_arch), from this
checkout, and says what it is for."""

import importlib
import pkgutil
from pathlib import Path

import pytest

PACKAGES = ("shared", "kappa", "lambda_arch", "legacy_dstream", "experiments")
REPO = Path(__file__).resolve().parent.parent


def _modules():
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            yield info.name


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_imports(module):
    imported = importlib.import_module(module)  # an import error fails the test here
    # the code under test, not a stale installed copy (the install must be editable)
    assert Path(imported.__file__).resolve().is_relative_to(REPO), imported.__file__
    if not imported.__file__.endswith("__init__.py"):
        assert (imported.__doc__ or "").strip(), f"{module} has no module docstring"


def test_lambda_folder_is_the_lambda_arch_package():
    import lambda_arch

    assert lambda_arch.__path__[0].replace("\\", "/").endswith("/lambda")
    expected = {"app", "batch_layer", "layout", "master_dataset", "serving_layer", "speed_layer", "views"}
    assert expected <= {m.name for m in pkgutil.iter_modules(lambda_arch.__path__)}
