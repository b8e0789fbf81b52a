"""The lab's fault injector: the faults a long-running stream meets, done the same way by
the tests and by `lab experiments`, each recorded with the moment it landed.

    kill         SIGKILL to a build's whole process group (driver, JVM, Python workers), as
                 a power cut or the OOM killer does; crash.py plans when (seeded, anchored)
    broker       the lab's own Kafka broker stopped and started again (scripts/kafka.sh)
    disk full    a build's workdir on a small tmpfs that fills up, then grown (root only)
    poison file  a stray binary file or a Windows-1252 export among the sales files: the
                 generator writes them (`binary_files`, `windows_1252_files`), the replayer
                 lands them like any other file, and the replay log says when

Who uses what: tests/test_crash_recovery.py and the recovery measurements kill (through
crash.py and follow.py); tests/test_faults.py stops the broker and fills the disk;
`lab experiments` lands a poison file and kills every build during the last pass of its
live runs, and `poison_outcomes` turns what the run wrote into the reliability section's
rows (step `faults`): when each poison file landed, how long until every query covered it,
and its quarantined lines against the oracle's (lost or counted twice).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from experiments.harness.run_folder import Metric

REPO = Path(__file__).resolve().parents[2]
STEP = "faults"
POISON_FILE = "poison file"
POISON_REASONS = ("not_utf8", "too_long")  # the reasons only a poison file's lines have
LAST_PASS_KILL = "the latency step's last pass"  # in the kill_at_s detail of a kill there (the report reads it)
POISON_KINDS = {"binary": "a stray binary file", "windows_1252": "a Windows-1252 spreadsheet export"}


# --------------------------------------------------------------------------------------
# The injectors
# --------------------------------------------------------------------------------------


def kill_group(pgid: int) -> None:
    """SIGKILL to a process group (a build started with start_new_session=True); a group
    that is gone already is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def broker(action: str, timeout_s: float = 180.0) -> None:
    """`scripts/kafka.sh down|up`: the lab's own single-node broker stopped, or started and
    waited for. (A broker the lab did not start is never touched.)"""
    if action not in ("down", "up"):
        raise ValueError(f"broker action {action!r}: down or up")
    subprocess.run(["bash", "scripts/kafka.sh", action], cwd=REPO, check=True, capture_output=True, timeout=timeout_s)


def small_disk(mount_point: Path, size: str) -> str | None:
    """A tmpfs of `size` (mount's notation: 2m, 1500k) mounted on `mount_point`: a file
    system a build fills. Returns why not (not root, no CAP_SYS_ADMIN), or None once mounted."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    return None if mounted.returncode == 0 else (mounted.stderr.strip() or f"mount exited {mounted.returncode}")


def grow_disk(mount_point: Path, size: str) -> None:
    """Space freed: the tmpfs on `mount_point` grown to `size`, its files kept."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount_point)], check=True, capture_output=True)


def remove_disk(mount_point: Path) -> None:
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


# --------------------------------------------------------------------------------------
# Poison files in a replay, and what they did to a build
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoisonFile:
    name: str
    kind: str  # a key of POISON_KINDS
    first_seq: int
    last_seq: int
    landed_s: float  # since the replay started, when the replayer's rename made it visible
    landed_at: float  # the same, in UTC epoch s


def poison_kind(options: dict, sales_names: Sequence[str], name: str) -> str | None:
    """What kind of poison the file `name` of a generated input is, given the generator's
    options (its manifest's) and the input's sales file names (None: a plain sales file)."""
    if name.endswith("_stray.csv"):
        return "binary"
    plain = sorted(n for n in sales_names if not n.endswith("_stray.csv"))
    cp1252 = options.get("windows_1252_files", 0)
    return "windows_1252" if cp1252 and name in plain[len(plain) - cp1252 :] else None


def landed_poison(replay_dir: Path, input_dir: Path) -> list[PoisonFile]:
    """The poison files of the generated input `input_dir` that a landing replay emitted,
    with their seq range and landing time (from its log: replay_log.csv)."""
    import csv

    from experiments.inputs.manifest import OPTIONS_KEY
    from experiments.inputs.schedule import LOG_CSV_NAME, read_replay_summary
    from shared.inputs import MANIFEST_FILE, inspect_input

    manifest = input_dir / MANIFEST_FILE
    options = json.loads(manifest.read_text(encoding="utf-8")).get(OPTIONS_KEY, {}) if manifest.exists() else {}
    names = [p.name for p in inspect_input(input_dir).sales_files]
    start = float(read_replay_summary(replay_dir)["start_epoch_s"])
    found = []
    with open(replay_dir / LOG_CSV_NAME, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = Path(row["source_file"]).name
            kind = poison_kind(options, names, name)
            if kind:
                landed = float(row["emitted_s"])
                found.append(
                    PoisonFile(name, kind, int(row["first_seq"]), int(row["last_seq"]), landed, start + landed)
                )
    return found


def poison_outcomes(
    build: str,
    replay_dir: Path,
    input_dir: Path,
    commit_log: Path,
    queries: Sequence[str],
    workdir: Path,
    oracle_results: Path,
    common: dict,
) -> list[Metric]:
    """Rows of step `faults` for the poison files of the generated input `input_dir` that the
    replay in `replay_dir` landed, one set per file: `landed_at_s` (since the replay
    started), `covered_s` (landing to every query's commits covering its last line: the
    build went on past it; a file with no valid line is covered by the next file's commit);
    and, once per run, the lines quarantined for the poison reasons in the build's export
    against the oracle's over the same input (`lost_lines`, `duplicated_lines`; no value
    without an export)."""
    from experiments.harness.latency import covered_at
    from shared.commit_log import read_commits
    from shared.export import results_dir

    poison = landed_poison(replay_dir, input_dir)
    if not poison:
        return []
    commits = read_commits(commit_log) if commit_log.exists() else []
    rows = []
    for one in poison:
        label = f"{POISON_FILE}: {one.name}"
        covered = covered_at(commits, queries, one.last_seq, one.landed_at)
        rows += [
            Metric(
                STEP,
                build,
                "landed_at_s",
                round(one.landed_s, 3),
                "s since the replay started",
                query=label,
                detail=f"{POISON_KINDS[one.kind]}, lines {one.first_seq:,}-{one.last_seq:,}",
                **common,
            ),
            Metric(
                STEP,
                build,
                "covered_s",
                None if covered is None else round(covered - one.landed_at, 3),
                "s",
                query=label,
                detail="its landing to every query's commits covering its last line"
                + ("" if covered is not None else ": never, by the end of the run"),
                **common,
            ),
        ]
    label = f"{POISON_FILE}s: {', '.join(p.name for p in poison)}"
    how = f"lines quarantined as {' or '.join(POISON_REASONS)}, against the oracle's over the same input"
    accounting = results_dir(workdir, build) / "_accounting.json"
    if not accounting.exists():
        return rows + [Metric(STEP, build, "lost_lines", None, "lines", query=label, detail="no export", **common)]
    mine = _poison_lines(accounting)
    truth = _poison_lines(oracle_results / "_accounting.json")
    return rows + [
        Metric(STEP, build, "lost_lines", max(0, truth - mine), "lines", query=label, detail=how, **common),
        Metric(STEP, build, "duplicated_lines", max(0, mine - truth), "lines", query=label, detail=how, **common),
    ]


def _poison_lines(accounting: Path) -> int:
    reasons = json.loads(accounting.read_text(encoding="utf-8"))["quarantine"]
    return sum(reasons.get(reason, 0) for reason in POISON_REASONS)
