"""Adding a grouped-sum query is its declaration (shared/catalogue.py) and the oracle's own
implementation: in a copy of the code with only those two files changed, every build and
both baselines export the new query byte-identical to the oracle's."""

from __future__ import annotations

import pytest

from experiments.inputs.generate import GeneratorOptions, generate
from shared.export import export_path
from tests.code_copy import copy_code, edit, run_in_copy

NEW_QUERY = "state_hourly_revenue"
DECLARATION = f"""    QuerySpec("{NEW_QUERY}", (("state", STRING), ("hour", INTEGER)),
              (("revenue", MONEY), ("order_lines", INTEGER)),
              group_by=("state", ORDER_HOUR), sum_of=("revenue", ONE_PER_LINE)),"""
ORACLE_FUNCTION = f"""

def {NEW_QUERY}(lines: pd.DataFrame) -> pd.DataFrame:
    timed = lines.assign(hour=lines["order_ts"].dt.hour)
    return _group(timed, ["state", "hour"], revenue=("revenue", "sum"), order_lines=("revenue", "size"))
"""


@pytest.mark.slow
def test_a_new_grouped_sum_is_its_declaration_and_the_oracles_function(tmp_path):
    copy = copy_code(tmp_path)
    edit(copy / "shared" / "catalogue.py", "\n)\nQUERIES:", f"\n{DECLARATION}\n)\nQUERIES:")
    oracle = copy / "experiments" / "reference" / "oracle.py"
    edit(oracle, "\n\ndef window_revenue(", ORACLE_FUNCTION + "\n\ndef window_revenue(")
    edit(
        oracle,
        '            "city_revenue_v1": city_revenue_v1(lines),\n',
        f'            "city_revenue_v1": city_revenue_v1(lines),\n            "{NEW_QUERY}": {NEW_QUERY}(lines),\n',
    )
    generate(tmp_path / "in", GeneratorOptions(rows=900, seed=23, files=3, late_fraction=0.02, malformed_fraction=0.05))
    where = ["--input", str(tmp_path / "in"), "--workdir", str(tmp_path / "w")]
    for command in (
        ["-m", "experiments.cli", "--quiet", "verify"],
        ["-m", "experiments.baselines.duckdb_batch"],
        ["-m", "experiments.baselines.spark_batch"],
    ):
        run_in_copy(copy, command + where, tmp_path)
    oracle_rows = export_path(tmp_path / "w", "oracle", NEW_QUERY).read_text(encoding="utf-8").splitlines()
    assert oracle_rows[0] == "state,hour,revenue,order_lines" and len(oracle_rows) > 20
    for system in ("kappa", "lambda", "dstream", "duckdb", "spark_batch"):
        assert export_path(tmp_path / "w", system, NEW_QUERY).read_text(encoding="utf-8").splitlines() == oracle_rows, (
            system
        )
