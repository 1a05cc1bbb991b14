"""Optional (KEEP_HOURLY): the day's hourly records as read, in ``24hours/conus404_hourly_YYYYMMDD.nc``.

One CF ``time`` axis for every variable: the 25 hourly stamps from the day's start to the next
day's start, each with the bounds of the hour ending at it (WRF's convention). A variable holds
exactly the records its daily value was computed from; its other stamps are missing (NaN).
``cell_methods`` says what a record is: ``time: point`` for snapshots and running totals (the
value at the stamp), ``time: sum`` for 60-minute amounts (the hour ending at the stamp); the
window used is in ``conus404_hour_window``. Coordinates, grid mapping and discovery attributes
are the daily files' (:mod:`conus404.outputs.cf`).

Written variable by variable to a temporary sibling and renamed into place only when the daily
file was published.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from conus404.core.atomic import TEMP_PREFIX, fsync_dir, fsync_file
from conus404.core.day_windows import HourWindow, day_start
from conus404.core.variables import VariableClass
from conus404.outputs.day_output import DayOutput, MadeDay

HOURS_IN_FILE = 25  # the day's start .. the next day's start
RECORD_METHODS = {
    VariableClass.INSTANTANEOUS: "time: point",
    VariableClass.PRIOR_HOUR: "time: sum",
    VariableClass.SINCE_START: "time: point",
    VariableClass.BUCKET: "time: point",
}


class HourlyFile(DayOutput):
    """The day's hourly records, kept as they are read (``take_hours``), published after the daily file."""

    keeps_hours = True

    def __init__(self, directory: Path, day: dt.date, lat: np.ndarray, lon: np.ndarray,
                 attrs: dict[str, str] | None = None, source_attrs: dict[str, dict[str, Any]] | None = None,
                 offset_hours: int = 0, corners: bool = False) -> None:
        self.final = Path(directory) / f"conus404_hourly_{day:%Y%m%d}.nc"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{self.final.name}.", dir=self.final.parent)
        os.close(fd)
        self.tmp = Path(name)
        self.written: set[str] = set()
        self.day, self.offset_hours, self.corners = day, offset_hours, corners
        self._lat, self._lon = lat, lon
        self._attrs = dict(attrs or {})  # global attributes (the box and window of a --bbox run)
        self._source_attrs = source_attrs or {}
        start = day_start(day, offset_hours).to_datetime64().astype("datetime64[ns]")
        self.stamps = start + np.arange(HOURS_IN_FILE) * np.timedelta64(1, "h")
        self._started = False
        self._aux = ""

    def take_hours(self, plan, window: HourWindow, records: dict[str, np.ndarray]) -> None:
        self.add(plan, window, records)

    def write(self, made: MadeDay) -> None:
        self.publish()  # not the day's place: the daily file is

    def add(self, plan, window: HourWindow, records: dict[str, np.ndarray]) -> None:
        import xarray as xr

        new = {n: r for n, r in records.items() if n not in self.written}
        if not new:
            return
        wanted = np.array([t.to_datetime64() for t in window.hours], dtype="datetime64[ns]")
        positions = np.searchsorted(self.stamps, wanted)
        data_vars = {}
        for name, values in new.items():
            dims = ("time", *[f"level_{name}"] * (values.ndim - 3), "south_north", "west_east")
            full = np.full((HOURS_IN_FILE, *values.shape[1:]), np.nan, np.float32)
            full[positions] = values
            data_vars[name] = (dims, full, self._variable_attrs(plan, name, window))
        coords = {} if self._started else self._coordinates()
        if not self._started:  # the later pieces have no coordinates of their own: name the first's
            self._aux = " ".join(n for n, c in coords.items() if c[0] != n and n not in ("lat_bnds", "lon_bnds"))
        attrs = {} if self._started else self._global_attrs()
        if not self._started:
            data_vars["time_bnds"] = (("time", "nv"), np.stack([self.stamps - np.timedelta64(1, "h"), self.stamps], 1))
            from conus404.core import grid

            data_vars["crs"] = ((), np.int32(0), grid.crs_attributes())
        piece = xr.Dataset(data_vars, coords=coords, attrs=attrs)
        if self._started:
            for name in new:
                piece[name].encoding["coordinates"] = self._aux
        piece.to_netcdf(self.tmp, mode="a" if self._started else "w", engine="netcdf4", encoding=self._encoding(piece))
        self._started = True
        self.written |= set(new)

    def _variable_attrs(self, plan, name: str, window: HourWindow) -> dict[str, Any]:
        from conus404.outputs import cf

        if name != plan.name and name.startswith("I_") and plan.var_class == VariableClass.BUCKET:
            attrs: dict[str, Any] = {"long_name": f"number of times WRF reset {plan.name} by 1e9 J m-2 (bucket counter)",
                                     "units": "1"}
        else:
            source = self._source_attrs.get(name, plan.attrs if name == plan.name else {})
            attrs = {k: v for k, v in source.items() if k in ("units", "long_name", "description", "standard_name")}
            attrs.setdefault("long_name", attrs.get("description", name))
        attrs.update({"cell_methods": RECORD_METHODS[window.var_class], "grid_mapping": "crs",
                      "conus404_hour_window": window.describe()})
        return cf.field_attributes(name, attrs)

    def _coordinates(self) -> dict[str, Any]:
        from conus404.outputs import cf

        return {"time": ("time", self.stamps, {"standard_name": "time", "axis": "T", "bounds": "time_bnds",
                                               "long_name": "end of the hour each record stands for"}),
                **cf.grid_coordinates(self._lat, self._lon, self.corners)}

    def _global_attrs(self) -> dict[str, Any]:
        from conus404.config import day_boundary
        from conus404.outputs import cf

        title = f"CONUS404 hourly records of {self.day.isoformat()} ({day_boundary.describe(self.offset_hours)} day)"
        summary = ("The hourly CONUS404 records the pipeline read to make this day's daily fields, as read; "
                   "each variable's cell_methods and conus404_hour_window say which records it used.")
        return {**cf.discovery_attributes(title, summary, self._lat, self._lon, self.stamps[0] - np.timedelta64(1, "h"),
                                          self.stamps[-1]),
                "conus404_day": self.day.isoformat(), **self._attrs}

    @staticmethod
    def _encoding(piece) -> dict[str, dict[str, Any]]:
        from conus404.outputs.daily_file import TIME_EPOCH

        hours = {"units": f"hours since {TIME_EPOCH} 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64",
                 "_FillValue": None}
        enc: dict[str, dict[str, Any]] = {n: dict(hours) for n in ("time", "time_bnds") if n in piece.variables}
        from conus404.outputs.cf import coordinate_encoding

        enc.update(coordinate_encoding(piece))
        for name, var in piece.data_vars.items():
            if "south_north" in var.dims:
                enc[name] = {"zlib": True, "complevel": 4, "dtype": "float32", "_FillValue": np.float32(np.nan)}
        return enc

    def publish(self) -> None:
        fsync_file(self.tmp)
        os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
