"""One UTC day end to end: plan, read, aggregate, validate, publish, report.

Variables are processed one at a time so peak memory stays near one variable's day of records.
Nothing is written under the final name unless every check passed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conus404 import (
    __version__,
    aggregation,
    daily_file,
    day_lock,
    derived,
    output_units,
    series,
    series_weights,
    source_commit,
    subset,
    validation,
    verified_files,
)
from conus404.atomic import atomic_write_json
from conus404.day_fields import bbox_text, output_names
from conus404.day_reader import (  # noqa: F401 - also worker.MAX_RESIGNS_PER_DAY
    MAX_RESIGNS_PER_DAY,
    DayReader,
    reading_order,
    refused_token_as_authentication_error,
)
from conus404.derived import DERIVED
from conus404.exceptions import AuthenticationError, ConfigurationError, MissingDataError
from conus404.remote_output import RemoteOutput
from conus404.settings import Settings
from conus404.template_warmup import reads_remote_source
from conus404.variables import (
    VariableClass,
    aggregation_rule,
    classify,
    contradicts_hint,
    counter_name,
    is_surface_field,
    staggered_dims,
    suggest,
)

log = logging.getLogger("conus404.worker")


@dataclass(frozen=True)
class VariablePlan:
    """How one requested variable becomes daily fields."""

    name: str
    var_class: VariableClass
    inputs: tuple[str, ...]  # source variables read (U10, V10 for WSPD10; AC + I_AC for buckets)
    statistics: tuple[str, ...]  # the class's own first, then extras
    attrs: dict[str, Any]
    level_dim: str | None = None  # for variables with levels (only with ALLOW_3D)


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


def upload(remote: RemoteOutput, final: Path, day: dt.date, settings: Settings) -> str:
    """Copy the published file to OUTPUT_URL and commit it there; then the local copy goes."""
    url = remote.publish(final, day, bbox_text(settings))
    final.unlink()
    log.info("uploaded to %s", url)
    return url


def plan_variables(ds, settings: Settings) -> tuple[list[VariablePlan], list[str]]:
    """Classify each requested variable; refuse unknown, 3-D and counter variables (usage errors)."""
    plans, warnings = [], []
    unknown = [v for v in settings.variables if v not in ds.data_vars and v not in DERIVED]
    if unknown:
        makeable = set(ds.data_vars) | {name for name, spec in DERIVED.items() if set(spec.inputs) <= set(ds.data_vars)}
        raise ConfigurationError(  # suggested: only what this source can give (a derived one needs its inputs)
            "; ".join(f"{v!r} is not a variable of the source{suggest(v, makeable)}" for v in unknown)
        )
    for name in settings.variables:
        if name in DERIVED:
            spec = DERIVED[name]
            missing = [v for v in spec.inputs if v not in ds.data_vars]
            if missing:
                raise ConfigurationError(f"{name} needs {', '.join(missing)}, which the source lacks")
            attrs = {"units": spec.units, "long_name": spec.long_name, "conus404_formula": spec.formula}
            var_class, inputs, level_dim = VariableClass.INSTANTANEOUS, spec.inputs, None  # hours 00Z..23Z
        else:
            var = ds[name]
            attrs = dict(var.attrs)
            if "time" not in var.dims:
                raise ConfigurationError(f"{name} has no time axis: it is a static field, not one with daily values")
            staggered = staggered_dims(tuple(var.dims))
            if staggered:  # refused before the run, with or without ALLOW_3D: not a failed day per day
                raise ConfigurationError(
                    f"{name} lies on the staggered grid ({', '.join(f'{d} {var.sizes[d]}' for d in staggered)}), not "
                    "the cells' centres the daily files hold: ask for U10, V10 (grid-relative), U10E, V10E "
                    "(earth-relative) or WSPD10 instead"
                )
            if not is_surface_field(tuple(var.dims)) and not settings.allow_3d:
                raise ConfigurationError(
                    f"{name} has dimensions {tuple(var.dims)}: one day of it is ~{_day_gib(var):.1f} GiB; "
                    "set ALLOW_3D (or --allow-3d) to download variables with levels"
                )
            var_class = classify(name, attrs)
            if var_class == VariableClass.BUCKET_COUNTER:
                raise ConfigurationError(f"{name} is a bucket reset counter, not a quantity: ask for {name[2:]} instead")
            inputs = (name,)
            level_dim = next((d for d in var.dims if d not in ("time", "south_north", "west_east")), None)
            if var_class == VariableClass.BUCKET:
                counter = counter_name(name)
                if counter not in ds.data_vars:
                    raise ConfigurationError(f"{name} resets every 1e9 J m-2 but the source has no {counter} to undo it")
                inputs = (name, counter)
        extras = settings.statistics.get(name, ())
        allowed = DERIVED[name].statistics if name in DERIVED else aggregation.allowed_statistics(var_class)
        bad = [s for s in extras if s not in allowed]
        if bad:
            kind = "derived" if name in DERIVED else var_class.value
            raise ConfigurationError(
                f"{name} is {kind}: statistic {', '.join(bad)} is not defined for it (use {', '.join(allowed)})"
            )
        default = DERIVED[name].default_statistic if name in DERIVED else aggregation.default_statistic(var_class)
        statistics = (default, *[s for s in extras if s != default])
        if name in settings.aggregation_hints:
            warning = contradicts_hint(var_class, settings.aggregation_hints[name])
            if warning:
                warnings.append(f"{name}: {warning}")
        if name in settings.output_units:
            output_units.check_convertible(name, attrs.get("units"), settings.output_units[name])
        plans.append(VariablePlan(name, var_class, inputs, statistics, attrs, level_dim))
    return plans, warnings


def field_names(plan: VariablePlan) -> list[str]:
    """The daily fields a plan makes: its own name for the class's statistic, NAME_stat for extras."""
    return [plan.name, *(f"{plan.name}_{s}" for s in plan.statistics[1:])]


