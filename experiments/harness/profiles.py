"""The `lab experiments` profiles: how big, how many repeats, which rates.

Sizes are chosen for a 2-core machine: every measured process starts its own JVM (15-40 s
of the figures on this machine, the same for builds and baselines), so the drains are kept
small enough that the repeats fit and large enough that processing shows. The live step
replays one input as a stepped load, one rate after another with a quiet gap between
them (experiments/inputs/schedule.py `OpenLoopSchedule`). One follow process per build
measures every rate `repeats` times: each repeat is a pass of the rates over new files,
replayed once the build has committed the pass before (a JVM start is no part of
event-to-result latency, and one process instead of three saves a minute per build and
repeat). The drains' repeats are separate processes: their figure includes the start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from experiments.harness.builds import ARCHITECTURES, FOLLOWING_BUILDS, REPROCESSING_BUILDS

BASELINES = ("spark_batch", "duckdb")
DRAIN_SYSTEMS = (*BASELINES, *ARCHITECTURES)  # the order each repeat runs them in
# The floors the builds' live figures are read against (experiments/harness/floors.py):
# Spark's file source with no work, and the same committing each micro-batch to Delta.
FLOORS = ("passthrough", "passthrough_delta")
LIVE_BUILDS = (*FLOORS, *FOLLOWING_BUILDS)
STEPS = ("drains", "latency", "throughput", "reprocessing", "recovery", "late", "code_size", "soak")
# what a profile runs unless `--steps` says otherwise: every step but the half-hour soak (its own profile)
DEFAULT_STEPS = tuple(step for step in STEPS if step != "soak")
# The builds each step can measure (the `--builds` option picks among them).
STEP_BUILDS = {
    "throughput": LIVE_BUILDS,
    "reprocessing": REPROCESSING_BUILDS,
    "recovery": FOLLOWING_BUILDS,
    "late": ARCHITECTURES,
    "code_size": ARCHITECTURES,
    "soak": FOLLOWING_BUILDS,
}


# The search's probes land at most this many files a second: at thousands of lines a second,
# 50-line files would measure the file source's listing and the replayer, not the build.
UNITS_PER_SECOND = 4
# The knee is found when the highest bounded rate and the lowest unbounded one are this close.
KNEE_RATIO = 1.5
DOUBLINGS_PER_RUN = 3  # the search's doubling runs: a ramp at 2x, 4x and 8x the highest rate judged so far


@dataclass(frozen=True)
class Profile:
    name: str
    drain_rows: int  # generated order-line records of the drain input
    repeats: int
    rates: tuple[float, ...]  # lines per second, one step each, in this order
    step_seconds: float  # how long each rate step emits
    file_lines: int  # generated lines per landed file (one unit)
    # silence between steps, so a backlog can drain; 0 in quick and standard: after a quiet gap
    # Kappa's pipeline refills (its first units are visible after one batch, the next ones wait
    # for the batches in flight), an upward trend in the judged units that is no backlog
    step_gap_s: float = 5.0
    warmup_s: float = 3.0  # units due in the first seconds of each step are left out of its figures
    # every live run (latency, throughput probes) starts with a warm-up step this long at half its
    # lowest rate, in no figure: a build's first micro-batches (query planning, table creation,
    # JIT) come after it says it is ready, and they are not what a rate costs
    start_warmup_s: float = 10.0
    interval: str = "1 second"  # processing-time trigger of kappa, lambda and the floors (dstream: 4 s batches)
    lambda_batch_every: str = "20 seconds"
    drain_timeout_s: float = 120.0  # after the replay, how long a build may take to commit the last unit
    seed: int = 7
    description: str = ""
    # sustainable throughput (experiments/harness/throughput_step.py): a ramp of doubling rates
    # from search_start_lps up to search_max_lps, each search_step_seconds long, in one follow
    # run; then search_bisections runs of one rate each, halfway between the last bounded rate
    # and the first unbounded one
    search_start_lps: float = 100.0
    search_max_lps: float = 800.0  # the first ramp's top; the search doubles on past it (search_limit_lps)
    search_step_seconds: float = 10.0
    search_bisections: int = 0  # at most this many bisections, until the bracket is within KNEE_RATIO
    # while every rate judged was bounded, doubling runs (DOUBLINGS_PER_RUN rates each) up to this rate
    search_limit_lps: float = 51_200.0
    search_drain_timeout_s: float = 30.0  # after a probe's replay: an overloaded rate need not drain
    # ...and when the latency step runs too, the ramp above its rates is one more pass of its follow
    # run of each architecture, once (after the measured passes, before the recovery replay): the
    # build is warm, and no JVM start or warm-up step of its own is paid (the pass-through, which
    # commits every second, is judged on the latency rates). A step must span several of a
    # build's commits to be judged (live_figures.MIN_COMMITS): the builds commit every 3-5 s here
    search_on_live: bool = False
    # reprocessing (reprocess_step.py): city_revenue_v1 -> city_revenue at these input sizes
    reprocess_rows: tuple[int, ...] = (2_000, 8_000)
    # the cost model (cost_step.py, cost_model.py): the drains step drains every system once more
    # at each of these sizes and fits every size as wall = fixed + per_line x lines (the largest at
    # least 100x the drains' size, so the fit sees processing and not only start-up)
    cost_rows: tuple[int, ...] = ()
    # the latency step's follow run of a build (its whole live input, live_rows) stands for the
    # largest of those sizes when it ran in the same run folder: no first run to repeat
    reprocess_on_live: bool = False
    # recovery (recovery_step.py): a follow run fed at recovery_rate_lps for recovery_seconds,
    # SIGKILLed at a random moment in the middle part of the replay, restarted
    recovery_rate_lps: float = 100.0
    recovery_seconds: float = 30.0
    # ...and when the latency step runs too, that replay is the last pass of its follow run of
    # each build (after the measured passes, in no figure of theirs), killed there: the build
    # is warm and processing when the kill lands, and no follow process of its own is started
    recovery_on_live: bool = False
    # late data (late_step.py): a drain input with this share of lines beyond the watermark,
    # one file a micro-batch so the watermark moves between them
    late_rows: int = 2_000
    late_fraction: float = 0.05
    late_files: int = 8
    # the steps after the latency one run this many times (they cost a JVM or more per build
    # and figure; see docs/measurements.md's profile table for what fits in the time)
    other_repeats: int = 1
    steps: tuple[str, ...] = DEFAULT_STEPS  # the steps `lab experiments --profile NAME` runs by default
    # the builds of the steps after latency unless `--builds` says otherwise (None: every live build)
    builds: tuple[str, ...] | None = None
    # the soak (soak_step.py): each build follows one replay at soak_share of its sustainable
    # throughput (soak_fallback_lps without one) for soak_seconds; figures per soak_window_s,
    # memory, CPU and Delta files sampled every soak_sample_s
    soak_seconds: float = 1800.0
    soak_window_s: float = 300.0
    soak_sample_s: float = 10.0
    soak_share: float = 0.5
    soak_fallback_lps: float = 50.0

    def whole_files(self, rate: float, seconds: float, file_lines: int | None = None) -> int:
        """Files of `file_lines` (default the profile's) for `seconds` at `rate` (at least two)."""
        return max(2, round(rate * seconds / (file_lines or self.file_lines)))

    def file_lines_at(self, rate: float) -> int:
        """Lines per landed file (unit) of a search probe at `rate`: the profile's, or more
        once that would land more than UNITS_PER_SECOND files a second (a unit is a file;
        latency counts from each unit's intended time, whatever its size)."""
        return max(self.file_lines, round(rate / UNITS_PER_SECOND))

    def step_lines(self) -> list[int]:
        """Lines of each rate step: a whole number of files, at least two."""
        return [self.whole_files(rate, self.step_seconds) * self.file_lines for rate in self.rates]

    def probe_rates(self) -> list[float]:
        """The live probe pass's rates (search_on_live): the search's ramp above the latency
        step's rates with a rate 1.5x each of its rates between them, so that a knee between
        the latency rates and the ramp's top is bracketed within KNEE_RATIO in this one pass."""
        ramp = search_ramp(self)
        ladder = sorted({*ramp, *(1.5 * rate for rate in ramp[:-1])})
        return [rate for rate in ladder if rate > max(self.rates)]

    def probe_lines(self) -> list[int]:
        """Lines of each step of the live probe pass."""
        return [self.whole_files(rate, self.search_step_seconds) * self.file_lines for rate in self.probe_rates()]

    def warmup_lines(self, lowest_rate: float) -> int:
        """Lines of the warm-up step before rates starting at `lowest_rate` (whole files, at least two)."""
        return max(2, round(lowest_rate / 2 * self.start_warmup_s / self.file_lines)) * self.file_lines

    @property
    def recovery_lines(self) -> int:
        """Lines of the recovery replay: recovery_seconds at recovery_rate_lps, whole files, at least four."""
        return max(4, round(self.recovery_rate_lps * self.recovery_seconds / self.file_lines)) * self.file_lines

    @property
    def live_rows(self) -> int:
        """Lines of the latency step's input: its warm-up step, then every rate step, once per
        repeat (each repeat is a pass of the rates in the same follow process)."""
        return self.warmup_lines(min(self.rates)) + self.repeats * sum(self.step_lines())

    def live_input_rows(self, recovery_on_live: bool, search_on_live: bool = False) -> int:
        """The latency step's input: `live_rows`, then the throughput search's probe pass when it
        runs in the latency step's follow runs, then the recovery replay when the recovery step's
        kill lands in them."""
        return (
            self.live_rows
            + (sum(self.probe_lines()) if search_on_live else 0)
            + (self.recovery_lines if recovery_on_live else 0)
        )

    def as_json(self) -> dict:
        return {
            **asdict(self),
            "live_rows": self.live_rows,
            "step_lines": self.step_lines(),
            "recovery_lines": self.recovery_lines,
            "probe_lines": self.probe_lines(),
            "search_ramp": search_ramp(self),
        }


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "quick",
            drain_rows=500,
            cost_rows=(5_000,),
            repeats=1,
            rates=(50.0, 100.0, 200.0),
            step_seconds=4,
            file_lines=50,
            step_gap_s=0,
            warmup_s=1,
            start_warmup_s=4.0,
            drain_timeout_s=60.0,
            lambda_batch_every="15 seconds",
            search_start_lps=100.0,
            search_max_lps=400.0,
            search_step_seconds=4.0,
            search_bisections=0,
            search_drain_timeout_s=20.0,
            search_on_live=True,
            reprocess_rows=(500, 2_000),
            recovery_rate_lps=50.0,
            recovery_seconds=12.0,
            recovery_on_live=True,
            late_rows=600,
            late_files=4,
            late_fraction=0.1,
            soak_seconds=40.0,  # `--steps soak` on the quick profile: a smoke run of the step
            soak_window_s=10.0,
            soak_sample_s=2.0,
            description="small inputs, one repeat, every step once (a smoke run: `make test-e2e` runs it)",
        ),
        Profile(
            "standard",
            drain_rows=2_000,
            cost_rows=(20_000, 200_000),
            repeats=3,
            rates=(100.0, 200.0),
            step_seconds=16,
            file_lines=50,
            step_gap_s=0.0,
            warmup_s=1,
            start_warmup_s=4.0,
            lambda_batch_every="60 seconds",
            search_start_lps=50.0,
            search_max_lps=400.0,
            search_step_seconds=20.0,
            search_bisections=3,
            search_limit_lps=1_600.0,
            search_on_live=True,
            reprocess_rows=(2_000, 8_000),
            reprocess_on_live=True,
            recovery_rate_lps=100.0,
            recovery_seconds=8.0,
            recovery_on_live=True,
            late_rows=2_000,
            late_files=3,
            description="the default of `make experiments`: drains three times, three passes of the rates "
            "(latency and the knee) with their spread; reprocessing at two sizes, recovery and late "
            "data once",
        ),
        Profile(
            "full",
            drain_rows=200_000,
            cost_rows=(2_000_000, 10_000_000),
            repeats=5,
            rates=(100.0, 250.0, 500.0, 1000.0, 2000.0),
            step_seconds=30,
            file_lines=250,
            warmup_s=5,
            drain_timeout_s=300,
            lambda_batch_every="30 seconds",
            search_start_lps=250.0,
            search_max_lps=8000.0,
            search_step_seconds=30.0,
            search_bisections=3,
            reprocess_rows=(20_000, 100_000, 400_000),
            recovery_rate_lps=1000.0,
            recovery_seconds=60.0,
            late_rows=50_000,
            late_files=20,
            other_repeats=3,
            description="larger inputs, five repeats, five rates, the rate search in depth",
        ),
    )
}


