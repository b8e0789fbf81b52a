"""The killer every crash test uses (experiments/harness/crash.py), on a tiny stand-in for
a build: a seeded plan, kills that land, and a run-until-stopped command ended by SIGTERM."""

import sys
import textwrap

from experiments.harness.crash import EXPORT, FIRST_BATCH, START, crash_and_recover, kill_plan

# Prints its stage, then "works" until SIGTERM; on SIGTERM it "exports" and exits 0.
FOLLOWER = textwrap.dedent("""
    import signal, sys, time, pathlib
    out = pathlib.Path(sys.argv[1])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    runs = out / "runs"
    runs.write_text(runs.read_text() + "x" if runs.exists() else "x")
    print("processing", file=sys.stderr, flush=True)
    while not stop:
        time.sleep(0.02)
    (out / "export").write_text("done")
    time.sleep(0.3)
""")


def test_the_plan_is_seeded_and_puts_kills_in_the_first_batch_and_the_export():
    plan = kill_plan(5, 10, 30.0)
    assert plan == kill_plan(5, 10, 30.0) and plan != kill_plan(6, 10, 30.0)
    assert [k.anchor for k in plan].count(FIRST_BATCH) == 2 and plan[-1].anchor == EXPORT
    assert all(0 <= k.delay_seconds <= 30 for k in plan if k.anchor == START)


def test_a_follow_command_is_killed_then_stopped_by_sigterm_once_done(tmp_path):
    script = tmp_path / "follower.py"
    script.write_text(FOLLOWER)
    out = tmp_path / "out"
    out.mkdir()
    report = crash_and_recover(
        [sys.executable, str(script), str(out)],
        seed=3,
        kills=3,
        span_seconds=0.5,
        anchors={FIRST_BATCH: lambda text: "processing" in text, EXPORT: lambda text: (out / "export").exists()},
        done=lambda text: "processing" in text and len((out / "runs").read_text()) >= 3,
        before_each=lambda: (out / "export").unlink(missing_ok=True),
        poll_seconds=0.02,
        timeout_seconds=60,
    )
    assert len(report.landed) >= 3 and report.landed_at(EXPORT) == 1  # the export kill lands after SIGTERM
    assert report.final_exit_code == 0 and (out / "export").read_text() == "done"
