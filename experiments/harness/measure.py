"""Measuring a command run in its own process: wall time, CPU seconds and peak resident
memory of its whole process tree (the Python driver, its JVM, Python workers), sampled with
psutil. Memory counts each page once (`tree_memory`): a JVM by its RSS, any other process by
its PSS (a forked Python worker's RSS counts again the pages it shares with the daemon it was
forked from; PSS splits them between the two), and a JVM's child between fork and exec (the
same name and address space size: the JVM starts every subprocess that way) not at all, since
its pages are the JVM's (counted by RSS, such a child once doubled a JVM's memory for one
sample). `lab bench` and `lab experiments` measure every system this one way.

Also here: `python_command` (a command run by this very interpreter) and `wait_for` (poll a
condition with a deadline and an abort reason), which every measured step uses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.2
# After the measured process exits, its JVM and workers get this long to go too (their CPU
# still counts); what is left is killed, so the next measurement starts on a quiet machine.
TAIL_SECONDS = 15.0


# ---------------------------------------------------------------------------------------
# Measuring a command: wall time, CPU seconds and peak RSS of its whole process tree
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    wall_s: float  # start to the exit of the command's own process
    cpu_s: float  # user + system over every process seen in its tree
    peak_rss_mb: float  # the tree's highest memory at one sample (MiB; tree_memory)
    exit_code: int | None  # None: measured while it was still running (MeasuredCommand.so_far)
    processes: int  # how many distinct processes were seen


@dataclass(frozen=True)
class Reading:
    """One process's memory at one sample."""

    pid: int
    ppid: int
    name: str
    rss: int
    vms: int
    pss: int | None  # read for the processes that are not JVMs


JVM_NAME = "java"


def tree_memory(readings: list[Reading]) -> int:
    """The bytes a process tree holds, each page once (see the module doc)."""
    by_pid = {r.pid: r for r in readings}
    total = 0
    for r in readings:
        parent = by_pid.get(r.ppid)
        if parent is not None and parent.name == r.name == JVM_NAME and parent.vms == r.vms:
            continue  # a JVM's child between fork and exec: its parent's pages (PSS splits the others')
        total += r.rss if r.pss is None else r.pss
    return total


@dataclass(frozen=True)
class Sample:
    """The process tree at one moment: its memory (`tree_memory`), CPU seconds so far."""

    at_epoch_s: float
    rss_mb: float
    cpu_s: float


