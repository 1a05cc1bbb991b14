"""Write synthetic CONUS404 Zarr stores with the real layouts, to any fsspec URL or local path.

The layouts (``pc``, ``hytest``) are :mod:`conus404.emulator.store_layouts`'; values come from
:mod:`conus404.emulator.weather`, as untidy as the real model's unless ``quirks=False``. Both are
Zarr v2 with consolidated metadata; names, units and attributes come from the real stores' listings.
What is not published (fill value, the PC's time encoding) is a parameter, and defects can be planted:
a missing hour, NaN cells, a negative amount, a lost chunk.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import xarray as xr

from conus404.core import grid
from conus404.core.reference_metadata import StoreVariable, hytest_store_variables, pc_store_variables
from conus404.emulator import model_quirks, store_layouts, weather
from conus404.emulator.store_layouts import FillValue, Layout

DEFAULT_VARIABLES = (
    "T2", "TD2", "Q2", "PSFC", "U10", "V10", "SWDOWN", "GLW",
    "PREC_ACC_NC", "SNOW_ACC_NC", "ACRAINLSM", "ACSNOM", "ACSWDNB", "I_ACSWDNB",
)
SPEC_FILE = ".synthetic_spec.json"  # beside the store's metadata: the spec it was written for (not an attribute)
_EPOCH = np.datetime64("1970-01-01T00", "h")
_MAX_BLOCK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Defect:
    """A planted fault: ``missing_hour`` drops the timestamp, ``nan`` blanks a share of cells,
    ``negative`` makes one cell of an accumulation -1.5, ``lost_chunk`` deletes the chunk holding the
    hour (its first tile on a tiled layout) as a store that lost it would lack it."""

    kind: Literal["missing_hour", "nan", "negative", "lost_chunk"]
    time: str  # an hour, e.g. "2021-01-01T05"
    variable: str | None = None  # None: every variable (nan) / PREC_ACC_NC (negative, lost_chunk)
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
    quirks: bool = True  # the real model's untidiness (fog, tiny negatives, quantisation, 6-hourly buckets)
    fill_value: FillValue = "nan"  # "null": a lost chunk reads as 0 (the PC's is not published)
    time_encoding: str | None = None  # None: the layout's own (store_layouts.TIME_ENCODINGS)

    @classmethod
    def for_days(cls, first_day: str, days: int, closing_record: bool = True, **kwargs: Any) -> StoreSpec:
        """A store holding ``days`` whole UTC days from ``first_day`` plus, unless ``closing_record`` is
        False (as the PC record's last day), the next day's 00Z that the accumulations need."""
        return cls(start=f"{first_day}T00", hours=24 * days + (1 if closing_record else 0), **kwargs)

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

    def context(self) -> weather.GridContext:
        return weather.GridContext(self.ny, self.nx, self.seed, self.levels, self.first_hour, self.quirks)


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
        resets = np.floor(total / weather.BUCKET_J)
        for i, hour in enumerate(hours):
            if i:
                total = total + weather.running_increment(ctx, base, hour)
            if base in weather.BUCKET_FLUXES and spec.layout == "pc":
                if not spec.quirks or model_quirks.bucket_resets_at(hour):  # else above 1e9 until the next check
                    resets = np.floor(total / weather.BUCKET_J)
                yield hour, (resets.astype(np.int32) if name.startswith("I_") else total - resets * weather.BUCKET_J)
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


def _stored(spec: StoreSpec, info: StoreVariable, values: np.ndarray) -> np.ndarray:
    """As the store keeps it: its dtype, and NCO's quantisation where the PC store has it."""
    out = np.asarray(values).astype(info.dtype)
    digits = info.attrs.get("number_of_significant_digits")
    if spec.quirks and spec.layout == "pc" and digits and out.dtype.kind == "f":
        out = model_quirks.quantised(out, int(digits))
    return out


def _shape(spec: StoreSpec, info: StoreVariable, steps: int) -> tuple[int, ...]:
    sizes = {"time": steps, **store_layouts.sizes(spec.layout, spec.ny, spec.nx, spec.levels)}
    return tuple(sizes[d] for d in info.dims)


def _blocks(spec: StoreSpec, ctx: weather.GridContext, name: str, info: StoreVariable) -> Iterator[tuple[slice, np.ndarray]]:
    """Chunk-aligned blocks of the time axis, each (index slice, array), within a memory cap."""
    written = spec.hours_written()
    index = {hour: i for i, hour in enumerate(written)}
    time_chunk = _encoding(spec, info)["chunks"][0]
    shape = _shape(spec, info, 1)[1:]
    per_hour = int(np.prod(shape)) * 4
    block_len = time_chunk * max(1, _MAX_BLOCK_BYTES // (per_hour * time_chunk))
    buffer: list[np.ndarray] = []
    start = 0
    for hour, values in _hour_values(ctx, spec, name):
        if hour not in index:
            continue
        if values.ndim == 3 and len(shape) == 2:
            values = values[0]  # HyTEST keeps 3-D fields at the lowest model level only
        buffer.append(_plant(spec, ctx, name, hour, _stored(spec, info, values)))
        if len(buffer) == block_len or index[hour] == len(written) - 1:
            yield slice(start, start + len(buffer)), np.stack(buffer).reshape((len(buffer), *shape))
            start += len(buffer)
            buffer = []


def _encoding(spec: StoreSpec, info: StoreVariable) -> dict[str, Any]:
    shape = _shape(spec, info, len(spec.hours_written()))
    chunks = store_layouts.data_chunks(spec.layout, shape, "bottom_top" in info.dims, spec.time_chunk, spec.space_chunk)
    return {"chunks": chunks, "compressors": (store_layouts.compressor(spec.layout),),
            **store_layouts.fill_value_encoding(info.dtype, spec.fill_value)}


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
    names = store_layouts.DIMS[spec.layout]
    ydim, xdim = names["y"], names["x"]
    coords: dict[str, Any] = {"time": ("time", times.astype("datetime64[ns]"), dict(catalogue["time"].attrs))}
    encoding: dict[str, dict[str, Any]] = {
        "time": store_layouts.time_encoding(spec.time_encoding or store_layouts.DEFAULT_TIME_ENCODING[spec.layout])}
    latlon_chunks = store_layouts.coordinate_chunks(spec.layout, spec.ny, spec.nx)
    lat, lon = grid.grid_latlon(spec.ny, spec.nx)
    stag = {"u": weather.staggered_latlon(spec.ny, spec.nx, "x"), "v": weather.staggered_latlon(spec.ny, spec.nx, "y")}
    for name, values, dims in (
        ("lat", lat, (ydim, xdim)), ("lon", lon, (ydim, xdim)),
        ("lat_u", stag["u"][0], (ydim, names["x_stag"])), ("lon_u", stag["u"][1], (ydim, names["x_stag"])),
        ("lat_v", stag["v"][0], (names["y_stag"], xdim)), ("lon_v", stag["v"][1], (names["y_stag"], xdim)),
    ):
        coords[name] = (dims, values.astype(np.float32), dict(catalogue[name].attrs))
        encoding[name] = {"chunks": latlon_chunks}
    if spec.layout == "hytest":
        x, y = grid.projection_xy(spec.ny, spec.nx)
        coords["x"] = ("x", x, dict(catalogue["x"].attrs))
        coords["y"] = ("y", y, dict(catalogue["y"].attrs))
        coords["crs"] = ((), np.int64(0), dict(catalogue["crs"].attrs))
    data_vars = {}
    for name in spec.variables:
        info = catalogue[name]
        enc = _encoding(spec, info)
        data_vars[name] = (info.dims, da.zeros(_shape(spec, info, len(times)), dtype=info.dtype, chunks=enc["chunks"]),
                           dict(info.attrs))
        encoding[name] = enc
    return xr.Dataset(data_vars, coords=coords, attrs=store_layouts.global_attributes(spec.layout)), encoding


def build_dataset(spec: StoreSpec) -> xr.Dataset:
    """The whole store in memory (small grids only), lost chunks still present: what :func:`write_store` writes."""
    ds, _ = template_dataset(spec)
    ctx = spec.context()
    catalogue = spec.catalogue()
    out = ds.copy()
    for name in spec.variables:
        blocks = [block for _, block in _blocks(spec, ctx, name, catalogue[name])]
        out[name] = (catalogue[name].dims, np.concatenate(blocks), ds[name].attrs)
    return out


def lost_chunk_keys(spec: StoreSpec) -> list[str]:
    """The chunk keys (``NAME/t.j.i``) the ``lost_chunk`` defects delete from the written store."""
    written = spec.hours_written()
    keys = []
    for defect in spec.defects:
        if defect.kind != "lost_chunk" or defect.hour not in written:
            continue
        name = defect.variable or "PREC_ACC_NC"
        info = spec.catalogue()[name]
        time_chunk = _encoding(spec, info)["chunks"][0]
        rest = ".0" * (len(info.dims) - 1)
        keys.append(f"{name}/{written.index(defect.hour) // time_chunk}{rest}")
    return keys


def write_store(
    spec: StoreSpec,
    url: str,
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Write the store for ``spec`` to ``url`` (local path or fsspec URL), chunk-aligned and streaming."""
    import fsspec

    options = dict(storage_options or {})
    if "://" in url and not url.startswith("file://"):
        options.setdefault("use_listings_cache", False)  # else .zmetadata can list no arrays
    remote = {"storage_options": options} if options else {}
    ds, encoding = template_dataset(spec)
    ds.to_zarr(url, mode="w", compute=False, zarr_format=2, consolidated=True, encoding=encoding, **remote)
    ctx = spec.context()
    catalogue = spec.catalogue()
    for name in spec.variables:
        info = catalogue[name]
        for region, block in _blocks(spec, ctx, name, info):
            piece = xr.Dataset({name: (info.dims, block)})
            piece.to_zarr(url, region={"time": region}, mode="r+", zarr_format=2, consolidated=False, **remote)
        if progress:
            progress(f"wrote {name}")
    fs, root = fsspec.core.url_to_fs(url, **options)
    for key in lost_chunk_keys(spec):
        fs.rm(f"{root.rstrip('/')}/{key}")
    with fs.open(f"{root.rstrip('/')}/{SPEC_FILE}", "w") as handle:
        handle.write(spec_json(spec))


def spec_json(spec: StoreSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)
