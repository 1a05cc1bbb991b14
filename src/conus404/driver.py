"""The driver: check the request, skip finished days, run the rest, record failures, summarise.

Everything a user can get wrong (dates, variables, an unreadable source) is found by
:func:`conus404.preflight.preflight` before any day is downloaded, and answered with one line and exit code 2.
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

from conus404 import daily_file, data_folder, disk_space, prefetch, series, verified_files
from conus404 import settings as settings_mod
from conus404.data_folder import qc_dir
from conus404.exceptions import (
    ConfigurationError,
)
from conus404.executors import open_executor
from conus404.ledgers import FailureEntry, Ledger, now_iso
from conus404.preflight import check_request, ensure_writable
from conus404.processes import exit_on_sigterm
from conus404.scheduler import AssetSigner, DayOutcome, DayScheduler, Progress, RunOptions
from conus404.settings import Settings

log = logging.getLogger("conus404.driver")


EXIT_DRIVER_FAILED = 70  # EX_SOFTWARE: the run could not go on (the retry pass still runs, the run fails)
EXIT_DISK_FULL = 73  # EX_CANTCREAT: the data folder's disk is full; no retry pass (it would fail the same way)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("how the days are run")
    group.add_argument("--day-timeout", type=float, metavar="SECONDS", help="stop a day's worker after this long (default 3600)")
    group.add_argument("--progress-interval", type=float, metavar="SECONDS", help="seconds between progress lines (default 60)")
    group.add_argument("--min-available-mb", type=float, metavar="MB", help="hold back new workers below this free memory (default 1024)")
    group.add_argument("--log-dir", type=Path, metavar="DIR", help="where logs go (default logs/)")


def prepare_run(args: argparse.Namespace, log_name: str, force: bool = False) -> RunOptions:
    """Check the run options, make sure the log folder is writable, and start logging to ``log_name``."""
    options = run_options(args, force=force)
    ensure_writable(options.log_dir, "log folder")
    setup_logging(options.log_dir / log_name)
    return options


def run_options(args: argparse.Namespace, force: bool = False) -> RunOptions:
    for name in ("day_timeout", "progress_interval"):
        value = getattr(args, name, None)
        if value is not None and not value > 0:
            raise ConfigurationError(f"--{name.replace('_', '-')} {value:g} must be a positive number of seconds")
    if getattr(args, "min_available_mb", None) is not None and args.min_available_mb < 0:
        raise ConfigurationError(f"--min-available-mb {args.min_available_mb:g} cannot be negative")
    options = RunOptions(force=force)
    if getattr(args, "log_dir", None):
        options.log_dir = settings_mod.from_command_line(args.log_dir)
    if getattr(args, "day_timeout", None):
        options.day_timeout_s = args.day_timeout
    if getattr(args, "progress_interval", None):
        options.progress_interval_s = args.progress_interval
    if getattr(args, "min_available_mb", None) is not None:
        options.min_available_mb = args.min_available_mb
    return options


def setup_logging(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("azure", "urllib3", "aiohttp", "fsspec", "adlfs", "pystac_client", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def log_series_plan(settings: Settings) -> None:
    """What the run's series are made of (from the weights the preflight cached)."""
    from conus404 import series_weights

    targets = series_weights.cached(settings) or []
    for target in targets:
        cells = len(np.unique(target.weights.row.astype(np.int64) * 100_000 + target.weights.col))
        log.info("%s series of %s: %d %s(s) over %d cell(s); tables in %s", target.kind, target.path,
                 target.weights.count, target.kind, cells, target.folder(settings.data_dir))
    window = series_weights.read_window(settings, targets)
    if window is not None:
        log.info("reading%s the grid window %s (%d x %d cells) that covers them", "" if settings.series_only else
                 " and keeping", window, *window.shape)


