"""Optional (KEEP_HOURLY): the day's hourly records as read, in ``24hours/conus404_hourly_YYYYMMDD.nc``.

Each variable keeps exactly the records its daily value was computed from, on a time axis named
for its window: ``time`` (00Z..23Z), ``time_prior_hour`` (01Z..00Z next day) or
``time_day_ends`` (00Z of the day and of the next). Written variable by variable to a temporary
sibling and renamed into place only when the daily file was published.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import numpy as np

from conus404.aggregation import HourWindow
from conus404.atomic import TEMP_PREFIX, fsync_dir, fsync_file
from conus404.variables import VariableClass

TIME_DIMS = {
    VariableClass.INSTANTANEOUS: "time",
    VariableClass.PRIOR_HOUR: "time_prior_hour",
    VariableClass.SINCE_START: "time_day_ends",
    VariableClass.BUCKET: "time_day_ends",
}


class HourlyFile:
    def __init__(self, directory: Path, day: dt.date, lat: np.ndarray, lon: np.ndarray,
                 attrs: dict[str, str] | None = None) -> None:
        self.final = Path(directory) / f"conus404_hourly_{day:%Y%m%d}.nc"
        self.final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{self.final.name}.", dir=self.final.parent)
        os.close(fd)
        self.tmp = Path(name)
        self.written: set[str] = set()
        self._lat, self._lon = lat, lon
        self._attrs = dict(attrs or {})  # global attributes (the box and window of a --bbox run)
        self._started = False

    def add(self, plan, window: HourWindow, records: dict[str, np.ndarray]) -> None:
        import xarray as xr

        tdim = TIME_DIMS[window.var_class]
        new = {n: r for n, r in records.items() if n not in self.written}
        if not new:
            return
        times = np.array([np.datetime64(t.to_datetime64(), "ns") for t in window.hours])
        coords = {tdim: (tdim, times)}
        if not self._started:
            coords["lat"] = (("south_north", "west_east"), self._lat)
            coords["lon"] = (("south_north", "west_east"), self._lon)
        data_vars = {}
        for name, values in new.items():
            dims = (tdim, *[f"level_{name}"] * (values.ndim - 3), "south_north", "west_east")
            attrs = dict(plan.attrs) if name == plan.name else {}
            data_vars[name] = (dims, values, {k: v for k, v in attrs.items() if isinstance(v, str | int | float)})
        piece = xr.Dataset(data_vars, coords=coords, attrs={} if self._started else self._attrs)
        encoding = {name: {"zlib": True, "complevel": 4} for name in data_vars}
        piece.to_netcdf(self.tmp, mode="a" if self._started else "w", engine="netcdf4", encoding=encoding)
        self._started = True
        self.written |= set(new)

    def publish(self) -> None:
        fsync_file(self.tmp)
        os.replace(self.tmp, self.final)
        fsync_dir(self.final.parent)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)
