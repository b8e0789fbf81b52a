"""What the live tests of every build share: a landing directory to follow, a follow run
stopped by SIGTERM to its process group, and the checks that its commit log makes latency
readable. (A plain module, not a conftest: tests import it by name.)"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LAB = [sys.executable, "-m", "experiments.cli", "--quiet"]
JAVA_STACK_FRAME = re.compile(r"^\s+at [\w.$]+\(", re.MULTILINE)


def empty_landing(input_dir: Path, landing: Path, *, streamed_shipments: bool = True) -> Path:
    """A landing directory with the input's catalogue, first shipments and manifest, and no
    sales file yet: what a replay starts from (every shipments file without
    `streamed_shipments`: a Kafka run's reference folder, or an oracle's input)."""
    from experiments.harness.follow import empty_landing as harness_empty_landing

    harness_empty_landing(input_dir, landing, streamed_shipments=streamed_shipments)
    shutil.copy(input_dir / "_manifest.json", landing / "_manifest.json")
    return landing


def follow_until(
    build: str,
    landing: Path,
    workdir: Path,
    *,
    started: Callable[[], bool],
    feed: Callable[[], None],
    caught_up: Callable[[], bool],
    extra: Sequence[str] = (),
    timeout: float = 600,
) -> tuple[str, str]:
    """`lab run BUILD --follow` on `landing`: once `started()`, `feed()` lands the input;
    once `caught_up()`, SIGTERM to the whole group (as a service manager stops it). Returns
    (stdout, stderr) of a run that must end with exit 0 and print no stack trace."""
    process = subprocess.Popen(
        LAB + ["run", build, "--follow", *extra, "--input", str(landing), "--workdir", str(workdir)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        for condition, then in ((started, feed), (caught_up, lambda: None)):
            while not condition():
                assert process.poll() is None, process.stderr.read()[-3000:]
                assert time.monotonic() < deadline, f"{build} --follow: timed out waiting"
                time.sleep(0.5)
            then()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "Traceback" not in err and not JAVA_STACK_FRAME.search(err), err[-3000:]  # a clean stop is quiet
    return out, err


def commits_cover(workdir: Path, build: str, queries: Sequence[str], last_seq: int) -> Callable[[], bool]:
    """A `caught_up` condition: every query's newest commit in the build's commit log
    includes input up to `last_seq`."""
    from shared.commit_log import commit_log_path, read_commits

    def covered() -> bool:
        newest = {c.query: c.max_seq for c in read_commits(commit_log_path(workdir, build))}
        return all(newest.get(q, -1) >= last_seq for q in queries)

    return covered


def assert_latency_readable(replay_log: Path, workdir: Path, build: str, queries: Sequence[str]) -> None:
    """Every unit the replayer emitted is in a commit of every query, after its emission."""
    from experiments.harness.latency import read_emitted_units, read_latencies
    from shared.commit_log import commit_log_path, read_commits

    commits = read_commits(commit_log_path(workdir, build))
    assert {c.query for c in commits} == set(queries)
    for query in queries:  # highest sequence non-decreasing, per query
        seqs = [c.max_seq for c in commits if c.query == query]
        assert seqs == sorted(seqs), query
    units = read_emitted_units(replay_log)
    latencies = [row for row in read_latencies(replay_log, commit_log_path(workdir, build))]
    assert len(latencies) == len(units) * len(queries)  # one first commit per unit and query
    assert all(row.visible_at is not None and row.latency_s > 0 for row in latencies), latencies
    last = max(units, key=lambda u: u.last_seq).last_seq
    assert all(max(c.max_seq for c in commits if c.query == q) == last for q in queries)


def step_until(follower, condition: Callable[[], bool], what: str, timeout: float = 300.0) -> None:
    """Drive a LambdaFollower in this process (its `step`, as `lab run lambda --follow` does)
    until `condition` holds; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        follower.step()
        assert time.monotonic() < deadline, what
        time.sleep(0.2)
