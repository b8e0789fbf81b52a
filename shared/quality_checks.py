"""The quality gate's suite of checks, and Great Expectations running it over pandas.

`plan_checks` is the suite: every check on valid order lines, described without importing
Great Expectations, so shared/quality_spark.py can count the same checks in Spark.
`validate_order_lines` runs it with Great Expectations over a pandas DataFrame (the output
of cleaning), and `check_result` turns an outcome into the report's entry for both.

Great Expectations is imported lazily and its context is created once per process: the
import alone takes seconds, and the gate runs once per micro-batch.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

import pandas as pd

from shared.quality_expectations import QualityExpectations, naive_utc
from shared.quality_report import QualityReport

# Helper columns added to a copy of the batch, so catalogue and revenue checks are
# plain column-pair equalities (Decimal == Decimal in pandas: exact, no floats).
CATALOGUE_PRICE = "catalogue_price"
EXPECTED_REVENUE = "expected_revenue"
ROW_ID = "order_id"  # names the offending rows in examples
MAX_EXAMPLES = 5


# ---------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """One expectation, described without importing Great Expectations (hashable: cached)."""

    name: str  # the human wording used in summaries
    expectation: str  # a class in gx.expectations
    kwargs: tuple  # its arguments, as sorted (name, value) pairs
    needs: tuple[str, ...]  # input columns it reads
    skipped: str | None = None  # why it does not run on this input

    @property
    def columns(self) -> list[str]:
        arguments = dict(self.kwargs)
        return [arguments[k] for k in ("column", "column_A", "column_B") if k in arguments]

    @property
    def expectation_type(self) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.expectation).lower()


def _check(name, expectation, needs=None, skipped=None, **kwargs) -> _Check:
    pairs = tuple(sorted(kwargs.items()))
    return _Check(name, expectation, pairs, tuple(needs or [dict(pairs)["column"]]), skipped)


NOT_NULL_COLUMNS = ("order_id", "product", "quantity", "price", "order_ts", "city", "state", "zip")


def plan_checks(expectations: QualityExpectations) -> list[_Check]:
    """Every check, in report order; the ones this input cannot support are marked skipped."""
    earliest, latest = naive_utc(expectations.earliest), naive_utc(expectations.latest)
    no_range = "no order-time range known" if earliest is None and latest is None else None
    no_catalogue = "no product catalogue" if expectations.catalogue_prices is None else None
    return [
        *(_check(f"{c} not null", "ExpectColumnValuesToNotBeNull", column=c) for c in NOT_NULL_COLUMNS),
        _check("quantity >= 1", "ExpectColumnValuesToBeBetween", column="quantity", min_value=1),
        _check("price > 0", "ExpectColumnValuesToBeBetween", column="price", min_value=0, strict_min=True),
        _check("state is two capital letters", "ExpectColumnValuesToMatchRegex", column="state", regex=r"^[A-Z]{2}$"),
        _check("zip is five digits", "ExpectColumnValuesToMatchRegex", column="zip", regex=r"^[0-9]{5}$"),
        # Uncatalogued products have no catalogue price: those rows are ignored, not failed.
        _check(
            "price matches catalogue",
            "ExpectColumnPairValuesToBeEqual",
            needs=["product", "price"],
            skipped=no_catalogue,
            column_A="price",
            column_B=CATALOGUE_PRICE,
            ignore_row_if="either_value_is_missing",
        ),
        _check(
            "order_ts within input range",
            "ExpectColumnValuesToBeBetween",
            skipped=no_range,
            column="order_ts",
            min_value=earliest,
            max_value=latest,
        ),
        # A missing revenue next to a computable one is a failure, hence "both" missing only.
        _check(
            "revenue = quantity x price",
            "ExpectColumnPairValuesToBeEqual",
            needs=["revenue", "quantity", "price"],
            column_A="revenue",
            column_B=EXPECTED_REVENUE,
            ignore_row_if="both_values_are_missing",
        ),
    ]


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------


def validate_order_lines(
    lines: pd.DataFrame, expectations: QualityExpectations, batch_name: str = "order_lines"
) -> QualityReport:
    checks = plan_checks(expectations)
    missing = {c.name: sorted(set(c.needs) - set(lines.columns)) for c in checks}
    runnable = tuple(c for c in checks if c.skipped is None and not missing[c.name])
    # No rows, nothing to check: empty micro-batches are common, so skip GE's overhead.
    outcomes = _run(_with_helper_columns(lines, expectations), runnable) if len(lines) and runnable else {}
    results = [check_result(check, outcomes.get(check.name), missing[check.name]) for check in checks]
    return QualityReport(
        suite=batch_name,
        checked_rows=len(lines),
        success=all(r["success"] for r in results),
        results=results,
    )


def _with_helper_columns(lines: pd.DataFrame, expectations: QualityExpectations) -> pd.DataFrame:
    helpers = {}
    if expectations.catalogue_prices is not None and "product" in lines:
        helpers[CATALOGUE_PRICE] = lines["product"].map(expectations.catalogue_prices)
    if {"quantity", "price"} <= set(lines.columns):
        helpers[EXPECTED_REVENUE] = [_exact_product(q, p) for q, p in zip(lines["quantity"], lines["price"])]
    if "order_ts" in lines and isinstance(lines["order_ts"].dtype, pd.DatetimeTZDtype):
        helpers["order_ts"] = lines["order_ts"].dt.tz_convert("UTC").dt.tz_localize(None)
    return lines.assign(**helpers)  # a new frame: the caller's is left alone


def _exact_product(quantity, price) -> Decimal | None:
    """quantity x price as an exact Decimal (None when either is missing).

    Decimal's default 28 digits hold any decimal(22,2) revenue, so nothing rounds."""
    if _is_missing(quantity) or _is_missing(price):
        return None
    return _as_decimal(quantity) * _as_decimal(price)


