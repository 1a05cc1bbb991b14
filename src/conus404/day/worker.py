"""One day end to end, in stages: plan -> read -> aggregate -> check -> write, then report.

- plan (:mod:`conus404.day.plan`): what the day makes; an earlier attempt's outputs are taken as
  they are where they verify (:mod:`conus404.day.reuse`);
- read (:mod:`conus404.day.day_reader`): the source opened on the run's window, each variable's hours;
- aggregate (:mod:`conus404.day.aggregate`): one variable at a time, so peak memory stays near one
  variable's day of records, by its class's rule (:mod:`conus404.day.aggregation`);
- check (:mod:`conus404.day.validation`): every hour and every daily field, then the day as a whole;
- write (:mod:`conus404.day.day_outputs`): each output in turn, behind one small interface
  (:class:`~conus404.outputs.day_output.DayOutput`).

Nothing is written under a final name unless every check passed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conus404.config.output_values import format_units
from conus404.config.parts import Settings
from conus404.core import subset
from conus404.core.atomic import atomic_write_json
from conus404.day import day_lock, output_units, reuse, validation
from conus404.day.aggregate import aggregate_day, provenance
from conus404.day.day_outputs import outputs_for
from conus404.day.day_reader import open_and_read_grid
from conus404.day.plan import VariablePlan, field_names, plan_variables, region_text
from conus404.outputs import daily_file
from conus404.outputs.day_output import MadeDay
from conus404.outputs.remote_output import RemoteOutput
from conus404.outputs.series import weights as series_weights

log = logging.getLogger("conus404.worker")


@dataclass
class DayResult:
    date: str
    status: str  # "published" | "skipped" | "failed"
    error_class: str | None = None  # None | "transient" | "permanent" | "usage"
    message: str = ""
    seconds: float = 0.0
    bytes_read: int = 0  # decoded bytes of the hourly records read
    output: str | None = None
    qc_report: str | None = None
    warnings: list[str] = field(default_factory=list)
    qc_flags: list[str] = field(default_factory=list)  # published, but the QC flagged these (see its report)
    timings: dict[str, float] = field(default_factory=dict)  # startup, open, read, aggregate, write, verify (s)
    peak_rss_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class OpenedDay:
    """The source opened for a day: cut to the run's window, with the series targets on it."""

    ds: Any
    description: dict[str, str]  # provenance attributes, with the box and window of a windowed run
    lat: Any
    lon: Any
    window: subset.Window | None
    targets: list  # series_weights.SeriesTarget


def run_day(
    day: dt.date,
    settings: Settings,
    open_source: Callable[[bool], tuple[Any, dict[str, str]]],  # (fresh signature?) -> (dataset, provenance)
    qc_dir: Path,
    force: bool = False,
) -> DayResult:
    """Process ``day``. Raises the pipeline's errors; the caller turns them into a result."""
    with day_lock.working_on(settings.outputs.data_dir, day):  # a lost attempt still ending is waited for
        return _run_day_alone(day, settings, open_source, qc_dir, force)


