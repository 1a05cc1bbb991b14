"""The driver: check the request, skip finished days, run the rest, record failures, summarise.

Everything a user can get wrong (dates, variables, an unreadable source) is found by
:func:`conus404.run.preflight.check_request` before any day is downloaded, and answered with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from conus404.config import data_folder
from conus404.config import settings as settings_mod
from conus404.config.data_folder import qc_dir
from conus404.config.settings import Settings
from conus404.core import disk_space
from conus404.core.exceptions import (
    ConfigurationError,
)
from conus404.core.processes import exit_on_sigterm
from conus404.launch.executors import open_executor
from conus404.outputs import daily_file, verified_files
from conus404.outputs.series import zarr_table
from conus404.run import prefetch
from conus404.run.ledgers import FailureEntry, Ledger, now_iso
from conus404.run.preflight import check_request, ensure_writable
from conus404.run.run_options import RunOptions, build_parser, run_options, setup_logging
from conus404.run.scheduler import AssetSigner, DayOutcome, DayScheduler, Progress

log = logging.getLogger("conus404.driver")


EXIT_DRIVER_FAILED = 70  # EX_SOFTWARE: the run could not go on (the retry pass still runs, the run fails)
EXIT_DISK_FULL = 73  # EX_CANTCREAT: the data folder's disk is full; no retry pass (it would fail the same way)


def prepare_run(args: argparse.Namespace, log_name: str, force: bool = False) -> RunOptions:
    """Check the run options, make sure the log folder is writable, and start logging to ``log_name``."""
    options = run_options(args, force=force)
    ensure_writable(options.log_dir, "log folder")
    setup_logging(options.log_dir / log_name)
    return options


def log_series_plan(settings: Settings) -> None:
    """What the run's series are made of (from the weights the preflight cached)."""
    from conus404.outputs.series import weights as series_weights

    targets = series_weights.cached(settings.series, settings.outputs.data_dir, settings.request.bbox) or []
    for target in targets:
        cells = len(np.unique(target.weights.row.astype(np.int64) * 100_000 + target.weights.col))
        log.info("%s series of %s: %d %s(s) over %d cell(s); tables in %s", target.kind, target.path,
                 target.weights.count, target.kind, cells, target.folder(settings.outputs.data_dir))
    window = series_weights.read_window(settings.request.bbox, targets)
    if window is not None:
        log.info("reading%s the grid window %s (%d x %d cells) that covers them", "" if settings.series.series_only else
                 " and keeping", window, *window.shape)


def verified_on_disk(settings: Settings) -> Callable[[dt.date], bool]:
    """A check that a day's daily file exists and verifies: by its record in .verified.jsonl when
    the file is unchanged since it was verified, else in full (data checksum included), after
    which it is recorded (:mod:`conus404.outputs.verified_files`).

    Run in the driver's one thread: the HDF5 library under netCDF4 is not thread-safe.
    """
    from conus404.day.plan import output_names, region_text
    from conus404.outputs.remote_output import RemoteOutput
    from conus404.outputs.series import weights as series_weights

    names, box = output_names(settings.request), region_text(settings)
    series_made = None
    if settings.series.wanted:
        targets = series_weights.cached(settings.series, settings.outputs.data_dir, settings.request.bbox)
        series_made = zarr_table.days_done(settings.outputs.data_dir, names, targets, settings.request.day_boundary)
    if settings.series.series_only:
        return series_made
    remote = RemoteOutput.of(settings.outputs)
    records = None
    if remote is None:
        records = verified_files.VerifiedFiles(daily_file.daily_dir(settings.outputs.data_dir))
        records.compact()

    def check(day: dt.date) -> bool:
        if series_made is not None and not series_made(day):
            return False
        if remote is not None:
            return remote.published(day, names, box)
        path = daily_file.daily_path(settings.outputs.data_dir, day)
        if records.unchanged(path, names, box, settings.request.output_units):
            return True
        if path.exists() and daily_file.verify(path, day, names, box, settings.request.output_units) is None:
            held, units = daily_file.fields_and_units(path)
            verified_files.remember(path, held or names, box, units=units)  # what it holds: perhaps more
            return True
        return False

    return check


