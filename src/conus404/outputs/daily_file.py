"""The daily NetCDF file: CF-1.8 layout, atomic publishing, and re-verification.

A file under its final name ``conus404_daily_YYYYMMDD.nc`` is always complete and checked: it
is written to a temporary sibling, fsynced, re-opened and compared with what was meant to be
written (a SHA-256 of every field stored in the file), and only then renamed into place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from conus404.core import grid, subset
from conus404.core.atomic import TEMP_PREFIX, temporary_sibling
from conus404.core.variables import STATISTICS
from conus404.outputs.day_output import DayOutput, MadeDay

FILE_PREFIX = "conus404_daily_"
FORMAT_VERSION = "1"
TIME_EPOCH = "1979-10-01"  # the record's start: every file's time is days or hours since it


@dataclass
class DailyField:
    name: str
    values: np.ndarray  # (south_north, west_east), or (level, south_north, west_east), float32
    attrs: dict[str, Any] = field(default_factory=dict)
    level_dim: str | None = None  # e.g. "bottom_top" for a variable with levels

    @property
    def dims(self) -> tuple[str, ...]:
        return ("time", *((self.level_dim,) if self.level_dim else ()), "south_north", "west_east")


# A field's attributes that describe its one day (the hours used, what the QC flagged that day): not
# carried into the roll-ups, the Zarr store or the series tables, which hold many days.
DAY_ONLY_ATTRIBUTES = frozenset({"conus404_hour_window", "conus404_qc_flags"})


def daily_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "unprocessed" / "daily"


def hourly_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "unprocessed" / "24hours"


def daily_name(day: dt.date) -> str:
    return f"{FILE_PREFIX}{day:%Y%m%d}.nc"


def daily_path(data_dir: Path, day: dt.date) -> Path:
    return daily_dir(data_dir) / daily_name(day)


def content_digest(fields: Iterable[tuple[str, np.ndarray]]) -> str:
    """SHA-256 over the fields' names and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name, values in sorted(fields, key=lambda item: item[0]):
        digest.update(name.encode() + b"\0")
        data = np.ascontiguousarray(values, dtype=np.float32)
        nan = np.isnan(data)
        if nan.any():
            data = np.where(nan, np.float32(np.nan), data)  # one NaN bit pattern, as read back
        digest.update(memoryview(data).cast("B"))  # the bytes themselves, not a copy of them
    return digest.hexdigest()


