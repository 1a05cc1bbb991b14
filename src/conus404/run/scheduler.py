"""Run one ``single_download.py`` process per day, a bounded number at once.

Shared by the driver and the retry pass. The scheduler hands each worker the run's signed asset
on standard input (never on its command line), re-signs before the token expires, holds back
launches while this machine's memory is short, and logs a progress line every few seconds. Where
the processes run (children of this one, or Dask tasks) is the executor's business
(:mod:`conus404.launch.executors`); each is stopped at the per-day timeout either way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conus404.config.data_folder import day_log_dir, qc_dir
from conus404.config.settings import PROJECT_ROOT, WORKER_ENVIRONMENT, Settings, worker_flags
from conus404.core import disk_space
from conus404.launch.executors import Executor, Job, SubprocessExecutor, WorkerExit, WorkerLaunch
from conus404.run.run_options import RunOptions
from conus404.sources import source

log = logging.getLogger("conus404.scheduler")
WORKER_SCRIPT = PROJECT_ROOT / "src" / "single_download.py"


@dataclass
class DayOutcome:
    day: dt.date
    status: str  # "published" | "skipped" | "failed"
    error_class: str | None = None
    message: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    log_path: str = ""
    metrics: dict = field(default_factory=dict)  # the worker's timings, peak_rss_mb, bytes_read, qc_flags

    @property
    def flagged(self) -> bool:
        """Published, with QC flags (values the model can give that a person would not expect)."""
        return self.status == "published" and bool(self.metrics.get("qc_flags"))


class AssetSigner:
    """The run's signed asset: signed once, re-signed when under half its life (at most 10 min) is left."""

    def __init__(self, settings: Settings, asset: source.SignedAsset | None = None) -> None:
        self.settings = settings
        self.asset = asset
        self.signings = 0
        self._margin_s = source.renewal_margin_s(asset)

    def renew(self) -> source.SignedAsset | None:
        """Sign again now (storage refused the current token)."""
        self.asset = None
        return self.current()

    def current(self) -> source.SignedAsset | None:
        if not self.settings.access.uses_planetary_computer:
            return None
        left = self.asset.seconds_left() if self.asset is not None else None
        if self.asset is None or (left is not None and left < self._margin_s):
            if self.asset is not None:
                log.info("the SAS token expires in %.0f s: signing again", left)
            source.refresh_token_cache()
            s = self.settings.access
            self.asset = source.sign_collection_asset(s.stac_url, s.collection, s.asset, s.sas_url, s.retry)
            self.signings += 1
            self._margin_s = source.renewal_margin_s(self.asset)
        return self.asset


def worker_argv(days: list[dt.date], settings: Settings, options: RunOptions, signed: bool) -> list[str]:
    argv = [sys.executable, str(WORKER_SCRIPT), *(day.isoformat() for day in days), *worker_flags(settings),
            "--qc-dir", str(qc_dir(settings.outputs.data_dir))]
    argv += ["--force"] if options.force else []
    argv += ["--signed-asset-stdin"] if signed else []
    return argv


def available_memory_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


@dataclass
class _Running:
    days: list[dt.date]  # run in turn by one worker process (DAYS_PER_WORKER)
    job: Job
    started: float
    log_path: Path


@dataclass
class Progress:
    total: int
    started: float = field(default_factory=time.monotonic)
    published: int = 0
    skipped: int = 0
    failed: int = 0

    def line(self, active: int, pending: int) -> str:
        elapsed_s = time.monotonic() - self.started
        worked = self.published + self.failed  # days skipped as already valid say nothing of the rate
        rate = worked / elapsed_s * 3600 if elapsed_s > 0 else 0.0
        rate_text = f"{rate:.1f} days/hour" if worked else "no day worked yet"
        if not (active + pending):
            eta_text = f"finished in {dt.timedelta(seconds=round(elapsed_s))}"
        elif rate > 0:
            eta_s = (active + pending) / rate * 3600
            eta = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=eta_s)).strftime("%Y-%m-%d %H:%MZ")
            eta_text = f"ETA {eta} (in {dt.timedelta(seconds=int(eta_s))})"
        else:
            eta_text = "ETA once a day has finished"
        done = self.published + self.skipped
        return (
            f"progress: done {done}/{self.total} (published {self.published}, skipped {self.skipped}), "
            f"failed {self.failed}, active {active}, pending {pending}, {rate_text}, {eta_text}"
        )