def verified_on_disk(settings: Settings) -> Callable[[dt.date], bool]:
    """A check that a day's daily file exists and verifies: by its record in .verified.jsonl when
    the file is unchanged since it was verified, else in full (data checksum included), after
    which it is recorded (:mod:`conus404.verified_files`).

    Run in the driver's one thread: the HDF5 library under netCDF4 is not thread-safe.
    """
    from conus404.day_fields import bbox_text, output_names
    from conus404.remote_output import RemoteOutput

    names, box = output_names(settings), bbox_text(settings)
    series_made = series.parts_done(settings, names) if series.wanted(settings) else None
    if settings.series_only:
        return series_made
    remote = RemoteOutput.of(settings)
    records = None
    if remote is None:
        records = verified_files.VerifiedFiles(daily_file.daily_dir(settings.data_dir))
        records.compact()

    def check(day: dt.date) -> bool:
        if series_made is not None and not series_made(day):
            return False
        if remote is not None:
            return remote.published(day, names, box)
        path = daily_file.daily_path(settings.data_dir, day)
        if records.unchanged(path, names, box, settings.output_units):
            return True
        if path.exists() and daily_file.verify(path, day, names, box, settings.output_units) is None:
            held, units = daily_file.fields_and_units(path)
            verified_files.remember(path, held or names, box, units=units)  # what it holds: perhaps more
            return True
        return False

    return check


def failure_entry(settings: Settings, outcome: DayOutcome, attempts: int = 1) -> FailureEntry:
    return FailureEntry(
        variables=list(settings.variables), error_class=outcome.error_class or "permanent",
        message=outcome.message, exit_code=outcome.exit_code, attempts=attempts,
        log=outcome.log_path, last_attempt=now_iso(),
    )


def write_run_outputs(settings: Settings) -> None:
    """What is made from the finished days at a run's end (the driver's, then the retry pass's):
    the polygon/point tables, the roll-ups, the Zarr store. A full disk stops each with one line."""
    done = verified_on_disk(settings) if settings.rollups or settings.output_zarr else None  # one check for both
    for what, write in (("the series tables", _series_tables), ("the roll-ups", _rollups), ("the Zarr store", _zarr_store)):
        try:
            write(settings, done)
        except OSError as exc:
            if not disk_space.is_disk_full(exc, settings.data_dir):
                raise
            log.error("cannot write %s: %s", what, disk_space.describe(settings.data_dir))


def _series_tables(settings: Settings, done) -> None:
    if not series.wanted(settings):
        return
    from conus404 import series_tables, series_weights
    from conus404.day_fields import output_names

    targets = series_weights.cached(settings)
    if targets is None:
        log.warning("the series tables were not written: the polygon/point weights are not cached (no day ran)")
        return
    series_tables.write_tables(settings, targets, output_names(settings))


def _rollups(settings: Settings, done) -> None:
    if not settings.rollups:
        return
    from conus404 import rollups, series_weights
    from conus404.day_fields import output_names

    if settings.series_only:  # the series are the run's output: they are rolled up
        rollups.write_series_rollups(settings, series_weights.cached(settings) or [], output_names(settings))
    else:
        rollups.write_rollups(settings, output_names(settings), done)


def _zarr_store(settings: Settings, done) -> None:
    if not settings.output_zarr:
        return
    from conus404.day_fields import output_names
    from conus404.zarr_output import ZarrOutput

    ZarrOutput.of(settings).write(settings, output_names(settings), done)


