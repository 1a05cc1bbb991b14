"""Write synthetic CONUS404 Zarr stores with the real layouts, to any fsspec URL or local path.

Two layouts:
  ``pc``      as ``az://noaa/conus404.zarr``: dims time/south_north/west_east, 2-D lat/lon, one
              hour over the whole grid per chunk, radiation as bucket value + I_AC counter.
  ``hytest``  as HyTEST's OSN hourly store: dims time/y/x with x/y metres and a ``crs`` variable,
              chunks (144, 175, 175), Zstd level 9, radiation as since-start totals, no I_AC.
Both are Zarr v2 with consolidated metadata. Names, units and attributes come from the real
stores' listings. Values come from :mod:`conus404.emulator.weather`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numcodecs
import numpy as np
import xarray as xr

from conus404 import grid
from conus404.emulator import weather
from conus404.reference_metadata import StoreVariable, hytest_store_variables, pc_store_variables

Layout = Literal["pc", "hytest"]
DEFAULT_VARIABLES = (
    "T2", "TD2", "Q2", "PSFC", "U10", "V10", "SWDOWN", "GLW",
    "PREC_ACC_NC", "SNOW_ACC_NC", "ACRAINLSM", "ACSNOM", "ACSWDNB", "I_ACSWDNB",
)
_EPOCH = np.datetime64("1970-01-01T00", "h")
_MAX_BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Defect:
    """A planted fault: ``missing_hour`` drops the timestamp, ``nan`` blanks a share of cells,
    ``negative`` makes one cell of an accumulation negative."""

    kind: Literal["missing_hour", "nan", "negative"]
    time: str  # an hour, e.g. "2021-01-01T05"
    variable: str | None = None  # None: every variable (nan) / PREC_ACC_NC (negative)
    fraction: float = 0.25

    @property
    def hour(self) -> int:
        return int((np.datetime64(self.time, "h") - _EPOCH).astype(int))


@dataclass(frozen=True)
class StoreSpec:
    """Everything that determines a synthetic store; equal specs give identical stores."""

    start: str = "2021-01-01T00"
    hours: int = 49  # two days plus 00Z of the third, which the accumulations of day 2 need
    ny: int = 40
    nx: int = 56
    variables: tuple[str, ...] = DEFAULT_VARIABLES
    layout: Layout = "pc"
    seed: int = 404
    levels: int = 4  # vertical levels of 3-D variables (the real store has 50)
    time_chunk: int | None = None  # None: the layout's own (1 for pc, 144 for hytest)
    space_chunk: int | None = None  # None: whole grid for pc, 175 for hytest
    defects: tuple[Defect, ...] = field(default_factory=tuple)

    @classmethod
    def for_days(cls, first_day: str, days: int, **kwargs: Any) -> StoreSpec:
        """A store holding ``days`` whole UTC days from ``first_day`` plus the closing 00Z."""
        return cls(start=f"{first_day}T00", hours=24 * days + 1, **kwargs)

    @property
    def first_hour(self) -> int:
        return int((np.datetime64(self.start, "h") - _EPOCH).astype(int))

    def hours_written(self) -> list[int]:
        """Absolute hours present in the store's time axis (planted missing hours removed)."""
        missing = {d.hour for d in self.defects if d.kind == "missing_hour"}
        return [h for h in range(self.first_hour, self.first_hour + self.hours) if h not in missing]

    def time_span(self) -> tuple[str, str]:
        """ISO timestamps of the first and last record in the store."""
        hours = self.hours_written()
        return tuple(str(_EPOCH + np.timedelta64(h, "h")) + ":00:00" for h in (hours[0], hours[-1]))

    def catalogue(self) -> dict[str, StoreVariable]:
        return pc_store_variables() if self.layout == "pc" else hytest_store_variables()

    def chunks(self) -> tuple[int, int]:
        if self.layout == "pc":
            return self.time_chunk or 1, self.space_chunk or max(self.ny, self.nx)
        return self.time_chunk or 144, self.space_chunk or 175