def _day_gib(var) -> float:
    per_record = int(np.prod([var.sizes[d] for d in var.dims if d != "time"]))
    return per_record * var.dtype.itemsize * 24 / 2**30


def locate_hours(time_index: pd.DatetimeIndex, window: aggregation.HourWindow, what: str) -> np.ndarray:
    """Positions of the window's hours in the store's time axis; MissingDataError if any is absent."""
    wanted = pd.DatetimeIndex(window.hours)
    positions = np.flatnonzero(time_index.isin(wanted))
    found = time_index[positions]
    if found.has_duplicates:
        dupes = sorted({t.isoformat() for t in found[found.duplicated()]})
        raise MissingDataError(f"the source repeats the timestamp(s) {', '.join(dupes)} needed by {what}")
    missing = wanted.difference(found)
    if len(missing):
        end = time_index.max()
        if missing.min() > end:
            raise MissingDataError(
                f"the source ends at {end:%Y-%m-%dT%HZ}, but {what} needs records up to {window.last:%Y-%m-%dT%HZ}"
            )
        shown = ", ".join(f"{t:%Y-%m-%dT%HZ}" for t in missing[:5])
        raise MissingDataError(f"the source lacks hourly record(s) {shown} needed by {what}")
    order = pd.Index(found).get_indexer(wanted)
    return positions[order]


def open_and_read_grid(open_source: Callable[[bool], tuple[Any, dict[str, str]]], timings: dict[str, float] | None = None):
    """Open the source and read lat/lon, signing again once if the handed-over token is refused.

    lat/lon are read here, not at the end: after a re-signing mid-day the first handle's token
    may no longer be accepted. Their seconds go to ``timings["read"]`` (fetched, by the first
    days of a run: reading, not a fixed cost).
    """
    for fresh in (False, True):
        try:
            ds, description = open_source(fresh)
            reading = time.monotonic()
            with refused_token_as_authentication_error("lat/lon"):
                lat, lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
            if timings is not None:
                timings["read"] = timings.get("read", 0.0) + time.monotonic() - reading
            return ds, description, lat, lon
        except AuthenticationError:
            if fresh:
                raise
            log.warning("storage refused the token the worker was given: signing again")
    raise AssertionError("unreachable")


