"""Every module of every package imports (lambda/ is imported as lambda_arch)."""
import importlib
import pkgutil

import pytest

PACKAGES = ("shared", "kappa", "lambda_arch", "legacy_dstream", "experiments")


def _modules():
    for name in PACKAGES:
        package = importlib.import_module(name)
        yield name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            yield info.name


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_imports(module):
    assert importlib.import_module(module).__name__ == module


def test_lambda_folder_is_the_lambda_arch_package():
    import lambda_arch

    assert lambda_arch.__path__[0].replace("\\", "/").endswith("/lambda")
    expected = {"app", "batch_layer", "layout", "master_dataset", "serving_layer", "speed_layer", "views"}
    assert expected <= {m.name for m in pkgutil.iter_modules(lambda_arch.__path__)}
