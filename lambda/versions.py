"""View versions: reprocessing by recomputing every batch view with new logic.

A view version (`v1`, `v2`, ...) is a set of views under WORKDIR/lambda/versions/<version>/
with a manifest (`version.json`) that records the logic it computes (its queries, with
each query's key columns: `city_revenue_v1` keys on city alone and merges the two
Portlands, `city_revenue` keys on city and state), its batch runs (cutoff, seconds, master
rows read) and, once another version serves, the cutoff it last served. The serving
pointer (serving.json) names the serving version and its cutoff; `lab lambda batch
--version v2` recomputes every batch view of v2 from the whole master dataset and
publishes it with one atomic rename of the pointer (app.batch_now). A version that no
longer serves keeps its batch view and the realtime views it served with, no speed layer
adds to them any more, so it stays readable, as it was when it retired, until dropped.
The generic part (names, pointer, cut-over, drop) is shared with Kappa (shared/versions.py).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

from lambda_arch.layout import LambdaConfig
from shared.atomic import write_text_atomic
from shared.catalogue import QUERIES
from shared.versions import DEFAULT_VERSION, VersionStore, check_version

__all__ = [
    "DEFAULT_VERSION",
    "check_version",
    "store",
    "serving_version",
    "manifest",
    "record",
    "serving_config",
    "version_config",
    "retire",
    "versions_status",
    "drop_version",
]


def store(config: LambdaConfig) -> VersionStore:
    return VersionStore(
        config.versions_root,
        config.serving_pointer,
        "publish another version first (`lab lambda batch --version NEW`), then drop this one",
    )


def serving_version(config: LambdaConfig) -> str | None:
    return store(config).serving()


def manifest(config: LambdaConfig, version: str | None = None) -> dict | None:
    """A version's manifest (None when the version has none yet)."""
    path = (config if version is None else replace(config, version=check_version(version))).version_manifest
    return json.loads(path.read_text()) if path.exists() else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def record(config: LambdaConfig, **fields) -> dict:
    """Create the manifest of `config.version` (its queries: the logic it computes) when it
    has none, and set `fields` in it; written whole, atomically."""
    current = manifest(config) or {
        "version": config.version,
        "created_utc": _now(),
        "queries": list(config.queries),
        "keys": {q: QUERIES[q].key_columns for q in config.queries},
    }
    current.update(fields)
    write_text_atomic(config.version_manifest, json.dumps(current, indent=2), fsync=True)
    return current


def version_config(config: LambdaConfig, version: str) -> LambdaConfig:
    """`config` for `version`: its paths, and its queries when it has a manifest."""
    known = manifest(config, version)
    return replace(config, version=version, queries=tuple(known["queries"]) if known else config.queries)


def serving_config(config: LambdaConfig) -> LambdaConfig:
    """`config` for the serving version (or `config.version` when none serves yet): the
    batch and speed layers of a run or a follow process write that version's views."""
    return version_config(config, serving_version(config) or config.version)


def retire(config: LambdaConfig, cutoff: int) -> None:
    """Before another version is published: record the cutoff `config.version` served at
    last, so it stays readable (its batch views of `cutoff` and the realtime views after)."""
    record(config, retired={"cutoff": cutoff, "at_utc": _now()})


def versions_status(config: LambdaConfig) -> list[dict]:
    """Every version: its queries, whether it serves, the cutoff it serves (or served)."""
    pointer = store(config).pointer_record() or {}
    rows = []
    for name in store(config).names():
        known = manifest(config, name) or {}
        serving = name == pointer.get("version")
        rows.append(
            {
                "version": name,
                "serving": serving,
                "queries": known.get("queries"),
                "cutoff": pointer.get("cutoff") if serving else known.get("retired", {}).get("cutoff"),
                "last_batch": known.get("last_batch"),
            }
        )
    return rows


def drop_version(config: LambdaConfig, version: str):
    """Delete a version that does not serve (refused for the serving one); its folder."""
    return store(config).drop(version)