PROFILES["soak"] = replace(
    PROFILES["standard"],
    name="soak",
    steps=("throughput", "soak"),
    builds=ARCHITECTURES,
    other_repeats=1,
    search_bisections=1,  # the soak runs at half the knee: a bracket within 1.5x is enough (2x: 1 bisection)
    # a knee, not the standard profile's cap: half of "at least 1,600" is a soak at a guess
    search_limit_lps=12_800.0,
    description="half an hour per build at half its sustainable throughput (found first by the throughput "
    "step): latency, memory, CPU and Delta files per 5-minute window, the export against the oracle",
)


def search_ramp(profile: Profile) -> list[float]:
    """The doubling rates of the throughput search's first run, up to its bound."""
    rates, rate = [], profile.search_start_lps
    while rate <= profile.search_max_lps:
        rates.append(rate)
        rate *= 2
    return rates


def bench_profile(rows: int, repeats: int, seed: int) -> Profile:
    """`lab bench`'s profile: the drain step alone, at the size and repeats it is given (0 rows:
    the user's own input)."""
    return replace(
        PROFILES["standard"],
        name="bench",
        drain_rows=rows,
        cost_rows=(),
        repeats=repeats,
        seed=seed,
        description=f"lab bench: every system's drain of {f'{rows:,} generated rows' if rows else 'the given input'}, "
        f"{repeats} repeat(s)",
    )