def supported_variables(layout: Layout = "pc") -> list[str]:
    """Variables the generator can make for ``layout``."""
    modelled = (
        set(weather.INSTANT_FIELDS) | set(weather.PRIOR_HOUR_FIELDS)
        | set(weather.SINCE_START_INCREMENTS) | set(weather.BUCKET_FLUXES)
        | {"I_" + name for name in weather.BUCKET_FLUXES}
    )
    listing = pc_store_variables() if layout == "pc" else hytest_store_variables()
    return sorted(modelled & set(listing))


def _hour_values(ctx: weather.GridContext, spec: StoreSpec, name: str) -> Iterator[tuple[int, np.ndarray]]:
    """(hour, values) for every hour of the store's span, in order, missing hours included."""
    hours = range(spec.first_hour, spec.first_hour + spec.hours)
    base = name[2:] if name.startswith("I_") else name
    if base in weather.BUCKET_FLUXES or base in weather.SINCE_START_INCREMENTS:
        total = weather.running_total_start(ctx, base, spec.hours)
        for i, hour in enumerate(hours):
            if i:
                total = total + weather.running_increment(ctx, base, hour)
            if base in weather.BUCKET_FLUXES and spec.layout == "pc":
                value, resets = weather.bucket_parts(total)
                yield hour, (resets if name.startswith("I_") else value)
            else:
                yield hour, total
        return
    model = weather.INSTANT_FIELDS.get(name) or weather.PRIOR_HOUR_FIELDS[name]
    for hour in hours:
        yield hour, model(ctx, hour)