def _field_attrs(plan: VariablePlan, statistic: str, window: aggregation.HourWindow) -> dict[str, Any]:
    attrs = {k: plan.attrs[k] for k in ("units", "long_name", "description", "conus404_formula") if k in plan.attrs}
    spec = DERIVED.get(plan.name)
    if "long_name" in attrs or statistic != plan.statistics[0]:  # an extra statistic says which it is (T2_max)
        named = attrs.get("long_name") or attrs.get("description") or plan.name
        attrs["long_name"] = aggregation.daily_long_name(
            named, VariableClass.INSTANTANEOUS if spec is not None else plan.var_class, statistic)
    attrs["cell_methods"] = aggregation.cell_methods(statistic)
    attrs["conus404_class"] = "derived" if spec is not None else plan.var_class.value
    rule = spec.rule() if spec is not None else aggregation_rule(plan.var_class)
    attrs["conus404_rule"] = rule if statistic == plan.statistics[0] else f"the {statistic} of the hourly values"
    attrs["conus404_hour_window"] = window.describe()
    attrs["conus404_source_variables"] = " ".join(plan.inputs)
    return attrs


def aggregate_day(
    ds, day: dt.date, plans: list[VariablePlan], report: validation.QcReport, hourly_sink=None, reopen=None,
    timings: dict[str, float] | None = None, offset_hours: int = 0, lat=None, lon=None,
    read_ahead: bool = False, processes: int = 1, fill_missing_hours: int = 0,
):
    """Read, check and aggregate each variable in turn. Returns (fields, bytes read).

    Reading (one variable ahead with ``read_ahead``, signing again with ``reopen``, in an order that
    differs between the ``processes`` days running at once) is :mod:`conus404.day_reader`'s; seconds
    spent waiting for it go to ``timings``.
    """
    time_index = pd.DatetimeIndex(ds.indexes["time"])
    grid_shape = (ds.sizes["south_north"], ds.sizes["west_east"])
    daily_by_name: dict[str, np.ndarray] = {}
    bytes_read = 0
    windows = [aggregation.hour_window(plan.var_class, day, offset_hours) for plan in plans]
    positions = [locate_hours(time_index, window, f"{plan.name} of {day}") for plan, window in zip(plans, windows, strict=True)]
    # Hourly files keep the variables in the request's order; without them neighbouring days read in different orders.
    order = list(range(len(plans))) if hourly_sink is not None else reading_order(len(plans), day.toordinal(), processes)
    fill = [fill_missing_hours if plans[i].var_class == VariableClass.INSTANTANEOUS else 0 for i in order]
    reader = DayReader(ds, [(plans[i].inputs, positions[i]) for i in order], reopen, timings, read_ahead, fill)
    by_plan: dict[int, list[daily_file.DailyField]] = {}
    try:
        for index, i in enumerate(order):
            records = reader.records(index)
            by_plan[i] = []
            bytes_read += _aggregate_variable(plans[i], windows[i], records, report, by_plan[i], daily_by_name,
                                              hourly_sink, grid_shape, lat, lon)
    finally:
        reader.close()
    report.filled.update(reader.filled)
    fields = [field for i in range(len(plans)) for field in by_plan[i]]
    validation.check_dew_point(report, daily_by_name)
    return fields, bytes_read


def _aggregate_variable(plan: VariablePlan, window: aggregation.HourWindow, records: dict[str, np.ndarray],
                        report: validation.QcReport, fields: list, daily_by_name: dict, hourly_sink, grid_shape,
                        lat, lon) -> int:
    """Check and aggregate one variable's records into ``fields``; returns the bytes they hold."""
    stamps = [f"{t:%Y-%m-%dT%HZ}" for t in window.hours]
    if hourly_sink is not None:
        hourly_sink(plan, window, records)
    spec = DERIVED.get(plan.name)
    if spec is not None:
        context = derived.HourContext(lat, lon, window.hours)
        hourly = derived.hourly_values(spec, records, context)
    else:
        hourly = records[plan.name]
        validation.check_units(report, plan.name, plan.attrs.get("units"))
    validation.check_hourly(report, plan.name, hourly, grid_shape, stamps)
    counter = records.get(counter_name(plan.name)) if plan.var_class == VariableClass.BUCKET else None
    report.entry(plan.name).update({"class": plan.var_class.value, "window": window.describe()})
    for statistic, out_name in zip(plan.statistics, field_names(plan), strict=True):
        if statistic == plan.statistics[0]:
            values = (derived.daily_value(spec, hourly, records, context) if spec is not None
                      else aggregation.daily_value(plan.var_class, hourly, counter))
        else:
            values = aggregation.hourly_statistic(statistic, hourly)
        rounding = 0.0
        if plan.var_class in (VariableClass.SINCE_START, VariableClass.BUCKET):
            rounding = 2.0 * float(np.spacing(np.float32(np.nanmax(np.abs(hourly)) if hourly.size else 0.0)))
        validation.check_daily(report, out_name, plan.var_class, values, plan.name, rounding, len(window.hours))
        daily_by_name[out_name] = values
        fields.append(daily_file.DailyField(out_name, values, _field_attrs(plan, statistic, window), plan.level_dim))
    return sum(r.nbytes for r in records.values())


