"""CF-1.8 and ACDD-1.3 for the files the pipeline writes: the grid's projection coordinates and
cell corners, the discovery attributes, and each field's CF names.

Every writer (daily files, roll-ups, series tables, the Zarr store) takes its coordinates and
global attributes from here, so the rules live in one place:

- ``west_east``/``south_north`` (the dimensions' coordinate variables, ``standard_name``
  projection_x/y_coordinate) and the same metres as ``x``/``y``: 1-D cell-centre coordinates
  from the grid fitted to the store's lat/lon (:func:`conus404.core.subset.fit_grid`); with ``crs``
  they let CF tools find the Lambert conformal projection.
- ``lat_bnds``/``lon_bnds`` (``--cell-corners``): the four corners of each cell, counter-clockwise
  from the south-west one, projected back with pyproj; ``cdo remapcon`` needs them for
  conservative regridding. Off by default: on the full grid they add about 14 MB and seconds of
  compression to every daily file.
- ACDD-1.3 discovery attributes; ``license`` and ``references`` are the source's (CC-BY-4.0,
  the CONUS404 data release DOI).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from conus404.core import grid

CONVENTIONS = "CF-1.8, ACDD-1.3"
CONUS404_REFERENCES = (
    "Rasmussen, R. M., et al. (2023): CONUS404: The NCAR-USGS 4-km long-term regional hydroclimate reanalysis "
    "over the CONUS. Bull. Amer. Meteor. Soc., doi:10.1175/BAMS-D-21-0326.1; USGS data release "
    "doi:10.5066/P9PHPK4F; NCAR RDA ds559.0, doi:10.5065/ZYY0-Y036"
)
KEYWORDS = ("CONUS404, WRF, reanalysis, hydroclimate, daily, air temperature, precipitation, radiation, "
            "humidity, wind, contiguous United States")
CORNERS = "nv4"

# CF standard names: instantaneous surface fields when averaged (or their extremes), and the
# daily amounts of the accumulated ones (CF names a total over a period an "amount").
STATE_NAMES = {
    "T2": "air_temperature", "TD2": "dew_point_temperature", "Q2": "humidity_mixing_ratio",
    "PSFC": "surface_air_pressure", "U10": "x_wind", "V10": "y_wind", "WSPD10": "wind_speed",
    "SWDOWN": "surface_downwelling_shortwave_flux_in_air", "GLW": "surface_downwelling_longwave_flux_in_air",
    # derived (conus404.day.derived)
    "RH2": "relative_humidity", "SH2": "specific_humidity", "VPD2": "water_vapor_saturation_deficit_in_air",
    "U10E": "eastward_wind", "V10E": "northward_wind", "WDIR10": "wind_from_direction", "WSPD2": "wind_speed",
}
AMOUNT_NAMES = {
    "PREC_ACC_NC": "lwe_thickness_of_precipitation_amount",  # mm of water: precipitation_amount is kg m-2
    "ACSNOM": "surface_snow_melt_amount",
}
# CF 1.11 asks temperatures to say whether they are on a scale or differences
TEMPERATURE_UNITS = {"K", "degC", "degF", "kelvin"}


def projection_coordinates(lat: np.ndarray, lon: np.ndarray):
    """The fitted grid of the cells' lat/lon, or None for a window one cell wide (no grid to fit)."""
    from conus404.core import subset
    from conus404.core.exceptions import SourceLayoutError

    try:
        return subset.fit_grid(np.asarray(lat), np.asarray(lon))
    except SourceLayoutError:
        return None


def grid_coordinates(lat: np.ndarray, lon: np.ndarray, corners: bool = False) -> dict[str, Any]:
    """xarray coordinates of the cells: lat/lon, x/y where a grid fits, and with ``corners`` the
    cells' corners (``--cell-corners``: on the full grid they cost seconds and 14 MB a file)."""
    coords: dict[str, Any] = {
        "lat": (("south_north", "west_east"), np.asarray(lat, np.float32),
                {"standard_name": "latitude", "units": "degree_north", "long_name": "latitude", "bounds": "lat_bnds"}),
        "lon": (("south_north", "west_east"), np.asarray(lon, np.float32),
                {"standard_name": "longitude", "units": "degree_east", "long_name": "longitude", "bounds": "lon_bnds"}),
    }
    fitted = projection_coordinates(lat, lon)
    if fitted is None or not corners:
        for name in ("lat", "lon"):
            del coords[name][2]["bounds"]
    if fitted is None:
        return coords
    x = fitted.x0 + fitted.dx * np.arange(fitted.nx)
    y = fitted.y0 + fitted.dy * np.arange(fitted.ny)
    # The dimensions' own coordinate variables carry the CF identity: CF tools (and the IOOS checker,
    # CF 2.4) read a dimension's axis only from a variable of the same name, and CF 5.6 allows one
    # projection_x/y_coordinate each. x and y hold the same metres under their familiar names.
    coords["west_east"] = ("west_east", x, {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X",
                                            "long_name": "x of the cell centre in the CONUS404 plane"})
    coords["south_north"] = ("south_north", y, {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y",
                                                "long_name": "y of the cell centre in the CONUS404 plane"})
    coords["x"] = ("west_east", x, {"units": "m", "long_name": "x of the cell centre in the CONUS404 plane "
                                    "(the same as west_east)"})
    coords["y"] = ("south_north", y, {"units": "m", "long_name": "y of the cell centre in the CONUS404 plane "
                                      "(the same as south_north)"})
    if not corners:
        return coords
    lat_corners, lon_corners = cell_corners(x, y, fitted.dx, fitted.dy)
    coords["lat_bnds"] = (("south_north", "west_east", CORNERS), lat_corners.astype(np.float32), {"units": "degree_north"})
    coords["lon_bnds"] = (("south_north", "west_east", CORNERS), lon_corners.astype(np.float32), {"units": "degree_east"})
    return coords