def summary_lines(title: str, total: int, outcomes: dict[dt.date, DayOutcome], quarantined: int = 0,
                  wall_s: float | None = None, every_failure: bool = True, qc_dir: Path | None = None) -> list[str]:
    """The end-of-run table; with ``every_failure`` False only the first failures (for the terminal)."""
    from conus404 import run_report

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
    folder = daily_file.daily_dir(settings.data_dir) / "quarantine"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def build_parser() -> argparse.ArgumentParser:
    parser = settings_mod.ArgumentParser(
        prog="driver.py",
        description="Run one single_download.py worker per UTC day of the range, at most "
        "MAX_CONCURRENT_PROCESSES at once; record failures in data/failed_jobs.json.",
        epilog="Exit codes: 0 every day published or already valid, 1 some day failed (see "
        "data/failed_jobs.json), 2 usage or configuration error (nothing was downloaded).",
    )
    settings_mod.add_arguments(parser)
    parser.add_argument("--force", action="store_true", help="redo days whose files already verify")
    parser.add_argument("--replace-different", action="store_true",
                        help="redo the range's daily files that lack asked fields (they move to quarantine/)")
    parser.add_argument("--verdict-fd", type=int, metavar="FD",
                        help="write the check of the request (one JSON line: warnings, or why it is refused) to this "
                        "open file descriptor; run_pipeline.sh waits for it")
    add_run_arguments(parser)
    return parser


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
        executor = open_executor(settings)
    except Exception as exc:  # a request that cannot be checked is refused as one that fails its check
        if accepted and not isinstance(exc, ConfigurationError):
            raise  # the request was accepted: what failed after is the run's own failure
        if prefetcher is not None:
            from conus404.chunk_cache import cache_root

            prefetcher.abandon(cache_root(settings.data_dir))
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
        if disk_space.is_disk_full(exc, settings.data_dir):
            log.error("stopped: %s; free space there and rerun the same command", disk_space.describe(settings.data_dir))
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
    from conus404.executors import uses_launch_template

    if not uses_launch_template(settings):
        from conus404.launch_template import close_shared_template

        close_shared_template()


def run(settings: Settings, signer: AssetSigner, options: RunOptions, executor=None,
        prefetcher: prefetch.Prefetcher | None = None, unavailable: dict[str, str] | None = None) -> int:
    """Run the range's days; those in ``unavailable`` (day -> why the source cannot make it) are recorded
    as permanent failures without running."""
    unavailable = unavailable or {}
    all_days = settings.days
    days = [day for day in all_days if day.isoformat() not in unavailable]
    title = f"{settings.start_date}..{settings.end_date} ({len(all_days)} days), variables {','.join(settings.variables)}"
    log.info("driver (pid %d): %s; %d at once (%s executor); source %s; data in %s", os.getpid(), title,
             settings.max_processes, settings.executor, settings.source, settings.data_dir)
    stale = daily_file.remove_stale_temporaries(daily_file.daily_dir(settings.data_dir))
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run", len(stale))
    ledger = Ledger(settings.data_dir / "failed_jobs.json")
    if series.wanted(settings):
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
            if not disk_space.is_disk_full(exc, settings.data_dir):
                raise
            # the ledger on disk is still the last whole one (atomic writes); the summary has the day
            log.error("cannot update %s: %s", ledger.path, disk_space.describe(settings.data_dir))

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
    left = data_folder.remove_temporaries(settings.data_dir)  # of days stopped mid-write (a timeout)
    if left:
        log.info("removed %d temporary file(s) of stopped writers", len(left))
    quarantined, wall_s = len(_quarantined(settings) - kept_aside), time.monotonic() - started
    lines = summary_lines(title, len(all_days), outcomes, quarantined, wall_s, qc_dir=qc_dir(settings.data_dir))
    short = summary_lines(title, len(all_days), outcomes, quarantined, wall_s, every_failure=False,
                          qc_dir=qc_dir(settings.data_dir))
    if scheduler.disk_full:
        stop = (f"stopped: {disk_space.describe(settings.data_dir)}; {len(scheduler.not_started)} day(s) not "
                "started. Free space there and rerun the same command: it resumes where this run stopped")
        lines.append(stop)
        short.append(stop)
    for line in lines:
        log.info(line)
    from conus404 import run_report

    run_report.save(options.log_dir, run_report.DRIVER_SUMMARY, short)
    if scheduler.disk_full:
        return EXIT_DISK_FULL
    return 1 if any(o.status == "failed" for o in outcomes.values()) else 0
