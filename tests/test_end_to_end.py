"""`lab verify` end to end on a small generated input with every quirk (a Windows-1252
export and a stray binary file among them): the three builds and the oracle produce
byte-identical exports and the same line accounting."""

import pytest

from experiments.harness.verify import DIFFERS, IDENTICAL, MISSING, equivalence_table, verify
from shared.catalogue import QUERY_NAMES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_input(generated_input):
    return generated_input(rows=4000, seed=11, files=4, days=4, windows_1252_files=1, binary_files=1)


@pytest.mark.e2e  # 60 s, every build once more: `make test-e2e` (CI runs it after `make test`)
def test_verify_all_builds_identical_to_oracle(spark, small_input, tmp_path):
    outcome = verify(spark, small_input, tmp_path / "w")
    statuses = {(c.query, c.build): c.status for c in outcome.comparisons}
    for query in QUERY_NAMES:
        for build in ("kappa", "lambda", "dstream"):
            assert statuses[(query, build)] == IDENTICAL, (query, build, outcome.comparisons)
    assert not outcome.accounting_problems
    assert not outcome.quality_problems
    assert outcome.ok
    oracle = outcome.accounting["oracle"]
    assert oracle["balanced"] and oracle["quarantine"]["header"] > 4  # repeated headers besides the 4 file headers
    assert all(
        oracle["quarantine"][reason] > 0
        for reason in ("blank", "bad_quantity", "bad_price", "bad_date", "not_utf8", "too_long")
    )
    assert all(outcome.accounting[build] == oracle for build in ("kappa", "lambda", "dstream"))
    table = equivalence_table(outcome)
    assert table[0][0] == "city_revenue" and table[-1][0] == "data quality"


def test_verify_reports_a_tampered_export_as_a_mismatch(spark, small_input, tmp_path):
    from experiments.harness.verify import compare_all

    workdir = tmp_path / "w"
    outcome = verify(spark, small_input, workdir, builds=("lambda",))
    assert outcome.ok
    export = workdir / "results" / "lambda" / "city_revenue.csv"
    lines = export.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",999999"
    export.write_text("\n".join(lines) + "\n")
    (workdir / "results" / "lambda" / "product_sales.csv").unlink()
    again = compare_all(workdir, {"lambda": {}}, builds=("lambda",))
    statuses = {c.query: c.status for c in again.comparisons}
    assert statuses["city_revenue"] == DIFFERS and statuses["product_sales"] == MISSING
    assert not again.ok