def provenance(description: dict[str, str], plans: list[VariablePlan]) -> dict[str, str]:
    return {
        **description,
        "history": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} created by the conus404 daily pipeline",
        "conus404_tool_version": __version__,
        "conus404_tool_commit": source_commit(),
        "conus404_created": f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}",
        "conus404_rules": "; ".join(
            f"{p.name}: {aggregation_rule(p.var_class)}" for p in plans
        ),
    }


def _reuse_existing(day: dt.date, settings: Settings, final: Path, remote: RemoteOutput | None,
                    started: float) -> DayResult | None:
    """The day's result if an earlier attempt's file can stand; a file that does not verify is moved
    to quarantine/. With series asked for, a day reaching here lacks them: it is made again."""
    if remote is not None and remote.published(day, output_names(settings), bbox_text(settings)):
        if not series.wanted(settings):
            log.info("%s already published at %s: skipping (--force redoes it)", final.name, remote.url)
            return DayResult(day.isoformat(), "skipped", output=remote.url_of(day), seconds=time.monotonic() - started)
    if not final.exists():
        return None
    problem = daily_file.verify(final, day, output_names(settings), bbox_text(settings), settings.output_units)
    if problem is None and series.wanted(settings):
        return None
    if problem is None and remote is None:
        log.info("%s already published and verified: skipping (--force redoes it)", final.name)
        return DayResult(day.isoformat(), "skipped", output=str(final), seconds=time.monotonic() - started)
    if problem is None:  # made earlier, its upload failed: upload it now
        url = upload(remote, final, day, settings)
        return DayResult(day.isoformat(), "published", output=url, seconds=time.monotonic() - started,
                         message="uploaded the verified file left by an earlier attempt")
    moved = daily_file.quarantine(final)
    log.warning("%s did not verify (%s): moved to %s and redoing the day", final.name, problem, moved)
    return None


def run_day(
    day: dt.date,
    settings: Settings,
    open_source: Callable[[bool], tuple[Any, dict[str, str]]],  # (fresh signature?) -> (dataset, provenance)
    qc_dir: Path,
    force: bool = False,
) -> DayResult:
    """Process ``day``. Raises the pipeline's errors; the caller turns them into a result."""
    with day_lock.working_on(settings.data_dir, day):  # a lost attempt still ending is waited for
        return _run_day_alone(day, settings, open_source, qc_dir, force)


