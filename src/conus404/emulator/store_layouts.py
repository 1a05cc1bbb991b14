"""How each real store is laid out, as far as it is published (docs/REAL_STORE.md has the sources).

  pc      ``az://noaa/conus404.zarr``: dims time/south_north/west_east (+ _stag), 2-D lat/lon chunked
          (882, 1188) and lat_u/lon_u/lat_v/lon_v; one hour over the whole grid (one level) per chunk;
          datetime64 ``time`` (axis T, long_name time); four global attributes; radiation as bucket
          value + I_AC counter; the record ends at 2022-09-30T23Z (no closing 00Z).
  hytest  HyTEST's OSN hourly store: dims time/y/x (+ y_stag/x_stag), x/y metres, a ``crs`` variable;
          chunks (144, 175, 175), Zstd level 9; ``time`` from WRF's XTIME, float32 minutes since
          1979-10-01; WRF's global attributes; AC* merged with their buckets, no I_AC.
Unpublished and so a choice here (and a parameter of the store): the PC's compressor, both stores'
fill value and the PC's time encoding.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numcodecs
import numpy as np

from conus404.core import grid

Layout = Literal["pc", "hytest"]
FillValue = Literal["nan", "null"]  # "null": zarr reads a missing chunk as 0 (its default for floats)

DIMS = {  # WRF's dimension names and each layout's
    "pc": {"y": "south_north", "x": "west_east", "y_stag": "south_north_stag", "x_stag": "west_east_stag"},
    "hytest": {"y": "y", "x": "x", "y_stag": "y_stag", "x_stag": "x_stag"},
}
PC_LATLON_CHUNKS = (882, 1188)  # of 1015 x 1367 (PCT template.json cube:variables)
HYTEST_CHUNKS = (144, 175, 175)
TIME_ENCODINGS: dict[str, dict[str, Any]] = {
    "hours-int64": {"units": "hours since 1979-10-01 00:00:00", "dtype": "int64"},
    "minutes-float32": {"units": "minutes since 1979-10-01 00:00:00", "dtype": "float32"},  # WRF's XTIME
    "ns-int64": {"units": "nanoseconds since 1970-01-01", "dtype": "int64"},
    "seconds-float64": {"units": "seconds since 1970-01-01 00:00:00", "dtype": "float64"},
}
DEFAULT_TIME_ENCODING = {"pc": "hours-int64", "hytest": "minutes-float32"}

PC_GLOBAL_ATTRIBUTES = {  # the only four the PC store has (PCE conus404-example.ipynb); texts shortened
    "abstract": "CONUS404 is a unique, high-resolution hydro-climate dataset appropriate for forcing hydrological "
                "models and conducting meteorological analysis over the conterminous United States "
                "(synthetic stand-in written by the conus404 pipeline's emulator: not real data).",
    "acknowledgement": "CONUS404 was produced by NCAR and the USGS (Rasmussen et al. 2023).",
    "description": "This dataset is a replication of NCAR RDA ds559.0 (DOI 10.5065/ZYY0-Y036) in Zarr.",
    "license": "CC-BY-4.0",
}
# WRF's global attributes whose CONUS404 values are published (HyTEST's store carries 148 of them).
HYTEST_GLOBAL_ATTRIBUTES: dict[str, Any] = {
    "TITLE": " OUTPUT FROM WRF V3.9.1.1 MODEL", "START_DATE": "1979-10-01_00:00:00",
    "SIMULATION_START_DATE": "1979-10-01_00:00:00", "WEST-EAST_GRID_DIMENSION": 1368,
    "SOUTH-NORTH_GRID_DIMENSION": 1016, "BOTTOM-TOP_GRID_DIMENSION": 51, "DX": 4000.0, "DY": 4000.0,
    "GRIDTYPE": "C", "CU_PHYSICS": 0, "BUCKET_MM": 100.0, "BUCKET_J": 1.0e9, "PREC_ACC_DT": 60.0,
    "CEN_LAT": 39.100006103515625, "CEN_LON": -97.9000015258789, "TRUELAT1": 30.0, "TRUELAT2": 50.0,
    "MOAD_CEN_LAT": 39.100006103515625, "STAND_LON": -97.9000015258789, "POLE_LAT": 90.0, "POLE_LON": 0.0,
    "GMT": 0.0, "JULYR": 1979, "JULDAY": 274, "MAP_PROJ": 1, "MAP_PROJ_CHAR": "Lambert Conformal",
    "WEST-EAST_PATCH_START_UNSTAG": 1, "WEST-EAST_PATCH_END_UNSTAG": 1367, "WEST-EAST_PATCH_START_STAG": 1,
    "WEST-EAST_PATCH_END_STAG": 1368, "SOUTH-NORTH_PATCH_START_UNSTAG": 1, "SOUTH-NORTH_PATCH_END_UNSTAG": 1015,
    "SOUTH-NORTH_PATCH_START_STAG": 1, "SOUTH-NORTH_PATCH_END_STAG": 1016, "BOTTOM-TOP_PATCH_START_UNSTAG": 1,
    "BOTTOM-TOP_PATCH_END_UNSTAG": 50, "BOTTOM-TOP_PATCH_START_STAG": 1, "BOTTOM-TOP_PATCH_END_STAG": 51,
    "GRID_ID": 1, "PARENT_ID": 0, "I_PARENT_START": 1, "J_PARENT_START": 1, "PARENT_GRID_RATIO": 1,
}


def dims(layout: Layout, wrf_dims: tuple[str, ...]) -> tuple[str, ...]:
    """A variable's dimensions in ``layout``'s names, from WRF's (as the PC listing spells them)."""
    to_generic = {v: k for k, v in DIMS["pc"].items()}
    return tuple(DIMS[layout][to_generic[d]] if d in to_generic else d for d in wrf_dims)


