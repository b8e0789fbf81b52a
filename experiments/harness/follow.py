"""A live run: one build following a landing directory in its own process, fed by the
open-loop replayer, stopped with SIGTERM once its commit log covers the whole replay.

    follower   `lab run kappa|lambda|dstream --follow` (or the harness pass-through), its
               process tree measured by MeasuredCommand (wall, CPU, peak RSS)
    replayer   `lab replay --to landing` in a process of its own, started once the follower
               is ready (its streaming queries run on the empty landing directory), with a
               constant rate or a stepped one; its log maps each landed file to its seq range
               and intended emission time
    the end    once every query's commits cover the last emitted line (or a drain timeout
               passes), SIGTERM to the follower's process group: each build stops between
               micro-batches and writes its results export
    a probe    optionally, a pass after the measured ones at higher rates (the throughput
               search's ramp, on the warm build), in no figure of the measured passes
    a crash    optionally, a last pass after the measured ones (`LastPass`): while it is
               replayed the follower's process group gets SIGKILL, the same command starts
               again at once and catches up (the recovery step's kill, on a warm build)

How each follower says it is ready, from what it writes (no private API): a build by its
registry entry's `follow_ready` (experiments/harness/builds.py: kappa, every streaming
query's checkpoint has its metadata; lambda, `WORKDIR/lambda/follow.pid`; dstream, its first
batch has run); the pass-throughs once their checkpoint has its metadata.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from experiments.harness.faults import kill_group
from experiments.harness.measure import MeasuredCommand, Measurement, Sample, python_command, wait_for
from shared.catalogue import QUERY_NAMES
from shared.commit_log import commit_log_path, read_commits

READY_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 600.0
HANDOFF_LINE = re.compile(r"^\[(\d+):(\d\d)\] lambda: batch views of master v(\d+) serve now \(handoff (\d+)\)", re.M)


@dataclass(frozen=True)
class Follower:
    name: str
    command: Callable[[Path, Path, str, str | None], list[str]]  # (landing, workdir, interval, master)
    ready: Callable[[Path, Path], bool]  # (workdir, landing)
    queries: Callable[[Path], tuple[str, ...]]  # the queries its commit log covers, per landing
    notes: str = ""
    reports_handoffs: bool = False  # its log announces Lambda-style handoffs


def _lab_follow(build: str, *extra: str) -> Callable[[Path, Path, str, str | None], list[str]]:
    def command(landing: Path, workdir: Path, interval: str, master: str | None) -> list[str]:
        return python_command(
            "-m",
            "experiments.cli",
            "run",
            build,
            "--follow",
            "--input",
            str(landing),
            "--workdir",
            str(workdir),
            "--interval",
            interval,
            *extra,
            *(["--master", master] if master else []),
        )

    return command


def replay_command(live_input: Path, landing: Path, replay_dir: Path, *schedule: str) -> list[str]:
    """`lab replay` of `live_input` into `landing` in a process of its own, its log in
    `replay_dir`; `schedule`: its rate options (none: as fast as it can)."""
    return python_command(
        "-m",
        "experiments.cli",
        "--quiet",
        "replay",
        "--to",
        "landing",
        "--input",
        str(live_input),
        "--landing",
        str(landing),
        "--log",
        str(replay_dir),
        *schedule,
    )


def _catalogue_queries(landing: Path) -> tuple[str, ...]:
    from shared.inputs import inspect_input

    missing = inspect_input(landing, require_sales=False).not_applicable()
    return tuple(q for q in QUERY_NAMES if q not in missing)


def followers(options: Mapping[str, Sequence[str]] | None = None) -> dict[str, Follower]:
    """Every build that follows (the registry's) and the two floors; `options`: more `lab run`
    arguments for a build (Lambda's `--batch-every`, a drain's `--max-files-per-trigger`)."""
    from experiments.harness.builds import BUILDS
    from experiments.harness.floors import BUILD as PASSTHROUGH
    from experiments.harness.floors import DELTA_BUILD as PASSTHROUGH_DELTA

    options = options or {}

    def notes(build) -> str:
        extra = options.get(build.name, ())
        return "; ".join(part for part in (build.follow_notes(), " ".join(extra)) if part)

    return {
        **{
            build.name: Follower(
                build.name,
                _lab_follow(build.name, *options.get(build.name, ())),
                build.follow_ready,
                _catalogue_queries,
                notes=notes(build),
                reports_handoffs=build.reports_handoffs,
            )
            for build in BUILDS.values()
            if build.follows and build.follow_ready
        },
        PASSTHROUGH: _passthrough(
            PASSTHROUGH, "no computation: the landing directory read by Spark's file source, one commit-log row a batch"
        ),
        PASSTHROUGH_DELTA: _passthrough(
            PASSTHROUGH_DELTA,
            "no computation: the pass-through, each batch's raw lines "
            "appended to a Delta table (idempotent) before its row",
            "--delta",
        ),
    }


def _passthrough(name: str, notes: str, *extra: str) -> Follower:
    """A floor (experiments/harness/floors.py): ready once its query has started."""
    from experiments.harness.builds import checkpoint_started
    from experiments.harness.floors import QUERY

    return Follower(
        name,
        lambda landing, workdir, interval, master: python_command(
            "-m",
            "experiments.harness.floors",
            "--input",
            str(landing),
            "--workdir",
            str(workdir),
            "--interval",
            interval,
            *extra,
            *(["--master", master] if master else []),
        ),
        lambda workdir, _landing: checkpoint_started(workdir / name / "checkpoint"),
        lambda _landing: (QUERY,),
        notes=notes,
    )


@dataclass
class FollowRun:
    build: str
    workdir: Path
    landing: Path
    replay_dir: Path
    queries: tuple[str, ...]
    started_epoch_s: float = 0.0  # wall clock when the follower was started
    measurement: Measurement | None = None  # the process that ended the run (after a crash: the restarted one)
    measured: Measurement | None = None  # the first process up to the end of the measured passes
    problem: str = ""  # why the run did not cover the whole replay, if it did not
    handoffs: list[tuple[float, int]] = field(default_factory=list)  # lambda: (approximate epoch s, master version)
    replay_dirs: list[Path] = field(default_factory=list)  # one per pass replayed (the first: replay_dir)
    warmup_replay_dir: Path | None = None  # the warm-up pass's replay, when it ran
    probe_replay_dir: Path | None = None  # the probe pass's replay, when it ran
    last_replay_dir: Path | None = None  # the LastPass's replay, when it ran
    killed_at: float | None = None  # epoch s of the LastPass's SIGKILL
    restarted_at: float | None = None  # epoch s the same command started again
    series: list[Sample] = field(default_factory=list)  # the first process's samples (series_every_s)

    @property
    def cost(self) -> Measurement | None:
        """The follow process over its start and the measured passes (a last pass, a crash and
        the stop are no part of it), with the exit code that ended the run."""
        if self.measured is None or self.measurement is None:
            return self.measurement
        return replace(self.measured, exit_code=self.measurement.exit_code)

    @property
    def restart_log(self) -> Path:
        return self.workdir / "run-restart.log"

    @property
    def final_log(self) -> Path:
        """The output of the process that wrote the results export."""
        return self.restart_log if self.restarted_at is not None else self.log

    @property
    def commit_log(self) -> Path:
        return commit_log_path(self.workdir, self.build)

    @property
    def log(self) -> Path:
        return self.workdir / "run.log"

    @property
    def ok(self) -> bool:
        return not self.problem and self.measurement is not None and self.measurement.exit_code == 0


def empty_landing(input_dir: Path, landing: Path, *, streamed_shipments: bool = True) -> Path:
    """A landing directory holding the input's catalogue and its first shipments, in place
    before the stream starts (the replay lands the other shipments files with their sales
    files); every shipments file without `streamed_shipments` (land_reference_data)."""
    from experiments.inputs.replay import land_reference_data

    landing.mkdir(parents=True)
    land_reference_data(input_dir, landing, streamed_shipments=streamed_shipments)
    return landing


def covered_by_all(commit_log: Path, queries: Iterable[str], last_seq: int) -> bool:
    """Does every query have a commit whose max_seq reaches last_seq?"""
    highest: dict[str, int] = {}
    for commit in read_commits(commit_log):
        highest[commit.query] = max(highest.get(commit.query, -1), commit.max_seq)
    return all(highest.get(q, -1) >= last_seq for q in queries)


def lambda_handoffs(log_text: str, started_epoch_s: float) -> list[tuple[float, int]]:
    """(epoch s, master version) of each handoff Lambda announced in its output. Its
    progress lines carry whole seconds since the process started, so these are +-1 s."""
    return [
        (started_epoch_s + int(m.group(1)) * 60 + int(m.group(2)), int(m.group(3)))
        for m in HANDOFF_LINE.finditer(log_text)
    ]


@dataclass(frozen=True)
class Pass:
    """One replay of a live run: the live input's files `files` (first, end) at the rate
    steps `rate_steps` ((rate, lines), ...), on an open-loop schedule of its own."""

    files: tuple[int, int] | None
    rate_steps: tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class LastPass:
    """A pass after the measured ones (in no latency figure, nor in the process's cost):
    with `kill_after_s`, SIGKILL to the follower's process group that long after the pass's
    first file landed, and the same command started again at once."""

    replay: Pass
    kill_after_s: float | None = None


def run_follow(
    follower: Follower,
    live_input: Path,
    workdir: Path,
    *,
    rate: float | None = None,
    rate_steps: Sequence[tuple[float, int]] | None = None,
    step_gap_s: float = 0.0,
    warmup: Pass | None = None,
    passes: Sequence[Pass] = (),
    probe_pass: Pass | None = None,
    last_pass: LastPass | None = None,
    interval: str = "1 second",
    master: str | None = None,
    drain_timeout_s: float = 300.0,
    stage: Callable[[str], None] = lambda message: None,
    series_every_s: float | None = None,
) -> FollowRun:
    """One live run (see the module doc). Never raises for a follower that fails or falls
    behind: the FollowRun says what happened (`problem`), and what was measured stays.

    `passes`: several replays of consecutive slices of the input, one after the other in
    the same follow process; before each pass after the first, the harness waits until the
    build's commits cover the pass before (at most `drain_timeout_s`), so no pass starts
    with the backlog of another. `warmup`: a pass before all of them, replayed and waited
    for like them, in no figure (its replay is `warmup_replay_dir`, not in `replay_dirs`).
    Without it, one replay of the whole input at `rate` or `rate_steps`. `probe_pass`: one
    more after those, replayed and waited for like them, in no figure of theirs (nor in the
    process's cost). `last_pass`: one more after those (see LastPass), once they are all
    committed. `series_every_s`: the follow process's memory and CPU sampled that often
    (`FollowRun.series`)."""
    workdir = Path(workdir).resolve()
    landing = empty_landing(Path(live_input), workdir / "landing")
    run = FollowRun(follower.name, workdir, landing, workdir / "replay", follower.queries(landing))
    command = follower.command(landing, workdir, interval, master)
    process = MeasuredCommand(command, run.log, series_every=series_every_s)
    run.series = process.series
    processes = [process]
    run.started_epoch_s = time.time()
    process.start()
    exited = lambda: None if process.running else f"{follower.name} exited early (see {run.log})"
    plan = list(passes) or [Pass(None, tuple(rate_steps or ()))]
    try:
        stage(f"{follower.name}: starting to follow {landing}")
        wait_for(
            lambda: follower.ready(workdir, landing), READY_TIMEOUT_S, f"{follower.name} did not start", abort=exited
        )
        if warmup is not None:
            run.warmup_replay_dir = workdir / "replay-warmup"
            _replay(
                live_input,
                landing,
                run.warmup_replay_dir,
                warmup,
                None,
                step_gap_s,
                1,
                1,
                follower.name,
                lambda message: stage(message.replace("replaying", "warming up: replaying", 1)),
            )
            # the warm-up carries the build's first micro-batches (planning, tables, compilation): it
            # may take as long as a start does, not a pass's drain time
            _await_commits(
                run,
                run.warmup_replay_dir,
                READY_TIMEOUT_S,
                exited,
                stage,
                "warm-up replayed",
                " before pass 1",
                f"{follower.name}'s commits did not cover the warm-up within {READY_TIMEOUT_S:g} s, so no pass was run",
            )
        for number, one in enumerate(plan, start=1):
            replay_dir = run.replay_dir if number == 1 else workdir / f"replay-pass{number}"
            _replay(live_input, landing, replay_dir, one, rate, step_gap_s, len(plan), number, follower.name, stage)
            run.replay_dirs.append(replay_dir)
            # every pass is committed before the next one starts, the last one before the stop
            last = number == len(plan)
            _await_commits(
                run,
                replay_dir,
                drain_timeout_s,
                exited,
                stage,
                ("replay done" if last and not (probe_pass or last_pass) else f"pass {number} replayed"),
                "" if last else f" before pass {number + 1}",
                f"{follower.name}'s commits did not cover the whole replay"
                if last
                else f"{follower.name}'s commits did not cover pass {number} within {drain_timeout_s:g} s, "
                f"so passes {number + 1}-{len(plan)} were not run",
            )
        run.measured = process.so_far()
        if probe_pass is not None:
            replay_dir = workdir / "replay-probe"
            _replay(live_input, landing, replay_dir, probe_pass, None, step_gap_s, 1, 1, follower.name, stage)
            run.probe_replay_dir = replay_dir
            _await_commits(
                run,
                replay_dir,
                drain_timeout_s,
                exited,
                stage,
                "probe replayed",
                "",
                f"{follower.name}'s commits did not cover the probe pass within {drain_timeout_s:g} s",
            )
        if last_pass is not None:
            _last_pass(run, follower, processes, command, last_pass, live_input, drain_timeout_s, stage)
    except (RuntimeError, TimeoutError) as error:
        run.problem = str(error)
        stage(f"{follower.name}: {run.problem}")
    process = processes[-1]  # after a crash, the restarted one
    process.signal_group(signal.SIGTERM)  # stops between micro-batches, then exports
    try:
        run.measurement = process.wait(timeout=STOP_TIMEOUT_S)
    except TimeoutError as error:
        run.problem = f"{run.problem}; {error}" if run.problem else str(error)
    if follower.reports_handoffs and run.log.exists():
        run.handoffs = lambda_handoffs(run.log.read_text(encoding="utf-8", errors="replace"), run.started_epoch_s)
    return run


def _last_pass(
    run: FollowRun,
    follower: Follower,
    processes: list[MeasuredCommand],
    command: list[str],
    last: LastPass,
    live_input: Path,
    drain_timeout_s: float,
    stage: Callable[[str], None],
) -> None:
    """Replay `last` (in a thread: the kill lands while it emits); with a kill, SIGKILL to the
    process group and the same command again at once (appended to `processes`); then the
    wait until the commits cover the pass."""
    from shared.inputs import inspect_input

    landed = lambda: len(inspect_input(run.landing, require_sales=False).sales_files)
    before = landed()
    replay_dir = run.workdir / "replay-last"
    failed: list[str] = []

    def replay() -> None:
        try:
            _replay(
                live_input,
                run.landing,
                replay_dir,
                last.replay,
                rate=None,
                step_gap_s=0.0,
                passes=1,
                number=1,
                name=follower.name,
                stage=stage,
            )
        except RuntimeError as error:
            failed.append(str(error))

    def exited() -> str | None:
        return None if processes[-1].running else f"{follower.name} exited early (see {processes[-1].log_path})"

    feeder = threading.Thread(target=replay, daemon=True)
    feeder.start()
    if last.kill_after_s is not None:
        wait_for(
            lambda: landed() > before or not feeder.is_alive(),
            READY_TIMEOUT_S,
            "the last pass's first file never landed",
            abort=exited,
        )
        if not failed:
            time.sleep(max(0.0, last.kill_after_s))
            kill_group(processes[-1].pgid)
            run.killed_at = time.time()
            processes[-1].wait(timeout=STOP_TIMEOUT_S)
            processes.append(MeasuredCommand(command, run.restart_log))
            run.restarted_at = time.time()
            processes[-1].start()
            stage(
                f"{follower.name}: SIGKILL to its process group {last.kill_after_s:g} s after the last pass's "
                "first file landed; started again"
            )
    feeder.join()
    if failed:
        raise RuntimeError(failed[0])
    run.last_replay_dir = replay_dir
    _await_commits(
        run,
        replay_dir,
        drain_timeout_s,
        exited,
        lambda message: None,
        "",
        "",
        f"{follower.name}'s commits did not cover the last pass",
    )


def _await_commits(
    run: FollowRun,
    replay_dir: Path,
    timeout_s: float,
    abort: Callable[[], str | None],
    stage: Callable[[str], None],
    done: str,
    then: str,
    failure: str,
) -> None:
    """Wait until every query's commits cover the last line the replay in `replay_dir` emitted
    (at most `timeout_s`, raising TimeoutError with `failure`), saying so with `stage`."""
    from experiments.harness.latency import read_emitted_units

    last_seq = read_emitted_units(replay_dir)[-1].last_seq
    stage(f"{run.build}: {done}; waiting until every query's commits cover line {last_seq:,}{then}")
    wait_for(lambda: covered_by_all(run.commit_log, run.queries, last_seq), timeout_s, failure, abort=abort)


def _replay(
    live_input: Path,
    landing: Path,
    replay_dir: Path,
    one: Pass,
    rate: float | None,
    step_gap_s: float,
    passes: int,
    number: int,
    name: str,
    stage: Callable[[str], None],
) -> None:
    """`lab replay` of one pass in a process of its own; raises RuntimeError when it fails."""
    steps = one.rate_steps
    schedule = (
        ["--rate-steps", ",".join(f"{r:g}:{n}" for r, n in steps), "--step-gap", f"{step_gap_s:g}"]
        if steps
        else (["--rate", f"{rate:g}"] if rate else [])
    ) + (["--files", f"{one.files[0]}:{one.files[1]}"] if one.files else [])
    stage(
        f"{name}: replaying {live_input.name} into it"
        + (f" (pass {number} of {passes})" if passes > 1 else "")
        + " ("
        + (", ".join(f"{n:,} lines at {r:g}/s" for r, n in steps) if steps else f"{rate or 'max'} lines/s")
        + ")"
    )
    replay = subprocess.run(
        replay_command(live_input, landing, replay_dir, *schedule),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = landing.parent / f"{replay_dir.name}.log"
    log.write_text(replay.stdout, encoding="utf-8")
    if replay.returncode != 0:
        raise RuntimeError(f"the replay failed (exit {replay.returncode}), see {log}")
