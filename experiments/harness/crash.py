"""Crash a build at random moments and let it recover: the kill -9 part of every recovery
test and measurement, written once for any build.

A kill lands at a moment drawn from a seeded generator (so a failure can be replayed with
the same seed), measured from one of three anchors: the start of the process, the moment
the build's first micro-batch is in flight, or the moment its results export has begun.
The last two are told by callables the caller passes, given the run's standard error so
far (each build knows its own stage lines and files); kills at fixed moments miss exactly
those windows. Each kill sends SIGKILL to the whole
process group (the Python driver, its JVM and Python workers at once), as a power cut or
an OOM killer would; the same command is started again after each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from experiments.harness.faults import kill_group

START, FIRST_BATCH, EXPORT = "start", "first batch", "export"


@dataclass(frozen=True)
class Kill:
    anchor: str  # START, FIRST_BATCH or EXPORT
    delay_seconds: float  # after the anchor


@dataclass
class KillRecord:
    anchor: str
    delay_seconds: float
    killed: bool  # False: the run ended (or never reached the anchor) first
    seconds_after_start: float  # when the kill landed, or when the run ended
    exit_code: int | None = None  # of a run that ended by itself
    anchor_held: bool = False  # the anchor's condition still held when the kill landed


@dataclass
class CrashReport:
    seed: int
    kills: list[KillRecord] = field(default_factory=list)
    final_exit_code: int | None = None
    final_seconds: float = 0.0
    final_stderr: str = ""

    @property
    def landed(self) -> list[KillRecord]:
        return [k for k in self.kills if k.killed]

    def landed_at(self, anchor: str) -> int:
        return sum(1 for k in self.landed if k.anchor == anchor)

    def to_json(self) -> dict:
        return asdict(self)


def kill_plan(seed: int, kills: int, span_seconds: float, first_batch_kills: int = 2) -> list[Kill]:
    """`first_batch_kills` kills inside the first micro-batch, one during the export (the
    last), the rest uniformly over [0, span] after the start."""
    if kills < first_batch_kills + 1:
        raise ValueError(f"a plan needs at least {first_batch_kills + 1} kills")
    rng = random.Random(seed)
    plan = [Kill(FIRST_BATCH, rng.uniform(0.5, 5.0)) for _ in range(first_batch_kills)]
    plan += [Kill(START, rng.uniform(0.0, span_seconds)) for _ in range(kills - first_batch_kills - 1)]
    return plan + [Kill(EXPORT, rng.uniform(0.0, 0.5))]


def _kill_group(process: subprocess.Popen) -> None:
    kill_group(process.pid)
    process.wait()


def run_until(
    command: Sequence[str],
    env: dict,
    kill: Kill | None,
    anchors: Mapping[str, Callable[[str], bool]],
    poll_seconds: float,
    timeout_seconds: float,
    stderr_path: str,
    done: Callable[[str], bool] | None = None,
) -> KillRecord:
    """Start the command; kill its group `kill.delay_seconds` after the anchor holds (no
    kill: run it to its end). A command that runs until stopped (`--follow`) is sent
    SIGTERM once `done(its stderr so far)` says it has processed everything (and has its
    signal handlers: the caller knows the stage line that says so), and counts as ended."""
    started = time.monotonic()
    with open(stderr_path, "w+", encoding="utf-8", errors="replace") as stderr:
        process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=stderr)
        anchor = anchors.get(kill.anchor, lambda output: True) if kill else (lambda output: False)
        output = lambda: open(stderr_path, encoding="utf-8", errors="replace").read()
        anchored_at = started if kill and kill.anchor == START else None
        stopping = False
        while process.poll() is None:
            now = time.monotonic()
            if now - started > timeout_seconds:
                _kill_group(process)
                raise TimeoutError(f"{' '.join(command)} ran over {timeout_seconds:.0f} s without ending")
            if done is not None and not stopping and done(output()):
                os.killpg(process.pid, signal.SIGTERM)  # as a service manager stops it
                stopping = True
                continue
            if anchored_at is None and anchor(output()):
                anchored_at = now
            # after SIGTERM only the export kill still lands: a stopping follow run exports
            if (
                kill is not None
                and anchored_at is not None
                and (not stopping or kill.anchor == EXPORT)
                and now - anchored_at >= kill.delay_seconds
            ):
                held = anchor(output())
                _kill_group(process)
                return KillRecord(kill.anchor, kill.delay_seconds, True, round(now - started, 3), anchor_held=held)
            time.sleep(poll_seconds)
    return KillRecord(
        kill.anchor if kill else "",
        kill.delay_seconds if kill else 0.0,
        False,
        round(time.monotonic() - started, 3),
        process.returncode,
    )


def crash_and_recover(
    command: Sequence[str],
    *,
    seed: int,
    kills: int,
    span_seconds: float,
    anchors: dict[str, Callable[[str], bool]],
    before_each: Callable[[], None] = lambda: None,
    env: dict | None = None,
    max_runs: int | None = None,
    poll_seconds: float = 0.05,
    timeout_seconds: float = 900.0,
    done: Callable[[str], bool] | None = None,
) -> CrashReport:
    """Run `command` again and again, killing it as the seeded plan says, until `kills`
    kills have landed; then once more to the end. A kill whose run ended first is drawn
    again (random ones within the duration of the last run that ended by itself).
    `before_each` runs before every start (e.g. to remove a previous export, so the export
    anchor means this run's export). `done`: for a command that runs until stopped, when
    to send it SIGTERM (see `run_until`)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    rng = random.Random(seed + 1)
    plan = kill_plan(seed, kills, span_seconds)
    report = CrashReport(seed)
    max_runs = max_runs or 3 * kills
    span = span_seconds
    with tempfile.TemporaryDirectory(prefix="crash-") as folder:
        stderr_path = os.path.join(folder, "stderr.txt")
        while len(report.landed) < kills and len(report.kills) < max_runs:
            kill = plan.pop(0) if plan else Kill(START, rng.uniform(0.0, span))
            before_each()
            record = run_until(command, env, kill, anchors, poll_seconds, timeout_seconds, stderr_path, done)
            report.kills.append(record)
            if record.killed:
                continue
            if record.exit_code != 0:
                tail = open(stderr_path, encoding="utf-8", errors="replace").read()[-3000:]
                raise RuntimeError(
                    f"run {len(report.kills)}, after {len(report.landed)} kills, failed with exit "
                    f"code {record.exit_code}: {' '.join(command)}\n{tail}"
                )
            span = record.seconds_after_start
            if kill.anchor == EXPORT:
                plan.append(kill)  # the export comes again at the end of every run
        before_each()
        final = run_until(command, env, None, anchors, poll_seconds, timeout_seconds, stderr_path, done)
        report.final_exit_code, report.final_seconds = final.exit_code, final.seconds_after_start
        report.final_stderr = open(stderr_path, encoding="utf-8", errors="replace").read()[-5000:]
    return report
