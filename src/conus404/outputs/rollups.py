"""Monthly, annual and water-year roll-ups of the verified daily files (``--rollup``).

Each daily field is rolled up by what its day holds (its ``cell_methods``): daily means by their
mean, daily amounts (60-minute sums, differences of running totals and buckets) by their total,
daily minima by their minimum, maxima by their maximum; a cell missing on any day is missing for
the period. Files: ``DATA_DIR/unprocessed/monthly/conus404_monthly_YYYYMM.nc``,
``annual/conus404_annual_YYYY.nc`` and ``water_year/conus404_wateryear_YYYY.nc`` (water year
YYYY = 1 Oct YYYY-1 .. 30 Sep YYYY), ``time`` = the period's start with ``time_bnds``.

A period is written when all its days are done and verified (``--allow-partial``: with those that
are, the count recorded), and again whenever the days it was made from changed: the file records a
digest of its days' data checksums. Written through a temporary sibling, like every file here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conus404.config.parts import Outputs, Request
from conus404.core.atomic import temporary_sibling
from conus404.outputs import cf, daily_file

log = logging.getLogger("conus404.rollups")
_FOLDERS = {"monthly": "monthly", "annual": "annual", "water-year": "water_year"}
_PREFIXES = {"monthly": "conus404_monthly_", "annual": "conus404_annual_", "water-year": "conus404_wateryear_"}
# a day's cell_methods -> (how days combine, its word in cell_methods)
_OVER_DAYS = {"time: mean": ("mean", "mean"), "time: sum": ("sum", "sum"),
              "time: minimum": ("min", "minimum"), "time: maximum": ("max", "maximum")}


MEAN_OF_EXTREME = "_mean"  # T2_max -> T2_max_mean: the mean daily maximum, beside the period's maximum


def mean_of_extreme_attrs(name: str, field_attrs: dict, kind: str) -> dict:
    """The attributes of a daily extreme's period mean (the climatologist's mean daily maximum): CF 7.4's
    within/over days cell_methods."""
    word = _rule(field_attrs)[1]
    attrs = {k: v for k, v in field_attrs.items() if k not in ("conus404_rollup_rule", "long_name")}
    attrs["cell_methods"] = f"time: {word} within days time: mean over days"
    attrs["long_name"] = f"{kind} mean of the daily {word} of {field_attrs.get('long_name', name)}"
    attrs["conus404_rollup_rule"] = f"the mean of the period's daily {word}s"
    return attrs


def _rule(field_attrs: dict) -> tuple[str, str]:
    """How a field's days combine (mean, sum, min, max) and that word for cell_methods, from its
    daily cell_methods (a mean when it has none)."""
    return _OVER_DAYS.get(field_attrs.get("cell_methods", "time: mean"), ("mean", "mean"))


@dataclass(frozen=True)
class Period:
    kind: str
    start: dt.date
    end: dt.date  # the day after its last

    @property
    def label(self) -> str:
        if self.kind == "monthly":
            return f"{self.start:%Y%m}"
        return f"{self.end.year if self.kind == 'water-year' else self.start.year}"

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=k) for k in range((self.end - self.start).days)]

    def path(self, data_dir: Path) -> Path:
        return Path(data_dir) / "unprocessed" / _FOLDERS[self.kind] / f"{_PREFIXES[self.kind]}{self.label}.nc"


def period_of(kind: str, day: dt.date) -> Period:
    if kind == "monthly":
        start = day.replace(day=1)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    elif kind == "annual":
        start, end = dt.date(day.year, 1, 1), dt.date(day.year + 1, 1, 1)
    else:  # water year: 1 October of the year before .. 30 September
        year = day.year + 1 if day.month >= 10 else day.year
        start, end = dt.date(year - 1, 10, 1), dt.date(year, 10, 1)
    return Period(kind, start, end)


def periods_touching(kind: str, first: dt.date, last: dt.date) -> list[Period]:
    found, day = [], first
    while day <= last:
        period = period_of(kind, day)
        found.append(period)
        day = period.end
    return found


def write_rollups(request: Request, outputs: Outputs, names: list[str], done: Callable[[dt.date], bool]) -> list[Path]:
    """Every roll-up period touching the request's range whose days are done (``done``: verified),
    unless it is up to date; returns the files written."""
    written = []
    for kind in outputs.rollups:
        for period in periods_touching(kind, request.start_date, request.end_date):
            ready = [d for d in period.days if done(d)]
            if len(ready) < len(period.days) and not (outputs.allow_partial and ready):
                log.info("%s %s not written: %d of its %d days are done%s", kind, period.label, len(ready),
                         len(period.days), "" if outputs.allow_partial else " (--allow-partial writes it anyway)")
                continue
            paths = [daily_file.daily_path(outputs.data_dir, d) for d in ready]
            digest = _days_digest(paths)
            target = period.path(outputs.data_dir)
            if (daily_file.attributes(target) or {}).get("conus404_days_sha256") == digest:
                continue  # made from exactly these days' data
            _write(period, paths, names, digest, len(ready), target)
            written.append(target)
            log.info("%s %s: %d of %d days -> %s", kind, period.label, len(ready), len(period.days), target)
    return written


def _days_digest(paths: list[Path]) -> str:
    """One checksum of the days a period is made of: their names and data checksums."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}:{(daily_file.attributes(path) or {}).get('conus404_data_sha256')}\n".encode())
    return digest.hexdigest()