def _run_day_alone(day: dt.date, settings: Settings, open_source, qc_dir: Path, force: bool) -> DayResult:
    started = time.monotonic()
    final = daily_file.daily_path(settings.data_dir, day)
    daily_file.remove_stale_temporaries(final.parent, day)
    remote = None if settings.series_only else RemoteOutput.of(settings)
    if series.wanted(settings) and not force:
        done = series.finished_or_made_from_file(settings, day, final, output_names(settings), remote is None)
        if done is not None:
            return DayResult(day.isoformat(), done[0], output=done[1], seconds=time.monotonic() - started, message=done[2])
    if not force and not settings.series_only:
        reused = _reuse_existing(day, settings, final, remote, started)
        if reused is not None:
            return reused

    timings: dict[str, float] = {}
    step = time.monotonic()
    ds, description, lat, lon = open_and_read_grid(open_source, timings)
    targets = (series_weights.cached(settings) or series_weights.prepare(settings, lat, lon)) if series.wanted(settings) else []
    window, box_attrs = None, {}
    if settings.bbox is not None:
        window = subset.index_window(lat, lon, settings.bbox)
        box_attrs = {"conus404_bbox": str(settings.bbox), "conus404_window": str(window)}
    elif targets:  # only the cells under the polygons and points are read (and kept)
        window = series_weights.read_window(settings, targets)
        box_attrs = {"conus404_bbox": bbox_text(settings), "conus404_window": str(window)}
    if window is not None:
        ds, lat, lon = ds.isel(window.selection), window.cut(lat), window.cut(lon)
    description = {**description, **box_attrs}
    timings["open"] = time.monotonic() - step - timings.get("read", 0.0)
    plans, warnings = plan_variables(ds, settings)
    for warning in warnings:
        log.warning(warning)
    report = validation.QcReport(day.isoformat(), settings.max_nan_fraction, settings.strict_qc, grid=(lat, lon))
    qc_path = Path(qc_dir) / f"qc_{day:%Y%m%d}.json"
    hourly = None
    if settings.keep_hourly:
        from conus404.hourly_file import HourlyFile

        source_attrs = {name: dict(ds[name].attrs) for plan in plans for name in plan.inputs}
        hourly = HourlyFile(daily_file.hourly_dir(settings.data_dir), day, lat, lon, description,
                            source_attrs, settings.day_boundary, settings.cell_corners)
    try:
        step, read_before = time.monotonic(), timings.get("read", 0.0)
        fields, bytes_read = aggregate_day(
            ds, day, plans, report, hourly.add if hourly else None,
            reopen=lambda: open_source(True)[0].isel(window.selection if window else {}),
            timings=timings, offset_hours=settings.day_boundary, lat=lat, lon=lon,
            read_ahead=reads_remote_source(settings), processes=settings.max_processes,
            fill_missing_hours=settings.fill_missing_hours,
        )
        timings["aggregate"] = time.monotonic() - step - (timings.get("read", 0.0) - read_before)
        report.raise_if_failed()
        flagged = report.flags_by_field()  # each flagged field says so itself (its values are never altered)
        fields = [replace(f, attrs={**f.attrs, "conus404_qc_flags": flagged[f.name]}) if f.name in flagged else f
                  for f in fields]
        fields = [replace(f, attrs={**f.attrs, "conus404_filled_hours": filled}) if (filled := report.filled_text(
            f.attrs.get("conus404_source_variables", "").split())) else f for f in fields]
        if settings.output_units:  # checked in the source's units; converted last
            fields = output_units.converted_fields(fields, settings.output_units, {p.name: field_names(p) for p in plans})
        step = time.monotonic()
        made_with = {"conus404_units": output_units.format_units(settings.output_units)} if settings.output_units else {}
        dataset = daily_file.build_dataset(day, lat, lon, fields, {**provenance(description, plans), **made_with,
                                                                    **report.file_attributes()},
                                           settings.day_boundary, settings.cell_corners)
        if not settings.series_only:
            daily_file.publish(dataset, final, timings, settings.compression_level)
            verified_files.remember(final, dataset.attrs["conus404_variables"].split(), bbox_text(settings),
                                    dataset.attrs["conus404_data_sha256"], settings.output_units)
        timings["write"] = time.monotonic() - step - timings.get("verify", 0.0)
        if targets:
            step = time.monotonic()
            made = series.publish_day(settings, targets, day, [(f.name, f.values, dataset[f.name].attrs) for f in fields],
                                      window)
            timings["series"] = time.monotonic() - step
        if hourly is not None:
            hourly.publish()
    except BaseException:
        atomic_write_json(qc_path, report.as_dict("failed"))
        if hourly is not None:
            hourly.discard()
        raise
    atomic_write_json(qc_path, report.as_dict(report.status(failed=False)))
    output = str(final) if not settings.series_only else " ".join(map(str, made))
    log.info("published %s (%d fields, %.1f MB read)", output, len(fields), bytes_read / 1e6)
    for message in report.flag_messages():
        log.warning("QC flag (published unchanged): %s", message)
    if remote is not None:
        step = time.monotonic()
        output = upload(remote, final, day, settings)
        timings["upload"] = time.monotonic() - step
    return DayResult(
        day.isoformat(), "published", seconds=time.monotonic() - started, bytes_read=bytes_read,
        output=output, qc_report=str(qc_path), warnings=warnings, qc_flags=report.flag_messages(),
        timings={k: round(v, 3) for k, v in timings.items()},
    )