def sizes(layout: Layout, ny: int, nx: int, levels: int) -> dict[str, int]:
    names = DIMS[layout]
    return {names["y"]: ny, names["x"]: nx, names["y_stag"]: ny + 1, names["x_stag"]: nx + 1, "bottom_top": levels}


def data_chunks(layout: Layout, shape: tuple[int, ...], has_levels: bool, time_chunk: int | None,
                space_chunk: int | None) -> tuple[int, ...]:
    """pc: one hour (and one level) over the whole grid; hytest: 144 hours x 175 x 175 cells."""
    if layout == "pc":
        lead = (time_chunk or 1, 1) if has_levels else (time_chunk or 1,)
        return (*lead, *shape[len(lead):])
    lead = (time_chunk or HYTEST_CHUNKS[0],)
    space = space_chunk or HYTEST_CHUNKS[1]
    return (*lead, *(min(space, s) for s in shape[1:]))


def coordinate_chunks(layout: Layout, ny: int, nx: int) -> tuple[int, int]:
    """pc: (882, 1188) of the full grid, scaled to a smaller one; hytest: 175 x 175."""
    if layout == "pc":
        return (math.ceil(ny * PC_LATLON_CHUNKS[0] / grid.FULL_NY), math.ceil(nx * PC_LATLON_CHUNKS[1] / grid.FULL_NX))
    return (min(ny, HYTEST_CHUNKS[1]), min(nx, HYTEST_CHUNKS[2]))


def compressor(layout: Layout):
    if layout == "pc":  # not published; zarr-python 2's default is a fair guess
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    return numcodecs.Zstd(level=9)  # HyTEST's conus404_rechunk_ja.py


def fill_value_encoding(dtype: str, fill: FillValue) -> dict[str, Any]:
    if not dtype.startswith("float"):
        return {}
    return {"_FillValue": np.float32(np.nan) if fill == "nan" else None}


def time_encoding(name: str) -> dict[str, Any]:
    try:
        return {**TIME_ENCODINGS[name], "calendar": "proleptic_gregorian"}
    except KeyError:
        raise ValueError(f"time encoding {name!r} is not one of {', '.join(TIME_ENCODINGS)}") from None


def global_attributes(layout: Layout) -> dict[str, Any]:
    return dict(PC_GLOBAL_ATTRIBUTES if layout == "pc" else HYTEST_GLOBAL_ATTRIBUTES)