def _combine(how: str, total: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    if total is None:
        return values.astype(np.float64)
    if how in ("mean", "sum"):
        return total + values
    return np.fmin(total, values) if how == "min" else np.fmax(total, values)


def _write(period: Period, paths: list[Path], names: list[str], digest: str, used: int, target: Path) -> None:
    import xarray as xr

    totals: dict[str, np.ndarray | None] = dict.fromkeys(names)
    sums: dict[str, np.ndarray | None] = dict.fromkeys(names)  # of the daily extremes, for their mean
    missing: dict[str, np.ndarray | None] = dict.fromkeys(names)
    rules: dict[str, tuple[str, str]] = {}
    with xr.open_dataset(paths[0], engine="netcdf4") as first:
        corners = [n for n in ("lat_bnds", "lon_bnds") if n in first.variables]  # --cell-corners: kept as made
        template = first[["lat", "lon", "crs", *corners]].load()
        attrs = {name: dict(first[name].attrs) for name in names}
        global_attrs = dict(first.attrs)
    for name in names:
        rules[name] = _rule(attrs[name])
    for path in paths:
        with xr.open_dataset(path, engine="netcdf4") as day:
            for name in names:
                values = day[name].values[0].astype(np.float64)
                gap = np.isnan(values)  # a cell missing on any day is missing for the period
                missing[name] = gap if missing[name] is None else missing[name] | gap
                totals[name] = _combine(rules[name][0], totals[name], np.nan_to_num(values))
                if rules[name][0] in ("min", "max"):
                    sums[name] = _combine("sum", sums[name], np.nan_to_num(values))
    offset = daily_file.day_boundary_of(global_attrs) or 0
    start, end = daily_file.day_start_utc(period.start, offset), daily_file.day_start_utc(period.end, offset)
    data_vars = {"time_bnds": (("time", "nv"), np.array([[start, end]])), "crs": template["crs"]}
    for name in names:
        how, word = rules[name]
        values = totals[name] / used if how == "mean" else totals[name]
        values = np.where(missing[name], np.nan, values).astype(np.float32)
        field_attrs = {k: v for k, v in attrs[name].items() if k not in daily_file.DAY_ONLY_ATTRIBUTES}
        # a mean of the days' means is the period's mean (and so for sums, minima, maxima): the
        # daily cell_methods holds over the period's time bounds (CF 7.4's "within/over days" is
        # for climatologies)
        field_attrs["cell_methods"] = attrs[name].get("cell_methods", "time: mean")
        field_attrs["conus404_rollup_rule"] = f"the {word} of the period's daily values"
        field_attrs["long_name"] = f"{period.kind} {word} of the days' {attrs[name].get('long_name', name)}"
        data_vars[name] = (("time", "south_north", "west_east"), values[None], field_attrs)
        if sums[name] is not None:
            mean = np.where(missing[name], np.nan, sums[name] / used).astype(np.float32)
            data_vars[name + MEAN_OF_EXTREME] = (("time", "south_north", "west_east"), mean[None],
                                                 mean_of_extreme_attrs(name, attrs[name], period.kind))
    lat, lon = template["lat"].values, template["lon"].values
    coords = {"time": ("time", [start], {"standard_name": "time", "long_name": f"start of the {period.kind} period",
                                         "bounds": "time_bnds", "axis": "T"}),
              **cf.keep_cell_corners(cf.grid_coordinates(lat, lon), template)}
    keep = ("source", "conus404_source", "conus404_bbox", "conus404_window", "conus404_tool_version",
            "conus404_day_boundary", "conus404_units")
    title = f"CONUS404 {period.kind} roll-up {period.label} of the daily files"
    summary = (f"The {period.kind} mean, total, minimum or maximum (as each field's daily statistic) of the CONUS404 "
               "daily fields made by the conus404 pipeline from the hourly WRF reanalysis.")
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        **cf.discovery_attributes(title, summary, lat, lon, start, end),
        **{k: v for k, v in global_attrs.items() if k in keep},
        "title": title,
        "conus404_period": f"{period.kind} {period.start}..{period.end - dt.timedelta(days=1)}",
        "conus404_days": used,
        "conus404_days_in_period": len(period.days),
        "conus404_partial": "yes" if used < len(period.days) else "no",
        "conus404_days_sha256": digest,
        "conus404_variables": " ".join(sorted(names)),
    })
    encoding = {name: {"zlib": True, "complevel": 4, "shuffle": True, "_FillValue": np.float32(np.nan)}
                for name in ds.data_vars if name not in ("time_bnds", "crs")}
    encoding.update(daily_file.days_time_encoding())
    encoding.update(cf.coordinate_encoding(ds))
    with temporary_sibling(target) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)