def failure_entry(settings: Settings, outcome: DayOutcome, attempts: int = 1) -> FailureEntry:
    return FailureEntry(
        variables=list(settings.request.variables), error_class=outcome.error_class or "permanent",
        message=outcome.message, exit_code=outcome.exit_code, attempts=attempts,
        log=outcome.log_path, last_attempt=now_iso(),
    )


def write_run_outputs(settings: Settings) -> None:
    """What is made from the finished days at a run's end (the driver's, then the retry pass's):
    the polygon/point tables, the roll-ups, the Zarr store. A full disk stops each with one line."""
    done = verified_on_disk(settings) if settings.outputs.rollups or settings.outputs.output_zarr else None  # one check for both
    for what, write in (("the series tables", _series_tables), ("the roll-ups", _rollups), ("the Zarr store", _zarr_store)):
        try:
            write(settings, done)
        except OSError as exc:
            if not disk_space.is_disk_full(exc, settings.outputs.data_dir):
                raise
            log.error("cannot write %s: %s", what, disk_space.describe(settings.outputs.data_dir))


def _series_tables(settings: Settings, done) -> None:
    if not settings.series.wanted:
        return
    from conus404.day.plan import output_names
    from conus404.outputs.series import tables as series_tables
    from conus404.outputs.series import weights as series_weights

    targets = series_weights.cached(settings.series, settings.outputs.data_dir, settings.request.bbox)
    if targets is None:
        log.warning("the series tables were not written: the polygon/point weights are not cached (no day ran)")
        return
    series_tables.write_tables(settings.request, settings.outputs.data_dir, settings.access.description, targets,
                               output_names(settings.request))


def _rollups(settings: Settings, done) -> None:
    if not settings.outputs.rollups:
        return
    from conus404.day.plan import output_names
    from conus404.outputs import rollups
    from conus404.outputs.series import weights as series_weights

    if settings.series.series_only:  # the series are the run's output: they are rolled up
        targets = series_weights.cached(settings.series, settings.outputs.data_dir, settings.request.bbox) or []
        rollups.write_series_rollups(settings.request, settings.outputs, settings.access.description, targets,
                                     output_names(settings.request))
    else:
        rollups.write_rollups(settings.request, settings.outputs, output_names(settings.request), done)


def _zarr_store(settings: Settings, done) -> None:
    if not settings.outputs.output_zarr:
        return
    from conus404.day.plan import output_names
    from conus404.outputs.zarr_output import ZarrOutput

    ZarrOutput.of(settings.outputs).write(settings.request, settings.outputs.data_dir, output_names(settings.request), done)


def summary_lines(title: str, total: int, outcomes: dict[dt.date, DayOutcome], quarantined: int = 0,
                  wall_s: float | None = None, every_failure: bool = True, qc_dir: Path | None = None) -> list[str]:
    """The end-of-run table; with ``every_failure`` False only the first failures (for the terminal)."""
    from conus404.run import run_report

    published = sum(o.status == "published" for o in outcomes.values())
    skipped = sum(o.status == "skipped" for o in outcomes.values())
    failed = sorted((o for o in outcomes.values() if o.status == "failed"), key=lambda o: o.day)
    lines = [
        f"summary: {title}",
        f"  days in range   {total:6d}",
        f"  already valid   {skipped:6d}",
        f"  published       {published:6d}" + (f"  ({flagged} flagged by the QC, published unchanged: see "
                                                   f"{qc_dir or 'the QC reports'})"
                                                   if (flagged := sum(o.flagged for o in outcomes.values())) else ""),
        f"  failed          {len(failed):6d}  (transient {sum(o.error_class == 'transient' for o in failed)}, "
        f"permanent {sum(o.error_class not in ('transient', 'disk_full') for o in failed)}"
        + (f", disk full {full})" if (full := sum(o.error_class == "disk_full" for o in failed)) else ")"),
        f"  quarantined     {quarantined:6d}" + ("  (files that did not verify, kept in daily/quarantine/)" if quarantined else ""),
    ]
    if wall_s is not None:
        lines.append(f"  wall time       {dt.timedelta(seconds=round(wall_s))!s:>6}")
    if every_failure:
        lines += [f"    {o.day}  {o.error_class:9s}  {o.message}  (log: {o.log_path})" for o in failed]
    else:
        lines += run_report.failure_lines([(str(o.day), o.error_class or "", o.message) for o in failed])
    return lines


