"""One Zarr store for the range (``--zarr PATH_OR_URL``): every verified day of the requested range
in a consolidated store (Zarr format 2, as HyTEST publishes its daily product), which
``xr.open_zarr`` opens as one dataset.

Layout: ``time`` x ``south_north`` x ``west_east`` (the run's window, if it has one), 2-D
``lat``/``lon``, 1-D projection coordinates ``x``/``y`` (metres, fitted to the lat/lon), ``crs``, ``time_bnds``, the daily files' variable attributes and ``cell_methods``;
chunks of 36 days x 350 x 350 cells by default (``ZARR_CHUNKS``: a day of a 350 x 350 tile
is one read for a map, 36 days of one tile one read for a series; HyTEST's choice), Zstd level 3.

One writer: the driver, and after it the retry pass (never two processes at once: the run's
lock), from the verified daily files, in runs of consecutive days. ``conus404_day_written``
marks a day once its data are in the store, so a kill at any moment leaves every marked day
correct; a rerun writes exactly the unmarked days; a later run over a wider range extends the
time axis at its end without rewriting what is there. A store made for other fields, another
region or another day boundary is refused before the run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from conus404.config.output_values import DEFAULT_ZARR_CHUNKS as DEFAULT_CHUNKS
from conus404.config.parts import Outputs, Request
from conus404.core.exceptions import ConfigurationError
from conus404.outputs import cf, daily_file

log = logging.getLogger("conus404.zarr_output")
WRITTEN = "conus404_day_written"


class ZarrOutput:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None,
                 chunks: tuple[int, int, int] = DEFAULT_CHUNKS) -> None:
        import fsspec

        self.url = str(url).rstrip("/")
        self.chunks = chunks
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **dict(storage_options or {}))
        except (ValueError, ImportError) as exc:
            raise ConfigurationError(f"--zarr {url!r} cannot be used ({type(exc).__name__}: {exc})") from None
        from fsspec.implementations.local import LocalFileSystem

        # a local store through zarr's own LocalStore (it makes its folders); others through fsspec
        self.mapper = self.root if isinstance(self.fs, LocalFileSystem) else self.fs.get_mapper(self.root)

    @classmethod
    def of(cls, outputs: Outputs) -> ZarrOutput | None:
        if not outputs.output_zarr:
            return None
        return cls(outputs.output_zarr, outputs.output_storage_options, outputs.zarr_chunks)

    # -- what is there -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.fs.exists(f"{self.root}/.zmetadata")

    def _open(self):
        import xarray as xr

        return xr.open_zarr(self.mapper, consolidated=True, decode_times=True)

    def check(self, request: Request, names: list[str], coverage: str | None) -> None:
        """Refuse (ConfigurationError, one line) a store this request cannot write into."""
        from conus404.config import day_boundary

        if self.fs.isfile(self.root):
            raise ConfigurationError(f"--zarr {self.url} is a file, not a Zarr store (give a folder or URL for it)")
        if not self.exists():
            if self.fs.exists(self.root) and self.fs.ls(self.root):
                raise ConfigurationError(f"--zarr {self.url} is a folder that holds something else: give a new "
                                         "or empty one (or an existing store of this request)")
            return
        try:
            with self._open() as store:
                attrs, first = dict(store.attrs), dt.date.fromisoformat(str(store.attrs.get("conus404_first_day")))
        except Exception as exc:
            raise ConfigurationError(f"--zarr {self.url} cannot be read as this pipeline's store "
                                     f"({type(exc).__name__}: {exc})") from None
        held = sorted(str(attrs.get("conus404_variables", "")).split())
        wanted = {"fields": sorted(names), "region": daily_file.describe_coverage({"conus404_bbox": coverage}),
                  "day boundary": day_boundary.describe(request.day_boundary)}
        found = {"fields": held, "region": daily_file.describe_coverage({"conus404_bbox": attrs.get("conus404_bbox")}),
                 "day boundary": str(attrs.get("conus404_day_boundary", "UTC"))}
        for what in wanted:
            if wanted[what] != found[what]:
                raise ConfigurationError(f"--zarr {self.url} holds another request's store ({what}: "
                                         f"{_text(found[what])}, not {_text(wanted[what])}): use another store")
        if request.start_date < first:
            raise ConfigurationError(f"--zarr {self.url} starts on {first}: a range from {request.start_date} needs a "
                                     "new store (a store grows at its end only)")

    # -- writing ---------------------------------------------------------------------------------
    def write(self, request: Request, data_dir: Path, names: list[str], done: Callable[[dt.date], bool]) -> int:
        """Write every done day of the range that the store has not marked; returns how many."""
        import zarr

        days = [d for d in request.days if done(d)]
        if not days:
            return 0
        if not self.exists():
            self._create(request, names, daily_file.daily_path(data_dir, days[0]))
        first = self._extend_to(request.end_date)
        group = zarr.open_group(self.mapper, mode="r+", zarr_format=2, use_consolidated=False)
        written = np.asarray(group[WRITTEN][:])
        todo = [d for d in days if not written[(d - first).days]]
        per_chunk = group[names[0]].chunks[0]
        for run in _consecutive(todo, first, per_chunk):  # chunk-aligned blocks: memory stays one chunk's worth
            self._write_run(data_dir, names, run, first, group)
        if todo:
            log.info("Zarr store %s: wrote %d day(s), %d in it now", self.url, len(todo), int(written.sum()) + len(todo))
        return len(todo)

    def _create(self, request: Request, names: list[str], sample: Path) -> None:
        """An empty store over the range: coordinates and metadata only (no data chunk is written)."""
        import dask.array as da
        import numcodecs
        import xarray as xr

        with xr.open_dataset(sample, engine="netcdf4") as day:
            template = day.load()
        n = len(request.days)
        ny, nx = template.sizes["south_north"], template.sizes["west_east"]
        chunks = (min(self.chunks[0], n), min(self.chunks[1], ny), min(self.chunks[2], nx))
        start = np.array([daily_file.day_start_utc(d, request.day_boundary) for d in request.days])
        data_vars: dict[str, Any] = {
            name: (("time", "south_north", "west_east"), da.full((n, ny, nx), np.nan, dtype=np.float32, chunks=chunks),
                   {k: v for k, v in template[name].attrs.items() if k not in daily_file.DAY_ONLY_ATTRIBUTES})
            for name in names}
        data_vars["time_bnds"] = (("time", "nv"), np.stack([start, start + np.timedelta64(1, "D")], axis=1))
        data_vars[WRITTEN] = (("time",), np.zeros(n, np.uint8), {
            "long_name": "1 once the day's data are in the store (a day without it is not there yet)"})
        data_vars["crs"] = template["crs"]
        keep = ("source", "conus404_source", "conus404_bbox", "conus404_window", "conus404_day_boundary",
                "conus404_tool_version")
        # lat/lon, x/y where a grid fits, and the daily files' cell corners (--cell-corners)
        plane = cf.keep_cell_corners(cf.grid_coordinates(template["lat"].values, template["lon"].values), template)
        coords = {"time": ("time", start, dict(template["time"].attrs)), **plane}
        title = "CONUS404 daily fields (one store for the range)"
        summary = ("The pipeline's verified daily CONUS404 fields of the range in one Zarr store, a day per time step; "
                   "conus404_written marks the days already in it.")
        end = start[-1] + np.timedelta64(1, "D")
        ds = xr.Dataset(data_vars, coords=coords,
                        attrs={**cf.discovery_attributes(title, summary, template["lat"].values, template["lon"].values,
                                                         start[0], end),
                               **{k: v for k, v in template.attrs.items() if k in keep}, "title": title,
                               "conus404_first_day": request.start_date.isoformat(),
                               "conus404_variables": " ".join(sorted(names)),
                               "conus404_chunks": f"time {chunks[0]}, south_north {chunks[1]}, west_east {chunks[2]}"})
        compressor = numcodecs.Zstd(level=3)
        encoding = {name: {"chunks": chunks, "compressors": (compressor,), "_FillValue": np.float32(np.nan)} for name in names}
        encoding.update({v: {**enc, "chunks": (chunks[0],) + ((2,) if v == "time_bnds" else ())}
                         for v, enc in daily_file.days_time_encoding().items()})
        encoding[WRITTEN] = {"chunks": (chunks[0],)}
        ds.to_zarr(self.mapper, mode="w-", compute=False, consolidated=True, zarr_format=2, encoding=encoding)
        log.info("Zarr store %s created: %d day(s) from %s, chunks %s", self.url, n, request.start_date, chunks)

    def _extend_to(self, last: dt.date) -> dt.date:
        """Grow the time axis to ``last`` (new days unmarked, no data chunk written); the first day."""
        import zarr

        group = zarr.open_group(self.mapper, mode="r+", zarr_format=2, use_consolidated=False)
        first = dt.date.fromisoformat(str(group.attrs["conus404_first_day"]))
        have, need = group["time"].shape[0], (last - first).days + 1
        if need <= have:
            return first
        grow_time_axis(self.mapper, group, need, WRITTEN)
        log.info("Zarr store %s extended to %s (%d more day(s))", self.url, last, need - have)
        return first

    def _write_run(self, data_dir: Path, names: list[str], run: list[dt.date], first: dt.date, group) -> None:
        import xarray as xr

        stacks = {name: [] for name in names}
        for day in run:
            with xr.open_dataset(daily_file.daily_path(data_dir, day), engine="netcdf4") as ds:
                for name in names:
                    stacks[name].append(ds[name].values[0])
        a, b = (run[0] - first).days, (run[-1] - first).days + 1
        for name in names:
            group[name][a:b] = np.stack(stacks[name]).astype(np.float32)
        group[WRITTEN][a:b] = 1  # after the data: a kill before this leaves the days unmarked, to be rewritten


def grow_time_axis(store, group, need: int, marks: str) -> None:
    """Grow every array along ``time`` of a store of days to ``need`` days: the new days' ``time`` and
    ``time_bnds`` set, their ``marks`` 0, no data chunk written, the ACDD coverage and the
    consolidated metadata updated last (until then readers see the old axis)."""
    import zarr

    have = group["time"].shape[0]
    start = float(group["time"][0]) + np.arange(have, need)  # days since 1979-10-01, at the day boundary
    for name in group.array_keys():
        array = group[name]
        dims = list(array.attrs.get("_ARRAY_DIMENSIONS", []))
        if "time" in dims:
            axis = dims.index("time")
            array.resize(tuple(need if k == axis else size for k, size in enumerate(array.shape)))
    group["time"][have:need] = start
    group["time_bnds"][have:need] = np.stack([start, start + 1.0], axis=1)
    group[marks][have:need] = 0
    if "time_coverage_start" in group.attrs:  # ACDD: the coverage grows with the axis
        group.attrs.update(cf.time_coverage(_instant(group["time"][0]), _instant(start[-1] + 1.0)))
    zarr.consolidate_metadata(store, zarr_format=2)


def _instant(days_since_epoch: float) -> np.datetime64:
    """A time value of the store (days since 1979-10-01, see daily_file.days_time_encoding) as an instant."""
    return np.datetime64(daily_file.TIME_EPOCH, "s") + np.timedelta64(int(round(float(days_since_epoch) * 24)), "h")


def _consecutive(days: list[dt.date], first: dt.date, per_chunk: int) -> list[list[dt.date]]:
    """Runs of consecutive days, none crossing a time-chunk boundary."""
    runs: list[list[dt.date]] = []
    for day in days:
        same_chunk = runs and (runs[-1][-1] - first).days // per_chunk == (day - first).days // per_chunk
        if runs and (day - runs[-1][-1]).days == 1 and same_chunk:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _text(value) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)