def build_dataset(
    day: dt.date, lat: np.ndarray, lon: np.ndarray, fields: list[DailyField], provenance: dict[str, Any],
    offset_hours: int = 0, corners: bool = False,
):
    """The CF-1.8 / ACDD-1.3 dataset of one day (:mod:`conus404.outputs.cf`): time = its start in UTC
    (00:00 of a UTC day, local 00:00 of a day of another boundary) with bounds to the next day's start."""
    import xarray as xr

    from conus404.config import day_boundary
    from conus404.outputs import cf

    start = day_start_utc(day, offset_hours)
    end = start + np.timedelta64(1, "D")
    data_vars: dict[str, Any] = {
        "time_bnds": (("time", "nv"), np.array([[start, end]])),
        "crs": ((), np.int32(0), grid.crs_attributes()),
    }
    for f in fields:
        attrs = cf.field_attributes(f.name, {**f.attrs, "grid_mapping": "crs"})
        attrs.setdefault("long_name", attrs.get("description", f.name))
        data_vars[f.name] = (f.dims, f.values.astype(np.float32)[None], attrs)
    coords = {
        "time": ("time", [start], {"standard_name": "time", "bounds": "time_bnds", "axis": "T", "long_name":
                                   "start of the UTC day" if not offset_hours else
                                   f"start of the day (local 00:00 at {day_boundary.describe(offset_hours)}), in UTC"}),
        **cf.grid_coordinates(lat, lon, corners),
    }
    title = f"CONUS404 daily fields for {day.isoformat()} ({day_boundary.describe(offset_hours)} day)"
    summary = ("Daily aggregates of the CONUS404 hourly WRF reanalysis on its 4-km Lambert conformal grid: "
               "instantaneous fields averaged over the day's 24 hourly records, 60-minute amounts summed over the "
               "hours ending in the day, and accumulated totals differenced across it (each field's cell_methods "
               "and conus404_rule say which).")
    attrs = {
        **cf.discovery_attributes(title, summary, lat, lon, start, end, provenance.get("source", "")),
        "conus404_day": day.isoformat(),
        "conus404_day_boundary": day_boundary.describe(offset_hours),
        "conus404_format_version": FORMAT_VERSION,
        "conus404_variables": " ".join(sorted(f.name for f in fields)),
        "conus404_data_sha256": content_digest((f.name, f.values) for f in fields),
        **provenance,
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def days_time_encoding() -> dict[str, dict[str, Any]]:
    """``time`` and ``time_bnds`` of the files made from days (series tables, roll-ups, the Zarr
    store): days since the record's start, no _FillValue (CF: a coordinate has none)."""
    return {v: {"units": f"days since {TIME_EPOCH}", "calendar": "proleptic_gregorian", "dtype": "float64",
                "_FillValue": None} for v in ("time", "time_bnds")}


def _encoding(ds, level: int = 1) -> dict[str, dict[str, Any]]:
    # CF: coordinates and bounds carry no _FillValue
    enc: dict[str, dict[str, Any]] = {
        "time": {"units": f"hours since {TIME_EPOCH} 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64",
                 "_FillValue": None},
        "time_bnds": {"units": f"hours since {TIME_EPOCH} 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64",
                      "_FillValue": None},
    }
    from conus404.outputs.cf import coordinate_encoding

    enc.update(coordinate_encoding(ds))
    for name in ("lat_bnds", "lon_bnds"):
        if name in ds.variables:
            enc[name] = {"_FillValue": None, "zlib": True, "complevel": 1, "shuffle": True}
    for name in _fields(ds):
        # level 1 by default (about as small as 4, in less than half its time); one chunk per field,
        # which conus404.outputs.field_chunks compresses outside HDF5
        packing = ({"zlib": True, "complevel": level, "shuffle": True, "chunksizes": ds[name].shape} if level
                   else {"zlib": False})
        enc[name] = {**packing, "dtype": "float32", "_FillValue": np.float32(np.nan)}
    return enc


def _fields(ds) -> list[str]:
    return [name for name, var in ds.data_vars.items() if "south_north" in var.dims]


def publish(ds, final_path: Path, timings: dict[str, float] | None = None, level: int = 1) -> None:
    """Write ``ds`` to a temporary sibling (fields at zlib ``level``, 0 = uncompressed), verify the
    copy on disk, then rename it into place. Seconds spent verifying go to ``timings["verify"]``."""
    import time

    expected_day = dt.date.fromisoformat(ds.attrs["conus404_day"])
    expected_vars = ds.attrs["conus404_variables"].split()
    with temporary_sibling(final_path) as tmp:
        write_netcdf4(ds, tmp, _encoding(ds, level), chunks_written_aside=_fields(ds) if level else (), level=level)
        checking = time.monotonic()
        problem = verify(tmp, expected_day, expected_vars)
        if timings is not None:
            timings["verify"] = time.monotonic() - checking
        if problem:
            raise OSError(f"the daily file did not read back correctly before publishing: {problem}")


def write_netcdf4(ds, path: Path, encoding: dict[str, dict[str, Any]], chunks_written_aside: Iterable[str] = (),
                  level: int = 1) -> None:
    """``ds.to_netcdf(path, format="NETCDF4", encoding=encoding)`` for numpy-backed data, by xarray's
    own store and CF encoder, without ``to_netcdf``'s probe for a Dask scheduler: that probe imports
    ``distributed`` (0.1-0.3 s), which the launch template would otherwise import for every run.
    The variables ``chunks_written_aside`` (one chunk each, compressed at ``level``) are compressed
    and written by :mod:`conus404.outputs.field_chunks` instead of HDF5."""
    from xarray.backends import NetCDF4DataStore
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    from conus404.outputs.field_chunks import FieldsAside, write_chunks

    writer = FieldsAside(chunks_written_aside)
    store = NetCDF4DataStore.open(str(path), mode="w", format="NETCDF4", lock=NETCDF4_PYTHON_LOCK)
    try:
        ds.dump_to_store(store, encoding=encoding, writer=writer)
    finally:
        store.close()
    write_chunks(path, writer.kept, level)


def verify(path: Path, day: dt.date, variables: Iterable[str] | None = None, bbox: str | None = "any",
           units: dict[str, str] | None = None) -> str | None:
    """None if ``path`` is a complete daily file of ``day`` (holding at least ``variables``, of the
    box ``bbox``, None = the whole domain, "any" = not checked, and with ``units``, --units, when
    given); else what is wrong."""
    import xarray as xr

    try:
        with xr.open_dataset(path, engine="netcdf4", decode_times=True) as ds:
            if ds.attrs.get("conus404_day") != day.isoformat():
                return f"it is not a daily file of this pipeline for {day}"
            names = ds.attrs.get("conus404_variables", "").split()
            if variables is not None and not set(variables) <= set(names):  # more than asked is done
                missing = sorted(set(variables) - set(names))
                return f"it holds {', '.join(names) or 'no variables'}, not {', '.join(missing)}"
            if bbox != "any" and not subset.covers(ds.attrs.get("conus404_bbox"), bbox):
                return f"it covers {describe_coverage(ds.attrs)}, not {describe_coverage({'conus404_bbox': bbox})}"
            if units is not None and variables is not None:
                problem = units_problem({n: ds[n].attrs for n in variables if n in ds}, units)
                if problem:
                    return problem
            offset = day_boundary_of(ds.attrs)
            if offset is None or ds["time"].values[0] != day_start_utc(day, offset):
                return "its time is not the start of the day"
            fields = [(name, ds[name].values[0]) for name in names]
            if content_digest(fields) != ds.attrs.get("conus404_data_sha256"):
                return "its data do not match the checksum written with them"
    except (OSError, ValueError, KeyError, RuntimeError, IndexError) as exc:
        return f"it cannot be read ({type(exc).__name__}: {exc})"
    return None


def units_problem(field_attrs: dict[str, Any], units: dict[str, str]) -> str | None:
    """What differs between the fields' units and those asked for (--units; the source's elsewhere)."""
    for name, attrs in field_attrs.items():
        got, converted_from = attrs.get("units"), attrs.get("conus404_source_units")
        head, _, statistic = name.rpartition("_")
        variable = head if head and statistic in STATISTICS else name  # T2_max is T2's
        if variable in units and got != units[variable]:
            return f"its {name} is in {got!r}, not {units[variable]!r}"
        if variable not in units and converted_from:
            return f"its {name} is in {got!r}, converted from the source's {converted_from!r}"
    return None


def day_start_utc(day: dt.date, offset_hours: int = 0) -> np.datetime64:
    """The UTC instant day ``day`` starts at (local 00:00 at ``offset_hours`` east of UTC)."""
    return np.datetime64(day.isoformat(), "ns") - np.timedelta64(offset_hours, "h")


def day_boundary_of(attrs) -> int | None:
    """The offset a daily file's days start at (None: not one this pipeline writes)."""
    from conus404.config import day_boundary
    from conus404.core.exceptions import ConfigurationError

    try:
        return day_boundary.offset_of(attrs.get("conus404_day_boundary"))
    except ConfigurationError:
        return None


def attributes(path: Path) -> dict[str, Any] | None:
    """A daily file's global attributes, read without its data; None if it cannot be opened."""
    import netCDF4

    try:
        with netCDF4.Dataset(path) as nc:
            return {name: nc.getncattr(name) for name in nc.ncattrs()}
    except OSError:
        return None


def fields_in(path: Path) -> list[str]:
    """The fields a daily file says it holds (its ``conus404_variables``), [] if it cannot say."""
    return fields_and_units(path)[0]


def fields_and_units(path: Path) -> tuple[list[str], dict[str, str]]:
    """The fields a daily file says it holds and the --units it was made with (its
    ``conus404_variables`` and ``conus404_units``), from one read of its attributes."""
    from conus404.config.output_values import parse_units as parse
    from conus404.core.exceptions import ConfigurationError

    attrs = attributes(path) or {}
    try:
        units = parse(str(attrs.get("conus404_units", "")), "conus404_units")
    except ConfigurationError:  # not this pipeline's: no record of units, so a full check next time
        units = {}
    return str(attrs.get("conus404_variables", "")).split(), units


def describe_coverage(attrs) -> str:
    """'the whole domain', 'the box MIN_LON,MIN_LAT,MAX_LON,MAX_LAT' or 'the cells south_north ...
    (covering the polygons and points)' from a daily file's attributes."""
    box = attrs.get("conus404_bbox")
    if box and str(box).startswith(subset.SERIES_CELLS):
        return f"the {box} (covering a run's polygons and points)"
    return f"the box {box}" if box else "the whole domain"


def quarantine(path: Path) -> Path:
    """Move a file that failed verification aside (never delete what may be someone's data)."""
    target_dir = Path(path).parent / "quarantine"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{Path(path).name}.{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%fZ}"
    os.replace(path, target)
    return target


def remove_stale_temporaries(directory: Path, day: dt.date | None = None) -> list[Path]:
    """Delete temporaries left by killed writers (of ``day``, or all); returns what was removed."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    pattern = f"{TEMP_PREFIX}{FILE_PREFIX}{day:%Y%m%d}.nc.*" if day else f"{TEMP_PREFIX}*"
    removed = []
    for path in directory.glob(pattern):
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


class DailyFileOutput(DayOutput):
    """The day's daily file: published atomically and verified, then recorded as verified (so a
    rerun skips it by a stat)."""

    def __init__(self, final: Path, compression_level: int = 1, units: dict[str, str] | None = None) -> None:
        self.final, self.compression_level, self.units = final, compression_level, units or {}

    def write(self, made: MadeDay) -> str:
        from conus404.outputs import verified_files

        step, verifying = time.monotonic(), made.timings.get("verify", 0.0)
        publish(made.dataset, self.final, made.timings, self.compression_level)
        verified_files.remember(self.final, made.dataset.attrs["conus404_variables"].split(), made.region,
                                made.dataset.attrs["conus404_data_sha256"], self.units)
        spent = time.monotonic() - step - (made.timings.get("verify", 0.0) - verifying)  # verifying is its own figure
        made.timings["write"] = made.timings.get("write", 0.0) + spent
        return str(self.final)
