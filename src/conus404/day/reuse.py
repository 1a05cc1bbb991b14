"""What of an earlier attempt at a day can stand, so that the day is not read again: a daily file
that verifies (uploaded now if its upload failed), a copy already committed at OUTPUT_URL, series
that verify, or series made from a verified daily file without a download. A daily file that does
not verify is moved to quarantine/ and the day is made again.

Each answer is ``(status, output, message)`` for the day's result, or None: the day is to be made.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from conus404.config.parts import Settings
from conus404.day.plan import output_names, region_text
from conus404.outputs import daily_file
from conus404.outputs.remote_output import RemoteCopy, RemoteOutput
from conus404.outputs.series import days as series_days
from conus404.outputs.series import weights as series_weights
from conus404.outputs.series import zarr_table

log = logging.getLogger("conus404.worker")
Reused = tuple[str, str, str]  # status, output, message


def earlier_attempt(day: dt.date, settings: Settings, final: Path, remote: RemoteOutput | None) -> Reused | None:
    """The day's result if an earlier attempt's outputs can stand (None: make the day)."""
    if settings.series.wanted:
        done = _series_finished_or_made_from_file(settings, day, final, remote is None)
        if done is not None:
            return done
    if settings.series.series_only:
        return None
    return _daily_file_reused(day, settings, final, remote)


def _daily_file_reused(day: dt.date, settings: Settings, final: Path, remote: RemoteOutput | None) -> Reused | None:
    """With series asked for, a day reaching here lacks them: it is made again."""
    names, region = output_names(settings.request), region_text(settings)
    if remote is not None and remote.published(day, names, region):
        if not settings.series.wanted:
            log.info("%s already published at %s: skipping (--force redoes it)", final.name, remote.url)
            return "skipped", remote.url_of(day), ""
    if not final.exists():
        return None
    problem = daily_file.verify(final, day, names, region, settings.request.output_units)
    if problem is None and settings.series.wanted:
        return None
    if problem is None and remote is None:
        log.info("%s already published and verified: skipping (--force redoes it)", final.name)
        return "skipped", str(final), ""
    if problem is None:  # made earlier, its upload failed: upload it now
        url = RemoteCopy(remote, final).send(day, region)
        return "published", url, "uploaded the verified file left by an earlier attempt"
    moved = daily_file.quarantine(final)
    log.warning("%s did not verify (%s): moved to %s and redoing the day", final.name, problem, moved)
    return None


def _series_finished_or_made_from_file(settings: Settings, day: dt.date, final: Path, local: bool) -> Reused | None:
    """When the day's series verify (and its daily file, unless --series-only), or its verified daily
    file is here to make the series from."""
    names, data_dir = output_names(settings.request), settings.outputs.data_dir
    series_only = settings.series.series_only
    targets = series_weights.cached(settings.series, data_dir, settings.request.bbox)  # read once: check and series
    done = zarr_table.days_done(data_dir, names, targets, settings.request.day_boundary)
    grid_ok = series_only or (local and final.exists() and daily_file.verify(
        final, day, names, region_text(settings), settings.request.output_units) is None)
    if not grid_ok:
        return None
    if done(day):
        series_days.log.info("the series of %s are already made and verified: skipping (--force redoes them)", day)
        return "skipped", str(final) if not series_only else "", ""
    if series_only or targets is None:
        return None
    series_days.publish_day(data_dir, targets, day, series_days.from_daily_file(final, names),
                            series_days.file_window(final))
    series_days.log.info("made the series of %s from its verified daily file %s (no download)", day, final.name)
    return "published", str(final), "series made from the existing daily file"