def _quarantined(settings: Settings) -> set[str]:
    folder = daily_file.daily_dir(settings.outputs.data_dir) / "quarantine"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verdict = _verdict_channel(args.verdict_fd)
    try:
        options = prepare_run(args, "driver_main_run.log", force=args.force)
    except ConfigurationError as exc:
        verdict.send({"refused": str(exc)})
        print(f"driver.py: {exc}", file=sys.stderr)
        return 2
    exit_on_sigterm("driver")
    prefetcher, accepted = None, False
    try:
        settings = settings_mod.load(args)
        close_unused_launch_template(settings)
        prefetcher = prefetch.Prefetcher.start(settings, args.force)  # first: it signs and spools the metadata meanwhile
        own_argv = sys.argv[1:] if argv is None else argv
        signed = prefetcher.signed_asset() if prefetcher is not None else None
        checked, signer = check_request(settings, own_argv, replace_different=args.force or args.replace_different,
                                        signed=signed)
        for warning in checked.warnings:
            log.warning("%s", warning)
        verdict.send({"warnings": checked.warnings})  # a Dask cluster that cannot start is the run's failure, in its log
        accepted = True
        executor = open_executor(settings.execution)
    except Exception as exc:  # a request that cannot be checked is refused as one that fails its check
        if accepted and not isinstance(exc, ConfigurationError):
            raise  # the request was accepted: what failed after is the run's own failure
        if prefetcher is not None:
            from conus404.sources.chunk_cache import cache_root

            prefetcher.abandon(cache_root(settings.outputs.data_dir))
        if isinstance(exc, ConfigurationError):
            log.error("usage error: %s", exc)
            verdict.send({"refused": str(exc)})
        else:
            log.exception("the check of the request failed")
            verdict.send({"refused": f"the request could not be checked: {type(exc).__name__}: {exc} "
                                     f"(the details are in {options.log_dir / 'driver_main_run.log'})"})
        return 2
    try:
        return run(settings, signer, options, executor, prefetcher, checked.unavailable)
    except Exception as exc:  # a fault of the driver itself (e.g. its disk): never mistaken for a finished run
        if disk_space.is_disk_full(exc, settings.outputs.data_dir):
            log.error("stopped: %s; free space there and rerun the same command", disk_space.describe(settings.outputs.data_dir))
            return EXIT_DISK_FULL
        log.exception("the driver failed")
        return EXIT_DRIVER_FAILED
    finally:
        if prefetcher is not None:
            prefetcher.stop()
        executor.close()


