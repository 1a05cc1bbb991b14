"""The retry pass: after the driver, retry transient failures in rounds; list what still fails.

Reads ``data/failed_jobs.json`` (which only the driver writes), retries the transient failures of
the range in up to ``--rounds`` rounds, waiting an exponentially growing, jittered time before
each, and writes ``ultimate_failures.json`` with the reason for every day that still failed.
Permanent failures are listed there straight away, without a retry.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

from conus404.config import setting_values
from conus404.config import settings as settings_mod
from conus404.core.atomic import atomic_write_json
from conus404.core.exceptions import ConfigurationError
from conus404.core.processes import exit_on_sigterm
from conus404.launch.executors import open_executor
from conus404.outputs import daily_file
from conus404.run.driver import failure_entry, prepare_run, verified_on_disk, write_run_outputs
from conus404.run.ledgers import Ledger
from conus404.run.run_options import add_run_arguments
from conus404.run.scheduler import AssetSigner, DayScheduler

log = logging.getLogger("conus404.retry")


def ultimate_failures_path(data_dir: Path) -> Path:
    """In the data folder it describes, beside failed_jobs.json: two data folders never share one,
    and it is always writable where the data are (the seed kept it in the data folder's parent)."""
    return Path(data_dir) / "ultimate_failures.json"


def _kept_outside(target: Path, in_range: set[str]) -> dict:
    """The days an earlier run left in ``target`` outside this run's range: this pass did not look
    at them, so they stay as they were."""
    import json

    try:
        earlier = json.loads(target.read_text())
    except (OSError, ValueError):
        return {}
    return {day: entry for day, entry in earlier.items() if day not in in_range} if isinstance(earlier, dict) else {}


def backoff_seconds(round_number: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in [0.5, 1] x min(maximum, initial x 2^(round-1))."""
    ceiling = min(maximum, initial * 2 ** (round_number - 1))
    return ceiling * rng.uniform(0.5, 1.0)


def build_parser():
    parser = settings_mod.ArgumentParser(
        prog="retry_failed.py",
        description="Retry the transient failures recorded in data/failed_jobs.json and write what "
        "still fails to ultimate_failures.json.",
        epilog="Exit codes: 0 nothing failed in the end, 1 some day is in ultimate_failures.json, 2 usage error.",
    )
    settings_mod.add_arguments(parser)
    parser.add_argument("--rounds", type=int, default=3, help="retry rounds for transient failures (default 3)")
    parser.add_argument("--backoff", type=float, default=60.0, metavar="SECONDS", help="wait before the first round (default 60)")
    parser.add_argument("--max-backoff", type=float, default=900.0, metavar="SECONDS", help="longest wait (default 900)")
    parser.add_argument("--ultimate-failures", type=Path, help="output file (default: beside the data dir)")
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = prepare_run(args, "retry_run.log")
    except ConfigurationError as exc:
        print(f"retry_failed.py: {exc}", file=sys.stderr)
        return 2
    exit_on_sigterm("retry pass")
    try:
        settings = settings_mod.load(args)
        if args.rounds < 0 or args.backoff < 0 or args.max_backoff < 0:
            raise ConfigurationError("--rounds, --backoff and --max-backoff cannot be negative")
    except ConfigurationError as exc:
        log.error("usage error: %s", exc)
        return 2
    if settings.access.chunk_cache:  # this pass checks no source: its workers must not replay an older run's metadata
        from conus404.sources import prefetch_spool
        from conus404.sources.chunk_cache import cache_root, forget_metadata

        forget_metadata(cache_root(settings.outputs.data_dir))
        prefetch_spool.clear(cache_root(settings.outputs.data_dir))  # nor read what an interrupted run's prefetcher left
    in_range = {d.isoformat() for d in settings.request.days}
    ledger = Ledger(settings.outputs.data_dir / "failed_jobs.json")
    published = verified_on_disk(settings)  # or at OUTPUT_URL
    failures = {
        day: entry for day, entry in ledger.entries.items()
        if day in in_range and not published(setting_values.parse_date(day, "day"))
    }
    ultimate = {day: entry for day, entry in failures.items() if entry.error_class != "transient"}
    to_retry = sorted(day for day, entry in failures.items() if entry.error_class == "transient")
    log.info("retry pass: %d transient failure(s) to retry, %d permanent listed without retry",
             len(to_retry), len(ultimate))
    signer = AssetSigner(settings)
    executor = None
    try:
        if to_retry and args.rounds > 0:
            executor = open_executor(settings.execution)
        ultimate = _retry_rounds(args, settings, options, signer, executor, failures, ultimate, to_retry)
    except ConfigurationError as exc:  # e.g. the Dask scheduler went away: list the failures as they are
        log.error("cannot retry: %s", exc)
        ultimate.update({day: failures[day] for day in to_retry})
    finally:
        if executor is not None:
            executor.close()
    if to_retry and args.rounds > 0:
        write_run_outputs(settings)  # with the days this pass mended
        from conus404.config.data_folder import remove_temporaries

        remove_temporaries(settings.outputs.data_dir)  # of days stopped mid-write (a timeout)
    target = args.ultimate_failures or ultimate_failures_path(settings.outputs.data_dir)
    listed = {**_kept_outside(target, in_range), **{day: asdict(e) for day, e in ultimate.items()}}
    atomic_write_json(target, dict(sorted(listed.items())))
    log.info("retry pass done: %d day(s) still failed; see %s", len(ultimate), target)
    for day, entry in sorted(ultimate.items()):
        log.info("  %s  %s  %s", day, entry.error_class, entry.message)
    from conus404.run import run_report

    if ultimate:
        report = [f"retry pass: {len(ultimate)} day(s) still failed; every reason is in {target}"]
        report += run_report.failure_lines([(day, e.error_class, e.message) for day, e in sorted(ultimate.items())])
    else:
        report = [f"retry pass: {len(to_retry)} day(s) retried; no day failed in the end"]
    run_report.save(options.log_dir, run_report.RETRY_SUMMARY, report)
    if settings.outputs.overview and settings.outputs.output_url:
        log.info("no overview: the daily files are at %s, not on this disk", settings.outputs.output_url)
    elif settings.outputs.overview:
        draw_overview(settings, options.log_dir)
    return 1 if ultimate else 0


def draw_overview(settings, log_dir: Path) -> None:
    """The run's overview image; a failure to draw it is logged, never fails the run."""
    from conus404.outputs.quick_look import render_overview

    paths = [p for p in (daily_file.daily_path(settings.outputs.data_dir, d) for d in settings.request.days) if p.exists()]
    from conus404.config.data_folder import pictures_dir

    out = pictures_dir(settings.outputs.data_dir) / f"overview_{settings.request.start_date:%Y%m%d}_{settings.request.end_date:%Y%m%d}.png"
    try:
        drawn = render_overview(paths, out, f"CONUS404 daily means over the cells, {settings.request.start_date}..{settings.request.end_date}")
    except Exception as exc:  # an image is a convenience: the data are what matter
        log.warning("could not draw the overview %s: %s: %s", out, type(exc).__name__, exc)
        return
    if drawn is None:
        log.info("no daily file to draw an overview of")
    else:
        log.info("overview of %d daily file(s): %s", len(paths), drawn)


def _retry_rounds(args, settings, options, signer, executor, failures: dict, ultimate: dict, to_retry: list[str]) -> dict:
    """Up to ``args.rounds`` rounds over the transient failures; returns every day that still failed."""
    rng = random.Random()
    for round_number in range(1, args.rounds + 1):
        if not to_retry:
            break
        wait = backoff_seconds(round_number, args.backoff, args.max_backoff, rng)
        log.info("round %d of %d: %d day(s) after %.1f s", round_number, args.rounds, len(to_retry), wait)
        time.sleep(wait)
        days = [setting_values.parse_date(d, "day") for d in to_retry]
        outcomes = DayScheduler(settings, signer, options, executor=executor).run(days)
        to_retry = []
        for day, outcome in sorted(outcomes.items()):
            key = day.isoformat()
            if outcome.status != "failed":
                failures.pop(key, None)
                continue
            entry = failure_entry(settings, outcome, attempts=failures[key].attempts + 1)
            failures[key] = entry
            if outcome.error_class == "transient":
                to_retry.append(key)
            else:
                ultimate[key] = entry
    ultimate.update({day: failures[day] for day in to_retry})
    return ultimate