def _as_decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, numbers.Integral):  # includes numpy integers
        return Decimal(int(value))
    return Decimal(float(value))  # exact binary value: a float price will not compare equal


def check_result(check: _Check, outcome, missing_columns: list[str]) -> dict:
    entry = {
        "check": check.name,
        "expectation": check.expectation_type,
        "columns": check.columns,
        "success": True,
        "unexpected_count": 0,
        "unexpected_examples": [],
        "skipped": check.skipped,
        "error": None,
    }
    if check.skipped is not None:
        return entry
    if missing_columns:
        return {**entry, "success": False, "error": f"missing column(s): {', '.join(missing_columns)}"}
    if outcome is None:  # no rows
        return entry
    details = outcome.result or {}
    return {
        **entry,
        "success": bool(outcome.success),
        "unexpected_count": int(details.get("unexpected_count") or 0),
        "unexpected_examples": _examples(check, details),
        "error": _error_message(outcome.exception_info),
    }


def _examples(check: _Check, details: dict) -> list[str]:
    rows = details.get("partial_unexpected_index_list")
    if rows and isinstance(rows[0], dict):
        return [_describe_row(check, row) for row in rows[:MAX_EXAMPLES]]
    return [_display(v) for v in (details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]]


def _describe_row(check: _Check, row: dict) -> str:
    values = ", ".join(f"{c}={_display(row.get(c))}" for c in check.columns)
    if ROW_ID in check.columns or ROW_ID not in row:
        return values
    return f"{ROW_ID} {_display(row[ROW_ID])}: {values}"


def _display(value) -> str:
    if _is_missing(value):
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a quantity column with nulls turns into floats
    if isinstance(value, tuple):
        return " vs ".join(_display(v) for v in value)
    return str(value)


def _is_missing(value) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _error_message(info) -> str | None:
    """GE reports an exception flat, or per metric when a metric failed to compute."""
    if not info:
        return None
    reports = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [r.get("exception_message") or "error" for r in reports if r.get("raised_exception")]
    return "; ".join(messages) or None


# ---------------------------------------------------------------------------------------
# Great Expectations: one ephemeral context per process, used under a lock
# ---------------------------------------------------------------------------------------

# GE's context and validator are not documented as thread-safe, and several streaming
# queries of one application may validate at once.
_GX_LOCK = threading.Lock()


def _run(frame: pd.DataFrame, checks: tuple[_Check, ...]) -> dict:
    """check name -> GE's ExpectationValidationResult."""
    result_format = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": MAX_EXAMPLES,
        "unexpected_index_column_names": [ROW_ID] if ROW_ID in frame else [],
    }
    with _GX_LOCK:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
        validation = batch.validate(_suite(checks), result_format=result_format)
    return {r.expectation_config.meta["check"]: r for r in validation.results}


@lru_cache(maxsize=32)
def _suite(checks: tuple[_Check, ...]):
    """The GE suite for these checks (few distinct ones per run: cached)."""
    gx = _great_expectations()
    suite = gx.ExpectationSuite(name="order_lines")
    for check in checks:
        # meta carries our name back: GE does not return results in suite order.
        expectation_class = getattr(gx.expectations, check.expectation)
        suite.add_expectation(expectation_class(**dict(check.kwargs), meta={"check": check.name}))
    return suite


@lru_cache(maxsize=1)
def _batch_definition():
    """A pandas data source in an in-memory context; each batch passes its own DataFrame."""
    gx = _great_expectations()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        # Otherwise every validation draws a tqdm "Calculating Metrics" bar on stderr.
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("order_lines").add_dataframe_asset("order_lines")
    return asset.add_batch_definition_whole_dataframe("whole_batch")


def _great_expectations():
    # Set before the first import: the machine reaches no analytics endpoint.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GE logs hundreds of INFO lines on import; keep a level someone chose on purpose.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations as gx

    return gx