class _VerdictChannel:
    """Where run_pipeline.sh waits for the check's outcome: one JSON line, then the end of the pipe."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def send(self, message: dict) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.write(fd, (json.dumps(message) + "\n").encode())
        except OSError:
            pass  # the launcher is gone (e.g. interrupted): the run goes on or stops as it would
        finally:
            os.close(fd)


def _verdict_channel(fd: int | None) -> _VerdictChannel:
    if fd is not None:
        try:
            os.fstat(fd)
        except OSError:
            print(f"driver.py: --verdict-fd {fd} is not an open file descriptor", file=sys.stderr)
            sys.exit(2)
    return _VerdictChannel(fd)


def close_unused_launch_template(settings: Settings) -> None:
    """src/driver.py starts the launch template before knowing the settings; a run whose config.py
    asks for cold launches or the Dask executor (whose workers have their own) does not keep it."""
    from conus404.launch.executors import uses_launch_template

    if not uses_launch_template(settings.execution):
        from conus404.launch.launch_template import close_shared_template

        close_shared_template()


def run(settings: Settings, signer: AssetSigner, options: RunOptions, executor=None,
        prefetcher: prefetch.Prefetcher | None = None, unavailable: dict[str, str] | None = None) -> int:
    """Run the range's days; those in ``unavailable`` (day -> why the source cannot make it) are recorded
    as permanent failures without running."""
    unavailable = unavailable or {}
    all_days = settings.request.days
    days = [day for day in all_days if day.isoformat() not in unavailable]
    title = f"{settings.request.start_date}..{settings.request.end_date} ({len(all_days)} days), variables {','.join(settings.request.variables)}"
    log.info("driver (pid %d): %s; %d at once (%s executor); source %s; data in %s", os.getpid(), title,
             settings.execution.max_processes, settings.execution.executor, settings.access.source, settings.outputs.data_dir)
    stale = daily_file.remove_stale_temporaries(daily_file.daily_dir(settings.outputs.data_dir))
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    ledger = Ledger(settings.outputs.data_dir / "failed_jobs.json")
    if settings.series.wanted:
        log_series_plan(settings)
    log.info("%d day(s) to run%s%s", len(days), "" if options.force else "; days whose files verify are skipped",
             f"; {len(unavailable)} the source cannot make are recorded as failed" if unavailable else "")

    def record(outcome: DayOutcome) -> None:
        key = outcome.day.isoformat()
        try:
            if outcome.status == "failed":
                ledger.record(key, failure_entry(settings, outcome))
            else:
                ledger.clear(key)
        except OSError as exc:
            if not disk_space.is_disk_full(exc, settings.outputs.data_dir):
                raise
            # the ledger on disk is still the last whole one (atomic writes); the summary has the day
            log.error("cannot update %s: %s", ledger.path, disk_space.describe(settings.outputs.data_dir))

    not_run = {}
    for day in all_days:
        if day.isoformat() in unavailable:
            not_run[day] = DayOutcome(day, "failed", "permanent", f"MissingDataError: {unavailable[day.isoformat()]} "
                                      "(not run)")
            record(not_run[day])
    check = None if options.force else verified_on_disk(settings)
    started, kept_aside = time.monotonic(), _quarantined(settings)
    scheduler = DayScheduler(settings, signer, options, record, Progress(total=len(days)), check, executor, prefetcher)
    outcomes = {**scheduler.run(days), **not_run}
    write_run_outputs(settings)
    left = data_folder.remove_temporaries(settings.outputs.data_dir)  # of days stopped mid-write (a timeout)
    if left:
        log.info("removed %d temporary file(s) of stopped writers", len(left))
    quarantined, wall_s = len(_quarantined(settings) - kept_aside), time.monotonic() - started
    lines = summary_lines(title, len(all_days), outcomes, quarantined, wall_s, qc_dir=qc_dir(settings.outputs.data_dir))
    short = summary_lines(title, len(all_days), outcomes, quarantined, wall_s, every_failure=False,
                          qc_dir=qc_dir(settings.outputs.data_dir))
    if scheduler.disk_full:
        stop = (f"stopped: {disk_space.describe(settings.outputs.data_dir)}; {len(scheduler.not_started)} day(s) not "
                "started. Free space there and rerun the same command: it resumes where this run stopped")
        lines.append(stop)
        short.append(stop)
    for line in lines:
        log.info(line)
    from conus404.run import run_report

    run_report.save(options.log_dir, run_report.DRIVER_SUMMARY, short)
    if scheduler.disk_full:
        return EXIT_DISK_FULL
    return 1 if any(o.status == "failed" for o in outcomes.values()) else 0