class DayScheduler:
    def __init__(
        self,
        settings: Settings,
        signer: AssetSigner,
        options: RunOptions,
        on_outcome: Callable[[DayOutcome], None] | None = None,
        progress: Progress | None = None,
        already_valid: Callable[[dt.date], bool] | None = None,
        executor: Executor | None = None,
        prefetcher=None,  # conus404.run.prefetch.Prefetcher: told how far the run has got, stopped at its end
    ) -> None:
        self.settings = settings
        self.prefetcher = prefetcher
        self.signer = signer
        self.options = options
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.progress = progress
        # Checked just before a day would start, so work begins at the first gap and the checks of
        # later days overlap with running workers instead of delaying the whole run.
        self.already_valid = already_valid
        self.executor: Executor = executor or SubprocessExecutor()
        self.chunk_cache = None
        self.disk_full = False  # a day found the data folder's disk full: no new day starts
        self.not_started: list[dt.date] = []
        if settings.access.chunk_cache:  # its folders only (no zarr): pruned as days finish and at the end
            from conus404.sources import chunk_cache

            self.chunk_cache = chunk_cache

    def run(self, days: list[dt.date]) -> dict[dt.date, DayOutcome]:
        progress = self.progress or Progress(total=len(days))
        pending = list(days)
        running: list[_Running] = []
        outcomes: dict[dt.date, DayOutcome] = {}
        last_progress = time.monotonic()
        memory_note = 0.0
        if self.prefetcher is not None and days:
            self.prefetcher.advance(min(days))  # the days begin: so may the prefetching
        try:
            while pending or running:
                checks_until = time.monotonic() + 1.0  # keep polling running workers while checking
                while pending and len(running) < self.settings.execution.max_processes and not self.disk_full:
                    if running and self.executor.on_this_machine and available_memory_mb() < self.options.min_available_mb:
                        if time.monotonic() - memory_note > 60:
                            log.warning("holding back new workers: %.0f MB available, below %.0f MB",
                                        available_memory_mb(), self.options.min_available_mb)
                            memory_note = time.monotonic()
                        break
                    free = self.settings.execution.max_processes - len(running)
                    batch, out_of_time = self._next_batch(pending, outcomes, progress, checks_until, free)
                    if batch:
                        try:
                            running.append(self._launch(batch))
                        except OSError as exc:  # the day's log, on the data folder's disk, cannot be opened
                            if not disk_space.is_disk_full(exc, self.settings.outputs.data_dir):
                                raise
                            for day in batch:
                                outcomes[day] = DayOutcome(day, "failed", "disk_full", f"{type(exc).__name__}: {exc}")
                                progress.failed += 1
                                self.on_outcome(outcomes[day])
                            self.disk_full = True
                            log.error("the disk of the data folder %s is full: no new day starts; the %d running "
                                      "finish", self.settings.outputs.data_dir, len(running))
                    if out_of_time:
                        break
                time.sleep(0.1)
                for job in list(running):
                    if not job.job.done():
                        continue
                    running.remove(job)
                    for outcome in self._finish(job):
                        outcomes[outcome.day] = outcome
                        if outcome.error_class == "disk_full" and not self.disk_full:
                            self.disk_full = True
                            log.error("the disk of the data folder %s is full: no new day starts; the %d running "
                                      "finish", self.settings.outputs.data_dir, len(running))
                        if outcome.status == "published":
                            progress.published += 1
                        elif outcome.status == "skipped":
                            progress.skipped += 1
                        else:
                            progress.failed += 1
                        self.on_outcome(outcome)
                    self._prune_cache(pending, running)
                if self.disk_full and pending and not running:
                    self.not_started, pending = list(pending), []
                if time.monotonic() - last_progress >= self.options.progress_interval_s:
                    log.info(progress.line(len(running), len(pending)))
                    last_progress = time.monotonic()
        finally:
            for job in running:  # interrupted: leave no orphan behind
                job.job.stop()
            if self.prefetcher is not None:  # before the cache goes: it writes into it
                log.info(self.prefetcher.stop())
            if self.chunk_cache is not None:  # the run is over: a later one fetches afresh
                self.chunk_cache.prune(self.chunk_cache.cache_root(self.settings.outputs.data_dir))
        log.info(progress.line(0, 0))
        return outcomes

    def _next_batch(self, pending: list[dt.date], outcomes: dict, progress: Progress, checks_until: float, free: int):
        """Up to DAYS_PER_WORKER pending days that need work, in order; days already valid are recorded
        as skipped on the way. Returns (days, whether the time for checks ran out)."""
        batch: list[dt.date] = []
        # Never so large that other processes would sit idle at the end of the range.
        size = min(self.settings.execution.days_per_worker, max(1, math.ceil(len(pending) / max(1, free))))
        while pending and len(batch) < size:
            day = pending.pop(0)
            if self.already_valid is not None and self.already_valid(day):
                outcome = DayOutcome(day, "skipped", message="already published and verified")
                outcomes[day] = outcome
                progress.skipped += 1
                self.on_outcome(outcome)
                if time.monotonic() > checks_until:
                    return batch, True
                continue
            batch.append(day)
        return batch, False

    def _prune_cache(self, pending: list[dt.date], running: list[_Running]) -> None:
        """Drop cached chunks that no unfinished day of this run can need any more."""
        if self.chunk_cache is None:
            return
        unfinished = [*pending, *(day for job in running for day in job.days)]
        if unfinished:
            self.chunk_cache.prune(self.chunk_cache.cache_root(self.settings.outputs.data_dir), before=min(unfinished))
            if self.prefetcher is not None:
                self.prefetcher.advance(min(unfinished))

    def _launch(self, days: list[dt.date]) -> _Running:
        asset = self.signer.current()
        name = f"{days[0]:%Y%m%d}" + (f"-{days[-1]:%Y%m%d}" if len(days) > 1 else "")
        log_path = day_log_dir(self.settings.outputs.data_dir) / f"download_{name}.log"
        which = ", ".join(day.isoformat() for day in days)
        argv = worker_argv(days, self.settings, self.options, signed=asset is not None)
        stdin_text = json.dumps(asset.to_json()) if asset is not None else None
        env = {name: os.environ[name] for name in WORKER_ENVIRONMENT if name in os.environ}
        job, where = self.executor.submit(WorkerLaunch(argv, stdin_text, log_path, self._timeout_s(days),
                                                       f"attempt for {which}", PROJECT_ROOT / "src", env,
                                                       prewarmed=self.settings.execution.launch == "prewarmed",
                                                       remote=self.settings.touches_remote_storage))
        log.info("started %s (%s)", which, where)
        return _Running(days, job, time.monotonic(), log_path)

    def _timeout_s(self, days: list[dt.date]) -> float:
        return self.options.day_timeout_s * len(days)

    def _finish(self, job: _Running) -> list[DayOutcome]:
        """One outcome per day of the job: the worker's own line where it printed one (a day's line
        comes only once that day is published or has failed), else what its exit says."""
        ended: WorkerExit = job.job.result()
        code = ended.returncode
        seconds = time.monotonic() - job.started
        results = {r.get("date"): r for r in _json_lines(ended.stdout)}
        outcomes = []
        for day in job.days:
            result = results.get(day.isoformat())
            if result is not None:
                metrics = {k: result[k] for k in ("timings", "peak_rss_mb", "bytes_read") if k in result}
                if result.get("qc_flags"):
                    metrics["qc_flags"] = result["qc_flags"]
                outcome = DayOutcome(day, result.get("status", "failed"), result.get("error_class"),
                                     result.get("message", ""), code, float(result.get("seconds", seconds)),
                                     str(job.log_path), metrics)
            elif ended.timed_out:
                outcome = DayOutcome(day, "failed", "transient", f"timed out after {self._timeout_s(job.days):g} s",
                                     code, seconds, str(job.log_path))
            elif ended.lost:
                outcome = DayOutcome(day, "failed", "transient", ended.lost, code, seconds, str(job.log_path))
            elif code is not None and code < 0:
                outcome = DayOutcome(day, "failed", "transient",
                                     f"the worker was ended by signal {-code}" + (" (out of memory?)" if code == -9 else ""),
                                     code, seconds, str(job.log_path))
            else:
                outcome = DayOutcome(day, "failed", "permanent",
                                     f"the worker exited with code {code} without a result; see {job.log_path}",
                                     code, seconds, str(job.log_path))
            level = logging.INFO if outcome.status != "failed" else logging.WARNING
            log.log(level, "%s %s%s in %.1f s%s%s", day, outcome.status, " (QC flags)" if outcome.flagged else "",
                    outcome.seconds, _metrics_note(outcome.metrics),
                    f": {outcome.error_class}: {outcome.message}" if outcome.status == "failed" else "")
            self._record_metrics(outcome)
            outcomes.append(outcome)
        return outcomes

    def _record_metrics(self, outcome: DayOutcome) -> None:
        """One JSON line per finished worker in ``day_results.jsonl``: where a run's time and memory went."""
        line = {"day": outcome.day.isoformat(), "status": outcome.status, "seconds": round(outcome.seconds, 3),
                **outcome.metrics}
        try:
            with open(self.options.log_dir / "day_results.jsonl", "a") as handle:
                handle.write(json.dumps(line, sort_keys=True) + "\n")
        except OSError as exc:  # statistics only: never fail a day over them
            log.warning("cannot append to day_results.jsonl: %s", exc)


def _metrics_note(metrics: dict) -> str:
    timings = metrics.get("timings") or {}
    parts = [f"{name} {seconds:.1f}" for name, seconds in timings.items()]
    if metrics.get("peak_rss_mb"):
        parts.append(f"peak {metrics['peak_rss_mb']:.0f} MB")
    return f" ({', '.join(parts)})" if parts else ""


def _json_lines(text: str) -> list[dict]:
    """The JSON objects a worker printed, one per line (anything else on standard output is ignored)."""
    found = []
    for line in text.strip().splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found