COORDINATE_NAMES = ("lat", "lon", "x", "y", "south_north", "west_east", "lat_bnds", "lon_bnds")


def coordinate_encoding(ds) -> dict[str, dict[str, Any]]:
    """CF: coordinates and their bounds carry no _FillValue (xarray would add one to floats)."""
    return {name: {"_FillValue": None} for name in COORDINATE_NAMES if name in ds.variables}


def cell_corners(x: np.ndarray, y: np.ndarray, dx: float, dy: float) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of each cell's corners, shape (ny, nx, 4): SW, SE, NE, NW (counter-clockwise)."""
    from pyproj import Transformer

    to_lonlat = Transformer.from_crs(grid.crs_attributes()["proj4"], "EPSG:4326", always_xy=True)
    edges_x = np.append(np.asarray(x, np.float64) - dx / 2, x[-1] + dx / 2)  # the lattice of corners, once
    edges_y = np.append(np.asarray(y, np.float64) - dy / 2, y[-1] + dy / 2)
    lons, lats = to_lonlat.transform(*np.meshgrid(edges_x, edges_y))

    def by_cell(a: np.ndarray) -> np.ndarray:
        return np.stack([a[:-1, :-1], a[:-1, 1:], a[1:, 1:], a[1:, :-1]], axis=-1)

    return by_cell(lats), by_cell(lons)


def field_attributes(name: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """A field's attributes with its CF standard name (where CF has one), coverage type and units metadata."""
    out = dict(attrs)
    base = name if name in STATE_NAMES or name in AMOUNT_NAMES else name.split("_")[0]
    method = out.get("cell_methods")
    if "conus404_units_conversion" in out:  # a water mass given as a depth: its standard name is the mass's
        pass
    elif base in STATE_NAMES and method in ("time: mean", "time: minimum", "time: maximum", "time: point"):
        out.setdefault("standard_name", STATE_NAMES[base])
    elif name in AMOUNT_NAMES and method == "time: sum":
        out.setdefault("standard_name", AMOUNT_NAMES[name])
    out.setdefault("coverage_content_type", "modelResult")
    if is_temperature(out.get("units")):
        out.setdefault("units_metadata", "temperature: on_scale")
    return out


def is_temperature(units: Any) -> bool:
    """Units of temperature (K, degC, Celsius, degree_F ...): CF 1.11's units_metadata applies."""
    if units in TEMPERATURE_UNITS:
        return True
    if not units:
        return False
    try:
        import cf_units

        return cf_units.Unit(str(units)).is_convertible("K")
    except Exception:  # noqa: BLE001 - a unit cf-units cannot read is not a temperature it knows
        return False


def discovery_attributes(title: str, summary: str, lat: np.ndarray | None, lon: np.ndarray | None,
                         start: np.datetime64, end: np.datetime64, source: str = "") -> dict[str, Any]:
    """ACDD-1.3 global attributes of a file covering ``lat``/``lon`` (None: not known here) from
    ``start`` to ``end`` (UTC)."""
    from conus404 import __version__

    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    where = {} if lat is None or lon is None or not np.size(lat) else {
        "geospatial_lat_min": float(np.nanmin(lat)), "geospatial_lat_max": float(np.nanmax(lat)),
        "geospatial_lon_min": float(np.nanmin(lon)), "geospatial_lon_max": float(np.nanmax(lon)),
        "geospatial_lat_units": "degree_north", "geospatial_lon_units": "degree_east",
    }
    return {
        "Conventions": CONVENTIONS,
        "title": title,
        "summary": summary,
        "keywords": KEYWORDS,
        "source": source or "CONUS404 hourly WRF reanalysis (Microsoft Planetary Computer or USGS HyTEST Zarr store)",
        "references": CONUS404_REFERENCES,
        "license": "CC-BY-4.0 (the license of the CONUS404 source data)",
        "institution": "made with the conus404 daily pipeline from NCAR/USGS CONUS404 data",
        "history": f"{now} made by the conus404 daily pipeline {__version__}",
        "date_created": now,
        "creator_name": "conus404 daily pipeline",
        **where,
        **time_coverage(start, end),
    }


def time_coverage(start: np.datetime64, end: np.datetime64) -> dict[str, str]:
    """ACDD's time_coverage_start/end/duration of ``start`` .. ``end`` (UTC)."""
    return {"time_coverage_start": _iso(start), "time_coverage_end": _iso(end),
            "time_coverage_duration": _duration(end - start)}


def keep_cell_corners(coords: dict[str, Any], source) -> dict[str, Any]:
    """``coords`` with the cell corners ``source`` (a daily file's dataset) has, as they were made
    (--cell-corners): fitting them again from float32 lat/lon would move them by a rounding."""
    for name in ("lat_bnds", "lon_bnds"):
        if name in source.variables:
            coords[name] = source[name].variable
            coords[name.removesuffix("_bnds")][2]["bounds"] = name
    return coords


def _iso(t: np.datetime64) -> str:
    return str(np.datetime64(t, "s")) + "Z"


def _duration(span: np.timedelta64) -> str:
    hours = int(span / np.timedelta64(1, "h"))
    return f"P{hours // 24}D" if hours % 24 == 0 else f"PT{hours}H"