def _plant(spec: StoreSpec, ctx: weather.GridContext, name: str, hour: int, values: np.ndarray) -> np.ndarray:
    for defect in spec.defects:
        if defect.hour != hour:
            continue
        if defect.kind == "nan" and defect.variable in (None, name) and values.dtype.kind == "f":
            mask = ctx.rng(f"defect:{name}", hour).random(values.shape) < defect.fraction
            values = np.where(mask, np.nan, values).astype(values.dtype)
        elif defect.kind == "negative" and (defect.variable or "PREC_ACC_NC") == name:
            values = values.copy()
            values[..., ctx.ny // 2, ctx.nx // 2] = -1.5
    return values


def _blocks(spec: StoreSpec, ctx: weather.GridContext, name: str, info: StoreVariable) -> Iterator[tuple[slice, np.ndarray]]:
    """Chunk-aligned blocks of the time axis, each (index slice, array), within a memory cap."""
    written = spec.hours_written()
    index = {hour: i for i, hour in enumerate(written)}
    time_chunk, _ = spec.chunks()
    per_hour = spec.ny * spec.nx * 4 * (spec.levels if "bottom_top" in info.dims else 1)
    block_len = time_chunk * max(1, _MAX_BLOCK_BYTES // (per_hour * time_chunk))
    shape_tail = (spec.levels,) if "bottom_top" in info.dims else ()
    buffer: list[np.ndarray] = []
    start = 0
    for hour, values in _hour_values(ctx, spec, name):
        if hour not in index:
            continue
        if values.ndim == 3 and not shape_tail:
            values = values[0]  # HyTEST keeps 3-D fields at the lowest model level only
        buffer.append(_plant(spec, ctx, name, hour, np.asarray(values).astype(info.dtype)))
        if len(buffer) == block_len or index[hour] == len(written) - 1:
            block = np.stack(buffer).reshape((len(buffer), *shape_tail, spec.ny, spec.nx))
            yield slice(start, start + len(buffer)), block
            start += len(buffer)
            buffer = []


def _encoding(spec: StoreSpec, info: StoreVariable) -> dict[str, Any]:
    time_chunk, space = spec.chunks()
    if spec.layout == "pc":
        lead = (time_chunk, 1) if "bottom_top" in info.dims else (time_chunk,)
        chunks = (*lead, spec.ny, spec.nx)
        # The PC store's compressor is not published; zarr-python 2's default is a fair guess.
        compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    else:
        chunks = (time_chunk, min(space, spec.ny), min(space, spec.nx))
        compressor = numcodecs.Zstd(level=9)
    enc: dict[str, Any] = {"chunks": chunks, "compressors": (compressor,)}
    if info.dtype.startswith("float"):
        enc["_FillValue"] = np.float32(np.nan)
    return enc


def template_dataset(spec: StoreSpec) -> tuple[xr.Dataset, dict[str, dict[str, Any]]]:
    """Coordinates plus lazy placeholders of every variable, and the per-variable encoding."""
    import dask.array as da

    catalogue = spec.catalogue()
    unknown = [v for v in spec.variables if v not in supported_variables(spec.layout)]
    if unknown:
        raise ValueError(
            f"the synthetic {spec.layout} store cannot hold {', '.join(unknown)}; "
            f"choose from {', '.join(supported_variables(spec.layout))}"
        )
    times = _EPOCH + np.array(spec.hours_written(), dtype="timedelta64[h]")
    lat, lon = grid.grid_latlon(spec.ny, spec.nx)
    ydim, xdim = ("south_north", "west_east") if spec.layout == "pc" else ("y", "x")
    coords: dict[str, Any] = {
        "time": ("time", times.astype("datetime64[ns]"), dict(catalogue["time"].attrs)),
        "lat": ((ydim, xdim), lat.astype(np.float32), dict(catalogue["lat"].attrs)),
        "lon": ((ydim, xdim), lon.astype(np.float32), dict(catalogue["lon"].attrs)),
    }
    if spec.layout == "hytest":
        x, y = grid.projection_xy(spec.ny, spec.nx)
        coords["x"] = ("x", x, dict(catalogue["x"].attrs))
        coords["y"] = ("y", y, dict(catalogue["y"].attrs))
        coords["crs"] = ((), np.int64(0), dict(catalogue["crs"].attrs))
    data_vars, encoding = {}, {}
    for name in spec.variables:
        info = catalogue[name]
        enc = _encoding(spec, info)
        shape = tuple(
            {"time": len(times), "bottom_top": spec.levels, ydim: spec.ny, xdim: spec.nx}[d] for d in info.dims
        )
        data_vars[name] = (info.dims, da.zeros(shape, dtype=info.dtype, chunks=enc["chunks"]), dict(info.attrs))
        encoding[name] = enc
    encoding["time"] = {"units": "hours since 1979-10-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "int64"}
    attrs = {
        "title": "Synthetic CONUS404-like hourly store (not real data)",
        "description": "Made by the conus404 pipeline's emulator to stand in for the Planetary Computer store.",
        "synthetic_spec": json.dumps(asdict(spec), sort_keys=True),
    }
    if spec.layout == "hytest":
        attrs.update({"BUCKET_J": 1.0e9, "BUCKET_MM": 100.0, "PREC_ACC_DT": 60.0, "CU_PHYSICS": 0})
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), encoding


def build_dataset(spec: StoreSpec) -> xr.Dataset:
    """The whole store in memory (small grids only): what :func:`write_store` writes."""
    ds, _ = template_dataset(spec)
    ctx = weather.GridContext(spec.ny, spec.nx, spec.seed, spec.levels, spec.first_hour)
    catalogue = spec.catalogue()
    out = ds.copy()
    for name in spec.variables:
        blocks = [block for _, block in _blocks(spec, ctx, name, catalogue[name])]
        out[name] = (catalogue[name].dims, np.concatenate(blocks), ds[name].attrs)
    return out


def write_store(
    spec: StoreSpec,
    url: str,
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Write the store for ``spec`` to ``url`` (local path or fsspec URL), chunk-aligned and streaming."""
    options = dict(storage_options or {})
    if "://" in url and not url.startswith("file://"):
        options.setdefault("use_listings_cache", False)  # else .zmetadata can list no arrays
    remote = {"storage_options": options} if options else {}
    ds, encoding = template_dataset(spec)
    ds.to_zarr(url, mode="w", compute=False, zarr_format=2, consolidated=True, encoding=encoding, **remote)
    ctx = weather.GridContext(spec.ny, spec.nx, spec.seed, spec.levels, spec.first_hour)
    catalogue = spec.catalogue()
    for name in spec.variables:
        info = catalogue[name]
        for region, block in _blocks(spec, ctx, name, info):
            piece = xr.Dataset({name: (info.dims, block)})
            piece.to_zarr(url, region={"time": region}, mode="r+", zarr_format=2, consolidated=False, **remote)
        if progress:
            progress(f"wrote {name}")
