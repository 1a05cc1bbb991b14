"""The range's basin and gauge tables, built from the verified day series at the end of a run.

For a target file ``NAME.ext``: ``DATA_DIR/polygons/NAME.nc`` (``points/`` for points), ``time``
(every done day of the requested range) x ``polygon`` (``point``), a CF discrete-sampling-geometry
time series (``featureType: timeSeries``, the ids as the ``timeseries_id``), one variable per daily
field under the daily file's name and attributes, plus the per-feature variables (area and
coverage, or the cell holding each point); and ``NAME_FIELD.csv`` per field (a ``date`` column,
one column per id). Each is written atomically, so after any kill the tables on disk are the
last whole ones.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np

from conus404.config.parts import Request
from conus404.core.atomic import temporary_sibling
from conus404.outputs import cf, daily_file
from conus404.outputs.series import days as series
from conus404.outputs.series.weights import FOLDERS, SeriesTarget

log = logging.getLogger("conus404.series_tables")


def collect(request: Request, data_dir: Path, target: SeriesTarget,
            names: list[str]) -> tuple[list[dt.date], dict[str, np.ndarray], dict]:
    """(done days, values per field [day, feature], field attributes) over the request's range."""
    days, rows, attrs = [], {name: [] for name in names}, {}
    for day in request.days:
        path = series.part_path(data_dir, target.kind, target.name, day)
        problem, meta, values = series.checked_part(path, day, target.key, names)
        if problem is not None:
            continue
        days.append(day)
        for name in names:
            rows[name].append(values[meta["fields"].index(name)])
            attrs.setdefault(name, meta["attrs"].get(name, {}))
    count = target.weights.count
    return days, {n: np.array(r, dtype=np.float64).reshape(len(days), count) for n, r in rows.items()}, attrs


def build_dataset(request: Request, data_dir: Path, source: str, target: SeriesTarget, names: list[str]):
    """The table of one target over the request's range (``source``: the source in words)."""
    import xarray as xr

    days, values, attrs = collect(request, data_dir, target, names)
    dim = target.kind
    from conus404.config import day_boundary

    time = np.array([daily_file.day_start_utc(d, request.day_boundary) for d in days], dtype="datetime64[ns]")
    bounds = np.stack([time, time + np.timedelta64(1, "D")], axis=1) if len(days) else np.zeros((0, 2), "datetime64[ns]")
    data_vars = {"time_bnds": (("time", "nv"), bounds)}
    for name in names:
        field_attrs = {k: v for k, v in attrs.get(name, {}).items() if k not in ("grid_mapping", "coordinates")}
        spatial = "area: mean (area-weighted over the polygon)" if dim == "polygon" else "area: point (the cell holding it)"
        if field_attrs.get("cell_methods"):
            field_attrs["cell_methods"] = f"{field_attrs['cell_methods']} {spatial}"
        data_vars[name] = ((dim, "time"), values[name].T.astype(np.float32), field_attrs)  # CF H.2.1: data(feature, time)
    for name, (extra, extra_attrs) in target.extra.items():
        data_vars[name] = ((dim,), extra, extra_attrs)
    coords = {
        "time": ("time", time, {"standard_name": "time", "bounds": "time_bnds", "axis": "T",
                                "long_name": f"start of the day (local 00:00 at {day_boundary.describe(request.day_boundary)}), in UTC"}),
        dim: (dim, np.array(target.ids, dtype=object), {"cf_role": "timeseries_id",
                                                        "long_name": f"{dim} id (the field of {target.path.name})"}),
    }
    title = f"CONUS404 daily {'basin' if dim == 'polygon' else 'point'} series of {target.path.name}"
    summary = (f"Daily CONUS404 values per {dim} of {target.path.name}: "
               + ("each polygon's area-weighted mean of the 4-km cells it overlaps." if dim == "polygon" else
                  "each point's value is that of the 4-km cell holding it."))
    first = time[0] if len(time) else np.datetime64(request.start_date.isoformat(), "ns")
    last = time[-1] + np.timedelta64(1, "D") if len(time) else first
    where = (target.extra["cell_lat"][0], target.extra["cell_lon"][0]) if "cell_lat" in target.extra else (None, None)
    ds = xr.Dataset(data_vars, coords=coords, attrs={
        **cf.discovery_attributes(title, summary, *where, first, last, source),
        "featureType": "timeSeries",
        "title": title,
        "conus404_series_of": str(target.path),
        "conus404_series_key": target.key,
        "conus404_weights": ("exact area of each 4-km cell's overlap with the polygon in the CONUS404 Lambert "
                             "conformal plane" if dim == "polygon" else "the cell whose square holds the point"),
        "conus404_days": len(days),
        "conus404_range": f"{request.start_date}..{request.end_date}",
        "conus404_day_boundary": day_boundary.describe(request.day_boundary),
    })
    return ds, days, values


def write_tables(request: Request, data_dir: Path, source: str, targets: list[SeriesTarget],
                 names: list[str]) -> list[Path]:
    """Rebuild every target's NetCDF table and CSVs in ``data_dir`` from the verified day series."""
    written = []
    for target in targets:
        folder = Path(data_dir) / FOLDERS[target.kind]
        ds, days, values = build_dataset(request, data_dir, source, target, names)
        encoding = {name: {"zlib": True, "complevel": 4, "_FillValue": np.float32(np.nan)} for name in names}
        encoding.update(daily_file.days_time_encoding())
        nc = folder / f"{target.name}.nc"
        with temporary_sibling(nc) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        written.append(nc)
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
