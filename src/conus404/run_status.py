"""``./run_pipeline.sh --status``: how far the active run is (its own range, data folder and log),
or, with no run active, the range the configuration and flags describe.

The launcher records each run's settings (as the flags it gave the driver) in
``logs/pipeline.run.json``; the status of an active run is read with exactly those. A daily file
counts as done only when its record in ``.verified.jsonl`` still matches it (one ``stat``); a
file without one is "present, not verified" until a run checks it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from conus404 import daily_file, verified_files
from conus404 import settings as settings_mod
from conus404.atomic import atomic_write_json
from conus404.ledgers import Ledger

RUN_RECORD = "pipeline.run.json"
DRIVER_HEADER = " INFO driver (pid "  # the first line a driver logs for its run


def record_run(log_dir: Path, flags: list[str]) -> None:
    atomic_write_json(Path(log_dir) / RUN_RECORD, {"flags": flags})


def active_run_settings(log_dir: Path, parser_factory) -> settings_mod.Settings | None:
    """The settings of the run recorded in ``log_dir`` (None if there is no readable record)."""
    try:
        flags = json.loads((Path(log_dir) / RUN_RECORD).read_text())["flags"]
        args = parser_factory().parse_args(flags)
        return settings_mod.load(args)
    except (OSError, ValueError, KeyError, TypeError, SystemExit, settings_mod.ConfigurationError):
        return None


def _last_run_lines(log_path: Path) -> list[str]:
    """The lines of the last run in the driver's log (an earlier run's progress is not this run's)."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, line in enumerate(lines) if DRIVER_HEADER in line]
    return lines[starts[-1]:] if starts else []


def _day_counts(settings: settings_mod.Settings) -> tuple[list, list, list]:
    """(verified days, present but unverified days, failed days) of the range."""
    from conus404.day_fields import bbox_text, output_names
    from conus404.retry import ultimate_failures_path

    days = settings.days
    unverified: list = []
    if settings.series_only:  # no gridded files: a day is done when its series verify
        from conus404 import series

        made = series.parts_done(settings, output_names(settings))
        done = [d for d in days if made(d)]
    elif settings.output_url:
        from conus404.remote_output import RemoteOutput

        committed = RemoteOutput.of(settings).committed_names()
        done = [d for d in days if daily_file.daily_name(d) in committed]
    else:
        records = verified_files.VerifiedFiles(daily_file.daily_dir(settings.data_dir))
        names, box = output_names(settings), bbox_text(settings)
        done = []
        for day in days:
            path = daily_file.daily_path(settings.data_dir, day)
            if records.unchanged(path, names, box, settings.output_units):
                done.append(day)
            elif path.exists():
                unverified.append(day)
    failed_keys = set(Ledger(settings.data_dir / "failed_jobs.json").entries)
    try:
        failed_keys |= set(json.loads(ultimate_failures_path(settings.data_dir).read_text()))
    except (OSError, ValueError):
        pass
    settled = set(done) | set(unverified)
    failed = [d for d in days if d.isoformat() in failed_keys and d not in settled]
    return done, unverified, failed


def report(settings: settings_mod.Settings, log_dir: Path, pgid: int | None, parser_factory) -> list[str]:
    lines = []
    if pgid:
        run = active_run_settings(log_dir, parser_factory)
        settings = run or settings
        lines.append(f"run: active (process group {pgid})" + ("" if run else "; its settings are not recorded, "
                                                                "so this is the configured range"))
    else:
        lines.append("run: not active; the configured range:")
    done, unverified, failed = _day_counts(settings)
    days = settings.days
    pending = len(days) - len(done) - len(unverified) - len(failed)
    where = settings.output_url or settings.data_dir
    counts = f"done {len(done)}, failed {len(failed)}, pending {pending}"
    if unverified:
        counts += f"; present, not verified {len(unverified)} (a run checks them)"
    lines.append(f"range {settings.start_date}..{settings.end_date} ({len(days)} days) in {where}: {counts}")
    last_run = _last_run_lines(log_dir / "driver_main_run.log")
    progress = [line for line in last_run if "progress:" in line]
    header = last_run[0].split(DRIVER_HEADER, 1)[1].partition("): ")[2] if last_run else ""  # "A..B (N days), ..."
    this_run = bool(pgid) or header.startswith(f"{settings.start_date}..{settings.end_date} ")
    if progress and this_run:
        lines.append(f"last progress: {progress[-1]}")
    elif progress:
        lines.append(f"last progress: (none for this range; the last run logged was {header.split(';')[0]})")
    else:
        lines.append("last progress: (none yet)")
    if failed:
        lines.append("failed days: " + ", ".join(d.isoformat() for d in failed[:10]) + (" ..." if len(failed) > 10 else ""))
    return lines


def print_report(lines: list[str]) -> int:
    """Print, and end quietly when the reader has gone (``--status | head``)."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
