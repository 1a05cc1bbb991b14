"""The range's basin and gauge tables, kept up at the end of a run (the driver's, then the retry pass's).

For a target file ``NAME.ext`` in ``DATA_DIR/polygons/`` (``points/`` for points):
- ``NAME.zarr``, the table of every recorded day, ``polygon`` x ``time``, kept up incrementally
  (:mod:`.zarr_table`): the days made since are read from their part files, nothing else;
- ``NAME.parquet/``, the same values in long form, by year and month (:mod:`.parquet_table`);
- for files of at most ``WIDE_TABLE_MAX_FEATURES`` features, ``NAME.nc`` (``time`` = the recorded
  days of the requested range x ``polygon``), a CF discrete-sampling-geometry time series
  (``featureType: timeSeries``, the ids as the ``timeseries_id``), one variable per daily field under
  the daily file's name and attributes plus the per-feature variables (area and coverage, or the
  cell holding each point), and ``NAME_FIELD.csv`` per field (a ``date`` column, one column per id),
  made from the Zarr table. Above it the run says which table to read instead.
Each file is written atomically, so after any kill the tables on disk are readable and hold only
verified days.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np

from conus404.config.parts import Request
from conus404.core.atomic import temporary_sibling
from conus404.outputs import cf, daily_file
from conus404.outputs.series import parquet_table, zarr_table
from conus404.outputs.series.weights import FOLDERS, SeriesTarget

log = logging.getLogger("conus404.series_tables")
WIDE_TABLE_MAX_FEATURES = 1000  # the NetCDF table and one CSV column per feature, up to this many features


def collect(request: Request, data_dir: Path, target: SeriesTarget,
            names: list[str]) -> tuple[list[dt.date], dict[str, np.ndarray], dict]:
    """(recorded days of the request's range, values per field [day, feature], field attributes),
    from the target's Zarr table."""
    days, values, attrs = zarr_table.recorded_days(data_dir, target, names, request.days, request.day_boundary)
    return days, {n: v.astype(np.float64) for n, v in values.items()}, attrs


def build_dataset(request: Request, data_dir: Path, source: str, target: SeriesTarget, names: list[str]):
    """The NetCDF table of one target over the request's range (``source``: the source in words)."""
    import xarray as xr

    from conus404.config import day_boundary

    days, values, attrs = collect(request, data_dir, target, names)
    dim = target.kind
    time = np.array([daily_file.day_start_utc(d, request.day_boundary) for d in days], dtype="datetime64[ns]")
    bounds = np.stack([time, time + np.timedelta64(1, "D")], axis=1) if len(days) else np.zeros((0, 2), "datetime64[ns]")
    data_vars = {"time_bnds": (("time", "nv"), bounds)}
    for name in names:  # CF H.2.1: data(feature, time)
        data_vars[name] = ((dim, "time"), values[name].T.astype(np.float32), zarr_table.table_attributes(attrs.get(name, {}), dim))
    for name, (extra, extra_attrs) in target.extra.items():
        data_vars[name] = ((dim,), extra, extra_attrs)
    coords = {"time": ("time", time, zarr_table.time_attributes(request.day_boundary)),
              dim: (dim, np.array(target.ids, dtype=object), zarr_table.id_attributes(target))}
    title, summary = zarr_table.describe(target)
    first = time[0] if len(time) else np.datetime64(request.start_date.isoformat(), "ns")
    last = time[-1] + np.timedelta64(1, "D") if len(time) else first
    where = (target.extra["cell_lat"][0], target.extra["cell_lon"][0]) if "cell_lat" in target.extra else (None, None)
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        **cf.discovery_attributes(title, summary, *where, first, last, source),
        "title": title, **zarr_table.target_attributes(target),
        "conus404_days": len(days),
        "conus404_range": f"{request.start_date}..{request.end_date}",
        "conus404_day_boundary": day_boundary.describe(request.day_boundary),
    })
    return ds, days, values


def write_tables(request: Request, data_dir: Path, source: str, targets: list[SeriesTarget],
                 names: list[str]) -> list[Path]:
    """Bring every target's tables up to date with the verified day series of the request's range."""
    written = []
    for target in targets:
        upkeep = zarr_table.record(data_dir, request.days, request.day_boundary, source, target, names)
        months = parquet_table.update(data_dir, target, names)
        zarr_path = zarr_table.table_path(data_dir, target)
        log.info("%s series of %s: %d day(s) recorded now (%d part file(s) read), %d in %s; %d month(s) of %s written",
                 target.kind, target.path.name, len(upkeep.recorded), upkeep.parts_read, upkeep.held, zarr_path,
                 len(months), parquet_table.table_path(data_dir, target).name)
        if upkeep.held:
            written += [zarr_path, parquet_table.table_path(data_dir, target)]
        if target.weights.count > WIDE_TABLE_MAX_FEATURES:
            log.info("%s has %d %ss: no NetCDF table or CSVs (written up to %d); read %s (xr.open_zarr) or %s "
                     "(pandas, R, DuckDB)", target.path.name, target.weights.count, target.kind, WIDE_TABLE_MAX_FEATURES,
                     zarr_path, parquet_table.table_path(data_dir, target))
            continue
        written += _write_wide_tables(request, data_dir, source, target, names)
    return written


def _write_wide_tables(request: Request, data_dir: Path, source: str, target: SeriesTarget, names: list[str]) -> list[Path]:
    folder = Path(data_dir) / FOLDERS[target.kind]
    ds, days, values = build_dataset(request, data_dir, source, target, names)
    encoding = {name: {"zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan)} for name in names}
    encoding.update(daily_file.days_time_encoding())
    nc = folder / f"{target.name}.nc"
    with temporary_sibling(nc) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
    written = [nc]
    for name in names:
        csv = folder / f"{target.name}_{name}.csv"
        with temporary_sibling(csv) as tmp:
            with open(tmp, "w", newline="") as handle:
                handle.write(",".join(["date", *(_csv_cell(i) for i in target.ids)]) + "\n")
                for day, row in zip(days, values[name], strict=True):
                    handle.write(",".join([day.isoformat(), *(_number(v) for v in row.astype(np.float32))]) + "\n")
        written.append(csv)
    log.info("%s series of %s: %d day(s) x %d %s(s) in %s", target.kind, target.path.name, len(days),
             target.weights.count, target.kind, nc)
    return written


def _csv_cell(text: str) -> str:
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if any(c in text for c in ',"\n') else text


def _number(value: np.float32) -> str:
    return "" if not np.isfinite(value) else np.format_float_positional(value, unique=True, trim="-")