def write_series_rollups(request: Request, outputs: Outputs, source: str, targets, names: list[str]) -> list[Path]:
    """With polygon/point series as the run's output: ``NAME_monthly.nc`` (``_annual``,
    ``_wateryear``) beside each series table, ``time`` (the periods' starts) x feature, the same
    rules per field, ``days_used`` per period; complete periods only unless --allow-partial."""
    import xarray as xr

    from conus404.outputs.series import tables as series_tables

    written = []
    for target in targets:
        days, values, attrs = series_tables.collect(request, outputs.data_dir, target, names)
        index = {d: k for k, d in enumerate(days)}
        for kind in outputs.rollups:
            starts, used, rows = [], [], {name: [] for name in names}
            for period in periods_touching(kind, request.start_date, request.end_date):
                have = [index[d] for d in period.days if d in index]
                if not have or (len(have) < len(period.days) and not outputs.allow_partial):
                    continue
                starts.append(period)
                used.append(len(have))
                for name in names:
                    how = _rule(attrs.get(name, {}))[0]
                    block = values[name][have]
                    rows[name].append({"mean": block.mean(axis=0), "sum": block.sum(axis=0),
                                       "min": block.min(axis=0), "max": block.max(axis=0)}[how])
                    if how in ("min", "max"):
                        rows.setdefault(name + MEAN_OF_EXTREME, []).append(block.mean(axis=0))
            if not starts:
                continue
            time = np.array([daily_file.day_start_utc(p.start, request.day_boundary) for p in starts])
            ends = np.array([daily_file.day_start_utc(p.end, request.day_boundary) for p in starts])
            data_vars: dict = {"time_bnds": (("time", "nv"), np.stack([time, ends], axis=1)),
                               "days_used": (("time",), np.array(used, np.int32), {"long_name": "days the period holds"})}
            for name in names:
                field_attrs = dict(attrs.get(name, {}))
                word = _rule(field_attrs)[1]
                field_attrs["conus404_rollup_rule"] = f"the {word} of the period's daily values"  # cell_methods holds
                data_vars[name] = ((target.kind, "time"), np.array(rows[name], np.float32).T, field_attrs)  # CF H.2.1
                if name + MEAN_OF_EXTREME in rows:
                    data_vars[name + MEAN_OF_EXTREME] = ((target.kind, "time"),
                                                         np.array(rows[name + MEAN_OF_EXTREME], np.float32).T,
                                                         mean_of_extreme_attrs(name, attrs.get(name, {}), kind))
            ds = xr.Dataset(data_vars, coords={
                "time": ("time", time, {"standard_name": "time", "bounds": "time_bnds", "axis": "T",
                                        "long_name": f"start of the {kind} period"}),
                target.kind: (target.kind, np.array(target.ids, dtype=object), {"cf_role": "timeseries_id"})},
                attrs={**cf.discovery_attributes(f"CONUS404 {kind} roll-up of the series of {target.path.name}",
                                                 f"The {kind} mean, total, minimum or maximum (as each field's daily "
                                                 f"statistic) of the daily {target.kind} series.", None, None,
                                                 time[0], ends[-1], source),
                       "featureType": "timeSeries"})
            out = target.folder(outputs.data_dir) / f"{target.name}_{_PREFIXES[kind].split('_')[1]}.nc"
            encoding = daily_file.days_time_encoding()
            with temporary_sibling(out) as tmp:
                ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
            written.append(out)
            log.info("%s roll-up of the %s series of %s: %d period(s) -> %s", kind, target.kind, target.path.name,
                     len(starts), out)
    return written