class MeasuredCommand:
    """Runs a command in its own session (so its process group can be signalled) with
    output to `log_path`, and polls its process tree every `interval` seconds.

    `start()`, then `wait()` returns the Measurement; in between, `signal_group` and
    `running` let a caller drive a long-running command (the live phase). With `series_every`
    (seconds), `series` keeps a Sample that often (the soak step's memory and CPU over time)."""

    def __init__(
        self,
        command: list[str],
        log_path: str | os.PathLike,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        interval: float = SAMPLE_SECONDS,
        series_every: float | None = None,
    ):
        self.command, self.log_path, self.env, self.cwd, self.interval = command, Path(log_path), env, cwd, interval
        self.series_every = series_every
        self.series: list[Sample] = []
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> last user+system
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._peak_rss = 0
        self._exited = threading.Event()
        self._ended_at: float | None = None

    def start(self) -> MeasuredCommand:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._started_at = time.monotonic()
        self.popen = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
            cwd=self.cwd,
            start_new_session=True,
        )
        self.pgid = self.popen.pid  # a new session: the process leads its own group
        try:
            self._root = psutil.Process(self.popen.pid)
            self._procs[(self._root.pid, self._root.create_time())] = self._root
        except psutil.Error:
            self._root = None
        threading.Thread(target=self._await_exit, daemon=True).start()
        self._sampler = threading.Thread(target=self._sample_until_exit, daemon=True)
        self._sampler.start()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return not self._exited.is_set()

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float | None = None) -> Measurement:
        """Wait for the command to exit (SIGKILL to its group after `timeout` seconds, then
        TimeoutError), let its remaining processes go, and return what was measured."""
        if not self._exited.wait(timeout):
            self.signal_group(signal.SIGKILL)
            self._exited.wait(30)
            self._finish()
            raise TimeoutError(
                f"{' '.join(self.command[:6])} ... did not finish within {timeout:.0f} s "
                f"(killed; its output is in {self.log_path})"
            )
        return self._finish()

    def so_far(self) -> Measurement:
        """What the running command has cost up to its latest sample (exit_code None)."""
        return Measurement(
            wall_s=round(time.monotonic() - self._started_at, 3),
            cpu_s=round(sum(list(self._cpu.values())), 3),
            peak_rss_mb=round(self._peak_rss / 2**20, 1),
            exit_code=None,
            processes=len(self._cpu),
        )

    def _finish(self) -> Measurement:
        self._sampler.join()
        exit_code = self.popen.wait()  # reaps it (the sampler read its last CPU times as a zombie)
        self._log.close()
        return Measurement(
            wall_s=round((self._ended_at or time.monotonic()) - self._started_at, 3),
            cpu_s=round(sum(self._cpu.values()), 3),
            peak_rss_mb=round(self._peak_rss / 2**20, 1),
            exit_code=exit_code,
            processes=len(self._cpu),
        )

    def _await_exit(self) -> None:
        """Notes the moment the process exits without reaping it, so its CPU times can
        still be read (a zombie keeps them) before `wait` reaps it."""
        try:
            os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        self._ended_at = time.monotonic()
        self._exited.set()

    def _tree(self) -> list[psutil.Process]:
        if self._root is not None:
            try:
                for child in self._root.children(recursive=True):
                    key = (child.pid, child.create_time())
                    self._procs.setdefault(key, child)
            except psutil.Error:
                pass
        return list(self._procs.values())

    def _sample(self) -> int:
        """One reading of every known process; returns how many are still alive."""
        readings: list[Reading] = []
        for process in self._tree():
            key = (process.pid, process.create_time())
            try:
                # A process that exited keeps its last reading. Its pid may be in use again
                # (pid_max is 32,768 here and a JVM's threads draw ids from the same range):
                # read then, it is another process, or a JVM thread that shows its own CPU
                # and its whole process's RSS. psutil tells them apart by their start time.
                if not process.is_running():
                    continue
                with process.oneshot():
                    times = process.cpu_times()
                    self._cpu[key] = times.user + times.system
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue
                    memory, name = process.memory_info(), process.name()
                    pss = None if name == JVM_NAME else process.memory_full_info().pss
                    readings.append(Reading(process.pid, process.ppid(), name, memory.rss, memory.vms, pss))
            except psutil.Error:  # gone since the last reading: its last CPU times stay counted
                continue
        total_rss, alive = tree_memory(readings), len(readings)
        self._peak_rss = max(self._peak_rss, total_rss)
        now = time.time()
        if alive and self.series_every and (not self.series or now - self.series[-1].at_epoch_s >= self.series_every):
            self.series.append(Sample(round(now, 3), round(total_rss / 2**20, 1), round(sum(self._cpu.values()), 3)))
        return alive

    def _sample_until_exit(self) -> None:
        while not self._exited.wait(self.interval):
            self._sample()
        self._sample()  # the command's own process is a zombie now: its final CPU times
        deadline = time.monotonic() + TAIL_SECONDS
        while time.monotonic() < deadline:  # its JVM and workers exit on their own shortly
            if self._sample() == 0:
                return
            time.sleep(self.interval)
        self.signal_group(signal.SIGKILL)


def measure_command(
    command: list[str],
    log_path: str | os.PathLike,
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Measurement:
    """Run `command` to its end and measure it (see MeasuredCommand)."""
    return MeasuredCommand(command, log_path, env=env).start().wait(timeout)


def python_command(*args: str) -> list[str]:
    """A command run by this very interpreter (the venv's): `lab ...` is `-m experiments.cli`."""
    return [sys.executable, *args]


def wait_for(
    condition: Callable[[], bool],
    deadline_s: float,
    what: str,
    interval: float = 0.25,
    abort: Callable[[], str | None] = lambda: None,
) -> None:
    """Poll `condition` until it holds; TimeoutError after `deadline_s`, RuntimeError as
    soon as `abort()` names a reason."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        reason = abort()
        if reason:
            raise RuntimeError(f"{what}: {reason}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(interval)
