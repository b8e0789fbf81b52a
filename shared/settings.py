"""Workload settings passed around as one immutable value (never read from globals)."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

HEADER = ("Order ID", "Product", "Quantity Ordered", "Price Each", "Order Date", "Purchase Address")
CATALOGUE_COLUMNS = ("product", "category", "unit_cost", "list_price")
SHIPMENT_COLUMNS = ("order_id", "product", "ship_time", "carrier")
UNCATALOGUED = "(uncatalogued)"
# Quarantine reasons in the order docs/data-rules.md applies them: the first that applies wins.
QUARANTINE_REASONS = (
    "blank", "header", "field_count", "missing_field",
    "bad_quantity", "bad_price", "bad_date", "bad_address",
)


@dataclass(frozen=True)
class WorkloadSettings:
    window_seconds: int = 3600          # window_revenue: 1 h windows ...
    slide_seconds: int = 1800           # ... sliding by 30 min
    watermark_seconds: int = 2 * 3600   # late lines beyond this are dropped by event-time builds
    ship_within_seconds: int = 72 * 3600  # fulfilment: stream-stream join time bound
    shipment_watermark_seconds: int = 2 * 3600
    # The join's own watermark on order lines: Spark drops a join input row older than the
    # (global) watermark, so the join waits as long as a shipment may take; lines up to
    # 72 h late still find their shipments, and state stays bounded.
    join_order_watermark_seconds: int = 72 * 3600

    @classmethod
    def from_env(cls, env: dict | None = None) -> "WorkloadSettings":
        env = os.environ if env is None else env
        names = {
            "LAB_WINDOW_SECONDS": "window_seconds",
            "LAB_SLIDE_SECONDS": "slide_seconds",
            "LAB_WATERMARK_SECONDS": "watermark_seconds",
        }
        values = {field: int(env[var]) for var, field in names.items() if env.get(var)}
        return replace(cls(), **values).validated()

    def validated(self) -> "WorkloadSettings":
        if min(self.window_seconds, self.slide_seconds, self.ship_within_seconds) <= 0:
            raise ValueError("window, slide and ship-within durations must be positive")
        if self.window_seconds % self.slide_seconds:
            raise ValueError("the window length must be a multiple of the slide")
        if min(self.watermark_seconds, self.shipment_watermark_seconds, self.join_order_watermark_seconds) < 0:
            raise ValueError("watermarks cannot be negative")
        return self
