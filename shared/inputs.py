"""Where an input directory's parts are, and reading them into Spark.

Layout (docs/data-rules.md): top-level *.csv are sales files (names starting with `.` or `_` are
skipped, as Spark's file sources skip them); optional
catalogue/products.csv and shipments/*.csv feed the two joined queries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shared.settings import CATALOGUE_COLUMNS, SHIPMENT_COLUMNS

SALES_GLOB = "*.csv"
# What the generator writes beside its input (its options and what it put in): not a sales file.
MANIFEST_FILE = "_manifest.json"
# Its key for the order-time range of the valid lines, {"min": ..., "max": ...} (ISO, UTC; null
# without valid lines). Here, so that its writer (experiments/inputs/manifest.py) and the
# quality gate in shared/ can both import it.
MANIFEST_ORDER_TIME_RANGE = "order_time_range"


class InputError(ValueError):
    """The input directory is missing or does not have the expected shape."""


@dataclass(frozen=True)
class InputLayout:
    root: Path
    sales_files: tuple[Path, ...]
    catalogue: Path | None
    shipments_dir: Path | None

    @property
    def sales_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.sales_files)

    @property
    def sales_glob(self) -> str:
        return str(self.root / SALES_GLOB)

    @property
    def shipments_glob(self) -> str | None:
        return str(self.shipments_dir / "*.csv") if self.shipments_dir else None

    def not_applicable(self) -> dict[str, str]:
        """Queries that cannot run on this input, with the reason."""
        missing = {}
        if self.catalogue is None:
            missing["category_revenue"] = f"no product catalogue ({self.root}/catalogue/products.csv)"
        if self.shipments_dir is None:
            missing["fulfilment"] = f"no shipments ({self.root}/shipments/*.csv)"
        return missing


def inspect_input(input_dir: str | os.PathLike, require_sales: bool = True) -> InputLayout:
    root = Path(input_dir).expanduser().resolve()
    if not root.is_dir():
        raise InputError(f"input directory {root} does not exist (make one with `lab generate --out {input_dir}`)")
    sales = tuple(sorted(p for p in root.glob(SALES_GLOB) if p.is_file() and not p.name.startswith((".", "_"))))
    if require_sales and not sales:
        raise InputError(f"input directory {root} has no sales files (*.csv at its top level)")
    catalogue = root / "catalogue" / "products.csv"
    shipments = root / "shipments"
    has_shipments = shipments.is_dir() and any(shipments.glob("*.csv"))
    return InputLayout(root, sales, catalogue if catalogue.is_file() else None, shipments if has_shipments else None)


def files_per_trigger(layout: InputLayout, batch_bytes: int) -> int:
    """Whole sales files per micro-batch so that a batch holds about `batch_bytes`."""
    if not layout.sales_files:
        return 1
    mean_size = sum(p.stat().st_size for p in layout.sales_files) / len(layout.sales_files)
    return max(1, int(batch_bytes // max(1.0, mean_size)))


def _check_header(path: Path, expected: tuple[str, ...]) -> None:
    with open(path, encoding="utf-8") as handle:
        header = tuple(h.strip() for h in handle.readline().rstrip("\r\n").split(","))
    if header != expected:
        raise InputError(f"{path}: header is {','.join(header)!r}, expected {','.join(expected)!r}")


def read_catalogue(spark, layout: InputLayout):
    """The product catalogue as a static DataFrame (None when the input has none)."""
    from shared.queries import parse_catalogue

    if layout.catalogue is None:
        return None
    _check_header(layout.catalogue, CATALOGUE_COLUMNS)
    schema = ", ".join(f"{c} string" for c in CATALOGUE_COLUMNS)
    raw = spark.read.option("header", True).option("mode", "FAILFAST").schema(schema).csv(str(layout.catalogue))
    return parse_catalogue(raw)


def held_catalogue(spark, layout: InputLayout):
    """The catalogue read once and held on the driver as a local relation (None when the
    input has none), for a streaming query that joins it at every micro-batch: joined as a
    file-backed frame, each batch listed and scanned the catalogue's files again with a
    Spark job of their own (reference data is in place before the stream starts)."""
    catalogue = read_catalogue(spark, layout)
    return None if catalogue is None else spark.createDataFrame(catalogue.collect(), catalogue.schema)


def shipments_schema() -> str:
    return ", ".join(f"{c} string" for c in SHIPMENT_COLUMNS)


def read_shipments(spark, layout: InputLayout):
    from shared.queries import parse_shipments

    if layout.shipments_dir is None:
        return None
    files = sorted(layout.shipments_dir.glob("*.csv"))
    for path in files:
        _check_header(path, SHIPMENT_COLUMNS)
    raw = (
        spark.read.option("header", True)
        .option("mode", "FAILFAST")
        .schema(shipments_schema())
        .csv([str(p) for p in files])
    )
    return parse_shipments(raw)