def _run_day_alone(day: dt.date, settings: Settings, open_source, qc_dir: Path, force: bool) -> DayResult:
    started = time.monotonic()
    final = daily_file.daily_path(settings.outputs.data_dir, day)
    daily_file.remove_stale_temporaries(final.parent, day)
    remote = None if settings.series.series_only else RemoteOutput.of(settings.outputs)
    if not force:
        reused = reuse.earlier_attempt(day, settings, final, remote)
        if reused is not None:
            status, output, message = reused
            return DayResult(day.isoformat(), status, output=output, seconds=time.monotonic() - started,
                             message=message)

    timings: dict[str, float] = {}
    opened = open_day(settings, open_source, timings)
    plans, warnings = plan_variables(opened.ds, settings.request)
    for warning in warnings:
        log.warning(warning)
    report = validation.QcReport(day.isoformat(), settings.checks.max_nan_fraction, settings.checks.strict_qc,
                                 grid=(opened.lat, opened.lon))
    qc_path = Path(qc_dir) / f"qc_{day:%Y%m%d}.json"
    outputs = outputs_for(settings, day, final, remote, opened.ds, opened.lat, opened.lon, opened.description,
                          plans, opened.targets)
    keeping_hours = [output for output in outputs if output.keeps_hours]

    def take_hours(plan, window, records) -> None:
        for output in keeping_hours:
            output.take_hours(plan, window, records)

    try:
        step, read_before = time.monotonic(), timings.get("read", 0.0)
        window = opened.window
        fields, bytes_read = aggregate_day(
            opened.ds, day, plans, report, take_hours if keeping_hours else None,
            reopen=lambda: open_source(True)[0].isel(window.selection if window else {}),
            timings=timings, offset_hours=settings.request.day_boundary, lat=opened.lat, lon=opened.lon,
            read_ahead=settings.access.is_remote, processes=settings.execution.max_processes,
            fill_missing_hours=settings.checks.fill_missing_hours,
        )
        timings["aggregate"] = time.monotonic() - step - (timings.get("read", 0.0) - read_before)
        report.raise_if_failed()
        fields = checked_fields(fields, report, settings, plans)
        step = time.monotonic()
        made_with = {"conus404_units": format_units(settings.request.output_units)} if settings.request.output_units else {}
        dataset = daily_file.build_dataset(day, opened.lat, opened.lon, fields,
                                           {**provenance(opened.description, plans), **made_with, **report.file_attributes()},
                                           settings.request.day_boundary, settings.outputs.cell_corners)
        timings["write"] = time.monotonic() - step
        made = MadeDay(day, fields, dataset, window, region_text(settings), timings)
        written = [where for output in outputs if (where := output.write(made)) is not None]
    except BaseException:
        atomic_write_json(qc_path, report.as_dict("failed"))
        for output in outputs:
            output.discard()
        raise
    atomic_write_json(qc_path, report.as_dict(report.status(failed=False)))
    where = written[0] if written else ""
    log.info("published %s (%d fields, %.1f MB read)", where, len(fields), bytes_read / 1e6)
    for message in report.flag_messages():
        log.warning("QC flag (published unchanged): %s", message)
    for output in outputs:
        where = output.deliver(made) or where
    return DayResult(
        day.isoformat(), "published", seconds=time.monotonic() - started, bytes_read=bytes_read,
        output=where, qc_report=str(qc_path), warnings=warnings, qc_flags=report.flag_messages(),
        timings={k: round(v, 3) for k, v in timings.items()},
    )


def open_day(settings: Settings, open_source, timings: dict[str, float]) -> OpenedDay:
    """Open the source, read its grid, and cut it to the run's window: the box's, or without a box
    the cells under the polygons and points (only they are read, and kept)."""
    step = time.monotonic()
    ds, description, lat, lon = open_and_read_grid(open_source, timings)
    data_dir, bbox = settings.outputs.data_dir, settings.request.bbox
    targets = []
    if settings.series.wanted:
        targets = (series_weights.cached(settings.series, data_dir, bbox)
                   or series_weights.prepare(settings.series, data_dir, bbox, lat, lon))
    window, box_attrs = None, {}
    if bbox is not None:
        window = subset.index_window(lat, lon, bbox)
        box_attrs = {"conus404_bbox": str(bbox), "conus404_window": str(window)}
    elif targets:
        window = series_weights.read_window(bbox, targets)
        box_attrs = {"conus404_bbox": region_text(settings), "conus404_window": str(window)}
    if window is not None:
        ds, lat, lon = ds.isel(window.selection), window.cut(lat), window.cut(lon)
    timings["open"] = time.monotonic() - step - timings.get("read", 0.0)
    return OpenedDay(ds, {**description, **box_attrs}, lat, lon, window, targets)


def checked_fields(fields: list, report: validation.QcReport, settings: Settings,
                   plans: list[VariablePlan]) -> list:
    """The fields as published: each says what the QC flagged in it and which hours were filled
    (its values are never altered), then converted to the units asked for (checked in the source's)."""
    flagged = report.flags_by_field()
    fields = [replace(f, attrs={**f.attrs, "conus404_qc_flags": flagged[f.name]}) if f.name in flagged else f
              for f in fields]
    fields = [replace(f, attrs={**f.attrs, "conus404_filled_hours": filled}) if (filled := report.filled_text(
        f.attrs.get("conus404_source_variables", "").split())) else f for f in fields]
    if settings.request.output_units:
        fields = output_units.converted_fields(fields, settings.request.output_units,
                                               {p.name: field_names(p) for p in plans})
    return fields
