"""Adding a build is its folder, its registry entry (experiments/harness/builds.py) and its
package in pyproject.toml: in a copy of the code with only those changed, `lab verify`
compares the new build with the oracle and `lab experiments` counts its code, draws it in
its colour and reports it beside the others."""

from __future__ import annotations

import csv

import pytest

from experiments.inputs.generate import GeneratorOptions, generate
from shared.export import export_path
from tests.code_copy import copy_code, edit, run_in_copy

# The smallest honest build: every query of the catalogue as one Spark batch job.
TOY_APP = '''"""A build of one batch job over the whole input (what the registry test adds)."""
from pathlib import Path

from shared import cleaning
from shared import queries as Q
from shared.catalogue import QUERY_NAMES
from shared.finish import write_results
from shared.inputs import inspect_input, read_catalogue, read_shipments
from shared.quality import record_report
from shared.quality_expectations import expectations_from_input
from shared.quality_spark import validate_on_spark
from shared.results import export_rows

BUILD = "toy"


def run(spark, request) -> dict[str, str]:
    layout = inspect_input(request.input_dir)
    classified = cleaning.classify_lines(spark.read.text([str(path) for path in layout.sales_files]))
    outcomes = {row["outcome"]: int(row["lines"]) for row in cleaning.line_accounting(classified).collect()}
    lines = cleaning.valid_order_lines(classified)
    quality = Path(request.workdir) / BUILD / "quality"
    record_report(validate_on_spark(lines, expectations_from_input(request.input_dir)), quality, "all")
    catalogue, shipments = read_catalogue(spark, layout), read_shipments(spark, layout)
    rows = {query: export_rows(Q.result(query, lines, request.settings, catalogue, shipments, watermark=False),
                               query)
            for query in QUERY_NAMES if query not in layout.not_applicable()}
    valid = outcomes.pop("valid", 0)
    return write_results(request.workdir, BUILD, layout, QUERY_NAMES, raw_lines=valid + sum(outcomes.values()),
                         valid_lines=valid, quarantine=outcomes, quality_dir=quality, result_rows=rows.get)
'''
ENTRY = """    Build("toy", "one batch job over the whole input", lambda spark, request: __import__(
        "toy_build.app", fromlist=["run"]).run(spark, request), folder="toy_build", package="toy_build",
        colour="#e377c2"),
"""


@pytest.mark.slow
def test_a_new_build_is_its_folder_its_registry_entry_and_its_package(tmp_path):
    from experiments.harness.code_size import count_lines

    copy = copy_code(tmp_path)
    (copy / "toy_build").mkdir()
    (copy / "toy_build" / "__init__.py").write_text("", encoding="utf-8")
    (copy / "toy_build" / "app.py").write_text(TOY_APP, encoding="utf-8")
    edit(copy / "experiments" / "harness" / "builds.py", '    Build("oracle",', ENTRY + '    Build("oracle",')
    edit(
        copy / "pyproject.toml",
        '"legacy_dstream" = "legacy_dstream",',
        '"legacy_dstream" = "legacy_dstream", "toy_build" = "toy_build",',
    )
    generate(tmp_path / "in", GeneratorOptions(rows=600, seed=29, files=2, malformed_fraction=0.05))

    verified = run_in_copy(
        copy,
        ["-m", "experiments.cli", "verify", "--input", str(tmp_path / "in"), "--workdir", str(tmp_path / "w")],
        tmp_path,
    )
    assert "toy" in verified.stdout
    for query in ("city_revenue", "window_revenue", "fulfilment"):
        assert (
            export_path(tmp_path / "w", "toy", query).read_bytes()
            == export_path(tmp_path / "w", "oracle", query).read_bytes()
        ), query

    run_in_copy(
        copy,
        [
            "-m",
            "experiments.cli",
            "--quiet",
            "experiments",
            "--profile",
            "quick",
            "--steps",
            "code_size",
            "--reports",
            str(tmp_path / "reports"),
            "--data",
            str(tmp_path / "data"),
        ],
        tmp_path,
    )
    (run_folder,) = [
        p for p in (tmp_path / "reports").iterdir() if (p / "metrics.csv").is_file() and not p.is_symlink()
    ]
    with (run_folder / "metrics.csv").open(encoding="utf-8", newline="") as handle:
        own = {
            row["build"]: row["value"]
            for row in csv.DictReader(handle)
            if row["metric"] == "code_lines" and row["query"] == "build-specific"
        }
    assert set(own) == {"kappa", "lambda", "dstream", "toy"}
    assert float(own["toy"]) == count_lines(TOY_APP)[0]
    report = (run_folder / "report.html").read_text(encoding="utf-8")
    assert "toy" in report
